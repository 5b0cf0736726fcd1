"""Zarr and OME-Zarr: lazy reading, plane-by-plane OME-Zarr outputs, atomic stores."""

import numpy as np
import pytest

from napari_noise2detail import fit
from napari_noise2detail.io import ImageMeta
from napari_noise2detail.io.zarr import (
    chunks_for,
    colour_as_channel,
    colour_last,
    default_axes,
    is_zarr,
    ome_zarr_outputs,
    open_output,
    read_zarr,
    scale_from_meta,
)

from conftest import synthetic_cells


def _stack(planes=4, size=32):
    rng = np.random.default_rng(0)
    clean = np.stack([synthetic_cells(size, seed=i) for i in range(planes)])
    return (clean * 1000 + rng.normal(0, 60, clean.shape)).clip(0, 65535).astype(np.uint16)


def _write_input(path, data, meta=ImageMeta(axes="ZYX", pixel_size=(0.5, 0.25), z_spacing=2.0, unit="µm")):
    axes = default_axes(data.ndim, meta)
    with ome_zarr_outputs({"image": path}, data.shape, axes, scale_from_meta(axes, meta), data.dtype) as out:
        out["image"][...] = data
    return path


def test_ome_zarr_round_trip_keeps_axes_scale_and_unit(tmp_path):
    data = _stack()
    path = _write_input(tmp_path / "stack.ome.zarr", data)
    assert is_zarr(path) and not is_zarr(tmp_path)
    image = read_zarr(path)
    assert [a["name"] for a in image.axes] == ["z", "y", "x"]
    assert image.axes[1]["unit"] == "micrometer"
    assert image.scale == [2.0, 0.5, 0.25]
    assert image.meta == ImageMeta(axes="ZYX", pixel_size=(0.5, 0.25), z_spacing=2.0, unit="µm")
    assert not isinstance(image.data, np.ndarray)  # lazy
    import zarr

    attrs = zarr.open_group(str(path), mode="r").attrs
    assert attrs["ome"]["multiscales"][0]["name"] == "stack"  # what viewers name it, less .ome.zarr
    assert np.array_equal(np.asarray(image.data[2]), data[2])
    from napari_noise2detail.io import read_image

    whole, meta = read_image(path)  # read whole, as any image: no axis added, the same metadata
    assert np.array_equal(whole, data) and meta == image.meta


def test_a_time_lapse_keeps_its_frame_interval_as_the_t_scale(tmp_path):
    meta = ImageMeta(axes="TYX", pixel_size=(0.5, 0.5), unit="µm", frame_interval=30.0, time_unit="s")
    path = _write_input(tmp_path / "movie.ome.zarr", _stack(3), meta)
    image = read_zarr(path)
    assert image.scale == [30.0, 0.5, 0.5] and image.axes[0] == {"name": "t", "type": "time", "unit": "second"}
    assert image.meta == meta


def test_a_plain_zarr_array_is_read_too(tmp_path):
    import zarr

    data = _stack(3)
    zarr.save_array(str(tmp_path / "plain.zarr"), data)
    image = read_zarr(tmp_path / "plain.zarr")
    assert [a["name"] for a in image.axes] == ["z", "y", "x"]
    assert np.array_equal(np.asarray(image.data[1]), data[1])
    with pytest.raises(FileNotFoundError):
        read_zarr(tmp_path / "missing.zarr")


def test_results_stream_into_ome_zarr_plane_by_plane(tmp_path):
    data = _stack(5)
    source = read_zarr(_write_input(tmp_path / "in.ome.zarr", data))
    model = fit(source.data, planes=[0, 4], device="cpu", steps=10, width=8)
    paths = {"detail": tmp_path / "in_n2d_detail.ome.zarr", "smooth": tmp_path / "in_n2d_smooth.ome.zarr"}
    with ome_zarr_outputs(paths, data.shape, source.axes, source.scale) as out:
        assert not paths["detail"].exists()  # nothing under the final name until complete
        result = model.apply(source.data, out=out)
    assert result.detail is out["detail"]
    written = read_zarr(paths["detail"])
    assert written.scale == source.scale and written.axes == source.axes
    assert np.allclose(np.asarray(written.data), model.apply(data).detail)
    assert chunks_for(data.shape) == (1, 32, 32)


def test_a_failed_run_leaves_no_store_under_the_final_name(tmp_path):
    data = _stack(3)
    path = tmp_path / "out.ome.zarr"
    axes = default_axes(3)
    with pytest.raises(KeyboardInterrupt):
        with ome_zarr_outputs({"detail": path}, data.shape, axes, [1.0] * 3) as out:
            out["detail"][0] = data[0]
            raise KeyboardInterrupt  # Ctrl-C half-way
    assert list(tmp_path.iterdir()) == []


def test_spacings_stay_on_their_axes_when_ome_zarr_cannot_name_them():
    # ZCYX cannot be written in OME-Zarr's order: the axes get other names, the z spacing stays put
    meta = ImageMeta(axes="ZCYX", pixel_size=(0.5, 0.25), z_spacing=2.0)
    axes = default_axes(4, meta)
    assert [a["name"] for a in axes] == ["t", "z", "y", "x"]
    assert scale_from_meta(axes, meta) == [2.0, 1.0, 0.5, 0.25]
    rgb = ImageMeta(axes="TZYXS", z_spacing=3.0, frame_interval=10.0)  # colour: not one of the axes
    assert scale_from_meta(default_axes(4, rgb), rgb) == [10.0, 3.0, 1.0, 1.0]


def test_axes_in_an_order_ome_zarr_cannot_hold_are_stored_in_its_order():
    from napari_noise2detail.io.zarr import in_ome_order, ome_order

    assert ome_order(ImageMeta(axes="ZCYX"), 4) == (1, 0)  # stored C Z Y X
    assert ome_order(ImageMeta(axes="TZCYX"), 5) == (0, 2, 1)
    assert ome_order(ImageMeta(axes="ZTYXS"), 4) == (1, 0)  # colour aside
    for fine in ("CZYX", "TZYX", "ZYX", "YX", None, "QZYX", "ZYXC"):
        assert ome_order(ImageMeta(axes=fine), len(fine or "ZYX")) is None
    assert in_ome_order(ImageMeta(axes="TZCYX", z_spacing=2.0), (0, 2, 1)).axes == "TCZYX"


def test_a_reordered_store_is_written_and_read_in_the_image_order(tmp_path):
    data = np.arange(3 * 2 * 8 * 8, dtype=np.uint16).reshape(3, 2, 8, 8)  # Z C Y X
    axes = default_axes(4, ImageMeta(axes="CZYX"))
    with ome_zarr_outputs({"d": tmp_path / "d.ome.zarr"}, data.shape, axes, [1.0, 2.0, 0.5, 0.5], data.dtype,
                          order=(1, 0)) as out:
        assert out["d"].shape == data.shape
        for z in range(3):
            for c in range(2):
                out["d"][z, c, :, :] = data[z, c]
    stored = read_zarr(tmp_path / "d.ome.zarr")
    assert [a["name"] for a in stored.axes] == ["c", "z", "y", "x"] and stored.scale == [1.0, 2.0, 0.5, 0.5]
    assert np.array_equal(stored.data.compute(), data.transpose(1, 0, 2, 3))
    assert np.array_equal(np.asarray(open_output(tmp_path / "d.ome.zarr", order=(1, 0))), data)


def test_a_plain_zarr_has_no_axes_of_its_own(tmp_path):
    import zarr

    zarr.save_array(str(tmp_path / "plain.zarr"), np.zeros((2, 3, 4, 16, 16), np.uint16))
    image = read_zarr(tmp_path / "plain.zarr")
    assert [a["name"] for a in image.axes] == ["t", "c", "z", "y", "x"]  # for its outputs
    assert image.meta.axes is None  # a guess, not to be taken for channels


def test_axes_for_images_without_ome_names():
    assert [a["name"] for a in default_axes(4)] == ["t", "z", "y", "x"]
    assert [a["name"] for a in default_axes(3, ImageMeta(axes="TYX"))] == ["t", "y", "x"]
    assert [a["name"] for a in default_axes(3, ImageMeta(axes="YXZ"))] == ["z", "y", "x"]  # not OME order
    with pytest.raises(ValueError, match="has 6 axes, and OME-Zarr.*holds 2 to 5"):
        default_axes(6)


def test_rgb_is_stored_with_colour_as_the_ome_channel_axis_and_written_colour_last(tmp_path):
    import zarr

    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (2, 40, 36, 3), dtype=np.uint8)
    path = tmp_path / "rgb.ome.zarr"
    with ome_zarr_outputs({"rgb": path}, data.shape, default_axes(3), [2.0, 0.5, 0.5], np.uint8, rgb=True) as out:
        view = out["rgb"]
        assert view.shape == data.shape  # as the engine writes it: colour last
        view[0] = data[0]  # a whole plane
        view[1, :20, 10:] = data[1, :20, 10:]  # tiles, as huge planes are written
        view[1, 20:, :] = data[1, 20:, :]
        view[1, :20, :10] = data[1, :20, :10]
    image = read_zarr(path)  # read back by ome-zarr: a valid OME image, colour as its channel axis
    assert [a["name"] for a in image.axes] == ["c", "z", "y", "x"] and image.axes[0]["type"] == "channel"
    assert image.scale == [1.0, 2.0, 0.5, 0.5]
    assert np.array_equal(np.asarray(image.data), np.moveaxis(data, -1, 0))
    root = zarr.open_group(str(path), mode="r")
    assert root["0"].chunks == (3, 1, 40, 36)  # a plane's colours in one chunk
    # viewers of OME-Zarr (napari-ome-zarr, OMERO) show the channels as red, green and blue
    assert [(c["label"], c["color"]) for c in root.attrs["ome"]["omero"]["channels"]] == [
        ("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF")]
    assert np.array_equal(np.asarray(open_output(path, rgb=True)), data)  # as napari shows RGB
    # read as RGB for the batch: colour last again, the other axes and scale kept
    again = colour_last(image)
    assert [a["name"] for a in again.axes] == ["z", "y", "x"] and again.scale == [2.0, 0.5, 0.5]
    assert np.array_equal(np.asarray(again.data), data)


def test_colour_goes_after_time_and_an_rgb_image_with_channels_is_refused():
    stored, axes, scale, at = colour_as_channel((5, 4, 32, 32, 3), default_axes(4), [1.0, 2.0, 0.5, 0.5])
    assert stored == (5, 3, 4, 32, 32) and [a["name"] for a in axes] == list("tczyx") and at == 1
    assert scale == [1.0, 1.0, 2.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="channel axis as well"):
        colour_as_channel((2, 32, 32, 3), default_axes(3, ImageMeta(axes="CYX")), [1.0] * 3)


def test_huge_colour_planes_go_into_their_store_in_tiles(tmp_path, monkeypatch):
    from napari_noise2detail.engine import model as model_module
    from napari_noise2detail.io.zarr import open_output

    colour = np.stack([synthetic_cells(40, seed=c)[:, :36] for c in range(3)], axis=-1).astype(np.float32)
    model = fit(colour, rgb=True, device="cpu", steps=5, width=8)
    whole = model.apply(colour, rgb=True).detail
    monkeypatch.setattr(model_module, "PLANE_TILE", 16)  # a 40 x 36 plane in 9 tiles, each written on its own
    path = tmp_path / "tiles.ome.zarr"
    with ome_zarr_outputs({"detail": path}, colour.shape, default_axes(2), [1.0, 1.0], rgb=True) as out:
        model.apply(colour, rgb=True, out=out)
    assert [a["name"] for a in read_zarr(path).axes] == ["c", "y", "x"]
    assert np.allclose(np.asarray(open_output(path, rgb=True)), whole, atol=1e-5)


def test_ome_zarr_0_4_outputs_keep_what_0_5_ones_keep(tmp_path):
    data = _stack()
    axes = default_axes(3, ImageMeta(axes="ZYX", unit="µm"))
    named = [{"label": "DAPI"}]
    with ome_zarr_outputs({"image": tmp_path / "old.ome.zarr"}, data.shape, axes, [2.0, 0.5, 0.25], data.dtype,
                          translation=[1.0, 2.0, 3.0], channels=named, version="0.4") as out:
        out["image"][...] = data
    image = read_zarr(tmp_path / "old.ome.zarr")
    assert image.version == "0.4" and (tmp_path / "old.ome.zarr" / ".zattrs").is_file()
    assert image.scale == [2.0, 0.5, 0.25] and image.translation == [1.0, 2.0, 3.0]
    assert image.axes[1]["unit"] == "micrometer" and np.array_equal(np.asarray(image.data), data)
    with pytest.raises(ValueError, match="version '0.3' is not written"):
        with ome_zarr_outputs({"image": tmp_path / "x.ome.zarr"}, data.shape, axes, [1.0] * 3, version="0.3"):
            pass


def test_huge_planes_get_lower_levels_written_as_they_are(tmp_path, monkeypatch):
    """A plane larger than a screen is shown from the level that suits the zoom: each block
    written at full resolution is averaged 2x2 into the next level (here planes over 16 pixels)."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    from napari_noise2detail.io import pyramid

    monkeypatch.setattr(pyramid, "LEVEL_SIDE", 16)
    data = (np.random.default_rng(0).random((2, 40, 37)) * 1000).astype(np.uint16)
    axes = default_axes(3, ImageMeta(axes="ZYX", unit="µm"))
    path = tmp_path / "big.ome.zarr"
    with ome_zarr_outputs({"image": path}, data.shape, axes, [2.0, 0.5, 0.5], data.dtype,
                          translation=[0.0, 10.0, 20.0]) as out:
        out["image"][0] = data[0]  # a whole plane
        out["image"][1, :16, :] = data[1, :16]  # tiles, aligned
        out["image"][1, 16:, :20] = data[1, 16:, :20]
        out["image"][1, 16:, 20:] = data[1, 16:, 20:]
        out["image"][1, 5:9, 3:7] = data[1, 5:9, 3:7]  # and one that is not: read back
    group = zarr.open_group(str(path), mode="r")
    levels = [np.asarray(group[str(k)]) for k in range(3)]
    assert [level.shape for level in levels] == [(2, 40, 37), (2, 20, 19), (2, 10, 10)]
    assert np.array_equal(levels[0], data)
    padded = np.concatenate([data, data[..., -1:]], axis=-1).astype(float)  # an odd edge: over what it has
    half = np.round(padded.reshape(2, 20, 2, 19, 2).mean(axis=(2, 4))).astype(np.uint16)
    assert np.array_equal(levels[1], half)
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    assert datasets[1]["coordinateTransformations"] == [
        {"type": "scale", "scale": [2.0, 1.0, 1.0]}, {"type": "translation", "translation": [0.0, 10.25, 20.25]}]
    node = next(iter(Reader(parse_url(str(path)))()))
    assert len(node.data) == 3  # read as a multiscale image
    assert read_zarr(path).data.shape == (2, 40, 37)  # the full resolution is what is read back


def test_the_levels_of_a_colour_image_keep_their_colours(tmp_path, monkeypatch):
    import zarr

    from napari_noise2detail.io import pyramid

    monkeypatch.setattr(pyramid, "LEVEL_SIDE", 16)
    data = np.random.default_rng(1).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    with ome_zarr_outputs({"image": tmp_path / "rgb.ome.zarr"}, data.shape, default_axes(3), [1.0] * 3, data.dtype,
                          rgb=True) as out:
        for plane in range(2):
            out["image"][plane] = data[plane]
    coarse = np.asarray(zarr.open_group(str(tmp_path / "rgb.ome.zarr"), mode="r")["1"])  # c, z, y, x
    expected = np.round(data.astype(float).reshape(2, 16, 2, 16, 2, 3).mean(axis=(2, 4))).astype(np.uint8)
    assert np.array_equal(coarse, expected.transpose(3, 0, 1, 2))


def test_a_multiscale_output_takes_blocks_and_broadcasts_and_refuses_single_rows(tmp_path, monkeypatch):
    import zarr

    from napari_noise2detail.io import pyramid

    monkeypatch.setattr(pyramid, "LEVEL_SIDE", 8)
    with ome_zarr_outputs({"image": tmp_path / "b.ome.zarr"}, (16, 16), default_axes(2), [1.0] * 2) as out:
        out["image"][:, :] = np.arange(16, dtype=np.float32)[None]  # one row, broadcast over the plane
        with pytest.raises(IndexError, match="a block of rows and columns"):
            out["image"][3] = np.zeros(16, np.float32)
    coarse = np.asarray(zarr.open_group(str(tmp_path / "b.ome.zarr"), mode="r")["1"])
    assert np.array_equal(coarse, np.tile(np.arange(0.5, 16, 2, dtype=np.float32), (8, 1)))


def test_planes_of_a_screen_or_less_have_one_level(tmp_path):
    data = np.zeros((2, 64, 64), np.float32)
    with ome_zarr_outputs({"image": tmp_path / "small.ome.zarr"}, data.shape, default_axes(3), [1.0] * 3) as out:
        out["image"][...] = data
    assert sorted(p.name for p in (tmp_path / "small.ome.zarr").iterdir() if not p.name.startswith(".")) == [
        "0", "zarr.json"]


def test_a_store_whose_ome_metadata_is_not_valid_is_refused_not_read_as_a_plain_array(tmp_path):
    """Axes out of the order OME-Zarr requires (z before c): ome-zarr rejects the store, and
    read as a plain array its channels would be fitted together, its scale lost."""
    import zarr

    from napari_noise2detail.io.zarr import read_zarr

    store = zarr.open_group(str(tmp_path / "zc.ome.zarr"), mode="w", zarr_format=2)
    store.create_array("0", shape=(3, 2, 16, 16), dtype="uint16")
    axes = [{"name": "z", "type": "space"}, {"name": "c", "type": "channel"},
            {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    store.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 0.5, 0.5]}]}]}]
    with pytest.raises(ValueError, match=r"OME-Zarr metadata is not valid \('space' axes must come after"):
        read_zarr(tmp_path / "zc.ome.zarr")
    assert read_zarr(tmp_path / "zc.ome.zarr" / "0").data.shape == (3, 2, 16, 16)  # the way out it names


def test_the_multiscales_own_scale_and_translation_apply_after_the_levels(tmp_path):
    """OME-Zarr lets a multiscale carry transforms of its own, after each level's: read
    together (they were dropped, and the outputs lost the input's scale and position)."""
    import zarr
    from ome_zarr.writer import write_image as write_ome

    group = zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="w")
    write_ome(np.zeros((2, 8, 8), np.uint16), group, axes="zyx", scale_factors=())
    ome = dict(group.attrs["ome"])
    ome["multiscales"][0]["datasets"][0]["coordinateTransformations"] = [
        {"type": "scale", "scale": [1.0, 2.0, 2.0]}, {"type": "translation", "translation": [0.0, 1.0, 0.0]}]
    ome["multiscales"][0]["coordinateTransformations"] = [
        {"type": "scale", "scale": [2.0, 0.25, 0.25]}, {"type": "translation", "translation": [1.0, 2.0, 3.0]}]
    group.attrs["ome"] = ome
    image = read_zarr(tmp_path / "a.ome.zarr")
    assert image.scale == [2.0, 0.5, 0.5]
    assert image.translation == [1.0, 2.0 + 0.25, 3.0]  # the level's shift scaled, then the multiscale's
