"""The pieces that keep the docks readable, on their own: whole lines with the last elided, and
compare-mode labels that fit their tiles."""

from napari_noise2detail._napari.compare import LARGEST, SMALLEST, label_size
from napari_noise2detail._napari.steady import wrap_lines


def test_text_is_broken_into_whole_lines_and_what_does_not_fit_ends_in_an_ellipsis():
    width = len  # one unit per character
    assert wrap_lines("Done in 12 s", 20, 2, width) == ["Done in 12 s"]
    assert wrap_lines("aaa bbb ccc ddd", 7, 2, width) == ["aaa bbb", "ccc ddd"]
    lines = wrap_lines("the noise grows with the signal and the camera adds an offset", 16, 2, width)
    assert len(lines) == 2 and lines[-1].endswith("\u2026") and all(len(line) <= 16 for line in lines)
    # A path has no spaces: it is cut inside, never shown wider than the label.
    lines = wrap_lines("/data/plate1/denoised/well_B3_field_12_n2d_detail.ome.zarr", 20, 2, width)
    assert lines[0] == "/data/plate1/denoise" and lines[1].endswith("\u2026") and len(lines[1]) <= 20
    assert wrap_lines("", 10, 2, width) == []


def test_compare_labels_shrink_to_fit_their_tile_within_readable_sizes():
    names = ["noisy nuclei", "noisy nuclei [N2D smooth]", "noisy nuclei [N2D detail]"]
    assert label_size(names, 800) == LARGEST
    size = label_size(names, 227)  # three tiles across a 680-pixel canvas
    assert SMALLEST <= size < LARGEST
    assert label_size(["x" * 200], 100) == SMALLEST
