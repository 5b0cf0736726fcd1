# Scratch (issue 14, declipping), kept in git history only; on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66).
# Scratch (issue 14): undoing the clipping's bias (Foi 2009) on the no-estimate (clipped) cases
import sys, numpy as np, torch
from scipy.stats import norm
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine import wiener as W
names = {"fluo_nuclei": "fluo nuclei", "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50", "confocal_plane_30_dim": "confocal plane 30, dim", "EM_(4x4_binned)": "EM (4x4 binned)"}

def clipped_mean(x, s):
    # E[min(1, max(0, x + n))], n ~ N(0, s^2)
    a, b = (0 - x) / s, (1 - x) / s
    return (x * (norm.cdf(b) - norm.cdf(a)) + s * (norm.pdf(a) - norm.pdf(b)) + (1 - norm.cdf(b)))

def declip(z, s):
    xs = np.linspace(-4 * s, 1 + 4 * s, 4001)
    return np.clip(np.interp(z, clipped_mean(xs, s), xs), 0, 1)

for stem in sys.argv[1].split(","):
    img, kind = stem.rsplit("_", 1)
    z = dict(np.load(f"/tmp/exp/s3all/{stem}.npz")); clean = z["clean"]
    noisy = add_noise(clean, kind, case_seed(names[img], kind)).astype(np.float32)
    A = z["A"]; t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None, None]
    true = int(kind[5:]) / 255
    s = float(np.sqrt(((noisy - A) ** 2).mean()))
    for _ in range(5):  # the residual where the guide is away from the clip bounds
        m = (A > 2.5 * s) & (A < 1 - 2.5 * s)
        s = float(np.sqrt(((noisy - A)[m] ** 2).mean()))
    w = W.collaborative_wiener(t(noisy), t(A), None)[0, 0].numpy().astype(np.float64)
    wt = W.collaborative_wiener(t(noisy), t(A), (torch.zeros(1), torch.full((1,), s * s)))[0, 0].numpy().astype(np.float64)
    f = lambda x: round(psnr(x, clean), 2)
    print(stem, "sigma est/true %.3f" % (s / true), "clip frac %.3f" % float(((noisy <= 0) | (noisy >= 1)).mean()),
          "| fast", f(A), "->", f(declip(A, s)), "| quality", f(w), "->", f(declip(w, s)), "| quality(sigma est)", f(wt), "->", f(declip(wt, s)), flush=True)

def clipped_second(x, s):
    # E[min(1, max(0, x + n))^2]
    a, b = (0 - x) / s, (1 - x) / s
    Pa, Pb, pa, pb = norm.cdf(a), norm.cdf(b), norm.pdf(a), norm.pdf(b)
    return (x * x + s * s) * (Pb - Pa) + 2 * x * s * (pa - pb) + s * s * (a * pa - b * pb) + (1 - Pb)

def sigma_of(noisy, guide):
    lo, hi = 1e-3, 0.5
    for _ in range(40):
        s = (lo + hi) / 2
        x = declip(guide, s)
        if (noisy.astype(np.float64) ** 2).mean() > clipped_second(x, s).mean():
            lo = s
        else:
            hi = s
    return (lo + hi) / 2

print("moment-matched sigma")
for stem in sys.argv[1].split(","):
    img, kind = stem.rsplit("_", 1)
    z = dict(np.load(f"/tmp/exp/s3all/{stem}.npz")); clean = z["clean"]
    noisy = add_noise(clean, kind, case_seed(names[img], kind)).astype(np.float32)
    A = z["A"]; t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None, None]
    s = sigma_of(noisy, A)
    wt = W.collaborative_wiener(t(noisy), t(A), (torch.zeros(1), torch.full((1,), s * s)))[0, 0].numpy().astype(np.float64)
    f = lambda x: round(psnr(x, clean), 2)
    print(stem, "sigma/true %.3f" % (s / (int(kind[5:]) / 255)), "fast", f(A), "->", f(declip(A, s)), "quality(s)", f(wt), "->", f(declip(wt, s)), flush=True)
