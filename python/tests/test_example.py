"""examples/quantize_torch_model.py runs as the README shows it, and its packed model scores what
the simulation scored."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_example_trains_quantizes_and_runs_packed():
    pytest.importorskip("torch")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quantize_torch_model.py")], capture_output=True,
                       text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    quant = float(re.search(r"quantized: top-1 ([\d.]+)%", r.stdout).group(1))
    packed = float(re.search(r"runtime top-1 ([\d.]+)%", r.stdout).group(1))
    flt = float(re.search(r"float model: top-1 ([\d.]+)%", r.stdout).group(1))
    assert flt > 80 and quant > flt - 2, r.stdout
    assert abs(packed - quant) <= 0.1, r.stdout  # the runtime runs what the simulation measured
