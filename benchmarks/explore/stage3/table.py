"""Markdown table of seeds.jsonl: stage PSNRs of every paper-settings run, stage 3 along the fit."""
import json
from pathlib import Path

rows = [json.loads(line) for line in Path(__file__).with_name("seeds.jsonl").read_text().splitlines()]
steps = ["300", "1000", "2000"]
print("| image | input | noise draw | init seed | stage-3 lr | stage 1 | stage 2 | stage 3 at step "
      + " / ".join(steps) + " |")
print("|---|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (r["image"], r.get("lr3") or 1e-3, r["mode"], r["draw"], r["seed"])):
    lr = r.get("lr3") or 1e-3
    trace = " / ".join(f"{r['trace'][s]:.2f}" for s in steps)
    print(f"| {r['image']} | {'min-max' if r['mode'] == 'norm' else 'as is'} | {r['draw']} | {r['seed']} | {lr:g} "
          f"| {r['s1']:.2f} | {r['s2']:.2f} | {trace} |")
