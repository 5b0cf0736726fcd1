# Scratch sweep (issue 14, second round), kept in git history only; ran against the engine of its day (w3: before opponent colours; w5: before groups of 64/32) on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66) and /tmp/exp/second (second.py, history at fc62d69).
import sys, numpy as np, torch, bm3d
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine.stabilise import estimate_noise
from napari_noise2detail.engine import wiener as W
names = {"fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "phase_cell": "phase cell", "confocal_plane_30_dim": "confocal plane 30, dim"}
stem = sys.argv[1]
img, kind = stem.rsplit("_", 1)
z = dict(np.load(f"/tmp/exp/s3all/{stem}.npz")); clean = z["clean"]
noisy = add_noise(clean, kind, case_seed(names[img], kind)).astype(np.float32)
t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None, None]
est = estimate_noise(noisy[None, None])
noise = None if est is None else (torch.full((1,), est.a), torch.full((1,), max(est.b, 0)))
sigma = float(int(kind[5:]) / 255)
b = bm3d.bm3d(noisy, sigma)
f = lambda x: round(psnr(np.asarray(x, np.float64).reshape(clean.shape), clean), 2)
print("noise", noise, "true", sigma**2, "clip frac", float((noisy <= 0).mean() + (noisy >= 1).mean()))
for name, g in (("fast", t(z["A"])), ("bm3d", t(b))):
    for kw in ({}, {"window": 31}, {"window": 39}, {"close": float("inf")}, {"stride": 3}, {"patch": 12}):
        for m in (1.0, 1.5, 2.0):
            W.VARIANCE_MARGIN = m
            print(name, kw, m, f(W.collaborative_wiener(t(noisy), g, noise, **kw)[0, 0]), flush=True)
    for m in (1.0, 1.5):
        W.VARIANCE_MARGIN = m
        print(name, "true var", m, f(W.collaborative_wiener(t(noisy), g, (torch.zeros(1), torch.full((1,), sigma**2)))[0, 0]), flush=True)
