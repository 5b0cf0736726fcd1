import time, torch
torch.set_num_threads(1)
from proto import *
y = to_tensor(np.random.rand(256,256))
for crop,batch in [(None,1),(128,2),(64,8),(64,4),(48,8),(32,16),(32,8),(32,4)]:
    gen=torch.Generator().manual_seed(0)
    f=new_net(48,0)
    n = 10 if crop is None else 30
    train(f, lambda u:u-f(u), crop_sampler(y,y,crop,batch,gen), 3, 1e-3,'step')
    t=time.perf_counter(); train(f, lambda u:u-f(u), crop_sampler(y,y,crop,batch,gen), n, 1e-3,'step'); dt=(time.perf_counter()-t)/n
    px=px_per_step(crop,batch,256,256)
    print(crop,batch,f"{dt*1000:.1f} ms/step  {dt/px*1e9:.1f} ns/px", flush=True)
