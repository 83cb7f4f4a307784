"""The compiled preview (a sweep's many plans from one start): the same scores as the eager
preview and as the physically pruned model evaluated by plain Keras; one trace serves every
fraction of a group; attention heads still take the eager path."""

import keras
import numpy as np
import pytest
from test_preview_positions import VOCAB, T, classifier, pruned_score

import neuronviz.api as nv
from neuronviz.backend.analysis.sensitivity import sweep
from neuronviz.backend.model.data import Dataset
from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.trace import trace
from neuronviz.backend.scoring.preview import Previewer
from neuronviz.core.plan import Plan

FRACTIONS = (0.0, 0.25, 0.5, 0.75)
L = keras.layers


@pytest.fixture(scope="module")
def resnet():
    """Conv-BN-ReLU with a residual Add (a coupled group), a bottleneck inside the block,
    a Dense head with softmax; labels from its own predictions plus noise."""
    keras.utils.set_random_seed(7)
    inp = keras.Input((10, 10, 3))
    a = L.ReLU()(
        L.BatchNormalization(name="stem_bn")(L.Conv2D(8, 3, padding="same", name="stem")(inp))
    )
    b = L.Conv2D(6, 1, name="squeeze")(a)
    b = L.ReLU()(L.BatchNormalization(name="bn")(b))
    b = L.Conv2D(8, 3, padding="same", name="expand")(b)
    h = L.ReLU()(L.Add()([a, b]))
    h = L.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="down")(h)
    h = L.GlobalAveragePooling2D()(h)
    h = L.Dense(10, activation="relu", name="fc")(h)
    out = L.Dense(4, activation="softmax", name="head")(h)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for bn in ("stem_bn", "bn"):
        layer = model.get_layer(bn)
        layer.set_weights(
            [w + rng.uniform(0.1, 0.5, w.shape).astype("float32") for w in layer.get_weights()]
        )
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(240, 10, 10, 3)).astype("float32")
    y = np.argmax(model.predict(x, verbose=0) + rng.normal(0, 0.05, (240, 4)), axis=1)
    return model, trace(flatten(model)), Dataset(x, y.astype(np.int64), 4)


def _previewer(model, tr, data, compiled: bool) -> Previewer:
    pv = Previewer(model, tr, data, batch_size=64)
    pv.compile_min_macs = 0 if compiled else float("inf")  # this model is tiny
    pv.compiled_rows = 64  # several batches, the last one shorter
    return pv


@pytest.fixture(scope="module")
def sweeps(resnet):
    model, tr, data = resnet
    out = {}
    for compiled in (True, False):
        pv = _previewer(model, tr, data, compiled)
        out[compiled] = (pv, sweep(pv, tr, fractions=FRACTIONS).run())
    return out


def test_compiled_sweep_equals_the_eager_sweep(sweeps):
    (pv, fast), (eager_pv, eager) = sweeps[True], sweeps[False]
    assert pv._segments is not None and pv._segments.traced > 0  # it ran compiled
    assert eager_pv._segments is None
    assert [c.name for c in fast.curves] == [c.name for c in eager.curves]
    assert len(fast.curves) >= 4
    for a, b in zip(fast.curves, eager.curves, strict=True):
        assert a.removed == b.removed
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.accuracy, b.accuracy, atol=1.01 / 240)


def test_compiled_sweep_points_equal_the_pruned_model_in_plain_keras(sweeps, resnet):
    """Oracle: the physically pruned model, run and scored by Keras itself."""
    model, tr, data = resnet
    pv, result = sweeps[True]
    checked = 0
    for c in result.curves:
        for j in (1, 3):
            pruned = nv.prune(model, result.plan_at(tr, c.name, j)).model
            out = pruned(data.x)  # Keras's own forward pass and loss, eager
            loss = float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(data.y, out)))
            accuracy = float(np.mean(np.argmax(out, axis=1) == data.y))
            assert c.loss[j] == pytest.approx(loss, rel=1e-4, abs=1e-6), (c.name, j)
            assert c.accuracy[j] == pytest.approx(accuracy, abs=1.01 / data.n), (c.name, j)
            checked += 1
    assert checked >= 8


def test_every_fraction_of_a_group_reuses_one_trace(resnet):
    model, tr, data = resnet
    pv = _previewer(model, tr, data, compiled=True)
    first = Plan({"squeeze": [0]})
    pv.score(first, compiled=True)
    traced, ran = pv._segments.traced, dict(pv.calls_run)
    for units in ([1, 2], [0, 3, 4], [5]):
        pv.score(Plan({"squeeze": units}), compiled=True)
    assert pv._segments.traced == traced
    t, last = pv.first_affected(first), len(tr.graph.calls) - 1
    assert all(pv.calls_run[i] == ran.get(i, 0) for i in range(t))  # the frontier is kept
    assert pv.calls_run[t] == pv.calls_run[last] == 4 * ran[last]


@pytest.fixture(scope="module")
def mean_pooled():
    model = classifier("mean", full_mask=False)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, VOCAB, (40, T)).astype("int32")
    pad = (np.arange(T)[None] < rng.integers(2, T + 1, 40)[:, None]).astype("int32")
    return model, Dataset([ids, pad], rng.integers(0, 3, 40), 3)


def test_attention_heads_keep_the_eager_path_and_ffn_units_compile(mean_pooled):
    model, data = mean_pooled
    tr = trace(flatten(model))
    pv = _previewer(model, tr, data, compiled=True)
    heads = Plan({"mha_1": [1]})
    assert pv.score(heads, compiled=True) == pv.score(heads)  # the same (eager) run
    assert pv._segments is None
    ffn = Plan({"ffn_0": [0, 3, 4, 9]})
    got = pv.score(ffn, compiled=True)
    assert pv._segments is not None and pv._segments.traced > 0
    accuracy, loss = pruned_score(model, ffn, data)
    assert got.loss == pytest.approx(loss, rel=1e-4, abs=1e-6)
    assert got.accuracy == pytest.approx(accuracy, abs=1.01 / data.n)


def test_a_sweep_of_chosen_groups_scores_only_those(sweeps, resnet):
    model, tr, data = resnet
    pv, full = sweeps[False]
    name = full.curves[1].name
    part = sweep(pv, tr, fractions=FRACTIONS, groups=[name]).run()
    assert [c.name for c in part.curves] == [name] and not part.skipped
    assert part.curves[0].loss == full.curves[1].loss


class EagerOnly(L.Layer):
    """A layer that needs eager tensors (NumPy in call): it cannot run in a tf.function."""

    def call(self, x):
        return x * float(np.asarray(x).std() >= 0)

    def compute_output_shape(self, shape):
        return shape


def test_a_graph_that_cannot_be_traced_stays_eager():
    keras.utils.set_random_seed(2)
    inp = keras.Input((6,))
    h = L.Dense(5, name="b")(L.Dense(8, activation="relu", name="a")(inp))
    model = keras.Model(inp, L.Dense(3, name="out")(EagerOnly(name="eager")(h)))
    rng = np.random.default_rng(2)
    data = Dataset(rng.normal(size=(30, 6)).astype("float32"), rng.integers(0, 3, 30), 3)
    tr = trace(flatten(model))
    pv = _previewer(model, tr, data, compiled=True)
    plan = Plan({"a": [1, 2]})
    got = pv.score(plan, compiled=True)
    assert pv.compile_min_macs == float("inf")  # this previewer stays eager from now on
    assert got == pv.score(plan)
    zeroed = keras.models.clone_model(model)  # oracle: b's input rows 1 and 2 zeroed
    zeroed.set_weights(model.get_weights())
    kernel, bias = zeroed.get_layer("b").get_weights()
    kernel[[1, 2]] = 0
    zeroed.get_layer("b").set_weights([kernel, bias])
    np.testing.assert_allclose(pv.predict(plan), zeroed(data.x), rtol=1e-5, atol=1e-6)
