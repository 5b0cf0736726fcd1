# Scratch sweep (issue 14), kept in git history only; reads the npz outputs of stage3_pilots.py (history at dde2f66) or second.py under /tmp/exp.
import sys, glob, json, time, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine.stabilise import estimate_noise, forward, inverse
from napari_noise2detail.engine.wiener import collaborative_wiener
names = {"fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "histo_IHC_(RGB)": "histo IHC (RGB)",
         "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50", "confocal_plane_30_dim": "confocal plane 30, dim"}
VARIANTS = {"base": {}, "m16": {"members": 16}, "m64": {"members": 64}, "w31": {"window": 31}, "s2": {"stride": 2},
            "v0.8": {}, "v1.25": {}, "gat": {}}
out = open("/tmp/exp/wsweep.jsonl", "a")
for fn in sorted(glob.glob("/tmp/exp/s3all/*.npz")):
    stem = fn.split("/")[-1][:-4]; img, kind = stem.rsplit("_", 1); name = names[img]
    z = dict(np.load(fn)); clean = z["clean"]; rgb = clean.ndim == 3
    noisy = add_noise(clean, kind, case_seed(name, kind)).astype(np.float32)
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a if rgb else a[..., None]).astype(np.float32)).permute(2, 0, 1)[None]
    back = lambda t: (t[0].permute(1, 2, 0).numpy() if rgb else t[0, 0].numpy())
    est = estimate_noise(np.moveaxis((noisy if rgb else noisy[..., None])[None], -1, 1))
    C = 3 if rgb else 1
    row = {"case": stem, "A": psnr(z["A"], clean)}
    for v, kw in VARIANTS.items():
        t0 = time.perf_counter()
        if est is None:
            noise = None
        else:
            scale = {"v0.8": 0.8, "v1.25": 1.25}.get(v, 1.0)
            noise = (torch.full((C,), est.a * scale), torch.full((C,), max(est.b, 0) * scale))
        if v == "gat":
            if est is None or not est.signal_dependent:
                row[v] = row["base"]; continue
            fy, fp = forward(noisy.astype(np.float64), est), forward(z["A"].astype(np.float64), est)
            lo, hi = fy.min(), fy.max(); s = hi - lo
            o = collaborative_wiener(chw(((fy - lo) / s)), chw(((fp - lo) / s)), (torch.zeros(C), torch.full((C,), 1 / s**2)))
            res = inverse(back(o).astype(np.float64) * s + lo, est)
        else:
            res = back(collaborative_wiener(chw(noisy), chw(z["A"]), noise, **kw))
        row[v] = psnr(np.clip(res, 0, 1), clean); row["t_" + v] = time.perf_counter() - t0
    print(json.dumps({k: round(x, 3) if isinstance(x, float) else x for k, x in row.items()}), flush=True)
    out.write(json.dumps(row) + "\n"); out.flush()
