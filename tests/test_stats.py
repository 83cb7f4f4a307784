"""Weight norms and the batched activation-statistics pass, against direct numpy."""

import keras
import numpy as np
import pytest

from neuronviz.backend.analysis.importance import weight_stats
from neuronviz.backend.analysis.stats import StatsJob, activation_stats
from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.trace import trace
from neuronviz.core import criteria
from neuronviz.core.prunable import prunable_layers
from neuronviz.errors import NeuronvizError

L = keras.layers


@pytest.fixture(scope="module")
def demo_trace(demo_model):
    return trace(flatten(demo_model))


def _w(layer, name):
    return next(v.numpy().astype(np.float64) for v in layer.weights if v.name == name)


def test_demo_weight_norms_match_kernel_columns(demo_model, demo_trace):
    ws = weight_stats(demo_trace)
    assert list(ws) == ["conv2d", "conv2d_1", "dense", "dense_1"]  # sources only, no pooling
    k = _w(demo_model.get_layer("dense"), "kernel")
    np.testing.assert_allclose(ws["dense"].norm_l2, np.linalg.norm(k, axis=0), rtol=1e-6)
    np.testing.assert_allclose(ws["dense"].norm_l1, np.abs(k).sum(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(ws["dense"].bias, _w(demo_model.get_layer("dense"), "bias"))
    c = _w(demo_model.get_layer("conv2d_1"), "kernel")  # (5, 5, 32, 64)
    np.testing.assert_allclose(
        ws["conv2d_1"].norm_l2, np.sqrt((c**2).sum(axis=(0, 1, 2))), rtol=1e-6
    )
    assert ws["conv2d"].bn_gamma is None and len(ws["conv2d"].norm_l2) == 32


def test_weight_norms_per_layer_type():
    x = keras.Input((8, 8, 3))
    h = L.Conv2DTranspose(5, 3, name="tconv")(x)
    h = L.BatchNormalization(name="bn")(h)
    h = L.SeparableConv2D(6, 3, depth_multiplier=2, name="sep")(h)
    h = L.GlobalAveragePooling2D()(h)
    tok = keras.Input((4,), dtype="int32")
    e = L.Embedding(20, 7, name="emb")(tok)
    r = L.LSTM(3, name="lstm")(e)
    model = keras.Model([x, tok], L.Concatenate()([h, r]))
    bn = model.get_layer("bn")
    bn.gamma.assign(np.arange(1, 6, dtype="float32"))
    ws = weight_stats(trace(flatten(model)))
    t = _w(model.get_layer("tconv"), "kernel")  # (3, 3, filters=5, in=3): unit axis -2
    np.testing.assert_allclose(
        ws["tconv"].norm_l2, [np.linalg.norm(t[:, :, j, :]) for j in range(5)], rtol=1e-6
    )
    np.testing.assert_array_equal(ws["tconv"].bn_gamma, np.arange(1, 6))
    p = _w(model.get_layer("sep"), "pointwise_kernel")
    np.testing.assert_allclose(
        ws["sep"].norm_l2, np.linalg.norm(p.reshape(-1, 6), axis=0), rtol=1e-6
    )
    emb = _w(model.get_layer("emb"), "embeddings")
    np.testing.assert_allclose(ws["emb"].norm_l1, np.abs(emb).sum(axis=0), rtol=1e-6)
    assert ws["emb"].bias is None
    lk = _w(model.get_layer("lstm"), "kernel").reshape(7, 4, 3)  # gates i, f, c, o
    np.testing.assert_allclose(ws["lstm"].norm_l2, np.sqrt((lk**2).sum(axis=(0, 1))), rtol=1e-6)
    assert "bn" not in ws  # pass-through members have no norms of their own


def _sub_outputs(model, names, x):
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = sub.predict(x, verbose=0, batch_size=500)
    return dict(zip(names, outs if len(names) > 1 else [outs], strict=True))


def test_batched_stats_equal_whole_set(demo_model, demo_trace, demo_val):
    x = demo_val[0][:300]
    names = list(demo_trace.layer_units)
    acts = _sub_outputs(demo_model, names, x)
    small = activation_stats(demo_model, demo_trace, x, batch_size=7)  # 43 uneven batches
    whole = activation_stats(demo_model, demo_trace, x, batch_size=1000)
    for name in names:
        a = acts[name].reshape(len(x), -1, acts[name].shape[-1]).astype(np.float64)
        flat = a.reshape(-1, a.shape[-1])
        for s in (small[name], whole[name]):
            np.testing.assert_allclose(s.mean, flat.mean(0), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(s.std, flat.std(0), rtol=1e-3, atol=1e-5)
            np.testing.assert_allclose(s.max, flat.max(0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(s.apoz, (flat == 0).mean(0), atol=1e-3)
            np.testing.assert_array_equal(s.dead, (flat == 0).all(0))
            assert s.per_sample.shape == (300, a.shape[-1]) and s.per_sample.dtype == np.float32
            np.testing.assert_allclose(s.per_sample, a.mean(1), rtol=1e-4, atol=1e-6)
            assert s.positions == a.shape[1]
    assert small["conv2d"].positions == 28 * 28 and small["dense"].positions == 1


def test_forced_dead_relu_unit_is_reported():
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [keras.Input((6,)), L.Dense(4, activation="relu", name="h"), L.Dense(2, name="out")]
    )
    k, b = model.get_layer("h").get_weights()
    b[2] = -1e4  # pre-activation always negative: unit 2 never fires
    b[[0, 1, 3]] = 10.0  # the others always fire
    model.get_layer("h").set_weights([k * 0.01, b])
    tr = trace(flatten(model))
    s = activation_stats(model, tr, rng.standard_normal((50, 6)).astype("float32"), batch_size=16)[
        "h"
    ]
    assert s.dead.tolist() == [False, False, True, False]
    assert s.apoz[2] == 1.0 and s.max[2] == 0.0 and s.apoz[0] == 0.0
    plan = criteria.dead_units({"h": s})
    assert dict(plan.remove) == {"h": (2,)}
    tr.select(plan)  # a valid selection for this model


def test_progress_generator_and_cancel(demo_model, demo_trace, demo_val):
    x = demo_val[0][:100]
    job = StatsJob(demo_model, demo_trace, x, batch_size=30)
    assert job.result is None
    fractions = list(job.run())
    assert fractions == [0.3, 0.6, 0.9, 1.0]
    assert set(job.result) == set(demo_trace.layer_units)
    cancelled = StatsJob(demo_model, demo_trace, x, batch_size=30)
    gen = cancelled.run()
    assert next(gen) == 0.3
    gen.close()  # the GUI stops between batches
    assert cancelled.result is None


def test_tensors_are_freed_during_the_pass():
    inp = keras.Input((5,))
    h = inp
    for i in range(30):
        h = L.Dense(5, activation="relu", name=f"d{i}")(h)
    model = keras.Model(inp, h)
    job = StatsJob(model, trace(flatten(model)), np.ones((10, 5), "float32"), batch_size=4)
    job.run_all()
    assert len(job.result) == 30
    assert job.peak_live <= 3  # a chain holds at most input + output of one call


def test_nested_and_multi_input_models():
    inner = keras.Sequential(
        [keras.Input((4,)), L.Dense(3, activation="relu", name="d")], name="inner"
    )
    a, b = keras.Input((4,)), keras.Input((2,))
    h = L.Concatenate(name="cat")([inner(a), L.Dense(2, name="side")(b)])
    model = keras.Model([a, b], L.Dense(1, name="out")(h))
    tr = trace(flatten(model))
    rng = np.random.default_rng(1)
    xa, xb = (
        rng.standard_normal((9, 4)).astype("float32"),
        rng.standard_normal((9, 2)).astype("float32"),
    )
    stats = activation_stats(model, tr, [xa, xb], batch_size=4)
    assert {"inner/d", "side", "cat", "out"} <= set(stats)
    direct = keras.ops.convert_to_numpy(inner(xa))
    np.testing.assert_allclose(stats["inner/d"].mean, direct.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["cat"].per_sample[:, :3], direct, rtol=1e-5, atol=1e-6)
    with pytest.raises(NeuronvizError, match="Expected 2 input array"):
        StatsJob(model, tr, xa)


def test_prunable_layers_skip_output_groups_and_blocked(demo_trace):
    assert prunable_layers(demo_trace) == ["conv2d", "conv2d_1", "dense"]
    everything = prunable_layers(demo_trace, list(demo_trace.layer_units), one_per_group=False)
    assert everything == ["conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "dense"]
    seen = prunable_layers(demo_trace, list(demo_trace.layer_units), prefer="last")
    assert seen == ["max_pooling2d", "max_pooling2d_1", "dense"]
    x = keras.Input((6, 6, 4))
    h = L.Conv2D(4, 3, name="c", groups=2)(x)  # grouped (2 channels per group): blocked
    model = keras.Model(x, L.Dense(3, name="out")(L.Flatten()(L.Conv2D(3, 1, name="ok")(h))))
    tr = trace(flatten(model))
    assert tr.units.groups[tr.group_of("c")].blocked
    assert prunable_layers(tr) == ["ok"]


def test_criteria_plans_resolve_on_the_demo(demo_model, demo_trace, demo_val):
    stats = activation_stats(demo_model, demo_trace, demo_val[0][:200])
    allowed = prunable_layers(demo_trace)
    norms = {k: v.norm_l2 for k, v in weight_stats(demo_trace).items()}
    for plan in (
        criteria.smallest(norms, fraction=0.5, allowed=allowed),
        criteria.smallest(norms, fraction=0.9, scope="global", allowed=allowed),
        criteria.dead_units(stats, allowed=allowed),
        criteria.apoz_above(stats, 0.9, allowed=allowed),
    ):
        assert plan and "dense_1" not in plan.remove
        demo_trace.select(plan)  # raises if the plan were unsafe
    assert len(criteria.smallest(norms, fraction=0.5, allowed=allowed).remove["dense"]) == 256
