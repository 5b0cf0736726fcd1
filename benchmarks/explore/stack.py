"""Stack strategies: 20 planes 256x256 with drift; scratch vs warm start.
python stack.py STACKNAME NOISE STRATEGIES(python list of (tag, dict))"""
import json, sys, time, torch
torch.set_num_threads(1)
import numpy as np
from proto import *

BASE = dict(s1=800, s3=800, crop=32, batch=4, lr1=3e-3, lr3=1e-3, sched1="cosine", sched3="step", zero1=True)


def make_stack(name, n=20, step=4):
    if name == "em":
        a = tifffile.imread("/work/shared/data/em_sem_rbc_membrane_skeleton_2d.tif").astype(np.float64) / 255.0
        t0, l0 = 384, 640
    elif name == "fluo":
        a = tifffile.imread("/work/shared/data/fluo_nuclei_dsb2018_2d.tif").astype(np.float64)
        a = a / a.max(); t0, l0 = 180, 0
    elif name == "camera":
        a = skdata.camera().astype(np.float64) / 255.0; t0, l0 = 128, 128
    return np.stack([a[t0 + step * k: t0 + step * k + 256, l0 + (step // 2) * k: l0 + (step // 2) * k + 256] for k in range(n)])


def main():
    name, noise = sys.argv[1], sys.argv[2]
    strategies = eval(sys.argv[3])
    clean_stack = make_stack(name)
    noisy = np.stack([add_noise(c, noise, seed=100 + k) for k, c in enumerate(clean_stack)]).astype(np.float32)
    for tag, st in strategies:
        t = time.perf_counter(); init = None; ps = []; cost = 0
        for k in range(len(noisy)):
            lo, hi = float(noisy[k].min()), float(noisy[k].max())
            y = to_tensor((noisy[k].astype(np.float64) - lo) / (hi - lo))
            cfg = dict(BASE, **st.get("first", {})) if (k == 0 or init is None) else dict(BASE, **st["next"])
            s1, s2, s3, f, g, c = n2d(y, cfg, 0, init if k > 0 else None)
            cost += c
            if st.get("warm"):
                if st.get("anchor") and k > 0:
                    pass  # keep plane-0 networks
                else:
                    init = dict(f={kk: v.clone() for kk, v in f.state_dict().items()},
                                g={kk: v.clone() for kk, v in g.state_dict().items()})
            ps.append(psnr(s3[0, 0].double().numpy() * (hi - lo) + lo, clean_stack[k]))
        secs = time.perf_counter() - t
        rec = dict(tag=tag, stack=name, noise=noise, strategy=st, secs=round(secs, 1), cost_mpx=round(cost / 1e6, 2),
                   mean_p3=round(float(np.mean(ps)), 3), p3=[round(p, 2) for p in ps])
        with open("/work/main/benchmarks/explore/stack.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
