"""Models and data as Python users hold them, turned into what the library reads.

Models: a path, ONNX bytes, an object with SerializeToString() (onnx.ModelProto), or a
torch.nn.Module with an example input (exported with torch.onnx.export). Data: a dataset spec
string (as the CLI takes: "fmnist:train:1024", a .npz, .npy or .pb path), or arrays: anything with
__array__ (NumPy arrays, torch tensors), a tuple (inputs, labels), a dict {input name or "x":
array, "y": labels}, or an iterable of such batches (concatenated). Arrays are registered with the
library under "mem:<hash of their contents>" and read exactly as an .npz holding them would be,
so the same arrays saved with numpy.savez give the CLI the same result."""

import contextlib
import hashlib
import os
import tempfile

import numpy as np

from . import _mixq


def _as_array(a, what):
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor: no autograd graph, on the CPU
        a = a.detach().cpu()
    try:
        arr = np.asarray(a)
    except Exception as e:  # noqa: BLE001 - reported with the name of the argument
        raise TypeError(f"{what}: cannot be read as an array ({e})") from None
    if arr.dtype == np.float64:
        # NumPy's default float; model inputs are float32 in nearly every exported model.
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _batch_to_dict(batch, what):
    if isinstance(batch, dict):
        return {str(k): _as_array(v, f"{what}[{k!r}]") for k, v in batch.items()}
    if isinstance(batch, tuple):
        if len(batch) != 2:
            raise TypeError(f"{what}: a tuple must be (inputs, labels)")
        d = _batch_to_dict(batch[0], what)
        d["y"] = _as_array(batch[1], f"{what} labels")
        return d
    return {"x": _as_array(batch, what)}


def data_to_dict(data, what):
    """Arrays for one dataset argument: {name: contiguous ndarray}."""
    if isinstance(data, (dict, tuple)) or hasattr(data, "__array__") or isinstance(data, np.ndarray):
        return _batch_to_dict(data, what)
    if isinstance(data, (list,)) and data and all(isinstance(x, (int, float)) for x in data):
        return _batch_to_dict(np.asarray(data), what)
    try:
        batches = iter(data)
    except TypeError:
        raise TypeError(f"{what}: expected a dataset spec string, an array, (inputs, labels), a dict of arrays "
                        f"or an iterable of batches, got {type(data).__name__}") from None
    parts = [_batch_to_dict(b, f"{what} batch {i}") for i, b in enumerate(batches)]
    if not parts:
        raise _mixq_error("InvalidDataError", f"{what}: the iterable yielded no batches")
    keys = set(parts[0])
    for i, p in enumerate(parts):
        if set(p) != keys:
            raise _mixq_error("InvalidDataError", f"{what}: batch {i} has arrays {sorted(p)}, batch 0 {sorted(keys)}")
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _mixq_error(name, message):
    from . import errors
    return getattr(errors, name)(message)


def _content_name(arrays):
    h = hashlib.blake2b(digest_size=8)
    for k in sorted(arrays):
        a = arrays[k]
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


class Resources(contextlib.ExitStack):
    """What one call registered or wrote (arrays, temporary model files), released at its end."""

    def data_spec(self, data, what):
        if data is None:
            return None
        if isinstance(data, (str, os.PathLike)):
            return os.fspath(data)
        arrays = data_to_dict(data, what)
        name = _content_name(arrays)
        _mixq.register_arrays(name, arrays)
        self.callback(_mixq.unregister_arrays, name)
        return "mem:" + name

    def reference(self, reference):
        """--reference for eval / run: an .npz of stored outputs as it is, else a model (any kind
        model_path takes); None: none."""
        if reference is None:
            return None
        if isinstance(reference, (str, os.PathLike)) and os.fspath(reference).endswith(".npz"):
            return os.fspath(reference)
        return self.model_path(reference)

    def model_path(self, model, example_input=None, keep=None):
        """A path for `model`. A temporary file is removed at the end of the call, unless `keep`
        (a list) is given: then its TemporaryDirectory is appended there and lives with the caller."""
        if isinstance(model, (str, os.PathLike)):
            if example_input is not None:
                raise TypeError("example_input is only for a torch.nn.Module model")
            return os.fspath(model)
        tmp = tempfile.TemporaryDirectory(prefix="mixq-")
        if keep is not None:
            keep.append(tmp)
        else:
            self.callback(tmp.cleanup)
        path = os.path.join(tmp.name, "model.onnx")
        if isinstance(model, (bytes, bytearray, memoryview)):
            with open(path, "wb") as f:
                f.write(bytes(model))
        elif hasattr(model, "SerializeToString"):
            with open(path, "wb") as f:
                f.write(model.SerializeToString())
        elif _is_torch_module(model):
            if example_input is None:
                raise TypeError("a torch.nn.Module needs example_input= (a tensor of the input's shape) to be exported")
            export_torch(model, example_input, path)
        else:
            raise TypeError(f"model: expected a path, ONNX bytes, an onnx.ModelProto or a torch.nn.Module, "
                            f"got {type(model).__name__}")
        return path


def _is_torch_module(obj):
    try:
        import torch
    except ImportError:
        return False
    return isinstance(obj, torch.nn.Module)


def export_torch(module, example_input, path):
    """torch.onnx.export of `module` on `example_input` (a tensor or a tuple of them), batch axis
    dynamic, opset 13, in eval mode (BatchNorm and Dropout as at inference; mixq folds BatchNorm)."""
    import torch
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    args = tuple(torch.as_tensor(a) for a in args)
    names = [f"input_{i}" if len(args) > 1 else "input" for i in range(len(args))]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(module, args, path, input_names=names, output_names=["output"],
                              dynamic_axes={n: {0: "batch"} for n in names + ["output"]}, opset_version=13)
    finally:
        module.train(was_training)

