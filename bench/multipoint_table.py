#!/usr/bin/env python3
"""Multipoint table for BENCHMARKS.md (issue 19, item 3): multipoint quantization at W3 and W4
(activations 8-bit) with 0, 5, 10 and 20% extra points, against uniform (the same method with 0
extra points: MSE / Lp p = 2.4 ranges, per-channel weights, first and last layer 8-bit) and against
the IP allocator (`--search ip --budget-bytes`, same MSE ranges) at the byte size each multipoint
row reached; plus the packed runtime's latency with and without the extra points (1 thread,
batch 1 and batch 64, `mixq bench`, measured right after each other in the same run).

Calibration: the first 1024 training images (multipoint's output errors on the first 256 of them,
--mp-samples); top-1 on the full Fashion-MNIST test set; output SQNR vs the float model.

Rows accumulate in bench/results/multipoint_table.json as they finish (a rerun skips rows already
there) and the markdown table is printed from all rows.

  python3 bench/multipoint_table.py [--models resnet,mobilenetv2,vit] [--wbits 3,4]
      [--extras 0,0.05,0.1,0.2] [--no-latency] [--markdown-only]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "multipoint_table.json")


def quantize(mixq, model, args, pack=None):
    cmd = [mixq, "quantize", os.path.join(ROOT, "models", f"fmnist-{model}.onnx"), "--calib", "fmnist:train:1024",
           "--abits", "8", "--eval", "fmnist:test", "--json", "-q", "--seed", "0"] + args
    if pack:
        cmd += ["--pack", pack]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1], "cmd": " ".join(cmd[1:])}
    r = json.loads(p.stdout)
    fid = (r.get("fidelity") or {})
    sqnr = None
    if isinstance(fid, dict) and fid.get("outputs"):
        sqnr = fid["outputs"][0].get("sqnr_db")
    elif isinstance(fid, list) and fid:
        sqnr = fid[0].get("sqnr_db")
    m = r.get("method_report", {})
    return {"top1": r["top1_quant"], "top1_float": r["top1_float"], "size_bytes": r["size_bytes"],
            "avg_wbits": r["avg_wbits"], "gbops": r["bops"] / 1e9, "sqnr_db": sqnr, "seconds": r["seconds"],
            "points": m.get("points"), "mp_seconds": m.get("seconds"), "wall": time.time() - t0,
            "cmd": " ".join(cmd[1:])}


def bench(mixq, path):
    p = subprocess.run([mixq, "bench", path, "--json", "-q", "--threads", "1", "--runs", "300", "--runs64", "20"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1:]}
    r = json.loads(p.stdout)
    return {"b1_cpu_ms": r["batch1_cpu_ms"], "b64_cpu_ms": r["batch64_cpu_ms"]}


def markdown(rows, models, wbits_list):
    out = []
    for model in models:
        for wb in wbits_list:
            mrows = {k: v for k, v in rows.items() if k.startswith(f"{model}|W{wb}|") and "error" not in v}
            if not mrows:
                continue
            base = mrows.get(f"{model}|W{wb}|mp|0")
            fl = next((v["top1_float"] for v in mrows.values() if v.get("top1_float") is not None), None)
            out.append(f"\n**{model} W{wb}A8** (float {fl:.2f}%)" if fl else f"\n**{model} W{wb}A8**")
            out.append("| extra points | points | size bytes | avg bits | GBOPs | top-1 | SQNR dB | multipoint s | "
                       "IP at these bytes: top-1 / SQNR / avg bits | runtime b1 ms (vs 0%) | b64 ms (vs 0%) |")
            out.append("|---|---|---|---|---|---|---|---|---|---|---|")
            for k in sorted((k for k in mrows if "|mp|" in k), key=lambda k: float(k.split("|")[-1])):
                v = mrows[k]
                e = k.split("|")[-1]
                ip = mrows.get(f"{model}|W{wb}|ip|{e}")
                ipc = (f"{ip['top1']:.2f} / {ip['sqnr_db']:.2f} / {ip['avg_wbits']:.2f}" if ip else "")
                lat = v.get("latency") or {}
                b0 = (base or {}).get("latency") or {}
                def rel(key):
                    if key not in lat:
                        return ""
                    s = f"{lat[key]:.3f}"
                    return s + (f" ({lat[key] / b0[key]:.2f}x)" if key in b0 and e != "0" else "")
                out.append(f"| {float(e) * 100:.0f}% | {v['points']} | {v['size_bytes']} | {v['avg_wbits']:.2f} | "
                           f"{v['gbops']:.3f} | {v['top1']:.2f} | {v['sqnr_db']:.2f} | {v['mp_seconds'] or 0:.1f} | "
                           f"{ipc} | {rel('b1_cpu_ms')} | {rel('b64_cpu_ms')} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="resnet,mobilenetv2,vit")
    ap.add_argument("--wbits", default="3,4")
    ap.add_argument("--extras", default="0,0.05,0.1,0.2")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--markdown-only", action="store_true")
    a = ap.parse_args()
    models, wbits = a.models.split(","), [int(w) for w in a.wbits.split(",")]
    rows = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}

    def save():
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        tmp = RESULTS + ".tmp"
        json.dump(rows, open(tmp, "w"), indent=1)
        os.replace(tmp, RESULTS)

    if not a.markdown_only:
        with tempfile.TemporaryDirectory() as td:
            for model in models:
                table = os.path.join(td, f"{model}.sens.json")
                for wb in wbits:
                    packs = {}
                    for e in a.extras.split(","):
                        k = f"{model}|W{wb}|mp|{e}"
                        pack = os.path.join(td, f"{model}-{wb}-{e}.mxq")
                        if k not in rows or "error" in rows[k]:
                            rows[k] = quantize(a.mixq, model, ["--wbits", str(wb), "--method", "multipoint",
                                                                "--mp-extra", e], pack=pack)
                            print(k, rows[k].get("top1"), rows[k].get("size_bytes"), rows[k].get("error", ""),
                                  flush=True)
                            if not a.no_latency and "error" not in rows[k]:
                                packs[e] = pack
                            save()
                        ki = f"{model}|W{wb}|ip|{e}"
                        if float(e) > 0 and "error" not in rows[k] and (ki not in rows or "error" in rows[ki]):
                            sens = ["--sens-cache", table]
                            rows[ki] = quantize(a.mixq, model, ["--wbits", str(wb), "--search", "ip", "--method", "mse",
                                                                 "--budget-bytes", str(rows[k]["size_bytes"])] + sens)
                            print(ki, rows[ki].get("top1"), rows[ki].get("size_bytes"), rows[ki].get("error", ""),
                                  flush=True)
                            save()
                    # Latency of this model/bits' packs back to back (same machine state).
                    for e, pack in packs.items():
                        rows[f"{model}|W{wb}|mp|{e}"]["latency"] = bench(a.mixq, pack)
                    save()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
    print(f"\nCPU: {name}")
    print(markdown(rows, models, wbits))


if __name__ == "__main__":
    sys.exit(main())
