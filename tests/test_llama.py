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
from hub_models import llama

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
    [("llama", [3], 3), ("mistral", [1, 2], 2)],
)  # one head of one group (KV repeated); one head of each group (a whole KV group and the
# save: in the backbone test below)
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


def test_scaled_rope_is_refused_in_one_line(x):
    """Llama 3.1-style RoPE scaling has no equal CachedMistralAttention: refused, and the
    model is unchanged."""
    inp = keras.Input((6, 16))
    att = LlamaAttention(4, 2, rope_position_scaling_factor=2.0, name="attn")
    model = keras.Model(inp, att(L.Dense(16, name="embed")(inp)))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(nv.NeuronvizError, match=r"Expected plain rotary embeddings in layer"):
        nv.masked_predict(model, nv.Plan({"attn": [0, 1]}), x)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


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


def tokens():
    rng = np.random.default_rng(2)
    return {
        "token_ids": rng.integers(0, 50, (3, 16)).astype("int32"),
        "padding_mask": np.array([[1] * 16, [1] * 11 + [0] * 5, [1] * 6 + [0] * 10], "int32"),
    }


@pytest.fixture(scope="module")
def backbone():
    model = randomize(llama())
    return model, nv.analyze(model)


def test_llama_backbone_heads_and_gated_neurons(backbone, tmp_path):
    """Through graph capture: a KV group's heads of block 1 and gated neurons of block 0."""
    heads, gate = "transformer_layer_1/self_attention", "transformer_layer_0/feedforward_gate_dense"
    model, tr = backbone
    assert tr.unit_kind(heads) == "head" and len(tr.layer_units[heads]) == 4
    assert tr.unit_kind(gate) == "neuron" and len(tr.layer_units[gate]) == 32
    up = "transformer_layer_0/feedforward_intermediate_dense"
    assert tr.unit_kind(up) == "neuron" and tr.group_of(gate) == tr.group_of(up)
    plan = nv.Plan({heads: [0, 1], gate: [1, 5, 7]})
    result = nv.prune(model, plan, tr)
    hand = llama()  # the backbone with those output rows and gate/up columns zeroed
    hand.set_weights(model.get_weights())
    out = hand.get_layer("transformer_layer_1")._self_attention_layer._output_dense.kernel
    w = np.array(out.numpy())
    w[[0, 1]] = 0
    out.assign(w)
    block = hand.get_layer("transformer_layer_0")
    for dense in (block._feedforward_gate_dense, block._feedforward_intermediate_dense):
        w = np.array(dense.kernel.numpy())
        w[:, [1, 5, 7]] = 0
        dense.kernel.assign(w)
    x = tokens()
    want, pruned = run(hand, x), run(result.model, x)
    assert not np.allclose(want, run(model, x))
    assert_same_outputs(want, pruned)
    masked = nv.masked_predict(model, plan, [x["padding_mask"], x["token_ids"]], tr=tr)
    assert_same_outputs(masked, pruned)
    assert result.after.params < result.before.params
    attn = result.model.get_layer("transformer_layer_1").get_layer("self_attention")
    assert type(attn) is CachedMistralAttention and attn._num_key_value_heads == 1
    block0 = result.model.get_layer("transformer_layer_0")  # per-layer FFN width
    assert block0.intermediate_dim == 29
    assert tuple(block0._feedforward_output_dense.kernel.shape) == (29, 16)
    result.model.save(tmp_path / "llama.keras")  # (nv.save_pruned adds its own check)
    reloaded = keras.saving.load_model(tmp_path / "llama.keras", safe_mode=True)
    assert_same_outputs(run(reloaded, x), pruned)


def test_llama_backbone_hidden_size(backbone):
    """The hidden size is one group from the token embedding through every RMS norm,
    attention and SwiGLU to the output norm: pruned equals the masked model (the blocks'
    parts are checked against a hand-built model above)."""
    model, tr = backbone
    plan = nv.Plan({"token_embedding": [3, 9]})
    with pytest.warns(UserWarning, match="removes output units"):
        result = nv.prune(model, plan, tr)
    x = tokens()
    pruned = run(result.model, x)
    assert pruned.shape == (3, 16, 14)
    masked = nv.masked_predict(model, plan, [x["padding_mask"], x["token_ids"]], tr=tr)
    assert_same_outputs(np.delete(masked, [3, 9], axis=-1), pruned)
    assert not np.allclose(np.delete(run(model, x), [3, 9], axis=-1), pruned)
