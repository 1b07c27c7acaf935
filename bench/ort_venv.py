"""The bench scripts' ONNX Runtime interpreter: ONNX Runtime lives on PyPI only, so scripts that need
it re-run themselves under an interpreter that has it: --python, else the current one when it
imports the modules, else bench/.venv (created from PyPI on first use). Never a mixq dependency."""
import importlib
import os
import subprocess
import sys

VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv")


def rerun_under_ort(python, script, modules=("onnxruntime", "onnx", "numpy"), child_var="MIXQ_ORT_CHILD"):
    """Returns when this process is the one to run (already the child, or the modules import);
    otherwise runs `script` with the same arguments under the chosen interpreter and exits."""
    if os.environ.get(child_var):
        return
    py = python
    if not py:
        try:
            for m in modules:
                importlib.import_module(m)
            return
        except ImportError:
            py = os.path.join(VENV, "bin", "python")
            if not os.path.exists(py):
                subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
            subprocess.run([py, "-m", "pip", "install", "-q", *modules], check=True)
    env = dict(os.environ, **{child_var: "1"})
    sys.exit(subprocess.run([py, os.path.abspath(script)] + sys.argv[1:], env=env).returncode)
