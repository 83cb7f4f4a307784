"""Graph capture: subclassed models and custom layers made of Keras layers and ops are
traced, masked and pruned like Functional models; what cannot run symbolically is
refused in one line and stays opaque.

Each oracle is a copy of the model with the removed units' consumer weights zeroed by
hand (no neuronviz code). Saved files reload in safe mode without the custom classes
where they were saved as a Functional graph.
"""

import contextlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_same_outputs
from keras import layers as L
from keras import ops
from mask_layer import zero_input_rows

import neuronviz.api as nv
from neuronviz.commands.inspect import _table, report

PKG = "nvtest_capture"


@keras.saving.register_keras_serializable(PKG)
class ONetLike(keras.Model):
    """Like MTCNN's ONet: Conv2D, PReLU, MaxPooling, Permute, Flatten, Dense; three heads."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = L.Conv2D(8, 3, name="conv1")
        self.prelu1 = L.PReLU(shared_axes=[1, 2], name="prelu1")
        self.pool1 = L.MaxPooling2D(2, name="pool1")
        self.conv2 = L.Conv2D(12, 3, name="conv2")
        self.prelu2 = L.PReLU(shared_axes=[1, 2], name="prelu2")
        self.pool2 = L.MaxPooling2D(2, name="pool2")
        self.conv3 = L.Conv2D(16, 2, name="conv3")
        self.prelu3 = L.PReLU(shared_axes=[1, 2], name="prelu3")
        self.permute = L.Permute((3, 2, 1), name="permute")
        self.flatten = L.Flatten(name="flatten")
        self.fc = L.Dense(32, name="fc")
        self.prelu4 = L.PReLU(name="prelu4")
        self.box = L.Dense(4, name="box")
        self.landmarks = L.Dense(10, name="landmarks")
        self.prob = L.Dense(2, activation="softmax", name="prob")

    def call(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.flatten(self.permute(self.prelu3(self.conv3(x))))
        x = self.prelu4(self.fc(x))
        return self.box(x), self.landmarks(x), self.prob(x)


@keras.saving.register_keras_serializable(PKG)
class MLP(keras.Model):
    def __init__(self, hidden=(24, 16), classes=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.classes = tuple(hidden), classes
        self.h1 = L.Dense(self.hidden[0], activation="relu", name="h1")
        self.drop = L.Dropout(0.3, name="drop")
        self.h2 = L.Dense(self.hidden[1], name="h2")
        self.out = L.Dense(classes, name="out")

    def call(self, x, training=False):
        x = self.drop(self.h1(x), training=training)
        return self.out(ops.tanh(self.h2(x)) * 2.0)

    def get_config(self):
        return {**super().get_config(), "hidden": list(self.hidden), "classes": self.classes}


@keras.saving.register_keras_serializable(PKG)
class ResBlock(keras.layers.Layer):
    """conv -> BN -> relu -> conv, plus the input: a residual block as a custom layer."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv_a = L.Conv2D(filters, 3, padding="same", name="conv_a")
        self.bn = L.BatchNormalization(name="bn")
        self.conv_b = L.Conv2D(filters, 3, padding="same", name="conv_b")

    def call(self, x, training=False):
        h = ops.relu(self.bn(self.conv_a(x), training=training))
        return ops.relu(x + self.conv_b(h))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(PKG)
class Stage(keras.layers.Layer):
    """Custom layers inside a custom layer: two residual blocks."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.block1 = ResBlock(filters, name="block1")
        self.block2 = ResBlock(filters, name="block2")

    def call(self, x):
        return self.block2(self.block1(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(PKG)
class Branchy(keras.layers.Layer):
    """Python control flow on a tensor value: cannot run symbolically."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = L.Dense(4, name="inner")

    def call(self, x):
        if ops.mean(x) > 0:
            return self.dense(x)
        return x[..., :4]

    def compute_output_shape(self, shape):  # lets Keras place it in a Functional model
        return (*shape[:-1], 4)


@keras.saving.register_keras_serializable(PKG)
class RawTF(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = L.Dense(6, name="dense")

    def call(self, x):
        return tf.nn.relu(self.dense(x))


@keras.saving.register_keras_serializable(PKG)
class OwnKernel(keras.layers.Layer):
    def build(self, shape):
        self.kernel = self.add_weight(shape=(shape[-1], 5), name="kernel")

    def call(self, x):
        return ops.matmul(x, self.kernel)


def _randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.4, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


@contextlib.contextmanager
def unregistered():
    """Hide this module's custom classes, as in a process that never imported them."""
    objects = keras.saving.get_custom_objects()
    hidden = {k: v for k, v in objects.items() if k.startswith(PKG + ">")}
    for k in hidden:
        del objects[k]
    try:
        yield
    finally:
        objects.update(hidden)


def _check_reload(result, original, plan, tmp_path, feeds, name, *, needs_classes=False):
    path = nv.save_pruned(result, tmp_path / name, original, plan)
    with contextlib.nullcontext() if needs_classes else unregistered():
        reloaded = keras.saving.load_model(path, safe_mode=True)
    for x in feeds:
        want = result.model.predict(x, verbose=0)
        got = reloaded.predict(x, verbose=0)
        for w, g in zip(
            want if isinstance(want, (list, tuple)) else [want],
            got if isinstance(got, (list, tuple)) else [got],
            strict=True,
        ):
            assert_same_outputs(w, g)
    return reloaded


def onet():
    model = ONetLike(name="o_net")
    model(np.zeros((1, 24, 24, 3), "float32"))
    return _randomized(model)


def test_subclassed_cnn_with_three_heads_prunes_exactly(tmp_path):
    model = onet()
    tr = nv.analyze(model)
    assert [c.path for c in tr.graph.calls][:3] == ["conv1", "prelu1", "pool1"]
    plan = nv.Plan({"conv1": [1, 6], "conv2": [0, 4, 5], "conv3": [2, 9], "fc": [3, 30, 31]})
    result = nv.prune(model, plan, tr)
    assert result.widths()["conv3"] == (16, 14) and result.widths()["fc"] == (32, 29)
    assert result.capture_summary() == [
        "model: ONetLike saved as an equivalent Functional model of its inner layers and ops"
    ]
    oracle = ONetLike()
    oracle(np.zeros((1, 24, 24, 3), "float32"))
    oracle.set_weights(model.get_weights())
    zero_input_rows(oracle.conv2, [1, 6], axis=2)
    zero_input_rows(oracle.conv3, [0, 4, 5], axis=2)
    # Permute((3, 2, 1)) then Flatten: channel c lands on rows c*W*H .. (c+1)*W*H - 1
    zero_input_rows(oracle.fc, np.arange(16 * 3 * 3).reshape(16, 3, 3)[[2, 9]].ravel(), axis=0)
    for head in (oracle.box, oracle.landmarks, oracle.prob):
        zero_input_rows(head, [3, 30, 31], axis=0)
    x = np.random.default_rng(0).normal(size=(5, 24, 24, 3)).astype("float32")
    want = oracle.predict(x, verbose=0)
    got = result.model.predict(x, verbose=0)
    masked = nv.masked_predict(model, plan, x, tr=tr)
    for w, g, m in zip(want, got, masked, strict=True):
        assert_same_outputs(w, g)
        assert_same_outputs(w, m)
    assert not np.allclose(want[1], model.predict(x, verbose=0)[1], atol=1e-3)
    _check_reload(result, model, plan, tmp_path, [x], "onet.keras")


def test_subclassed_model_from_a_file_prunes_from_its_captured_graph(tmp_path):
    model = onet()
    model.save(tmp_path / "onet.keras")
    loaded = nv.load_model(tmp_path / "onet.keras")
    plan = nv.Plan({"conv2": [3]})
    result = nv.prune(loaded, plan)
    x = np.random.default_rng(1).normal(size=(3, 24, 24, 3)).astype("float32")
    for w, g in zip(
        nv.masked_predict(loaded, plan, x), result.model.predict(x, verbose=0), strict=True
    ):
        assert_same_outputs(w, g)


def test_subclassed_mlp_prunes_exactly(tmp_path):
    model = MLP(name="mlp")
    model(np.zeros((1, 10), "float32"))
    _randomized(model, 1)
    plan = nv.Plan({"h1": [0, 5, 23], "h2": [2, 3]})
    result = nv.prune(model, plan)
    oracle = MLP()
    oracle(np.zeros((1, 10), "float32"))
    oracle.set_weights(model.get_weights())
    zero_input_rows(oracle.h2, [0, 5, 23], axis=0)
    zero_input_rows(oracle.out, [2, 3], axis=0)
    x = np.random.default_rng(2).normal(size=(7, 10)).astype("float32")
    assert_same_outputs(oracle.predict(x, verbose=0), result.model.predict(x, verbose=0))
    assert_same_outputs(oracle.predict(x, verbose=0), nv.masked_predict(model, plan, x))
    assert result.after.params < result.before.params
    # MLP's config holds its widths: the class is kept, with hidden=[21, 14]
    assert type(result.model) is MLP and result.model.hidden == (21, 14)
    assert result.capture_summary() == [
        "model: MLP kept as its own class with new widths in its config (hidden=[21, 14])"
    ]
    reloaded = _check_reload(result, model, plan, tmp_path, [x], "mlp.keras", needs_classes=True)
    assert type(reloaded) is MLP and reloaded.h2.units == 14


def resnet_with_blocks(nested=False):
    x = keras.Input((None, None, 3), name="image")
    h = L.Conv2D(6, 3, padding="same", name="stem")(x)
    h = Stage(6, name="stage")(h) if nested else ResBlock(6, name="block")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(x, L.Dense(3, name="head")(h))
    _randomized(model, 2)
    for layer in model._flatten_layers():
        if isinstance(layer, L.BatchNormalization):
            layer.moving_variance.assign(np.full(6, 1.7, "float32"))
    return model


def test_custom_residual_block_is_captured_traced_and_pruned(tmp_path):
    model = resnet_with_blocks()
    tr = nv.analyze(model)
    paths = [c.path for c in tr.graph.calls]
    assert paths[:4] == ["stem", "block/conv_a", "block/bn", "block/relu"]
    assert any(p.startswith("block/add") for p in paths)  # the `x + ...` op (auto-named)
    # the residual Add couples the stem, the block's second conv and the head's inputs
    assert tr.group_of("stem") == tr.group_of("block/conv_b")
    plan = nv.Plan({"block/conv_a": [0, 4], "stem": [5]})
    result = nv.prune(model, plan, tr)
    oracle = keras.models.clone_model(model)
    oracle.set_weights(model.get_weights())
    block = oracle.get_layer("block")
    zero_input_rows(block.conv_b, [0, 4], axis=2)  # conv_a's units feed conv_b
    zero_input_rows(block.conv_a, [5], axis=2)  # the residual channel 5 feeds conv_a ...
    zero_input_rows(block.conv_b, [5], axis=3)  # ... and conv_b's channel 5 is summed with it
    w = block.conv_b.get_weights()
    w[1][5] = 0
    block.conv_b.set_weights(w)
    zero_input_rows(oracle.get_layer("head"), [5], axis=0)
    stem = oracle.get_layer("stem").get_weights()
    stem[0][..., 5], stem[1][5] = 0, 0
    oracle.get_layer("stem").set_weights(stem)
    rng = np.random.default_rng(3)
    feeds = [rng.normal(size=(2, *hw, 3)).astype("float32") for hw in ((12, 12), (19, 26))]
    for x in feeds:
        want = oracle.predict(x, verbose=0)
        assert_same_outputs(want, result.model.predict(x, verbose=0))
        assert_same_outputs(want, nv.masked_predict(model, plan, x, tr=tr))
    assert result.capture_summary() == [
        "'block': ResBlock saved as an equivalent Functional model of its inner layers and ops"
    ]
    reloaded = _check_reload(result, model, plan, tmp_path, feeds, "block.keras")
    assert reloaded.input_shape == (None, None, None, 3)


def test_custom_layers_inside_custom_layers_are_captured_recursively(tmp_path):
    model = resnet_with_blocks(nested=True)
    tr = nv.analyze(model)
    assert set(tr.graph.captured) == {"stage", "stage/block1", "stage/block2"}
    assert "stage/block2/conv_a" in tr.layer_units
    plan = nv.Plan({"stage/block1/conv_a": [1], "stage/block2/conv_a": [0, 2, 3]})
    result = nv.prune(model, plan, tr)
    oracle = keras.models.clone_model(model)
    oracle.set_weights(model.get_weights())
    stage = oracle.get_layer("stage")
    zero_input_rows(stage.block1.conv_b, [1], axis=2)
    zero_input_rows(stage.block2.conv_b, [0, 2, 3], axis=2)
    x = np.random.default_rng(4).normal(size=(2, 15, 11, 3)).astype("float32")
    assert_same_outputs(oracle.predict(x, verbose=0), result.model.predict(x, verbose=0))
    _check_reload(result, model, plan, tmp_path, [x], "stage.keras")
    rows = report(model, tr)
    containers = {c["name"]: c for c in rows["containers"]}
    assert containers["stage"]["children"] == ["stage/block1", "stage/block2"]
    assert (
        containers["stage/block1"]["captured"] and containers["stage/block1"]["class"] == "ResBlock"
    )
    inner = [r for r in rows["layers"] if r["name"].startswith("stage/block1/")]
    assert containers["stage/block1"]["params"] == sum(r["params"] for r in inner) > 0
    assert containers["stage/block1"]["macs"] == sum(r["macs"] for r in inner) > 0
    conv = next(r for r in rows["layers"] if r["name"] == "stage/block1/conv_a")
    assert conv["parent"] == "stage/block1" and conv["units"] == 6
    table = _table(json.loads(json.dumps(rows))).splitlines()
    at = next(i for i, line in enumerate(table) if line.startswith("stage "))
    assert table[at + 1].startswith("  block1 ") and "ResBlock" in table[at + 1]
    assert table[at + 2].startswith("    conv_a ") and " 6 " in table[at + 2]


def test_refusals_are_one_line_and_leave_the_layer_opaque():
    x = keras.Input((8,))
    h = L.Dense(6, name="d")(x)
    model = keras.Model(x, L.Dense(2, name="out")(Branchy(name="branchy")(h)))
    tr = nv.analyze(model)
    why = tr.graph.refused["branchy"]
    assert "\n" not in why and why.startswith(
        "Could not capture a graph of layer 'branchy' (Branchy)"
    )
    assert "cannot be used as a boolean" in why
    with pytest.raises(nv.NeuronvizError, match="branchy") as e:
        nv.prune(model, nv.Plan({"d": [0]}), tr)
    assert "\n" not in str(e.value)

    raw = RawTF(name="raw")
    raw(np.zeros((1, 4), "float32"))
    with pytest.raises(nv.NeuronvizError) as e:
        nv.analyze(raw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("Could not capture a graph of model 'raw' (RawTF)")
    assert "TensorFlow function" in msg

    y = keras.Input((3,))
    own = keras.Model(y, L.Dense(2)(OwnKernel(name="own")(L.Dense(3, name="pre")(y))))
    why = nv.analyze(own).graph.refused["own"]
    assert "\n" not in why and "own variables" in why and "'own/kernel'" in why


def test_unbuilt_subclassed_model_needs_an_input_shape():
    model = MLP(name="fresh")
    with pytest.raises(nv.NeuronvizError, match="Pass input_shape"):
        nv.analyze(model)
    tr = nv.analyze(model, input_shape=(10,))
    assert tr.graph.first_call("h1").input_shapes == [(None, 10)]


def test_custom_block_whose_config_holds_the_width_keeps_its_class(tmp_path):
    model = resnet_with_blocks()
    plan = nv.Plan({"block/conv_a": [1], "stem": [2]})  # every inner width 6 -> 5
    result = nv.prune(model, plan)
    assert result.capture_summary() == [
        "'block': ResBlock kept as its own class with new widths in its config (filters=5)"
    ]
    block = result.model.get_layer("block")
    assert type(block) is ResBlock and block.filters == 5 and block.conv_a.filters == 5
    oracle = keras.models.clone_model(model)
    oracle.set_weights(model.get_weights())
    inner = oracle.get_layer("block")
    zero_input_rows(inner.conv_b, [1], axis=2)
    zero_input_rows(inner.conv_a, [2], axis=2)
    zero_input_rows(inner.conv_b, [2], axis=3)
    w = inner.conv_b.get_weights()
    w[1][2] = 0
    inner.conv_b.set_weights(w)
    stem = oracle.get_layer("stem").get_weights()
    stem[0][..., 2], stem[1][2] = 0, 0
    oracle.get_layer("stem").set_weights(stem)
    zero_input_rows(oracle.get_layer("head"), [2], axis=0)
    x = np.random.default_rng(5).normal(size=(2, 13, 17, 3)).astype("float32")
    assert_same_outputs(oracle.predict(x, verbose=0), result.model.predict(x, verbose=0))
    reloaded = _check_reload(result, model, plan, tmp_path, [x], "kept.keras", needs_classes=True)
    assert type(reloaded.get_layer("block")) is ResBlock


@keras.saving.register_keras_serializable(PKG)
class EncoderLayer(keras.layers.Layer):
    """A keras-hub-style TransformerEncoder: attention, LayerNorm, GELU FFN; the width of the
    FFN (`intermediate_dim`) is in its config, head_dim is derived as hidden // heads."""

    def __init__(self, intermediate_dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim, self.num_heads = intermediate_dim, num_heads

    def build(self, shape):
        hidden = shape[-1]
        self.attention = L.MultiHeadAttention(
            self.num_heads, hidden // self.num_heads, name="self_attention"
        )
        self.norm1 = L.LayerNormalization(name="attention_norm")
        self.ffn1 = L.Dense(self.intermediate_dim, activation="gelu", name="ffn_intermediate")
        self.ffn2 = L.Dense(hidden, name="ffn_output")
        self.norm2 = L.LayerNormalization(name="ffn_norm")

    def call(self, x, padding_mask=None):
        mask = None if padding_mask is None else ops.cast(padding_mask[:, None, :], "bool")
        h = self.norm1(x + self.attention(x, x, attention_mask=mask))
        return self.norm2(h + self.ffn2(self.ffn1(h)))

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
        }


def encoder_model():
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    pm = keras.Input((None,), dtype="int32", name="padding_mask")
    x = L.Embedding(30, 16, name="embed")(ids)
    x = EncoderLayer(32, 2, name="enc0")(x, padding_mask=pm)
    x = EncoderLayer(32, 2, name="enc1")(x, padding_mask=pm)
    model = keras.Model({"token_ids": ids, "padding_mask": pm}, L.Dense(2, name="head")(x[:, 0]))
    return _randomized(model, 6)


def _feed(rng, n, length):
    ids = rng.integers(1, 30, (n, length)).astype("int32")
    pm = np.ones_like(ids)
    pm[:, length // 2 + 1 :] = 0
    return {"token_ids": ids, "padding_mask": pm}


def test_transformer_encoder_layers_keep_their_class_with_per_layer_widths(tmp_path):
    model = encoder_model()
    tr = nv.analyze(model)
    rows = {r["name"] for r in report(model, tr)["layers"]}
    assert {"enc0/self_attention", "enc0/ffn_intermediate", "enc1/ffn_norm"} <= rows
    plan = nv.Plan({"enc0/ffn_intermediate": [0, 3, 5], "enc1/ffn_intermediate": [1, 2, 4, 8, 9]})
    result = nv.prune(model, plan, tr)
    assert result.capture_summary() == [
        "'enc0': EncoderLayer kept as its own class with new widths in its config (intermediate_dim=29)",
        "'enc1': EncoderLayer kept as its own class with new widths in its config (intermediate_dim=27)",
    ]
    oracle = keras.models.clone_model(model)
    oracle.set_weights(model.get_weights())
    zero_input_rows(oracle.get_layer("enc0").ffn2, [0, 3, 5], axis=0)
    zero_input_rows(oracle.get_layer("enc1").ffn2, [1, 2, 4, 8, 9], axis=0)
    rng = np.random.default_rng(7)
    feeds = [_feed(rng, 3, 7), _feed(rng, 2, 12)]
    for f in feeds:
        want = oracle.predict(f, verbose=0)
        assert_same_outputs(want, result.model.predict(f, verbose=0))
        assert_same_outputs(want, nv.masked_predict(model, plan, f, tr=tr))
    _check_reload(result, model, plan, tmp_path, feeds, "enc.keras", needs_classes=True)


def test_a_width_the_config_cannot_hold_saves_the_layer_as_functional(tmp_path):
    model = encoder_model()
    plan = nv.Plan({"enc0/self_attention": [1]})  # one of 2 heads: head_dim is hidden // heads
    result = nv.prune(model, plan)
    assert result.capture_summary() == [
        "'enc0': EncoderLayer saved as an equivalent Functional model of its inner layers and ops"
    ]
    oracle = keras.models.clone_model(model)
    oracle.set_weights(model.get_weights())
    out = oracle.get_layer("enc0").attention._output_dense
    w = out.get_weights()
    w[0][1] = 0  # (heads, head_dim, hidden): head 1 adds nothing
    out.set_weights(w)
    rng = np.random.default_rng(8)
    feeds = [_feed(rng, 3, 6), _feed(rng, 2, 11)]
    for f in feeds:
        assert_same_outputs(oracle.predict(f, verbose=0), result.model.predict(f, verbose=0))
    # enc1 is unchanged and stays an EncoderLayer, so the file still needs that class
    reloaded = _check_reload(
        result, model, plan, tmp_path, feeds, "enc_fn.keras", needs_classes=True
    )
    assert isinstance(reloaded.get_layer("enc0"), keras.Model)
    assert type(reloaded.get_layer("enc1")) is EncoderLayer
