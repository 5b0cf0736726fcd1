# Scratch sweep (issue 14, second round), kept in git history only; ran against the engine of its day (w3: before opponent colours; w5: before groups of 64/32) on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66) and /tmp/exp/second (second.py, history at fc62d69).
# Scratch (issue 14): per-group size by the guide distance of the 64th member (BM3D's tau rule)
import sys, glob, json, time, numpy as np, torch
import torch.nn.functional as F
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine.stabilise import estimate_noise
from napari_noise2detail.engine import wiener as W, bank as B
names = {"fluo_nuclei": "fluo nuclei", "EM_(4x4_binned)": "EM (4x4 binned)", "histo_IHC_(RGB)": "histo IHC (RGB)",
         "phase_cell": "phase cell", "confocal_plane_50": "confocal plane 50", "confocal_plane_30_dim": "confocal plane 30, dim"}
STATE = {"tau": None}
DIST = {}
orig_bank = B._plane_bank
def plane_bank(guide, members, window, patch, chunk, step, first):
    # copy of the engine's, also keeping sorted distances
    _n, _c, h, w = guide.shape
    picked = (slice(first[0], None, step), slice(first[1], None, step))
    r, q = window // 2, patch // 2
    pad = r + q
    padded = F.pad(guide.float(), (pad, pad, pad, pad), mode="reflect").permute(0, 2, 3, 1)
    centre = padded[:, r : r + h + 2 * q, r : r + w + 2 * q, :, None]
    offsets = B._window_offsets(window, guide.device)
    rows = torch.arange(h)[picked[0], None, None]; cols = torch.arange(w)[None, picked[1], None]
    best = torch.full((1, len(rows), cols.shape[1], members), float("inf"))
    found = torch.zeros_like(best, dtype=torch.int32)
    for start in range(0, len(offsets), chunk):
        part = offsets[start : start + chunk]
        shifted = torch.stack([padded[:, r + dy : r + dy + h + 2 * q, r + dx : r + dx + w + 2 * q] for dy, dx in part.tolist()], dim=-1)
        distance = B._box_sum(((shifted - centre) ** 2).sum(3), patch)[:, picked[0], picked[1]]
        src_rows, src_cols = rows + part[:, 0], cols + part[:, 1]
        outside = (src_rows < 0) | (src_rows >= h) | (src_cols < 0) | (src_cols >= w)
        distance = distance.masked_fill(outside, float("inf")).masked_fill((part == 0).all(-1), -1.0)
        index = (src_rows.clamp(0, h - 1) * w + src_cols.clamp(0, w - 1)).int().expand(1, -1, -1, -1)
        best, which = torch.cat([best, distance], dim=-1).topk(members, dim=-1, largest=False, sorted=False)
        found = torch.cat([found, index], dim=-1).gather(-1, which)
    best, order = best.sort(dim=-1, stable=True)
    DIST["last"] = best[0, ..., -1] / (guide.shape[1] * patch * patch)  # (H', W') per-pixel distance of the last member
    return found.gather(-1, order).long().permute(0, 3, 1, 2).contiguous()
B._plane_bank = plane_bank

def plane(y, guide, a, b, mix, members, window, patch, match, stride, tile, origin, transforms):
    channels, h, w = y.shape
    lo, hi = (patch - 1) // 2, patch // 2
    both = F.pad(torch.cat([y, guide])[None], (lo, hi, lo, hi), mode="reflect")[0].reshape(2 * channels, -1)
    wp = w + patch - 1
    offsets = (torch.arange(patch)[:, None] * wp + torch.arange(patch)).reshape(-1)
    sums = torch.zeros(channels + 1, both.shape[1])
    spatial, across, kaiser = transforms
    small = W.haar_matrix(members // 2)
    reach = window // 2 + match // 2
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            r0 = top + (-(top + origin[0])) % stride; c0 = left + (-(left + origin[1])) % stride
            rt, rl = max(top - reach, 0), max(left - reach, 0)
            rb, rr = min(bottom + reach, h), min(right + reach, w)
            region = guide[None, :, rt:rb, rl:rr]
            bank = W.similar_pixels(region, members, window, match, step=stride, first=(r0 - rt, c0 - rl))[0]
            dist = DIST["last"]
            ir = (torch.arange(bank.shape[1]) * stride + r0) < bottom
            ic = (torch.arange(bank.shape[2]) * stride + c0) < right
            bank = bank[:, ir][:, :, ic]; dist = dist[ir][:, ic]
            # variance at the reference (model channels), mean over channels
            rr_ = (torch.arange(bank.shape[1]) * stride + r0)[:, None]; cc_ = (torch.arange(bank.shape[2]) * stride + c0)[None]
            g_ref = guide[:, rr_, cc_]  # (C, H', W') mixed channels
            signal = torch.einsum("kc,khw->chw", mix, g_ref)
            var = (a[:, None, None] * signal + b[:, None, None]).mean(0)
            big = (dist < STATE["tau"] * var).reshape(-1) if STATE["tau"] is not None else torch.ones(dist.numel(), dtype=torch.bool)
            rw = rr - rl
            starts = ((bank // rw + rt) * wp + bank % rw + rl).reshape(members, -1).T
            DIST.setdefault("big", []).append(float(big.float().mean()))
            for sel, m, acr in ((big, members, across), (~big, members // 2, small)):
                s = starts[sel][:, :m]
                for first in range(0, len(s), W.GROUPS):
                    index = s[first : first + W.GROUPS, :, None] + offsets
                    W._filter_groups(both, index, a, b, mix, spatial, acr, kaiser, sums)
    hp = h + patch - 1
    return (sums[:-1] / sums[-1].clamp_min(1e-20)).reshape(channels, hp, wp)[:, lo : lo + h, lo : lo + w]
W._plane = plane

taus = [float(t) for t in sys.argv[2].split(",")]
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
    row = {"case": stem}
    for tau in taus:
        STATE["tau"] = tau; DIST.clear(); t0 = time.perf_counter()
        r = W.collaborative_wiener(chw(noisy), chw(z["A"]), noise, colour=rgb, members=64, stride=4)
        row[f"t{tau}"] = psnr(back(r).astype(np.float64), clean); row[f"f{tau}"] = float(np.mean(DIST["big"])); row[f"s{tau}"] = time.perf_counter() - t0
    print(json.dumps({k: round(x, 3) if isinstance(x, float) else x for k, x in row.items()}), flush=True)
    out.write(json.dumps(row) + "\n"); out.flush()
