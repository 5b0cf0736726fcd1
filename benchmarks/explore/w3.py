# Scratch sweep (issue 14, second round), kept in git history only; ran against the engine of its day (w3: before opponent colours; w5: before groups of 64/32) on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66) and /tmp/exp/second (second.py, history at fc62d69).
# Scratch (issue 14): filtering variants on cached fast outputs (/tmp/exp/s3all/*.npz, "A" = fast detail seed 0)
import sys, glob, json, time, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine.stabilise import estimate_noise
from napari_noise2detail.engine import wiener as W
names = {"fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "histo_IHC_(RGB)": "histo IHC (RGB)",
         "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50", "confocal_plane_30_dim": "confocal plane 30, dim"}
ORIG = W._filter_groups
OPP = torch.tensor([[1/3**.5]*3, [1/2**.5, 0, -1/2**.5], [1/6**.5, -2/6**.5, 1/6**.5]])
STATE = {"T": None, "hard": None}

def groups(both, index, a, b, spatial, across, kaiser, sums):
    noisy, guide = both[:, index].chunk(2)
    gm = guide.mean(dim=(2, 3))  # (C, refs)
    T = STATE["T"]
    if T is not None:
        var = a[:, None] * (T.T @ gm) + b[:, None]
        var = (T ** 2) @ var
    else:
        var = a[:, None] * gm + b[:, None]
    variance = var.clamp_min(1e-12)[..., None, None]
    coefficients = across @ noisy @ spatial.T
    if STATE["hard"] is not None:
        keep = (coefficients.abs() > STATE["hard"] * variance.sqrt() / 1.5 ** .5).float()  # undo margin
        estimate = across.T @ (keep * coefficients) @ spatial
        weight = 1.0 / (variance[..., 0, 0] / 1.5 * keep.sum(dim=(2, 3)).clamp_min(1)).sum(0).clamp_min(1e-20)
    else:
        power = (across @ guide @ spatial.T) ** 2
        gain = power / (power + variance)
        estimate = across.T @ (gain * coefficients) @ spatial
        weight = 1.0 / (variance[..., 0, 0] * (gain ** 2).sum(dim=(2, 3))).sum(0).clamp_min(1e-20)
    weights = (weight[:, None, None] * kaiser).expand(index.shape)
    sums.index_add_(1, index.reshape(-1), torch.cat([estimate * weights, weights[None]]).reshape(len(sums), -1))
W._filter_groups = groups

def run(y, g, noise, T=None, hard=None, **kw):
    STATE["T"], STATE["hard"] = T, hard
    clamp = torch.Tensor.clamp_
    if T is not None:
        y = torch.einsum("kc,nchw->nkhw", T, y); g = torch.einsum("kc,nchw->nkhw", T, g)
        torch.Tensor.clamp_ = lambda self, lo, hi: self
    try:
        o = W.collaborative_wiener(y, g, noise, **kw)
    finally:
        torch.Tensor.clamp_ = clamp
    if T is not None:
        o = torch.einsum("kc,nkhw->nchw", T, o)
    return o.clamp(0, 1)

variants = sys.argv[2].split(",")
out = open(sys.argv[1], "a")
pattern = sys.argv[3] if len(sys.argv) > 3 else "*"
for fn in sorted(glob.glob(f"/tmp/exp/s3all/{pattern}.npz")):
    stem = fn.split("/")[-1][:-4]; img, kind = stem.rsplit("_", 1); name = names[img]
    z = dict(np.load(fn)); clean = z["clean"]; rgb = clean.ndim == 3
    noisy = add_noise(clean, kind, case_seed(name, kind)).astype(np.float32)
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a if rgb else a[..., None]).astype(np.float32)).permute(2, 0, 1)[None]
    back = lambda t: (t[0].permute(1, 2, 0).numpy() if rgb else t[0, 0].numpy())
    est = estimate_noise(np.moveaxis((noisy if rgb else noisy[..., None])[None], -1, 1))
    C = 3 if rgb else 1
    noise = None if est is None else (torch.full((C,), est.a), torch.full((C,), max(est.b, 0)))
    y, A = chw(noisy), chw(z["A"])
    row = {"case": stem, "A": psnr(z["A"], clean)}
    cache = {}
    for v in variants:
        t0 = time.perf_counter()
        T = OPP if (rgb and "opp" in v) else None
        if v in ("base", "opp"):
            r = run(y, A, noise, T)
        elif v.startswith("ht"):  # hard-threshold estimate matched on fast's output
            r = run(y, A, noise, T, hard=2.7)
        elif v.startswith("htw"):
            pass
        if v in ("wht", "whtopp", "wmix", "wmixopp"):
            key = "h" + ("opp" if T is not None else "")
            if key not in cache:
                cache[key] = run(y, A, noise, T, hard=2.7)
            H = cache[key]
            guide = H if v.startswith("wht") else (H + A) / 2
            r = run(y, guide, noise, T)
        row[v] = psnr(back(r).astype(np.float64), clean); row["t_" + v] = time.perf_counter() - t0
    print(json.dumps({k: round(x, 3) if isinstance(x, float) else x for k, x in row.items()}), flush=True)
    out.write(json.dumps(row) + "\n"); out.flush()
