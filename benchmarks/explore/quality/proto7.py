"""Issue 7 prototype: where should variance stabilisation act, and does ensembling help?

Per (image, noise): fast-preset fits of
  plain   : stages 1-3 on the image (the current fast)
  vst_all : stages 1-3 on the GAT of the image, inverse at the end (the WIP engine)
  vst12   : stages 1-2 on the GAT, s2 mapped back, stage 3 on the image (metric-aligned)
each read out with ensemble 1 and 8 (stage-3 inference only). One JSON line per case.

python proto7.py IMAGE [NOISES...]
"""
import json, sys, time, zlib
sys.path.insert(0, "/work/main/benchmarks")
import numpy as np, torch
torch.set_num_threads(1)
from common import add_noise, psnr, real_images, true_variance
from napari_noise2detail.engine.presets import PRESETS
from napari_noise2detail.engine import stages
from napari_noise2detail.engine.network import apply_ensembled
from napari_noise2detail.engine.stabilise import estimate_noise, forward, inverse, NoiseModel

S = PRESETS["fast"]
fit1, fit3 = S.fits()
OUT = "/work/main/benchmarks/explore/quality/proto7.jsonl"


def T(a):  # (H, W, C) -> (1, C, H, W)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)


def N(t):
    return t[0].permute(1, 2, 0).numpy().astype(np.float64)


def unit(a):
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo), lo, hi


def smooth_part(y, seed=0):
    crops = torch.Generator().manual_seed(seed)
    f = stages._new_network(y.shape[1], 2 * seed, S, y, None, S.zero_noise_init)
    for _ in stages.fit(f, lambda u: u - f(u), stages.crop_sampler(y, y, fit1.crop, fit1.batch, crops), fit1, 100):
        pass
    s1 = stages.denoise_residual(f, y, S.tile)
    return s1, stages.refine(f, y, s1, S.tile), crops


def detail_part(s2, y, crops, seed=0):
    g = stages._new_network(y.shape[1], 2 * seed + 1, S, y)
    for _ in stages.fit(g, g, stages.crop_sampler(s2, y, fit3.crop, fit3.batch, crops), fit3, 100):
        pass
    return {e: apply_ensembled(g, s2, S.tile, e).clamp(0, 1) for e in (1, 2, 4, 8)}


name = sys.argv[1]
noises = sys.argv[2:] or ["gauss15", "gauss25", "gauss50", "poisson10", "poisson30", "poisson100", "mixed30g15"]
clean = real_images(__import__("pathlib").Path("/work/shared/data"))[name]
if clean.ndim == 2:
    clean = clean[..., None]
for kind in noises:
    t0 = time.time()
    noisy = add_noise(clean, kind, zlib.crc32(f"{name}/{kind}".encode()))
    rec = {"image": name, "noise": kind}
    model = estimate_noise(np.moveaxis(noisy, -1, 0))
    rec["a"], rec["b"] = (model.a, model.b) if model else (None, None)
    rec["dependent"] = bool(model and model.signal_dependent)
    # plain
    u, lo, hi = unit(noisy); y = T(u)
    s1, s2, crops = smooth_part(y)
    rec["plain s1"], rec["plain s2"] = psnr(N(s1) * (hi - lo) + lo, clean), psnr(N(s2) * (hi - lo) + lo, clean)
    for e, s3 in detail_part(s2, y, crops).items():
        rec[f"plain e{e}"] = psnr(N(s3) * (hi - lo) + lo, clean)
    # stabilised
    if model is None or model.a <= 0 or kind.startswith("gauss"):
        rec["seconds"] = time.time() - t0
        with open(OUT, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(name, kind, {k: round(v, 2) for k, v in rec.items() if isinstance(v, float) and " " in k}, flush=True)
        continue
    m = NoiseModel(model.a, model.b, True)
    z = forward(noisy, m)
    uz, zlo, zhi = unit(z); yz = T(uz)
    s1z, s2z, crops_z = smooth_part(yz)
    back = lambda t: inverse(N(t) * (zhi - zlo) + zlo, m)
    rec["vst s1"], rec["vst s2"] = psnr(back(s1z), clean), psnr(back(s2z), clean)
    for e, s3 in detail_part(s2z, yz, crops_z).items():
        rec[f"vst_all e{e}"] = psnr(back(s3), clean)
    s2lin = np.clip((back(s2z) - lo) / (hi - lo), 0, 1)
    crops12 = torch.Generator().manual_seed(0); crops12.set_state(crops_z.get_state())
    for e, s3 in detail_part(T(s2lin), y, crops12).items():
        rec[f"vst12 e{e}"] = psnr(N(s3) * (hi - lo) + lo, clean)
    rec["seconds"] = time.time() - t0
    with open(OUT, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(name, kind, {k: round(v, 2) for k, v in rec.items() if isinstance(v, float) and " " in k}, flush=True)
