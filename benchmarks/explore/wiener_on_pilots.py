# Scratch sweep (issue 14), kept in git history only. Run from /work/main with the venv; writes npz outputs under /tmp/exp.
import sys, glob, json, time, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks"); sys.path.insert(0, "/tmp/exp")
torch.set_num_threads(1)
from common import add_noise, psnr, noise_model
from quality import case_seed
from napari_noise2detail.engine.stabilise import estimate_noise
from wiener import wiener_step
d = sys.argv[1]; kw = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
names = {"fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "histo_IHC_(RGB)": "histo IHC (RGB)",
         "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50", "confocal_plane_30_dim": "confocal plane 30, dim"}
gains = []
for fn in sorted(glob.glob(f"/tmp/exp/{d}/*.npz")):
    stem = fn.split("/")[-1][:-4]; img, kind = stem.rsplit("_", 1); name = names[img]
    z = dict(np.load(fn)); clean = z["clean"]; rgb = clean.ndim == 3
    noisy = add_noise(clean, kind, case_seed(name, kind)).astype(np.float32)
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a if rgb else a[..., None]).astype(np.float32)).permute(2, 0, 1)
    back = lambda t: (t.permute(1, 2, 0).numpy() if rgb else t[0].numpy())
    est = estimate_noise(np.moveaxis((noisy if rgb else noisy[..., None])[None], -1, 1))
    if est is None:
        r = noisy - z["B"]; a, b = 0.0, float(r.var())
    else:
        a, b = est.a, est.b
    var = lambda s: (a * s + b)
    row = {"case": stem, "B": psnr(z["B"], clean)}
    z["AB"] = (z["A"] + z["B"]) / 2
    for pil in ["A", "B", "AB"]:
        if pil not in z: continue
        t0 = time.perf_counter()
        out = wiener_step(chw(noisy), chw(z[pil]), var, **kw)
        row[pil] = psnr(z[pil], clean); row["wiener_" + pil] = psnr(np.clip(back(out), 0, 1), clean); row["t"] = time.perf_counter() - t0
    wa = wiener_step(chw(noisy), chw(z["A"]), var, **kw); wb = wiener_step(chw(noisy), chw(z["B"]), var, **kw)
    row["avgW"] = psnr(np.clip(back((wa + wb) / 2), 0, 1), clean)
    row["iterA"] = psnr(np.clip(back(wiener_step(chw(noisy), wa, var, **kw)), 0, 1), clean)
    row["A+B"] = psnr(z["AB"], clean)
    gains.append(row["wiener_B"] - row["B"])
    open("/tmp/exp/wrows.jsonl", "a").write(json.dumps(row) + "\n")
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
print("mean gain over B", np.mean(gains), "min", np.min(gains))
