"""mixq: mixed-precision post-training quantization of ONNX models, from Python.

The calls mirror the `mixq` command line and run the same library code (docs/python.md):

    import mixq
    r = mixq.quantize("model.onnx", calib=x_calib, eval=(x_test, y_test), search="ip", budget_bytes=40000)
    r.report["top1_quant"], r.layers[0]["wbits"]
    r.save_onnx("model.q.onnx"); r.pack("model.mxq")
    mixq.Runtime("model.mxq").run(x)[0]

Every option of `mixq quantize` is a keyword argument: `--budget-bits 3.5` is budget_bits=3.5, a
flag is True (`--bn-reestimate` -> bn_reestimate=True; `--no-resume` -> resume=False), a list is a
comma list (`--sens-bits 2,4,8` -> sens_bits=[2, 4, 8]). Options are checked by the CLI's own
table, so a wrong one raises mixq.InvalidArgumentError with the CLI's message.
"""

import json as _json
import os as _os
import threading as _threading

from . import _runtime_env

_runtime_env.apply()  # before anything loads OpenBLAS / libgomp (see _runtime_env.py)

from . import _mixq  # noqa: E402
from ._inputs import Resources as _Resources  # noqa: E402
from ._progress import make_sink as _make_sink  # noqa: E402
from .errors import (Error, ExecutionError, FileError, InternalError, Interrupted,  # noqa: E402
                     InvalidArgumentError, InvalidDataError, InvalidModelError, UnsupportedError)

_runtime_env.warn_if_late(_mixq.runtime_env_changes())
__version__ = _mixq.__version__
__all__ = ["quantize", "pareto", "plan_from_table", "eval", "pack", "run", "info", "supported_ops", "bench", "profile",
           "Runtime", "Result", "Error", "InvalidArgumentError",
           "InvalidModelError", "UnsupportedError", "InvalidDataError", "ExecutionError", "FileError",
           "InternalError", "Interrupted", "runtime_env_changes"]

# Flags that exist as --no-NAME: NAME=False asks for them. Any other flag given False is left out
# (every plain flag defaults to off).
_NEGATABLE = {"resume", "float_eval", "act_learning", "measure"}


def _options_to_args(options):
    args = []
    for key, value in options.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if value is False:
            if key in _NEGATABLE:
                args.append("--no-" + key.replace("_", "-"))
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                args += [flag, ",".join(repr(v) for v in value)]
            else:
                for v in value:
                    args += [flag, str(v)]
        elif isinstance(value, float):
            args += [flag, repr(value)]
        else:
            args += [flag, _os.fspath(value) if isinstance(value, _os.PathLike) else str(value)]
    return args


class _Call:
    """Log level, threads and progress for one call; restores the log level afterwards."""

    def __init__(self, progress, quiet, verbose, threads):
        self.sink, self.show = _make_sink(False if quiet else progress)
        self.level = "quiet" if quiet else "verbose" if verbose else "info"
        self.threads = threads
        self.signals = _threading.current_thread() is _threading.main_thread()

    def __enter__(self):
        _mixq.set_log_level(self.level)
        if self.threads:
            _mixq.set_threads(int(self.threads))
        return self

    def __exit__(self, *exc):
        _mixq.set_log_level("info")
        return False


class Result:
    """What mixq.quantize produced.

    report: the `mixq quantize --json` object (dict): top1_float / top1_quant, fidelity, avg_wbits,
    size_bytes, float_bytes, size_ratio, bops, seconds, method_report, allocation, layers, ...
    plan: the QuantPlan (dict, as --plan-out writes it); layers: one dict per quantized layer (name,
    op, wbits, abits, granularity, params, macs, pinned)."""

    def __init__(self, handle, keep):
        self._h = handle
        self._keep = keep  # temporary model files the handle's job refers to
        self.report = _json.loads(handle.report)
        self.plan = _json.loads(handle.plan_json())

    @property
    def layers(self):
        return self.report.get("layers", [])

    @property
    def metrics(self):
        keys = ("top1_float", "top1_quant", "loss_float", "loss_quant", "metric", "metric_value", "fidelity")
        return {k: self.report.get(k) for k in keys}

    @property
    def sizes(self):
        keys = ("avg_wbits", "size_bytes", "float_bytes", "size_ratio", "bops")
        return {k: self.report.get(k) for k in keys}

    def save_onnx(self, path):
        """The QDQ ONNX model (as `quantize -o`), written atomically."""
        self._h.save_onnx(_os.fspath(path))

    def save_plan(self, path):
        """The QuantPlan JSON (as `--plan-out`); `mixq.quantize(model, plan=path)` applies it."""
        self._h.save_plan(_os.fspath(path))

    def pack(self, path):
        """The packed model at its real bit-widths (.mxq, as `--pack`) for mixq.Runtime; returns the
        size report (file_bytes, predicted_bytes, ...)."""
        return _json.loads(self._h.pack(_os.fspath(path)))

    def __repr__(self):
        r = self.report
        return (f"<mixq.Result {r.get('search')} search, {r.get('method')}, avg {r.get('avg_wbits', 0):.2f} weight bits, "
                f"{r.get('size_bytes')} bytes, top-1 {r.get('top1_quant')}>")


def quantize(model, calib="fmnist:train:1024", *, eval=None, example_input=None, output=None, pack=None,
             plan_out=None, report=None, report_html=None, progress=True, quiet=False, verbose=False, threads=None,
             **options):
    """Quantize `model` (path, ONNX bytes, onnx.ModelProto, or torch.nn.Module with example_input)
    with calibration data `calib` (a dataset spec or arrays, see mixq._inputs) and evaluate on `eval`
    (same kinds). Output files are written as the CLI writes them (-o/--pack/--plan-out/--report/
    --report-html); `options` are quantize's other options as keyword arguments. Returns a Result.
    Ctrl-C stops the job at its next safe point and raises mixq.Interrupted (nothing written)."""
    keep = []
    with _Resources() as res, _Call(progress, quiet, verbose, threads) as call:
        path = res.model_path(model, example_input, keep=keep)
        opts = dict(options)
        opts["calib"] = res.data_spec(calib, "calib")
        opts["eval"] = res.data_spec(eval, "eval")
        opts.update(output=output, pack=pack, plan_out=plan_out, report=report, report_html=report_html)
        if "save_outputs" in opts and opts["save_outputs"] is not None:
            opts["save_outputs"] = _os.fspath(opts["save_outputs"])
        h = _mixq.quantize(path, _options_to_args(opts), call.sink, call.show, call.signals)
    return Result(h, keep)


def pareto(model, calib="fmnist:train:1024", *, table=None, output=None, report_html=None, example_input=None,
           progress=True, quiet=False, verbose=False, threads=None, **options):
    """The sensitivity table (written to and resumed from `table`; a temporary file if None), then
    the size x BOPs x predicted-accuracy front, as `mixq pareto`. Returns the front (dict with
    "points")."""
    with _Resources() as res, _Call(progress, quiet, verbose, threads) as call:
        path = res.model_path(model, example_input)
        if table is None:
            import tempfile
            tmp = tempfile.TemporaryDirectory(prefix="mixq-")
            res.callback(tmp.cleanup)
            table = _os.path.join(tmp.name, "table.json")
        opts = dict(options, calib=res.data_spec(calib, "calib"), table_out=table, output=output,
                    report_html=report_html)
        return _json.loads(_mixq.pareto(path, _options_to_args(opts), call.sink, call.show, call.signals))


def plan_from_table(table, *, model=None, output=None, quiet=False, **options):
    """Solve a budget from a sensitivity table (from mixq.pareto / `mixq pareto --table-out`)
    without measuring anything, as `mixq plan --from-table`: e.g. budget_bits=4 or
    budget_bytes=50_000, search="ip" | "pareto" | "genetic". Returns {"plan": QuantPlan dict,
    "summary": {...}}; `output` also writes the plan."""
    opts = dict(options, from_table=_os.fspath(table), model=model)
    with _Call(False, quiet, False, None):
        plan, summary = _mixq.plan_from_table(_options_to_args(opts), _os.fspath(output) if output else "")
    return {"plan": _json.loads(plan), "summary": _json.loads(summary)}


def eval(model, data="fmnist:test", *, reference=None, outputs=False, example_input=None, progress=True, quiet=False,
         verbose=False, threads=None, **options):
    """Run `model` over `data` on the executor, as `mixq eval --json`: top-1 where the data has
    labels and class scores, and with `reference` (a float model: path, bytes or ModelProto; or an
    .npz of stored outputs) the fidelity of every output (SQNR, cosine, max error, KL, top-1
    agreement). outputs=True adds "outputs": {name: array of every sample}."""
    with _Resources() as res, _Call(progress, quiet, verbose, threads) as call:
        path = res.model_path(model, example_input)
        opts = dict(options, data=res.data_spec(data, "data"), reference=res.reference(reference))
        j, outs = _mixq.eval([path] + _options_to_args(opts), bool(outputs), call.sink, call.show, call.signals)
    result = _json.loads(j)
    if outputs:
        result["outputs"] = dict(outs)
    return result


def pack(model, output, calib="fmnist:train:1024", *, float_model=False, eval=None, example_input=None, plan=None,
         progress=True, quiet=False, verbose=False, threads=None, **options):
    """Quantize with a plan (`plan=`) or a search and write the packed .mxq `output`, as `mixq pack`;
    float_model=True packs the BatchNorm-folded float model (the runtime's fp32 baseline). Returns
    the size report (file_bytes, predicted_bytes, ..., avg_wbits, top1_sim with eval=)."""
    calib_given = calib != "fmnist:train:1024"
    with _Resources() as res, _Call(progress, quiet, verbose, threads) as call:
        path = res.model_path(model, example_input)
        opts = dict(options, calib=res.data_spec(calib, "calib"), eval=res.data_spec(eval, "eval"), plan=plan,
                    output=output, float=bool(float_model))
        return _json.loads(_mixq.pack([path] + _options_to_args(opts), calib_given, call.sink, call.show,
                                      call.signals))


def run(model, data="fmnist:test", *, reference=None, outputs=False, isa="auto", threads=1, progress=True,
        quiet=False, verbose=False, **options):
    """A packed .mxq `model` over `data` on the runtime, as `mixq run --json`: top-1 where the data
    has labels and class scores, the fidelity of every output to `reference` (the float .onnx or an
    .npz of stored outputs), isa, integer_layers, weight_bytes. outputs=True adds "outputs"."""
    with _Resources() as res, _Call(progress, quiet, verbose, None) as call:
        opts = dict(options, data=res.data_spec(data, "data"), reference=res.reference(reference), isa=isa)
        j, outs = _mixq.run([_os.fspath(model)] + _options_to_args(opts), int(threads), bool(outputs), call.sink,
                            call.show, call.signals)
    result = _json.loads(j)
    if outputs:
        result["outputs"] = dict(outs)
    return result


def info(model, data=None, *, input_shape=None, blocks=False, example_input=None):
    """A model's quantizable layers (op, weight shape, params, MACs, output shape), inputs and totals
    as `mixq info --json`; blocks=True: the reconstruction units instead (`info --blocks`).
    Dynamic axes take their sizes from `input_shape` ("NAME:1,3,48,320" or a list) or `data`."""
    shapes = [input_shape] if isinstance(input_shape, str) else list(input_shape or [])
    with _Resources() as res:
        path = res.model_path(model, example_input)
        return _json.loads(_mixq.info(path, res.data_spec(data, "data") or "", shapes, bool(blocks)))


def supported_ops():
    """The ONNX operators and opset ranges mixq's executor runs (`mixq info --ops`)."""
    return _json.loads(_mixq.supported_ops())["ops"]


def bench(model, data="fmnist:test:64", *, runs=200, runs64=20, onnx=None, isa="auto", threads=1, nodes=False):
    """Batch-1 latency and batch-64 throughput of a packed .mxq model on the runtime, as `mixq bench
    --json` (wall and CPU time; onnx= also times that model on the executor; nodes=True adds the
    per-node profile)."""
    with _Resources() as res:
        spec = res.data_spec(data, "data")
        return _json.loads(_mixq.bench(_os.fspath(model), spec, int(runs), int(runs64),
                                       _os.fspath(onnx) if onnx else "", isa, int(threads), bool(nodes)))


def profile(model, *, data="fmnist:test:64", batch=1, runs=100, calib="fmnist:train:64", bits=(2, 3, 4, 5, 6, 8),
            abits=8, rounds=3, isa="auto", threads=1, output=None):
    """As `mixq profile --json`: for a packed .mxq, where its time goes (per-node ms, GOP/s, share of
    this core's peak); for a float .onnx, the latency table per weight bit-width that
    `quantize(..., latency_table=..., budget_latency_ms=...)` reads (`output` writes it)."""
    model = _os.fspath(model)
    out = _os.fspath(output) if output else ""
    with _Resources() as res:
        if model.endswith(".mxq"):
            j = _mixq.profile_packed(model, res.data_spec(data, "data"), int(batch), int(runs), isa, int(threads), out)
        else:
            j = _mixq.latency_table(model, res.data_spec(calib, "calib"), [int(b) for b in bits], int(abits),
                                    int(runs), int(rounds), isa, int(threads), out)
    return _json.loads(j)


class Runtime:
    """A packed .mxq model on mixq's libtorch-free runtime (as `mixq run` / `mixq bench`).

    run(x) takes one array per model input (a single array for a single-input model, a list, or a
    dict by input name), already preprocessed as the model expects (float32), and returns the list
    of outputs as NumPy arrays."""

    def __init__(self, path, isa="auto", threads=1):
        self._rt = _mixq.Runtime(_os.fspath(path), isa, int(threads))

    @property
    def input_names(self):
        return self._rt.input_names

    @property
    def output_names(self):
        return self._rt.output_names

    @property
    def isa(self):
        return self._rt.isa

    def layers(self):
        """Which kernel path each quantized layer takes (integer or float, kernel, weight bytes)."""
        return self._rt.layers()

    def run(self, inputs):
        from ._inputs import _as_array
        names = self.input_names
        if isinstance(inputs, dict):
            missing = [n for n in names if n not in inputs]
            if missing:
                raise InvalidDataError(f"no array for model input(s) {missing} (inputs: {names})")
            arrays = [inputs[n] for n in names]
        elif isinstance(inputs, (list, tuple)):
            arrays = list(inputs)
        else:
            arrays = [inputs]
        if len(arrays) != len(names):
            raise InvalidDataError(f"the model takes {len(names)} input(s) {names}, got {len(arrays)}")
        return self._rt.run([_as_array(a, f"input '{n}'") for a, n in zip(arrays, names)])

    __call__ = run


def runtime_env_changes():
    """The OpenBLAS / libgomp variables `mixq` wants on this machine (e.g. OPENBLAS_CORETYPE=SkylakeX
    OMP_WAIT_POLICY=PASSIVE): applied at import when mixq is imported before numpy / torch, else
    to be exported before starting Python (see _runtime_env.py)."""
    return _mixq.runtime_env_changes()
