"""What the widget tests share: a viewer, the dock as napari opens it, a click that waits (import the fixtures by name)."""

import numpy as np
import pytest

from conftest import synthetic_cells
from napari_noise2detail._napari.widget import DenoiseWidget

WAIT = 120_000  # ms; generous for a loaded 2-core machine


class OnePlaneAtATime:
    """A lazy array that serves one plane (or part of one) at a time and refuses to be read
    whole, the way a 50 GB zarr store must never be. napari asks for a plane as ``0:1``."""

    def __init__(self, data):
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.reads = 0

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        lead = self.ndim - 2

        def one(i):
            return not isinstance(i, slice) or (i.stop is not None and i.stop - (i.start or 0) == 1)

        if len(index) < lead or not all(one(i) for i in index[:lead]):
            raise AssertionError(f"read more than a plane: {index}")
        self.reads += 1
        return self.data[index]

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole array was read")


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def make_widget(viewer):
    def make(steps=5):
        w = DenoiseWidget(viewer)
        viewer.window.add_dock_widget(w, name="Noise2Detail")
        w.steps.value = steps
        return w

    return make


def click(qtbot, button, w):
    """Click ``button`` for real and wait for the run it starts to end."""
    button.native.click()
    qtbot.waitUntil(lambda: not w.running, timeout=WAIT)


def noisy_cells(size=48, seed=1):
    clean = synthetic_cells(size)
    noise = np.random.default_rng(seed).normal(0, 0.1, clean.shape)
    return clean, (clean + noise).astype(np.float32)
