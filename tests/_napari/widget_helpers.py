"""What the widget tests share: a viewer, the dock as napari opens it, a click that waits (import the fixtures by name)."""

import numpy as np
import pytest

from conftest import OnePlaneAtATime, synthetic_cells  # noqa: F401 - shared with the widget tests
from napari_noise2detail._napari.widget import DenoiseWidget

WAIT = 120_000  # ms; generous for a loaded 2-core machine


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
