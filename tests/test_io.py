import numpy as np
import pytest
import tifffile

from napari_noise2detail.figures import side_by_side
from napari_noise2detail.io import write_atomic, write_tiff


def test_write_tiff_round_trips_and_leaves_no_temporary(tmp_path):
    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    path = write_tiff(tmp_path / "sub" / "out.tif", data)
    assert np.array_equal(tifffile.imread(path), data)
    assert [p.name for p in path.parent.iterdir()] == ["out.tif"]


def test_interrupted_write_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "out.tif"
    target.write_bytes(b"old")

    def crash(temp):
        temp.write_bytes(b"half a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, crash)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_a_complete_write_clears_what_killed_writes_of_it_left(tmp_path):
    from napari_noise2detail.io.atomic import atomic_directory

    (tmp_path / ".out.tif.0123456789ab.partial").write_bytes(b"half")  # a run killed with -9
    (tmp_path / ".other.tif.0123456789ab.partial").write_bytes(b"half")  # another output's
    write_atomic(tmp_path / "out.tif", lambda temp: temp.write_bytes(b"whole"))
    (tmp_path / ".a.zarr.0123456789ab.partial" / "0").mkdir(parents=True)
    with atomic_directory(tmp_path / "a.zarr") as temp:
        temp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tif.0123456789ab.partial", "a.zarr", "out.tif"]


def test_a_failed_write_leaves_no_folder_it_made(tmp_path):
    from napari_noise2detail.io import atomic_directory

    def crash(temp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "new" / "deeper" / "out.tif", crash)
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "new" / "out.ome.zarr") as temp:
        temp.mkdir()
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []  # a batch cancelled at its first image leaves no empty folder


def test_side_by_side_shares_contrast_limits():
    a = np.linspace(0, 1, 100).reshape(10, 10)
    picture = side_by_side([a, a * 0 + 0.5, a], gap=2)
    assert picture.shape == (10, 34) and picture.dtype == np.uint8
    assert (picture[:, 10:12] == 255).all()  # the white gap
    assert np.array_equal(picture[:, :10], picture[:, 24:])


@pytest.mark.parametrize("shape, axes", [((3, 16, 16), "ZYX"), ((2, 3, 16, 16), "TZYX"), ((3, 16, 16, 3), "ZYXS")])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_a_stack_of_unknown_axes_is_written_as_slices_not_channels(tmp_path, shape, axes, dtype):
    # tifffile's own guess made a stack of 3 planes ImageJ channels, and 2 x 3 planes Z x C;
    # in a dtype ImageJ cannot hold (OME-TIFF) it named them Q
    from napari_noise2detail.io import ImageMeta, read_image, write_image

    write_image(tmp_path / "s.tif", np.zeros(shape, dtype), ImageMeta(), rgb=shape[-1] == 3)
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        assert tif.series[0].axes == axes and (tif.is_imagej if dtype == np.uint8 else tif.is_ome)
    assert read_image(tmp_path / "s.tif")[1].axes == axes


def test_axes_named_in_words_are_not_guessed_at():
    from napari_noise2detail.io import meta_from_scale

    # napari's default labels: a plain stack's axes (t z y x), their spacings kept
    unnamed = meta_from_scale([2.0, 3.0, 0.5, 0.5], ["s", "µm", "µm", "µm"], ["-4", "-3", "-2", "-1"])
    assert (unnamed.frame_interval, unnamed.time_unit, unnamed.z_spacing) == (2.0, "s", 3.0)
    # a "c" typed beside one slider: the other axes named as a plain stack's, z nearest to y and x
    typed = meta_from_scale([3.0, 1.0, 0.5, 0.5], ["µm"] * 4, ["-4", "c", "-2", "-1"])
    assert typed.axes == "ZCYX" and typed.z_spacing == 3.0
    # a time step labelled in words is not taken for a z spacing
    worded = meta_from_scale([2.0, 10.0, 0.5, 0.5], ["µm", "s", "µm", "µm"], ["z", "time", "y", "x"])
    assert worded.z_spacing is None and worded.frame_interval is None and worded.pixel_size == (0.5, 0.5)


def test_axes_imagej_cannot_order_are_written_as_ome_tiff_with_their_calibration(tmp_path):
    from napari_noise2detail.io import ImageMeta, read_image, write_image

    meta = ImageMeta(axes="CZYX", pixel_size=(0.2, 0.3), z_spacing=0.7, unit="µm")
    write_image(tmp_path / "c.tif", np.zeros((2, 3, 16, 16), np.uint16), meta)
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        assert tif.is_ome  # Fiji reads it through Bio-Formats with its channels and spacing
    data, again = read_image(tmp_path / "c.tif")
    assert data.shape == (2, 3, 16, 16) and again == meta
    # a pixel size or z spacing in a unit OME cannot name stays in the plain description, not miscalled µm
    for odd in (ImageMeta(axes="CZYX", pixel_size=(2, 2)), ImageMeta(axes="CZYX", z_spacing=4.0)):
        write_image(tmp_path / "p.tif", np.zeros((2, 3, 16, 16), np.uint16), odd)
        with tifffile.TiffFile(tmp_path / "p.tif") as tif:
            assert not tif.is_ome
        assert read_image(tmp_path / "p.tif")[1] == odd
    # OME-TIFF carries the resolution tags too, for readers that know no OME
    write_image(tmp_path / "f.tif", np.zeros((8, 8)), ImageMeta(axes="YX", pixel_size=(0.5, 0.5), unit="µm"))
    with tifffile.TiffFile(tmp_path / "f.tif") as tif:
        assert tif.is_ome and tif.pages[0].resolution == (20000.0, 20000.0)


def test_channel_names_of_an_ome_tiff_are_kept(tmp_path):
    from napari_noise2detail.io import ImageMeta, read_image, write_image

    tifffile.imwrite(tmp_path / "in.ome.tif", np.zeros((3, 2, 16, 16), np.uint16), ome=True,
                     metadata={"axes": "ZCYX", "Channel": {"Name": ["DAPI", "GFP"]}})
    data, meta = read_image(tmp_path / "in.ome.tif")
    assert meta.axes == "ZCYX" and meta.channel_names == ("DAPI", "GFP")
    # ZCYX uint16 is ImageJ's order, but ImageJ's description cannot name channels: OME it is
    write_image(tmp_path / "out.tif", data, meta)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.is_ome
    assert read_image(tmp_path / "out.tif")[1] == meta
    # names that do not match the channel axis are not written (nor read back)
    write_image(tmp_path / "odd.tif", data, ImageMeta(axes="ZCYX", channel_names=("DAPI",)))
    with tifffile.TiffFile(tmp_path / "odd.tif") as tif:
        assert tif.is_imagej and not tif.is_ome
    assert read_image(tmp_path / "odd.tif")[1].channel_names is None


def test_an_ome_tiff_of_several_series_is_refused_not_cut_to_the_first(tmp_path):
    from napari_noise2detail.io import read_image

    with tifffile.TiffWriter(tmp_path / "two.ome.tif", ome=True) as tif:
        for name in ("position 1", "position 2"):
            tif.write(np.zeros((3, 16, 16), np.uint16), metadata={"axes": "ZYX", "Name": name})
    with pytest.raises(ValueError, match="holds 2 images .series.*bioformats2raw"):
        read_image(tmp_path / "two.ome.tif")


def test_how_fiji_shows_a_hyperstack_is_kept(tmp_path):
    from dataclasses import replace

    from napari_noise2detail.io import read_image, write_image

    luts = np.zeros((2, 3, 256), np.uint8)
    luts[0, 2], luts[1, 1] = np.arange(256), np.arange(256)  # blue, green
    labels = [f"{c} z{z}" for z in range(3) for c in ("DAPI", "GFP")]
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((3, 2, 16, 16), np.uint16), imagej=True, metadata={
        "axes": "ZCYX", "mode": "composite", "LUTs": list(luts), "Ranges": (100, 2000, 50, 900), "Labels": labels})
    data, meta = read_image(tmp_path / "in.tif")
    write_image(tmp_path / "out.tif", data.astype(np.float32), meta)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        kept = tif.imagej_metadata
    assert kept["mode"] == "composite" and kept["Labels"] == labels and kept["Ranges"] == (100, 2000, 50, 900)
    assert np.array_equal(np.asarray(kept["LUTs"]), luts)
    assert read_image(tmp_path / "out.tif")[1] == meta
    # settings that do not fit the output (a LUT per channel, a label per plane) are left out
    write_image(tmp_path / "one.tif", data[:, 0], replace(meta, axes="ZYX"))
    with tifffile.TiffFile(tmp_path / "one.tif") as tif:
        assert "LUTs" not in tif.imagej_metadata and "Labels" not in tif.imagej_metadata


def test_a_tiff_header_with_no_page_after_it_is_refused_in_words(tmp_path):
    from napari_noise2detail.io import read_image

    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")  # its first page lies nowhere
    with pytest.raises(ValueError, match=r"the TIFF holds no image \(a damaged or truncated file\?\)"):
        read_image(tmp_path / "broken.tif")  # it was "integer modulo by zero"


def test_a_truncated_tiff_is_refused_however_tifffile_logs(tmp_path):
    import logging

    from napari_noise2detail.io import read_image

    tifffile.imwrite(tmp_path / "cut.ome.tif", np.ones((4, 32, 32), np.uint16), ome=True, metadata={"axes": "ZYX"})
    (tmp_path / "cut.ome.tif").write_bytes((tmp_path / "cut.ome.tif").read_bytes()[:5000])
    log = logging.getLogger("tifffile")
    before = log.level
    try:
        log.setLevel(logging.CRITICAL)  # common ways to quieten tifffile, or all logging
        logging.disable(logging.CRITICAL)
        with pytest.raises(ValueError, match="truncated or damaged: a page lies past its end"):
            read_image(tmp_path / "cut.ome.tif")
        assert log.level == logging.CRITICAL and log.propagate  # left as it was set
    finally:
        log.setLevel(before)
        logging.disable(logging.NOTSET)


def test_a_z_spacing_without_a_pixel_size_is_kept(tmp_path):
    """ImageJ writes a stack's spacing even when its pixels have no size (resolution 1, no unit)."""
    from napari_noise2detail.io import read_image, write_image

    tifffile.imwrite(tmp_path / "z.tif", np.zeros((3, 8, 8), np.uint16), imagej=True,
                     metadata={"axes": "ZYX", "spacing": 0.29})
    data, meta = read_image(tmp_path / "z.tif")
    assert meta.z_spacing == pytest.approx(0.29) and meta.pixel_size is None and meta.unit is None
    _, back = read_image(write_image(tmp_path / "out.tif", data.astype(np.float32), meta))
    assert back.z_spacing == pytest.approx(0.29)


@pytest.mark.parametrize("dtype, axes, rgb", [(np.uint8, "ZYXS", True), (np.uint16, "ZCYX", False)])
def test_an_rgb_tiff_of_one_plane_per_colour_is_colour_when_8_bit_else_channels(tmp_path, dtype, axes, rgb):
    from napari_noise2detail.io import read_image

    planes = np.arange(2 * 3 * 8 * 8).astype(dtype).reshape(2, 3, 8, 8)
    tifffile.imwrite(tmp_path / "p.tif", planes, photometric="rgb", planarconfig="separate")
    data, meta = read_image(tmp_path / "p.tif")
    assert meta.axes == axes and meta.rgb == rgb
    np.testing.assert_array_equal(data, np.moveaxis(planes, 1, -1) if rgb else planes)


@pytest.mark.parametrize("shape, axes", [((8, 8, 8), "ZYX"), ((2, 3, 8, 8), "TZYX"), ((2, 2, 2, 8, 8), "QQQYX")])
def test_axes_tifffile_could_not_name_are_named_as_a_plain_stack(tmp_path, shape, axes):
    from napari_noise2detail.io import read_image

    tifffile.imwrite(tmp_path / "q.tif", np.zeros(shape, np.float32), photometric="minisblack")
    with tifffile.TiffFile(tmp_path / "q.tif") as tif:
        assert set(tif.series[0].axes[:-2]) == {"Q"}  # the file does not say
    assert read_image(tmp_path / "q.tif")[1].axes == axes  # beyond Z and T: left unnamed
