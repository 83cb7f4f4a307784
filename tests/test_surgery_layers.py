"""The central promise, per layer type: pruned(x) == masked(x), numerically."""

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs
from engine_models import BUILDERS, inputs_for, random_plan, randomize
from keras import layers as L

import neuronviz.api as nv


def check_pruned_equals_masked(model, plan, x):
    tr = nv.analyze(model)
    before = [w.copy() for w in model.get_weights()]
    result = nv.prune(model, plan, tr)
    masked = nv.masked_predict(model, plan, x, tr=tr)
    pruned = result.model.predict(x, verbose=0)
    masked = masked if isinstance(masked, list) else [masked]
    pruned = pruned if isinstance(pruned, list) else [pruned]
    keeps = [result.selection.keep(tr.map(k)) for k in tr.graph.outputs]
    for m, p, k in zip(masked, pruned, keeps, strict=True):
        assert_same_outputs(m[..., k], p)
    # the user's model is untouched
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the model really got smaller
    assert result.after.params < result.before.params
    return result, tr


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_random_selections_prune_exactly(name):
    model = randomize(BUILDERS[name]())
    x = inputs_for(model)
    rng = np.random.default_rng(len(name))
    tr = nv.analyze(model)
    plan = random_plan(tr, rng)
    assert plan, f"{name}: no removable group found"
    result, _ = check_pruned_equals_masked(model, plan, x)
    # the masked model differs from the original somewhere: the test can fail
    orig = model.predict(x, verbose=0)
    masked = nv.masked_predict(model, plan, x, tr=tr)
    orig, masked = (
        (orig if isinstance(orig, list) else [orig]),
        (masked if isinstance(masked, list) else [masked]),
    )
    assert any(not np.allclose(o, m) for o, m in zip(orig, masked, strict=True))


def test_flatten_rows_follow_channels_in_both_formats():
    model = randomize(BUILDERS["flatten_formats"]())
    tr = nv.analyze(model)
    result = nv.prune(model, nv.Plan({"c1": [1]}), tr)
    # 3x3 positions x 4 channels -> 3x3 x 3 channels in both Dense layers
    assert result.model.get_layer("out_a").get_weights()[0].shape == (27, 3)
    assert result.model.get_layer("out_b").get_weights()[0].shape == (27, 3)
    k_orig = model.get_layer("out_a").get_weights()[0]
    kept_rows = [r for r in range(36) if r % 4 != 1]  # channels_last: row = pos*C + c
    np.testing.assert_array_equal(
        result.model.get_layer("out_a").get_weights()[0], k_orig[kept_rows]
    )
    k_first = model.get_layer("out_b").get_weights()[0]
    # Flatten(channels_first) on a (H, W, C) tensor moves axis 1 (H) last: row = (w*C + c)*H + h
    kept_first = [r for r in range(36) if (r // 3) % 4 != 1]
    np.testing.assert_array_equal(
        result.model.get_layer("out_b").get_weights()[0], k_first[kept_first]
    )


def test_residual_add_couples_every_input():
    model = randomize(BUILDERS["residual_merges"]())
    tr = nv.analyze(model)
    group = tr.units.groups[tr.group_of("a")]
    assert {"stem", "a", "b", "c", "d", "e", "f", "stem_bn", "add", "min"} <= set(group.members)
    sel = tr.select(nv.Plan({"e": [2]}))  # picking a unit of one member removes it everywhere
    removed = sel.removed_by_layer()
    for layer in ("stem", "a", "b", "c", "d", "e", "f", "stem_bn", "add"):
        assert removed[layer] == [2]
    check_pruned_equals_masked(model, nv.Plan({"e": [2, 4]}), inputs_for(model))


def test_squeeze_excite_joins_expand_and_reshape():
    model = randomize(BUILDERS["squeeze_excite"]())
    tr = nv.analyze(model)
    assert tr.group_of("se_expand") == tr.group_of("expand")
    result, _ = check_pruned_equals_masked(model, nv.Plan({"se_expand": [0, 5]}), inputs_for(model))
    assert result.model.get_layer("se_reshape").target_shape == (1, 1, 6)
    assert result.model.get_layer("expand").filters == 6


def test_concatenate_maps_by_offset():
    model = randomize(BUILDERS["concat_dense"]())
    tr = nv.analyze(model)
    sel = tr.select(nv.Plan({"cat": [5]}))  # offset 4 + unit 1 of 'b'
    assert sel.removed_by_layer()["b"] == [1]
    result, _ = check_pruned_equals_masked(model, nv.Plan({"cat2": [0, 6, 8]}), inputs_for(model))
    assert result.model.get_layer("a").filters == 3
    assert result.model.get_layer("b").filters == 2
    assert result.model.get_layer("c").filters == 4


def test_depthwise_multiplier_slices_repeated_channels():
    model = randomize(BUILDERS["depthwise_separable"]())
    result, _ = check_pruned_equals_masked(model, nv.Plan({"c1": [0, 3]}), inputs_for(model))
    assert result.model.get_layer("dw2").get_weights()[0].shape[-2:] == (4, 2)
    # 'sep' sees 4 kept channels x 2 (dw2) and multiplies by 2 again: 16 pointwise rows
    assert result.model.get_layer("sep").get_weights()[1].shape[-2] == 16


def test_nested_and_shared_layers():
    model = randomize(BUILDERS["nested_shared"]())
    tr = nv.analyze(model)
    assert "seq/in1" in tr.layer_units and "func/fin1" in tr.layer_units
    # 'shared' is called on the model input and on 'pre': its one kernel ties 'pre' to the
    # fixed input channels, so 'pre' cannot lose units
    with pytest.raises(nv.NeuronvizError, match="fixed channels"):
        tr.select(nv.Plan({"pre": [0]}))
    plan = nv.Plan({"shared": [1], "in1": [0, 2], "func/fin1": [3]})  # short names resolve
    result, _ = check_pruned_equals_masked(model, plan, inputs_for(model))
    assert result.model.get_layer("seq").get_layer("in1").units == 3
    assert result.model.get_layer("func").get_layer("fin1").units == 6
    assert result.model.get_layer("shared").units == 5
    assert result.model.count_params() == result.after.params  # 'shared' counted once
    assert sum(v.path == "shared/kernel" for v in result.model.weights) == 1


def test_layer_shared_by_a_nested_model_and_its_caller_stays_one(tmp_path):
    """'shared' is called inside model 'inner' and again by the outer model: one layer,
    in the pruned model (one Functional model: 'inner' is inlined, its 'pre' renamed) and in
    its file."""
    shared = L.Dense(6, activation="relu", name="shared")
    i = keras.Input((6,))
    inner = keras.Model(i, L.Dense(6, name="pre")(shared(i)), name="inner")
    x = keras.Input((6,))
    h = L.Dense(6, activation="relu", name="pre")(inner(x))
    model = randomize(keras.Model(x, L.Dense(3, name="out")(shared(h))))
    tr = nv.analyze(model)
    assert tr.graph.same_as == {"shared": "inner/shared"}  # one layer: "shared" names it
    # its second call ties 'pre' to the input channels its first call reads
    with pytest.raises(nv.NeuronvizError, match="fixed channels"):
        tr.select(nv.Plan({"pre": [3]}))
    xs = inputs_for(model)
    result, _ = check_pruned_equals_masked(model, nv.Plan({"shared": [0, 4], "inner/pre": [1]}), xs)
    pruned = result.model
    # shared: 2 units (12 + 2); inner/pre: 2 kernel rows (12) and 1 unit (4 + 1); pre: 1 row (6);
    # out: 2 rows (6)
    assert pruned.count_params() == result.after.params == model.count_params() - 43
    assert [v.path for v in pruned.weights].count("shared/kernel") == 1
    assert [x.name for x in pruned.layers[1:]] == ["shared", "inner_pre", "pre", "out"]
    path = tmp_path / "shared.keras"
    pruned.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert reloaded.count_params() == pruned.count_params()
    kernel = reloaded.get_layer("shared").kernel  # zeroed: both calls now give relu(bias)
    kernel.assign(np.zeros(kernel.shape))
    pruned.get_layer("shared").kernel.assign(np.zeros(kernel.shape))
    assert_same_outputs(pruned.predict(xs, verbose=0), reloaded.predict(xs, verbose=0))


def test_softmax_and_layernorm_are_exact_on_kept_channels():
    model = randomize(BUILDERS["normalisations"]())
    plan = nv.Plan({"d1": [1, 2], "d3": [0], "d4": [5], "d2": [3]})
    check_pruned_equals_masked(model, plan, inputs_for(model))


def test_output_units_can_be_removed_with_a_warning():
    model = randomize(BUILDERS["normalisations"]())
    with pytest.warns(UserWarning, match="output units"):
        result, _ = check_pruned_equals_masked(model, nv.Plan({"out": [1]}), inputs_for(model))
    assert result.model.output_shape == (None, 3)


def test_recurrent_layers_consume_and_lose_own_units():
    model = randomize(BUILDERS["embedding_rnn"]())
    result, _ = check_pruned_equals_masked(model, nv.Plan({"emb": [0, 4]}), inputs_for(model))
    assert result.model.get_layer("lstm").get_weights()[0].shape[0] == 4
    plan = nv.Plan({"emb": [1], "lstm": [0], "gru": [2]})
    result, _ = check_pruned_equals_masked(model, plan, inputs_for(model))
    assert result.model.get_layer("lstm").get_weights()[1].shape == (3, 12)
    assert result.model.get_layer("rnn").get_weights()[0].shape == (2, 2)


def test_compiled_model_stays_compiled(demo_model):
    result = nv.prune(demo_model, nv.Plan({"dense": range(100)}))
    assert result.model.get_layer("dense").units == 412
    assert result.model.get_compile_config() == demo_model.get_compile_config()
    assert result.before.layers["dense"][1] == 3136 * 512
    assert result.after.layers["dense"][1] == 3136 * 412


def test_masked_model_object_matches_masked_predict(demo_model, demo_val):
    x = demo_val[0][:32]
    plan = nv.Plan({"conv2d_1": [1, 2, 3], "dense": [7]})
    mm = nv.masked_model(demo_model, plan)
    assert_same_outputs(mm.predict(x, verbose=0), nv.masked_predict(demo_model, plan, x))
    assert mm.source is not demo_model
