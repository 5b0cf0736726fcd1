"""Stage-3 PSNR along the fit, paper settings, moon/Poisson: where does it over-fit?

python trace.py raw|norm [seed]
"""
import sys, time, json
sys.path.insert(0, "/work/main/benchmarks")
import numpy as np, torch
torch.set_num_threads(1)
from common import clean_image, add_noise, psnr
from napari_noise2detail.engine.presets import PRESETS
from napari_noise2detail.engine import stages
from napari_noise2detail.engine.losses import pair_loss

mode = sys.argv[1]; seed = 0
clean = clean_image("moon"); noisy = add_noise(clean, "poisson30", seed)
scale = 1.0
y = torch.from_numpy((noisy / scale).astype(np.float32))[None, None]
if mode == "clampy": y = y.clamp(0, 1)
settings = PRESETS["paper"]
fit1, fit3 = settings.fits()
f = stages._new_network(1, 0, settings, y)
for _ in stages.fit(f, lambda u: u - f(u), lambda: (y, y), fit1, 100):
    pass
s1 = stages.denoise_residual(f, y, None)
s2 = stages.refine(f, y, s1, None)
P = lambda t: psnr(t[0, 0].numpy() * scale, clean)
print(mode, "s1", P(s1), "s2", P(s2), flush=True)
torch.save({"y": y, "s1": s1, "s2": s2, "scale": scale}, f"/work/main/benchmarks/explore/stage3/t2_{mode}.pt")
g = stages._new_network(1, 1, settings, y)
g0 = g
if mode == "residual": g = lambda u: u - g0(u)
opt = torch.optim.Adam(g0.parameters(), lr=1e-3)
sch = torch.optim.lr_scheduler.StepLR(opt, 1000, 0.5)
for step in range(1, 2001):
    opt.zero_grad(); loss = pair_loss(g, s2, y); loss.backward(); opt.step(); sch.step()
    if step % 100 == 0 or step in (10, 25, 50):
        with torch.no_grad():
            s3 = g(s2).clamp(0, 1)
        print(mode, step, f"{loss.item():.6f}", f"{P(s3):.3f}", flush=True)
