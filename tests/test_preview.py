"""The masked preview scores exactly what the physically pruned model scores, and reruns
only the calls a selection affects."""

import threading

import keras
import numpy as np
import pytest

from neuronviz.backend.model.data import Dataset, load_data
from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.trace import trace
from neuronviz.backend.scoring.evaluation import compiled_loss
from neuronviz.backend.scoring.output import output_kind
from neuronviz.backend.scoring.preview import Previewer
from neuronviz.backend.surgery.masking import masked_predict
from neuronviz.backend.surgery.prune import keep_outputs, prune
from neuronviz.core.metrics import score
from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError


@pytest.fixture(scope="module")
def demo_trace(demo_model):
    return trace(flatten(demo_model))


@pytest.fixture(scope="module")
def demo_data(demo_model):
    return load_data("demo", demo_model)


@pytest.fixture(scope="module")
def small_data(demo_data):
    return Dataset(demo_data.x[:300], demo_data.y[:300], 10)


@pytest.fixture(scope="module")
def previewer(demo_model, demo_trace, demo_data):
    pv = Previewer(demo_model, demo_trace, demo_data)
    pv.warm()
    return pv


def _index(tr, path):
    return tr.graph.first_call(path).index


def _pruned_score(model, plan, tr, data):
    """Accuracy and loss of the physically pruned model: its own forward pass and its
    compiled Keras loss object (eager, to skip tf.function tracing)."""
    pruned = prune(model, plan, tr).model
    out = keras.ops.convert_to_numpy(pruned(data.x))
    loss_fn = keras.losses.get(pruned.loss) if isinstance(pruned.loss, str) else pruned.loss
    loss = float(np.mean(keras.ops.convert_to_numpy(loss_fn(data.y, out))))
    return float(np.mean(np.argmax(out, axis=1) == data.y)), loss


def _check_equal(preview_score, accuracy, loss, n):
    assert preview_score.accuracy == pytest.approx(accuracy, abs=1.01 / n)
    assert preview_score.loss == pytest.approx(loss, rel=1e-4, abs=1e-6)


def test_baseline_equals_evaluate(demo_model, demo_data, previewer):
    got = demo_model.evaluate(demo_data.x, demo_data.y, batch_size=500, verbose=0, return_dict=True)
    base = previewer.baseline()
    _check_equal(base, got["accuracy"], got["loss"], demo_data.n)
    assert base.n == 1000 and base.accuracy > 0.95


PLANS = {
    "dense": Plan({"dense": range(0, 512, 3)}),
    "conv2d": Plan({"conv2d": [0, 5, 9, 17, 30]}),
    "conv2d_1": Plan({"conv2d_1": range(10, 50)}),
    "mixed": Plan({"conv2d": [1, 2], "conv2d_1": range(0, 64, 4), "dense": range(300)}),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_preview_equals_pruned_model(name, demo_model, demo_trace, demo_data, previewer):
    plan = PLANS[name]
    accuracy, loss = _pruned_score(demo_model, plan, demo_trace, demo_data)
    s = previewer.score(plan)
    _check_equal(s, accuracy, loss, demo_data.n)
    assert s != previewer.baseline()  # the selection really changed something


def test_preview_outputs_equal_masked_predict(demo_model, demo_trace, demo_data, previewer):
    plan = PLANS["mixed"]
    got = previewer.predict(plan)
    assert got.shape == (1000, 10)
    want = masked_predict(demo_model, plan, demo_data.x[-300:], tr=demo_trace)
    np.testing.assert_allclose(got[-300:], want, atol=1e-4, rtol=1e-4)


def test_removed_output_units_score_like_pruned_model(demo_model, demo_trace, demo_data, previewer):
    plan = Plan({"dense_1": [3, 7]})
    with pytest.warns(UserWarning, match="output units"):
        result = prune(demo_model, plan, demo_trace)
    keep = keep_outputs(result, demo_trace)[0]
    pruned_out = result.model.predict(demo_data.x, batch_size=500, verbose=0)
    assert pruned_out.shape == (1000, 8)
    want = score(pruned_out, demo_data.y, "logits", keep=keep)
    got = previewer.score(plan)
    _check_equal(got, want.accuracy, want.loss, demo_data.n)
    wrong = np.isin(demo_data.y, [3, 7]).mean()
    assert got.accuracy <= 1 - wrong + 1e-9  # labels of removed classes count as wrong


def test_dense_click_reruns_only_the_last_layer(demo_trace, previewer):
    previewer.score(Plan({"dense": [1]}))  # frontier cached
    previewer.calls_run.clear()
    previewer.score(Plan({"dense": [4, 5, 6]}))
    assert set(previewer.calls_run) == {_index(demo_trace, "dense_1")}


def test_growing_selection_recomputes_nothing_before_first_affected(demo_trace, previewer):
    first = Plan({"conv2d": [3, 4]})
    t = previewer.first_affected(first)
    assert t == _index(demo_trace, "conv2d_1")
    previewer.score(first)
    previewer.calls_run.clear()
    grown = first.merged(Plan({"dense": range(50)})).merged(Plan({"conv2d_1": [7]}))
    assert previewer.first_affected(grown) == t
    previewer.score(grown)
    assert min(previewer.calls_run) == t
    assert previewer.calls_run[_index(demo_trace, "conv2d")] == 0


def test_small_budget_streams_and_evicts_with_the_same_scores(demo_model, demo_trace, small_data):
    data = small_data
    plans = [PLANS["dense"], PLANS["conv2d_1"], PLANS["conv2d"], PLANS["dense"]]
    roomy = Previewer(demo_model, demo_trace, data)
    want = [roomy.score(p) for p in plans]
    streaming = Previewer(demo_model, demo_trace, data, budget_bytes=0, batch_size=128)
    _same_scores([streaming.score(p) for p in plans], want)
    assert streaming.cached_bytes == 0
    one = 300 * 3136 * 4  # room for the flatten output (frontier of 'dense') only
    small = Previewer(demo_model, demo_trace, data, budget_bytes=one, batch_size=128)
    got = []
    for p in plans:
        got.append(small.score(p))
        assert small.cached_bytes <= one
    _same_scores(got, want)
    assert roomy.cached_bytes > one


def _same_scores(got, want):
    assert [s.n for s in got] == [w.n for w in want]
    np.testing.assert_allclose([s.accuracy for s in got], [w.accuracy for w in want])
    np.testing.assert_allclose([s.loss for s in got], [w.loss for w in want], rtol=1e-5)


def test_scores_from_worker_threads(previewer):
    plans = [Plan({"dense": range(i, 512, 7)}) for i in range(6)]
    want = [previewer.score(p) for p in plans]
    got = [None] * len(plans)

    def work(i):
        got[i] = previewer.score(plans[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(plans))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    _same_scores(got, want)


def test_bad_plan_is_one_line_error(previewer):
    with pytest.raises(NeuronvizError, match=r"Expected `indices` in \[0, 512\)"):
        previewer.score(Plan({"dense": [600]}))


def test_warm_reports_progress(demo_model, demo_trace, demo_data):
    seen = []
    pv = Previewer(demo_model, demo_trace, demo_data)
    pv.warm(seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    # one frontier per selectable group's first affected call, plus the outputs
    assert set(pv._frontiers) == {2, 5, 6, 7}
    pv.calls_run.clear()
    pv.score(Plan({"conv2d_1": [0]}))
    assert min(pv.calls_run) == 5


# ---- other models ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def residual():
    """Conv-BN-ReLU blocks with an identity shortcut, softmax output, and its data."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 12, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    b = keras.layers.Conv2D(6, 3, padding="same", name="inner")(a)
    b = keras.layers.BatchNormalization(name="bn")(b)
    b = keras.layers.ReLU()(b)
    b = keras.layers.Conv2D(8, 3, padding="same", name="back")(b)
    s = keras.layers.Add()([a, b])
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(s))
    h = keras.layers.Dense(16, activation="relu", name="fc")(h)
    out = keras.layers.Dense(4, activation="softmax", name="head")(h)
    model = keras.Model(inp, out)
    bn = model.get_layer("bn")
    bn.set_weights(
        [
            w + np.random.default_rng(0).uniform(0.1, 0.5, w.shape).astype("float32")
            for w in bn.get_weights()
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 12, 12, 3)).astype("float32")
    y = np.argmax(model.predict(x, verbose=0) + rng.normal(0, 0.05, (300, 4)), axis=1).astype(
        np.int64
    )
    return model, trace(flatten(model)), Dataset(x, y, 4)


@pytest.mark.parametrize(
    "plan",
    [
        {"stem": [1, 6]},
        {"inner": [0, 2, 5]},
        {"fc": range(0, 16, 2)},
        {"back": [3], "inner": [1], "fc": [0]},
    ],
)
def test_residual_model_preview_equals_pruned(residual, plan):
    model, tr, data = residual
    plan = Plan(plan)
    pv = Previewer(model, tr, data, batch_size=64)
    pv.warm()
    accuracy, loss = _pruned_score(model, plan, tr, data)
    _check_equal(pv.score(plan), accuracy, loss, data.n)
    assert output_kind(model) == "softmax"


def test_uncompiled_model_uses_crossentropy_on_logits(demo_model, demo_trace, small_data):
    bare = keras.Model.from_config(demo_model.get_config())
    bare.set_weights(demo_model.get_weights())
    assert not bare.compiled and compiled_loss(bare) is None
    plan = PLANS["dense"]
    got = Previewer(bare, trace(flatten(bare)), small_data).score(plan)
    want = Previewer(demo_model, demo_trace, small_data).score(plan)
    # the demo is compiled with crossentropy from logits, so both must agree
    assert got.loss == pytest.approx(want.loss, rel=1e-6) and got.accuracy == want.accuracy


def test_other_compiled_loss_goes_through_keras(demo_model, small_data):
    model = keras.Model.from_config(demo_model.get_config())
    model.set_weights(demo_model.get_weights())
    model.compile(loss=keras.losses.CategoricalHinge(), metrics=["accuracy"])
    one_hot = np.eye(10, dtype="float32")[small_data.y]
    want = float(keras.ops.convert_to_numpy(model.loss(one_hot, model(small_data.x))))
    got = Previewer(model, trace(flatten(model)), small_data).baseline()
    assert got.loss == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize(
    "make, kind",
    [
        (lambda h: keras.layers.Dense(3, activation="softmax")(h), "softmax"),
        (lambda h: keras.layers.Activation("softmax")(keras.layers.Dense(3)(h)), "softmax"),
        (
            lambda h: keras.layers.Dropout(0.2)(keras.layers.Softmax()(keras.layers.Dense(3)(h))),
            "softmax",
        ),
        (lambda h: keras.layers.Dense(1, activation="sigmoid")(h), "sigmoid"),
        (lambda h: keras.layers.Dense(3)(h), "logits"),
        (lambda h: keras.layers.Dense(3, activation="relu")(h), "logits"),
        (lambda h: keras.ops.sigmoid(keras.layers.Dense(1)(h)), "sigmoid"),
    ],
)
def test_output_kind(make, kind):
    inp = keras.Input((5,))
    assert output_kind(keras.Model(inp, make(inp))) == kind


def test_data_of_another_shape_is_refused(demo_model, demo_trace):
    data = Dataset(np.zeros((4, 32, 32, 3), np.float32), np.zeros(4, np.int64), 10)
    with pytest.raises(
        NeuronvizError,
        match=r"Expected samples of shape \(28, 28, 1\) for model input 0\. Received: \(32, 32, 3\)",
    ):
        Previewer(demo_model, demo_trace, data)


def test_sliced_layers_score_like_zeroed_inputs(demo_model, demo_trace, small_data):
    zeroed = Previewer(demo_model, demo_trace, small_data)
    zeroed.slice_min_macs = float("inf")  # multiply removed inputs by zero everywhere
    sliced = Previewer(demo_model, demo_trace, small_data)
    sliced.slice_min_macs = 0  # every sliceable masked layer runs on its kept inputs only
    plan = PLANS["mixed"]
    assert not zeroed._sliced_layers(zeroed.masker(plan))
    assert {demo_trace.graph.calls[i].path for i in sliced._sliced_layers(sliced.masker(plan))} == {
        "conv2d_1",
        "dense",
        "dense_1",
    }
    np.testing.assert_allclose(sliced.predict(plan), zeroed.predict(plan), atol=1e-4, rtol=1e-4)
    a, b = sliced.score(plan), zeroed.score(plan)
    assert a.accuracy == b.accuracy and a.loss == pytest.approx(b.loss, rel=1e-5)


def test_sequence_output_scores_every_position():
    keras.utils.set_random_seed(2)
    inp = keras.Input((6, 3))
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inp)
    model = keras.Model(inp, keras.layers.Dense(4, name="out")(h))  # logits (N, 6, 4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6, 3)).astype("float32")
    y = rng.integers(0, 4, (50, 6))
    tr = trace(flatten(model))
    plan = Plan({"hidden": [0, 3]})
    got = Previewer(model, tr, Dataset(x, y, 4)).score(plan)
    want = score(masked_predict(model, plan, x, tr=tr), y, "logits")
    assert got.accuracy == pytest.approx(want.accuracy) and got.loss == pytest.approx(
        want.loss, rel=1e-6
    )
    assert got.n == 300  # one label per position
