"""The "Batch denoise..." dock widget: selected layers or a folder of images into a folder of
results (TIFFs; OME-Zarr for zarr stores and layers too large for memory).

A thin shell around :func:`napari_noise2detail.batch.run_batch`, which decides everything about
what is read, skipped, written and reported; here are only the controls, the background thread
and the display of progress and of the summary. Given a Dask scheduler's address, the same
batch runs on that cluster (:mod:`napari_noise2detail.cluster`), connected to in the background
thread so that an unreachable scheduler never freezes napari.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator, Sequence

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    LineEdit,
    ProgressBar,
    PushButton,
    RadioButtons,
    SpinBox,
    TextEdit,
)

from ..batch import (
    ArrayItem,
    BatchOptions,
    BatchProgress,
    BatchSummary,
    Item,
    ItemResult,
    collect_inputs,
    run_batch,
)
from ..engine import PRESETS
from ..engine.presets import presets_explained
from . import remembered
from .remembered import chosen_path
from .activity import Level
from .layers import layer_meta
from .steady import SteadyLabel, steady_dock
from .worker import Failed, Handlers, Runner

if TYPE_CHECKING:
    import napari

_SCALE = 1000  # progress bar resolution: tenths of a percent
SETTINGS_NAME = "batch"
# Choices that come back next time; not "overwrite", which should be chosen each time.
_REMEMBERED = ("source", "input_folder", "output_folder", "model", "preset", "steps", "save_smooth", "dtype",
               "scheduler")
_PATHS = ("input_folder", "output_folder", "model")
#: napari's title of this dock, which the dock is made wide enough to show.
DOCK_TITLE = "Batch denoise... (napari-noise2detail)"


def _cluster_levels(event: BatchProgress) -> tuple[float, list[Level]]:
    """The Activity panel's nested bar for a batch on a cluster: images done and running (the
    workers do not report their steps)."""
    done = event.done or 0
    return event.fraction, [Level(f"{done}/{event.total} images done, {event.running} running",
                                  done, event.total)]


def _levels(event: BatchProgress) -> tuple[float, list[Level]]:
    """The Activity panel's nested bars for a batch: the image, and its stage."""
    levels = [Level(f"image {event.index + 1}/{event.total}: {event.name}", event.index, event.total)]
    step = event.progress
    if step is not None and step.stage > 0:
        levels.append(Level(step.stage_label, step.step, step.total))
    return event.fraction, levels


@dataclass(frozen=True)
class NotConnected:
    """The batch did not start: the scheduler could not be reached (``reason`` says why)."""

    reason: str


def on_scheduler(address: str, timeout: float, items: Sequence[Item], outdir: Path | None,
                 options: BatchOptions) -> Generator[BatchProgress, None, BatchSummary | NotConnected]:
    """The batch as tasks on the Dask scheduler at ``address``; run in the background thread,
    as connecting may take up to ``timeout`` seconds. Closing it cancels the cluster's tasks."""
    from ..cluster import connect

    try:
        connection = connect(address, timeout=timeout)
        client = connection.__enter__()
    except ValueError as error:  # unreachable, not an address, dask not installed
        return NotConnected(str(error))
    try:
        return (yield from run_batch(items, outdir, options, client=client))
    finally:
        connection.__exit__(None, None, None)


def _readable(path: Path) -> str:
    """``path`` with the home folder written ``~``, as people read paths."""
    try:
        return str(Path("~") / Path(path).relative_to(Path.home()))
    except ValueError:  # not under the home folder
        return str(path)


def layer_item(layer: Any) -> ArrayItem:
    """An image layer as a batch item: its full-resolution data, name, pixel size, units and place."""
    data = layer.data[0] if layer.multiscale else layer.data
    meta, shift = layer_meta(layer)
    return ArrayItem(name=layer.name, data=data, meta=meta, rgb=layer.rgb, translation=shift if any(shift) else None)


class BatchWidget(Container):
    """Denoise the selected image layers, or every image file of a folder, into an output folder.

    Outputs are ``<name>_n2d_detail.tif`` (and ``_n2d_smooth.tif``; ``.ome.zarr``, written
    plane by plane, for zarr stores and lazy layers); existing ones are skipped
    unless "overwrite" is ticked, so running again resumes an interrupted batch. The work runs in
    a background thread; Cancel stops it between two fitting steps.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.source = RadioButtons(
            label="Images", value="layers",
            choices=[("Selected layers", "layers"), ("Folder", "folder")],
        )
        self.input_folder = FileEdit(label="Input folder", mode="d")
        self.output_folder = FileEdit(label="Output folder", mode="d")
        self.output_folder.tooltip = ("Where to write <name>_n2d_detail.tif (.ome.zarr for zarr stores and "
                                      "layers too large for memory). For a folder of images, leave empty "
                                      "to write beside the inputs.")
        self.model = FileEdit(label="Model", mode="r", filter="*.n2d")
        self.model.tooltip = ("A model saved with the Noise2Detail dock's Save model... (or "
                              "napari-noise2detail fit), applied to every image with no fitting. "
                              "Leave empty to fit each image.")
        self.preset = ComboBox(label="Preset", choices=list(PRESETS), value="fast")
        self.preset.tooltip = presets_explained("\n")
        self.steps = SpinBox(label="Fitting steps", min=1, max=100_000, value=PRESETS["fast"].steps,
                             tooltip="Steps of stage 1 for every image, set by the preset; stage 3 is "
                                     "scaled in proportion. Fewer: faster and rougher (a quick trial batch).")
        self.save_smooth = CheckBox(text="Also save the smooth image")
        self.overwrite = CheckBox(text="Overwrite existing outputs")
        self.dtype = ComboBox(label="Output type", value="float32",
                              choices=[("float32", "float32"), ("same as input", "input")])
        self.scheduler = LineEdit(label="Scheduler", value="")
        self.scheduler.tooltip = ("The address of a running Dask scheduler (tcp://host:8786) to send "
                                  "the images to, one task each; its workers must see the input and "
                                  "output folders under the same paths. Leave empty to run here.")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="Progress", min=0, max=_SCALE, value=0)
        self.status = SteadyLabel(2, value="")
        self.summary = TextEdit(value="", visible=False)
        self.summary.read_only = True
        buttons = Container(layout="horizontal", labels=False,
                            widgets=[self.run_button, self.cancel_button])
        self.extend([self.source, self.input_folder, self.output_folder, self.model, self.preset, self.steps,
                     self.save_smooth, self.overwrite, self.dtype, self.scheduler, buttons, self.progress,
                     self.status, self.summary])
        steady_dock(self, DOCK_TITLE)

        #: Not shown: engine settings overriding the preset (e.g. ``{"steps": 5}``) and the device.
        self.settings: dict[str, Any] = {}
        self.device = "auto"
        #: Seconds to wait for the scheduler before saying it cannot be reached.
        self.connect_timeout = 10.0
        #: The summary of the last batch, once it has ended.
        self.last_summary: BatchSummary | None = None

        # Closing the viewer deletes this widget: the runner stops the batch, and lets no
        # late signal touch the deleted controls.
        self._runner = Runner(self.native)
        self._results: list[ItemResult] = []
        self._total = 0
        self._started = 0.0
        self._outdir: Path | None = None

        self._load_choices()
        self.preset.changed.connect(self._on_preset)  # after the remembered steps came back
        self.source.changed.connect(self._on_source)
        self.model.changed.connect(self._on_model)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self._on_source()
        self._on_model()

    # --- controls -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._runner.running

    def _on_source(self, *_: object) -> None:
        self.input_folder.enabled = not self.running and self.source.value == "folder"

    def _on_model(self, *_: object) -> None:
        # a saved model brings its own settings
        self.preset.enabled = self.steps.enabled = not self.running and chosen_path(self.model) is None

    def _on_preset(self, name: str) -> None:
        self.steps.value = PRESETS[name].steps

    def _items(self) -> list:
        if self.source.value == "folder":
            folder = chosen_path(self.input_folder)
            if folder is None or not folder.is_dir():
                raise ValueError("choose the folder of images to denoise")
            paths = collect_inputs([folder])
            if not paths:
                raise ValueError(f"no image files in {folder}")
            return paths
        from napari.layers import Image

        chosen = [layer for layer in self._viewer.layers
                  if layer in self._viewer.layers.selection and isinstance(layer, Image)]
        if not chosen:
            raise ValueError("select one or more image layers in the layer list")
        return [layer_item(layer) for layer in chosen]

    def _options(self) -> BatchOptions:
        model = chosen_path(self.model)
        return BatchOptions(
            preset=self.preset.value, device=self.device, save_smooth=self.save_smooth.value,
            overwrite=self.overwrite.value, dtype=self.dtype.value,
            model=str(model) if model else None,
            settings={} if model else {"steps": self.steps.value, **self.settings},
        )

    # --- running ------------------------------------------------------------------------------

    def start(self, *_: object) -> None:
        """Check the choices and start the batch in a background thread (what Run does)."""
        if self.running:
            return
        outdir = chosen_path(self.output_folder)
        try:
            items = self._items()
            if outdir is None and self.source.value == "layers":
                raise ValueError("choose an output folder")
            # Checks options and names every output now, in this thread; the work runs later.
            options = self._options()
            run = run_batch(items, outdir, options)
        except (ValueError, TypeError, OSError) as err:
            self._not_started(str(err))
            return
        address = self.scheduler.value.strip()
        if address:  # the same batch, planned again on the cluster once connected
            run.close()
            run = on_scheduler(address, self.connect_timeout, items, outdir, options)
        self._save_choices()
        self._results, self._total, self._outdir = [], len(items), outdir
        self._started = time.perf_counter()
        self.last_summary = None
        self.summary.visible = False
        self.progress.value = 0
        self.status.value = (f"Connecting to the Dask scheduler at {address}..." if address
                             else f"Starting {len(items)} image(s)...")
        handlers = Handlers(event=self._on_event, result=self._on_result,
                            levels=_cluster_levels if address else _levels,
                            cancelled=self._on_aborted, finished=lambda: self._set_running(False))
        where = f" on {address}" if address else ""
        self._runner.start(run, f"Batch denoise: {len(items)} image(s){where}", handlers)
        self._set_running(True)

    def _not_started(self, reason: str) -> None:
        from napari.utils.notifications import show_error

        self.status.value = f"Not started: {reason}"
        self.summary.visible = False  # the last batch's: not this attempt's
        show_error(f"Batch denoise: {reason}")

    def cancel(self, *_: object) -> None:
        """Stop the batch after the current fitting step; finished outputs are kept."""
        if self.running:
            self.status.value = "Cancelling..."
            self.cancel_button.enabled = False
            self._runner.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        # the run has taken its settings: while it lasts, changing them would only mislead
        for control in (self.source, self.output_folder, self.model, self.save_smooth, self.overwrite,
                        self.dtype, self.scheduler):
            control.enabled = not running
        self._on_source()
        self._on_model()

    def _on_event(self, event: BatchProgress) -> None:
        self.progress.value = round(event.fraction * _SCALE)
        self.status.value = event.describe()
        if event.result is not None:
            self._results.append(event.result)

    def _on_result(self, outcome: BatchSummary | Failed | NotConnected) -> None:
        if isinstance(outcome, NotConnected):
            self.progress.value = 0
            self._not_started(outcome.reason)
        elif isinstance(outcome, Failed):
            self._on_error(outcome.error)
        else:
            self._show(outcome)

    def _partial_summary(self, cancelled: bool) -> BatchSummary:
        return BatchSummary(tuple(self._results), self._total,
                            time.perf_counter() - self._started, cancelled=cancelled)

    def _on_aborted(self) -> None:
        self._show(self._partial_summary(cancelled=True))

    def _on_error(self, err: Exception) -> None:
        # run_batch reports each item's failure itself; this is a bug, shown rather than lost.
        summary = self._partial_summary(cancelled=True)
        self._show(summary, extra=f"Stopped by an unexpected error: {type(err).__name__}: {err}")

    def _show(self, summary: BatchSummary, extra: str = "") -> None:
        from napari.utils.notifications import show_info, show_warning

        self.last_summary = summary
        text = summary.report()
        if extra:
            text += "\n" + extra
        if summary.done:
            text += f"\nOutputs are in {_readable(self._outdir)}." if self._outdir else "\nOutputs are beside the inputs."
        self.summary.value = text
        self.summary.visible = True
        if not summary.cancelled:
            self.progress.value = _SCALE
        self.status.value = text.splitlines()[0]
        (show_info if summary.ok else show_warning)(text)

    # --- remembered choices ---------------------------------------------------------------------

    def _load_choices(self) -> None:
        saved = remembered.load(SETTINGS_NAME)
        for name in _REMEMBERED:
            if saved.get(name) not in (None, ""):
                try:
                    getattr(self, name).value = saved[name]
                except (ValueError, TypeError):
                    pass  # e.g. a preset that no longer exists
        if saved.get("steps") in (None, ""):  # saved before there were steps: the preset's
            self.steps.value = PRESETS[self.preset.value].steps

    def _save_choices(self) -> None:
        values = {name: getattr(self, name).value for name in _REMEMBERED}
        for name in _PATHS:
            path = chosen_path(getattr(self, name))
            values[name] = str(path) if path else ""
        remembered.save(SETTINGS_NAME, values)
