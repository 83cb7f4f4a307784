"""FinetuneJob: events, early stopping, best weights, cancellation, and the input model
left alone."""

import keras
import numpy as np
import pytest

import neuronviz.api as nv
from neuronviz.backend.analysis.importance import model_scores as l2_scores
from neuronviz.backend.recovery.finetune import FinetuneJob, evaluate
from neuronviz.backend.recovery.sparsity import prunable_kernels, sparsify
from neuronviz.backend.scoring.output import training_loss
from neuronviz.errors import NeuronvizError


@pytest.fixture(scope="module")
def demo_train():
    from neuronviz.resources import demo_train

    d = np.load(demo_train())
    return d["x"], d["y"]


@pytest.fixture(scope="module")
def pruned_80(demo_model):
    """The demo with the 80% lowest-L2 Dense(512) units removed (accuracy drops)."""
    order = np.argsort(l2_scores(demo_model, "dense"), kind="stable")
    return nv.prune(demo_model, {"dense": order[:410].tolist()}).model


def tiny_model(softmax=False, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inp)
    out = keras.layers.Dense(3, activation="softmax" if softmax else None, name="out")(h)
    return keras.Model(inp, out)


def tiny_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype("float32")
    return x, x[:, :3].argmax(axis=1).astype("int64")


def test_finetuning_recovers_accuracy_of_a_pruned_model(pruned_80, demo_train, demo_val):
    train = (demo_train[0][:1024], demo_train[1][:1024])
    val = (demo_val[0][:500], demo_val[1][:500])
    before = [w.copy() for w in pruned_80.get_weights()]
    pruned_score = evaluate(pruned_80, val)
    job = FinetuneJob(pruned_80, train, val, epochs=1, batch_size=64, learning_rate=1e-4)
    events = list(job.run())
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("epoch") == 1
    assert kinds.count("batch") == job.batches == 16
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert events[0].val_loss == pytest.approx(pruned_score["loss"], rel=1e-4)
    batch_events = [e for e in events if e.kind == "batch"]
    assert all(0 <= e.accuracy <= 1 and e.loss > 0 for e in batch_events)
    assert events[-1].stopped == "completed" and events[-1].best_epoch == 1
    tuned = job.result
    assert tuned is not None and tuned is not pruned_80
    tuned_score = evaluate(tuned, val)
    assert tuned_score["loss"] < 0.75 * pruned_score["loss"]
    assert tuned_score["accuracy"] > pruned_score["accuracy"]
    assert tuned_score["loss"] == pytest.approx(job.best["loss"], rel=1e-3)
    for w, b in zip(pruned_80.get_weights(), before, strict=True):  # the input is untouched
        np.testing.assert_array_equal(w, b)
    assert tuned.get_layer("dense").units == 102 and tuned.compiled


def test_early_stopping_keeps_the_best_weights():
    model = tiny_model()
    train, val = tiny_data(256), tiny_data(128, seed=1)
    job = FinetuneJob(
        model,
        train,
        val,
        epochs=6,
        batch_size=32,
        patience=2,
        optimizer=keras.optimizers.SGD(learning_rate=40.0),
    )  # diverges at once
    events = list(job.run())
    assert job.stopped == "early_stopping"
    assert [e.epoch for e in job.history] == [0, 1, 2]
    assert events[-1].best_epoch == 0
    for got, want in zip(job.result.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)  # the starting point was best


def test_cancel_stops_before_the_next_batch():
    model = tiny_model()
    job = FinetuneJob(model, tiny_data(640), tiny_data(64, seed=1), epochs=3, batch_size=32)
    batches = 0
    for event in job.run():
        if event.kind == "batch":
            batches += 1
            if batches == 3:
                job.cancel()
        last = event
    assert batches == 3 and last.kind == "done" and last.stopped == "cancelled"
    assert job.result is None  # cancelled before the first epoch ended
    assert 0 < last.fraction < 0.1


def test_cancel_after_an_epoch_keeps_the_best_epoch():
    model = tiny_model()
    job = FinetuneJob(
        model, tiny_data(256), tiny_data(64, seed=1), epochs=5, batch_size=32, learning_rate=1e-2
    )
    for event in job.run():
        if event.kind == "epoch" and event.epoch == 2:
            job.cancel()
    assert job.stopped == "cancelled" and len(job.history) == 3
    assert job.result is not None
    assert evaluate(job.result, tiny_data(64, seed=1))["loss"] == pytest.approx(
        job.best["loss"], rel=1e-4
    )


def test_masks_keep_sparse_weights_zero_while_finetuning():
    model = tiny_model()
    sparse = sparsify(model, 0.6)
    job = FinetuneJob(
        sparse.model,
        tiny_data(512),
        tiny_data(64, seed=1),
        epochs=2,
        batch_size=16,
        learning_rate=1e-2,
        patience=None,
        masks=sparse.masks,
    )
    result = job.run_all()
    assert job.best["epoch"] > 0  # the weights did change
    for name, var in prunable_kernels(result).items():
        w = var.numpy()
        assert np.all(w[~sparse.masks[name]] == 0)
        assert np.count_nonzero(w[sparse.masks[name]]) == sparse.masks[name].sum()
        assert var.constraint is None  # the result carries no training machinery


def test_loss_for_uncompiled_models():
    logits = training_loss(tiny_model())
    probs = training_loss(tiny_model(softmax=True))
    assert (
        isinstance(logits, keras.losses.SparseCategoricalCrossentropy)
        and logits.get_config()["from_logits"]
    )
    assert not probs.get_config()["from_logits"]
    job = FinetuneJob(tiny_model(softmax=True), tiny_data(64), tiny_data(32, seed=1), epochs=1)
    assert job.run_all().compiled


def test_dataset_objects_are_accepted(demo_model):
    from neuronviz.backend.model.data import load_data

    val = load_data("demo", demo_model)
    job = FinetuneJob(demo_model, val, val, epochs=1)
    assert job.x.shape == (1000, 28, 28, 1) and job.batches == 16


def test_evaluate_matches_keras(demo_model, demo_val):
    val = (demo_val[0][:300], demo_val[1][:300])
    got = evaluate(demo_model, val)
    loss, acc = demo_model.evaluate(*val, verbose=0)
    assert got["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert got["loss"] == pytest.approx(loss, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"epochs": 0}, "`epochs` >= 1"),
        ({"batch_size": 0}, "`batch_size` >= 1"),
        ({"learning_rate": 0.0}, "`learning_rate` > 0"),
        ({"patience": 0}, "`patience` >= 1"),
        ({"train": (np.zeros((4, 5), "float32"), np.zeros(4, "int64"))}, "shape (8,)"),
        ({"train": (np.zeros((4, 8), "float32"), np.array([0, 1, 2, 3]))}, "labels in [0, 3)"),
        (
            {"train": (np.zeros((4, 8), "float32"), np.zeros(3, "int64"))},
            "as many labels as samples",
        ),
        ({"val": "nope"}, "(x, y) or a Dataset"),
    ],
)
def test_bad_arguments_are_refused(kwargs, needle):
    args = {"model": tiny_model(), "train": tiny_data(16), "val": tiny_data(8), **kwargs}
    with pytest.raises(NeuronvizError) as e:
        FinetuneJob(**args)
    assert needle in str(e.value) and "\n" not in str(e.value)
