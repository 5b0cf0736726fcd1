"""Paper settings on moon/Poisson (or camera/Gaussian): stage PSNRs per noise draw, init seed and
input scaling, with the stage-3 PSNR along the fit. One JSON line per run to seeds.jsonl.

python seeds.py MODE DRAW SEED [IMAGE NOISE [LR3]]; MODE: raw (data as is) | norm (min-max) | SCALE (divide by it)
LR3: stage-3 learning rate, when it should differ from the paper's 1e-3 (a probe, not the method)
"""
import json, sys, time
sys.path.insert(0, "/work/main/benchmarks")
import numpy as np, torch
torch.set_num_threads(1)
from common import clean_image, add_noise, psnr
from napari_noise2detail.engine.presets import PRESETS
from napari_noise2detail.engine import stages
from napari_noise2detail.engine.losses import pair_loss

mode, draw, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
image, noise = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else ("moon", "poisson30")
lr3 = float(sys.argv[6]) if len(sys.argv) > 6 else None
clean = clean_image(image); noisy = add_noise(clean, noise, draw)
low, scale = (0.0, 1.0) if mode == "raw" else (noisy.min(), noisy.max() - noisy.min()) if mode == "norm" else (0.0, float(mode))
y = torch.from_numpy(((noisy - low) / scale).astype(np.float32))[None, None]
P = lambda t: psnr(t[0, 0].numpy() * scale + low, clean)
settings = PRESETS["paper"]
fit1, fit3 = settings.fits()
if lr3:
    fit3 = type(fit3)(fit3.steps, lr3, fit3.schedule, fit3.crop, fit3.batch)
t0 = time.time()
f = stages._new_network(1, 2 * seed, settings, y)
for _ in stages.fit(f, lambda u: u - f(u), lambda: (y, y), fit1, 100):
    pass
s1 = stages.denoise_residual(f, y, None)
s2 = stages.refine(f, y, s1, None)
g = stages._new_network(1, 2 * seed + 1, settings, y)
trace = {}
for step, _ in stages.fit(g, g, lambda: (s2, y), fit3, 100):
    with torch.no_grad():
        trace[step] = round(P(g(s2).clamp(0, 1)), 3)
rec = dict(image=image, noise=noise, mode=mode, draw=draw, seed=seed, lr3=fit3.lr, s1=P(s1), s2=P(s2), s3=trace[2000],
           trace=trace, seconds=time.time() - t0)
with open("/work/main/benchmarks/explore/stage3/seeds.jsonl", "a") as fh:
    fh.write(json.dumps(rec) + "\n")
print(mode, draw, seed, f"{rec['s1']:.2f} {rec['s2']:.2f} {rec['s3']:.2f}", f"{rec['seconds']:.0f}s", flush=True)
