"""Issue 7 prototype: a leak-free stage 3, and opponent colours for RGB.

In N2D's stage 3, g learns D1(s2) -> D2(y); but s2 was computed from all of y, so D1(s2) holds
part of the noise of the very pixels of D2(y): g can learn to pull that noise out (over-fitting).
Leak-free: train g on half-resolution smooth images of one view (h1 from D1(y) alone) against
the other view (D2(y)): a true Noise2Noise pair, as stage 1 is. Inference unchanged: g(s2).
  plain : fast as is
  lfA   : h = clamp(D(y) - f(D(y)))            (stage 1 of each view)
  lfB   : h = refine(f, D(y), ...) at half res  (stage 2 of each view)
  opp   : RGB only, plain in opponent colours
python proto_lf.py IMAGE [NOISES...]
"""
import json, sys, time, zlib
from pathlib import Path
sys.path.insert(0, "/work/main/benchmarks")
import numpy as np, torch
import torch.nn.functional as F
torch.set_num_threads(1)
from common import add_noise, psnr, real_images
from napari_noise2detail.engine.presets import PRESETS
from napari_noise2detail.engine import stages
from napari_noise2detail.engine.downsample import pair_downsample
from napari_noise2detail.engine.colour import to_opponent, from_opponent

S = PRESETS["fast"]
fit1, fit3 = S.fits()
OUT = "/work/main/benchmarks/explore/quality/proto_lf.jsonl"


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)


def N(t):
    return t[0].permute(1, 2, 0).numpy().astype(np.float64)


def smooth_part(y, seed=0):
    crops = torch.Generator().manual_seed(seed)
    f = stages._new_network(y.shape[1], 2 * seed, S, y, None, S.zero_noise_init)
    for _ in stages.fit(f, lambda u: u - f(u), stages.crop_sampler(y, y, fit1.crop, fit1.batch, crops), fit1, 100):
        pass
    s1 = stages.denoise_residual(f, y, S.tile)
    return f, s1, stages.refine(f, y, s1, S.tile), crops


def detail_plain(s2, y, crops, seed=0):
    g = stages._new_network(y.shape[1], 2 * seed + 1, S, y)
    for _ in stages.fit(g, g, stages.crop_sampler(s2, y, fit3.crop, fit3.batch, crops), fit3, 100):
        pass
    with torch.no_grad():
        return g(s2).clamp(0, 1)


def detail_leakfree(s2, y, h1, h2, crops, seed=0):
    g = stages._new_network(y.shape[1], 2 * seed + 1, S, y)
    H, W = y.shape[-2:]
    c = fit3.crop
    y1, y2 = pair_downsample(y)
    opt = torch.optim.Adam(g.parameters(), lr=fit3.lr)
    sch = torch.optim.lr_scheduler.StepLR(opt, max(fit3.steps // 2, 1), 0.5)
    for step in range(fit3.steps):
        tops = (torch.randint(0, (H - c) // 2 + 1, (fit3.batch,), generator=crops) * 2).tolist()
        lefts = (torch.randint(0, (W - c) // 2 + 1, (fit3.batch,), generator=crops) * 2).tolist()
        cut = lambda x, s: torch.cat([x[..., (t // s):(t + c) // s, (l // s):(l + c) // s] for t, l in zip(tops, lefts)])
        sc, a1, a2, b1, b2 = cut(s2, 1), cut(h1, 2), cut(h2, 2), cut(y1, 2), cut(y2, 2)
        opt.zero_grad()
        p1, p2 = g(torch.cat([a1, a2])).chunk(2)
        d1, d2 = pair_downsample(g(sc))
        loss = 0.5 * (F.mse_loss(p1, b2) + F.mse_loss(p2, b1)) + 0.5 * (F.mse_loss(p1, d1) + F.mse_loss(p2, d2))
        loss.backward(); opt.step(); sch.step()
    with torch.no_grad():
        return g(s2).clamp(0, 1)


def run(noisy, clean, variants, opp=False):
    out = {}
    data = to_opponent(noisy) if opp else noisy
    lo = data.min(axis=(0, 1)) if opp else data.min()
    width = (data.max(axis=(0, 1)) - lo).max() if opp else data.max() - lo
    back = lambda t: (lambda a: from_opponent(a) if opp else a)(N(t) * width + lo)
    y = T((data - lo) / width)
    f, s1, s2, crops = smooth_part(y)
    state = crops.get_state()
    pre = "opp " if opp else ""
    out[pre + "s1"], out[pre + "s2"] = psnr(back(s1), clean), psnr(back(s2), clean)
    if "plain" in variants:
        out[pre + "plain"] = psnr(back(detail_plain(s2, y, crops)), clean)
    with torch.no_grad():
        y1, y2 = pair_downsample(y)
        hA = [stages.denoise_residual(f, v, S.tile) for v in (y1, y2)]
        hB = [stages.refine(f, v, h, S.tile) for v, h in zip((y1, y2), hA)]
    for name, (h1, h2) in (("lfA", hA), ("lfB", hB)):
        if name in variants:
            crops.set_state(state)
            out[pre + name] = psnr(back(detail_leakfree(s2, y, h1, h2, crops)), clean)
    return out


name = sys.argv[1]
noises = sys.argv[2:] or ["gauss25", "gauss50", "poisson10", "poisson30", "mixed30g15"]
clean = real_images(Path("/work/shared/data"))[name]
if clean.ndim == 2:
    clean = clean[..., None]
for kind in noises:
    t0 = time.time()
    noisy = add_noise(clean, kind, zlib.crc32(f"{name}/{kind}".encode()))
    rec = {"image": name, "noise": kind, **run(noisy, clean, ("plain", "lfA", "lfB"))}
    if clean.shape[-1] == 3:
        rec.update(run(noisy, clean, ("plain",), opp=True))
    rec["seconds"] = time.time() - t0
    with open(OUT, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(name, kind, {k: round(v, 2) for k, v in rec.items() if isinstance(v, float)}, flush=True)
