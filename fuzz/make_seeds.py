#!/usr/bin/python3
"""Writes the committed seed corpora of the fuzz targets (fuzz/corpus/TARGET/), small on purpose.

Run with Debian's python (onnx, numpy): /usr/bin/python3 fuzz/make_seeds.py [--mixq build/mixq]
The .mxq seeds need a built `mixq` (GCC build) to pack three tiny models; the plan seed needs the
built plan target (MIXQ_FUZZ_WRITE_SEED). Both are skipped with a note when missing. Larger seed
sets are not committed: scripts/fuzz.sh adds ONNX's own node tests (libonnx-testdata) at run time.
"""
import argparse, io, json, os, shutil, struct, subprocess, sys, tempfile, zipfile, zlib
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def rng():
    return np.random.default_rng(7)


# ---- tiny ONNX models (also the .mxq sources) ----
def conv_model():
    r = rng()
    w1 = numpy_helper.from_array(r.standard_normal((4, 1, 3, 3)).astype(np.float32), "c1.w")
    b1 = numpy_helper.from_array(r.standard_normal(4).astype(np.float32), "c1.b")
    w2 = numpy_helper.from_array(r.standard_normal((4, 4, 3, 3)).astype(np.float32), "c2.w")
    wf = numpy_helper.from_array(r.standard_normal((5, 4)).astype(np.float32), "fc.w")
    bf = numpy_helper.from_array(r.standard_normal(5).astype(np.float32), "fc.b")
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="p1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2.w"], ["c2"], name="c2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "p1"], ["s"], name="add"),
        helper.make_node("GlobalAveragePool", ["s"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], [w1, b1, w2, wf, bf])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="mixq-fuzz")


def mlp_model():
    r = rng()
    w = numpy_helper.from_array(r.standard_normal((12, 8)).astype(np.float32), "m.w")
    b = numpy_helper.from_array(r.standard_normal(8).astype(np.float32), "m.b")
    w2 = numpy_helper.from_array(r.standard_normal((8, 3)).astype(np.float32), "m2.w")
    shape = numpy_helper.from_array(np.array([-1, 12], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["xr"], name="reshape"),
        helper.make_node("MatMul", ["xr", "m.w"], ["h"], name="mm1"),
        helper.make_node("Add", ["h", "m.b"], ["hb"], name="bias"),
        helper.make_node("Sigmoid", ["hb"], ["hs"], name="sig"),
        helper.make_node("MatMul", ["hs", "m2.w"], ["o"], name="mm2"),
        helper.make_node("Softmax", ["o"], ["y"], name="softmax", axis=-1),
    ]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w, b, w2, shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="mixq-fuzz")


def embed_model():
    r = rng()
    t = numpy_helper.from_array(r.standard_normal((10, 6)).astype(np.float32), "emb.w")
    w = numpy_helper.from_array(r.standard_normal((4, 6)).astype(np.float32), "fc.w")
    nodes = [
        helper.make_node("Gather", ["emb.w", "ids"], ["e"], name="emb"),
        helper.make_node("ReduceMean", ["e"], ["m"], name="mean", axes=[1], keepdims=0),
        helper.make_node("Gemm", ["m", "fc.w"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "embed", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [t, w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="mixq-fuzz")


def onnx_seeds(models):
    for name, m in models.items():
        out("onnx_import", name + ".onnx", m.SerializeToString())
    # attributes of every kind, a Constant node with a tensor, typed (non-raw) data
    c = helper.make_tensor("cval", TensorProto.INT64, [2], [1, 2])
    nodes = [helper.make_node("Constant", [], ["k"], name="const", value=c),
             helper.make_node("Cast", ["x"], ["xc"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["xc"], ["t"], name="tr", perm=[1, 0]),
             helper.make_node("LeakyRelu", ["t"], ["y"], name="lr", alpha=0.1)]
    w = helper.make_tensor("unused", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0])
    g = helper.make_graph(nodes, "attrs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])], [w])
    out("onnx_import", "attrs.onnx",
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    wild = os.path.join(ROOT, "tests", "fixtures", "wild-constant-dynamic.onnx")
    shutil.copy(wild, os.path.join(CORPUS, "onnx_import", "wild-constant-dynamic.onnx"))


# ---- TensorProto .pb and external data ----
def external_seeds():
    names = ["weights.bin", "sub/w.bin", "x.data", "w.bin"]
    def seed(files, tp):
        b = bytes([len(files)])
        for idx, data in files:
            b += bytes([idx]) + struct.pack("<H", len(data)) + data
        return b + tp.SerializeToString()
    data = np.arange(6, dtype=np.float32).tobytes()
    def ext(loc, offset=None, length=None, dt=TensorProto.FLOAT, dims=(2, 3)):
        tp = TensorProto()
        tp.name = "w"
        tp.data_type = dt
        tp.dims.extend(dims)
        tp.data_location = TensorProto.EXTERNAL
        for k, v in (("location", loc), ("offset", offset), ("length", length)):
            if v is not None:
                e = tp.external_data.add()
                e.key, e.value = k, str(v)
        return tp
    out("external_data", "plain", seed([(0, data)], ext("weights.bin")))
    out("external_data", "offset", seed([(1, b"\0" * 8 + data)], ext("sub/w.bin", 8, 24)))
    out("external_data", "two-files", seed([(2, data[:8]), (3, data)], ext("w.bin", 0, 24)))
    out("external_data", "int64", seed([(0, np.arange(4, dtype=np.int64).tobytes())],
                                       ext("weights.bin", dt=TensorProto.INT64, dims=(4,))))
    out("external_data", "uint16", seed([(0, np.arange(4, dtype=np.uint16).tobytes())],
                                        ext("weights.bin", dt=TensorProto.UINT16, dims=(2, 2))))
    out("external_data", "missing", seed([], ext("x.data")))


def pb_seeds():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    out("tensor_pb", "float_raw.pb", numpy_helper.from_array(a, "x").SerializeToString())
    out("tensor_pb", "int64_raw.pb", numpy_helper.from_array(np.arange(5, dtype=np.int64), "i").SerializeToString())
    out("tensor_pb", "uint64.pb", numpy_helper.from_array(np.arange(3, dtype=np.uint64), "u").SerializeToString())
    out("tensor_pb", "f16.pb", numpy_helper.from_array(np.ones((2, 2), np.float16), "h").SerializeToString())
    out("tensor_pb", "bool.pb", numpy_helper.from_array(np.array([True, False]), "b").SerializeToString())
    out("tensor_pb", "typed.pb", helper.make_tensor("t", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0]).SerializeToString())
    out("tensor_pb", "typed_i8.pb", helper.make_tensor("t", TensorProto.INT8, [3], [1, -2, 3]).SerializeToString())
    out("tensor_pb", "double.pb", helper.make_tensor("d", TensorProto.DOUBLE, [2], [1.5, 2.5]).SerializeToString())
    out("tensor_pb", "scalar.pb", numpy_helper.from_array(np.array(3.0, np.float32), "s").SerializeToString())


# ---- .npy / .npz ----
def npy_bytes(a, version=None):
    f = io.BytesIO()
    if version is None:
        np.save(f, a)
    else:
        np.lib.format.write_array(f, a, version=version)
    return f.getvalue()


def npy_seeds():
    arrs = {"f32": np.arange(6, dtype=np.float32).reshape(2, 3), "f64": np.array([1.5, -2.0]),
            "f16": np.ones(3, np.float16), "i8": np.array([-1, 2], np.int8), "u8": np.arange(4, dtype=np.uint8),
            "i16": np.array([7], np.int16), "i32": np.arange(3, dtype=np.int32), "i64": np.arange(2, dtype=np.int64),
            "bool": np.array([True, False]), "scalar": np.array(2.0, np.float32),
            "big_endian": np.arange(3, dtype=">f4"), "fortran": np.asfortranarray(np.ones((2, 2), np.float32))}
    for k, a in arrs.items():
        out("npy", k + ".npy", npy_bytes(a))
    out("npy", "v2.npy", npy_bytes(np.arange(4, dtype=np.float32), version=(2, 0)))
    for comp, tag in ((zipfile.ZIP_STORED, "stored"), (zipfile.ZIP_DEFLATED, "deflated")):
        f = io.BytesIO()
        with zipfile.ZipFile(f, "w", comp) as z:
            z.writestr("x.npy", npy_bytes(np.arange(8, dtype=np.float32).reshape(2, 4)))
            z.writestr("labels.npy", npy_bytes(np.arange(2, dtype=np.int64)))
        out("npy", tag + ".npz", f.getvalue())
    out("npy", "wild-b.npz", open(os.path.join(ROOT, "tests", "fixtures", "wild-b.npz"), "rb").read())


# ---- JSON ----
def json_seeds(args):
    for f in sorted(os.listdir(os.path.join(ROOT, "hw"))):
        if f.endswith(".json"):
            shutil.copy(os.path.join(ROOT, "hw", f), os.path.join(CORPUS, "hw_spec", f))
    out("hw_spec", "groups.json", json.dumps({"mixq_hw_version": 1, "name": "groups", "ops": {
        "default": {"weight_bits": [2, 4, 8], "act_bits": [4, 8], "granularity": ["per_channel", "per_group"],
                    "symmetry": ["symmetric"]}}, "shared": {"groups": [["fc1", "fc2"], ["conv1", "emb"]],
                                                             "add_concat_inputs": False}}, indent=1).encode())
    entry = lambda s: {"mse": s, "noise": s / 2, "sqnr_db": 20.0, "kl": s / 3, "dl": s, "dacc": 0.01,
                       "fisher": s, "hessian": s}
    table = {"mixq_sensitivity_version": 2, "model": "m.onnx", "key": {"model": "abc", "calib": "fmnist:train:64"},
             "ref_bits": 8, "samples": 64, "float": {"top1": 0.9, "loss": 0.3},
             "reference": {"top1": 0.89, "loss": 0.31, "kl": 0.001, "noise": 0.01}, "seconds": 1.5,
             "has_labels": True, "has_fisher": False, "has_hessian": False,
             "layers": [{"name": "fc1", "params": 1152, "bits": {"2": entry(0.5), "4": entry(0.1), "8": entry(0.0)},
                         "groups": {"32": {"4": entry(0.05)}}},
                        {"name": "fc2", "params": 1152, "bits": {"4": entry(0.2), "8": entry(0.0)}}],
             "activations": [{"tensor": "c1f", "layers": ["fc1", "fc2"], "ref_bits": 8,
                              "bits": {"4": entry(0.3), "8": entry(0.0)}}],
             "plan": {"mixq_plan_version": 1, "layers": []}}
    out("sens_table", "v2.json", json.dumps(table, indent=1).encode())
    t1 = dict(table)
    t1["mixq_sensitivity_version"] = 1
    del t1["activations"]
    out("sens_table", "v1.json", json.dumps(t1).encode())
    if args.plan_target and os.path.exists(args.plan_target):
        p = os.path.join(CORPUS, "plan_json", "template.json")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        env = dict(os.environ, MIXQ_FUZZ_WRITE_SEED=p)
        subprocess.run([args.plan_target], env=env, check=True)
        plan = json.load(open(p))
        for L in plan["layers"]:  # a variant with every optional field set
            if L["name"] == "fc1":
                L["weight_quant"].update({"granularity": "per_group", "group_size": 24, "rounding": "floor",
                                          "range": "mse", "channel_bits": [], "extra_points": 1, "extra_params": 72})
            if L["name"] == "fc2":
                L["weight_quant"]["channel_bits"] = [2, 3, 4, 5] * 4
            if L["name"] == "emb":
                L["weight_quant"]["embed_scheme"] = "rowwise"
        out("plan_json", "variant.json", json.dumps(plan, indent=1).encode())
    else:
        print("make_seeds: no plan target built (build-fuzz/fuzz/fuzz_plan_json): plan seeds skipped", file=sys.stderr)


# ---- .mxq ----
def unpack_mxq(b):
    """A .mxq with its graph section inflated (fuzz/mxq_input.h's unpacked form)."""
    assert b[:8] == b"MIXQPACK"
    graph_raw, graph_stored = struct.unpack_from("<II", b, 28)
    g = zlib.decompress(b[40:40 + graph_stored])
    assert len(g) == graph_raw
    return b[:40] + g + b[40 + graph_stored:]


def mxq_seeds(args, models):
    if not args.mixq or not os.path.exists(args.mixq):
        print("make_seeds: no mixq binary: .mxq seeds skipped", file=sys.stderr)
        return
    tmp = tempfile.mkdtemp()
    r = rng()
    calib = {"conv": ("x", r.standard_normal((16, 1, 6, 6)).astype(np.float32)),
             "mlp": ("x", r.standard_normal((16, 3, 4)).astype(np.float32)),
             "embed": ("ids", r.integers(0, 10, (16, 3)).astype(np.int64))}
    configs = {"conv": [["--wbits", "4"], ["--wbits", "2", "--granularity", "per_tensor", "--pin-bits", "0"],
                        ["--float"]],
               "mlp": [["--wbits", "3", "--symmetric-weights"], ["--wbits", "4", "--granularity", "per_group",
                                                                  "--group-size", "4", "--pin-bits", "0"]],
               "embed": [["--wbits", "4", "--embed-scheme", "rowwise"], ["--wbits", "4", "--embed-scheme", "codebook"],
                         ["--wbits", "8"]]}
    for name, m in models.items():
        mp = os.path.join(tmp, name + ".onnx")
        onnx.save(m, mp)
        inp, data = calib[name]
        cp = os.path.join(tmp, name + ".npz")
        np.savez(cp, **{inp: data})
        for k, cfg in enumerate(configs[name]):
            o = os.path.join(tmp, f"{name}{k}.mxq")
            res = subprocess.run([args.mixq, "pack", mp, "--calib", cp, "-o", o, "-q", "--threads", "1"] + cfg,
                                 capture_output=True, text=True)
            if res.returncode != 0:
                print(f"make_seeds: pack {name} {cfg} failed: {res.stderr.strip()[:300]}", file=sys.stderr)
                continue
            b = open(o, "rb").read()
            for t in ("mxq", "runtime"):
                out(t, f"{name}{k}.unpacked", unpack_mxq(b))
            if k == 0:
                out("mxq", f"{name}{k}.raw", b"mixqpack" + b[8:])
    shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--plan-target", default=os.path.join(ROOT, "build-fuzz", "fuzz", "fuzz_plan_json"))
    args = ap.parse_args()
    for t in ("onnx_import", "external_data", "npy", "tensor_pb", "plan_json", "sens_table", "hw_spec", "mxq", "runtime"):
        os.makedirs(os.path.join(CORPUS, t), exist_ok=True)
    models = {"conv": conv_model(), "mlp": mlp_model(), "embed": embed_model()}
    onnx_seeds(models)
    external_seeds()
    pb_seeds()
    npy_seeds()
    json_seeds(args)
    mxq_seeds(args, models)


if __name__ == "__main__":
    main()
