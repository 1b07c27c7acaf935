#!/usr/bin/env python3
"""ONNX Runtime reference outputs for mixq's model zoo (models/zoo/).

For every zoo member this runs ONNX Runtime (CPU, one thread) on the committed realistic inputs
`models/zoo/<data>.in.npz` and writes

  models/zoo/<name>.ort.npz   ORT's float outputs, one array per graph output, named after it
  models/zoo/manifest.json    every member: file, family, exporter, opsets, inputs (dynamic dims
                              by name), outputs and their kinds, committed or generated, sha256,
                              size, source, ORT version and settings, known failures in mixq

The reference is ORT with graph optimisations off (ORT_DISABLE_ALL: every node runs as written,
so the outputs are the file's semantics); the largest relative difference to ORT's default
level (ORT_ENABLE_ALL: fused kernels) is recorded beside it as a measure of ORT's own noise.
The `known_failures` of an existing manifest are kept.

ONNX Runtime is a verification tool, never a dependency of mixq or its tests: by default this
script creates a private virtualenv bench/.venv from PyPI (onnxruntime, onnx, numpy) and re-runs
itself there; --python PY uses an existing interpreter that has them instead.

  /usr/bin/python3 models/zoo/make_zoo.py          # models + inputs (Debian's torch)
  python3 bench/zoo_ref.py [--python /path/to/venv/bin/python] [--gen-dir build/zoo] [--only a,b]
  python3 bench/zoo_ref.py --fetch-pretrained      # re-extract the packaged models (pip download)
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "models", "zoo")
TOLERANCE = 1e-4

# Members that ship inside packages. sha256 is of the .onnx as it is inside the package.
PRETRAINED = {
    "ocr_det": dict(
        family="PP-OCRv4 text detection (DBNet: PP-LCNet-style backbone with SE + hard-swish, "
               "RSE-FPN, Resize/ConvTranspose/Sigmoid head), Chinese+English, trained by PaddleOCR",
        exporter="paddle2onnx (PaddlePaddle -> ONNX; weights as Constant nodes)",
        package="rapidocr-onnxruntime", version="1.4.4", registry="PyPI",
        wheel="rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        wheel_sha256="971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
        path="rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        license="Apache-2.0 (rapidocr-onnxruntime; PaddleOCR models Apache-2.0)",
        data="ocr_det", output_kinds=["segmentation map"],
        preprocessing="BGR image, x/255, (x-0.5)/0.5, CHW; sides multiples of 32 (RapidOCR det)"),
    "ocr_cls": dict(
        family="PaddleOCR text-direction classifier ch_ppocr_mobile_v2.0_cls (MobileNetV3 small "
               "x0.35, SE + hard-swish; 0/180 degrees), trained by PaddleOCR",
        exporter="paddle2onnx (PaddlePaddle -> ONNX; weights as Constant nodes)",
        package="rapidocr-onnxruntime", version="1.4.4", registry="PyPI",
        wheel="rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        wheel_sha256="971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
        path="rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        sha256="e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        license="Apache-2.0 (rapidocr-onnxruntime; PaddleOCR models Apache-2.0)",
        data="ocr_cls", output_kinds=["classes"], labels=["0", "180"],
        preprocessing="text-line crop, BGR, resize to height 48 (width <= 192 by aspect), x/255, "
                      "(x-0.5)/0.5, zero padded to 192 (RapidOCR cls)"),
    "magika": dict(
        family="Magika standard_v3_3 file-type classifier (one-hot bytes, Dense, LayerNorm written out, "
               "Conv1D, GlobalMaxPool, Dense; 214 content types), trained by Google",
        exporter="tf2onnx 1.16.1 (JAX -> jax2tf -> TensorFlow -> ONNX)",
        package="magika", version="1.0.3", registry="PyPI",
        wheel="magika-1.0.3-py3-none-manylinux_2_28_x86_64.whl",
        wheel_sha256="3e9b49134e8116ee40b431664dcbed9e199413efddcce1a173c734b4e0521529",
        path="magika/models/standard_v3_3/model.onnx",
        sha256="fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
        license="Apache-2.0", data="magika", output_kinds=["classes"],
        labels_from="magika/models/standard_v3_3/config.min.json:target_labels_space",
        extra={"magika/models/standard_v3_3/config.min.json": "magika.config.min.json"},
        preprocessing="magika 1.0.3 features v2: first 1024 bytes (lstripped) + last 1024 bytes "
                      "(rstripped) of a 4096-byte block, padding token 256, int32"),
}
DATA_FILES = {  # what each pretrained member's inputs are (for the manifest)
    "ocr_det": "two 128x384 renderings (DejaVu Sans / Sans Mono) of Apache-2.0 license text",
    "ocr_cls": "six rendered text lines of the Apache-2.0 license, every other one rotated 180 degrees",
    "magika": "README.md, models/make_fixtures.py, src/exec/executor.cpp, CMakeLists.txt, "
              "models/fmnist-mlp.onnx, Fashion-MNIST t10k-labels-idx1-ubyte.gz",
}


def ensure_interpreter(args):
    """Re-runs this script under an interpreter with onnxruntime (bench/ort_venv.py)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ort_venv import rerun_under_ort
    rerun_under_ort(args.python, __file__, ("onnxruntime", "onnx", "numpy"), "MIXQ_ZOO_REF_CHILD")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_pretrained():
    """pip download the packages (no dependencies), check the wheel and model sha256, copy."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, p in PRETRAINED.items():
            whl = os.path.join(tmp, p["wheel"])
            if not os.path.exists(whl):
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                                f"{p['package']}=={p['version']}"], check=True)
            got = sha256_file(whl)
            if got != p["wheel_sha256"]:
                print(f"warning: {p['wheel']} sha256 {got}, recorded {p['wheel_sha256']}")
            with zipfile.ZipFile(whl) as z:
                data = z.read(p["path"])
            got = hashlib.sha256(data).hexdigest()
            if got != p["sha256"]:
                sys.exit(f"{name}: {p['path']} in {p['wheel']} has sha256 {got}, expected {p['sha256']}")
            with open(os.path.join(ZOO, name + ".onnx"), "wb") as f:
                f.write(data)
            for src, dst in p.get("extra", {}).items():
                with zipfile.ZipFile(whl) as z, open(os.path.join(ZOO, dst), "wb") as f:
                    f.write(z.read(src))
            print(f"{name}: {p['package']} {p['version']} {p['path']} -> models/zoo/{name}.onnx")


def dims(vi):
    """Static dims as ints; dynamic ones by name ("?" when unnamed; paddle2onnx writes -1 too)."""
    return [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else "?")
            for d in vi.type.tensor_type.shape.dim]


def dump_json(obj):
    """json.dumps(indent=1) with lists of scalars kept on one line."""
    import re
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",\n")) + "]"
                  if m.group(1) else "[]", text)


def members(gen_dir):
    sys.path.insert(0, ZOO)
    import make_zoo   # NumPy-only at import time: the specs of the torch-built members
    out = {}
    for name, s in make_zoo.TORCH_MODELS.items():
        out[name] = dict(
            file=(f"models/zoo/{name}.onnx" if s["committed"] else f"{name}.onnx"),
            path=os.path.join(ZOO if s["committed"] else gen_dir, name + ".onnx"),
            committed=s["committed"], family=s["family"],
            exporter="torch.onnx.export (TorchScript-based exporter) of Debian python3-torch 1.13.1",
            source=("models/zoo/make_zoo.py (torchvision 0.14 architecture, weights=None, NumPy-seeded "
                    f"random weights, seed {s['seed']}" + (", BatchNorm statistics from Fashion-MNIST "
                    "training images" if s.get("bn") else "") + ")")
            if "torchvision" in s["family"] else
            f"models/zoo/make_zoo.py (NumPy-seeded random weights, seed {s['seed']}"
            + (", BatchNorm statistics from Fashion-MNIST training images" if s.get("bn") else "") + ")",
            data=s["data"], output_kinds=s["output_kinds"],
            generate=None if s["committed"] else
            f"/usr/bin/python3 models/zoo/make_zoo.py --out DIR --only {name}")
    for name, p in PRETRAINED.items():
        out[name] = dict(
            file=f"models/zoo/{name}.onnx", path=os.path.join(ZOO, name + ".onnx"), committed=True,
            family=p["family"], exporter=p["exporter"],
            source=f"{p['registry']} package {p['package']} {p['version']} ({p['wheel']}), file {p['path']}; "
                   f"license {p['license']}; see models/zoo/SOURCES.md",
            data=p["data"], output_kinds=p["output_kinds"], preprocessing=p["preprocessing"],
            data_description=DATA_FILES[name], package_sha256=p["sha256"])
    return out


def run_ort(path, feeds, level):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = level
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feeds)))


def rel_err(a, b):
    import numpy as np
    a = a.astype(np.float64); b = b.astype(np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6)) if b.size else 0.0


def labels_of(name, out):
    """Top-1 labels for the classifiers that come with label lists (a check that inputs are real)."""
    import numpy as np
    p = PRETRAINED.get(name, {})
    if "labels" in p:
        labels = p["labels"]
    elif "labels_from" in p:
        cfg = os.path.join(ZOO, "magika.config.min.json")
        if not os.path.exists(cfg):
            return None
        labels = json.load(open(cfg))["target_labels_space"]
    else:
        return None
    y = next(iter(out.values()))
    return [labels[i] for i in np.argmax(y, axis=1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default="", help="an interpreter with onnxruntime, onnx and numpy "
                    "(default: bench/.venv, created from PyPI on first use)")
    ap.add_argument("--gen-dir", default=os.path.join(ROOT, "build", "zoo"),
                    help="where make_zoo.py wrote the generated (not committed) models")
    ap.add_argument("--only", default="")
    ap.add_argument("--fetch-pretrained", action="store_true",
                    help="pip download the packages of the pretrained members and re-extract their .onnx")
    args = ap.parse_args()
    ensure_interpreter(args)

    import numpy as np
    import onnx
    import onnxruntime as ort

    if args.fetch_pretrained:
        fetch_pretrained()

    man_path = os.path.join(ZOO, "manifest.json")
    old = {}
    if os.path.exists(man_path):
        old = {m["name"]: m for m in json.load(open(man_path))["models"]}
    only = set(filter(None, args.only.split(",")))
    entries = []
    for name, m in members(args.gen_dir).items():
        if only and name not in only:
            if name in old:
                entries.append(old[name])
            continue
        path = m.pop("path")
        if not os.path.exists(path):
            sys.exit(f"{name}: {path} is missing; run /usr/bin/python3 models/zoo/make_zoo.py first")
        model = onnx.load(path)
        g = model.graph
        inits = {t.name for t in g.initializer}
        with np.load(os.path.join(ZOO, m["data"] + ".in.npz")) as z:
            feeds = {k: z[k] for k in z.files}
        inputs = [i for i in g.input if i.name not in inits]
        missing = [i.name for i in inputs if i.name not in feeds]
        if missing:
            sys.exit(f"{name}: {m['data']}.in.npz lacks input(s) {missing}")
        ref = run_ort(path, feeds, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        dflt = run_ort(path, feeds, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        np.savez_compressed(os.path.join(ZOO, name + ".ort.npz"), **ref)
        kinds = m.pop("output_kinds")
        entry = dict(name=name, **{k: v for k, v in m.items() if k != "data"})
        entry.update(
            opset={(o.domain or "ai.onnx"): o.version for o in model.opset_import},
            producer=f"{model.producer_name} {model.producer_version}".strip(),
            sha256=sha256_file(path), size_bytes=os.path.getsize(path),
            nodes=len(g.node), ops=sorted({n.op_type for n in g.node}),
            inputs=[dict(name=i.name, dtype=onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name,
                         shape=dims(i), dynamic_axes=[k for k, d in enumerate(dims(i)) if not isinstance(d, int)],
                         data_shape=list(feeds[i.name].shape)) for i in inputs],
            outputs=[dict(name=o.name, shape=dims(o), kind=kinds[k], data_shape=list(ref[o.name].shape))
                     for k, o in enumerate(g.output)],
            data=f"models/zoo/{m['data']}.in.npz", reference=f"models/zoo/{name}.ort.npz",
            reference_by=f"onnxruntime {ort.__version__} CPUExecutionProvider, ORT_DISABLE_ALL, 1 thread",
            ort_default_level_rel_diff=max(rel_err(dflt[k], ref[k]) for k in ref),
            tolerance=TOLERANCE)
        top = labels_of(name, ref)
        if top:
            entry["reference_top1"] = top
        entry["known_failures"] = old.get(name, {}).get("known_failures")
        entries.append(entry)
        print(f"{name}: {entry['opset']} {entry['size_bytes'] / 1e6:.2f} MB, outputs "
              + ", ".join(f"{o['name']}{o['data_shape']}" for o in entry["outputs"])
              + f"; ORT default vs disable-all {entry['ort_default_level_rel_diff']:.2e}"
              + (f"; top-1 {top}" if top else ""), flush=True)
    order = list(members(args.gen_dir))
    entries.sort(key=lambda e: order.index(e["name"]) if e["name"] in order else len(order))
    manifest = dict(
        about="mixq model zoo: every member's float outputs must equal ONNX Runtime's "
              "(max|mixq-ort| / max(max|ort|, 1e-6) <= tolerance, per output). Written by bench/zoo_ref.py; "
              "known_failures is kept by hand (null when mixq is expected to pass).",
        models=entries)
    tmp = man_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(dump_json(manifest) + "\n")
    os.replace(tmp, man_path)


if __name__ == "__main__":
    main()
