"""Ctrl-C from Python stops a long job at a safe point: mixq.Interrupted (a KeyboardInterrupt),
nothing written, the interpreter alive and able to run the next job."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import os, sys, time
    import mixq
    out = sys.argv[1]
    def progress(label, unit, done, total, secs, final):
        if done > 0:
            print("working", flush=True)
    t0 = time.time()
    try:
        mixq.quantize(sys.argv[2], calib="fmnist:train:256", method="brecq", iters=200000, output=out,
                      progress=progress)
        print("finished", flush=True)
    except mixq.Interrupted as e:
        assert isinstance(e, KeyboardInterrupt) and e.code == 130, e
        print("interrupted", e.code, round(time.time() - t0, 1), flush=True)
        print("output exists" if os.path.exists(out) else "no output", flush=True)
        # The interpreter goes on, and the next job runs (the flag was cleared, Python's handler back).
        r = mixq.quantize(sys.argv[2], calib="fmnist:train:32", wbits=8, quiet=True)
        print("next job", r.report["avg_wbits"], flush=True)
        try:
            os.kill(os.getpid(), 2)
            time.sleep(5)
        except KeyboardInterrupt:
            print("python handler back", flush=True)
""")


def test_ctrl_c_stops_a_long_run(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    out = tmp_path / "out.onnx"
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), str(ROOT / "models" / "fmnist-resnet.onnx")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.time() + 120
    for line in p.stdout:
        lines.append(line.strip())
        if line.startswith("working"):
            break
        if time.time() > deadline:
            break
    assert lines and lines[-1] == "working", (lines, p.stderr.read() if p.poll() is not None else "")
    time.sleep(1.0)  # inside the reconstruction loop
    t_signal = time.time()
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=120)
    lines += [l for l in rest.splitlines() if l != "working"]
    assert p.returncode == 0, (lines, err)
    assert any(l.startswith("interrupted 130") for l in lines), (lines, err)
    assert "no output" in lines and not out.exists()
    assert any(l.startswith("next job") for l in lines), (lines, err)
    assert "python handler back" in lines, (lines, err)
    assert time.time() - t_signal < 60
