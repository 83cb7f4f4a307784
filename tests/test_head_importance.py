"""Importances of heads and FFN neurons against oracles computed here with numpy (and
Keras sub-models to read activations), not with neuronviz's code."""

import keras
import numpy as np
import pytest
from engine_models import randomize
from test_transformer import vit

import neuronviz.api as nv
from neuronviz.core.criteria import smallest


@pytest.fixture(scope="module")
def setup():
    model = randomize(vit(), seed=5)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 5, 12)
    tr = nv.analyze(model)
    return model, tr, nv.Dataset(x, y, 5), nv.unit_data(model, tr, x, y, batch_size=5)


def _inputs_of(model, name):
    """A sub-model giving the layer's (first) input."""
    t = model.get_layer(name).input
    return keras.Model(model.inputs, t[0] if isinstance(t, (list, tuple)) else t)


def _heads(model, name, x):
    """Each head's output (samples, tokens, heads, head_dim) of a self-attention layer."""
    a = np.asarray(_inputs_of(model, name).predict(x, verbose=0), np.float64)
    wq, bq, wk, bk, wv, bv = (
        np.asarray(w, np.float64) for w in model.get_layer(name).get_weights()[:6]
    )
    q = np.einsum("btd,dhk->bthk", a, wq) + bq
    k = np.einsum("btd,dhk->bthk", a, wk) + bk
    v = np.einsum("btd,dhk->bthk", a, wv) + bv
    s = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(q.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhqs,bshk->bqhk", p, v)


def test_head_output_norm(setup):
    model, tr, data, measured = setup
    z = _heads(model, "mha_1", data.x)
    want = np.sqrt((z**2).sum(axis=(1, 3))).mean(axis=0)
    np.testing.assert_allclose(measured.head_norm["mha_1"], want, rtol=1e-4)
    got = nv.layer_scores(tr, "head_norm", unit_data=measured)
    assert set(got) == {"mha_0", "mha_1"} and len(got["mha_0"]) == 4


def test_head_taylor_is_the_gate_derivative(setup):
    """|dL_i/dg_h| by central differences: scaling head h's output-projection rows by
    1 +- eps scales its gate."""
    model, tr, data, measured = setup
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    layer = model.get_layer("mha_0")
    eps = 1e-2
    want = []
    for h in range(4):
        per = []
        for sign in (1, -1):
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            w = [np.array(v) for v in copy.get_layer("mha_0").get_weights()]
            w[6][h] *= 1 + sign * eps
            copy.get_layer("mha_0").set_weights(w)
            per.append(np.asarray(loss(data.y, copy.predict(data.x, verbose=0)), np.float64))
        want.append(np.abs((per[0] - per[1]) / (2 * eps)).mean())
    assert layer.num_heads == 4
    np.testing.assert_allclose(measured.head_taylor["mha_0"], want, rtol=3e-2, atol=1e-5)


def test_wanda_and_flap_of_ffn_neurons(setup):
    model, tr, data, measured = setup
    a = np.asarray(_inputs_of(model, "ffn_0").predict(data.x, verbose=0), np.float64)
    a = a.reshape(-1, a.shape[-1])
    w = np.asarray(model.get_layer("ffn_0").kernel.numpy(), np.float64)
    want = (np.abs(w) * np.sqrt((a**2).sum(axis=0))[:, None]).sum(axis=0)
    scores = nv.layer_scores(tr, "wanda", unit_data=measured)
    np.testing.assert_allclose(scores["ffn_0"], want, rtol=1e-5)
    act = np.asarray(_inputs_of(model, "ffn_out_0").predict(data.x, verbose=0), np.float64)
    act = act.reshape(-1, act.shape[-1])
    rows = (np.asarray(model.get_layer("ffn_out_0").kernel.numpy(), np.float64) ** 2).sum(axis=1)
    flap = nv.layer_scores(tr, "flap", unit_data=measured)
    np.testing.assert_allclose(flap["ffn_0"], act.var(axis=0) * rows, rtol=1e-4)
    assert "mha_0" not in flap and "mha_0" not in scores


def test_head_weight_norms_and_global_selection(setup):
    model, tr, data, measured = setup
    l2 = nv.layer_scores(tr, "l2")
    mha = model.get_layer("mha_0")
    wq, wv, wo = (
        np.asarray(w.numpy())
        for w in (mha.query_dense.kernel, mha.value_dense.kernel, mha.output_dense.kernel)
    )
    want = [
        np.sqrt((wq[:, h] ** 2).sum() + (wv[:, h] ** 2).sum() + (wo[h] ** 2).sum())
        for h in range(4)
    ]
    np.testing.assert_allclose(l2["mha_0"], want, rtol=1e-5)
    heads = nv.layer_scores(tr, "head_taylor", unit_data=measured)
    plan = smallest(heads, fraction=0.25, scope="global")
    assert sum(len(v) for v in plan.remove.values()) == 2
    ffn = nv.layer_scores(tr, "flap", ["ffn_0", "ffn_1"], unit_data=measured)
    both = smallest({**heads, **ffn}, fraction=0.5, scope="layer")
    assert [len(both.remove[k]) for k in ("mha_0", "mha_1", "ffn_0", "ffn_1")] == [2, 2, 12, 12]
    result = nv.prune(model, both, tr)
    np.testing.assert_allclose(
        result.model.predict(data.x, verbose=0),
        nv.masked_predict(model, both, data.x, tr=tr),
        atol=1e-4,
    )


def test_api_importance_needs_data(setup):
    model, tr, data, _ = setup
    with pytest.raises(nv.NeuronvizError, match="Expected `data` to score units by head_norm"):
        nv.importance(model, "head_norm", trace=tr)
    got = nv.importance(model, "head_norm", data=data, trace=tr)
    np.testing.assert_allclose(got["mha_1"], setup[3].head_norm["mha_1"], rtol=1e-5)


def test_activation_statistics_of_heads_are_per_sample_output_norms(setup):
    """The heatmap's heads x samples: each head's output norm per sample (numpy oracle);
    their mean over samples is head_norm."""
    model, tr, data, measured = setup
    stats = nv.activation_stats(model, tr, data.x, batch_size=5)
    for name in ("mha_0", "mha_1"):
        z = _heads(model, name, data.x)
        want = np.sqrt((z**2).sum(axis=(1, 3)))
        np.testing.assert_allclose(stats[name].per_sample, want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stats[name].mean, measured.head_norm[name], rtol=1e-4)
    assert stats["ffn_0"].per_sample.shape == (12, 24)
