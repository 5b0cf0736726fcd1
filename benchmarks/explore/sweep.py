"""python sweep.py CASES CONFIGS   (python literals: [("camera","gauss25")], [("tag",{...})])"""
import ast, sys, torch; torch.set_num_threads(1)
from proto import run_case
cases = ast.literal_eval(sys.argv[1]); cfgs = eval(sys.argv[2])
size = int(sys.argv[3]) if len(sys.argv) > 3 else 256
for tag, cfg in cfgs:
    for im, nz in cases:
        run_case(im, nz, cfg, tag, size)
