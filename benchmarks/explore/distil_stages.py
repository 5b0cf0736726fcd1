"""Issue 11 trial: distil stages 1-2 (five passes of f) into one cheap network h (y -> s2), then detail = g(h(y)).

    python benchmarks/explore/distil_stages.py [STEPS=600] [WIDTH=64]   # 2 torch threads, ~2 min
"""
import sys, time
sys.path.insert(0, "/work/main/benchmarks"); sys.path.insert(0, "/work/main/src")
import numpy as np, torch
from pathlib import Path
from fit_once import timelapse_clean, poisson
from common import psnr
from napari_noise2detail import fit
from napari_noise2detail.engine import model as M

torch.set_num_threads(2)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 600
width = int(sys.argv[2]) if len(sys.argv) > 2 else 64
clean = timelapse_clean(Path("/work/shared/data"), 100, 512)
noisy = poisson(clean)
eval_idx = list(range(2, 100, 8))
t0 = time.perf_counter(); model = fit(noisy, device="cpu"); tfit = time.perf_counter() - t0
print(f"fit {tfit:.1f}s planes {model.planes}", flush=True)

real_smooth = M.smooth
pairs = []
def recording(f, y, settings):
    s1, s2 = real_smooth(f, y, settings); pairs.append((y.float().clone(), s2.float().clone())); return s1, s2
M.smooth = recording
model.apply(noisy, planes=list(model.planes))
M.smooth = real_smooth
print("pairs", [tuple(p[0].shape) for p in pairs][:2], flush=True)

t0 = time.perf_counter(); ref = model.apply(noisy, planes=eval_idx); tref = time.perf_counter() - t0
ref_db = np.mean([psnr(clean[i], ref.detail[i]) for k, i in enumerate(eval_idx)])
print(f"fit-once apply {tref / len(eval_idx):.3f}s/plane detail {ref_db:.3f} dB", flush=True)

class H(torch.nn.Module):
    def __init__(self, c=1, w=64, k=4, layers=3):
        super().__init__()
        self.k = k; cc = c * k * k
        mods = [torch.nn.Conv2d(cc, w, 3, padding=1), torch.nn.LeakyReLU(0.2)]
        for _ in range(layers - 1):
            mods += [torch.nn.Conv2d(w, w, 3, padding=1), torch.nn.LeakyReLU(0.2)]
        mods += [torch.nn.Conv2d(w, cc, 3, padding=1)]
        self.body = torch.nn.Sequential(*mods)
    def forward(self, y):
        u = torch.nn.functional.pixel_unshuffle(y, self.k)
        return y - torch.nn.functional.pixel_shuffle(self.body(u), self.k)

torch.manual_seed(0)
h = H(w=width)
opt = torch.optim.Adam(h.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=steps // 2, gamma=0.5)
Y = torch.cat([p[0] for p in pairs]); S = torch.cat([p[1] for p in pairs])
crop, batch = 128, 4
rng = np.random.default_rng(0)
t0 = time.perf_counter()
for step in range(steps):
    idx = rng.integers(0, len(Y), batch); tops = rng.integers(0, (Y.shape[-2] - crop) // 4, batch) * 4
    lefts = rng.integers(0, (Y.shape[-1] - crop) // 4, batch) * 4
    yb = torch.stack([Y[i, :, t:t + crop, l:l + crop] for i, t, l in zip(idx, tops, lefts)])
    sb = torch.stack([S[i, :, t:t + crop, l:l + crop] for i, t, l in zip(idx, tops, lefts)])
    loss = torch.nn.functional.mse_loss(h(yb), sb)
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if step % 200 == 0: print(step, f"{loss.item():.3e}", flush=True)
tdist = time.perf_counter() - t0
h.eval().requires_grad_(False)
print(f"distil {tdist:.1f}s", flush=True)

def distilled(f, y, settings):
    s2 = h(y.float()).clamp(0, 1).to(y.dtype); return s2, s2
M.smooth = distilled
t0 = time.perf_counter(); out = model.apply(noisy, planes=eval_idx); tapp = time.perf_counter() - t0
M.smooth = real_smooth
d_db = np.mean([psnr(clean[i], out.detail[i]) for k, i in enumerate(eval_idx)])
s_gap = np.mean([psnr(ref.smooth[i], out.smooth[i]) for i in eval_idx])
sm_ref = np.mean([psnr(clean[i], ref.smooth[i]) for i in eval_idx]); sm_d = np.mean([psnr(clean[i], out.smooth[i]) for i in eval_idx])
print(f"smooth vs clean: s2 {sm_ref:.3f} h {sm_d:.3f}")
print(f"distilled apply {tapp / len(eval_idx):.3f}s/plane detail {d_db:.3f} dB (diff {d_db - ref_db:+.3f}); h vs s2 {s_gap:.1f} dB")
total = tfit + tdist + 100 * tapp / len(eval_idx)
print(f"estimated 100-frame total {total:.1f}s vs plane-by-plane 191.0s: {191.0 / total:.1f}x")
