"""mixq.Runtime, mixq.eval, mixq.pareto and mixq.plan_from_table against their subcommands."""

import json

import numpy as np
import pytest

import mixq
from conftest import cli_json, run_cli


@pytest.fixture(scope="module")
def packed(mlp, tmp_path_factory):
    d = tmp_path_factory.mktemp("packed")
    r = mixq.quantize(mlp, calib="fmnist:train:256", wbits=4, quiet=True)
    r.pack(d / "mlp.mxq")
    return d / "mlp.mxq"


def _preprocessed(xte, n):
    return (xte[:n].astype(np.float32) / 255.0)  # the fixture's metadata: pixel / 255, no normalization


def test_runtime_run_equals_mixq_run(packed, fmnist, tmp_path):
    _, _, xte, yte = fmnist
    x = _preprocessed(xte, 200)
    np.savez(tmp_path / "x.npz", x=x)
    run_cli("run", packed, "--data", tmp_path / "x.npz", "--save-outputs", tmp_path / "cli.npz", "-q")
    rt = mixq.Runtime(packed)
    out = rt.run(x)
    ref = np.load(tmp_path / "cli.npz")
    assert len(out) == len(rt.output_names) == 1
    np.testing.assert_array_equal(out[0], ref[rt.output_names[0]])
    assert rt.run({rt.input_names[0]: x})[0].shape == (200, 10)
    assert any(L["integer"] for L in rt.layers())
    with pytest.raises(mixq.InvalidDataError, match="takes 1 input"):
        rt.run([x, x])


def test_eval_equals_cli_and_needs_no_labels(mlp, packed, fmnist, tmp_path):
    _, _, xte, yte = fmnist
    np.savez(tmp_path / "t.npz", x=xte[:300], y=yte[:300])
    cli = cli_json("eval", mlp, "--data", tmp_path / "t.npz")
    py = mixq.eval(mlp, (xte[:300], yte[:300]), quiet=True)
    for k in ("top1", "correct", "samples", "loss"):
        assert py[k] == cli[k], k
    # No labels, a float reference: fidelity only (a model against itself is exact).
    j = mixq.eval(mlp, xte[:100], reference=mlp, outputs=True, quiet=True)
    assert j["top1"] is None or "top1" not in j or j.get("metric") != "top1"
    assert j["outputs"] and next(iter(j["outputs"].values())).shape == (100, 10)


def test_pareto_and_plan_from_table_equal_cli(mlp, tmp_path):
    opts = dict(sens_samples=64, act_candidates="none")
    front = mixq.pareto(mlp, "fmnist:train:64", table=tmp_path / "t.json", quiet=True, **opts)
    cli = cli_json("pareto", mlp, "--calib", "fmnist:train:64", "--table-out", tmp_path / "t2.json",
                   "--sens-samples", "64", "--act-candidates", "none")
    strip = lambda pts: [{k: v for k, v in p.items() if "seconds" not in k} for p in pts]  # noqa: E731
    assert strip(front["points"]) == strip(cli["points"])
    p = mixq.plan_from_table(tmp_path / "t.json", budget_bits=3, output=tmp_path / "plan.json")
    cli_plan = cli_json("plan", "--from-table", tmp_path / "t.json", "--budget-bits", "3", "-o", tmp_path / "p2.json")
    assert p["summary"]["avg_wbits"] == cli_plan["avg_wbits"] <= 3
    assert json.loads((tmp_path / "plan.json").read_text())["layers"] == \
        json.loads((tmp_path / "p2.json").read_text())["layers"] == p["plan"]["layers"]


def test_pack_run_info_equal_cli(mlp, fmnist, tmp_path):
    _, _, xte, yte = fmnist
    j = mixq.pack(mlp, tmp_path / "py.mxq", calib="fmnist:train:128", wbits=4, quiet=True)
    cli = cli_json("pack", mlp, "--calib", "fmnist:train:128", "--wbits", "4", "-o", tmp_path / "cli.mxq")
    assert (tmp_path / "py.mxq").read_bytes() == (tmp_path / "cli.mxq").read_bytes()
    assert j["file_bytes"] == cli["file_bytes"]
    f = mixq.pack(mlp, tmp_path / "f.mxq", float_model=True, quiet=True)
    assert f["file_bytes"] > j["file_bytes"]

    np.savez(tmp_path / "t.npz", x=xte[:300], y=yte[:300])
    r = mixq.run(tmp_path / "py.mxq", (xte[:300], yte[:300]), reference=mlp, outputs=True, quiet=True)
    c = cli_json("run", tmp_path / "cli.mxq", "--data", tmp_path / "t.npz", "--reference", mlp)
    for k in ("top1", "correct", "samples", "integer_layers", "weight_bytes", "isa", "fidelity"):
        assert r[k] == c[k], k
    assert r["outputs"][next(iter(r["outputs"]))].shape == (300, 10)

    info = mixq.info(mlp)
    cli_info = cli_json("info", mlp)
    assert {k: info[k] for k in cli_info} == cli_info  # Python's also has io and producer
    assert mixq.info(mlp, blocks=True)["units"] == cli_json("info", mlp, "--blocks")["units"]
    ops = mixq.supported_ops()
    assert any(o["op"] == "Conv" for o in ops)
    b = mixq.bench(tmp_path / "py.mxq", runs=5, runs64=2)
    assert b["batch1_ms"] > 0 and b["batch64_images_per_second"] > 0


def test_profile(mlp, packed, tmp_path):
    p = mixq.profile(packed, runs=3)
    assert p["nodes"] and p["ms_in_nodes"] > 0
    t = mixq.profile(mlp, bits=[4, 8], runs=2, rounds=1, output=tmp_path / "lat.json")
    assert set(t["bits"]) == {32, 4, 8} and json.loads((tmp_path / "lat.json").read_text())["layers"] == t["layers"]
    with pytest.raises(mixq.InvalidArgumentError, match="not a bit-width"):
        mixq.profile(mlp, bits=[9])
