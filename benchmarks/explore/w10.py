# Scratch sweep (issue 14, second round), kept in git history only; ran against the engine of its day (w3: before opponent colours; w5: before groups of 64/32) on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66) and /tmp/exp/second (second.py, history at fc62d69).
import sys, numpy as np, torch, bm3d
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine.stabilise import estimate_noise
from napari_noise2detail.engine import wiener as W
names = {"confocal_plane_50": "confocal plane 50", "fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "phase_cell": "phase cell", "confocal_plane_30_dim": "confocal plane 30, dim"}
for stem in sys.argv[1].split(","):
    img, kind = stem.rsplit("_", 1)
    z = dict(np.load(f"/tmp/exp/s3all/{stem}.npz")); clean = z["clean"]
    noisy = add_noise(clean, kind, case_seed(names[img], kind)).astype(np.float32)
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None, None]
    est = estimate_noise(noisy[None, None])
    noise = None if est is None else (torch.full((1,), est.a), torch.full((1,), max(est.b, 0)))
    sigma = float((int(kind[5:]) if kind.startswith("gauss") else 25) / 255)
    b = bm3d.bm3d(noisy, sigma)
    w1 = W.collaborative_wiener(t(noisy), t(z["A"]), noise)
    w2 = W.collaborative_wiener(t(noisy), w1, noise)
    wb = W.collaborative_wiener(t(noisy), t(b), noise)
    wm = W.collaborative_wiener(t(noisy), (w1 + t(z["A"])) / 2, noise)
    f = lambda x: round(psnr(np.asarray(x, np.float64).reshape(clean.shape), clean), 2)
    print(stem, "fast", f(z["A"]), "bm3d", f(b), "w(fast)", f(w1[0, 0]), "w(w)", f(w2[0, 0]), "w(bm3d)", f(wb[0, 0]), "w(mean fast,w)", f(wm[0, 0]), flush=True)
