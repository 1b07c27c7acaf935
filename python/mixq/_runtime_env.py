"""The OpenBLAS / libgomp settings the `mixq` command line gives itself (core/runtime_env.h), for a
Python process: both libraries read them once, when they are loaded, and the CLI re-executes
itself to apply them, which a Python process cannot do. So, when `mixq` is imported before anything
has loaded OpenBLAS or libgomp (numpy, torch), it asks the library in a short child process which
variables this machine needs (OpenBLAS misdetecting a recent CPU as SSE-only runs every float
matmul 2-3x slower, and with other kernels its sums round differently from the CLI's) and sets them
in os.environ before loading anything. Imported after numpy or torch, it is too late: mixq then
warns once with the variables to export. MIXQ_NO_RUNTIME_ENV=1 turns this off, as for the CLI."""

import os
import subprocess
import sys
import warnings

_PROBE = "MIXQ_RUNTIME_ENV_PROBE"


def _libraries_loaded():
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return True  # cannot tell: leave the process as it is
    return any(lib in maps for lib in ("libopenblas", "libgomp", "libblas.so", "libtorch_cpu"))


def apply():
    """Sets the variables when it still can. Returns the list applied (or "" / None)."""
    if os.environ.get(_PROBE) or os.environ.get("MIXQ_NO_RUNTIME_ENV", "0") not in ("", "0"):
        return ""
    done = os.environ.get("MIXQ_RUNTIME_ENV_DONE")
    if done is not None:
        return done
    if _libraries_loaded():
        return None
    if os.environ.get("OPENBLAS_CORETYPE") and (os.environ.get("OMP_WAIT_POLICY") or os.environ.get("GOMP_SPINCOUNT")):
        return ""  # the user chose both: nothing left to decide (the CLI would change nothing either)
    env = dict(os.environ)
    env[_PROBE] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        r = subprocess.run([sys.executable, "-c", "from mixq import _mixq; print(_mixq.runtime_env_changes())"],
                           env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    changes = r.stdout.strip()
    for kv in changes.split():
        k, _, v = kv.partition("=")
        os.environ.setdefault(k, v)
    os.environ["MIXQ_RUNTIME_ENV_DONE"] = changes  # children (and the CLI) take the same settings
    return changes


def warn_if_late(changes_now):
    """After the extension loaded: if the settings could not be applied and this machine wants
    some, say which to export."""
    if changes_now and os.environ.get("MIXQ_RUNTIME_ENV_DONE") is None and not os.environ.get(_PROBE):
        warnings.warn(f"mixq was imported after numpy/torch loaded OpenBLAS and libgomp, so their settings for this "
                      f"machine ({changes_now}) could not be applied: float math runs slower and may round differently "
                      f"from the mixq CLI. Export them before starting Python, or import mixq first.",
                      RuntimeWarning, stacklevel=3)
