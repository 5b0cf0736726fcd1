# Scratch sweep (issue 14, patch sizes), kept in git history only; ran against the engine of its day on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66) and /tmp/exp/second (second.py, history at fc62d69); w13's p8/f12/f10 variants are those of the full_patch parameter (its w14.jsonl run).
# Scratch (issue 14): patch size of the filtering, on cached fast outputs
import sys, glob, json, time, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine.stabilise import estimate_noise
from napari_noise2detail.engine import wiener as W
names = {"fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "histo_IHC_(RGB)": "histo IHC (RGB)",
         "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50", "confocal_plane_30_dim": "confocal plane 30, dim"}
VARIANTS = {"p8": {"full_patch": 8}, "f12": {}, "f10": {"full_patch": 10}, "p12": {"patch": 12}, "p12m11": {"patch": 12, "match": 11}, "p10": {"patch": 10, "match": 9}, "p16": {"patch": 16, "match": 11}}
variants = sys.argv[2].split(",")
out = open(sys.argv[1], "a")
pattern = sys.argv[3] if len(sys.argv) > 3 else "*"
for fn in sorted(glob.glob(f"/tmp/exp/second/{pattern}.npz")):
    stem = fn.split("/")[-1][:-4]; img, kind = stem.rsplit("_", 1); name = names[img]
    z = dict(np.load(fn)); clean = z["clean"]; rgb = clean.ndim == 3
    noisy = z["noisy"]
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a if rgb else a[..., None]).astype(np.float32)).permute(2, 0, 1)[None]
    back = lambda t: (t[0].permute(1, 2, 0).numpy() if rgb else t[0, 0].numpy())
    est = estimate_noise(np.moveaxis((noisy if rgb else noisy[..., None])[None], -1, 1))
    C = 3 if rgb else 1
    noise = None if est is None else (torch.full((C,), est.a), torch.full((C,), max(est.b, 0)))
    row = {"case": stem, "A": psnr(z["A"], clean)}
    for v in variants:
        t0 = time.perf_counter()
        r = W.collaborative_wiener(chw(noisy), chw(z["A"]), noise, colour=rgb, **VARIANTS[v])
        row[v] = psnr(back(r).astype(np.float64), clean); row["t_" + v] = time.perf_counter() - t0
    print(json.dumps({k: round(x, 3) if isinstance(x, float) else x for k, x in row.items()}), flush=True)
    out.write(json.dumps(row) + "\n"); out.flush()
