"""Screenshots of the napari docks for docs/, from the current code, with real runs.

Runs a real napari window (under Xvfb on a headless machine):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py [IMAGE.tif]

Without IMAGE, the built-in noisy nuclei sample is used. ``--steps N`` (default 400) keeps the
runs short, so that the times the docks show are those of a few seconds' work even on a busy
machine; the dock shows the steps used. ``--only activity batch`` remakes only those. Writes, in
docs/images/:

- napari_widget.png: the Noise2Detail dock after a run (status, noise, loss plot) with the
  source, smooth and detail layers;
- napari_compare.png: Compare stages: the three side by side, labelled;
- napari_preview.png: a preview of a drawn rectangle;
- napari_activity.png: the Activity panel during a run, with its Cancel button;
- napari_batch.png: the Batch denoise... dock after a batch of two files.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
import tifffile
from qtpy.QtWidgets import QApplication

from napari_noise2detail.sample import noisy_nuclei

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
SIZE = (1400, 860)
SHOTS = ["widget", "compare", "preview", "activity", "batch"]


def wait(condition, seconds: float = 900) -> None:
    """Turn the event loop (the worker reports through Qt signals) until ``condition()``."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise SystemExit("timed out")
        QApplication.processEvents()
        time.sleep(0.02)


def settle(viewer, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def shoot(viewer, name: str) -> None:
    settle(viewer)
    path = IMAGES / name
    viewer.window.screenshot(str(path), canvas_only=False, flash=False)  # a flash greys the next shot
    print(f"wrote {path}")


def open_viewer(data: np.ndarray, name: str):
    viewer = napari.Viewer(title="napari-noise2detail")
    viewer.window.resize(*SIZE)
    layer = viewer.add_image(data, name=name, colormap="gray")
    return viewer, layer


def run(widget, button) -> None:
    button.native.click()
    wait(lambda: not widget.running)
    if widget.status.value.startswith(("Noise2Detail", "Cancelled")):
        raise SystemExit(widget.status.value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="a TIFF (default: the built-in noisy nuclei)")
    parser.add_argument("--steps", type=int, default=400, help="fitting steps of every run")
    parser.add_argument("--only", nargs="+", choices=SHOTS, default=SHOTS, help="these screenshots only")
    args = parser.parse_args()
    shots = set(args.only)
    # The docks remember their settings: keep the screenshots' (50 000 steps...) to themselves.
    scratch = Path(tempfile.mkdtemp(prefix="n2d-screenshots-"))
    os.environ["NAPARI_NOISE2DETAIL_CONFIG_DIR"] = str(scratch / "config")
    os.environ["HOME"] = str(scratch)  # the batch's folders then read as a user's: ~/imaging/...
    if args.image:
        data, name = tifffile.imread(args.image), Path(args.image).stem
    else:
        data, name = noisy_nuclei(), "noisy nuclei"
    IMAGES.mkdir(parents=True, exist_ok=True)
    limits = np.percentile(data, (0.5, 99.8)).tolist()

    if shots - {"batch"}:
        dock_shots(data, name, limits, shots, args.steps)
    if "batch" in shots:
        batch_shot(data, name, scratch, args.steps)


def dock_shots(data: np.ndarray, name: str, limits: list, shots: set[str], steps: int) -> None:
    # The dock after a run, then Compare stages.
    viewer, source = open_viewer(data, name)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-noise2detail", "Noise2Detail")
    widget.steps.value = steps
    if shots & {"widget", "compare"}:
        run(widget, widget.denoise_button)
        for layer in viewer.layers:  # the same contrast for all, from the noisy image
            layer.contrast_limits = limits
        viewer.reset_view()
        if "widget" in shots:
            shoot(viewer, "napari_widget.png")
        if "compare" in shots:
            widget.compare_button.native.click()
            shoot(viewer, "napari_compare.png")
            widget.compare_button.native.click()
        for layer in list(viewer.layers)[1:]:
            viewer.layers.remove(layer)
    if "preview" in shots:
        preview_shot(viewer, widget, source, name, limits)
    if "activity" in shots:
        activity_shot(viewer, widget)
    viewer.close()


def preview_shot(viewer, widget, source, name: str, limits: list) -> None:
    viewer.add_shapes([[[60, 70], [160, 200]]], shape_type="rectangle", name="region",
                      edge_color="yellow", face_color="transparent", edge_width=2)
    viewer.layers.selection.active = source
    widget.layer.value = source
    run(widget, widget.preview_button)
    viewer.layers[f"{name} [N2D preview]"].contrast_limits = limits
    viewer.layers.move(viewer.layers.index("region"), len(viewer.layers))
    shoot(viewer, "napari_preview.png")
    viewer.layers.remove("region")
    viewer.layers.remove(f"{name} [N2D preview]")


def activity_shot(viewer, widget) -> None:
    """The Activity panel during a run, then cancelled."""
    widget.steps.value = 50_000
    widget.denoise_button.native.click()
    wait(lambda: "stage 1/3" in widget.status.value)
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # the last run's notification would hide the panel's lower bar
    dialog = viewer.window._qt_window._activity_dialog  # napari opens it from "activity"
    dialog.show()
    dialog.move_to_bottom_right()
    settle(viewer, 2.0)
    shoot(viewer, "napari_activity.png")
    widget.cancel()
    wait(lambda: not widget.running)
    dialog.hide()


def batch_shot(data: np.ndarray, name: str, scratch: Path, steps: int) -> None:
    """The batch dock, after a batch of two files (halves of the image)."""
    folder = scratch / "imaging" / "plate1"  # a user's folders, not a scratch name, show in the fields
    folder.mkdir(parents=True)
    half = data.shape[-1] // 2
    tifffile.imwrite(folder / "well_A1.tif", data[..., :half])
    tifffile.imwrite(folder / "well_A2.tif", data[..., half:])
    viewer, _source = open_viewer(data, name)
    _dock, batch = viewer.window.add_plugin_dock_widget("napari-noise2detail", "Batch denoise...")
    batch.steps.value = steps
    batch.source.value = "folder"
    batch.input_folder.value = folder
    batch.output_folder.value = scratch / "imaging" / "denoised"
    batch.run_button.native.click()
    wait(lambda: not batch.running)
    if batch.last_summary is None or not batch.last_summary.ok:
        raise SystemExit(batch.status.value)
    shoot(viewer, "napari_batch.png")
    viewer.close()


if __name__ == "__main__":
    main()
