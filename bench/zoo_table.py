#!/usr/bin/env python3
"""The zoo quality table (BENCHMARKS.md, "Models from the wild"): mixq vs ONNX Runtime's
quantize_static on every member of models/zoo/manifest.json, side by side in one run.

Per model:
  data     calibration and evaluation sets (bench/zoo_data.py under Debian's /usr/bin/python3:
           make_zoo.py's generators, other images/texts/files/seeds than the committed .in.npz)
  float    ONNX Runtime float outputs on the eval set (ORT_DISABLE_ALL, as bench/zoo_ref.py), and
           `mixq eval MODEL --data eval --reference ort.npz --json`: max relative error
  ORT      quant_pre_process, then quantize_static (QDQ, per-channel, activations uint8 asymmetric,
           weights int8 symmetric, MinMax calibration on the same calibration set, ORT's default
           op list); the quantized model runs in ORT on the eval set
  mixq     `mixq quantize MODEL --calib C --eval E --json --save-outputs Q.npz -o Q.onnx` for
           W8A8, W4A8 (uniform), `--search ip --budget-bits 4` and `--budget-bits 3` (abits 8)
Every fidelity figure is computed here, against ORT's float outputs, with mixq's formulas
(src/exec/fidelity.cpp): SQNR dB = 10 log10(sum ref^2 / sum err^2) per output over the whole
eval set; cosine = mean over samples of the per-sample cosine; top-1 agreement over the last
axis of [N, C] / [N, T, C] float outputs. mixq's own JSON fidelity (vs its float executor) is
kept in the rows as a cross-check. Each finished model is appended to --jsonl as one line.

ONNX Runtime is a verification tool only: by default this script re-runs itself in bench/.venv
(created from PyPI: onnxruntime, onnx, numpy, sympy); --python PY uses an interpreter that has them.

  python3 bench/zoo_table.py [--python PY] [--models a,b] [--calib-n 32] [--eval-n 32]
  python3 bench/zoo_table.py --table-only         # print the Markdown tables from --jsonl
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "models", "zoo")
DEBIAN_PY = "/usr/bin/python3"

# mixq's configurations: (key, label, extra CLI arguments)
MIXQ_CONFIGS = [
    ("w8a8", "mixq W8A8", ["--wbits", "8", "--abits", "8"]),
    ("w4a8", "mixq W4A8", ["--wbits", "4", "--abits", "8"]),
    ("ip4", "mixq IP 4-bit avg", ["--search", "ip", "--budget-bits", "4", "--abits", "8"]),
    ("ip3", "mixq IP 3-bit avg", ["--search", "ip", "--budget-bits", "3", "--abits", "8"]),
    # The same budgets with no layer pinned at 8 bits: where the pinned first/last layers hold most
    # of the weights (a 1000-class classifier, an embedding table) the pinned budgets are infeasible
    # and the IP can only return its minimum plan.
    ("ip4u", "mixq IP 4-bit avg, no pins", ["--search", "ip", "--budget-bits", "4", "--abits", "8", "--pin-bits", "0"]),
    ("ip3u", "mixq IP 3-bit avg, no pins", ["--search", "ip", "--budget-bits", "3", "--abits", "8", "--pin-bits", "0"]),
    # W8A8 with plain min-max ranges (what ORT's quantize_static uses), and the unpinned 4-bit plan
    # finished by AdaRound (label-free: it reconstructs each layer's float output) instead of the
    # rows' --method; its iterations per layer come from --recon-iters.
    ("w8a8mm", "mixq W8A8 min-max", ["--wbits", "8", "--abits", "8", "--method", "minmax"]),
    ("ip4ua", "mixq IP 4-bit avg, no pins, AdaRound",
     ["--search", "ip", "--budget-bits", "4", "--abits", "8", "--pin-bits", "0", "--method", "adaround"]),
]
# The op types mixq quantizes (its layers): ORT is also run restricted to these, for reference.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo_ref import sha256_file  # noqa: E402  (stdlib only at import time)

MIXQ_LAYER_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul", "Gather"]


def ensure_interpreter(args):
    """Re-runs this script under an interpreter with onnxruntime (bench/ort_venv.py)."""
    from ort_venv import rerun_under_ort
    rerun_under_ort(args.python, __file__, ("onnxruntime", "onnx", "numpy", "sympy"), "MIXQ_ZOO_TABLE_CHILD")


def data_stem(entry):
    return os.path.basename(entry["data"]).replace(".in.npz", "")


# ---------------------------------------------------------------------------------------------
# metrics (src/exec/fidelity.cpp, in NumPy)
# ---------------------------------------------------------------------------------------------
def fidelity(ref, test, names):
    import numpy as np
    out = []
    for n in names:
        r = np.asarray(ref[n], np.float64)
        t = np.asarray(test[n], np.float64)
        if r.shape != t.shape:
            out.append(dict(name=n, error=f"shape {list(t.shape)} vs reference {list(r.shape)}"))
            continue
        if r.ndim == 0:
            r, t = r.reshape(1), t.reshape(1)
        d = t - r
        sig, noise = float((r ** 2).sum()), float((d ** 2).sum())
        sqnr = math.inf if noise == 0 else 10 * math.log10(max(sig, 1e-300) / noise)
        rf, tf = r.reshape(r.shape[0], -1), t.reshape(t.shape[0], -1)
        den = np.linalg.norm(rf, axis=1) * np.linalg.norm(tf, axis=1)
        num = (rf * tf).sum(1)
        cos = np.where(den > 0, num / np.maximum(den, 1e-300), np.all(rf == tf, axis=1).astype(np.float64))
        o = dict(name=n, sqnr_db=sqnr, cosine=float(cos.mean()),
                 rel_err=float(np.abs(d).max() / max(float(np.abs(r).max()), 1e-6)) if d.size else 0.0,
                 top1_agreement=None)
        if np.issubdtype(np.asarray(ref[n]).dtype, np.floating) and r.ndim in (2, 3) and r.shape[-1] >= 2:
            o["top1_agreement"] = float(100.0 * (r.argmax(-1) == t.argmax(-1)).mean())
        out.append(o)
    return out


def task_metric(name, entry, ref, test):
    """The task's own figure where the output kind has one (named in the table's notes)."""
    import numpy as np
    outs = entry["outputs"]
    kinds = [o["kind"] for o in outs]
    first = outs[0]["name"]
    if name == "unet_seg":        # segmentation: per-pixel argmax class agreement
        r, t = ref[first], test[first]
        return "pixel agr.", float(100.0 * (r.argmax(1) == t.argmax(1)).mean())
    if name == "ocr_det":         # DBNet: IoU of the text mask at its 0.3 threshold
        r, t = ref[first] > 0.3, test[first] > 0.3
        union = float(np.logical_or(r, t).sum())
        return "mask IoU", float(100.0 * np.logical_and(r, t).sum() / union) if union else 100.0
    if name == "det_fpn":         # class of every anchor (scores [N, A, 3])
        r, t = ref["scores"], test["scores"]
        return "anchor cls agr.", float(100.0 * (r.argmax(-1) == t.argmax(-1)).mean())
    if "embedding" in kinds:      # embeddings: mean cosine of the embedding output
        n = outs[kinds.index("embedding")]["name"]
        r, t = ref[n].reshape(len(ref[n]), -1).astype(np.float64), test[n].reshape(len(test[n]), -1).astype(np.float64)
        c = (r * t).sum(1) / np.maximum(np.linalg.norm(r, axis=1) * np.linalg.norm(t, axis=1), 1e-300)
        return "emb. cosine", float(c.mean())
    if kinds[0] == "classes":
        r, t = ref[first], test[first]
        return "top-1 agr.", float(100.0 * (r.argmax(-1) == t.argmax(-1)).mean())
    return None, None


# ---------------------------------------------------------------------------------------------
# ONNX Runtime
# ---------------------------------------------------------------------------------------------
def ort_session(path, threads, level=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = level if level is not None else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_run(path, feeds, threads, level=None, batch=8):
    import numpy as np
    s = ort_session(path, threads, level)
    names = [o.name for o in s.get_outputs()]
    ins = [i.name for i in s.get_inputs()]
    n = len(next(iter(feeds.values())))
    parts = {k: [] for k in names}
    for b in range(0, n, batch):
        res = s.run(names, {k: feeds[k][b:b + batch] for k in ins})
        for k, v in zip(names, res):
            parts[k].append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def initializer_bytes(path):
    """Bytes of every initializer as stored (the QDQ model's tensors: int8 weights, int32 biases,
    float scales, zero points, float tensors left as they were): comparable to mixq's size_bytes."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    total = 0
    for t in m.graph.initializer:
        total += numpy_helper.to_array(t).nbytes
    for n in m.graph.node:       # Constant nodes hold tensors too
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    total += numpy_helper.to_array(a.t).nbytes
    return int(total)


def ort_pre_process(model, work):
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = os.path.join(work, "pre.onnx")
    t0 = time.perf_counter()
    try:
        quant_pre_process(model, pre)
        note = "ok"
    except Exception as e:   # noqa: BLE001 (symbolic shape inference fails on some models)
        note = f"symbolic shape inference failed ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
        try:
            quant_pre_process(model, pre, skip_symbolic_shape=True)
            note += "; pre-processed with skip_symbolic_shape=True"
        except Exception as e2:   # noqa: BLE001
            note += f"; without it: {type(e2).__name__}: {str(e2).splitlines()[0][:200] if str(e2) else ''}; " \
                    "quantized the raw model"
            pre = None
    return pre, note, time.perf_counter() - t0


def ort_quantize(model, pre, calib, evalset, names, work, threads, op_types=None, tag="ort"):
    import numpy as np
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    row = {}
    src = pre or model
    sess_inputs = [i.name for i in ort_session(model, 1).get_inputs()]

    class Reader(CalibrationDataReader):
        def __init__(self):
            n = len(next(iter(calib.values())))
            self.items = iter([{k: calib[k][i:i + 1] for k in sess_inputs} for i in range(n)])

        def get_next(self):
            return next(self.items, None)

    out = os.path.join(work, f"{tag}.q.onnx")
    # ORT's quantizer writes per-channel DequantizeLinear (axis: opset >= 13) into opset 11/12
    # models without upgrading them, and fails on some pre-processed models: then try the raw
    # model, and each converted to opset 13 (onnx.version_converter); the row says which worked.
    tries = [("pre-processed" if pre else "raw", src)] + ([("raw", model)] if pre else [])
    tries += [(f"{lbl}, converted to opset 13", p) for lbl, p in tries]
    errors = []
    for lbl, p in tries:
        if "opset 13" in lbl:
            import onnx
            from onnx import version_converter
            m = onnx.load(p)
            if next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 13) >= 13:
                continue
            p13 = os.path.join(work, f"{tag}.opset13.onnx")
            try:
                onnx.save(version_converter.convert_version(m, 13), p13)
            except Exception as e:   # noqa: BLE001
                errors.append(f"{lbl}: version_converter: {type(e).__name__}: {str(e)[:150]}")
                continue
            p = p13
        t0 = time.perf_counter()
        try:
            quantize_static(p, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=op_types)
            secs = time.perf_counter() - t0
            q = ort_run(out, evalset, threads)
        except Exception as e:   # noqa: BLE001
            errors.append(f"{lbl}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
            continue
        row.update(input=lbl, seconds=secs, file_bytes=os.path.getsize(out), size_bytes=initializer_bytes(out))
        if errors:
            row["failed_tries"] = errors
        row["outputs"] = q
        return row
    row["error"] = " / ".join(errors)
    return row


# ---------------------------------------------------------------------------------------------
# mixq
# ---------------------------------------------------------------------------------------------
def run_cli(cmd, timeout):
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s", time.perf_counter() - t0
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        err = [ln for ln in p.stderr.splitlines() if ln.strip()]
        msg = next((ln for ln in reversed(err) if ln.startswith("error")), err[-1] if err else "")
        return None, f"exit {p.returncode}: {msg.strip()[:600]}", wall
    try:
        return json.loads(p.stdout), None, wall
    except json.JSONDecodeError as e:
        return None, f"bad JSON on stdout ({e}): {p.stdout[:200]!r}", wall


def short_cmd(cmd):
    return " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) and c.startswith(ROOT) else c for c in cmd)


# ---------------------------------------------------------------------------------------------
def model_row(entry, args):
    import numpy as np
    name = entry["name"]
    row = dict(name=name, time=time.strftime("%Y-%m-%d %H:%M:%S"))
    big = entry["inputs"][0]["dtype"] == "float32" and len(entry["inputs"][0].get("data_shape", [])) == 4 \
        and entry["inputs"][0]["data_shape"][-1] >= 224
    calib_n = args.calib_n_224 if big and args.calib_n_224 else args.calib_n
    eval_n = args.eval_n
    row.update(calib_n=calib_n, eval_n=eval_n, method=args.method, sens_samples=args.sens_samples or None)
    # model file
    if entry["committed"]:
        path = os.path.join(ROOT, entry["file"])
    else:
        path = os.path.join(args.gen_dir, entry["file"])
        if not os.path.exists(path):
            print(f"  {name}: generating {path} (make_zoo.py)", flush=True)
            subprocess.run([DEBIAN_PY, os.path.join(ZOO, "make_zoo.py"), "--out", args.gen_dir, "--only", name],
                           check=True, capture_output=True)
    row["model_sha256_ok"] = sha256_file(path) == entry["sha256"]
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    # data
    stem = data_stem(entry)
    ddir = os.path.join(args.work, "data", f"c{calib_n}-e{eval_n}")
    cpath, epath = os.path.join(ddir, f"{stem}.calib.npz"), os.path.join(ddir, f"{stem}.eval.npz")
    if not (os.path.exists(cpath) and os.path.exists(epath)):
        subprocess.run([DEBIAN_PY, os.path.join(ROOT, "bench", "zoo_data.py"), "--out", ddir, "--only", stem,
                        "--calib-n", str(calib_n), "--eval-n", str(eval_n)], check=True, capture_output=True)
    with np.load(cpath) as z:
        calib = {k: z[k] for k in z.files}
    with np.load(epath) as z:
        evalset = {k: z[k] for k in z.files}
    row["calib"] = {k: list(v.shape) for k, v in calib.items()}
    row["eval"] = {k: list(v.shape) for k, v in evalset.items()}
    # ORT float reference
    import onnxruntime as ort
    names = [o["name"] for o in entry["outputs"]]
    ref = ort_run(path, evalset, args.threads, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    refpath = os.path.join(work, "ort_float.npz")
    np.savez(refpath, **ref)
    row["outputs"] = [dict(name=n, kind=o["kind"], shape=list(ref[n].shape)) for n, o in zip(names, entry["outputs"])]
    # float agreement
    cmd = [args.mixq, "eval", path, "--data", epath, "--reference", refpath, "--json", "-q",
           "--threads", str(args.threads)]
    js, err, wall = run_cli(cmd, args.timeout)
    row["float"] = dict(cmd=short_cmd(cmd), wall_s=wall)
    if err:
        row["float"]["error"] = err
    else:
        row["float"]["rel_err"] = max(f["rel_err"] for f in js["fidelity"])
        row["float"]["per_output_rel_err"] = {f["name"]: f["rel_err"] for f in js["fidelity"]}

    def score(outputs):
        fid = fidelity(ref, outputs, names)
        label, val = task_metric(name, entry, ref, outputs)
        ok = [f for f in fid if "error" not in f]
        return dict(fidelity=fid, sqnr_first=fid[0].get("sqnr_db"),
                    sqnr_mean=float(np.mean([f["sqnr_db"] for f in ok])) if ok else None,
                    task_label=label, task=val)

    # ONNX Runtime quantize_static
    print(f"  {name}: ORT quantize_static", flush=True)
    configs = [("ort", None), ("ort_layers", MIXQ_LAYER_OPS)] if args.ort_layers else [("ort", None)]
    pre, note, pre_s = ort_pre_process(path, work)
    row["ort_pre_process"] = dict(result=note, seconds=pre_s)
    for key, ops in configs:
        r = ort_quantize(path, pre, calib, evalset, names, work, args.threads, op_types=ops, tag=key)
        outs = r.pop("outputs", None)
        if outs is not None:
            r.update(score(outs))
        row[key] = r
    # mixq
    sens = os.path.join(work, "sens.json")
    for key, label, extra in MIXQ_CONFIGS:
        if key not in args.configs:
            continue
        print(f"  {name}: {label}", flush=True)
        qout = os.path.join(work, f"mixq_{key}.out.npz")
        qonnx = os.path.join(work, f"mixq_{key}.q.onnx")
        method = [] if "--method" in extra else ["--method", args.method]
        cmd = [args.mixq, "quantize", path, "--calib", cpath, "--eval", epath, "--json", "-q", *method,
               "--threads", str(args.threads), "--save-outputs", qout, "-o", qonnx] + extra
        if "adaround" in extra or "brecq" in extra:
            cmd += ["--iters", str(args.recon_iters)]
        if key.startswith("ip"):
            # abits stays 8: no activation candidates below it (the budget is on weight bits)
            cmd += ["--sens-cache", sens, "--act-candidates", "none"]
            if args.sens_samples:
                cmd += ["--sens-samples", str(args.sens_samples)]
        js, err, wall = run_cli(cmd, args.timeout)
        r = dict(cmd=short_cmd(cmd), wall_s=wall)
        if err:
            r["error"] = err
            row[key] = r
            continue
        r.update(size_bytes=js["size_bytes"], float_bytes=js["float_bytes"], avg_wbits=js["avg_wbits"],
                 seconds=js["seconds"], seconds_search=js["seconds_search"], seconds_total=js["seconds_total"],
                 mixq_fidelity=js["fidelity"], qdq_file_bytes=os.path.getsize(qonnx),
                 # the budget could not be met: the plan is the search's closest (often its minimum)
                 infeasible=bool((js.get("search_params") or {}).get("infeasible")))
        with np.load(qout) as z:
            outs = {k: z[k] for k in z.files}
        r.update(score(outs))
        # the exported QDQ model in ONNX Runtime (a check of the export, not a table column)
        try:
            r["qdq_in_ort_sqnr_first"] = fidelity(ref, ort_run(qonnx, evalset, args.threads), names)[0]["sqnr_db"]
        except Exception as e:   # noqa: BLE001
            r["qdq_in_ort_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        for f in (qout, qonnx):
            os.remove(f)
        row[key] = r
    return row


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
def fmt(v, spec):
    if v is None:
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def sqnr_cell(r, multi):
    if r is None:
        return "—"
    if "error" in r:
        return "fails"
    s = fmt(r.get("sqnr_first"), ".2f")
    if multi and r.get("sqnr_mean") is not None:
        s += f" ({fmt(r['sqnr_mean'], '.1f')})"
    if r.get("infeasible"):
        s += " (budget infeasible)"
    return s


def markdown(rows):
    lines = []
    cols = [("ort", "ORT W8A8")] + [(k, lbl) for k, lbl, _ in MIXQ_CONFIGS]
    lines.append("| model | float vs ORT (max rel. err.) | " + " | ".join(c[1] + " SQNR dB" for c in cols)
                 + " | W8A8 mixq >= ORT | mixed 4-bit within 1 dB of mixq W8A8 |")
    lines.append("|---|---:|" + "---:|" * len(cols) + ":-:|:-:|")
    wins = within = counted = 0
    for row in rows:
        multi = len(row.get("outputs", [])) > 1
        if "skipped" in row:
            lines.append(f"| `{row['name']}` | {row['skipped']} |" + " |" * (len(cols) + 2))
            continue
        fl = row.get("float", {})
        fcell = fmt(fl.get("rel_err"), ".1e") if "error" not in fl else "fails"
        cells = [sqnr_cell(row.get(k), multi) for k, _ in cols]
        o = row.get("ort", {})
        # mixq W8A8: the better of the --method and min-max rows that ran (both are one flag away)
        m8 = max((row[k] for k in ("w8a8", "w8a8mm") if row.get(k, {}).get("sqnr_first") is not None),
                 key=lambda r: r["sqnr_first"], default={})
        # the mixed 4-bit plan: the best of the pinned, unpinned and AdaRound IP rows that ran
        ip4 = max((row[k] for k in ("ip4", "ip4u", "ip4ua") if row.get(k, {}).get("sqnr_first") is not None),
                  key=lambda r: r["sqnr_first"], default={})
        beat = near = "—"
        if o.get("sqnr_first") is not None and m8.get("sqnr_first") is not None:
            beat = "yes" if m8["sqnr_first"] >= o["sqnr_first"] else "**no**"
            wins += beat == "yes"
        if m8.get("sqnr_first") is not None and ip4.get("sqnr_first") is not None:
            counted += 1
            near = "yes" if ip4["sqnr_first"] >= m8["sqnr_first"] - 1.0 else "no"
            within += near == "yes"
        lines.append(f"| `{row['name']}` | {fcell} | " + " | ".join(cells) + f" | {beat} | {near} |")
    lines.append("")
    lines.append(f"mixq W8A8 (the better of its --method and min-max rows) >= ORT W8A8 (first output's SQNR) on "
                 f"{wins} models; mixed 4-bit plan (the best of the pinned, unpinned and AdaRound IP rows) within "
                 f"1 dB of mixq W8A8 on {within} of {counted} models that both ran.")
    lines.append("")
    # detailed
    lines.append("| model | config | SQNR dB first (mean) | task metric | cosine | size bytes | vs float | avg w bits "
                 "| quantize s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if "skipped" in row:
            continue
        multi = len(row.get("outputs", [])) > 1
        fbytes = next((row[k]["float_bytes"] for k, _, _ in MIXQ_CONFIGS if "float_bytes" in row.get(k, {})), None)
        for k, lbl in cols + ([("ort_layers", "ORT W8A8 (mixq's ops)")] if "ort_layers" in row else []):
            r = row.get(k)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| `{row['name']}` | {lbl} | fails: {r['error'][:160]} | | | | | | |")
                continue
            task = "—"
            if r.get("task") is not None:
                task = f"{r['task_label']} " + (fmt(r["task"], ".4f") if "cosine" in r["task_label"]
                                                else fmt(r["task"], ".1f") + "%")
            cos = fmt(r["fidelity"][0].get("cosine"), ".4f")
            size = r.get("size_bytes")
            ratio = f"{100 * size / fbytes:.1f}%" if size and fbytes else "—"
            lines.append(f"| `{row['name']}` | {lbl} | {sqnr_cell(r, multi)} | {task} | {cos} | {size:,} | {ratio} "
                         f"| {fmt(r.get('avg_wbits'), '.2f')} | {fmt(r.get('seconds'), '.1f')} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default="", help="an interpreter with onnxruntime, onnx, numpy, sympy "
                    "(default: bench/.venv, created from PyPI on first use)")
    ap.add_argument("--models", default="", help="comma-separated zoo members (default: all)")
    ap.add_argument("--calib-n", type=int, default=32, help="calibration samples")
    ap.add_argument("--calib-n-224", type=int, default=0, help="calibration samples for the 224x224 models "
                    "(0: --calib-n)")
    ap.add_argument("--eval-n", type=int, default=32, help="evaluation samples")
    ap.add_argument("--sens-samples", type=int, default=0, help="mixq --sens-samples for the IP rows "
                    "(0: mixq's default, all calibration samples up to 256)")
    ap.add_argument("--method", default="mse", help="mixq --method for every mixq row")
    ap.add_argument("--recon-iters", type=int, default=500, help="mixq --iters for the AdaRound rows")
    ap.add_argument("--configs", default=",".join(k for k, _, _ in MIXQ_CONFIGS), help="mixq rows to run")
    ap.add_argument("--no-ort-layers", dest="ort_layers", action="store_false",
                    help="skip ORT restricted to mixq's layer ops")
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--gen-dir", default=os.path.join(ROOT, "build", "zoo"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", "results", "zoo"))
    ap.add_argument("--jsonl", default=os.path.join(ROOT, "bench", "results", "zoo_table.jsonl"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per mixq command")
    ap.add_argument("--table-only", action="store_true", help="print the tables from --jsonl and exit")
    args = ap.parse_args()
    args.configs = set(args.configs.split(","))
    if args.table_only:
        rows = {}
        for ln in open(args.jsonl):
            r = json.loads(ln)
            rows[r["name"]] = {**rows.get(r["name"], {}), **r}   # later rows override earlier keys
        order = [m["name"] for m in json.load(open(os.path.join(ZOO, "manifest.json")))["models"]]
        print(markdown([rows[n] for n in order if n in rows]))
        return
    ensure_interpreter(args)
    import onnxruntime as ort
    # ORT's pre-processing and calibration write temporary files into the current directory.
    for k in ("mixq", "gen_dir", "work", "jsonl"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    os.makedirs(args.work, exist_ok=True)
    os.chdir(args.work)

    manifest = json.load(open(os.path.join(ZOO, "manifest.json")))["models"]
    only = [n for n in args.models.split(",") if n]
    unknown = set(only) - {m["name"] for m in manifest}
    if unknown:
        sys.exit(f"zoo_table.py: unknown model(s) {sorted(unknown)}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor())
    os.makedirs(os.path.dirname(args.jsonl), exist_ok=True)
    rows = []
    by_name = {m["name"]: m for m in manifest}
    for entry in ([by_name[n] for n in only] if only else manifest):   # --models order
        print(f"{entry['name']}:", flush=True)
        t0 = time.perf_counter()
        try:
            row = model_row(entry, args)
        except Exception as e:   # noqa: BLE001 (a broken model must not lose the others' rows)
            row = dict(name=entry["name"], error=f"{type(e).__name__}: {e}")
        row.update(commit=commit, cpu=cpu, onnxruntime=ort.__version__, wall_s=time.perf_counter() - t0)
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(row, default=float) + "\n")
        rows.append(row)
        print(markdown([row]).split("\n\n")[0], flush=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
