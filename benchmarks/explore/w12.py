# Scratch sweep (issue 14, second round), kept in git history only; ran against the engine of its day (w3: before opponent colours; w5: before groups of 64/32) on the fast outputs under /tmp/exp/s3all (stage3_pilots.py, history at dde2f66) and /tmp/exp/second (second.py, history at fc62d69).
import sys, numpy as np, torch, bm3d
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
from common import add_noise, psnr
from quality import case_seed
from napari_noise2detail.engine import wiener as W
z = dict(np.load("/tmp/exp/s3all/confocal_plane_30_dim_gauss25.npz")); clean = z["clean"]
noisy = add_noise(clean, "gauss25", case_seed("confocal plane 30, dim", "gauss25")).astype(np.float32)
t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None, None]
b = np.clip(bm3d.bm3d(noisy, 25/255), 0, 1)
w = W.collaborative_wiener(t(noisy), t(z["A"]), None)[0, 0].numpy()
bg = clean < np.percentile(clean, 60)
for name, x in (("fast", z["A"]), ("ours", w), ("bm3d", b)):
    e = x - clean
    print(name, "mse bg %.2e fg %.2e  bias bg %.4f fg %.4f  var bg %.2e" % ((e[bg]**2).mean(), (e[~bg]**2).mean(), e[bg].mean(), e[~bg].mean(), e[bg].var()))
print("clean bg mean", clean[bg].mean(), "noisy bg mean", noisy[bg].mean())
