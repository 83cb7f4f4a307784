"""Neuron gradients, saliency and Taylor importance, checked analytically or numerically."""

import keras
import numpy as np
import pytest

from neuronviz.backend.analysis.gradients import (
    saliency,
    taylor_importance,
    unit_top_inputs,
    unit_weight_gradients,
    upstream_unit,
)
from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.trace import trace
from neuronviz.errors import NeuronvizError

L = keras.layers


def _w(layer, name):
    return next(v.numpy() for v in layer.weights if v.name == name)


def test_dense_unit_gradient_is_sum_of_its_inputs(demo_model, demo_val):
    x = demo_val[0][:64]
    grads = unit_weight_gradients(demo_model, "dense_1", 3, x, batch_size=16)
    assert set(grads) == {
        f"{n}/{w}" for n in ("conv2d", "conv2d_1", "dense", "dense_1") for w in ("kernel", "bias")
    }
    inputs = keras.Model(demo_model.inputs, demo_model.get_layer("dense").output).predict(
        x, verbose=0
    )
    k = grads["dense_1/kernel"]
    np.testing.assert_allclose(k[:, 3], inputs.sum(0), rtol=1e-4, atol=1e-3)
    assert not np.delete(k, 3, axis=1).any()  # other units' columns do not affect unit 3
    np.testing.assert_array_equal(grads["dense_1/bias"], np.eye(10)[3] * 64)
    assert np.abs(grads["conv2d/kernel"]).sum() > 0  # upstream weights do
    below = unit_weight_gradients(demo_model, "dense", 7, x[:8])
    assert not below["dense_1/kernel"].any() and not below["dense_1/bias"].any()


def test_conv_unit_gradient_is_sum_of_patches():
    model = keras.Sequential([keras.Input((6, 6, 1)), L.Conv2D(2, 3, name="c")])
    x = np.random.default_rng(0).standard_normal((5, 6, 6, 1)).astype("float32")
    g = unit_weight_gradients(model, "c", 1, x)
    assert g["c/bias"].tolist() == [0.0, 5 * 16]  # one per sample and output position
    patches = np.array([[x[:, a : a + 4, b : b + 4, 0].sum() for b in range(3)] for a in range(3)])
    np.testing.assert_allclose(g["c/kernel"][:, :, 0, 1], patches, rtol=1e-5, atol=1e-4)
    assert not g["c/kernel"][..., 0].any()


def test_saliency_of_linear_unit_is_its_weights(demo_model, demo_val):
    model = keras.Sequential([keras.Input((6,)), L.Dense(3, name="d")])
    x = np.random.default_rng(1).standard_normal((4, 6)).astype("float32")
    s = saliency(model, "d", 1, x)
    assert s.shape == x.shape
    np.testing.assert_allclose(
        s, np.tile(_w(model.get_layer("d"), "kernel")[:, 1], (4, 1)), rtol=1e-6
    )
    img = saliency(demo_model, "dense_1", 2, demo_val[0][:3], batch_size=2)
    assert img.shape == (3, 28, 28, 1) and np.abs(img).max() > 0


def _tiny():
    f = "float64"
    x = keras.Input((5, 5, 2), dtype=f)
    h = L.Conv2D(3, 3, padding="same", activation="tanh", name="c", dtype=f)(x)
    h = L.Flatten(dtype=f)(h)
    h = L.Dense(4, activation="tanh", name="h", dtype=f)(h)
    model = keras.Model(x, L.Dense(3, name="out", dtype=f)(h))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(2)
    return model, rng.standard_normal((6, 5, 5, 2)), rng.integers(0, 3, 6)


def _per_sample_objective(model, x, y, layer, unit, s):
    """Per-sample loss (or output sum) with one unit's output scaled by s."""
    fg = flatten(model)

    def hook(call, values):
        call.run(values)
        if call.path == layer:
            out = values[call.outputs[0]]
            scale = np.ones(out.shape[-1])
            scale[unit] = s
            values[call.outputs[0]] = out * scale
        return True

    out = keras.ops.convert_to_numpy(
        fg.run([keras.ops.convert_to_tensor(x)], hook=hook)[fg.outputs[0]]
    )
    if y is None:
        return out.reshape(len(x), -1).sum(1)
    return keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(y, out, from_logits=True)
    )


@pytest.mark.parametrize("with_labels", [True, False])
def test_taylor_one_tape_equals_per_unit_finite_differences(with_labels):
    model, x, y = _tiny()
    labels = y if with_labels else None
    tr = trace(flatten(model))
    scores = taylor_importance(model, tr, x, labels, batch_size=4)
    assert set(scores) == {"c", "h", "out"}
    eps = 1e-5
    for layer, positions in (("c", 25), ("h", 1), ("out", 1)):
        want = []
        for unit in range(len(scores[layer])):
            up = _per_sample_objective(model, x, labels, layer, unit, 1 + eps)
            down = _per_sample_objective(model, x, labels, layer, unit, 1 - eps)
            want.append(np.abs((up - down) / (2 * eps)).mean() / positions)  # |mean_pos a*dL/da|
        np.testing.assert_allclose(scores[layer], want, rtol=1e-4, atol=1e-9)


def test_taylor_compiled_pass_equals_closed_form():
    """Dense(relu) -> Dense, L = sum of outputs: dL/dh = the head's kernel rows summed,
    dL/dout = 1, so Taylor is mean |h * v| and mean |out| (numpy, no tape)."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((5,)), L.Dense(4, activation="relu", name="h"), L.Dense(3, name="out")]
    )
    x = np.random.default_rng(2).standard_normal((11, 5)).astype("float32")  # 3 batches of 4
    (k, b), (v, c) = model.get_layer("h").get_weights(), model.get_layer("out").get_weights()
    h = np.maximum(x @ k + b, 0.0)
    scores = taylor_importance(model, trace(flatten(model)), x, batch_size=4)
    np.testing.assert_allclose(scores["h"], np.abs(h * v.sum(1)).mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores["out"], np.abs(h @ v + c).mean(0), rtol=1e-5, atol=1e-7)


def test_taylor_is_batch_size_independent(demo_model, demo_val):
    x, y = demo_val[0][:40], demo_val[1][:40]
    tr = trace(flatten(demo_model))
    a = taylor_importance(demo_model, tr, x, y, batch_size=40)
    b = taylor_importance(demo_model, tr, x, y, batch_size=7)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-9)
    assert (a["dense"] >= 0).all() and a["dense"].max() > 0


def test_top_inputs_and_upstream_units(demo_model):
    tr = trace(flatten(demo_model))
    k = _w(demo_model.get_layer("dense"), "kernel")[:, 5]
    top = unit_top_inputs(tr, "dense", 5, k=4)
    assert [i for i, _ in top] == np.argsort(-np.abs(k))[:4].tolist()
    np.testing.assert_allclose([w for _, w in top], k[[i for i, _ in top]], rtol=1e-6)
    c = _w(demo_model.get_layer("conv2d_1"), "kernel")[..., 3]  # (5, 5, 32)
    norms = np.linalg.norm(c.reshape(-1, 32), axis=0)
    top = unit_top_inputs(tr, "conv2d_1", 3, k=32)
    assert sorted(i for i, _ in top) == list(range(32))
    np.testing.assert_allclose(dict(top)[int(norms.argmax())], norms.max(), rtol=1e-5)
    assert upstream_unit(tr, "dense", 130) == ("conv2d_1", 130 % 64)  # through Flatten
    assert upstream_unit(tr, "conv2d_1", 7) == ("conv2d", 7)
    assert upstream_unit(tr, "conv2d", 0) is None  # the model input belongs to no layer


def test_bad_requests_are_one_line_errors(demo_model, demo_val):
    x = demo_val[0][:2]
    with pytest.raises(NeuronvizError, match="Did you mean 'dense'") as e:
        unit_weight_gradients(demo_model, "dens", 0, x)
    assert "\n" not in str(e.value)
    with pytest.raises(NeuronvizError, match=r"Expected `unit` in \[0, 10\)"):
        saliency(demo_model, "dense_1", 10, x)
    bare = keras.Sequential([keras.Input((3,)), L.Dense(2, name="d")])
    with pytest.raises(NeuronvizError, match="compiled model"):
        taylor_importance(bare, trace(flatten(bare)), np.ones((2, 3), "float32"), np.zeros(2))
    with pytest.raises(NeuronvizError, match="creates units"):
        unit_top_inputs(trace(flatten(demo_model)), "max_pooling2d", 0)


def test_nested_layers_by_alias_and_reused_trace():
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3, name="d")], name="inner")
    a = keras.Input((4,))
    model = keras.Model(a, L.Dense(2, name="out")(inner(a)))
    tr = trace(flatten(model))
    x = np.random.default_rng(3).standard_normal((5, 4)).astype("float32")
    g = unit_weight_gradients(model, "d", 2, x, trace=tr)  # 'd' is short for 'inner/d'
    np.testing.assert_allclose(g["inner/d/kernel"][:, 2], x.sum(0), rtol=1e-5)
    assert g["inner/d/bias"].tolist() == [0.0, 0.0, 5.0] and not g["out/kernel"].any()
    s = saliency(model, "inner/d", 0, x, trace=tr)
    np.testing.assert_allclose(
        s[0], _w(model.get_layer("inner").get_layer("d"), "kernel")[:, 0], rtol=1e-6
    )


def test_top_inputs_of_grouped_conv_point_into_its_group():
    x = keras.Input((5, 5, 4))
    model = keras.Model(x, L.Conv2D(4, 3, groups=2, name="g")(x))  # units 2, 3 read channels 2, 3
    k = _w(model.get_layer("g"), "kernel")  # (3, 3, 2, 4)
    top = unit_top_inputs(trace(flatten(model)), "g", 3)
    assert sorted(i for i, _ in top) == [2, 3]
    np.testing.assert_allclose(dict(top)[2], np.linalg.norm(k[:, :, 0, 3]), rtol=1e-6)


def _attention_model():
    x = keras.Input((5, 8))
    h = L.Dense(8, activation="tanh", name="d")(x)
    model = keras.Model(x, L.MultiHeadAttention(2, 4, name="mha")(h, h))
    return model, np.random.default_rng(4).standard_normal((3, 5, 8)).astype("float32")


def _head_norm_by_hand(model, x, head):
    """Sum over samples of head `head`'s output norm, computed from the raw weights with
    plain TensorFlow (softmax(q k^T / sqrt(d)) v, before the output projection)."""
    import tensorflow as tf

    d, mha = model.get_layer("d"), model.get_layer("mha")
    h = tf.tanh(x @ _w(d, "kernel") + _w(d, "bias"))
    q, k, v = (
        tf.einsum("btd,dhk->bthk", h, sub.kernel.value) + sub.bias.value
        for sub in (mha._query_dense, mha._key_dense, mha._value_dense)
    )
    p = tf.nn.softmax(tf.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(4.0), axis=-1)
    o = tf.einsum("bhqs,bshk->bqhk", p, v)[:, :, head]
    return tf.reduce_sum(tf.sqrt(tf.reduce_sum(o * o, axis=(1, 2))))


def test_head_saliency_is_the_gradient_of_its_output_norm():
    import tensorflow as tf

    model, x = _attention_model()
    tx = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tx)
        norm = _head_norm_by_hand(model, tx, 1)
        channel = tf.reduce_sum(model(tx)[..., 1])  # output channel 1, not head 1
    want, channel_grad = tape.gradient(norm, tx).numpy(), tape.gradient(channel, tx).numpy()
    want_wq = tape.gradient(norm, model.get_layer("mha")._query_dense.kernel.value).numpy()
    got = saliency(model, "mha", 1, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert np.abs(got - channel_grad).max() > 10 * np.abs(got).max() * 1e-3
    with pytest.raises(NeuronvizError, match=r"\[0, 2\) for layer 'mha' \(its heads\)"):
        saliency(model, "mha", 2, x)

    # the weight gradients of head 1: none of the output projection or of head 0's columns
    g = unit_weight_gradients(model, "mha", 1, x, trace=trace(flatten(model)))
    assert not g["mha/attention_output/kernel"].any() and not g["mha/query/kernel"][:, 0].any()
    np.testing.assert_allclose(g["mha/query/kernel"], want_wq, rtol=1e-4, atol=1e-6)
    assert np.abs(want_wq[:, 1]).sum() > 0 and np.abs(g["d/kernel"]).sum() > 0

    # a silent head (its value weights zeroed) has a zero saliency, not NaN
    silent = keras.models.clone_model(model)
    silent.set_weights(model.get_weights())
    value = silent.get_layer("mha")._value_dense
    value.kernel.assign(np.zeros(value.kernel.shape, "float32"))
    value.bias.assign(np.zeros(value.bias.shape, "float32"))
    assert not saliency(silent, "mha", 1, x).any()

    # its strongest inputs: the query channels by the norm of the head's query weights
    wq = model.get_layer("mha")._query_dense.kernel.numpy()[:, 1]  # (8, 4)
    top = unit_top_inputs(trace(flatten(model)), "mha", 1, k=3)
    want_top = np.argsort(-np.linalg.norm(wq, axis=1), kind="stable")[:3]
    assert [i for i, _ in top] == want_top.tolist()
    np.testing.assert_allclose([w for _, w in top], np.linalg.norm(wq[want_top], axis=1), rtol=1e-6)
