"""`neuronviz evaluate` in a real subprocess: masked accuracy and loss, one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli_parallel

from neuronviz.backend.model.data import load_data
from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.trace import trace
from neuronviz.backend.scoring.preview import Previewer
from neuronviz.core.plan import Plan
from neuronviz.resources import demo_model as demo_model_file

MODEL = str(demo_model_file())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every invocation of this module, started together (each pays the TensorFlow import)."""
    tmp = tmp_path_factory.mktemp("cli")
    plan = tmp / "plan.json"
    Plan({"conv2d_1": range(0, 64, 2)}).save(plan)
    wrong = tmp / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 32, 32, 3), np.float32), y=np.zeros(4, np.int64))
    argv = {
        "json": ["--data", "demo", "--remove", "dense:0-99", "--remove", "conv2d:3", "--json"],
        "text": ["--data", "demo", "--plan", str(plan)],
        "bad_index": ["--data", "demo", "--remove", "dense:600"],
        "wrong_shape": ["--data", str(wrong)],
        "missing_data": ["--data", str(tmp / "missing.npz")],
    }
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return run_cli_parallel(
        {name: ["evaluate", MODEL, *args] for name, args in argv.items()}, env=env
    )


@pytest.fixture(scope="module")
def demo_previewer(demo_model):
    return Previewer(demo_model, trace(flatten(demo_model)), load_data("demo", demo_model))


def _one_line_error(proc, *needles):
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("neuronviz: error: ") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_json_is_exactly_one_object(runs, demo_previewer):
    proc = runs["json"]
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"accuracy", "loss", "n"}
    want = demo_previewer.score(Plan({"dense": range(100), "conv2d": [3]}))
    assert data["n"] == 1000
    assert data["accuracy"] == pytest.approx(want.accuracy)
    assert data["loss"] == pytest.approx(want.loss, rel=1e-5)


def test_text_output_with_plan_file(runs, demo_previewer):
    proc = runs["text"]
    assert proc.returncode == 0, proc.stderr
    want = demo_previewer.score(Plan({"conv2d_1": range(0, 64, 2)}))
    base = demo_previewer.baseline()
    assert "conv2d_1" in proc.stdout and "32 of 64 units masked" in proc.stdout
    assert f"accuracy {want.accuracy:.4f} (unmasked {base.accuracy:.4f}" in proc.stdout
    assert f"loss     {want.loss:.4f}" in proc.stdout
    assert "samples  1000" in proc.stdout


def test_bad_index_is_one_line(runs):
    _one_line_error(
        runs["bad_index"], "Expected `indices` in [0, 512) for layer 'dense'", "indices=[600]"
    )


def test_wrong_data_shape_is_one_line(runs):
    _one_line_error(runs["wrong_shape"], "(N, 28, 28, 1)", "x.shape=(4, 32, 32, 3)")


def test_missing_data_is_one_line(runs):
    _one_line_error(runs["missing_data"], "Data file not found", "missing.npz")


def test_data_is_required():
    proc = subprocess.run(
        [sys.executable, "-m", "neuronviz.cli", "evaluate", MODEL],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "neuronviz: error: the following arguments are required: --data"
    ]
