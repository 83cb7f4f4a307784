"""Inputs with None dimensions and named dict inputs: traced at example shapes, pruned
with the None dimensions kept, and pruned == masked at several sizes.

The oracle is a copy of the model with the removed units' consumer weights zeroed by
hand (no neuronviz code), so it checks the surgery and the masking independently.
"""

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs
from keras import ops
from mask_layer import zero_input_rows

import neuronviz.api as nv
from neuronviz.backend.model.data import load_data
from neuronviz.backend.scoring.preview import Previewer
from neuronviz.commands.inspect import report


def _randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def _copy(model):
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def text_classifier():
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(50, 12, mask_zero=True, name="embed")(tokens)
    x = keras.layers.GRU(10, name="gru")(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    return _randomized(keras.Model(tokens, keras.layers.Dense(3, name="head")(x)))


def fully_convolutional():
    x = keras.Input((None, None, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    h = keras.layers.Conv2D(12, 3, strides=2, padding="same", name="c2")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="r2")(h)
    h = keras.layers.Conv2D(5, 1, name="classes")(h)
    out = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = _randomized(keras.Model(x, out))
    bn = model.get_layer("bn")
    bn.set_weights([bn.gamma.numpy(), bn.beta.numpy(), np.zeros(12), np.ones(12) * 1.5])
    return model


def _tokens(rng, n, length):
    """Padded token ids: each row has a random length, zero-padded at the end."""
    x = rng.integers(1, 50, size=(n, length)).astype("int32")
    for row, real in zip(x, rng.integers(2, length + 1, size=n), strict=True):
        row[real:] = 0
    return x


def test_text_classifier_prunes_exactly_at_several_lengths(tmp_path):
    model = text_classifier()
    tr = nv.analyze(model)
    assert "(16,) (default: 16 tokens/steps)" in tr.graph.example_note
    plan = nv.Plan({"embed": [0, 3, 7], "hidden": [1, 2, 10]})
    result = nv.prune(model, plan, tr)
    assert result.model.input_shape == (None, None)
    assert result.model.get_layer("embed").output_dim == 9
    oracle = _copy(model)
    zero_input_rows(oracle.get_layer("gru"), [0, 3, 7], axis=0)
    zero_input_rows(oracle.get_layer("head"), [1, 2, 10], axis=0)
    rng = np.random.default_rng(1)
    for length in (5, 16, 31):
        x = _tokens(rng, 6, length)
        want = oracle.predict(x, verbose=0)
        assert_same_outputs(want, result.model.predict(x, verbose=0))
        assert_same_outputs(want, nv.masked_predict(model, plan, x, tr=tr))
        assert not np.allclose(want, model.predict(x, verbose=0), atol=1e-3)
    path = nv.save_pruned(result, tmp_path / "text.keras", model, plan)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert reloaded.input_shape == (None, None)
    x = _tokens(rng, 4, 23)
    assert_same_outputs(oracle.predict(x, verbose=0), reloaded.predict(x, verbose=0))


def test_fully_convolutional_net_keeps_its_none_dimensions(tmp_path):
    model = fully_convolutional()
    tr = nv.analyze(model)
    assert "(64, 64, 3) (default: 64x64 pixels)" in tr.graph.example_note
    plan = nv.Plan({"c1": [0, 5], "c2": [2, 3, 11]})
    result = nv.prune(model, plan, tr)
    assert result.model.input_shape == (None, None, None, 3)
    assert result.widths()["c2"] == (12, 9)
    oracle = _copy(model)
    zero_input_rows(oracle.get_layer("c2"), [0, 5], axis=2)
    zero_input_rows(oracle.get_layer("classes"), [2, 3, 11], axis=2)
    rng = np.random.default_rng(2)
    for hw in ((20, 24), (37, 29), (64, 64)):
        x = rng.normal(size=(3, *hw, 3)).astype("float32")
        want = oracle.predict(x, verbose=0)
        assert_same_outputs(want, result.model.predict(x, verbose=0))
        assert_same_outputs(want, nv.masked_predict(model, plan, x, tr=tr))
    path = nv.save_pruned(result, tmp_path / "fcn.keras", model, plan)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    x = rng.normal(size=(2, 45, 19, 3)).astype("float32")
    assert_same_outputs(oracle.predict(x, verbose=0), reloaded.predict(x, verbose=0))


def test_example_shape_from_the_caller_and_bad_shapes():
    model = fully_convolutional()
    tr = nv.analyze(model, input_shape=(32, 48, 3))
    assert tr.graph.first_call("c2").output_shapes == [(None, 16, 24, 12)]
    assert "(32, 48, 3) (given)" in tr.graph.example_note
    # MACs follow the example size
    assert nv.counts(model, (32, 48, 3)).macs * 4 == pytest.approx(
        nv.counts(model, (64, 96, 3)).macs
    )
    with pytest.raises(nv.NeuronvizError, match=r"Expected an input shape like \(None, None, 3\)"):
        nv.analyze(model, input_shape=(32, 32, 4))


def test_padded_sequences_load_from_npz_and_preview_at_their_length(tmp_path):
    model = text_classifier()
    rng = np.random.default_rng(3)
    x = _tokens(rng, 40, 27)
    np.savez(tmp_path / "val.npz", x=x, y=rng.integers(0, 3, 40))
    ds = load_data(tmp_path / "val.npz", model)
    assert ds.x.shape == (40, 27)
    tr = nv.analyze(model, input_shape=ds.x.shape[1:])
    assert "traced at (27,) (given)" in tr.graph.example_note
    previewer = Previewer(model, tr, ds)
    plan = nv.Plan({"hidden": [0, 4]})
    want = _copy(model)
    zero_input_rows(want.get_layer("head"), [0, 4], axis=0)
    np.testing.assert_allclose(previewer.predict(plan), want.predict(x, verbose=0), atol=1e-5)
    rows = report(model, tr, ds)
    assert rows["inputs"][0]["example_shape"] == [None, 27]


def named_inputs_model():
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    seg = keras.Input((None,), dtype="int32", name="segment_ids")
    x = keras.layers.Embedding(40, 10, name="tok_embed")(ids)
    x = x + keras.layers.Embedding(2, 10, name="seg_embed")(seg)
    x = keras.layers.Dense(14, activation="relu", name="ffn")(x)
    weights = ops.expand_dims(ops.cast(mask, "float32"), -1)
    pooled = ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
    out = keras.layers.Dense(2, name="head")(pooled)
    inputs = {"token_ids": ids, "padding_mask": mask, "segment_ids": seg}
    return _randomized(keras.Model(inputs, out))


def test_named_dict_inputs_load_by_name_prune_and_inspect(tmp_path):
    model = named_inputs_model()
    rng = np.random.default_rng(4)
    n, length = 12, 9
    ids = _tokens(rng, n, length) % 40
    mask = (ids > 0).astype("int32")
    seg = rng.integers(0, 2, size=(n, length)).astype("int32")
    np.savez(
        tmp_path / "val.npz",
        token_ids=ids,
        padding_mask=mask,
        segment_ids=seg,
        y=rng.integers(0, 2, n),
    )
    ds = load_data(tmp_path / "val.npz", model)
    by_name = dict(zip(nv.analyze(model).graph.input_names, ds.inputs, strict=True))
    np.testing.assert_array_equal(by_name["token_ids"], ids)
    np.testing.assert_array_equal(by_name["padding_mask"], mask)
    np.testing.assert_array_equal(by_name["segment_ids"], seg)
    tr = nv.analyze(model)
    plan = nv.Plan({"ffn": [0, 5, 13]})
    result = nv.prune(model, plan, tr)
    oracle = _copy(model)
    zero_input_rows(oracle.get_layer("head"), [0, 5, 13], axis=0)
    feed = {"token_ids": ids, "padding_mask": mask, "segment_ids": seg}
    want = oracle.predict(feed, verbose=0)
    assert_same_outputs(want, result.model.predict(feed, verbose=0))
    assert_same_outputs(want, nv.masked_predict(model, plan, feed, tr=tr))
    short = {k: v[:, :4] for k, v in feed.items()}
    assert_same_outputs(oracle.predict(short, verbose=0), result.model.predict(short, verbose=0))
    path = nv.save_pruned(result, tmp_path / "named.keras", model, plan)
    assert keras.saving.load_model(path, safe_mode=True).get_layer("ffn").units == 11
    inputs = report(model, tr)["inputs"]
    assert [r["name"] for r in inputs] == ["padding_mask", "segment_ids", "token_ids"]
    assert all(r["shape"] == [None, None] and r["dtype"] == "int32" for r in inputs)
