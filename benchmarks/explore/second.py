# Scratch sweep (issue 14), kept in git history only; reads the npz outputs of stage3_pilots.py (history at dde2f66) or second.py under /tmp/exp.
import sys, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from pathlib import Path
from common import add_noise
from quality import benchmark_images, case_seed
from napari_noise2detail import denoise
images = benchmark_images(Path("/work/shared/data"))
for case in sys.argv[1].split(";"):
    name, kind = case.split("|")
    clean = images[name]; rgb = clean.ndim == 3
    noisy = add_noise(clean, kind, case_seed(name, kind) + 1).astype(np.float32)  # a second draw
    r = denoise(noisy, rgb=rgb, preset="fast", device="cpu", seed=0, threads=1)
    np.savez_compressed(f"/tmp/exp/second/{name.replace(' ','_').replace(',','')}_{kind}.npz", clean=clean, noisy=noisy, A=r.detail)
    print(case, flush=True)
