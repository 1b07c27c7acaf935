"""mixq.quantize from NumPy data and from a torch model gives what the CLI gives on the same
inputs and seed; Result's files equal the CLI's."""

import json

import numpy as np
import pytest

import mixq
from conftest import cli_json, run_cli


def _strip_times(rep):
    """The report less what differs between two identical runs (times, and the data specs: the CLI
    names the .npz, Python its in-memory arrays)."""
    rep = json.loads(json.dumps(rep))
    for k in ("seconds", "seconds_search", "seconds_total", "calib", "eval", "model"):
        rep.pop(k, None)

    def drop(o):
        if isinstance(o, dict):
            return {k: drop(v) for k, v in o.items()
                    if "seconds" not in k and not k.endswith("_s") and k not in ("timing", "elapsed")}
        if isinstance(o, list):
            return [drop(v) for v in o]
        return o
    return drop(rep)


@pytest.fixture(scope="module")
def data(fmnist, tmp_path_factory):
    xtr, ytr, xte, yte = fmnist
    d = tmp_path_factory.mktemp("data")
    calib, test = (xtr[:256], ytr[:256]), (xte[:500], yte[:500])
    np.savez(d / "calib.npz", x=calib[0], y=calib[1])
    np.savez(d / "test.npz", x=test[0], y=test[1])
    return calib, test, d / "calib.npz", d / "test.npz"


def test_quantize_numpy_equals_cli(mlp, data, tmp_path):
    calib, test, calib_npz, test_npz = data
    opts = ["--search", "ip", "--budget-bits", "3.5", "--sens-samples", "128", "--method", "adaround",
            "--iters", "40", "--seed", "3"]
    cli = cli_json("quantize", mlp, "--calib", calib_npz, "--eval", test_npz, *opts, "-o", tmp_path / "cli.onnx",
                   "--plan-out", tmp_path / "cli.plan.json", "--pack", tmp_path / "cli.mxq")
    r = mixq.quantize(mlp, calib=calib, eval=test, search="ip", budget_bits=3.5, sens_samples=128, method="adaround",
                      iters=40, seed=3, output=tmp_path / "py.onnx", quiet=True)
    r.save_plan(tmp_path / "py.plan.json")
    packed = r.pack(tmp_path / "py.mxq")
    assert _strip_times(r.report) == _strip_times({k: v for k, v in cli.items() if k != "pack"})
    assert r.report["top1_quant"] > 50 and r.report["avg_wbits"] <= 3.5 + 1e-9
    assert r.layers and all("wbits" in L for L in r.layers)
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    plan_py = json.loads((tmp_path / "py.plan.json").read_text())
    plan_cli = json.loads((tmp_path / "cli.plan.json").read_text())
    assert plan_py["layers"] == plan_cli["layers"]
    assert r.plan["layers"] == plan_cli["layers"]
    assert (tmp_path / "py.mxq").read_bytes() == (tmp_path / "cli.mxq").read_bytes()
    assert packed["file_bytes"] == cli["pack"]["file_bytes"]


def test_quantize_spec_strings_and_iterables(mlp, fmnist, tmp_path):
    """A dataset spec string is passed through as the CLI takes it; an iterable of batches is
    concatenated (same result as the whole array)."""
    xtr, ytr, _, _ = fmnist
    a = mixq.quantize(mlp, calib="fmnist:train:128", wbits=4, quiet=True)
    b = mixq.quantize(mlp, calib=(xtr[:128], ytr[:128]), wbits=4, quiet=True)
    c = mixq.quantize(mlp, calib=((xtr[i:i + 32], ytr[i:i + 32]) for i in range(0, 128, 32)), wbits=4, quiet=True)
    assert a.plan["layers"] == b.plan["layers"] == c.plan["layers"]
    assert b.sizes == c.sizes


torch = pytest.importorskip("torch")


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(16 * 14 * 14, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


def test_quantize_torch_module_equals_cli(fmnist, tmp_path):
    torch.manual_seed(0)
    net = SmallNet()
    xtr, ytr, _, _ = fmnist
    x = torch.from_numpy(xtr[:64].astype(np.float32) / 255.0)
    with torch.no_grad():
        net.train()
        net(x)  # BatchNorm statistics of real data
    net.eval()
    with torch.no_grad():
        ref = net(x).numpy()
    r = mixq.quantize(net, calib=x, example_input=x[:1], wbits=8, abits=8, quiet=True, pack=tmp_path / "net.mxq")
    out = mixq.Runtime(tmp_path / "net.mxq").run(x.numpy())[0]
    sqnr = 10 * np.log10(np.sum(ref ** 2) / np.sum((out - ref) ** 2))
    assert sqnr > 25, sqnr  # W8A8 of a float model: close to it

    # The same export through the CLI, on the same arrays saved as .npz, gives the same model.
    from mixq._inputs import export_torch
    export_torch(net, x[:1], str(tmp_path / "net.onnx"))
    np.savez(tmp_path / "x.npz", x=x.numpy())
    run_cli("quantize", tmp_path / "net.onnx", "--calib", tmp_path / "x.npz", "--wbits", "8", "--abits", "8", "-q",
            "--pack", tmp_path / "cli.mxq")
    assert (tmp_path / "net.mxq").read_bytes() == (tmp_path / "cli.mxq").read_bytes()


def test_options_and_flags(mlp, data):
    calib, _, _, _ = data
    r = mixq.quantize(mlp, calib=calib, wbits=6, granularity="per_tensor", pin_bits=8, bn_reestimate=False,
                      sens_bits=[4, 8], quiet=True)
    assert {L["granularity"] for L in r.layers} == {"per_tensor"}
    assert any(L["wbits"] == 6 for L in r.layers)


def test_progress_callback(mlp, data):
    calib, test, _, _ = data
    events = []
    mixq.quantize(mlp, calib=calib, eval=test, wbits=4,
                  progress=lambda label, unit, done, total, secs, final: events.append((label, done, total, final)))
    assert events, "no progress reported"
    finals = [e for e in events if e[3]]
    assert finals and all(e[1] == e[2] for e in finals)


def test_gil_released_during_work(resnet, fmnist):
    """Another Python thread keeps running while a job runs."""
    import threading
    xtr, ytr, _, _ = fmnist
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.01)
    t = threading.Thread(target=ticker)
    t.start()
    try:
        mixq.quantize(resnet, calib=(xtr[:64], ytr[:64]), method="adaround", iters=30, quiet=True)
    finally:
        stop.set()
        t.join()
    assert len(ticks) > 20
