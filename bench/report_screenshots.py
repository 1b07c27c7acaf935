#!/usr/bin/env python3
"""Renders mixq's HTML reports in headless Chromium and checks every section on screen.

    /usr/bin/python3 bench/report_screenshots.py [--mixq build/mixq] [--out bench/results/report_screens]

Makes two reports on the bundled ResNet fixture (`quantize --search ip --report-html`: summary,
front with the chosen plan, bits per layer, sensitivity heatmap, predicted vs measured, settings;
`pareto --report-html`: the front and the heatmap), checks that each file references nothing
outside itself (no URL, no src/href but in-page anchors), then photographs each <section> alone
(a copy of the file with the other sections hidden) and checks the picture is not blank: enough
non-white pixels, and for the charts enough distinct colours. PNGs and a summary land in --out.
Exit status 1 when a check fails. python/tests/test_report_html.py runs it."""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Per section: least share of non-white pixels, least distinct colours (charts draw several).
CHECKS = {"summary": (0.004, 2), "front": (0.01, 4), "bits": (0.01, 3), "sensitivity": (0.01, 6),
          "predicted": (0.002, 2), "settings": (0.004, 2)}


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def external_refs(html):
    """Anything that would load from outside the file."""
    bad = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'<>]*", html)
    bad += [m for m in re.findall(r"(?:src|href)\s*=\s*[\"']([^\"']*)", html) if not m.startswith("#")]
    bad += re.findall(r"@import|url\(", html)
    return bad


def shoot(browser, html_path, section, png, width=1000, height=760):
    html = html_path.read_text()
    iso = html.replace("</style>", "section:not(#%s){display:none}h1{display:none}</style>" % section, 1)
    with tempfile.TemporaryDirectory() as d:
        page = Path(d) / "page.html"
        page.write_text(iso)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--force-device-scale-factor=1", f"--window-size={width},{height}",
                        f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)


def ink(png):
    from PIL import Image
    im = Image.open(png).convert("RGB")
    px = list(im.getdata())
    nonwhite = sum(1 for p in px if min(p) < 235)
    colours = len({p for p in px if min(p) < 235})
    return nonwhite / len(px), colours


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mixq", default=str(ROOT / "build" / "mixq"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "report_screens"))
    a = ap.parse_args()
    browser = chromium()
    if not browser:
        print("chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model = ROOT / "models" / "fmnist-resnet.onnx"
    common = ["--calib", "fmnist:train:256", "--sens-samples", "128", "-q"]
    with tempfile.TemporaryDirectory() as d:
        q, p = out / "quantize.html", out / "pareto.html"
        subprocess.run([a.mixq, "quantize", model, "--search", "ip", "--budget-bits", "4", "--eval", "fmnist:test:500",
                        "--report-html", q, *common], check=True)
        subprocess.run([a.mixq, "pareto", model, "--table-out", Path(d) / "t.json", "--report-html", p, *common],
                       check=True)
        results, ok = [], True
        for report in (q, p):
            html = report.read_text()
            refs = external_refs(html)
            if refs:
                ok = False
                print(f"{report.name}: external references {refs[:5]}")
            for sec in re.findall(r'<section id="([\w-]+)"', html):
                png = out / f"{report.stem}-{sec}.png"
                shoot(browser, report, sec, png)
                share, colours = ink(png)
                need_share, need_colours = CHECKS.get(sec, (0.004, 2))
                good = share >= need_share and colours >= need_colours
                ok &= good
                results.append({"report": report.name, "section": sec, "png": png.name, "ink_share": round(share, 4),
                                "colours": colours, "ok": good})
                print(f"{report.name} #{sec}: {100 * share:.2f}% ink, {colours} colours -> {'ok' if good else 'BLANK?'}")
        expected = {("quantize.html", s) for s in ("summary", "front", "bits", "sensitivity", "predicted", "settings")}
        expected |= {("pareto.html", s) for s in ("summary", "front", "sensitivity", "settings")}
        missing = expected - {(r["report"], r["section"]) for r in results}
        if missing:
            ok = False
            print(f"missing sections: {sorted(missing)}")
        (out / "summary.json").write_text(json.dumps({"ok": ok, "sections": results}, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
