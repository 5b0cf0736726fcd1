"""benchmarks/gpu.py on a machine without a GPU: it says so at once and exits 1."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the script would run its table")
def test_the_gpu_benchmark_exits_at_once_without_a_gpu():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 1
    assert "no CUDA GPU" in done.stderr and done.stdout == ""
