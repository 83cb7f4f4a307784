"""Whole branches: removing every unit of a branch that only feeds a Concatenate removes the
branch's layers. The pruned model equals an oracle built here (`x * mask` after the last
layer that still carries the removed channels), the masked model and the preview."""

import keras
import numpy as np
import pytest
from engine_models import randomize
from mask_layer import check_against_oracle, masked_at

import neuronviz.api as nv
from neuronviz.backend.model.data import Dataset
from neuronviz.backend.scoring.preview import Previewer

L = keras.layers


def inception(masks=None):
    """Three branches side by side; branch 'c' is two convolutions deep."""
    m = masks or {}
    x = keras.Input((6, 6, 3))
    a = L.Conv2D(4, 1, activation="relu", name="a")(x)
    b = L.Conv2D(3, 3, padding="same", name="b")(x)
    b = L.BatchNormalization(name="b_bn")(b)
    c = L.Conv2D(5, 1, activation="relu", name="c1")(x)
    c = L.Conv2D(2, 3, padding="same", name="c2")(c)
    cat = L.Concatenate(name="cat")([a, b, c])
    h = masked_at(L.BatchNormalization(name="bn")(cat), "bn", m)
    h = L.Conv2D(4, 1, name="head")(h)
    return keras.Model(x, L.Dense(3, name="out")(L.GlobalAveragePooling2D()(h)))


def two_inputs(masks=None):
    """keras-surgeon's merge_concatenate model: one convolution per input."""
    m = masks or {}
    x1, x2 = keras.Input((7, 7, 2)), keras.Input((7, 7, 2))
    a = L.Conv2D(3, 3, name="conv_1")(x1)
    b = L.Conv2D(3, 3, name="conv_2")(x2)
    h = masked_at(L.Concatenate(name="cat_1")([a, b]), "cat_1", m)
    return keras.Model([x1, x2], L.Dense(5, name="dense_1")(L.Flatten()(h)))


def _check(build, plan, removed, gone):
    model, x, tr, pruned, result = check_against_oracle(build, plan, removed, n=6, seed=5)
    names = {layer.name for layer in result.model.layers}
    assert not names & gone and gone <= {layer.name for layer in model.layers}
    if len(model.outputs[0].shape) == 2 and model.outputs[0].shape[-1] == 3:
        y = np.arange(6) % 3
        probs = keras.ops.convert_to_numpy(keras.ops.softmax(pruned))
        score = Previewer(model, tr, Dataset(x, y, 3)).score(plan)
        assert score.loss == pytest.approx(-np.log(probs[np.arange(6), y]).mean(), rel=1e-4)
    return result


def test_one_layer_branch_goes():
    result = _check(inception, nv.Plan({"b": [0, 1, 2]}), {"bn": (9, [4, 5, 6])}, {"b", "b_bn"})
    assert result.model.get_layer("head").get_weights()[0].shape[-2] == 6
    assert result.widths()["b"] == (3, 0)


def test_deeper_branch_goes_with_the_layers_that_fed_it():
    plan = nv.Plan({"c2": [0, 1], "a": [1]})
    result = _check(inception, plan, {"bn": (9, [1, 7, 8])}, {"c1", "c2"})
    assert result.after.params < result.before.params - 5 * 3 - 5  # c1 went too


def test_two_input_concatenate_keeps_the_unused_input():
    result = _check(
        two_inputs, nv.Plan({"conv_2": [0, 1, 2]}), {"cat_1": (6, [3, 4, 5])}, {"conv_2"}
    )
    assert len(result.model.inputs) == 2
    assert result.model.get_layer("dense_1").get_weights()[0].shape == (75, 5)


def test_pruned_model_without_a_branch_saves(tmp_path):
    model = randomize(inception())
    plan = nv.Plan({"b": [0, 1, 2]})
    result = nv.prune(model, plan)
    path = nv.save_pruned(result, tmp_path / "m.keras", model, plan)
    assert nv.load_model(path).count_params() == result.model.count_params()


def test_other_remove_all_is_refused_in_one_line():
    x = keras.Input((6,))
    a = L.Dense(4, name="a")(x)
    b = L.Dense(4, name="b")(x)
    s = L.Add(name="add")([a, b])
    cat = L.Concatenate(name="cat")([a, L.Dense(3, name="c")(x)])
    model = keras.Model(x, [L.Dense(2, name="o1")(s), L.Dense(2, name="o2")(cat)])
    tr = nv.analyze(model)
    for plan in (
        nv.Plan({"a": [0, 1, 2, 3]}),  # 'a' also feeds an Add
        nv.Plan({"o1": [0, 1]}),  # a model output
    ):
        with pytest.raises(nv.NeuronvizError, match="at least one unit to remain") as e:
            tr.select(plan)
        assert "\n" not in str(e.value)
    tr.select(nv.Plan({"c": [0, 1, 2]}))  # 'c' only feeds the Concatenate: allowed
