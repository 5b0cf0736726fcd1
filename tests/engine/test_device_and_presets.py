import pytest
import torch

from napari_noise2detail.engine.device import resolve_device
from napari_noise2detail.engine.presets import PRESET_NOTES, PRESETS, Settings, resolve_settings


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("napari_noise2detail.engine.device._mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr("napari_noise2detail.engine.device._mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_explicit_devices(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="only 1 CUDA"):
        resolve_device("cuda:1")
    monkeypatch.setattr("napari_noise2detail.engine.device._mps_available", lambda: False)
    with pytest.raises(ValueError, match="MPS"):
        resolve_device("mps")
    for bad in ("tpu", "gpu please", "meta"):
        with pytest.raises(ValueError):
            resolve_device(bad)


def test_presets():
    assert PRESETS["paper"].steps == 2000 and PRESETS["paper"].width == 48
    assert PRESETS["paper"].lr == 1e-3 and PRESETS["paper"].schedule == "step"
    assert PRESETS["paper"].stage_steps == (2000, 2000) and PRESETS["paper"].crop is None
    assert resolve_settings("paper", steps=10).stage_steps == (10, 10)
    fast = PRESETS["fast"]
    half = resolve_settings("fast", steps=fast.steps // 2).stage_steps
    assert half == (fast.steps // 2, round(fast.stage_steps[1] / 2))  # stage 3 in proportion
    assert resolve_settings("fast", steps=10, detail_steps=7).stage_steps == (10, 7)
    assert resolve_settings("fast", steps=None) == PRESETS["fast"]
    # None for a setting that can be None sets it: tile=None applies the networks to whole images
    assert resolve_settings("fast", tile=None).tile is None and PRESETS["fast"].tile is not None
    with pytest.raises(ValueError, match="at most 256"):  # drawn as bytes
        resolve_settings("fast", bank_members=300, bank_window=21)
    # quality: fast, then filtered in groups matched on its result and freed of clipping's
    # bias; paper and fast are not
    assert PRESETS["quality"] == resolve_settings("fast", wiener=True, declip=True)
    assert not any(PRESETS[p].wiener or PRESETS[p].declip for p in ("paper", "fast"))
    assert list(PRESET_NOTES) and set(PRESET_NOTES) == set(PRESETS)  # every preset explained
    assert all(PRESETS[p].pairs == PRESETS[p].detail_pairs == "diagonal" for p in ("paper", "fast"))
    assert resolve_settings(Settings(steps=3)).steps == 3
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_settings("slow")
    with pytest.raises(TypeError, match="stepz"):
        resolve_settings("fast", stepz=3)
    assert Settings(steps=10, detail_steps=4).stage_steps == (10, 4)
    for bad in (dict(steps=0), dict(detail_steps=0), dict(crop=7), dict(batch=0), dict(detail_crop=9), dict(detail_batch=0),
                dict(schedule="linear"), dict(width=0), dict(lr=0), dict(tile=4)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Settings(**bad)


def test_tiles_grow_with_free_gpu_memory(monkeypatch):
    from napari_noise2detail.engine.device import inference_tile, tile_for_memory

    assert tile_for_memory(0, 48, 1024) == 1024  # never below the setting
    assert tile_for_memory(80 * 2**30, 48, 1024) >= 8192  # a data-centre GPU takes 4096^2 at once
    small = tile_for_memory(2 * 2**30, 48, 256)
    assert 256 <= small < 4096 and small % 256 == 0
    # half the free memory holds the activations of a tile
    assert small**2 * 4 * (3 * 48 + 8) <= 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (40 * 2**30, 80 * 2**30))
    assert inference_tile(1024, torch.device("cuda"), 48) == tile_for_memory(40 * 2**30, 48, 1024)
    assert inference_tile(None, torch.device("cuda"), 48) is None  # whole images stay whole


def test_cpu_tiles_keep_a_hidden_activation_in_the_caches():
    from napari_noise2detail.engine.device import CPU_ACTIVATION_BYTES, inference_tile

    cpu = torch.device("cpu")
    for precision, size in (("float32", 4), ("bfloat16", 2)):
        tile = inference_tile(1024, cpu, 48, precision)
        assert tile % 16 == 0 and tile**2 * 48 * size <= CPU_ACTIVATION_BYTES < (tile + 16) ** 2 * 48 * size
    assert inference_tile(1024, cpu, 48, "bfloat16") > inference_tile(1024, cpu, 48, "float32")
    assert inference_tile(64, cpu, 48) == 64  # a smaller setting is kept
    assert inference_tile(None, cpu, 48) is None  # whole images stay whole
    assert inference_tile(1024, torch.device("mps"), 48) == 1024


def test_auto_precision_is_bfloat16_only_where_native(monkeypatch):
    from napari_noise2detail.engine import device as device_module
    from napari_noise2detail.engine.device import resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == "float32"
    assert resolve_precision("bfloat16", cpu) == "bfloat16"
    monkeypatch.setattr(device_module, "native_bfloat16", lambda device: False)
    assert resolve_precision("auto", cpu) == "float32"
    monkeypatch.setattr(device_module, "native_bfloat16", lambda device: True)
    assert resolve_precision("auto", cpu) == "bfloat16"


def test_paper_is_float32_and_fast_uses_native_bfloat16():
    assert PRESETS["paper"].precision == PRESETS["paper"].apply_precision == "float32"
    assert PRESETS["fast"].precision == PRESETS["fast"].apply_precision == "auto"
    with pytest.raises(ValueError, match="precision"):
        Settings(precision="float16")
    with pytest.raises(ValueError, match="apply_precision"):
        Settings(apply_precision="half")


def test_networks_are_applied_in_bfloat16_only_where_asked_and_native(monkeypatch):
    from napari_noise2detail.engine import device as device_module
    from napari_noise2detail.engine.network import make_network
    from napari_noise2detail.engine.stages import applied

    net, cpu = make_network(1, 8), torch.device("cpu")
    assert applied(net, Settings(apply_precision="float32"), cpu) is net
    assert applied(net, Settings(apply_precision="bfloat16"), cpu) is not net
    monkeypatch.setattr(device_module, "native_bfloat16", lambda device: False)
    assert applied(net, Settings(apply_precision="auto"), cpu) is net
    monkeypatch.setattr(device_module, "native_bfloat16", lambda device: True)
    copy = applied(net, Settings(apply_precision="auto"), cpu)
    assert copy is not net and all(p.dtype == torch.float32 for p in net.parameters())  # the model is untouched
