"""Attention layers as consumers: units flowing into query, key and value can be removed.
Each case equals an oracle built here (the model with `x * mask` after the named layers)."""

import keras
import pytest
from engine_models import randomize
from mask_layer import check_against_oracle, masked_at

import neuronviz.api as nv

L = keras.layers


def self_attention(masks=None):
    """A transformer block: the attention output joins the query's residual stream."""
    m = masks or {}
    x = keras.Input((5, 6))
    h = masked_at(L.Dense(8, name="embed")(x), "embed", m)
    a = L.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(h, h)
    h = L.Add(name="res")([h, a])
    h = masked_at(L.BatchNormalization(name="bn")(h), "res", m)
    f = masked_at(L.Dense(10, activation="relu", name="ffn")(h), "ffn", m)
    h = masked_at(L.Add(name="res2")([h, L.Dense(8, name="ffn_out")(f)]), "res", m)
    return keras.Model(x, L.Dense(3, name="out")(L.GlobalAveragePooling1D()(h)))


def cross_attention(masks=None):
    """Separate query, key and value producers; an explicit output_shape."""
    m = masks or {}
    x = keras.Input((5, 6))
    s = keras.Input((4, 3))
    q = masked_at(L.Dense(6, name="qd")(x), "qd", m)
    v = masked_at(L.Dense(5, name="vd")(s), "vd", m)
    k = masked_at(L.Dense(4, name="kd")(s), "kd", m)
    a = L.MultiHeadAttention(2, 3, value_dim=2, output_shape=7, use_gate=True, name="mha")(
        q, v, key=k
    )
    return keras.Model([x, s], L.Dense(3, name="out")(L.Flatten()(a)))


def grouped_query(masks=None):
    m = masks or {}
    x = keras.Input((5, 6))
    h = masked_at(L.Dense(8, name="embed")(x), "embed", m)
    v = masked_at(L.Dense(8, name="vd")(x), "vd", m)  # Keras: value as wide as the query
    a = L.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2, name="gqa")(
        h, v
    )
    h = masked_at(L.Add(name="res")([h, a]), "res", m)
    return keras.Model(x, L.Dense(3, name="out")(L.Flatten()(h)))


def dot_attention(masks=None):
    """Attention with a separate key, AdditiveAttention with key = value."""
    m = masks or {}
    x = keras.Input((5, 6))
    q = masked_at(L.Dense(6, name="aq")(x), "aq", m)
    v = masked_at(L.Dense(4, name="av")(x), "av", m)
    k = masked_at(L.Dense(6, name="ak")(x), "ak", m)
    a = L.Attention(use_scale=True, score_mode="concat", name="att")([q, v, k])
    q2 = masked_at(L.Dense(5, name="bq")(x), "bq", m)
    v2 = masked_at(L.Dense(5, name="bv")(x), "bv", m)
    b = L.AdditiveAttention(name="add_att")([q2, v2])
    h = L.Concatenate()([L.Flatten()(a), L.Flatten()(b)])
    return keras.Model(x, L.Dense(3, name="out")(h))


def _check(build, plan, removed):
    """removed: oracle mask name -> (width, indices)."""
    *_, result = check_against_oracle(build, plan, removed, n=3, seed=4)
    assert result.after.params < result.before.params
    return result


def test_multi_head_self_attention_in_a_residual_block():
    result = _check(
        self_attention,
        nv.Plan({"embed": [1, 5], "ffn": [0, 2, 3]}),
        {"embed": (8, [1, 5]), "res": (8, [1, 5]), "ffn": (10, [0, 2, 3])},
    )
    mha = result.model.get_layer("mha")
    assert mha.query_dense.kernel.shape == (6, 2, 3)
    assert mha.output_dense.kernel.shape == (2, 3, 6)


def test_multi_head_cross_attention_inputs():
    plan = nv.Plan({"qd": [0], "vd": [2, 4], "kd": [1]})
    result = _check(cross_attention, plan, {"qd": (6, [0]), "vd": (5, [2, 4]), "kd": (4, [1])})
    mha = result.model.get_layer("mha")
    assert mha.key_dense.kernel.shape == (3, 2, 3)
    assert mha.value_dense.kernel.shape == (3, 2, 2)
    assert tuple(mha.output_dense.kernel.shape) == (2, 2, 7)


def test_grouped_query_attention_inputs():
    tr = nv.analyze(grouped_query())
    assert tr.group_of("embed") == tr.group_of("vd")
    plan = nv.Plan({"embed": [0, 7], "vd": [3]})
    removed = (8, [0, 3, 7])
    result = _check(grouped_query, plan, {"embed": removed, "res": removed, "vd": removed})
    assert result.model.get_layer("gqa")._value_dense.kernel.shape == (5, 2, 4)


def test_dot_attention_couples_query_and_key():
    tr = nv.analyze(dot_attention())
    assert tr.group_of("aq") == tr.group_of("ak")
    assert tr.group_of("bq") == tr.group_of("bv")  # AdditiveAttention: key = value
    assert tr.group_of("av") != tr.group_of("aq")
    plan = nv.Plan({"aq": [2], "av": [0], "bq": [1, 4]})
    result = _check(
        dot_attention,
        plan,
        {"aq": (6, [2]), "ak": (6, [2]), "av": (4, [0]), "bq": (5, [1, 4]), "bv": (5, [1, 4])},
    )
    assert result.model.get_layer("add_att").get_weights()[0].shape == (3,)


def test_attention_mask_argument_is_pinned():
    x = keras.Input((4, 6))
    h = L.Dense(4, name="d")(x)
    mask = L.Dense(4, activation="sigmoid", name="mask_maker")(x)
    a = L.MultiHeadAttention(2, 2, name="mha")(h, h, attention_mask=mask)
    model = keras.Model(x, a)
    tr = nv.analyze(model)
    with pytest.raises(nv.NeuronvizError, match="mask argument of 'mha'"):
        tr.select(nv.Plan({"mask_maker": [0]}))


def test_pruned_attention_models_save_and_reload(tmp_path):
    for build, plan in [
        (self_attention, nv.Plan({"embed": [2]})),
        (cross_attention, nv.Plan({"qd": [1], "kd": [0]})),
        (grouped_query, nv.Plan({"embed": [4]})),
        (dot_attention, nv.Plan({"aq": [0], "bq": [2]})),
    ]:
        model = randomize(build())
        result = nv.prune(model, plan)
        path = nv.save_pruned(result, tmp_path / f"{build.__name__}.keras", model, plan)
        assert nv.load_model(path).count_params() == result.model.count_params()
