"""Unstructured magnitude pruning: which weights go, masks that hold through training,
and export with file sizes."""

import keras
import numpy as np
import pytest

from neuronviz.backend.model.export import export_tflite, file_size, model_file_size, tflite_bytes
from neuronviz.backend.recovery.sparsity import (
    MagnitudeProfile,
    apply_masks,
    masks_from_zeros,
    prunable_kernels,
    sparsify,
)
from neuronviz.errors import NeuronvizError


def small_model(seed=0):
    """A tiny MLP with BatchNorm (whose weights must never be zeroed)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((12,))
    h = keras.layers.Dense(24, activation="relu", name="hidden")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    out = keras.layers.Dense(3, name="logits")(h)
    return keras.Model(inp, out)


def toy_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12)).astype("float32")
    y = (x[:, :3].argmax(axis=1)).astype("int64")
    return x, y


def weights_by_name(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def test_layer_scope_zeroes_the_smallest_fraction_of_each_kernel(demo_model):
    before = weights_by_name(demo_model)
    result = sparsify(demo_model, 0.8, scope="layer")
    assert result.model is not demo_model
    assert weights_by_name(demo_model).keys() == before.keys()
    for k, w in weights_by_name(demo_model).items():  # the input model is untouched
        np.testing.assert_array_equal(w, before[k])
    kernels = prunable_kernels(result.model)
    assert (
        set(result.masks)
        == set(kernels)
        == {"conv2d/kernel", "conv2d_1/kernel", "dense/kernel", "dense_1/kernel"}
    )
    for name, keep in result.masks.items():
        original = np.abs(demo_model.get_layer(name.split("/")[0]).kernel.numpy())
        new = kernels[name].numpy()
        assert keep.dtype == bool and keep.shape == original.shape
        assert int((~keep).sum()) == round(0.8 * keep.size)
        assert np.all(new[~keep] == 0) and np.array_equal(
            new[keep], demo_model.get_layer(name.split("/")[0]).kernel.numpy()[keep]
        )
        assert original[~keep].max() <= original[keep].min()  # the smallest magnitudes went
        assert result.layer_sparsity[name.split("/")[0]] == pytest.approx(0.8, abs=1e-3)
    for layer in ("conv2d", "dense"):  # biases are kept
        np.testing.assert_array_equal(
            result.model.get_layer(layer).bias.numpy(), demo_model.get_layer(layer).bias.numpy()
        )
    assert result.sparsity == pytest.approx(0.8, abs=1e-4)
    assert 0.75 < result.model_sparsity < result.sparsity  # biases count in the overall figure


def test_global_scope_uses_one_threshold_across_kernels(demo_model):
    result = sparsify(demo_model, 0.8, scope="global")
    zeroed = np.concatenate(
        [
            np.abs(demo_model.get_layer(n.split("/")[0]).kernel.numpy())[~m]
            for n, m in result.masks.items()
        ]
    )
    kept = np.concatenate(
        [
            np.abs(demo_model.get_layer(n.split("/")[0]).kernel.numpy())[m]
            for n, m in result.masks.items()
        ]
    )
    assert zeroed.max() <= kept.min()
    assert result.sparsity == pytest.approx(0.8, abs=1e-6)
    spread = list(result.layer_sparsity.values())
    assert max(spread) - min(spread) > 0.2  # the big Dense kernel gives up more than the first conv
    profile = MagnitudeProfile(demo_model)
    predicted = profile.sparsity(0.8, "global")
    for name, frac in predicted.items():
        assert frac == pytest.approx(result.layer_sparsity[name.split("/")[0]], abs=1e-3)
    assert profile.threshold(0.8) == pytest.approx(zeroed.max())


def test_layers_restrict_what_is_touched(demo_model):
    result = sparsify(demo_model, 0.5, layers=["dense"])
    assert list(result.masks) == ["dense/kernel"]
    for layer in ("conv2d", "conv2d_1", "dense_1"):
        np.testing.assert_array_equal(
            result.model.get_layer(layer).kernel.numpy(), demo_model.get_layer(layer).kernel.numpy()
        )
    assert result.layer_sparsity == {"dense": pytest.approx(0.5, abs=1e-6)}


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"amount": 1.0}, "amount` in [0, 1)"),
        ({"amount": -0.1}, "amount` in [0, 1)"),
        ({"amount": float("nan")}, "amount` in [0, 1)"),
        ({"amount": 0.5, "scope": "model"}, "'layer' or 'global'"),
        ({"amount": 0.5, "layers": ["dens"]}, "Did you mean 'dense'"),
        ({"amount": 0.5, "layers": ["max_pooling2d"]}, "layer with a kernel"),
    ],
)
def test_refusals_are_one_line(demo_model, kwargs, needle):
    with pytest.raises(NeuronvizError) as e:
        sparsify(demo_model, **kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_amount_zero_changes_nothing(demo_model):
    result = sparsify(demo_model, 0.0)
    assert result.sparsity == 0.0 and all(m.all() for m in result.masks.values())


def test_profile_threshold_grows_with_amount(demo_model):
    profile = MagnitudeProfile(demo_model)
    values = [profile.threshold(a, "layer", "dense/kernel") for a in (0.0, 0.2, 0.5, 0.9)]
    assert values[0] == 0.0 and values == sorted(values) and len(set(values)) == 4


# ---- masks hold through training -------------------------------------------------------


def _train_steps(model, optimizer, steps, x, y, batch=32):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    for s in range(steps):
        lo = (s * batch) % (len(x) - batch)
        model.train_on_batch(x[lo : lo + batch], y[lo : lo + batch])


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        lambda: keras.optimizers.Adam(learning_rate=0.01),
    ],
    ids=["sgd-momentum", "adam"],
)
def test_masked_weights_stay_exactly_zero_through_many_momentum_steps(make_optimizer):
    x, y = toy_data()
    model = small_model()
    optimizer = make_optimizer()
    _train_steps(model, optimizer, 10, x, y)  # momentum / Adam moments are now non-zero
    result_masks = sparsify(model, 0.7).masks
    apply_masks(model, result_masks)
    start = {n: v.numpy().copy() for n, v in prunable_kernels(model).items()}
    for _ in range(6):  # 60 steps, checked along the way
        for s in range(10):
            model.train_on_batch(x[s * 16 : s * 16 + 32], y[s * 16 : s * 16 + 32])
        for name, var in prunable_kernels(model).items():
            w = var.numpy()
            assert np.all(w[~result_masks[name]] == 0.0), name
            assert not np.any(np.signbit(w[~result_masks[name]]))  # +0.0, not -0.0
    for name, var in prunable_kernels(model).items():  # training really happened
        assert not np.allclose(var.numpy()[result_masks[name]], start[name][result_masks[name]])
    bn = model.get_layer("bn")
    assert np.count_nonzero(bn.gamma.numpy()) == bn.gamma.shape[0]


def test_zeroing_once_is_undone_by_momentum():
    """The control for the test above: without the constraint the zeros come back."""
    x, y = toy_data()
    model = small_model()
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    _train_steps(model, optimizer, 10, x, y)
    masks = sparsify(model, 0.7).masks
    for name, var in prunable_kernels(model).items():
        var.assign(np.where(masks[name], var.numpy(), 0))  # multiply by the mask once
    for s in range(50):
        model.train_on_batch(
            x[(s % 7) * 32 : (s % 7) * 32 + 32], y[(s % 7) * 32 : (s % 7) * 32 + 32]
        )
    w = prunable_kernels(model)["hidden/kernel"].numpy()
    assert np.count_nonzero(w[~masks["hidden/kernel"]]) > 0.9 * (~masks["hidden/kernel"]).sum()


def test_masks_hold_inside_model_fit_with_several_steps_per_execution():
    x, y = toy_data(512)
    model = small_model()
    masks = sparsify(model, 0.5, scope="global").masks
    apply_masks(model, masks)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=4,
        jit_compile=False,
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 64 steps, 4 per compiled call
    for name, var in prunable_kernels(model).items():
        assert np.all(var.numpy()[~masks[name]] == 0)


def test_apply_masks_refuses_mismatched_masks():
    model = small_model()
    with pytest.raises(NeuronvizError, match="Did you mean 'hidden/kernel'"):
        apply_masks(model, {"hiden/kernel": np.ones((12, 24), bool)})
    with pytest.raises(NeuronvizError, match=r"shape \(12, 24\)"):
        apply_masks(model, {"hidden/kernel": np.ones((24, 12), bool)})


def test_masks_from_zeros_round_trip(tmp_path):
    model = small_model()
    result = sparsify(model, 0.6)
    path = tmp_path / "sparse.keras"
    result.model.save(path)
    again = keras.saving.load_model(path)
    restored = masks_from_zeros(again)
    for name, keep in result.masks.items():
        np.testing.assert_array_equal(restored[name], keep)
    assert all(v.constraint is None for v in prunable_kernels(again).values())


# ---- export --------------------------------------------------------------------------


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((64,))
    h = keras.layers.Dense(256, activation="relu", name="wide")(inp)
    return keras.Model(inp, keras.layers.Dense(10, name="head")(h))


def test_sparse_file_compresses_better_and_tflite_matches_keras(tmp_path):
    import tensorflow as tf

    model = mlp()
    result = sparsify(model, 0.8)
    dense_size, sparse_size = model_file_size(model), model_file_size(result.model)
    assert sparse_size.raw == pytest.approx(dense_size.raw, rel=0.01)  # same shapes, same raw bytes
    assert sparse_size.gzip < 0.45 * dense_size.gzip
    path = export_tflite(result.model, tmp_path / "sparse.tflite")
    assert file_size(path).raw == path.stat().st_size > 4 * (64 * 256 + 256 * 10)
    interp = tf.lite.Interpreter(model_path=str(path))
    interp.allocate_tensors()
    x = np.random.default_rng(0).standard_normal((1, 64)).astype("float32")
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, result.model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    assert len(tflite_bytes(result.model, sparse_encoding=True)) < 0.6 * path.stat().st_size


class QrLayer(keras.layers.Layer):
    """QR decomposition: a TensorFlow op with no TFLite builtin kernel."""

    def call(self, x):
        return keras.ops.qr(x)[0]


def test_tflite_failures_are_one_line_errors(tmp_path):
    inp = keras.Input((4, 4))
    model = keras.Model(inp, QrLayer()(inp))
    with pytest.raises(NeuronvizError) as e:
        export_tflite(model, tmp_path / "qr.tflite")
    assert (
        "TFLite converter" in str(e.value) and "(Qr)" in str(e.value) and "\n" not in str(e.value)
    )
    assert not (tmp_path / "qr.tflite").exists()
    with pytest.raises(NeuronvizError, match="ending in .tflite"):
        export_tflite(small_model(), tmp_path / "model.keras")
