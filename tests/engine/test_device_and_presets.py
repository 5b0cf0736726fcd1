import pytest
import torch

from napari_noise2detail.engine.device import describe_device, resolve_device
from napari_noise2detail.engine.presets import PRESETS, Settings, resolve_settings


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


def test_describe_cpu(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert describe_device("cpu") == "CPU, 8 threads"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert describe_device("cpu") == "CPU, 1 thread"


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
