# Scratch (issue 14, declipping), kept in git history only; on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66).
import sys, numpy as np
sys.path.insert(0, "/work/main/benchmarks")
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine import clipping as K
names = {"fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "histo_IHC_(RGB)": "histo IHC (RGB)", "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50"}
for stem in sys.argv[1].split(","):
    img, kind = stem.rsplit("_", 1)
    z = dict(np.load(f"/tmp/exp/s3all/{stem}.npz")); clean = z["clean"]; rgb = clean.ndim == 3
    noisy = add_noise(clean, kind, case_seed(names[img], kind)).astype(np.float32)
    raw = noisy[None] if rgb else noisy[None, ..., None]; A = z["A"] if rgb else z["A"][..., None]
    lim = K.clipped_limits(raw); c = K.estimate(raw, A[None], lim)
    d = K.declip(A, c); d = d if rgb else d[..., 0]
    print(stem, "sigma/true", [round(s / (int(kind[5:]) / 255), 3) for s in c.sigma], "fast", round(psnr(z["A"], clean), 2), "->", round(psnr(d, clean), 2), flush=True)
