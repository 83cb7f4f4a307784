"""keras-surgeon's `delete_channels` tests (tests/test_surgeon.py), ported to neuronviz.

Each case builds keras-surgeon's model in both data formats, removes the same channels,
and checks the outputs against an oracle that shares no code with neuronviz (the model
with `x * mask` after the layer, see surgeon_oracle.py), as well as keras-surgeon's own
check of the next layer's sliced weights. keras-surgeon's index `-1` is written as the
last index here (negative indices are a plan-grammar question, tested elsewhere).
Recurrent layers' own units and whole-branch removal are ported with those features.
"""

import keras
import numpy as np
import pytest
from surgeon_oracle import Tap, check_against_oracle

import neuronviz.api as nv
from neuronviz.errors import NeuronvizError

L = keras.layers
FORMATS = ["channels_first", "channels_last"]
INDICES = [[0], [2], [1, 2]]  # keras-surgeon: [0], [-1], [1, 2] of 3 channels


def _axis(fmt):
    return 1 if fmt == "channels_first" else -1


def _shape(fmt, spatial, channels):
    return (channels, *spatial) if fmt == "channels_first" else (*spatial, channels)


def _flat_rows(fmt, flat_sz, channels, idx):
    """keras-surgeon's rows of the Dense after Flatten that belong to channels `idx`."""
    if fmt == "channels_first":
        per = flat_sz // channels
        return [c * per + i for c in idx for i in range(per)]
    return [c + i for i in range(0, flat_sz, channels) for c in idx]


def _dense_rows_deleted(model, pruned, name, rows):
    w = model.get_layer(name).get_weights()
    want = [np.delete(w[0], rows, axis=0), w[1]]
    got = pruned.get_layer(name).get_weights()
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


# ---- model_3 / model_4: two convolutions, Flatten, two Dense ------------------------------
def _two_convs(fmt, spatial, padding):
    def build(tap):
        x = keras.Input(_shape(fmt, spatial, 1))
        h = L.Conv2D(3, 3, data_format=fmt, padding=padding, name="conv_1")(x)
        h = tap("conv_1", h, _axis(fmt))
        h = L.Conv2D(3, 3, data_format=fmt, padding=padding, name="conv_2")(h)
        h = L.Flatten()(h)
        h = L.Dense(3, name="dense_1")(h)
        return keras.Model(x, L.Dense(1, name="dense_2")(h))

    return build


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("idx", INDICES, ids=str)
def test_delete_channels_conv2d_conv2d(fmt, idx):
    model, pruned = check_against_oracle(
        _two_convs(fmt, (7, 7), "valid"), {"conv_1": idx}, {"conv_1": idx}
    )
    w = model.get_layer("conv_1").get_weights()
    got = pruned.get_layer("conv_1").get_weights()
    np.testing.assert_array_equal(got[0], np.delete(w[0], idx, axis=-1))
    np.testing.assert_array_equal(got[1], np.delete(w[1], idx, axis=0))
    # ..._next_layer: the next conv loses the same input channels
    w2 = model.get_layer("conv_2").get_weights()
    got2 = pruned.get_layer("conv_2").get_weights()
    np.testing.assert_array_equal(got2[0], np.delete(w2[0], idx, axis=-2))
    np.testing.assert_array_equal(got2[1], w2[1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_delete_channels_conv2d_conv2d_small_shape(fmt):
    model, pruned = check_against_oracle(
        _two_convs(fmt, (2, 2), "same"), {"conv_1": [0]}, {"conv_1": [0]}
    )
    w = model.get_layer("conv_1").get_weights()
    np.testing.assert_array_equal(
        pruned.get_layer("conv_1").get_weights()[0], np.delete(w[0], [0], axis=-1)
    )


def test_delete_channels_rec_1():
    def build(tap):
        x = keras.Input((784,))
        h = L.Dense(64, activation="relu", name="dense_1")(x)
        h = tap("dense_1", h)
        h = L.Dense(64, activation="relu", name="dense_2")(h)
        return keras.Model(x, L.Dense(10, activation="softmax", name="dense_3")(h))

    check_against_oracle(build, {"dense_1": [0]}, {"dense_1": [0]})


# ---- a layer between a convolution and Flatten -> Dense ------------------------------------
def _conv_layer_flatten(fmt, rank, make_layer, global_pool=False):
    """Conv{rank}D -> layer -> [Flatten] -> Dense(5), keras-surgeon's layer_test_helper_*."""
    conv = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank]
    spatial = {1: (13,), 2: (11, 12), 3: (9, 10, 8)}[rank]
    kernel = {1: 3, 2: (3, 3), 3: (3, 3, 2)}[rank]

    def build(tap):
        x = keras.Input(_shape(fmt, spatial, 2))
        h = conv(3, kernel, data_format=fmt, name="conv_1")(x)
        h = make_layer()(h)
        h = tap("conv_1", h, _axis(fmt))
        if not global_pool:
            h = L.Flatten()(h)
        return keras.Model(x, L.Dense(5, name="dense_1")(h))

    return build


LAYERS_1D = {
    "maxpooling1d": lambda f: L.MaxPooling1D(2, data_format=f),
    "cropping1d": lambda f: L.Cropping1D((1, 1)),
    "upsampling1d": lambda f: L.UpSampling1D(2),
    "zeropadding1d": lambda f: L.ZeroPadding1D((1, 2), data_format=f),
    "averagepooling1d": lambda f: L.AveragePooling1D(2, data_format=f),
}
LAYERS_2D = {
    "maxpooling2d": lambda f: L.MaxPooling2D((2, 2), data_format=f),
    "cropping2d": lambda f: L.Cropping2D((2, 3), data_format=f),
    "upsampling2d": lambda f: L.UpSampling2D((2, 3), data_format=f),
    "zeropadding2d": lambda f: L.ZeroPadding2D((2, 3), data_format=f),
    "averagepooling2d": lambda f: L.AveragePooling2D((2, 3), data_format=f),
    "batchnormalization": lambda f: L.BatchNormalization(axis=_axis(f)),
    "leakyrelu": lambda f: L.LeakyReLU(),
    "elu": lambda f: L.ELU(),
    "thresholdedrelu": lambda f: L.ReLU(threshold=0.1),  # Keras 3 folded it into ReLU
    "relu": lambda f: L.ReLU(),
    "gaussiannoise": lambda f: L.GaussianNoise(0.5),
    "gaussiandropout": lambda f: L.GaussianDropout(0.5),
    "alphadropout": lambda f: L.AlphaDropout(0.5),
}
LAYERS_3D = {
    "maxpooling3d": lambda f: L.MaxPooling3D((2, 3, 2), data_format=f),
    "cropping3d": lambda f: L.Cropping3D((2, 3, 2), data_format=f),
    "upsampling3d": lambda f: L.UpSampling3D((2, 3, 2), data_format=f),
    "zeropadding3d": lambda f: L.ZeroPadding3D((2, 3, 2), data_format=f),
    "averagepooling3d": lambda f: L.AveragePooling3D((2, 3, 2), data_format=f),
}
CASES = (
    [(1, name, fn) for name, fn in LAYERS_1D.items()]
    + [(2, name, fn) for name, fn in LAYERS_2D.items()]
    + [(3, name, fn) for name, fn in LAYERS_3D.items()]
)


# Keras 3.15's Cropping1D and UpSampling1D have no channels_first form: they always act
# on axis 1, which holds a channels_first Conv1D's channels, so the units are refused.
_ON_AXIS_1 = {"cropping1d": "Cropping1D", "upsampling1d": "UpSampling1D"}


def _rotate(cases):
    """Each case in both formats, with keras-surgeon's three index sets taken in turn."""
    return [
        (*c, INDICES[(i + j) % 3], f) for i, c in enumerate(cases) for j, f in enumerate(FORMATS)
    ]


def _ids(cases):
    return ["-".join(str(v) for v in c if isinstance(v, (str, int, list))) for c in cases]


@pytest.mark.parametrize("rank,name,make,idx,fmt", _rotate(CASES), ids=_ids(_rotate(CASES)))
def test_delete_channels_through_layer_then_flatten(rank, name, make, idx, fmt):
    if fmt == "channels_first" and name in _ON_AXIS_1:
        build = _conv_layer_flatten(fmt, rank, lambda: make(fmt))
        model = build(Tap())
        with pytest.raises(NeuronvizError) as e:
            nv.prune(model, nv.Plan({"conv_1": idx}))
        msg = str(e.value)
        assert "\n" not in msg and "Cannot remove units of layer 'conv_1'" in msg
        assert f"({_ON_AXIS_1[name]}) reads channels on axis 2" in msg
        return
    build = _conv_layer_flatten(fmt, rank, lambda: make(fmt))
    model, pruned = check_against_oracle(build, {"conv_1": idx}, {"conv_1": idx})
    flat = model.get_layer("dense_1").input.shape[-1]
    _dense_rows_deleted(model, pruned, "dense_1", _flat_rows(fmt, flat, 3, idx))


@pytest.mark.parametrize("rank,idx,fmt", _rotate([(1,), (2,)]), ids=_ids(_rotate([(1,), (2,)])))
def test_delete_channels_global_average_pooling(rank, idx, fmt):
    pool = {1: L.GlobalAveragePooling1D, 2: L.GlobalAveragePooling2D}[rank]
    build = _conv_layer_flatten(fmt, rank, lambda: pool(data_format=fmt), global_pool=True)

    def tapped(tap):  # the tap after pooling sees (batch, channels)
        return build(lambda n, t, a: tap(n, t, -1))

    model, pruned = check_against_oracle(tapped, {"conv_1": idx}, {"conv_1": idx})
    _dense_rows_deleted(model, pruned, "dense_1", idx)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("idx", INDICES, ids=str)
def test_delete_channels_flatten(fmt, idx):
    build = _conv_layer_flatten(fmt, 2, lambda: L.Identity())
    model, pruned = check_against_oracle(build, {"conv_1": idx}, {"conv_1": idx})
    flat = model.get_layer("dense_1").input.shape[-1]
    _dense_rows_deleted(model, pruned, "dense_1", _flat_rows(fmt, flat, 3, idx))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("idx", INDICES, ids=str)
def test_delete_channels_permute_then_flatten(fmt, idx):
    """Permute moves the channel axis (to the front, or to the back): rows still follow."""
    dims = (2, 3, 1) if fmt == "channels_first" else (3, 1, 2)

    def build(tap):
        x = keras.Input(_shape(fmt, (6, 7), 2))
        h = L.Conv2D(3, 3, data_format=fmt, name="conv_1")(x)
        h = tap("conv_1", h, _axis(fmt))
        h = L.Permute(dims, name="permute")(h)
        h = L.Flatten()(h)
        return keras.Model(x, L.Dense(5, name="dense_1")(h))

    model, pruned = check_against_oracle(build, {"conv_1": idx}, {"conv_1": idx})
    other = "channels_last" if fmt == "channels_first" else "channels_first"
    flat = model.get_layer("dense_1").input.shape[-1]
    _dense_rows_deleted(model, pruned, "dense_1", _flat_rows(other, flat, 3, idx))


# ---- merges ---------------------------------------------------------------------------------
def _two_branches(fmt, merge):
    def build(tap):
        x1 = keras.Input(_shape(fmt, (11, 12), 2))
        x2 = keras.Input(_shape(fmt, (11, 12), 2))
        a = L.Conv2D(3, 3, data_format=fmt, name="conv_1")(x1)
        b = L.Conv2D(3, 3, data_format=fmt, name="conv_2")(x2)
        h = tap("merge", merge()([a, b]), _axis(fmt))
        h = L.Flatten()(h)
        return keras.Model([x1, x2], L.Dense(5, name="dense_1")(h))

    return build


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("idx", INDICES, ids=str)
def test_delete_channels_merge_concatenate(fmt, idx):
    build = _two_branches(fmt, lambda: L.Concatenate(axis=_axis(fmt), name="cat_1"))
    model, pruned = check_against_oracle(build, {"conv_1": idx}, {"merge": idx})
    flat = model.get_layer("dense_1").input.shape[-1]
    if fmt == "channels_first":  # keras-surgeon's rows: conv_1's channels come first
        per = flat // 6
        rows = [c * per + i for c in idx for i in range(per)]
    else:
        rows = [c + i for i in range(0, flat, 6) for c in idx]
    _dense_rows_deleted(model, pruned, "dense_1", rows)


MERGES = [("Add",), ("Multiply",), ("Average",), ("Maximum",)]


@pytest.mark.parametrize("merge,idx,fmt", _rotate(MERGES), ids=_ids(_rotate(MERGES)))
def test_delete_channels_merge_others(merge, idx, fmt):
    build = _two_branches(fmt, getattr(L, merge))
    # keras-surgeon deletes the same channels of both convolutions: one group here
    model, pruned = check_against_oracle(build, {"conv_1": idx}, {"merge": idx})
    for name in ("conv_1", "conv_2"):
        assert pruned.get_layer(name).filters == 3 - len(idx)
    flat = model.get_layer("dense_1").input.shape[-1]
    _dense_rows_deleted(model, pruned, "dense_1", _flat_rows(fmt, flat, 3, idx))


def test_delete_channels_downstream_sharing():
    """Two Dense layers feed one shared Dense: both lose the same input rows (one group)."""

    def build(tap):
        x = keras.Input((5,))
        shared = L.Dense(3, name="dense_3")
        a = tap("dense_1", L.Dense(4, name="dense_1")(x))
        b = tap("dense_1", L.Dense(4, name="dense_2")(x))
        return keras.Model(x, L.Add()([shared(a), shared(b)]))

    _, pruned = check_against_oracle(build, {"dense_1": [0]}, {"dense_1": [0]})
    assert pruned.get_layer("dense_1").units == pruned.get_layer("dense_2").units == 3
