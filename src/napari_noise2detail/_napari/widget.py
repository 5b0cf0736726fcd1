"""The Noise2Detail dock widget: pick an image layer, press Denoise, compare the stages."""

from __future__ import annotations

import time
from typing import Any, Generator

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, Label, ProgressBar, PushButton, SpinBox
from napari.layers import Image
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info

from ..engine import PRESETS, Cancelled, DenoiseResult, Progress, denoise_iter, describe_device
from . import remembered
from .layers import image_data, put_results

SETTINGS_NAME = "denoise_widget"


class Failed:
    """An exception from the worker thread, carried to the GUI thread as a plain value."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _guarded(run: Generator[Progress, None, DenoiseResult]) -> Generator[Progress, None, Any]:
    # napari's worker turns some exceptions (RuntimeError, which includes torch's
    # out-of-memory) into warnings; catching here gives every failure the same path.
    try:
        return (yield from run)
    except Exception as error:  # noqa: BLE001 - reported to the user in the GUI thread
        return Failed(error)


def plain_message(error: BaseException) -> str:
    """What a person should read when a run fails."""
    text = str(error) or type(error).__name__
    if isinstance(error, MemoryError) or "out of memory" in text.lower():
        return ("Noise2Detail ran out of memory. Try a smaller image or crop, close other "
                "programs, or use the CPU if the GPU is full.")
    if isinstance(error, (ValueError, TypeError)):
        return f"Noise2Detail cannot denoise this: {text}"
    return f"Noise2Detail failed ({type(error).__name__}): {text}"


def _eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


class DenoiseWidget(Container):
    """Dock widget. napari passes the viewer because of the annotation below."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._worker: GeneratorWorker | None = None
        self._source: Image | None = None
        self._started = 0.0
        # Closing the viewer (or the dock) deletes the controls: the fit is stopped and late
        # signals must not touch them.
        self._closed = False
        self.native.destroyed.connect(self._on_destroyed)
        saved = remembered.load(SETTINGS_NAME)

        self.layer = ComboBox(label="image", choices=self._image_layers, nullable=False)
        preset = saved.get("preset") if saved.get("preset") in PRESETS else "fast"
        self.preset = ComboBox(label="preset", choices=list(PRESETS), value=preset)
        self.steps = SpinBox(label="fitting steps", min=1, max=100_000,
                             value=int(saved.get("steps", PRESETS[preset].steps)),
                             tooltip="steps of stage 1, set by the preset; stage 3 is scaled in "
                                     "proportion. Fewer: faster and rougher.")
        self.add_stage1 = CheckBox(text="also add the stage-1 result",
                                   value=bool(saved.get("add_stage1", False)))
        self.stabilise = CheckBox(text="stabilise shot noise", value=bool(saved.get("stabilise", False)),
                                  tooltip="when the noise grows with the signal, fit on the "
                                          "variance-stabilised image (Anscombe). Helped on electron "
                                          "micrographs, hurt on brighter images: try both.")
        self.device = Label(label="device", value=describe_device("auto"))
        self.denoise_button = PushButton(text="Denoise")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=100, value=0)
        self.status = Label(label="status", value="Ready")
        self.noise = Label(label="noise", value="estimated when denoising")
        self.extend([self.layer, self.preset, self.steps, self.add_stage1, self.stabilise, self.device,
                     self.denoise_button, self.cancel_button, self.progress, self.status, self.noise])

        self.preset.changed.connect(self._on_preset)
        self.denoise_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        for setting in (self.preset, self.steps, self.add_stage1, self.stabilise):
            setting.changed.connect(self._remember)
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._source_removed)
        self._layers_changed()

    # -- choices and settings -------------------------------------------------------------
    def _image_layers(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _layers_changed(self, _event: Any = None) -> None:
        if self._closed:  # the dock was closed but the viewer lives on
            return
        self.layer.reset_choices()
        self.denoise_button.enabled = self._worker is None and self.layer.value is not None

    def _on_preset(self, name: str) -> None:
        self.steps.value = PRESETS[name].steps

    def _remember(self, _value: Any = None) -> None:
        remembered.save(SETTINGS_NAME, {"preset": self.preset.value, "steps": self.steps.value,
                                        "add_stage1": self.add_stage1.value,
                                        "stabilise": self.stabilise.value})

    # -- running --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, _value: Any = None) -> GeneratorWorker | None:
        """Denoise the layer chosen in the widget (the Denoise button)."""
        return self.denoise_layer(self.layer.value)

    def denoise_layer(self, source: Any) -> GeneratorWorker | None:
        """Start denoising ``source`` in a background thread; one run at a time.

        Returns the worker, or None when nothing was started (a notification says why).
        """
        if self.running:
            return None
        try:
            if source is None:
                raise ValueError("there is no image layer to denoise; open an image first")
            data, rgb = image_data(source)
            run = denoise_iter(data, rgb=rgb, preset=self.preset.value, steps=self.steps.value,
                               stabilise=self.stabilise.value, report_every=2)
        except (TypeError, ValueError) as error:
            self._fail(error)
            return None
        self._source = source
        self._started = time.perf_counter()
        worker = create_worker(_guarded, run, _start_thread=False)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.errored.connect(self._fail)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._set_running(True)
        self.status.value = f"Denoising '{source.name}' on {describe_device('auto')}..."
        worker.start()
        return worker

    def cancel(self, _value: Any = None) -> None:
        if self._worker is not None:
            if not self._closed:
                self.status.value = "Cancelling..."
            self._worker.quit()

    def _on_destroyed(self, _object: Any = None) -> None:
        self._closed = True  # from now on, worker signals must not touch the deleted controls
        self.cancel()

    def _source_removed(self, event: Any) -> None:
        if self.running and event.value is self._source:
            self.cancel()

    def _set_running(self, running: bool) -> None:
        self.denoise_button.enabled = not running and self.layer.value is not None
        self.cancel_button.enabled = running
        self.layer.enabled = self.preset.enabled = self.steps.enabled = self.stabilise.enabled = not running
        if running:
            self.progress.value = 0

    # -- results (GUI thread) -------------------------------------------------------------
    def _on_progress(self, event: Progress) -> None:
        if self._closed:
            return
        self.progress.value = round(100 * event.fraction)
        elapsed = time.perf_counter() - self._started
        left = elapsed / event.fraction * (1 - event.fraction) if event.fraction > 0.01 else None
        eta = f", about {_eta(left)} left" if left is not None else ""
        self.status.value = event.describe() + eta

    def _on_returned(self, outcome: DenoiseResult | Failed) -> None:
        if self._closed:
            return
        if isinstance(outcome, Failed):
            self._fail(outcome.error)
            return
        source = self._source
        if source is None or source not in self._viewer.layers:
            self._fail(ValueError("the source layer was removed while it was being denoised; "
                                  "the result was discarded"))
            return
        kinds = (["partial"] if self.add_stage1.value else []) + ["smooth", "detail"]
        noise = outcome.noise
        about = {"preset": self.preset.value, "seconds": round(outcome.seconds, 2), "device": outcome.device,
                 "noise_a": noise and noise.a, "noise_b": noise and noise.b,
                 "shot_noise": noise and noise.signal_dependent, "stabilised": noise and noise.stabilised}
        try:
            put_results(self._viewer, source, {k: getattr(outcome, k) for k in kinds},
                        {"noise2detail": about})
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._fail(error)
            return
        self.progress.value = 100
        self.status.value = f"Done in {outcome.seconds:.1f} s on {outcome.device}"
        self.noise.value = noise.describe() if noise else "could not be estimated (flat or tiny image)"
        show_info(f"Noise2Detail: '{source.name}' denoised in {outcome.seconds:.1f} s")

    def _on_aborted(self) -> None:
        if not self._closed:
            self.status.value = "Cancelled; no layer was changed"

    def _fail(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self._on_aborted()
            return
        message = plain_message(error)
        show_error(message)
        if not self._closed:
            self.status.value = message

    def _on_finished(self) -> None:
        self._worker = None
        self._source = None
        if not self._closed:
            self._set_running(False)
