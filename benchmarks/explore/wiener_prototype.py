# Scratch sweep (issue 14), kept in git history only. Run from /work/main with the venv; writes npz outputs under /tmp/exp.
"""Scratch prototype: BM3D's second step (collaborative Wiener filtering) with an N2D pilot."""
import math, numpy as np, torch, torch.nn.functional as F
from napari_noise2detail.engine.bank import similar_pixels

def dct_matrix(n):
    k = torch.arange(n, dtype=torch.float64)[:, None]; i = torch.arange(n, dtype=torch.float64)[None]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.float()

def haar_matrix(n):
    if n == 1: return torch.ones(1, 1)
    h = haar_matrix(n // 2)
    top = torch.kron(h, torch.tensor([[1.0, 1.0]])); bot = torch.kron(torch.eye(n // 2), torch.tensor([[1.0, -1.0]]))
    m = torch.cat([top, bot]); return m / m.norm(dim=1, keepdim=True)

def wiener_step(y, pilot, variance, members=16, window=21, patch=8, match=7, stride=3, kaiser=2.0, group="haar", chunk=4096):
    """y, pilot: (C, H, W) float32 tensors; variance(signal tensor) -> noise variance tensor."""
    c, h, w = y.shape
    bank = similar_pixels(pilot[None], members, window, match)[0].reshape(members, -1)  # (K, HW) flat indices
    lo, hi = (patch - 1) // 2, patch // 2
    pad = lambda t: F.pad(t[None], (lo, hi, lo, hi), mode="reflect")[0]
    yp, pp = pad(y), pad(pilot)
    W2 = w + patch - 1
    off = (torch.arange(patch)[:, None] * W2 + torch.arange(patch)[None]).reshape(-1)  # (p*p,)
    rows = torch.arange(0, h, stride); cols = torch.arange(0, w, stride)
    if rows[-1] != h - 1: rows = torch.cat([rows, torch.tensor([h - 1])])
    if cols[-1] != w - 1: cols = torch.cat([cols, torch.tensor([w - 1])])
    refs = (rows[:, None] * w + cols[None]).reshape(-1)
    D = dct_matrix(patch); D2 = torch.kron(D, D)  # (p2, p2)
    G = haar_matrix(members) if group == "haar" else dct_matrix(members)
    kw = torch.kaiser_window(patch, periodic=False, beta=kaiser) if kaiser else torch.ones(patch)
    kw2 = (kw[:, None] * kw[None]).reshape(-1)
    num = torch.zeros(c, yp.shape[1] * yp.shape[2]); den = torch.zeros(yp.shape[1] * yp.shape[2])
    yf, pf = yp.reshape(c, -1), pp.reshape(c, -1)
    for s in range(0, len(refs), chunk):
        r = refs[s:s + chunk]
        m = bank[:, r].T  # (R, K) flat indices in h x w
        tl = (m // w) * W2 + (m % w)  # top-left in padded flat coords
        idx = tl[..., None] + off  # (R, K, p2)
        Y = yf[:, idx]; P = pf[:, idx]  # (C, R, K, p2)
        Yc = G @ Y @ D2.T; Pc = G @ P @ D2.T
        var = variance(P.mean(dim=(2, 3))).clamp_min(1e-10)[..., None, None]  # (C, R, 1, 1)
        Wt = Pc ** 2 / (Pc ** 2 + var)
        est = G.T @ (Wt * Yc) @ D2  # (C, R, K, p2)
        wg = 1.0 / (var[..., 0, 0] * (Wt ** 2).sum(dim=(2, 3))).clamp_min(1e-12)  # (C, R)
        wg = wg.mean(0)  # one weight per group over channels
        wts = (wg[:, None, None] * kw2).expand(idx.shape)  # (R, K, p2)
        den.index_add_(0, idx.reshape(-1), wts.reshape(-1))
        num.index_add_(1, idx.reshape(-1), (est * wts).reshape(c, -1))
    out = (num / den.clamp_min(1e-12)).reshape(c, yp.shape[1], yp.shape[2])
    return out[:, lo:lo + h, lo:lo + w]
