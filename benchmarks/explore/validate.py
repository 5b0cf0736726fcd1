# Scratch sweep (issue 14), kept in git history only; reads the npz outputs of stage3_pilots.py (history at dde2f66) or second.py under /tmp/exp.
import sys, glob, json, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import psnr
from napari_noise2detail.engine.stabilise import estimate_noise
from napari_noise2detail.engine.wiener import collaborative_wiener
out = open("/tmp/exp/validate.jsonl", "a")
for fn in sorted(glob.glob("/tmp/exp/second/*.npz")):
    z = dict(np.load(fn)); clean, noisy = z["clean"], z["noisy"]; rgb = clean.ndim == 3; C = 3 if rgb else 1
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a if rgb else a[..., None]).astype(np.float32)).permute(2, 0, 1)[None]
    back = lambda t: (t[0].permute(1, 2, 0).numpy() if rgb else t[0, 0].numpy())
    est = estimate_noise(np.moveaxis((noisy if rgb else noisy[..., None])[None], -1, 1))
    row = {"case": fn.split("/")[-1][:-4], "A": psnr(z["A"], clean)}
    for k in (1.0, 1.5, 2.0):
        noise = None if est is None else (torch.full((C,), est.a * k), torch.full((C,), max(est.b, 0) * k))
        row[str(k)] = psnr(np.clip(back(collaborative_wiener(chw(noisy), chw(z["A"]), noise)), 0, 1), clean)
    print(json.dumps(row), flush=True); out.write(json.dumps(row) + "\n")
