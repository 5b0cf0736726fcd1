# Scratch sweep (issue 14), kept in git history only. Run from /work/main with the venv; writes npz outputs under /tmp/exp.
"""Scratch: stage-3 variants on shared stages 1-2 (fast, seed 0); saves each variant's detail.
usage: python s3combo.py OUT.jsonl "IMAGE|NOISE;..."
"""
import sys, json, time, copy
from pathlib import Path
sys.path.insert(0, "/work/main/benchmarks")
import numpy as np, torch
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import benchmark_images, case_seed
from napari_noise2detail import denoise
from napari_noise2detail.engine import model as M, stages as S
from napari_noise2detail.engine.fitting import fit
from napari_noise2detail.engine.pairs import training_pairs
from dataclasses import replace

STASH = {}
VARIANTS = [  # name, pairs, guide, seed offset
    ("A", "diagonal", None, None),
    ("B", "nonlocal", "s2", 1),
    ("A2", "diagonal", None, 2),
    ("B2", "nonlocal", "s2", 3),
    ("C", "nonlocal", "AB", 4),
]

def stage3(kind, s2, y, guide, f, settings, fit3, gen, gseed, how):
    g = S._new_network(y.shape[1], gseed, settings, y, None)
    sample, loss_of = training_pairs(kind, s2, y, guide, fit3, gen, settings, from_self=True)
    guard = S.CheckedError(S.held_out_error(g, f, y, settings.tile))
    for step, loss in fit(g, g, sample, fit3, settings.report_every, guard, loss=loss_of, **how):
        pass
    return S.detail(g, s2, settings), float(guard.last)

def plane(y, settings, seed=0, start=None, threads=None):
    channels = y.shape[1]
    fit1, fit3 = settings.fits(warm=start is not None)
    crops = torch.Generator().manual_seed(seed)
    how = dict(threads=threads, precision=settings.precision, graph=False)
    t0 = time.perf_counter()
    f = S._new_network(channels, 2 * seed, settings, y, None, settings.zero_noise_init)
    sample, loss_of = training_pairs(settings.pairs, y, y, y, fit1, crops, settings)
    for step, loss in fit(f, lambda u: u - f(u), sample, fit1, settings.report_every, loss=loss_of, **how):
        yield 1, step, fit1.steps, loss, None
    s1, s2 = S.smooth(f, y, settings)
    outs, held, times = {"S1": s1, "S": s2}, {}, {}
    outs["A"], held["A"] = stage3("diagonal", s2, y, s2, f, settings, fit3, crops, 2 * seed + 1, how)
    outs["B"], held["B"] = stage3("nonlocal", s2, y, s2, f, settings, fit3, torch.Generator().manual_seed(11), 3, how)
    times["r1"] = time.perf_counter() - t0
    from torch import nn
    def wide(kind):
        def make(c, width, seed):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                if kind == "W2":
                    return nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.2),
                        nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.LeakyReLU(0.2), nn.Conv2d(width, c, 1))
                return nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.2),
                    nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.LeakyReLU(0.2),
                    nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(width, c, 1))
        return make
    for kind in ("W2", "W3"):
        t0 = time.perf_counter()
        S.make_network = wide(kind)
        outs[kind], held[kind] = stage3("nonlocal", s2, y, s2, f, settings, fit3, torch.Generator().manual_seed(11), 3, how)
        outs[kind + "d"], held[kind + "d"] = stage3("diagonal", s2, y, s2, f, settings, fit3, torch.Generator().manual_seed(11), 3, how)
        S.make_network = make_network0
        times[kind] = time.perf_counter() - t0
    STASH.update(outs=outs, held=held, times=times, t12=0, s2=s2)
    return (s1, s2, outs["A"]), (f, f)

make_network0 = S.make_network
M.n2d_plane = plane
out = open(sys.argv[1], "a")
images = benchmark_images(Path("/work/shared/data"))
for case in sys.argv[2].split(";"):
    name, kind = case.split("|")
    clean = images[name]; rgb = clean.ndim == 3
    noisy = add_noise(clean, kind, case_seed(name, kind)).astype(np.float32)
    t0 = time.perf_counter()
    r = denoise(noisy, rgb=rgb, preset="fast", device="cpu", seed=0, threads=1)
    # map normalised variants to image units: per-channel linear fit against A
    A = STASH["outs"]["A"][0].permute(1, 2, 0).numpy()
    det = r.detail if rgb else r.detail[..., None]
    maps = []
    for c in range(A.shape[-1]):
        a, b = np.polyfit(A[..., c].ravel(), det[..., c].ravel(), 1); maps.append((a, b))
    def units(t):
        v = t[0].permute(1, 2, 0).numpy()
        v = np.stack([v[..., c] * maps[c][0] + maps[c][1] for c in range(v.shape[-1])], -1)
        return v if rgb else v[..., 0]
    arrs = {k: units(v) for k, v in STASH["outs"].items()}
    np.savez_compressed(f"/tmp/exp/s3w/{name.replace(' ','_').replace(',','')}_{kind}.npz", clean=clean, **arrs)
    row = dict(image=name, noise=kind, fast=round(psnr(r.detail, clean), 3),
               psnr={k: round(psnr(v, clean), 3) for k, v in arrs.items()},
               held=STASH["held"], times=STASH["times"], t12=STASH["t12"], total=time.perf_counter() - t0)
    print(json.dumps(row), flush=True); out.write(json.dumps(row) + "\n"); out.flush()
