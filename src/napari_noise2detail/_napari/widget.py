"""The Noise2Detail dock widget: pick an image layer, preview a part of it, denoise it,
compare the stages; keep the fitted model and apply a saved one.

The work itself is :mod:`.runs` (which path suits the data) on the engine; the wiring to
napari's worker thread and Activity panel is :mod:`.worker`. Here are the controls and what
the results become: layers over the source.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import napari
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Shapes
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QObject

from ..engine import PRESETS, Cancelled, Denoiser, describe_device, load_model
from ..engine.clipping import Clipping
from ..engine.model import NotCovered
from ..engine.planes import is_lazy
from ..engine.presets import presets_explained
from ..engine.stabilise import NoiseModel
from ..batch import safe_name
from ..engine.stack import APPLYING, FITTED_ALONE
from . import remembered
from .remembered import chosen_path
from .activity import Level
from .compare import Comparison
from .layers import SUFFIXES, image_data, layer_channel_axis, put_results, result_layer, result_name, shown_index
from .loss_plot import LossHistory, LossPlot
from .noise_words import noise_words
from .preview import Region, shape_region, view_region
from .runs import Job, Outcome, Step, fit_only, fitted_on_several_planes, start_run, way
from .steady import SteadyLabel, steady_combo, steady_dock
from .stores import default_folder, layer_stores
from .worker import Failed, Handlers, Runner

SETTINGS_NAME = "denoise_widget"
#: The dock's title as napari writes it; the dock is made wide enough to show it whole.
DOCK_TITLE = "Noise2Detail (napari-noise2detail)"
#: Model files' suffix (a safetensors file).
MODEL_SUFFIX = ".n2d"


#: The noise line before a run has estimated it.
NOISE_UNKNOWN = "estimated when denoising"
#: The status while the viewer holds no image layer (its buttons are greyed out: why).
NO_IMAGE = "No image layer to denoise: open one (File > Open, or drag a file in); labels, points and shapes are not images"


def plain_message(error: BaseException) -> str:
    """What a person should read when a run fails."""
    text = str(error) or type(error).__name__
    if isinstance(error, MemoryError) or "out of memory" in text.lower():
        return ("Noise2Detail ran out of memory. Try a smaller image or crop, close other "
                "programs, or use the CPU if the GPU is full.")
    if isinstance(error, NotCovered):  # a saved model applied to a darker layer: what to do, in the dock
        return (f"Noise2Detail cannot apply this model: {error.finding}. Denoise fits a model to this "
                "layer itself (and Save model keeps it).")
    if isinstance(error, (ValueError, TypeError, FileNotFoundError)):
        return f"Noise2Detail cannot do this: {text}"
    return f"Noise2Detail failed ({type(error).__name__}): {text}"


def _eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _levels(step: Step) -> tuple[float, list[Level]]:
    """The nested bars of the Activity panel for a step: the plane (or phase), the stage."""
    event = step.progress
    levels = []
    if step.phase == APPLYING:
        levels.append(Level(f"applying the model: plane {event.step}/{event.total}", event.step, event.total))
        return step.fraction, levels
    if event.fitted_on > 1:  # how far the fit is, its stages together
        levels.append(Level(f"fitting once on {event.fitted_on} planes", round(100 * event.fraction), 100))
    elif event.planes > 1:
        alone = ", fitted on its own" if step.phase == FITTED_ALONE else ""
        levels.append(Level(f"plane {event.plane + 1}/{event.planes}{alone}", event.plane, event.planes))
    levels.append(Level(event.stage_label, event.step, event.total))
    return step.fraction, levels


class DenoiseWidget(Container):
    """Dock widget. napari passes the viewer because of the annotation below."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._runner = Runner(self.native)
        self.native.destroyed.connect(self._on_destroyed)  # a bound method: Qt keeps no hold on self
        _Undocked(self.native, self._end_compare)
        self._source: Image | None = None
        self._saving: Path | None = None  # where the model the run fits is to be saved
        self._noise_of: Image | None = None  # the layer the noise line is about
        self._started = 0.0
        self._comparison: Comparison | None = None
        #: The models of the last run that fitted them (by channel of a layer with a channel
        #: axis, else under None), the layer and the choices they were fitted with.
        self._models: dict[int | None, Denoiser] = {}
        self._model_layer: Image | None = None
        self._model_choices: tuple = ()
        saved = remembered.load(SETTINGS_NAME)

        self.layer = ComboBox(label="image", choices=self._image_layers, nullable=False)
        preset = saved.get("preset") if saved.get("preset") in PRESETS else "fast"
        self.preset = ComboBox(label="preset", choices=list(PRESETS), value=preset)
        self.preset.tooltip = presets_explained("\n")
        self.steps = SpinBox(label="fitting steps", min=1, max=100_000,
                             value=int(saved.get("steps", PRESETS[preset].steps)),
                             tooltip="steps of stage 1, set by the preset; stage 3 is scaled in "
                                     "proportion. Fewer: faster and rougher.")
        self.stabilise = CheckBox(text="stabilise shot noise", value=bool(saved.get("stabilise", False)),
                                  tooltip="when the noise grows with the signal, fit on the "
                                          "variance-stabilised image (Anscombe). Helped on electron "
                                          "micrographs, hurt on brighter images: try both.")
        self.add_stage1 = CheckBox(text="also add the stage-1 result",
                                   value=bool(saved.get("add_stage1", False)))
        options = Container(label="options", labels=False, widgets=[self.stabilise, self.add_stage1])
        self.region = ComboBox(label="preview region", choices=self._regions, nullable=False,
                               tooltip="what Preview denoises: what the canvas shows, or the "
                                       "bounding box of a shape (the selected one, else the last) "
                                       "of a Shapes layer, on the current plane")
        self.device = SteadyLabel(2, label="device", value=describe_device("auto"))
        self.denoise_button = PushButton(text="Denoise")
        self.preview_button = PushButton(text="Preview",
                                         tooltip="denoise only the preview region, with these "
                                                 "settings, into a temporary layer")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=100, value=0)
        self.status = SteadyLabel(2, label="status", value="Ready")
        self.noise = SteadyLabel(3, label="noise", value=NOISE_UNKNOWN)
        self.compare_button = PushButton(text="Compare stages", enabled=False,
                                         tooltip="show the image and its results side by side, "
                                                 "labelled; press again to go back")
        self.history = LossHistory()
        self.loss_plot = LossPlot(self.history)
        self.loss_note = SteadyLabel(2, value="")
        self.model_file = FileEdit(label="model file", mode="r", filter=f"*{MODEL_SUFFIX}",
                                   value=saved.get("model_file", ""),
                                   tooltip="a model saved with Save model..., for Apply model")
        self.save_model_button = PushButton(text="Save model...",
                                            tooltip="save the model fitted on this image (fits one "
                                                    "first if the last run fitted plane by plane)")
        self.apply_model_button = PushButton(text="Apply model",
                                             tooltip="denoise the image with the model file, no fitting")
        self.folder = FileEdit(label="results folder", mode="d", value=saved.get("folder", ""),
                               tooltip="where the results of images too large for memory (dask or "
                                       "zarr layers) are written as OME-Zarr. Empty: beside the "
                                       "image's file, else in your cache folder.")

        run_row = Container(label="run", layout="horizontal", labels=False,
                            widgets=[self.denoise_button, self.preview_button, self.cancel_button])
        stages_row = Container(label="stages", layout="horizontal", labels=False, widgets=[self.compare_button])
        model_row = Container(label="model", layout="horizontal", labels=False,
                              widgets=[self.save_model_button, self.apply_model_button])
        self.extend([self.layer, self.preset, self.steps, options, self.device, self.region, run_row,
                     self.progress, self.status, self.noise, stages_row, self.loss_note,
                     self.model_file, model_row, self.folder])
        for row in (run_row, stages_row, model_row):
            row.margins = (0, 0, 0, 0)
        # The plot is a plain Qt widget: it goes in the layout itself, above its caption, the
        # full width of the dock (nothing is inserted later, so magicgui's indices still hold).
        layout = self.native.layout()
        layout.insertWidget(layout.indexOf(self.loss_note.native.parentWidget()), self.loss_plot)
        for combo in (self.layer, self.preset, self.region):
            steady_combo(combo)
        steady_dock(self, DOCK_TITLE)

        self.preset.changed.connect(self._on_preset)
        self.denoise_button.changed.connect(self.start)
        self.preview_button.changed.connect(self.preview)
        self.cancel_button.changed.connect(self.cancel)
        self.compare_button.changed.connect(self.toggle_compare)
        self.save_model_button.changed.connect(self.save_model)
        self.apply_model_button.changed.connect(self.apply_model)
        self.layer.changed.connect(self._update_buttons)
        self.layer.changed.connect(self._on_layer_chosen)
        for setting in (self.preset, self.steps, self.add_stage1, self.stabilise, self.folder, self.model_file):
            setting.changed.connect(self._remember)
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._source_removed)
        self._layers_changed()

    # -- choices and settings -------------------------------------------------------------
    def _image_layers(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)
                and not layer.name.endswith(SUFFIXES["preview"])]

    def _regions(self, _widget: Any = None) -> list[tuple[str, Any]]:
        shapes = [(f"shape in '{layer.name}'", layer) for layer in self._viewer.layers
                  if isinstance(layer, Shapes)]
        return [("current view", None), *shapes]

    def reset_choices(self, *args: Any) -> None:
        """napari's call when its layers change (a rename too): the chosen layer stays chosen
        (magicgui's combo box would move to the first layer when the chosen one's name changes)."""
        chosen = {combo: combo.value for combo in (self.layer, self.region)}
        super().reset_choices(*args)
        for combo, value in chosen.items():
            if value is not None and combo.value is not value and any(c is value for c in combo.choices):
                combo.value = value

    def _layers_changed(self, event: Any = None) -> None:
        if self._runner.closed:  # the dock was closed but the viewer lives on
            return
        self.reset_choices()
        if getattr(event, "type", None) == "inserted" and isinstance(event.value, Shapes):
            self.region.value = event.value  # a Shapes layer just added: likely for a preview
        if not self.running:
            if not self._image_layers():
                self.status.value = NO_IMAGE
            elif self.status.value == NO_IMAGE:
                self.status.value = "Ready"
        self._update_buttons()

    def _update_buttons(self, _value: Any = None) -> None:
        if self._runner.closed:
            return
        idle = not self.running
        if idle:
            self.progress.native.resetFormat()  # no time left to show
        chosen = self.layer.value is not None
        self.denoise_button.enabled = self.preview_button.enabled = idle and chosen
        self.save_model_button.enabled = self.apply_model_button.enabled = idle and chosen
        self.cancel_button.enabled = not idle
        self.compare_button.enabled = idle and (self._comparison is not None or len(self._compared()) > 1)
        for control in (self.layer, self.preset, self.steps, self.stabilise, self.add_stage1, self.region,
                        self.model_file, self.folder):
            control.enabled = idle

    @property
    def model(self) -> Denoiser | None:
        """The model the last run fitted on the whole layer (None: fitted plane by plane, or a
        channel at a time)."""
        return self._models.get(None)

    def _choices(self) -> tuple:
        """What a fit depends on: a model fitted with other choices is not saved as this one's."""
        return self.preset.value, self.steps.value, self.stabilise.value

    def _on_preset(self, name: str) -> None:
        self.steps.value = PRESETS[name].steps

    def _remember(self, _value: Any = None) -> None:
        remembered.save(SETTINGS_NAME, {
            "preset": self.preset.value, "steps": self.steps.value, "add_stage1": self.add_stage1.value,
            "stabilise": self.stabilise.value, "folder": str(chosen_path(self.folder) or ""),
            "model_file": str(chosen_path(self.model_file) or "")})

    def _job(self, source: Image, image: Any = None, kinds: tuple[str, ...] | None = None,
             model: Denoiser | None = None) -> Job:
        data, rgb = image_data(source)
        if kinds is None:
            kinds = (("partial",) if self.add_stage1.value else ()) + ("smooth", "detail")
        image = data if image is None else image
        stores = None
        if is_lazy(image) and kinds:  # (a fit for a model to save writes no results)
            folder = chosen_path(self.folder) or default_folder(source)
            stores = layer_stores(source, folder, kinds)
        # unticked: None, as on the command line: a fit on several planes stabilises all the same
        # (one model for bright and dim planes), a plane by plane fit does not
        settings = {"steps": self.steps.value, "stabilise": self.stabilise.value or None, "report_every": 2}
        return Job(image, rgb, self.preset.value, settings if model is None else {}, kinds, "auto", model, stores,
                   layer_channel_axis(source))

    # -- running --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._runner.running

    def start(self, _value: Any = None) -> GeneratorWorker | None:
        """Denoise the layer chosen in the widget (the Denoise button)."""
        return self.denoise_layer(self.layer.value)

    def denoise_layer(self, source: Any, model: Denoiser | None = None) -> GeneratorWorker | None:
        """Start denoising ``source`` (with ``model``: applying it, no fitting) in a background
        thread; one run at a time. Returns the worker, or None when nothing was started (a
        notification says why)."""
        if self.running:
            return None
        try:
            if source is None:
                raise ValueError("there is no image layer to denoise; open an image first")
            job = self._job(source, model=model)
            run = start_run(job)
        except (TypeError, ValueError, OSError) as error:
            self._fail(error)
            return None
        where = f"; results go to {job.stores.paths['detail'].parent}" if job.stores else ""
        what = {"apply": "applying the model to", "stream": "streaming", "fit once": "denoising",
                "every plane": "denoising"}[way(job)]
        return self._launch(run, source, f"{what.capitalize()} '{source.name}'{where}",
                            lambda outcome: self._show_results(source, outcome))

    def preview(self, _value: Any = None) -> GeneratorWorker | None:
        """Denoise only the preview region of the chosen layer into a temporary layer."""
        source = self.layer.value
        if self.running:
            return None
        try:
            if source is None:
                raise ValueError("there is no image layer to preview; open an image first")
            region = self._region(source)
            data, rgb = image_data(source)
            job = self._job(source, image=region.read(data), kinds=("detail",))
            whole = Job(data, rgb, channel_axis=layer_channel_axis(source))
            if fitted_on_several_planes(whole) and job.settings.get("stabilise") is None:
                # Denoise will fit the stack once, stabilised: the preview's one plane likewise
                job = dataclasses.replace(job, settings={**job.settings, "stabilise": True})
            run = start_run(job)
        except (TypeError, ValueError, OSError) as error:
            self._fail(error)
            return None
        height, width = region.shape
        return self._launch(run, source, f"Previewing {height}x{width} pixels of '{source.name}' "
                                         f"({region.what})",
                            lambda outcome: self._show_preview(source, region, outcome))

    def _region(self, source: Image) -> Region:
        shapes = self.region.value
        if shapes is None:
            return view_region(self._viewer, source)
        return shape_region(self._viewer, source, shapes)

    def _launch(self, run: Any, source: Image, what: str, done: Any,
                saving: Path | None = None) -> GeneratorWorker | None:
        """Start ``run`` on ``source``, then ``done`` with its outcome; ``saving``: where the
        model it fits is to be saved."""
        self._end_compare()
        self._source, self._saving = source, saving
        self._started = time.perf_counter()
        self.history.clear()
        self.loss_plot.update()
        self.loss_note.value = ""
        self.noise.value = "being estimated..."
        self.progress.value = 0
        self.status.value = f"{what} on {describe_device('auto')}..."
        handlers = Handlers(event=self._on_step, result=lambda value: self._finish(value, done),
                            levels=_levels, cancelled=self._on_cancelled, finished=self._update_buttons)
        worker = self._runner.start(run, f"Noise2Detail: {source.name}", handlers)
        self._update_buttons()
        return worker

    def cancel(self, _value: Any = None) -> None:
        if self.running:
            if not self._runner.closed:
                self.status.value = "Cancelling..."
                self.cancel_button.enabled = False  # asked once; the run stops at its next step
            self._runner.cancel()

    def _source_removed(self, event: Any) -> None:
        if self.running and event.value is self._source:
            self.cancel()
        if event.value is self._model_layer:
            self._models, self._model_layer = {}, None
        if self._comparison is not None and not self._comparison.drop(event.value):
            self._end_compare()
            self._update_buttons()

    # -- progress and results (GUI thread) ------------------------------------------------
    def _on_step(self, step: Step) -> None:
        self.progress.value = round(100 * step.fraction)
        elapsed = time.perf_counter() - self._started
        left = elapsed / step.fraction * (1 - step.fraction) if step.fraction > 0.01 else None
        # the time left on the bar, where a long status cannot push it out of sight
        self.progress.native.setFormat(f"%p%, about {_eta(left)} left" if left is not None else "%p%")
        name = self._source.name if self._source is not None else ""
        self.status.value = f"'{name}', {step.phase}: {step.progress.describe()}"
        if self.history.add(step.progress):
            self.loss_plot.update()
            self.loss_note.value = self.history.describe()

    def _finish(self, value: Any, done: Any) -> None:
        source = self._source
        if isinstance(value, Failed):
            self._fail(value.error)
        elif source is None or source not in self._viewer.layers:
            self._removed(source, "the result was discarded")
        else:
            try:
                done(value)
            except Exception as error:  # noqa: BLE001 - shown to the user
                self._fail(error)
        self._source = None

    def _about(self, outcome: Outcome) -> dict[str, Any]:
        """What the result layers keep in their metadata: how they were made."""
        result, noise = outcome.result, outcome.result.noise
        applied = {} if outcome.preset is not None else {"model_file": str(chosen_path(self.model_file) or "")}
        return {"preset": outcome.preset, **applied, "seconds": round(outcome.seconds, 2), "device": result.device,
                "how": outcome.how, "settings": dataclasses.asdict(result.settings),
                "noise_a": noise and noise.a, "noise_b": noise and noise.b,
                "shot_noise": noise and noise.signal_dependent, "stabilised": noise and noise.stabilised,
                "stores": {kind: str(path) for kind, path in outcome.stores.items()}}

    def _show_noise(self, noise: NoiseModel | None, clipping: Clipping | None, source: Image) -> None:
        short, full = noise_words(noise, clipping, asked_to_stabilise=self.stabilise.value)
        self.noise.value = short
        self.noise.tooltip = full
        self._noise_of = source

    def _on_layer_chosen(self, layer: Image | None) -> None:
        """Another layer chosen: the noise line, which was another layer's, is cleared (the
        status names the layer it is about)."""
        if not self.running and layer is not self._noise_of:
            self.noise.value, self.noise.tooltip = NOISE_UNKNOWN, ""
            self._noise_of = None

    def _show_results(self, source: Image, outcome: Outcome) -> None:
        put_results(self._viewer, source, outcome.arrays, {"noise2detail": self._about(outcome)})
        preview = result_layer(self._viewer, source, "preview")
        if preview is not None:  # a preview is temporary: the real result replaces it
            self._viewer.layers.remove(preview)
        stale = result_layer(self._viewer, source, "partial")
        if "partial" not in outcome.arrays and stale is not None:
            self._viewer.layers.remove(stale)  # an earlier run's stage 1, not to be taken for this one's
        models = {c: model for c, (_, model) in enumerate(outcome.channels) if model is not None}
        if outcome.model is not None:
            models[None] = outcome.model
        self._models, self._model_layer, self._model_choices = models, source, self._choices()
        self.progress.value = 100
        where = f"; results in {next(iter(outcome.stores.values())).parent}" if outcome.stores else ""
        self.status.value = f"'{source.name}' done in {outcome.seconds:.1f} s: {outcome.how}{where}"
        self._show_noise(outcome.result.noise, outcome.result.clipping, source)
        if outcome.channels:  # each channel's own noise: the line says the first's, the tooltip all
            said = [noise_words(result.noise, result.clipping) for result, _ in outcome.channels]
            self.noise.value = f"channel 0: {said[0][0]}"
            self.noise.tooltip = "\n".join(f"channel {c}: {full}" for c, (_, full) in enumerate(said))
        self._update_buttons()
        note = f"; {outcome.note}" if outcome.note else ""
        show_info(f"Noise2Detail: '{source.name}' denoised in {outcome.seconds:.1f} s{note}")

    def _show_preview(self, source: Image, region: Region, outcome: Outcome) -> None:
        about = self._about(outcome)
        about["region"] = {"what": region.what, "offset": list(region.offset), "shape": list(region.shape)}
        put_results(self._viewer, source, {"preview": outcome.arrays["detail"]}, {"noise2detail": about},
                    offset=region.offset)
        self.progress.value = 100
        self.status.value = (f"Preview done in {outcome.seconds:.1f} s. Denoise runs the whole "
                             f"{'stack' if source.ndim > 2 else 'image'} with these settings.")
        self._show_noise(outcome.result.noise, outcome.result.clipping, source)
        if outcome.result.noise is None:  # a small region: the whole image says more
            self.noise.value = ("preview: the region is too small (or flat) to estimate it; Denoise does, on the "
                                "whole image")
        else:
            self.noise.value = f"preview: {self.noise.value}"  # the region's, not the result layers

    def _on_cancelled(self) -> None:
        self.progress.value = 0
        if self._source is not None and self._source not in self._viewer.layers:
            self._removed(self._source, "the run was stopped and nothing was added")
            return
        self.status.value = "Cancelled; no layer was changed"
        self.noise.value = NOISE_UNKNOWN

    def _removed(self, source: Image | None, what: str) -> None:
        """The user removed the layer being denoised: said, but not as an error (it was their doing)."""
        name = f" '{source.name}'" if source is not None else ""
        doing = "it was being denoised"
        if self._saving is not None:
            doing, what = "a model was being fitted to it", f"no model was saved to {self._saving}"
        message = f"Stopped: the source layer{name} was removed while {doing}; {what}"
        show_info(f"Noise2Detail: {message}")
        self._stopped(message)

    def _stopped(self, message: str) -> None:
        """A run that ended without results: ``message`` in the status, the bar and noise line reset."""
        if not self._runner.closed:
            self.status.value = message
            self.progress.value = 0
            self.noise.value = NOISE_UNKNOWN  # not "being estimated..." for ever

    def _fail(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self._on_cancelled()
            return
        message = plain_message(error)
        show_error(message)
        self._stopped(message)

    # -- comparing ------------------------------------------------------------------------
    def _compared(self) -> list[Image]:
        """The chosen layer and its results that are in the viewer, in layer-list order."""
        source = self.layer.value
        if source is None:
            return []
        names = {source.name} | {result_name(source, kind) for kind in ("partial", "smooth", "detail")}
        return [layer for layer in self._viewer.layers if layer.name in names]

    def toggle_compare(self, _value: Any = None) -> None:
        """Show the chosen image and its results side by side, or go back (Compare stages)."""
        if self._comparison is not None:
            self._end_compare()
        elif len(self._compared()) > 1:
            self._comparison = Comparison(self._viewer, self._compared())
            self.compare_button.text = "Back to one view"
        self._update_buttons()

    def _end_compare(self, dock_gone: bool = False) -> None:
        """Give the viewer back its view; ``dock_gone``: the dock was destroyed (and its button
        with it), the viewer may live on."""
        if self._comparison is not None:
            self._comparison.end()
            self._comparison = None
            if not dock_gone:
                self.compare_button.text = "Compare stages"

    def _on_destroyed(self, *_: object) -> None:
        self._end_compare(dock_gone=True)

    # -- models ---------------------------------------------------------------------------
    def save_model(self, _value: Any = None, path: str | Path | None = None) -> GeneratorWorker | None:
        """Save the model fitted on the chosen layer to a file (asks where): of the channel
        shown, for a layer with a channel axis; when the last run did not fit it (a short stack
        fitted plane by plane), fit it first."""
        source = self.layer.value
        if self.running or source is None:
            return None
        axis = layer_channel_axis(source)
        channel = shown_index(self._viewer, source, axis) if axis is not None and image_data(source)[0].shape[axis] > 1 else None
        path = path or self._ask_save_path(source, channel)
        if not path:
            return None
        path = Path(str(path) if str(path).endswith(MODEL_SUFFIX) else f"{path}{MODEL_SUFFIX}").expanduser()
        fitted = self._models.get(channel) if self._model_layer is source else None
        if fitted is not None and self._model_choices == self._choices():
            self._show_noise(fitted.noise, fitted.clipping, source)  # (not an earlier preview's)
            self._write_model(fitted, path)
            return None
        try:
            run = fit_only(self._job(source, kinds=()), channel or 0)
        except (TypeError, ValueError, OSError) as error:
            self._fail(error)
            return None
        what = f"channel {channel} of '{source.name}'" if channel is not None else f"'{source.name}'"
        return self._launch(run, source, f"Fitting a model to {what}",
                            lambda model: self._fitted_for_saving(source, model, path, channel), saving=path)

    def _fitted_for_saving(self, source: Image, model: Denoiser, path: Path, channel: int | None) -> None:
        if self._model_layer is not source or self._model_choices != self._choices():
            self._models = {}
        self._models[channel] = model
        self._model_layer, self._model_choices = source, self._choices()
        self.progress.value = 100
        self._show_noise(model.noise, model.clipping, source)
        self._write_model(model, path)

    def _write_model(self, model: Denoiser, path: Path) -> None:
        try:
            model.save(path)
        except OSError as error:
            self._fail(error)
            return
        self.model_file.value = path
        self._remember()
        self.status.value = f"Model saved to {path}"
        show_info(f"Noise2Detail: model saved to {path}")

    def _ask_save_path(self, source: Image, channel: int | None) -> str | None:
        from magicgui.application import use_app

        # named after the layer (and channel), in the folder of the last model: proposing the
        # last model itself invited writing over it
        last = chosen_path(self.model_file)
        folder = last.parent if last is not None else Path.home()
        name = safe_name(source.name) + (f"_c{channel}" if channel is not None else "")
        start, number = folder / f"{name}{MODEL_SUFFIX}", 1
        while start.exists():  # saved before (after another fit, say): a new name, not that file
            number += 1
            start = folder / f"{name}_{number}{MODEL_SUFFIX}"
        start = str(start)
        dialog = use_app().get_obj("show_file_dialog")
        return dialog("w", caption="Save the Noise2Detail model", start_path=start,
                      filter=f"Noise2Detail model (*{MODEL_SUFFIX})", parent=self.native)

    def apply_model(self, _value: Any = None) -> GeneratorWorker | None:
        """Denoise the chosen layer with the model in "model file", without fitting."""
        if self.running:
            return None
        path = chosen_path(self.model_file)
        try:
            if not path:
                raise ValueError("choose a model file (saved with Save model...) first")
            model = load_model(path, device="auto")
        except (ValueError, OSError) as error:
            self._fail(error)
            return None
        self._remember()
        return self.denoise_layer(self.layer.value, model=model)


class _Undocked(QObject):
    """Calls ``then`` when ``native`` leaves its dock: napari's close button takes the widget
    out of the window without destroying it."""

    def __init__(self, native: Any, then: Callable[[], None]) -> None:
        super().__init__(native)
        self._then = then
        native.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ParentChange and watched.parent() is None:
            self._then()
        return False


