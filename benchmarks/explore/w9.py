# Scratch sweep (issue 14, second round), kept in git history only; ran against the engine of its day (w3: before opponent colours; w5: before groups of 64/32) on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66) and /tmp/exp/second (second.py, history at fc62d69).
# Scratch (issue 14): margins on both noise draws, the new groups against the old configuration
import sys, glob, json, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine.stabilise import estimate_noise
from napari_noise2detail.engine import wiener as W
names = {"fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "histo_IHC_(RGB)": "histo IHC (RGB)",
         "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50", "confocal_plane_30_dim": "confocal plane 30, dim"}
draw, variants = sys.argv[2], sys.argv[3].split(",")
out = open(sys.argv[1], "a")
for fn in sorted(glob.glob(f"/tmp/exp/{'s3all' if draw == 'first' else 'second'}/*.npz")):
    stem = fn.split("/")[-1][:-4]; img, kind = stem.rsplit("_", 1)
    z = dict(np.load(fn)); clean = z["clean"]; rgb = clean.ndim == 3
    noisy = z["noisy"] if "noisy" in z else add_noise(clean, kind, case_seed(names[img], kind)).astype(np.float32)
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a if rgb else a[..., None]).astype(np.float32)).permute(2, 0, 1)[None]
    back = lambda t: (t[0].permute(1, 2, 0).numpy() if rgb else t[0, 0].numpy())
    est = estimate_noise(np.moveaxis((noisy if rgb else noisy[..., None])[None], -1, 1))
    C = 3 if rgb else 1
    noise = None if est is None else (torch.full((C,), est.a), torch.full((C,), max(est.b, 0)))
    row = {"case": stem, "draw": draw, "A": psnr(z["A"].astype(np.float64), clean)}
    for v in variants:
        if v == "old":
            W.VARIANCE_MARGIN = 1.5
            r = W.collaborative_wiener(chw(noisy), chw(z["A"]), noise, members=32, close=float("inf"), stride=3)
        else:
            W.VARIANCE_MARGIN = float(v)
            r = W.collaborative_wiener(chw(noisy), chw(z["A"]), noise, colour=rgb)
        row[v] = psnr(back(r).astype(np.float64), clean)
    print(json.dumps({k: round(x, 3) if isinstance(x, float) else x for k, x in row.items()}), flush=True)
    out.write(json.dumps(row) + "\n"); out.flush()
