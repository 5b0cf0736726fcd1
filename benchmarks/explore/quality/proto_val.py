"""Issue 7 prototype: a held-out error to tell when stage 3 starts to learn the noise.

Every 25 steps of the fast preset's stage 3 (run to twice its steps), record for g and for an
exponential average of its weights: the detail PSNR, and the error of g on stage 1's estimate
of one half-resolution diagonal view against the other view (pairs g is never fitted to). One
JSON line per case with the trajectories; the stopping rules were simulated on them.

python proto_val.py [--second-draws] IMAGE [NOISES...]
--second-draws: other noise draws than quality.py's (written to proto_val2.jsonl)
"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, "/work/main/benchmarks")
import numpy as np, torch
torch.set_num_threads(1)
from common import add_noise, psnr, real_images
from quality import case_seed
from napari_noise2detail.engine.presets import PRESETS
from napari_noise2detail.engine import stages
from napari_noise2detail.engine.losses import pair_loss
from napari_noise2detail.engine.stabilise import estimate_noise

S = PRESETS["fast"]
fit1, fit3 = S.fits()
SECOND = sys.argv[1] == "--second-draws"
if SECOND:
    del sys.argv[1]
OUT = "/work/main/benchmarks/explore/quality/" + ("proto_val2.jsonl" if SECOND else "proto_val.jsonl")
T = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
N = lambda t: t[0].permute(1, 2, 0).numpy().astype(np.float64)

name = sys.argv[1]
noises = sys.argv[2:] or (["gauss15", "gauss25", "gauss50", "poisson10", "poisson30", "poisson100", "mixed30g15"]
                          if SECOND else ["gauss25", "gauss50", "poisson10", "poisson30", "mixed30g15"])
clean = real_images(Path("/work/shared/data"))[name]
if clean.ndim == 2:
    clean = clean[..., None]
for kind in noises:
    t0 = time.time()
    noisy = add_noise(clean, kind, case_seed(name, kind) + SECOND)
    model = estimate_noise(np.moveaxis(noisy, -1, 0))
    lo, hi = noisy.min(), noisy.max()
    y = T((noisy - lo) / (hi - lo))
    var = (np.maximum(model.a * noisy + model.b, 0).mean() if model else np.nan) / (hi - lo) ** 2
    crops = torch.Generator().manual_seed(0)
    f = stages._new_network(y.shape[1], 0, S, y, None, S.zero_noise_init)
    for _ in stages.fit(f, lambda u: u - f(u), stages.crop_sampler(y, y, fit1.crop, fit1.batch, crops), fit1, 100):
        pass
    s1 = stages.denoise_residual(f, y, S.tile)
    s2 = stages.refine(f, y, s1, S.tile)
    g = stages._new_network(y.shape[1], 1, S, y)
    sample = stages.crop_sampler(s2, y, fit3.crop, fit3.batch, crops)
    opt = torch.optim.Adam(g.parameters(), lr=fit3.lr)
    sch = torch.optim.lr_scheduler.StepLR(opt, fit3.steps // 2, 0.5)
    from napari_noise2detail.engine.downsample import pair_downsample
    import copy
    with torch.no_grad():
        y1, y2 = pair_downsample(y)
        h1, h2 = stages.denoise_residual(f, y1, None), stages.denoise_residual(f, y2, None)
    ema = copy.deepcopy(g)
    trace = []
    for step in range(1, 2 * fit3.steps + 1):  # twice the preset's steps, to see the over-fit
        opt.zero_grad(); pair_loss(g, *sample()).backward(); opt.step(); sch.step()
        with torch.no_grad():
            for pe, pg in zip(ema.parameters(), g.parameters()):
                pe.mul_(0.97).add_(pg, alpha=0.03)
        if step % 25 == 0:
            row = [step]
            with torch.no_grad():
                for net in (g, ema):
                    d = net(s2).clamp(0, 1)
                    val = 0.5 * float(((net(h1) - y2) ** 2).mean() + ((net(h2) - y1) ** 2).mean())
                    row += [round(psnr(N(d) * (hi - lo) + lo, clean), 3), val]
            trace.append(row)
    rec = dict(image=name, noise=kind, s1=psnr(N(s1) * (hi - lo) + lo, clean), s2=psnr(N(s2) * (hi - lo) + lo, clean),
               trace=trace, seconds=time.time() - t0)
    with open(OUT, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    at = {t[0]: t for t in trace}
    best = max(trace, key=lambda t: t[1]); val = min(trace, key=lambda t: t[2]); ev = min(trace, key=lambda t: t[4])
    print(name, kind, f"s2 {rec['s2']:.2f} | 800: {at[800][1]:.2f} ema {at[800][3]:.2f} | oracle {best[1]:.2f}@{best[0]}"
          f" | min-val {val[1]:.2f}@{val[0]} | ema min-val {ev[3]:.2f}@{ev[0]}", flush=True)
