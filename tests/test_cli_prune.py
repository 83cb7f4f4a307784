"""`neuronviz prune`: the CLI contract."""

import json

import pytest
from conftest import run_cli

import neuronviz.api as nv

cli = run_cli


def test_prune_json_contract(tmp_path, demo_model_path, demo_model):
    out = tmp_path / "small.keras"
    r = cli("prune", demo_model_path, "-o", out, "--remove", "dense:0-99", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {
        "removed",
        "params_before",
        "params_after",
        "macs_before",
        "macs_after",
        "macs_ratio",
        "latency_ms_before",
        "latency_ms_after",
        "latency_ratio",
        "latency_batch_size",
        "latency_runs",
        "output",
    }
    assert data["removed"] == {"dense": list(range(100))}
    assert data["params_before"] == demo_model.count_params()
    assert data["params_before"] - data["params_after"] == 100 * (3136 + 1) + 100 * 10
    assert data["macs_before"] - data["macs_after"] == 100 * 3136 + 100 * 10
    assert nv.load_model(data["output"]).get_layer("dense").units == 412


def test_prune_with_plan_and_summary(tmp_path, demo_model_path):
    plan = tmp_path / "plan.json"
    nv.Plan({"conv2d": [0, 1], "conv2d_1": list(range(10))}).save(plan)
    out = tmp_path / "p.h5"
    r = cli("prune", demo_model_path, "-o", out, "--plan", plan, "--remove", "dense:5")
    assert r.returncode == 0, r.stderr
    assert "conv2d" in r.stdout and "32 -> 30" in r.stdout and "512 -> 511" in r.stdout
    assert "params" in r.stdout and "MACs" in r.stdout
    m = nv.load_model(out)
    assert (m.get_layer("conv2d").filters, m.get_layer("conv2d_1").filters) == (30, 54)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--remove", "dense:0-511"], "at least one unit to remain"),
        (["--remove", "dense:512"], "[0, 512)"),
        (["--remove", "dense:-1"], "[0, 512)"),
        (["--remove", "dens:3"], "Did you mean 'dense'"),
        (["--remove", "dense"], "LAYER:SPEC"),
        ([], "Expected units to remove"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(tmp_path, demo_model_path, args, needle):
    out = tmp_path / "o.keras"
    r = cli("prune", demo_model_path, "-o", out, *args)
    assert r.returncode != 0
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_the_input(tmp_path, demo_model):
    src = tmp_path / "m.keras"
    demo_model.save(src)
    stamp = src.read_bytes()
    r = cli("prune", src, "-o", src, "--remove", "dense:1")
    assert r.returncode != 0 and "overwrite" in r.stderr
    assert src.read_bytes() == stamp


def test_output_units_warn(tmp_path, demo_model_path):
    r = cli("prune", demo_model_path, "-o", tmp_path / "o.keras", "--remove", "dense_1:9")
    assert r.returncode == 0
    assert "warning" in r.stderr and "output units" in r.stderr


def test_bad_model_file(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"garbage")
    r = cli("prune", bad, "-o", tmp_path / "o.keras", "--remove", "dense:1")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "bad.keras" in r.stderr
