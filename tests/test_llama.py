"""keras-hub's Llama-style layers (skipped without keras-hub): heads of LlamaAttention and
CachedMistralAttention (RoPE, grouped KV heads), the gated MLP (SwiGLU) and RMS norms, in
a tiny decoder block. Each pruned model equals an oracle made here without neuronviz: a
copy with the removed heads' output-projection rows or the removed gate/up columns zeroed,
or the smaller model built by hand; the saved file reloads in safe mode."""

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs
from engine_models import randomize

keras_hub = pytest.importorskip("keras_hub")

from keras_hub.src.models.llama.llama_attention import LlamaAttention  # noqa: E402
from keras_hub.src.models.llama.llama_layernorm import LlamaLayerNorm  # noqa: E402
from keras_hub.src.models.mistral.mistral_attention import CachedMistralAttention  # noqa: E402

import neuronviz.api as nv  # noqa: E402
from neuronviz.backend.surgery.counting import count_after  # noqa: E402

L = keras.layers


def block(attention="llama", width=16):
    """A Llama decoder block on a `width` stream: RMSNorm, attention (4 query heads on 2 KV
    heads, head_dim 4), residual, RMSNorm, SwiGLU (gate, up, down), residual, RMSNorm."""
    x = keras.Input((6, 16))
    h = L.Dense(width, name="embed")(x)
    n = LlamaLayerNorm(name="ln")(h)
    if attention == "llama":
        a = LlamaAttention(4, 2, name="attn")(n)
    else:
        a = CachedMistralAttention(4, 2, head_dim=4, name="attn")(n)
    h = L.Add(name="res")([h, a])
    n = LlamaLayerNorm(name="ln2")(h)
    g = L.Activation("silu", name="silu")(L.Dense(32, use_bias=False, name="gate")(n))
    u = L.Dense(32, use_bias=False, name="up")(n)
    f = L.Dense(width, use_bias=False, name="down")(L.Multiply(name="mul")([g, u]))
    h = L.Add(name="res2")([h, f])
    return keras.Model(x, LlamaLayerNorm(name="out")(h))


@pytest.fixture(scope="module")
def models():
    return {kind: randomize(block(kind)) for kind in ("llama", "mistral")}


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).standard_normal((3, 6, 16)).astype("float32")


def run(model, x):
    return keras.ops.convert_to_numpy(model(x))


def oracle(model, heads=(), ffn=()):
    """`model` with the removed heads' output rows and FFN gate/up columns zeroed."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    out = copy.get_layer("attn")._output_dense.kernel
    w = np.array(out.numpy())
    w[list(heads)] = 0
    out.assign(w)
    for name in ("gate", "up"):
        k = copy.get_layer(name).kernel
        w = np.array(k.numpy())
        w[:, list(ffn)] = 0
        k.assign(w)
    return copy


def check(model, x, plan, heads=(), ffn=()):
    tr = nv.analyze(model)
    result = nv.prune(model, nv.Plan(plan), tr)
    pruned = run(result.model, x)
    want = run(oracle(model, heads, ffn), x)
    assert not np.allclose(want, run(model, x))
    assert_same_outputs(want, pruned)
    assert_same_outputs(nv.masked_predict(model, nv.Plan(plan), x, tr=tr), pruned)
    return tr, result


@pytest.mark.filterwarnings("ignore:Layer 'attn' keeps")  # (counting; checked below)
@pytest.mark.parametrize(
    ("kind", "removed", "kv"),
    [("llama", [0, 1], 1), ("llama", [3], 3), ("mistral", [1, 2], 2)],
)  # a whole KV group; one head of one group (KV repeated); one head of each group
def test_rotary_attention_heads(models, x, kind, removed, kv):
    model = models[kind]
    if kv == 3:
        with pytest.warns(UserWarning, match=r"keeps \[2, 1\] query heads per KV group"):
            tr, result = check(model, x, {"attn": removed}, heads=removed)
    else:
        tr, result = check(model, x, {"attn": removed}, heads=removed)
        assert result.after.params < result.before.params
        assert result.after.macs < result.before.macs
    assert tr.unit_kind("attn") == "head" and len(tr.layer_units["attn"]) == 4
    attn = result.model.get_layer("attn")
    assert type(attn) is CachedMistralAttention  # a pruned LlamaAttention's equal
    assert (attn._num_query_heads, attn._num_key_value_heads, attn._head_dim) == (
        4 - len(removed),
        kv,
        4,
    )
    assert tuple(attn._output_dense.kernel.shape) == (4 - len(removed), 4, 16)
    after = count_after(tr, result.before, tr.select(nv.Plan({"attn": removed})))
    assert (after.params, after.macs) == (result.after.params, result.after.macs)


def test_gated_mlp_neurons_and_heads_together(models, x, tmp_path):
    model = models["llama"]
    plan = {"gate": [1, 5, 30], "attn": [2, 3]}
    tr, result = check(model, x, plan, heads=[2, 3], ffn=[1, 5, 30])
    assert tr.unit_kind("gate") == tr.unit_kind("up") == "neuron"
    assert tr.group_of("gate") == tr.group_of("up")
    assert tuple(result.model.get_layer("down").kernel.shape) == (29, 16)
    assert tuple(result.model.get_layer("up").kernel.shape) == (16, 29)
    assert type(result.model.get_layer("attn")) is CachedMistralAttention
    path = nv.save_pruned(result, tmp_path / "llama.keras", model, nv.Plan(plan))
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert_same_outputs(run(result.model, x), run(reloaded, x))


def test_hidden_units_through_rms_norms_and_attention(models, x):
    """Stream units removed at the embedding: every RMS norm, the attention's projections
    and the SwiGLU lose them, as in the smaller block built by hand (numpy slices)."""
    model, removed = models["llama"], [3, 9]
    keep = np.setdiff1d(np.arange(16), removed)
    tr = nv.analyze(model)
    assert not tr.graph.refused  # RMS norms and attention have rules: none is captured
    with pytest.warns(UserWarning, match="removes output units"):
        result = nv.prune(model, nv.Plan({"embed": removed}), tr)
    hand = block("mistral", width=14)
    for layer in model.layers[1:]:
        w = layer.get_weights()
        name = layer.name
        if name == "embed":
            w = [w[0][:, keep], w[1][keep]]
        elif name in ("ln", "ln2", "out"):
            w = [w[0][keep]]
        elif name == "attn":  # query, key, value (dim, heads, head_dim); output (.., dim)
            w = [w[0][keep], w[1][keep], w[2][keep], w[3][..., keep]]
        elif name in ("gate", "up"):
            w = [w[0][keep]]
        elif name == "down":
            w = [w[0][:, keep]]
        hand.get_layer(name).set_weights(w)
    pruned = run(result.model, x)
    assert_same_outputs(run(hand, x), pruned)
    masked = nv.masked_predict(model, nv.Plan({"embed": removed}), x, tr=tr)
    assert_same_outputs(masked[..., keep], pruned)
