import time, json, torch
torch.set_num_threads(1)
from proto import *
y = to_tensor(np.random.rand(512, 512))
gen = torch.Generator().manual_seed(0)
f = new_net(48, 0)
smp = crop_sampler(y, y, None, 1, gen)
train(f, lambda u: u - f(u), smp, 2, 1e-3, 'step')
n = 15
t = time.perf_counter(); train(f, lambda u: u - f(u), smp, n, 1e-3, 'step'); dt = (time.perf_counter() - t) / n
t = time.perf_counter(); s1 = denoise_residual(f, y, None); s2 = refine(f, y, s1, None); inf = time.perf_counter() - t
rec = dict(tag="paper512_extrapolated", step_ms=round(dt * 1000, 1), inference_s=round(2 * inf, 2),
           paper_s=round(4000 * dt + 2 * inf, 1))
print(json.dumps(rec), flush=True)
open("/work/main/benchmarks/explore/results.jsonl", "a").write(json.dumps(rec) + "\n")
