# Scratch sweep (issue 14, second round), kept in git history only; ran against the engine of its day (w3: before opponent colours; w5: before groups of 64/32) on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66) and /tmp/exp/second (second.py, history at fc62d69).
# Scratch (issue 14): the no-estimate cases: residual variance against the true one
import sys, glob, json, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine import wiener as W
names = {"fluo_nuclei": "fluo nuclei", "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50", "confocal_plane_30_dim": "confocal plane 30, dim"}
for stem in ["phase_cell_gauss50", "confocal_plane_30_dim_gauss25", "confocal_plane_50_gauss25", "fluo_nuclei_gauss50"]:
    img, kind = stem.rsplit("_", 1)
    z = dict(np.load(f"/tmp/exp/s3all/{stem}.npz")); clean = z["clean"]
    noisy = add_noise(clean, kind, case_seed(names[img], kind)).astype(np.float32)
    t = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]
    sigma2 = (int(kind[5:]) / 255) ** 2
    res = float(W.residual_variance(t(noisy), t(z["A"]))[0])
    row = {"case": stem, "A": round(psnr(z["A"], clean), 2), "res/true": round(res / sigma2, 3),
           "clean-noisy var/true": round(float(((noisy - clean) ** 2).mean()) / sigma2, 3)}
    row["residual"] = round(psnr(W.collaborative_wiener(t(noisy), t(z["A"]), None)[0, 0].numpy().astype(np.float64), clean), 2)
    for k in (0.5, 0.75, 1.0, 1.25):
        row[f"true x{k}"] = round(psnr(W.collaborative_wiener(t(noisy), t(z["A"]), (torch.zeros(1), torch.full((1,), k * sigma2)))[0, 0].numpy().astype(np.float64), clean), 2)
    print(json.dumps(row), flush=True)
