"""Errors raise the mixq.Error subclass of the CLI's exit code, with the CLI's message."""

import numpy as np
import pytest

import mixq
from conftest import run_cli


def _cli_error(*args):
    code, _, err = run_cli(*args, "-q", check=False)
    assert code != 0
    return code, err.strip().removeprefix("error: ")


def test_bad_option_value(mlp):
    code, msg = _cli_error("quantize", mlp, "--calib", "fmnist:train:16", "--wbits", "4", "--method", "nosuch")
    with pytest.raises(mixq.InvalidArgumentError) as e:
        mixq.quantize(mlp, calib="fmnist:train:16", method="nosuch", quiet=True)
    assert e.value.code == code == 2
    assert str(e.value) in msg or msg in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, mixq.Error)


def test_unknown_option(mlp):
    with pytest.raises(mixq.InvalidArgumentError, match="no-such-option"):
        mixq.quantize(mlp, calib="fmnist:train:16", no_such_option=3, quiet=True)


def test_missing_model(tmp_path):
    missing = tmp_path / "missing.onnx"
    code, msg = _cli_error("quantize", missing, "--calib", "fmnist:train:16")
    with pytest.raises(mixq.Error) as e:
        mixq.quantize(missing, calib="fmnist:train:16", quiet=True)
    assert e.value.code == code
    assert str(e.value) == msg


def test_corrupt_model_bytes(tmp_path):
    bad = b"\x08\x07\x12\x03not an onnx model" * 3
    (tmp_path / "bad.onnx").write_bytes(bad)
    code, msg = _cli_error("quantize", tmp_path / "bad.onnx", "--calib", "fmnist:train:16")
    with pytest.raises(mixq.Error) as e:
        mixq.quantize(bad, calib="fmnist:train:16", quiet=True)
    assert e.value.code == code == 3
    assert type(e.value) is mixq.InvalidModelError


def test_data_of_wrong_shape(mlp, tmp_path):
    x = np.zeros((8, 3, 5, 5), np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    code, msg = _cli_error("quantize", mlp, "--calib", tmp_path / "x.npz")
    with pytest.raises(mixq.InvalidDataError) as e:
        mixq.quantize(mlp, calib=x, quiet=True)
    assert e.value.code == code == 5
    # The same message, but for the name of the data (the .npz path vs the in-memory arrays).
    assert msg.split(":", 2)[-1] == str(e.value).split(":", 2)[-1]


def test_empty_iterable(mlp):
    with pytest.raises(mixq.InvalidDataError, match="no batches"):
        mixq.quantize(mlp, calib=iter([]), quiet=True)


def test_runtime_errors(tmp_path):
    with pytest.raises(mixq.Error) as e:
        mixq.Runtime(tmp_path / "missing.mxq")
    code, msg = _cli_error("run", tmp_path / "missing.mxq")
    assert e.value.code == code and str(e.value) == msg


def test_refuses_to_overwrite_the_model(mlp, tmp_path):
    import shutil
    m = tmp_path / "m.onnx"
    shutil.copy(mlp, m)
    before = m.read_bytes()
    with pytest.raises(mixq.InvalidArgumentError, match="refusing to overwrite"):
        mixq.quantize(m, calib="fmnist:train:16", output=m, quiet=True)
    r = mixq.quantize(m, calib="fmnist:train:16", quiet=True)
    with pytest.raises(mixq.InvalidArgumentError, match="refusing to overwrite"):
        r.save_onnx(m)
    assert m.read_bytes() == before
