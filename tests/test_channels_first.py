"""channels_first everywhere: the channel axis is wherever a layer says it is.

Outputs are compared with an oracle that shares no code with neuronviz (the model
built again with `x * mask` at the tensor whose channels go, see surgeon_oracle.py),
and with neuronviz's own masked model, preview, statistics and counts.
"""

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from surgeon_oracle import Tap, build_pair, check_against_oracle, inputs, randomize

import neuronviz.api as nv
from neuronviz.backend.analysis.gradients import unit_weight_gradients
from neuronviz.backend.analysis.stats import activation_stats
from neuronviz.backend.model.data import Dataset
from neuronviz.backend.scoring.preview import Previewer
from neuronviz.errors import NeuronvizError

L = keras.layers
CF = "channels_first"


# ---- every layer family with a data_format, against the oracle ------------------------------
def _conv_then(make_source, spatial, cin=3, tap_axis=1, mid=None):
    """Input -> source layer (named 'src') -> [mid] -> tap -> Conv(cf) 'next' -> GAP -> Dense."""
    conv = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[len(spatial)]
    gap = {1: L.GlobalAveragePooling1D, 2: L.GlobalAveragePooling2D, 3: L.GlobalAveragePooling3D}

    def build(tap):
        x = keras.Input((cin, *spatial))
        h = make_source()(x)
        if mid is not None:
            h = mid()(h)
        h = tap("src", h, tap_axis)
        h = conv(4, 1, data_format=CF, name="next")(h)
        h = gap[len(spatial)](data_format=CF)(h)
        return keras.Model(x, L.Dense(3, name="out")(h))

    return build


SOURCES = {
    "conv1d": (lambda: L.Conv1D(5, 3, data_format=CF, name="src"), (9,)),
    "conv2d": (lambda: L.Conv2D(5, 3, data_format=CF, name="src"), (7, 6)),
    "conv3d": (lambda: L.Conv3D(5, 2, data_format=CF, name="src"), (4, 5, 3)),
    "conv1d_transpose": (lambda: L.Conv1DTranspose(5, 3, data_format=CF, name="src"), (6,)),
    "conv2d_transpose": (
        lambda: L.Conv2DTranspose(5, 3, strides=2, data_format=CF, name="src"),
        (4, 5),
    ),
    "conv3d_transpose": (lambda: L.Conv3DTranspose(5, 2, data_format=CF, name="src"), (3, 4, 3)),
    "separable1d": (lambda: L.SeparableConv1D(5, 3, data_format=CF, name="src"), (9,)),
    "separable2d": (
        lambda: L.SeparableConv2D(5, 3, depth_multiplier=2, data_format=CF, name="src"),
        (7, 6),
    ),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_unit_creating_layers(name):
    make, spatial = SOURCES[name]
    check_against_oracle(_conv_then(make, spatial), {"src": [1, 3]}, {"src": [1, 3]})


@pytest.mark.parametrize("rank", [1, 2])
def test_depthwise_channels_follow_their_input(rank):
    """A depthwise conv (multiplier 2) after a conv: input channel c becomes 2c, 2c+1."""
    conv = {1: L.Conv1D, 2: L.Conv2D}[rank]
    depthwise = {1: L.DepthwiseConv1D, 2: L.DepthwiseConv2D}[rank]
    spatial = (9,) if rank == 1 else (7, 6)

    def build(tap):
        x = keras.Input((3, *spatial))
        h = conv(4, 1, data_format=CF, name="first")(x)
        h = depthwise(3, depth_multiplier=2, data_format=CF, name="dw")(h)
        h = tap("dw", h, 1)
        h = L.Flatten()(h)
        return keras.Model(x, L.Dense(3, name="out")(h))

    _, pruned = check_against_oracle(build, {"first": [2]}, {"dw": [4, 5]})
    assert pruned.get_layer("dw").get_weights()[0].shape[-2] == 3


def test_batchnorm_axis_1_and_prelu():
    def build(tap):
        x = keras.Input((3, 8, 7))
        h = L.Conv2D(6, 3, data_format=CF, name="src")(x)
        h = L.BatchNormalization(axis=1, name="bn")(h)
        h = L.PReLU(shared_axes=[2, 3], name="prelu")(h)
        h = tap("src", h, 1)
        h = L.MaxPooling2D(2, data_format=CF)(h)
        h = L.Flatten()(h)
        return keras.Model(x, L.Dense(3, name="out")(h))

    model, pruned = check_against_oracle(build, {"bn": [0, 4]}, {"src": [0, 4]})
    keep = [1, 2, 3, 5]
    bn_pruned = pruned.get_layer("bn").get_weights()
    for a, b in zip(model.get_layer("bn").get_weights(), bn_pruned, strict=True):
        np.testing.assert_array_equal(a[keep], b)
    alpha = model.get_layer("prelu").get_weights()[0]
    np.testing.assert_array_equal(pruned.get_layer("prelu").get_weights()[0], alpha[keep])


def _normalised(layer):
    """conv(cf) -> `layer` over axis 1 -> conv: pruned must equal masked (kept channels only)."""
    x = keras.Input((3, 6, 5))
    h = L.Conv2D(6, 3, data_format=CF, name="src")(x)
    h = layer()(h)
    h = L.Conv2D(4, 1, data_format=CF, name="next")(h)
    return keras.Model(x, L.Flatten()(h))


@pytest.mark.parametrize(
    "make",
    [
        lambda: L.LayerNormalization(axis=1, name="norm"),
        lambda: L.Softmax(axis=1, name="norm"),
        lambda: L.UnitNormalization(axis=1, name="norm"),
    ],
    ids=["layernorm", "softmax", "unitnorm"],
)
def test_normalising_over_axis_1_is_exact_on_kept_channels(make):
    model = _normalised(make)
    randomize(model)
    x = inputs(model)
    tr = nv.analyze(model)
    assert tr.group_of("src") == tr.group_of("norm")
    plan = nv.Plan({"src": [1, 4]})
    pruned = nv.prune(model, plan, tr).model
    # the oracle: the same layers applied to the kept channels only (numpy slicing)
    h = keras.Model(model.inputs, model.get_layer("src").output).predict(x, verbose=0)
    kept = h[:, [0, 2, 3, 5]]
    norm = type(model.get_layer("norm")).from_config(
        {**model.get_layer("norm").get_config(), "name": "n2"}
    )
    norm.build(kept.shape)
    if norm.weights:
        norm.set_weights([w[[0, 2, 3, 5]] for w in model.get_layer("norm").get_weights()])
    nxt = model.get_layer("next")
    k, b = nxt.get_weights()
    y = np.einsum("bchw,cf->bfhw", keras.ops.convert_to_numpy(norm(kept)), k[0, 0, [0, 2, 3, 5]])
    want = (y + b[None, :, None, None]).reshape(len(x), -1)
    assert_same_outputs(want, pruned.predict(x, verbose=0))
    assert_same_outputs(want, nv.masked_predict(model, plan, x, tr=tr))


# ---- Probe layers: Reshape and Permute move positions -------------------------------------
def test_reshape_keeping_the_channel_axis():
    """(C, H, W) -> (C, H*W) -> Conv1D(cf): channels stay on axis 1."""

    def build(tap):
        x = keras.Input((3, 5, 4))
        h = L.Conv2D(6, 3, padding="same", data_format=CF, name="src")(x)
        h = tap("src", h, 1)
        h = L.Reshape((-1, 20), name="reshape")(h)
        h = L.Conv1D(4, 3, data_format=CF, name="next")(h)
        return keras.Model(x, L.Flatten()(h))

    _, pruned = check_against_oracle(build, {"src": [0, 5]}, {"src": [0, 5]})
    assert tuple(pruned.get_layer("reshape").output.shape) == (None, 4, 20)


@pytest.mark.parametrize("dims", [(2, 3, 1), (2, 1, 3), (3, 1, 2)])
def test_permute_moves_the_channel_axis(dims):
    """channels_first -> Permute -> Flatten -> Dense: each position keeps one channel."""

    def build(tap):
        x = keras.Input((3, 5, 4))
        h = L.Conv2D(6, 3, padding="same", data_format=CF, name="src")(x)
        h = tap("src", h, 1)
        h = L.Permute(dims, name="permute")(h)
        h = L.Flatten()(h)
        return keras.Model(x, L.Dense(3, name="out")(h))

    check_against_oracle(build, {"src": [2]}, {"src": [2]})


def test_permute_from_channels_last_into_a_channels_first_conv():
    def build(tap):
        x = keras.Input((5, 4, 3))
        h = L.Conv2D(6, 3, padding="same", name="src")(x)
        h = tap("src", h, -1)
        h = L.Permute((3, 1, 2))(h)
        h = L.Conv2D(4, 3, data_format=CF, name="next")(h)
        return keras.Model(x, L.Flatten()(h))

    check_against_oracle(build, {"src": [1, 2]}, {"src": [1, 2]})


# ---- refusals name the layer and the true reason ---------------------------------------------
def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_a_layer_mixing_the_channel_axis_is_named():
    x = keras.Input((3, 6, 6))
    h = L.Conv2D(6, 3, data_format=CF, name="conv_1")(x)
    model = keras.Model(x, L.Dense(2, name="dense")(h))  # Dense acts on the last axis (width)
    with pytest.raises(NeuronvizError) as e:
        nv.prune(model, nv.Plan({"conv_1": [0]}))
    msg = _one_line(e)
    assert "Cannot remove units of layer 'conv_1'" in msg
    assert "layer 'dense' (Dense) reads channels on axis 3" in msg and "along axis 1" in msg


def test_layers_without_units_are_named_not_unknown():
    class Custom(keras.layers.Layer):  # captured as its inner ops
        def call(self, x):
            return x * 2.0

    class Branchy(keras.layers.Layer):  # a raw TensorFlow op: cannot be captured, opaque
        def call(self, x):
            import tensorflow as tf

            return tf.math.abs(x)

    x = keras.Input((3, 6, 6))
    h = L.Conv2D(6, 3, data_format=CF, name="conv_0")(x)
    h = Custom(name="conv_1")(h)
    h = L.Conv2D(6, 3, data_format=CF, name="conv_2")(h)
    h = Branchy(name="conv_3")(h)
    h = L.Flatten(name="flat")(h)
    model = keras.Model(x, L.Dense(2, name="dense")(h))
    tr = nv.analyze(model)
    with pytest.raises(NeuronvizError) as e:
        tr.select(nv.Plan({"conv_1": [0]}))
    msg = _one_line(e)
    assert "unknown" not in msg
    assert "'conv_1' (Custom), a model or custom layer made of other layers" in msg
    with pytest.raises(NeuronvizError) as e:
        tr.select(nv.Plan({"conv_3": [0]}))
    msg = _one_line(e)
    assert "unknown" not in msg
    assert "layer 'conv_3' (Branchy), which neuronviz cannot map unit indices through" in msg
    with pytest.raises(NeuronvizError) as e:
        tr.select(nv.Plan({"conv_2": [0]}))
    assert "'conv_3' (Branchy)" in _one_line(e)
    with pytest.raises(NeuronvizError) as e:
        tr.select(nv.Plan({"flat": [0]}))
    assert "unknown" not in _one_line(e) and "(Flatten)" in _one_line(e)
    with pytest.raises(NeuronvizError, match="unknown layer 'nope'"):
        tr.select(nv.Plan({"nope": [0]}))


# ---- preview, statistics, gradients and counts follow the axis -------------------------------
def _small_cnn(fmt):
    def build(tap):
        shape = (3, 8, 8) if fmt == CF else (8, 8, 3)
        x = keras.Input(shape)
        h = L.Conv2D(6, 3, padding="same", data_format=fmt, activation="relu", name="c1")(x)
        h = L.BatchNormalization(axis=1 if fmt == CF else -1, name="bn")(h)
        h = L.MaxPooling2D(2, data_format=fmt)(h)
        h = L.Conv2D(5, 3, data_format=fmt, name="c2")(h)
        h = L.GlobalAveragePooling2D(data_format=fmt)(h)
        return keras.Model(x, L.Dense(4, activation="softmax", name="head")(h))

    model, _ = build_pair(build, {})
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_preview_scores_what_the_pruned_model_scores():
    model = _small_cnn(CF)
    tr = nv.analyze(model)
    x = np.random.default_rng(3).normal(size=(64, 3, 8, 8)).astype("float32")
    y = np.random.default_rng(4).integers(0, 4, 64)
    pv = Previewer(model, tr, Dataset(x, y, 4), batch_size=16)
    pv.slice_min_macs = 0  # also run the sliced-layer path
    plan = nv.Plan({"c1": [0, 3], "c2": [1]})
    pruned = nv.prune(model, plan, tr).model
    out = pruned.predict(x, verbose=0)
    assert_same_outputs(pv.predict(plan), out)
    s = pv.score(plan)
    assert s.accuracy == pytest.approx(np.mean(np.argmax(out, 1) == y), abs=1e-6)


def test_statistics_reduce_per_channel_on_axis_1():
    model = _small_cnn(CF)
    tr = nv.analyze(model)
    x = np.random.default_rng(3).normal(size=(20, 3, 8, 8)).astype("float32")
    stats = activation_stats(model, tr, x, batch_size=8, layers=["c1", "c2"])
    for name in ("c1", "c2"):
        a = keras.Model(model.inputs, model.get_layer(name).output).predict(x, verbose=0)
        np.testing.assert_allclose(stats[name].mean, a.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stats[name].max, a.max(axis=(0, 2, 3)), rtol=1e-5)
        np.testing.assert_allclose(
            stats[name].per_sample, a.mean(axis=(2, 3)), rtol=1e-4, atol=1e-5
        )
        assert stats[name].positions == a.shape[2] * a.shape[3]


def test_unit_gradient_touches_one_filter():
    model = _small_cnn(CF)
    tr = nv.analyze(model)
    x = np.random.default_rng(3).normal(size=(4, 3, 8, 8)).astype("float32")
    grads = unit_weight_gradients(model, "c1", 2, x, trace=tr)
    g = grads["c1/kernel"]
    assert np.abs(g[..., 2]).sum() > 0
    assert np.abs(np.delete(g, 2, axis=-1)).sum() == 0


def test_counts_equal_in_both_formats():
    first, last = nv.counts(_small_cnn(CF)), nv.counts(_small_cnn("channels_last"))
    assert first.params == last.params and first.macs == last.macs > 0
    plan = nv.Plan({"c1": [1, 2]})
    a, b = nv.prune(_small_cnn(CF), plan), nv.prune(_small_cnn("channels_last"), plan)
    assert a.after.macs == b.after.macs < a.before.macs


def test_keras_bias_add_workaround():
    """Keras's ops.add(x, b) adds a (1, C, 1, 1) bias on the last axis when W == C."""
    x = np.arange(2 * 3 * 4 * 3, dtype="float32").reshape(2, 3, 4, 3)
    b = np.array([10.0, 20.0, 30.0], "float32").reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.ops.add(x, b)), x + b)
    v = np.array([1.0, 2.0, 3.0], "float32")  # a plain vector still broadcasts on the last axis
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.ops.add(x, v)), x + v)


# ---- property: random channels_first CNNs, pruned == masked ---------------------------------
@st.composite
def cnn_specs(draw):
    return {
        "rank": draw(st.sampled_from([1, 2])),
        "widths": draw(st.lists(st.integers(2, 5), min_size=1, max_size=3)),
        "bn": draw(st.booleans()),
        "residual": draw(st.booleans()),
        "concat": draw(st.booleans()),
        "pool": draw(st.sampled_from(["max", "avg", "none"])),
        "head": draw(st.sampled_from(["flatten", "gap", "permute"])),
    }


def _random_cnn(spec):
    rank = spec["rank"]
    conv = {1: L.Conv1D, 2: L.Conv2D}[rank]
    pool = {
        ("max", 1): L.MaxPooling1D,
        ("max", 2): L.MaxPooling2D,
        ("avg", 1): L.AveragePooling1D,
        ("avg", 2): L.AveragePooling2D,
    }
    spatial = (8,) * rank
    x = keras.Input((2, *spatial))
    h = x
    for i, w in enumerate(spec["widths"]):
        h = conv(w, 3, padding="same", data_format=CF, activation="relu", name=f"c{i}")(h)
        if spec["bn"]:
            h = L.BatchNormalization(axis=1, name=f"bn{i}")(h)
        if spec["residual"]:
            r = conv(w, 1, data_format=CF, name=f"r{i}")(h)
            h = L.Add()([h, r])
        if spec["concat"]:
            s = conv(2, 1, data_format=CF, name=f"s{i}")(h)
            h = L.Concatenate(axis=1)([h, s])
    if spec["pool"] != "none":
        h = pool[(spec["pool"], rank)](2, data_format=CF)(h)
    if spec["head"] == "gap":
        h = {1: L.GlobalAveragePooling1D, 2: L.GlobalMaxPooling2D}[rank](data_format=CF)(h)
    elif spec["head"] == "permute":
        h = L.Flatten()(L.Permute(tuple(range(2, rank + 2)) + (1,))(h))
    else:
        h = L.Flatten()(h)
    return randomize(keras.Model(x, L.Dense(3, name="out")(h)))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=cnn_specs(), data=st.data())
def test_random_channels_first_cnns_prune_exactly(spec, data):
    model = _random_cnn(spec)
    tr = nv.analyze(model)
    remove = {}
    for g in tr.units.groups:
        if g.blocked or g.reaches_output or g.size < 2:
            continue
        layer = data.draw(
            st.sampled_from([m for m in g.members if len(tr.layer_units[m]) == g.size])
        )
        idx = data.draw(st.sets(st.integers(0, g.size - 1), min_size=1, max_size=g.size - 1))
        remove[layer] = sorted(idx)
    assert remove, "every channels_first group is selectable"
    plan = nv.Plan(remove)
    x = inputs(model)
    result = nv.prune(model, plan, tr)
    assert_same_outputs(
        nv.masked_predict(model, plan, x, tr=tr), result.model.predict(x, verbose=0)
    )
    assert result.after.params < result.before.params


def test_tap_oracle_is_not_the_identity():
    """The oracle really masks: the tapped model differs from the untapped one."""
    make, spatial = SOURCES["conv2d"]
    model, oracle = build_pair(_conv_then(make, spatial), {"src": [0]})
    x = inputs(model)
    assert not np.allclose(model.predict(x, verbose=0), oracle.predict(x, verbose=0))
    assert isinstance(Tap()("a", 1), int)


def test_time_distributed_channels_first_conv():
    def build(tap):
        x = keras.Input((3, 2, 6, 5))  # (time, channels, H, W)
        h = L.TimeDistributed(L.Conv2D(5, 3, data_format=CF), name="src")(x)
        h = tap("src", h, 2)
        h = L.TimeDistributed(L.Conv2D(4, 1, data_format=CF), name="next")(h)
        return keras.Model(x, L.Flatten()(h))

    _, pruned = check_against_oracle(build, {"src": [0, 3]}, {"src": [0, 3]})
    assert pruned.get_layer("src").layer.filters == 3


def test_attention_reads_the_last_axis_of_a_channels_first_tensor():
    x = keras.Input((3, 8))
    h = L.Conv1D(6, 3, padding="same", data_format=CF, name="conv")(x)  # (6, 8)
    h = L.MultiHeadAttention(2, 4, name="mha")(h, h)
    model = keras.Model(x, L.Flatten()(h))
    with pytest.raises(NeuronvizError) as e:
        nv.prune(model, nv.Plan({"conv": [0]}))
    assert "(MultiHeadAttention) reads channels on axis 2" in _one_line(e)


def test_whole_branch_before_a_channels_first_concatenate():
    def build(tap):
        x = keras.Input((3, 6, 5))
        a = L.Conv2D(2, 3, data_format=CF, name="branch")(x)
        b = L.Conv2D(3, 3, data_format=CF, name="keep")(x)
        h = L.Concatenate(axis=1, name="cat")([a, b])
        h = tap("cat", h, 1)
        h = L.Conv2D(4, 1, data_format=CF, name="next")(h)
        return keras.Model(x, L.Flatten()(h))

    _, pruned = check_against_oracle(build, {"branch": [0, 1]}, {"cat": [0, 1]})
    assert "branch" not in [layer.name for layer in pruned.layers]


@pytest.mark.parametrize("axes", [(2, 3), (3,), (2,)])
def test_keras_ops_reductions_over_other_axes(axes):
    """keras.ops.mean over spatial axes keeps the channels on axis 1 (or where they move)."""

    def build(tap):
        x = keras.Input((3, 6, 6))
        h = L.Conv2D(5, 3, data_format=CF, name="src")(x)  # (5, 4, 4): C != H, W
        h = tap("src", h, 1)
        h = keras.ops.mean(h, axis=axes)
        return keras.Model(x, L.Dense(2, name="out")(L.Flatten()(h)))

    check_against_oracle(build, {"src": [1, 3]}, {"src": [1, 3]})


def test_keras_ops_reduction_over_the_channel_axis_is_refused():
    x = keras.Input((3, 6, 6))
    h = L.Conv2D(4, 3, data_format=CF, name="src")(x)  # (4, 4, 4): C == H == W
    h = keras.ops.max(h, axis=1)
    model = keras.Model(x, L.Dense(2, name="out")(L.Flatten()(h)))
    with pytest.raises(NeuronvizError) as e:
        nv.prune(model, nv.Plan({"src": [0]}))
    assert (
        "(Max), which neuronviz cannot map unit indices through (reduces the channel axis"
        in _one_line(e)
    )
