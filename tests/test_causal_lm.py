"""Causal-LM scores: next-token loss and perplexity on token data (`token_ids`, optional
`padding_mask`, no `y`), checked against a NumPy computation from the model's own logits
(plain Keras calls, no neuronviz scoring), masked == pruned after removing a head, the
CLI, the sweep, and one-line refusals for bad token data."""

import json
import math

import hub_models
import keras
import numpy as np
import pytest
from engine_models import randomize

import neuronviz.api as nv
from neuronviz.cli import main

L = keras.layers
V, T, D = 23, 10, 16


def tiny_lm(probabilities=False):
    """Embedding -> causal self-attention block + FFN -> Dense(vocab)."""
    x = keras.Input((None,), dtype="int32", name="token_ids")
    h = L.Embedding(V, D, name="embed")(x)
    a = L.MultiHeadAttention(num_heads=4, key_dim=4, name="mha")(h, h, use_causal_mask=True)
    h = L.LayerNormalization(name="ln1")(L.Add(name="res1")([h, a]))
    f = L.Dense(32, activation="relu", name="ffn")(h)
    h = L.LayerNormalization(name="ln2")(L.Add(name="res2")([h, L.Dense(D, name="ffn_out")(f)]))
    out = L.Dense(V, activation="softmax" if probabilities else None, name="lm_head")(h)
    return keras.Model(x, out, name="tiny_lm")


@pytest.fixture(scope="module")
def lm():
    return randomize(tiny_lm(), seed=3)


@pytest.fixture(scope="module")
def lm_file(lm, tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "lm.keras"
    lm.save(path)
    return str(path)


@pytest.fixture(scope="module")
def tokens():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, (6, T))
    mask = np.ones((6, T), np.int32)
    mask[1, 6:] = 0  # right padding
    mask[2, 3:] = 0
    return ids, mask


@pytest.fixture(scope="module")
def data(lm, tokens):
    return nv.next_token_data(lm, *tokens)


def numpy_next_token(logits, ids, mask):
    """(accuracy, loss, perplexity, n): position t predicts token t+1 unless it is padding."""
    losses, hits = [], []
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            if not mask[b, t + 1]:
                continue
            z = np.asarray(logits[b, t], np.float64)
            lse = z.max() + math.log(np.exp(z - z.max()).sum())
            losses.append(lse - z[ids[b, t + 1]])
            hits.append(int(np.argmax(z)) == ids[b, t + 1])
    loss = float(np.mean(losses))
    return float(np.mean(hits)), loss, math.exp(loss), len(losses)


def logits_of(model, ids):
    return keras.ops.convert_to_numpy(model(ids.astype("int32")))


def test_loss_and_perplexity_equal_numpy_from_logits(lm, tokens, data):
    ids, mask = tokens
    acc, loss, ppl, n = numpy_next_token(logits_of(lm, ids), ids, mask)
    got = nv.evaluate(lm, data)
    assert got.n == n == 6 * (T - 1) - 4 - 7
    assert got.loss == pytest.approx(loss, rel=1e-5)
    assert got.perplexity == pytest.approx(ppl, rel=1e-5)
    assert got.accuracy == pytest.approx(acc)
    assert got.to_dict()["perplexity"] == pytest.approx(ppl, rel=1e-5)


def test_scored_batch_by_batch(lm, tokens, data):
    """Outputs are tallied per batch of sequences (never held for the whole token set)."""
    ids, mask = tokens
    previewer = nv.Previewer(lm, nv.analyze(lm), data, budget_bytes=0, batch_size=2)
    previewer.work_bytes = 0  # batches of exactly 2 sequences
    got = previewer.baseline()
    assert previewer.calls_run[len(previewer.graph.calls) - 1] == 3
    acc, loss, ppl, n = numpy_next_token(logits_of(lm, ids), ids, mask)
    assert (got.n, got.accuracy) == (n, pytest.approx(acc))
    assert got.loss == pytest.approx(loss, rel=1e-5)
    assert got.perplexity == pytest.approx(ppl, rel=1e-5)


def test_probability_outputs_score_like_logits(lm, tokens, data):
    probs = tiny_lm(probabilities=True)
    probs.set_weights(lm.get_weights())
    got, want = nv.evaluate(probs, data), nv.evaluate(lm, data)
    assert got.loss == pytest.approx(want.loss, rel=1e-4)
    assert got.perplexity == pytest.approx(want.perplexity, rel=1e-4)


def test_masked_preview_after_removing_a_head_equals_pruned_model(lm, tokens, data):
    ids, mask = tokens
    tr = nv.analyze(lm)
    plan = nv.Plan({"mha": [1]})
    pruned = nv.prune(lm, plan, tr).model
    assert pruned.get_layer("mha").num_heads == 3
    _, loss, ppl, n = numpy_next_token(logits_of(pruned, ids), ids, mask)
    previewer = nv.Previewer(lm, tr, data)
    got = previewer.score(plan)
    assert got.n == n
    assert got.loss == pytest.approx(loss, rel=1e-5)
    assert got.perplexity == pytest.approx(ppl, rel=1e-5)
    assert abs(got.loss - previewer.baseline().loss) > 1e-3  # the head mattered


def test_sweep_reports_perplexity(lm, data):
    res = nv.sweep(lm, data, fractions=(0.0, 0.5)).run()
    assert res.baseline.perplexity == pytest.approx(math.exp(res.baseline.loss))
    curve = res.curve("mha")
    assert curve.perplexity == pytest.approx([math.exp(v) for v in curve.loss])
    assert "perplexity" in res.to_dict()["groups"][0]
    head = res.to_csv().splitlines()[0]
    assert head.endswith(",loss,perplexity")


def test_taylor_scores_skip_positions_with_nothing_to_predict(lm, tokens):
    """Causal attention: the last position feeds no earlier prediction, so next-token data on
    (N, T) tokens equals labels ids[:, 1:] for inputs ids[:, :-1] (positions averaged: T-1 of T)."""
    model = keras.models.clone_model(lm)
    model.set_weights(lm.get_weights())
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = tokens[0]
    tokens_data = nv.next_token_data(model, ids)
    shifted = nv.Dataset(ids[:, :-1].astype("int32"), ids[:, 1:], V)
    tr = nv.analyze(model)
    got, want = (nv.importance(model, "taylor", data=d, trace=tr) for d in (tokens_data, shifted))
    for layer in ("embed", "ffn", "lm_head"):
        np.testing.assert_allclose(got[layer], want[layer] * (T - 1) / T, rtol=1e-4, atol=1e-7)
    got, want = (
        nv.importance(model, "head_taylor", data=d, trace=tr)["mha"] for d in (tokens_data, shifted)
    )
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert want.min() > 0
    with pytest.raises(nv.NeuronvizError, match="fine-tuning a causal LM is not supported"):
        nv.finetune(model, tokens_data, tokens_data)


def test_evaluate_and_inspect_cli(lm, lm_file, tokens, tmp_path, capsys):
    ids, mask = tokens
    npz = tmp_path / "tokens.npz"
    np.savez(npz, token_ids=ids, padding_mask=mask)
    _, loss, ppl, n = numpy_next_token(logits_of(nv.prune(lm, {"mha": [1]}).model, ids), *tokens)
    assert main(["evaluate", lm_file, "--data", str(npz), "--remove", "mha:1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == n and set(out) == {"accuracy", "loss", "n", "perplexity"}
    assert out["loss"] == pytest.approx(loss, rel=1e-5)
    assert out["perplexity"] == pytest.approx(ppl, rel=1e-5)
    _, loss, ppl, n = numpy_next_token(logits_of(lm, ids), ids, mask)
    assert main(["evaluate", lm_file, "--data", str(npz)]) == 0
    text = capsys.readouterr().out
    assert f"loss     {loss:.4f}" in text and f"perplexity {ppl:.4f}" in text
    assert f"tokens   {n}" in text
    assert main(["inspect", lm_file, "--data", str(npz), "--json"]) == 0
    base = json.loads(capsys.readouterr().out)["baseline"]
    assert base["perplexity"] == pytest.approx(ppl, rel=1e-5) and base["n"] == n


@pytest.mark.parametrize(
    "arrays, needle",
    [
        ({"token_ids": np.full((2, 5), V)}, f"Expected token ids in [0, {V})"),
        ({"token_ids": np.zeros((2, 5, 1), int)}, "token_ids.shape=(2, 5, 1)"),
        ({"token_ids": np.zeros((2, 1), int)}, "2 or more tokens"),
        ({"token_ids": np.full((2, 5), 0.5)}, "Expected integer token ids"),
        (
            {"token_ids": np.zeros((2, 5), int), "padding_mask": np.ones((2, 4))},
            "padding_mask.shape=(2, 4)",
        ),
        (
            {"token_ids": np.zeros((2, 5), int), "padding_mask": np.eye(2, 5)[[0, 0]]},
            "Expected at least one token whose next token is not padding",
        ),
        ({"padding_mask": np.ones((2, 5))}, "(or 'token_ids' for next-token scores)"),
    ],
)
def test_bad_token_data_is_one_line(lm, tmp_path, arrays, needle):
    npz = tmp_path / "bad.npz"
    np.savez(npz, **arrays)
    with pytest.raises(nv.NeuronvizError) as e:
        nv.load_data(npz, lm)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_token_data_exits_2_with_one_line(lm_file, tmp_path, capsys):
    npz = tmp_path / "bad.npz"
    np.savez(npz, token_ids=np.full((2, 5), V + 7))
    assert main(["evaluate", lm_file, "--data", str(npz)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == [
        f"neuronviz: error: Expected token ids in [0, {V}) for the model's vocabulary of {V} "
        f"(its output's last axis). Received: token id {V + 7} in 'bad.npz'"
    ]


def test_token_ids_for_a_classifier_are_refused(tmp_path):
    x = keras.Input((T,), dtype="int32")
    model = keras.Model(x, L.Dense(3)(L.Flatten()(L.Embedding(V, 4)(x))))
    np.savez(tmp_path / "t.npz", token_ids=np.zeros((2, T), int))
    with pytest.raises(nv.NeuronvizError, match=r"Expected labels `y`, or a causal LM"):
        nv.load_data(tmp_path / "t.npz", model)


def hub_lm(kind):
    """A keras-hub causal LM from a tiny random backbone, no preprocessor (no download)."""
    if kind == "gpt2":
        backbone = hub_models.gpt2(layers=1, vocab=V)
    else:
        backbone = hub_models.llama(hidden=8, layers=1, intermediate=16, vocab=V)
    return randomize(hub_models.causal_lm(backbone), 1)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_keras_hub_causal_lm_scores(kind, tokens, tmp_path):
    """Baseline, and head 1 of the block masked in the preview and removed by nv.prune,
    against a copy with that head's output-projection rows zeroed by hand."""
    model = hub_lm(kind)
    ids, mask = tokens
    np.savez(tmp_path / "t.npz", token_ids=ids, padding_mask=mask)
    data = nv.load_data(tmp_path / "t.npz", model)  # padding_mask feeds the model's input
    x = {"token_ids": ids.astype("int32"), "padding_mask": mask}
    acc, loss, ppl, n = numpy_next_token(keras.ops.convert_to_numpy(model(x)), ids, mask)
    previewer = nv.Previewer(model, nv.analyze(model), data)
    got = previewer.baseline()
    assert (got.n, got.accuracy) == (n, pytest.approx(acc))
    assert got.loss == pytest.approx(loss, rel=1e-5)
    assert got.perplexity == pytest.approx(ppl, rel=1e-5)
    oracle = hub_lm(kind)  # the same weights
    out = oracle.backbone.get_layer("transformer_layer_0")._self_attention_layer._output_dense
    kernel = keras.ops.convert_to_numpy(out.kernel)
    kernel[1] = 0  # (heads, head_dim, hidden)
    out.kernel.assign(kernel)
    _, loss, ppl, n = numpy_next_token(keras.ops.convert_to_numpy(oracle(x)), ids, mask)
    head = f"{model.backbone.name}/transformer_layer_0/self_attention"  # numbered per process
    got = previewer.score(nv.Plan({head: [1]}))
    assert got.n == n
    assert got.loss == pytest.approx(loss, rel=1e-5)
    assert got.perplexity == pytest.approx(ppl, rel=1e-5)
    assert abs(got.loss - previewer.baseline().loss) > 1e-4  # the head mattered
    result = nv.prune(model, nv.Plan({head: [1]}))
    pruned = result.model  # one token embedding (tied or not), called twice as before
    assert sorted(v.path for v in pruned.weights if "embed" in v.path) == sorted(
        v.path for v in model.weights if "embed" in v.path
    )
    # GPT-2: query, key, value (8x4 + 4 each) and output (4x8) of the head go; Llama (head
    # size 2): the query and output rows go, but keeping [1, 2] query heads per KV group
    # repeats the KV heads to 3 (see repeated_kv), so the model is no bigger but not smaller
    shrink = {"gpt2": 3 * (8 * 4 + 4) + 4 * 8, "llama": 2 * 8 + 2 * 8 - 2 * (8 * 2)}[kind]
    assert pruned.count_params() == result.after.params == model.count_params() - shrink
    _, p_loss, p_ppl, _ = numpy_next_token(keras.ops.convert_to_numpy(pruned(x)), ids, mask)
    assert p_loss == pytest.approx(loss, rel=1e-5) and p_ppl == pytest.approx(ppl, rel=1e-5)
    same = nv.prune(model, nv.Plan({})).model  # an empty plan rebuilds the LM unchanged
    assert same.count_params() == model.count_params()
    np.testing.assert_allclose(same(x), model(x), atol=1e-5)


def test_auto_budget_on_token_data_keeps_the_lower_loss_plan(lm, tokens):
    """scope="auto" compares the two scopes' plans by next-token loss (accuracy hides most
    of an LM's damage); the losses here come from the pruned models' own logits."""
    ids, mask = tokens
    data = nv.next_token_data(lm, ids, mask)
    loss = {}
    for scope in ("global", "layer"):
        plan = nv.plan_to_budget(lm, "params=0.7", scope=scope, round_to=1).plan
        loss[scope] = numpy_next_token(logits_of(nv.prune(lm, plan).model, ids), ids, mask)[1]
    assert loss["global"] != pytest.approx(loss["layer"])
    auto = nv.plan_to_budget(lm, "params=0.7", data=data, round_to=1)
    assert auto.scope == min(loss, key=loss.get)


def test_sensitivity_weights_of_token_data_follow_the_loss(lm, data):
    """A budget that respects a sweep ranks an LM's groups by how much each raises the
    next-token loss (its accuracy moves in coarse steps of one token)."""
    from neuronviz.backend.surgery.budget import _sensitivity_weights

    res = nv.sweep(lm, data, fractions=(0.0, 0.25, 0.5)).run()
    base = res.baseline.loss
    rise = {c.name: np.mean([max(v - base, 0.0) for v in c.loss]) for c in res.curves}
    mean = np.mean(list(rise.values()))
    assert mean > 0
    want = {k: 1.0 + v / mean for k, v in rise.items()}
    got = _sensitivity_weights(res)
    assert got == pytest.approx(want)
    drop = {
        c.name: np.mean([max(res.baseline.accuracy - a, 0.0) for a in c.accuracy])
        for c in res.curves
    }
    by_accuracy = {k: 1.0 + v / np.mean(list(drop.values())) for k, v in drop.items()}
    assert got != pytest.approx(by_accuracy)
