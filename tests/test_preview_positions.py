"""The preview of a [CLS]-pooled transformer computes only the positions the output reads,
and still scores exactly what the physically pruned model scores (padding masks, heads of
the last and of an earlier block, FFN neurons; mean pooling reads every position)."""

import hub_models
import keras
import numpy as np
import pytest
from engine_models import randomize

import neuronviz.api as nv
from neuronviz.backend.model.data import Dataset
from neuronviz.backend.scoring.preview import Previewer

T, VOCAB, N = 8, 20, 48
L = keras.layers


def classifier(pool: str, full_mask: bool) -> keras.Model:
    """2 post-LN blocks (hidden 16, 2 heads, FFN 24) with a padding mask, 3 classes."""
    keras.utils.set_random_seed(5)
    ids = keras.Input((T,), dtype="int32", name="ids")
    pad = keras.Input((T,), dtype="int32", name="pad")
    rows = keras.ops.expand_dims(pad, 1)  # (B, 1, T): every query sees the real tokens
    mask = rows * keras.ops.expand_dims(pad, 2) if full_mask else rows  # (B, T, T) or (B, 1, T)
    h = L.Embedding(VOCAB, 16, name="tok")(ids)
    for b in range(2):
        a = L.MultiHeadAttention(2, 8, name=f"mha_{b}")(h, h, attention_mask=mask)
        h = L.LayerNormalization(name=f"ln_a{b}")(L.Add()([h, a]))
        f = L.Dense(24, activation="gelu", name=f"ffn_{b}")(h)
        h = L.LayerNormalization(name=f"ln_f{b}")(L.Add()([h, L.Dense(16, name=f"out_{b}")(f)]))
    pooled = h[:, 0, :] if pool == "cls" else L.GlobalAveragePooling1D()(h)
    out = L.Dense(3, name="classifier")(L.Dense(16, activation="tanh", name="pooler")(pooled))
    model = keras.Model([ids, pad], out)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, (N, T)).astype("int32")
    lengths = rng.integers(2, T + 1, N)
    pad = (np.arange(T)[None] < lengths[:, None]).astype("int32")
    return Dataset([ids, pad], rng.integers(0, 3, N), 3)


def pruned_score(model, plan, data):
    """Accuracy and mean loss of the physically pruned model, in NumPy."""
    pruned = nv.prune(model, plan).model
    logits = keras.ops.convert_to_numpy(pruned(data.x)).astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    return np.mean(logits.argmax(1) == data.y), -np.mean(logp[np.arange(data.n), data.y])


PLANS = {
    "last head": {"mha_1": [1]},
    "first head": {"mha_0": [0]},
    "last ffn": {"ffn_1": [0, 3, 4, 9]},
    "heads and ffn": {"mha_1": [0], "mha_0": [1], "ffn_1": [2]},
}


@pytest.mark.parametrize("pool, full_mask", [("cls", False), ("cls", True), ("mean", False)])
def test_preview_equals_pruned_model(pool, full_mask, data):
    model = classifier(pool, full_mask)
    tr = nv.analyze(model)
    pv = Previewer(model, tr, data, batch_size=16)
    pv.warm()
    mha_1 = pv.graph.first_call("mha_1").index
    if pool == "cls":  # the last attention computes the [CLS] query only
        assert pv.positions.plan[mha_1][0].tolist() == [0]
    else:
        assert not pv.positions
    assert mha_1 in pv._heads  # its output and head terms are cached by warm()
    tight = Previewer(model, tr, data, budget_bytes=0, batch_size=N)  # no caches at all
    for name, plan in PLANS.items():
        accuracy, loss = pruned_score(model, nv.Plan(plan), data)
        pv.calls_run.clear()
        for got in (pv.score(nv.Plan(plan)), tight.score(nv.Plan(plan))):
            assert got.accuracy == pytest.approx(accuracy, abs=0.5 / N), name
            assert got.loss == pytest.approx(loss, rel=1e-4), name
            assert got.loss != pytest.approx(pv.baseline().loss, rel=1e-6), name
        if name == "last head":  # a subtraction: the attention layer does not run again
            assert pv.calls_run[mha_1] == 0 and pv.calls_run[mha_1 + 1] > 0
    assert tight.cached_bytes == 0


def test_keras_hub_bert_classifier_reads_its_cls_token():
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(1)
    backbone = hub_models.bert(vocab=VOCAB)
    model = keras_hub.models.BertTextClassifier(backbone, 3, preprocessor=None, activation=None)
    randomize(model)
    rng = np.random.default_rng(0)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pad = (np.arange(T)[None] < rng.integers(2, T + 1, N)[:, None]).astype("int32")
    x = {"token_ids": rng.integers(1, VOCAB, (N, T)).astype("int32"), "padding_mask": pad}
    x["segment_ids"] = np.zeros_like(pad)
    tr = nv.analyze(model, input_shape=[(T,)] * 3)
    data = Dataset([x[name] for name in tr.graph.input_names], rng.integers(0, 3, N), 3)
    pv = Previewer(model, tr, data)
    last = f"{backbone.name}/transformer_layer_1/self_attention_layer"
    assert pv.positions.plan[pv.graph.first_call(last).index][0].tolist() == [0]
    plan = nv.Plan({last: [1]})
    pruned = nv.prune(model, plan, tr).model
    logits = keras.ops.convert_to_numpy(pruned(x)).astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    got = pv.score(plan)
    assert got.loss == pytest.approx(-np.mean(logp[np.arange(N), data.y]), rel=1e-4)
    assert got.accuracy == pytest.approx(np.mean(logits.argmax(1) == data.y), abs=0.5 / N)
    assert got.loss != pytest.approx(pv.baseline().loss, rel=1e-4)
