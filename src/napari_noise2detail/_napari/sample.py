"""The sample-data contribution: no download, the image ships inside the package."""

from __future__ import annotations

from ..sample import noisy_nuclei


def noisy_nuclei_layer() -> list[tuple]:
    return [(
        noisy_nuclei(),
        {"name": "noisy nuclei", "colormap": "gray"},
        "image",
    )]
