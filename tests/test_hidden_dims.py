"""The residual stream of keras-hub models (the optional `transformers` extra): the hidden
size is one group across embeddings, every residual Add, LayerNorm and projection input.
Removing hidden dimensions (with one head per block, so that keras-hub's head size
hidden // heads still holds) is checked against a fresh backbone of the smaller size whose
weights are sliced by hand here; LayerNorm renormalises over the hidden dimensions, so a
`x * mask` copy would not be an oracle. GPT2CausalLM's tied token embedding turns hidden
states into logits with the same (sliced) table."""

import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import hub_models  # noqa: E402
from engine_models import randomize  # noqa: E402

import neuronviz.api as nv  # noqa: E402

HIDDEN = [0, 2, 5, 7]  # of 8: leaves 4, with one head of size 4 per block
KEEP = np.isin(np.arange(8), HIDDEN, invert=True)
HEAD = np.array([True, False])  # head 1 goes in every block


def bert(hidden=8, heads=2):
    return hub_models.bert(hidden, heads, layers=1)


def gpt2_lm(hidden=8, heads=2):
    return hub_models.causal_lm(hub_models.gpt2(hidden, heads, layers=1))


def sliced(path, w):
    """The oracle's surgery: weight `path` of the big model cut to the kept hidden
    dimensions (and the kept head, and BERT's kept pooled units)."""
    owner, name = path.split("/")[-2:]
    if owner in ("query", "key", "value"):
        return w[KEEP][:, HEAD] if name == "kernel" else w[HEAD]
    if owner == "attention_output":
        return w[HEAD][..., KEEP] if name == "kernel" else w[KEEP]
    if owner == "feedforward_intermediate_dense":
        return w[KEEP] if name == "kernel" else w
    if owner in ("feedforward_output_dense",) or owner.endswith("embedding"):
        return w[:, KEEP] if w.ndim == 2 else w[KEEP]
    if owner == "pooled_dense":
        return w[KEEP][:, KEEP] if name == "kernel" else w[KEEP]
    assert owner.endswith("norm") and w.shape == (8,), path
    return w[KEEP]


def small_copy(model, build):
    oracle = build(hidden=4, heads=1)
    oracle.set_weights([sliced(v.path, np.asarray(v)) for v in model.weights])
    return oracle


def tokens(length, segments=False, seed=0):
    rng = np.random.default_rng(seed)
    pad = np.ones((3, length), "int32")
    pad[1, length - 3 :] = 0
    pad[2, 2:] = 0
    x = {"token_ids": rng.integers(0, 50, (3, length)).astype("int32"), "padding_mask": pad}
    if segments:
        x["segment_ids"] = rng.integers(0, 2, (3, length)).astype("int32")
    return x


def heads_plan(name, n_layers, extra=None):
    plan = {"token_embedding": HIDDEN, **(extra or {})}
    for i in range(n_layers):
        plan[f"transformer_layer_{i}/{name}"] = [1]
    return nv.Plan(plan)


@pytest.fixture(scope="module")
def bert_model():
    model = randomize(bert())
    return model, nv.analyze(model)


def test_bert_hidden_size_is_one_group(bert_model):
    _, tr = bert_model
    sel = tr.select(nv.Plan({"token_embedding": HIDDEN}))
    removed = sel.removed_by_layer()
    for path in (
        "position_embedding",
        "segment_embedding",
        "embeddings_layer_norm",
        "transformer_layer_0/feedforward_layer_norm",
        "transformer_layer_0/feedforward_output_dense",
    ):
        assert removed[path] == HIDDEN, path


@pytest.mark.filterwarnings("ignore:The selection removes output units")
def test_bert_hidden_dims_match_smaller_backbone(bert_model):
    model, tr = bert_model
    plan = heads_plan("self_attention_layer", 1, {"pooled_dense": HIDDEN})
    result = nv.prune(model, plan, tr)
    oracle = small_copy(model, bert)
    x = tokens(11, segments=True)
    want, got = oracle.predict(x, verbose=0), result.model.predict(x, verbose=0)
    for key in ("sequence_output", "pooled_output"):
        assert got[key].shape[-1] == 4
        np.testing.assert_allclose(got[key], want[key], atol=1e-4)
    assert result.after.params == oracle.count_params()


@pytest.mark.filterwarnings("ignore:The selection removes output units")
def test_bert_hidden_dims_pruned_equal_masked_and_reload(bert_model, tmp_path):
    model, tr = bert_model
    plan = nv.Plan({"token_embedding": [3, 6]})
    result = nv.prune(model, plan, tr)
    x = tokens(9, segments=True, seed=1)
    got = result.model.predict(x, verbose=0)
    pooled, seq = nv.masked_predict(model, plan, [x[n] for n in tr.graph.input_names], tr=tr)
    keep = np.isin(np.arange(8), [3, 6], invert=True)
    np.testing.assert_allclose(got["sequence_output"], seq[..., keep], atol=1e-4)
    np.testing.assert_allclose(got["pooled_output"], pooled, atol=1e-4)
    assert not np.allclose(pooled, model.predict(x, verbose=0)["pooled_output"], atol=1e-3)
    nv.save_pruned(result, tmp_path / "bert.keras", model, plan)  # reloads, safe mode


@pytest.mark.filterwarnings("ignore:The selection removes output units")
def test_gpt2_causal_lm_tied_embedding_hidden_dims(tmp_path):
    model = randomize(gpt2_lm())
    tr = nv.analyze(model)
    plan = heads_plan("self_attention", 1)
    plan = nv.Plan({f"{model.backbone.name}/{k}": v for k, v in plan.remove.items()})
    result = nv.prune(model, plan, tr)
    oracle = small_copy(model, gpt2_lm)
    for length in (10, 6):
        x = tokens(length, seed=length)
        want = oracle.predict(x, verbose=0)
        got = result.model.predict(x, verbose=0)
        assert got.shape == (3, length, 50)  # logits over the whole vocabulary
        np.testing.assert_allclose(got, want, atol=1e-4)
        masked = nv.masked_predict(model, plan, [x[n] for n in tr.graph.input_names], tr=tr)
        np.testing.assert_allclose(masked, want, atol=1e-4)
    assert any("kept as one layer" in n for n in result.capture_summary())
    # the tied table is one variable, saved and reloaded as one: a change to it reaches both
    # uses (embedding and logits), as in the oracle, whose class ties them
    assert result.model.count_params() == result.after.params == oracle.count_params()
    path = nv.save_pruned(result, tmp_path / "lm.keras", model, plan)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert reloaded.count_params() == oracle.count_params()
    (table,) = [v for v in reloaded.weights if "token_embedding" in v.path]
    for emb in (table, oracle.backbone.token_embedding.embeddings):
        emb.assign(np.asarray(emb) * 2)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), oracle.predict(x, verbose=0), atol=1e-4
    )


def test_latency_of_a_model_with_named_inputs(bert_model):
    model, _ = bert_model  # inputs are a dict (token_ids, segment_ids, padding_mask)
    assert nv.measure_latency(model, batch_size=2, runs=1, warmup=1) > 0
