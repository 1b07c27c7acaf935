"""The HTML reports render in headless Chromium with every section on screen and nothing loaded
from outside the file (bench/report_screenshots.py does the work)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_path

ROOT = Path(__file__).resolve().parents[2]


def test_reports_render_in_chromium(tmp_path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium not installed (scripts/setup.sh installs it)")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "report_screenshots.py"), "--mixq", cli_path(),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list(tmp_path.glob("*.png"))) >= 10
