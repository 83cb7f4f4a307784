"""Small Keras models covering every layer type the engine handles (shared by tests)."""

import keras
import numpy as np

L = keras.layers


def _img(shape=(8, 8, 3)):
    return keras.Input(shape)


def mlp():
    x = keras.Input((12,))
    h = L.Dense(16, activation="relu", name="d1")(x)
    h = L.Dropout(0.3)(h)
    h = L.Dense(8, activation="tanh", name="d2")(h)
    h = L.GaussianNoise(0.1)(h)
    return keras.Model(x, L.Dense(3, name="out")(h))


def conv_bn():
    x = _img()
    h = L.Conv2D(6, 3, padding="same", name="c1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU()(h)
    h = L.Conv2D(5, 3, padding="valid", activation="elu", name="c2")(h)
    h = L.GlobalAveragePooling2D()(h)
    return keras.Model(x, L.Dense(4, name="out")(h))


def flatten_formats():
    x = _img((6, 6, 2))
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(x)
    h = L.MaxPooling2D(2)(h)
    a = L.Flatten(name="flat_last")(h)
    b = L.Flatten(data_format="channels_first", name="flat_first")(h)
    y = L.Dense(3, name="out_a")(a)
    z = L.Dense(3, name="out_b")(b)
    return keras.Model(x, L.Add()([y, z]))


def conv1d_3d():
    x = keras.Input((10, 3))
    h = L.Conv1D(5, 3, padding="causal", activation="relu", name="c1")(x)
    h = L.AveragePooling1D(2)(h)
    h = L.ZeroPadding1D(1)(h)
    h = L.Cropping1D((1, 0))(h)
    h = L.UpSampling1D(2)(h)
    h = L.GlobalMaxPooling1D()(h)
    v = keras.Input((4, 4, 4, 2))
    g = L.Conv3D(3, 2, activation="relu", name="c3")(v)
    g = L.GlobalAveragePooling3D()(g)
    h = L.Concatenate()([h, g])
    return keras.Model([x, v], L.Dense(2, name="out")(h))


def transposed():
    x = _img((5, 5, 3))
    h = L.Conv2DTranspose(4, 3, strides=2, activation="relu", name="t1")(x)
    h = L.ZeroPadding2D(1)(h)
    h = L.Cropping2D(1)(h)
    h = L.UpSampling2D(2)(h)
    h = L.Conv2D(3, 3, name="c2")(h)
    s = keras.Input((7, 2))
    g = L.Conv1DTranspose(5, 3, name="t2")(s)
    g = L.Conv1D(2, 3, name="c3")(g)
    return keras.Model([x, s], [L.GlobalAveragePooling2D()(h), L.Flatten()(g)])


def depthwise_separable():
    x = _img((8, 8, 3))
    h = L.Conv2D(6, 1, name="c1")(x)
    h = L.DepthwiseConv2D(3, padding="same", name="dw1")(h)
    h = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw2")(h)
    h = L.BatchNormalization(name="bn")(h)
    h = L.SeparableConv2D(5, 3, depth_multiplier=2, activation="relu", name="sep")(h)
    h = L.SeparableConv2D(4, 1, name="sep2")(h)
    s = keras.Input((9, 2))
    g = L.Conv1D(4, 1, name="c1d")(s)
    g = L.DepthwiseConv1D(3, name="dw1d")(g)
    g = L.SeparableConv1D(3, 3, name="sep1d")(g)
    return keras.Model([x, s], [L.Flatten()(h), L.GlobalAveragePooling1D()(g)])


def embedding_rnn():
    x = keras.Input((7,), dtype="int32")
    e = L.Embedding(20, 6, name="emb")(x)
    a = L.Conv1D(5, 3, activation="relu", name="c1")(e)
    a = L.GlobalAveragePooling1D()(a)
    b = L.LSTM(4, name="lstm")(e)
    c = L.GRU(3, return_sequences=True, name="gru")(e)
    c = L.SimpleRNN(2, name="rnn")(c)
    return keras.Model(x, L.Dense(2, name="out")(L.Concatenate()([a, b, c])))


def residual_merges():
    x = _img((6, 6, 3))
    stem = L.Conv2D(6, 3, padding="same", name="stem")(x)
    stem = L.BatchNormalization(name="stem_bn")(stem)
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="a")(stem)
    s = L.Add(name="add")([stem, a])
    b = L.Conv2D(6, 1, name="b")(s)
    m = L.Subtract(name="sub")([s, b])
    c = L.Conv2D(6, 1, name="c")(m)
    m = L.Multiply(name="mul")([m, c])
    d = L.Conv2D(6, 1, name="d")(m)
    m = L.Average(name="avg")([m, d])
    e = L.Conv2D(6, 1, name="e")(m)
    m = L.Maximum(name="max")([m, e])
    f = L.Conv2D(6, 1, name="f")(m)
    m = L.Minimum(name="min")([m, f])
    h = L.Conv2D(4, 3, name="head")(m)
    return keras.Model(x, L.GlobalAveragePooling2D()(h))


def squeeze_excite():
    x = _img((6, 6, 3))
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="expand")(x)
    se = L.GlobalAveragePooling2D()(h)
    se = L.Dense(4, activation="relu", name="se_reduce")(se)
    se = L.Dense(8, activation="sigmoid", name="se_expand")(se)
    se = L.Reshape((1, 1, 8), name="se_reshape")(se)
    h = L.Multiply(name="excite")([h, se])
    h = L.Conv2D(5, 1, name="project")(h)
    h = L.Reshape((36, 5), name="to_seq")(h)
    h = L.Conv1D(3, 3, name="seq_conv")(h)
    return keras.Model(x, L.Flatten()(h))


def concat_dense():
    x = _img((6, 6, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(x)
    b = L.Conv2D(3, 3, padding="same", name="b")(x)
    cat = L.Concatenate(name="cat")([a, b])
    c = L.Conv2D(5, 1, name="c")(cat)
    cat2 = L.Concatenate(name="cat2")([cat, c])
    cat2 = L.BatchNormalization(name="bn")(cat2)
    h = L.Conv2D(4, 1, name="head")(cat2)
    return keras.Model(x, L.GlobalMaxPooling2D()(h))


def normalisations():
    x = keras.Input((10,))
    h = L.Dense(8, name="d1")(x)
    h = L.LayerNormalization(name="ln")(h)
    h = L.PReLU(name="prelu")(h)
    h = L.Dense(6, name="d2")(h)
    h = L.UnitNormalization(name="unit")(h)
    h = L.LeakyReLU(name="leaky")(h)
    h = L.Dense(5, name="d3")(h)
    h = L.Activation("softmax", name="sm")(h)
    h = L.Dense(6, name="d4")(h)
    h = L.Softmax(name="softmax_layer")(h)
    return keras.Model(x, L.Dense(4, activation="softmax", name="out")(h))


def nested_shared():
    inner = keras.Sequential(
        [keras.Input((6,)), L.Dense(5, activation="relu", name="in1"), L.Dense(4, name="in2")],
        name="seq",
    )
    fin = keras.Input((4,))
    fh = L.Dense(7, activation="relu", name="fin1")(fin)
    func = keras.Model(fin, L.Dense(3, name="fin2")(fh), name="func")
    x = keras.Input((6,))
    shared = L.Dense(6, activation="relu", name="shared")
    a = shared(x)
    b = shared(L.Dense(6, name="pre")(x))
    h = inner(L.Add(name="add")([a, b]))
    return keras.Model(x, L.Dense(2, name="out")(func(h)))


def spatial_misc():
    x = _img((8, 8, 2))
    h = L.Conv2D(5, 3, padding="same", name="c1")(x)
    h = L.LeakyReLU(0.2)(h)
    h = L.SpatialDropout2D(0.2)(h)
    h = L.PReLU(name="prelu2d")(h)
    h = L.ZeroPadding2D(1)(h)
    h = L.AveragePooling2D(2)(h)
    h = L.Permute((2, 1, 3), name="permute")(h)
    h = L.Conv2D(4, 3, name="c2")(h)
    h = L.Flatten()(h)
    h = L.RepeatVector(2, name="repeat")(h)
    return keras.Model(x, L.Conv1D(2, 1, name="c3")(h))


def channelwise_grouped_conv():
    x = _img((6, 6, 3))
    h = L.Conv2D(6, 1, name="c1")(x)
    h = L.Conv2D(12, 3, groups=6, padding="same", name="dw_as_conv")(h)  # 2 filters per channel
    h = L.BatchNormalization(name="bn")(h)
    return keras.Model(x, L.GlobalAveragePooling2D()(L.Conv2D(4, 1, name="head")(h)))


BUILDERS = {
    f.__name__: f
    for f in [
        mlp,
        conv_bn,
        flatten_formats,
        conv1d_3d,
        transposed,
        depthwise_separable,
        embedding_rnn,
        residual_merges,
        squeeze_excite,
        concat_dense,
        normalisations,
        nested_shared,
        spatial_misc,
        channelwise_grouped_conv,
    ]
}


def randomize(model, seed=0):
    """Non-trivial weights everywhere (BatchNorm statistics included)."""
    rng = np.random.default_rng(seed)
    ws = []
    for w in model.get_weights():
        if w.ndim == 1 and w.dtype.kind == "f":
            ws.append((rng.uniform(0.5, 1.5, w.shape)).astype(w.dtype))
        else:
            ws.append((rng.standard_normal(w.shape) * 0.5).astype(w.dtype))
    model.set_weights(ws)
    return model


def inputs_for(model, n=4, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for t in model.inputs:
        shape = (n,) + tuple(t.shape[1:])
        if "int" in str(t.dtype):
            out.append(rng.integers(0, 20, shape).astype("int32"))
        else:
            out.append(rng.standard_normal(shape).astype("float32"))
    return out if len(out) > 1 else out[0]


def random_plan(trace, rng, fraction=0.4, include_output=False):
    """Remove a random share of every removable group (never all of one)."""
    from neuronviz.core.plan import Plan

    remove = {}
    for g in trace.units.groups:
        if g.blocked or (g.reaches_output and not include_output) or g.size < 2:
            continue
        layer = g.sources[0]
        k = int(rng.integers(1, max(2, int(g.size * fraction) + 1)))
        k = min(k, g.size - 1)
        remove[layer] = sorted(rng.choice(g.size, size=k, replace=False).tolist())
    return Plan(remove)
