"""Attention heads as units. Each pruned model equals an oracle made here without
neuronviz: a copy of the model whose removed heads' output-projection rows are zero."""

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs
from engine_models import randomize

import neuronviz.api as nv
from neuronviz.backend.surgery.counting import count_after

L = keras.layers


def encoder_block(heads=4, gate=False):
    x = keras.Input((6, 8))
    h = L.Dense(12, name="embed")(x)
    a = L.MultiHeadAttention(heads, 3, value_dim=2, use_gate=gate, name="mha")(h, h)
    h = L.LayerNormalization(name="ln")(L.Add(name="res")([h, a]))
    f = L.Dense(10, activation="gelu", name="ffn")(h)
    h = L.Add(name="res2")([h, L.Dense(12, name="ffn_out")(f)])
    return keras.Model(x, L.Dense(3, name="out")(L.GlobalAveragePooling1D()(h)))


def cross_block():
    x, s = keras.Input((5, 6)), keras.Input((4, 7))
    a = L.MultiHeadAttention(3, 4, output_shape=5, name="mha")(x, s, key=s)
    return keras.Model([x, s], L.Dense(2, name="out")(L.Flatten()(a)))


def grouped_block(q=6, kv=2, gate=False):
    x = keras.Input((5, 8))
    h = L.Dense(8, name="embed")(x)
    a = L.GroupQueryAttention(
        head_dim=3, num_query_heads=q, num_key_value_heads=kv, use_gate=gate, name="gqa"
    )(h, h)
    h = L.Add(name="res")([h, a])
    return keras.Model(x, L.Dense(3, name="out")(L.Flatten()(h)))


def oracle(model, layer, heads):
    """The model with the removed heads' rows of the output projection set to zero."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    out = copy.get_layer(layer)._output_dense.kernel
    w = np.array(out.numpy())
    w[list(heads)] = 0
    out.assign(w)
    return copy


def _inputs(model, n=3):
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((n,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    return xs if len(xs) > 1 else xs[0]


def _check(model, layer, heads, extra=None, smaller=True):
    plan = nv.Plan({layer: heads, **(extra or {})})
    x = _inputs(model)
    tr = nv.analyze(model)
    result = nv.prune(model, plan, tr)
    pruned = result.model.predict(x, verbose=0)
    masked = nv.masked_predict(model, plan, x, tr=tr)
    if extra is None:
        want = oracle(model, layer, heads).predict(x, verbose=0)
        assert not np.allclose(want, model.predict(x, verbose=0))
        assert_same_outputs(want, pruned)
    assert_same_outputs(masked, pruned)
    if smaller:
        assert result.after.params < result.before.params
        assert result.after.macs < result.before.macs
    return result


def test_heads_are_the_units_of_multi_head_attention():
    model = randomize(encoder_block())
    tr = nv.analyze(model)
    assert len(tr.layer_units["mha"]) == 4
    assert tr.rule("mha").unit_kind == "head"
    assert tr.group_of("mha") not in (tr.group_of("embed"), tr.group_of("ffn"))
    result = _check(model, "mha", [1, 2])
    mha = result.model.get_layer("mha")
    assert mha.num_heads == 2
    assert tuple(mha.query_dense.kernel.shape) == (12, 2, 3)
    assert tuple(mha.value_dense.kernel.shape) == (12, 2, 2)
    assert tuple(mha.output_dense.kernel.shape) == (2, 2, 12)
    w = model.get_layer("mha").get_weights()
    got = mha.get_weights()
    np.testing.assert_array_equal(got[0], w[0][:, [0, 3]])  # query kernel
    np.testing.assert_array_equal(got[1], w[1][[0, 3]])  # query bias
    assert result.widths()["mha"] == (4, 2)


def test_gated_heads_and_explicit_output_shape():
    _check(randomize(encoder_block(gate=True)), "mha", [0])
    result = _check(randomize(cross_block()), "mha", [2])
    assert tuple(result.model.get_layer("mha").key_dense.kernel.shape) == (7, 2, 4)


def test_heads_together_with_input_units_and_ffn_neurons():
    model = randomize(encoder_block())
    _check(model, "mha", [3], extra={"embed": [0, 5], "ffn": [1, 2, 9]})


@pytest.mark.parametrize(
    ("removed", "kv"),
    [([0], 5), ([0, 3], 2), ([0, 1, 2], 1), ([1, 2, 4, 5], 2), ([5], 5)],
)
def test_grouped_query_heads_keep_or_drop_their_kv_head(removed, kv):
    """6 query heads on 2 KV heads: a KV head goes only with its whole query group."""
    model = randomize(grouped_block())
    if kv > 2:
        with pytest.warns(UserWarning, match=r"keeps \[\d, \d\] query heads per KV group"):
            result = _check(model, "gqa", removed, smaller=False)
    else:
        result = _check(model, "gqa", removed)
    gqa = result.model.get_layer("gqa")
    before = model.get_layer("gqa")._query_dense.kernel.shape[1]
    assert gqa._query_dense.kernel.shape[1] == gqa._output_dense.kernel.shape[0] < before
    assert gqa.num_query_heads == 6 - len(removed)
    assert gqa.num_key_value_heads == kv
    assert tuple(gqa._key_dense.kernel.shape) == (8, kv, 3)


@pytest.mark.filterwarnings("ignore:Layer 'gqa' keeps")
def test_grouped_query_gate_with_input_units():
    model = randomize(grouped_block(q=4, kv=2, gate=True))
    _check(model, "gqa", [2])
    _check(model, "gqa", [1], extra={"embed": [3]})


def test_head_selections_are_checked():
    model = encoder_block()
    tr = nv.analyze(model)
    with pytest.raises(nv.NeuronvizError, match=r"Expected `indices` in \[0, 4\) for layer 'mha'"):
        tr.select(nv.Plan({"mha": [4]}))
    with pytest.raises(nv.NeuronvizError, match="at least one unit to remain"):
        tr.select(nv.Plan({"mha": [0, 1, 2, 3]}))


@pytest.mark.filterwarnings("ignore:Layer 'gqa' keeps")
def test_pruned_heads_save_and_reload_in_safe_mode(tmp_path):
    for build, layer, heads in [(encoder_block, "mha", [0, 2]), (grouped_block, "gqa", [1])]:
        model = randomize(build())
        plan = nv.Plan({layer: heads})
        result = nv.prune(model, plan)
        path = nv.save_pruned(result, tmp_path / f"{layer}.keras", model, plan)
        reloaded = keras.saving.load_model(path, safe_mode=True)
        x = _inputs(model)
        assert_same_outputs(result.model.predict(x, verbose=0), reloaded.predict(x, verbose=0))


@pytest.mark.filterwarnings("ignore:Layer 'gqa' keeps")
def test_counts_after_a_head_plan_equal_the_pruned_model():
    """What the preview shows (counted from the plan) equals the pruned model's counts."""
    for model, plan in [
        (encoder_block(gate=True), {"mha": [1, 3], "embed": [2]}),
        (cross_block(), {"mha": [0]}),
        (grouped_block(), {"gqa": [0, 1, 2]}),
        (grouped_block(), {"gqa": [4]}),
    ]:
        tr = nv.analyze(model)
        before = nv.counts(model)
        result = nv.prune(model, nv.Plan(plan), tr)
        after = count_after(tr, before, tr.select(nv.Plan(plan)))
        assert (after.params, after.macs) == (result.after.params, result.after.macs)
        assert (after.macs < before.macs) == (plan != {"gqa": [4]})  # uneven: KV repeated


def test_repeated_kv_heads_are_said_once_by_prune_not_by_counts(tmp_path, capsys):
    """Counting and previews slice the layer too, but only the prune (and the CLI) says
    that a partly kept query group repeats its KV head, once."""
    import warnings

    from neuronviz.cli import main

    model = randomize(grouped_block())  # 6 query heads on 2 KV heads
    tr, plan, before = nv.analyze(model), nv.Plan({"gqa": [0]}), nv.counts(model)
    note = (
        "Layer 'gqa' keeps [2, 3] query heads per KV group: its KV heads are repeated to 5 "
        "so that Keras's equal groups hold. Remove as many heads from every group to shrink "
        "the KV projections instead."
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            count_after(tr, before, tr.select(plan))
        nv.masked_predict(model, plan, _inputs(model), tr=tr)
        assert caught == []
        nv.prune(model, plan, tr)
    assert [str(w.message) for w in caught] == [note]
    model.save(tmp_path / "gqa.keras")
    out = tmp_path / "small.keras"
    assert main(["prune", str(tmp_path / "gqa.keras"), "--remove", "gqa:0", "-o", str(out)]) == 0
    assert capsys.readouterr().err.count(note) == 1
