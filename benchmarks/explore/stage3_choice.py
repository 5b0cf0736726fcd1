"""Does the stage-3 guard's held-out error tell, per image, whether nonlocal (quality) or diagonal (fast) targets win?

    cd benchmarks && python explore/stage3_choice.py "fluo nuclei|gauss25;EM (4x4 binned)|poisson30"

One JSON line per case: detail and smooth PSNR of fast and quality, and the held-out error
(lowest and last check) of each stage 3.
"""
import sys, json, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np, torch
from pathlib import Path
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import benchmark_images, case_seed
from napari_noise2detail import denoise
images = benchmark_images(Path(__file__).resolve().parents[2].parent / 'shared' / 'data')
cases = [c.split('|') for c in sys.argv[1].split(';')]
for name, kind in cases:
    clean = images[name]; rgb = clean.ndim == 3
    noisy = add_noise(clean, kind, case_seed(name, kind)).astype(np.float32)
    row = dict(image=name, noise=kind)
    for preset in ("fast", "quality"):
        seen = []
        def progress(e):
            if e.held_out is not None: seen.append(e.held_out.error)
        r = denoise(noisy, rgb=rgb, preset=preset, device="cpu", seed=0, progress=progress)
        row[preset] = round(psnr(r.detail, clean), 3); row[preset + "_smooth"] = round(psnr(r.smooth, clean), 3)
        row[preset + "_held"] = min(seen) if seen else None; row[preset + "_held_last"] = seen[-1] if seen else None
    print(json.dumps(row), flush=True)
