"""`neuronviz inspect`: the JSON contract, the table, and one-line refusals."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import run_cli_parallel

from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.trace import trace
from neuronviz.cli import main
from neuronviz.commands.inspect import report

L = keras.layers


def _inspect(*args):
    return subprocess.run(
        [sys.executable, "-m", "neuronviz.cli", "inspect", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def runs(demo_model_path):
    """The JSON runs in fresh processes, started together (each pays TensorFlow's import)."""
    commands = {
        "json": [demo_model_path, "--json"],
        "data": [demo_model_path, "--data", "demo", "--json", "--batch-size", "300"],
    }
    return run_cli_parallel({name: ["inspect", *a] for name, a in commands.items()})


@pytest.fixture(scope="module")
def demo_json(runs):
    r = runs["json"]
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # stdout is exactly one JSON object


def _rows(data):
    return {r["name"]: r for r in data["layers"]}


def test_json_contract_without_data(demo_json, demo_model):
    d = demo_json
    assert d["model"] == {
        "name": "demo_cnn",
        "params": demo_model.count_params(),
        "macs": d["model"]["macs"],
    }
    assert "baseline" not in d
    names = [r["name"] for r in d["layers"]]
    assert names == [
        "input_layer",
        "conv2d",
        "max_pooling2d",
        "conv2d_1",
        "max_pooling2d_1",
        "flatten",
        "dense",
        "dense_1",
    ]
    rows = _rows(d)
    assert rows["input_layer"] == {
        "name": "input_layer",
        "class": "InputLayer",
        "output_shape": [None, 28, 28, 1],
        "units": None,
        "unit_kind": "unit",
        "params": 0,
        "macs": 0,
        "group": None,
    }
    assert (
        rows["flatten"]["units"] is None
        and rows["flatten"]["group"] is None
        and "norm_l2" not in rows["flatten"]
    )
    conv = rows["conv2d"]
    assert (conv["class"], conv["output_shape"], conv["units"], conv["group"]) == (
        "Conv2D",
        [None, 28, 28, 32],
        32,
        0,
    )
    assert conv["macs"] == 28 * 28 * 25 * 1 * 32 and conv["params"] == 5 * 5 * 32 + 32
    assert rows["conv2d_1"]["macs"] == 14 * 14 * 25 * 32 * 64
    assert rows["dense"]["macs"] == 7 * 7 * 64 * 512 and rows["dense_1"]["macs"] == 512 * 10
    assert d["model"]["macs"] == sum(r["macs"] for r in d["layers"])
    assert [rows[n]["unit_kind"] for n in ("conv2d", "max_pooling2d", "dense", "flatten")] == [
        "channel",
        "channel",
        "neuron",
        "unit",
    ]
    pool = rows["max_pooling2d"]
    assert (
        pool["units"] == 32 and pool["group"] == 0 and "norm_l1" not in pool and "apoz" not in pool
    )
    kernel = demo_model.get_layer("dense").kernel.numpy().astype(np.float64)
    np.testing.assert_allclose(rows["dense"]["norm_l2"], np.linalg.norm(kernel, axis=0), rtol=1e-6)
    np.testing.assert_allclose(rows["dense"]["norm_l1"], np.abs(kernel).sum(axis=0), rtol=1e-6)
    assert [rows[n]["group"] for n in ("conv2d_1", "dense", "dense_1")] == [1, 2, 3]
    assert "mean_activation" not in rows["dense"]


def test_json_with_data_has_baseline_and_activation_stats(runs, demo_model, demo_val):
    r = runs["data"]
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    x, y = demo_val
    logits = demo_model.predict(x, verbose=0)
    assert d["baseline"]["n"] == 1000
    assert d["baseline"]["accuracy"] == pytest.approx(float((logits.argmax(1) == y).mean()))
    assert d["baseline"]["loss"] == pytest.approx(0.0764, abs=5e-3)
    rows = _rows(d)
    h = keras.Model(demo_model.inputs, demo_model.get_layer("dense").output).predict(x, verbose=0)
    np.testing.assert_allclose(rows["dense"]["mean_activation"], h.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(rows["dense"]["apoz"], (h == 0).mean(0), atol=1e-6)
    assert len(rows["max_pooling2d"]["apoz"]) == 32 and "norm_l2" not in rows["max_pooling2d"]
    assert "apoz" not in rows["flatten"] and "apoz" not in rows["input_layer"]


def test_table_output(demo_model_path, capsys):
    assert main(["inspect", str(demo_model_path)]) == 0  # in-process: TensorFlow is loaded already
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model demo_cnn: 1,663,370 params, 12,273,152 MACs"
    conv = next(line for line in lines if line.startswith("conv2d "))
    assert conv.split()[:5] == ["conv2d", "Conv2D", "(N,28,28,32)", "32", "832"]
    assert any(line.startswith("flatten ") and " - " in line for line in lines)


def test_bad_input_is_one_stderr_line(tmp_path, demo_model_path, capsys):
    r = _inspect(tmp_path / "missing.keras", "--json")
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"neuronviz: error: Model file not found: '{tmp_path / 'missing.keras'}'"
    ]
    r = _inspect(demo_model_path, "--data", tmp_path / "none.npz")
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"neuronviz: error: Data file not found: '{tmp_path / 'none.npz'}'"
    ]
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 5, 5, 1), "float32"), y=np.zeros(3, "int64"))
    assert main(["inspect", str(demo_model_path), "--data", str(bad), "--json"]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "neuronviz: error: Expected `x` of shape (N, 28, 28, 1)"
    )


def test_report_rows_for_inputs_nested_models_and_concatenate():
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3, name="d")], name="inner")
    a, b = keras.Input((4,), name="left"), keras.Input((2,), name="right")
    h = L.Concatenate(name="cat")([inner(a), L.Dense(2, name="side")(b)])
    model = keras.Model([a, b], L.Dense(1, name="out")(h))
    data = json.loads(json.dumps(report(model, trace(flatten(model)))))
    rows = _rows(data)
    assert [r["name"] for r in data["layers"][:2]] == ["left", "right"]
    assert all(
        rows[n]["class"] == "InputLayer" and rows[n]["units"] is None for n in ("left", "right")
    )
    assert rows["inner/d"]["units"] == 3 and len(rows["inner/d"]["norm_l2"]) == 3
    assert rows["cat"]["units"] == 5 and rows["cat"]["group"] == [
        rows["inner/d"]["group"],
        rows["side"]["group"],
    ]
    assert rows["cat"]["class"] == "Concatenate" and "norm_l2" not in rows["cat"]
    assert rows["out"]["macs"] == 5 and data["model"]["params"] == model.count_params()
