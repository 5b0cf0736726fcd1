"""Screenshot of napari with the Noise2Detail widget and the source, smooth and detail layers.

Runs a real napari window (under Xvfb on a headless machine):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py [IMAGE.tif]

Without IMAGE, the built-in noisy nuclei sample is used. Writes docs/images/napari_widget.png.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
import tifffile
from qtpy.QtWidgets import QApplication

from napari_noise2detail._napari.widget import DenoiseWidget
from napari_noise2detail.sample import noisy_nuclei

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "napari_widget.png"


def main() -> None:
    if len(sys.argv) > 1:
        data, name = tifffile.imread(sys.argv[1]), Path(sys.argv[1]).stem
    else:
        data, name = noisy_nuclei(), "noisy nuclei"
    viewer = napari.Viewer(title="napari-noise2detail")
    viewer.window.resize(1500, 900)
    viewer.add_image(data, name=name, colormap="gray")
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Noise2Detail", area="right")
    if widget.start() is None:
        raise SystemExit(widget.status.value)
    while widget.running:  # a real event loop: the worker reports through Qt signals
        QApplication.processEvents()
        time.sleep(0.02)
    if not widget.status.value.startswith("Done"):
        raise SystemExit(widget.status.value)
    viewer.grid.enabled = True
    viewer.grid.shape = (1, 3)
    for layer in viewer.layers:  # the same contrast for all three, from the noisy image
        layer.contrast_limits = np.percentile(data, (0.5, 99.8)).tolist()
    viewer.reset_view()
    QApplication.processEvents()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    viewer.window.screenshot(str(OUT), canvas_only=False)
    print(f"wrote {OUT}")
    viewer.close()


if __name__ == "__main__":
    main()
