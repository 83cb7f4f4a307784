"""The sensitivity sweep: lowest-importance units first, per prunable group."""

import csv
import io
import json

import keras
import numpy as np
import pytest

from neuronviz.backend.analysis.importance import layer_scores
from neuronviz.backend.analysis.sensitivity import (
    DEFAULT_FRACTIONS,
    SweepResult,
    sweep,
)
from neuronviz.backend.model.data import Dataset
from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.trace import trace
from neuronviz.backend.scoring.preview import Previewer
from neuronviz.backend.surgery.prune import prune
from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError


@pytest.fixture(scope="module")
def demo_trace(demo_model):
    return trace(flatten(demo_model))


@pytest.fixture(scope="module")
def previewer(demo_model, demo_trace, demo_val):
    x, y = demo_val
    return Previewer(demo_model, demo_trace, Dataset(x[:200], y[:200], 10))


@pytest.fixture(scope="module")
def demo_sweep(previewer, demo_trace):
    run = sweep(previewer, demo_trace)
    progress = list(run)
    return run, progress


def test_sweep_covers_prunable_groups_only(demo_sweep):
    run, _ = demo_sweep
    result = run.result
    assert isinstance(result, SweepResult)
    assert [c.name for c in result.curves] == ["conv2d", "conv2d_1", "dense"]
    assert "dense_1" in result.skipped and "outputs" in result.skipped["dense_1"]
    dense = result.curve("dense")
    assert dense.layer == "dense" and dense.size == 512
    assert dense.fractions == list(DEFAULT_FRACTIONS)
    assert dense.removed == [round(f * 512) for f in DEFAULT_FRACTIONS]


def test_progress_rises_to_one(demo_sweep):
    _, progress = demo_sweep
    assert len(progress) == 27  # 3 groups x 9 non-zero fractions
    assert progress == sorted(progress) and progress[-1] == 1.0 and progress[0] > 0


def test_fraction_zero_is_the_baseline_and_damage_grows(demo_sweep, previewer):
    result = demo_sweep[0].result
    base = previewer.baseline()
    assert result.baseline == base
    for c in result.curves:
        assert c.accuracy[0] == base.accuracy and c.loss[0] == base.loss
        assert c.loss[-1] > c.loss[0]  # removing 90% of a group hurts


def test_a_point_equals_the_pruned_model_without_the_weakest_units(
    demo_sweep, demo_model, demo_trace, previewer
):
    """Independent check: L2 norms by hand, the pruned model by surgery."""
    curve = demo_sweep[0].result.curve("conv2d_1")
    kernel = demo_model.get_layer("conv2d_1").get_weights()[0]
    norms = np.sqrt((kernel.reshape(-1, 64) ** 2).sum(axis=0))
    k = curve.removed[5]
    plan = Plan({"conv2d_1": np.argsort(norms, kind="stable")[:k]})
    x, y = previewer.dataset.x, previewer.dataset.y
    out = keras.ops.convert_to_numpy(prune(demo_model, plan, demo_trace).model(x))
    assert curve.accuracy[5] == pytest.approx(np.mean(np.argmax(out, 1) == y))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, out)
    assert curve.loss[5] == pytest.approx(float(keras.ops.convert_to_numpy(loss)), rel=1e-4)


def test_l2_importance_matches_kernel_norms(demo_model, demo_trace):
    imp = layer_scores(demo_trace, "l2")
    assert set(imp) == {"conv2d", "conv2d_1", "dense", "dense_1"}
    kernel = demo_model.get_layer("dense").get_weights()[0]
    np.testing.assert_allclose(
        imp["dense"], np.linalg.norm(kernel.astype(np.float64), axis=0), rtol=1e-6
    )


def test_given_importance_decides_the_order(previewer, demo_trace):
    order = np.arange(512, dtype=float)  # unit 0 is the least important
    run = sweep(previewer, demo_trace, {"dense": order}, fractions=(0.25,))
    result = run.run()
    assert result.curve("dense").accuracy == [previewer.score(Plan({"dense": range(128)})).accuracy]
    assert result.curve("dense").loss == pytest.approx(
        [previewer.score(Plan({"dense": range(128)})).loss]
    )


def test_never_removes_a_whole_group(previewer, demo_trace):
    result = sweep(previewer, demo_trace, fractions=(1.0,)).run()
    assert [c.removed for c in result.curves] == [[31], [63], [511]]
    assert all(np.isfinite(c.accuracy[0]) for c in result.curves)


def test_json_and_csv_outputs(demo_sweep):
    result = demo_sweep[0].result
    data = json.loads(result.to_json())
    assert data["baseline"]["n"] == 200
    assert [g["name"] for g in data["groups"]] == ["conv2d", "conv2d_1", "dense"]
    assert data["groups"][2]["accuracy"] == result.curve("dense").accuracy
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert len(rows) == 30
    assert rows[0]["group"] == "conv2d" and float(rows[0]["fraction"]) == 0.0
    assert float(rows[-1]["accuracy"]) == pytest.approx(result.curve("dense").accuracy[-1])


def test_bad_arguments(previewer, demo_trace):
    with pytest.raises(
        NeuronvizError, match="Expected 512 finite importance values for layer 'dense'"
    ):
        sweep(previewer, demo_trace, {"dense": np.ones(10)})
    with pytest.raises(NeuronvizError, match="unknown layer 'dens'.*Did you mean 'dense'"):
        sweep(previewer, demo_trace, {"dens": np.ones(512)})
    with pytest.raises(NeuronvizError, match=r"fractions in \[0, 1\]"):
        sweep(previewer, demo_trace, fractions=(0.5, 1.5))


def test_blocked_group_is_skipped():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 4))
    h = keras.layers.Conv2D(8, 3, groups=2, name="grouped")(inp)
    h = keras.layers.Conv2D(6, 3, name="plain")(h)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    tr = trace(flatten(model))
    x = np.random.default_rng(0).normal(size=(40, 6, 6, 4)).astype("float32")
    pv = Previewer(model, tr, Dataset(x, np.arange(40) % 3, 3))
    result = sweep(pv, tr, fractions=(0.0, 0.5)).run()
    assert [c.name for c in result.curves] == ["plain"]
    assert result.skipped["grouped"].startswith("blocked: ")
    assert result.curve("plain").removed == [0, 3]
