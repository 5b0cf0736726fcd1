"""Prototype N2D runner for the fast-preset search (issue 5). Reuses engine functions.
Every python process: torch.set_num_threads(1)."""
from __future__ import annotations
import json, math, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
sys.path.insert(0, "/work/main/benchmarks")
from common import add_noise, centre_crop, psnr  # noqa
from skimage import data as skdata
import tifffile
from napari_noise2detail.engine.stages import crop_sampler, denoise_residual, refine
from napari_noise2detail.engine.network import make_network, apply_tiled
from napari_noise2detail.engine.losses import pair_loss

LOG = "/work/main/benchmarks/explore/results.jsonl"


def clean(name: str, size: int = 256) -> np.ndarray:
    if name in ("camera", "moon", "cell"):
        img = getattr(skdata, name)()
        return centre_crop(img, size).astype(np.float64) / 255.0
    if name == "fluo":
        a = tifffile.imread("/work/shared/data/fluo_nuclei_dsb2018_2d.tif").astype(np.float64)
        if size == 256:
            c = a[256:512, 0:256]
        else:
            c = centre_crop(a, size)
        return c / c.max()
    if name == "em":
        a = tifffile.imread("/work/shared/data/em_sem_rbc_membrane_skeleton_2d.tif").astype(np.float64)
        return centre_crop(a, size) / 255.0
    raise ValueError(name)


def lr_lambda(kind: str, steps: int, warm: float = 0.1):
    if kind == "step":
        h = max(steps // 2, 1)
        return lambda s: 0.5 ** (s // h)
    if kind == "cosine":
        return lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    if kind == "onecycle":
        w = max(int(warm * steps), 1)
        return lambda s: (s + 1) / w if s < w else 0.5 * (1 + math.cos(math.pi * (s - w) / max(steps - w, 1)))
    if kind == "linear":
        return lambda s: max(1 - s / steps, 0.0)
    if kind == "const":
        return lambda s: 1.0
    raise ValueError(kind)


def new_net(width, seed, zero_last=False, state=None):
    net = make_network(1, width, seed).to(memory_format=torch.channels_last)
    if state is not None:
        net.load_state_dict(state)
    elif zero_last:
        torch.nn.init.zeros_(net[4].weight); torch.nn.init.zeros_(net[4].bias)
    return net


def train(net, predict, sample, steps, lr, sched, warm=0.1):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(sched, steps, warm))
    net.train(); net.requires_grad_(True)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = pair_loss(predict, *sample())
            loss.backward(); opt.step(); sch.step()
    net.requires_grad_(False); net.eval()


def px_per_step(crop, batch, h, w):
    if crop is None or crop >= max(h, w):
        return 1.5 * h * w
    return 1.5 * batch * min(crop, h) * min(crop, w)


def n2d(y, cfg, seed=0, init=None):
    """cfg keys: s1, s3 (steps), crop1/crop3, batch1/batch3, lr1/lr3, sched1/sched3, width,
    res3 (stage 3 predicts s2 + g(s2), zero-init last layer), zero1 (zero-init f's last layer).
    init: optional dict(f=state, g=state) for warm start. Returns s1,s2,s3,f,g,cost."""
    h, w = y.shape[-2:]
    gen = torch.Generator().manual_seed(seed)
    width = cfg.get("width", 48)
    f = new_net(width, 2 * seed, cfg.get("zero1", False), init and init.get("f"))
    s1n = cfg["s1"]
    cost = 0.0
    if s1n > 0:
        c, b = cfg.get("crop1", cfg.get("crop")), cfg.get("batch1", cfg.get("batch", 1))
        train(f, lambda u: u - f(u), crop_sampler(y, y, c, b, gen), s1n,
              cfg.get("lr1", cfg.get("lr", 1e-3)), cfg.get("sched1", cfg.get("sched", "step")), cfg.get("warm", 0.1))
        cost += s1n * px_per_step(c, b, h, w)
    s1 = denoise_residual(f, y, None)
    s2 = refine(f, y, s1, None)
    res3 = cfg.get("res3", False)
    g = new_net(width, 2 * seed + 1, res3, init and init.get("g"))
    pred = (lambda u: u + g(u)) if res3 else g
    s3n = cfg["s3"]
    if s3n > 0:
        c, b = cfg.get("crop3", cfg.get("crop")), cfg.get("batch3", cfg.get("batch", 1))
        train(g, pred, crop_sampler(s2, y, c, b, gen), s3n,
              cfg.get("lr3", cfg.get("lr", 1e-3)), cfg.get("sched3", cfg.get("sched", "step")), cfg.get("warm", 0.1))
        cost += s3n * px_per_step(c, b, h, w)
    with torch.no_grad():
        s3 = pred(s2).clamp(0, 1)
    return s1, s2, s3, f, g, cost


def to_tensor(unit):
    return torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))[None, None].contiguous(memory_format=torch.channels_last)


def case(name, noise, size=256, seed=0):
    c = clean(name, size)
    noisy = add_noise(c, noise, seed).astype(np.float32)
    return c, noisy


def run_case(name, noise, cfg, tag, size=256, seed=0):
    c, noisy = case(name, noise, size)
    lo, hi = float(noisy.min()), float(noisy.max())
    y = to_tensor((noisy.astype(np.float64) - lo) / (hi - lo))
    t = time.perf_counter()
    s1, s2, s3, f, g, cost = n2d(y, cfg, seed)
    secs = time.perf_counter() - t
    back = lambda x: x[0, 0].double().numpy() * (hi - lo) + lo
    rec = dict(tag=tag, image=name, noise=noise, size=size, cfg=cfg, secs=round(secs, 2),
               cost_mpx=round(cost / 1e6, 2), paper_ratio=round(4000 * 1.5 * size * size / max(cost, 1), 2),
               p1=round(psnr(back(s1), c), 3), p2=round(psnr(back(s2), c), 3), p3=round(psnr(back(s3), c), 3))
    with open(LOG, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)
    return rec
