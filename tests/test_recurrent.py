"""Recurrent layers' own units, Bidirectional and TimeDistributed: the pruned model equals an
oracle written here by hand (the original model with `x * mask` after the named layers and
the removed units' recurrent-kernel rows and gate columns zeroed), the masked model and
the preview."""

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs, run_cli_parallel
from engine_models import randomize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mask_layer import Mask, keep

import neuronviz.api as nv
from neuronviz.backend.model.data import Dataset
from neuronviz.backend.scoring.preview import Previewer

L = keras.layers
GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def _masked(t, name, masks):
    """Apply the oracle masks given for layer `name` (one keep per output)."""
    if name not in masks:
        return t
    ts = list(t) if isinstance(t, (list, tuple)) else [t]
    out = [x if k is None else Mask(k)(x) for x, k in zip(ts, masks[name], strict=True)]
    return out if isinstance(t, (list, tuple)) else out[0]


def stacked(masks=None):
    """SimpleRNN, GRU (both reset_after), go_backwards, LSTM with return_state."""
    m = masks or {}
    x = keras.Input((6, 5))
    h = _masked(L.Dense(8, activation="tanh", name="d")(x), "d", m)
    h = _masked(L.SimpleRNN(7, return_sequences=True, name="rnn")(h), "rnn", m)
    h = L.GRU(6, reset_after=False, go_backwards=True, return_sequences=True, name="gru0")(h)
    h = _masked(h, "gru0", m)
    h = _masked(L.GRU(5, return_sequences=True, name="gru1")(h), "gru1", m)
    out, sh, sc = _masked(L.LSTM(6, return_state=True, name="lstm")(h), "lstm", m)
    return keras.Model(x, L.Dense(3, name="out")(L.Concatenate()([out, sh, sc])))


def bidirectional(masks=None):
    """Bidirectional halves with concat, sum, ave and mul merges, and states."""
    m = masks or {}
    x = keras.Input((5, 4))
    h = L.Bidirectional(L.LSTM(5, return_sequences=True), name="bi_cat")(x)
    h = _masked(h, "bi_cat", m)
    h = L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="sum", name="bi_sum")(h)
    h = _masked(h, "bi_sum", m)
    h = L.Bidirectional(L.SimpleRNN(4, return_sequences=True), merge_mode="ave", name="bi_ave")(h)
    h = _masked(h, "bi_ave", m)
    outs = L.Bidirectional(L.LSTM(3, return_state=True), merge_mode="mul", name="bi_mul")(h)
    outs = _masked(outs, "bi_mul", m)
    return keras.Model(x, L.Dense(3, name="out")(L.Concatenate()(outs)))


def time_distributed(masks=None):
    """TimeDistributed Conv2D, BatchNorm, pooling, Flatten and Dense, feeding a GRU."""
    m = masks or {}
    x = keras.Input((4, 6, 6, 2))
    h = L.TimeDistributed(L.Conv2D(5, 3, activation="relu"), name="td_conv")(x)
    h = _masked(L.TimeDistributed(L.BatchNormalization(), name="td_bn")(h), "td_bn", m)
    h = L.TimeDistributed(L.MaxPooling2D(2), name="td_pool")(h)
    h = L.TimeDistributed(L.Flatten(), name="td_flat")(h)
    h = _masked(L.TimeDistributed(L.Dense(6, activation="relu"), name="td_dense")(h), "td_dense", m)
    h = _masked(L.GRU(4, name="gru")(h), "gru", m)
    return keras.Model(x, L.Dense(3, name="out")(h))


def _zero_removed(layer, removed):
    """Oracle surgery on one SimpleRNN/GRU/LSTM: the removed units' recurrent-kernel rows
    (their contribution to the others) and their gate columns of every kernel are zeroed."""
    if not len(removed):
        return
    u = layer.units
    cols = [g * u + j for g in range(GATES[type(layer).__name__]) for j in removed]
    ws = []
    for v, w in zip(layer.weights, layer.get_weights(), strict=True):
        w = w.copy()
        if v.name.endswith("recurrent_kernel"):
            w[removed, :] = 0
        if "kernel" in v.name:
            w[:, cols] = 0
        ws.append(w)
    layer.set_weights(ws)


def _oracle(build, model, masks, removed_by_rnn):
    """The model rebuilt with masks, the original weights, and recurrent surgery by hand."""
    oracle = build(masks)
    oracle.set_weights(model.get_weights())
    for name, removed in removed_by_rnn.items():
        owner, _, half = name.partition(":")
        layer = oracle.get_layer(owner)
        if half:
            layer = layer.forward_layer if half == "fw" else layer.backward_layer
        _zero_removed(layer, removed)
    return oracle


def _check(build, plan, masks, removed_by_rnn, n=6):
    model = randomize(build())
    x = np.random.default_rng(2).standard_normal((n,) + model.input_shape[1:]).astype("float32")
    tr = nv.analyze(model)
    result = nv.prune(model, plan, tr)
    pruned = result.model.predict(x, verbose=0)
    oracle = _oracle(build, model, masks, removed_by_rnn).predict(x, verbose=0)
    assert not np.allclose(oracle, model.predict(x, verbose=0))  # the test can fail
    assert_same_outputs(oracle, pruned)
    assert_same_outputs(nv.masked_predict(model, plan, x, tr=tr), pruned)
    # the preview scores the pruned model exactly
    y = np.arange(n) % 3
    pv = Previewer(model, tr, Dataset(x, y, 3))
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(pruned))
    ce = -np.log(probs[np.arange(n), y]).mean()
    score = pv.score(plan)
    assert score.accuracy == pytest.approx(float(np.mean(pruned.argmax(1) == y)))
    assert score.loss == pytest.approx(ce, rel=1e-4)
    assert result.after.params < result.before.params
    return result


def test_simple_rnn_gru_lstm_own_units():
    plan = nv.Plan({"d": [1], "rnn": [0, 3], "gru0": [5], "gru1": [1, 2], "lstm": [0, 4]})
    masks = {
        "d": [keep(8, [1])],
        "rnn": [keep(7, [0, 3])],
        "gru0": [keep(6, [5])],
        "gru1": [keep(5, [1, 2])],
        "lstm": [keep(6, [0, 4])] * 3,
    }
    rnns = {"rnn": [0, 3], "gru0": [5], "gru1": [1, 2], "lstm": [0, 4]}
    result = _check(stacked, plan, masks, rnns)
    m = result.model
    assert [m.get_layer(n).units for n in ("rnn", "gru0", "gru1", "lstm")] == [5, 5, 3, 4]
    assert m.get_layer("gru1").get_weights()[2].shape == (2, 9)  # reset_after: two bias rows
    assert m.get_layer("gru0").get_weights()[0].shape == (5, 15)
    assert m.get_layer("lstm").get_weights()[1].shape == (4, 16)
    assert m.get_layer("out").get_weights()[0].shape == (12, 3)


def test_bidirectional_merges():
    plan = nv.Plan({"bi_cat": [0, 7], "bi_sum": [1], "bi_ave": [2, 3], "bi_mul": [0]})
    masks = {
        "bi_cat": [keep(10, [0, 7])],
        "bi_sum": [keep(4, [1])],
        "bi_ave": [keep(4, [2, 3])],
        "bi_mul": [keep(3, [0])] * 5,
    }
    rnns = {
        "bi_cat:fw": [0],
        "bi_cat:bw": [2],
        "bi_sum:fw": [1],
        "bi_sum:bw": [1],
        "bi_ave:fw": [2, 3],
        "bi_ave:bw": [2, 3],
        "bi_mul:fw": [0],
        "bi_mul:bw": [0],
    }
    result = _check(bidirectional, plan, masks, rnns)
    m = result.model
    assert m.get_layer("bi_cat").forward_layer.units == 4
    assert m.get_layer("bi_cat").backward_layer.units == 4
    assert m.get_layer("bi_ave").forward_layer.units == 2


def test_bidirectional_halves_must_match():
    model = bidirectional()
    tr = nv.analyze(model)
    with pytest.raises(nv.NeuronvizError, match="forward half.*bi_cat.*1 forward, 0 backward"):
        tr.select(nv.Plan({"bi_cat": [0]}))


def test_time_distributed():
    plan = nv.Plan({"td_conv": [0, 3], "td_dense": [2], "gru": [1]})
    masks = {"td_bn": [keep(5, [0, 3])], "td_dense": [keep(6, [2])], "gru": [keep(4, [1])]}
    result = _check(time_distributed, plan, masks, {"gru": [1]})
    m = result.model
    assert m.get_layer("td_conv").layer.filters == 3
    assert m.get_layer("td_bn").get_weights()[0].shape == (3,)
    assert m.get_layer("td_dense").get_weights()[0].shape == (12, 5)  # 2x2 positions x 3


def test_recurrent_index_out_of_range():
    tr = nv.analyze(stacked())
    with pytest.raises(nv.NeuronvizError, match=r"Expected `indices` in \[0, 6\) for layer 'lstm'"):
        tr.select(nv.Plan({"lstm": [6]}))


@st.composite
def recurrent_stacks(draw):
    """(model, plan): a random stack of recurrent layers and a random valid selection."""
    x = keras.Input((4, 3))
    h, remove = x, {}
    depth = draw(st.integers(1, 3))
    for i in range(depth):
        kind = draw(st.sampled_from(["SimpleRNN", "GRU", "GRU_v1", "LSTM"]))
        units = draw(st.integers(2, 5))
        merge = draw(st.sampled_from(["none", "concat", "sum", "mul"]))
        kw = {"return_sequences": i < depth - 1, "name": f"r{i}"}
        kw["go_backwards"] = merge == "none" and draw(st.booleans())
        cell = (
            L.GRU(units, reset_after=False, **kw)
            if kind == "GRU_v1"
            else getattr(L, kind)(units, **kw)
        )
        if merge != "none":
            cell = L.Bidirectional(cell, merge_mode=merge, name=f"r{i}")
        h = cell(h)
        width = units * (2 if merge == "concat" else 1)
        k = draw(st.integers(0, units - 1))
        if merge == "concat":
            idx = draw(st.permutations(range(units)))[:k] + [
                units + j for j in draw(st.permutations(range(units)))[:k]
            ]
        else:
            idx = draw(st.permutations(range(width)))[:k]
        if idx:
            remove[f"r{i}"] = idx
    model = randomize(keras.Model(x, L.Dense(2, name="out")(h)), seed=draw(st.integers(0, 9)))
    return model, nv.Plan(remove)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=recurrent_stacks())
def test_random_recurrent_stacks_prune_exactly(case):
    model, plan = case
    x = np.random.default_rng(0).standard_normal((3, 4, 3)).astype("float32")
    tr = nv.analyze(model)
    result = nv.prune(model, plan, tr)
    assert_same_outputs(
        nv.masked_predict(model, plan, x, tr=tr), result.model.predict(x, verbose=0)
    )
    assert result.widths() == {
        k: (len(tr.layer_units[k]), len(tr.layer_units[k]) - len(v))
        for k, v in result.selection.removed_by_layer().items()
    }


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_pruned_recurrent_models_save_and_reload(tmp_path, suffix):
    for build, plan in [
        (bidirectional, nv.Plan({"bi_cat": [1, 9], "bi_mul": [2]})),
        (time_distributed, nv.Plan({"td_conv": [4], "td_dense": [0], "gru": [3]})),
        (stacked, nv.Plan({"lstm": [5], "gru1": [0]})),
    ]:
        model = randomize(build())
        result = nv.prune(model, plan)
        path = nv.save_pruned(result, tmp_path / (build.__name__ + suffix), model, plan)
        reloaded = nv.load_model(path)
        assert reloaded.count_params() == result.model.count_params()


def _surgeon_rnn(kind):
    """keras-surgeon's recursive_test_helper model: RNN(9, sequences) -> GRU(4) -> Dense(5)."""

    def build(masks=None):
        m = masks or {}
        x = keras.Input((32, 10))
        h = _masked(getattr(L, kind)(9, return_sequences=True, name="rnn")(x), "rnn", m)
        h = L.GRU(4, name="next")(h)
        return keras.Model(x, L.Dense(5, name="out")(h))

    return build


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU", "LSTM"])
@pytest.mark.parametrize("idx", [[0], [8], [1, 2]], ids=str)  # keras-surgeon: [0], [-1], [1, 2]
def test_keras_surgeon_delete_channels_rnn(kind, idx):
    build = _surgeon_rnn(kind)
    model = randomize(build())
    x = np.random.default_rng(3).standard_normal((4, 32, 10)).astype("float32")
    plan = nv.Plan({"rnn": idx})
    result = nv.prune(model, plan)
    oracle = _oracle(build, model, {"rnn": [keep(9, idx)]}, {"rnn": idx})
    assert_same_outputs(oracle.predict(x, verbose=0), result.model.predict(x, verbose=0))
    assert_same_outputs(nv.masked_predict(model, plan, x), result.model.predict(x, verbose=0))
    # keras-surgeon's own check: the next layer's kernel loses those rows, the rest is kept
    w, got = model.get_layer("next").get_weights(), result.model.get_layer("next").get_weights()
    np.testing.assert_array_equal(got[0], np.delete(w[0], idx, axis=0))
    for a, b in zip(w[1:], got[1:], strict=True):
        np.testing.assert_array_equal(a, b)


def test_masked_sequences_through_bidirectional_and_rnn():
    """Embedding(mask_zero) passes a Keras mask to the recurrent layers (not a data input)."""

    def build(masks=None):
        m = masks or {}
        x = keras.Input((7,), dtype="int32")
        e = L.Embedding(20, 6, mask_zero=True, name="emb")(x)
        h = L.Bidirectional(L.GRU(4, return_sequences=True), name="bi")(e)
        h = _masked(h, "bi", m)
        h = _masked(L.LSTM(5, name="lstm")(h), "lstm", m)
        return keras.Model(x, L.Dense(3, name="out")(h))

    model = randomize(build())
    x = np.random.default_rng(6).integers(0, 20, (5, 7)).astype("int32")
    x[:, 4:] = 0  # padded tails
    plan = nv.Plan({"bi": [1, 6], "lstm": [0, 3]})
    masks = {"bi": [keep(8, [1, 6])], "lstm": [keep(5, [0, 3])]}
    oracle = _oracle(build, model, masks, {"bi:fw": [1], "bi:bw": [2], "lstm": [0, 3]})
    result = nv.prune(model, plan)
    pruned = result.model.predict(x, verbose=0)
    assert not np.allclose(pruned, model.predict(x, verbose=0))
    assert_same_outputs(oracle.predict(x, verbose=0), pruned)
    assert_same_outputs(nv.masked_predict(model, plan, x), pruned)


def test_cli_refusals_are_one_line_and_write_nothing(tmp_path):
    bi, rnn = tmp_path / "bi.keras", tmp_path / "rnn.keras"
    bidirectional().save(bi)
    stacked().save(rnn)
    runs = run_cli_parallel(
        {
            "half": ["prune", bi, "-o", tmp_path / "a.keras", "--remove", "bi_cat:0"],
            "range": ["prune", rnn, "-o", tmp_path / "b.keras", "--remove", "lstm:6"],
        }
    )
    needles = {"half": "1 forward, 0 backward", "range": "[0, 6) for layer 'lstm'"}
    for name, r in runs.items():
        assert r.returncode != 0
        assert len(r.stderr.strip().splitlines()) == 1 and needles[name] in r.stderr, r.stderr
    assert not (tmp_path / "a.keras").exists() and not (tmp_path / "b.keras").exists()


def test_weight_importance_of_wrapped_layers():
    """L2 norms of incoming weights, computed here from the raw kernels."""
    from neuronviz.backend.analysis.gradients import unit_top_inputs

    model = randomize(bidirectional())
    scores = nv.importance(model, "l2", layers=["bi_cat", "bi_sum"])
    cat = model.get_layer("bi_cat")
    fw, bw = cat.forward_layer.get_weights()[0], cat.backward_layer.get_weights()[0]
    want = np.concatenate(
        [
            np.sqrt((fw.reshape(4, 4, 5) ** 2).sum((0, 1))),
            np.sqrt((bw.reshape(4, 4, 5) ** 2).sum((0, 1))),
        ]
    )
    np.testing.assert_allclose(scores["bi_cat"], want, rtol=1e-5)
    s = model.get_layer("bi_sum")
    both = [h.get_weights()[0].reshape(10, 3, 4) ** 2 for h in (s.forward_layer, s.backward_layer)]
    np.testing.assert_allclose(
        scores["bi_sum"], np.sqrt(sum(b.sum((0, 1)) for b in both)), rtol=1e-5
    )
    top = unit_top_inputs(nv.analyze(model), "bi_cat", 7, k=2)  # backward unit 2
    per_input = np.linalg.norm(bw.reshape(4, 4, 5)[:, :, 2], axis=1)
    assert [i for i, _ in top] == list(np.argsort(-per_input)[:2])

    td = randomize(time_distributed())
    kernel = td.get_layer("td_dense").get_weights()[0]
    got = nv.importance(td, "l2", layers=["td_dense"])["td_dense"]
    np.testing.assert_allclose(got, np.sqrt((kernel**2).sum(0)), rtol=1e-5)
