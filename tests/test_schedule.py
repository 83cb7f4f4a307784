"""Iterative prune -> fine-tune schedules."""

import keras
import numpy as np
import pytest

from neuronviz.backend.analysis.importance import model_scores as l2_scores
from neuronviz.backend.recovery.schedule import PruneSchedule, schedule_fractions
from neuronviz.errors import NeuronvizError


def test_schedule_fractions():
    poly = schedule_fractions(0.5, 3, "polynomial")
    const = schedule_fractions(0.5, 3, "constant")
    assert poly[-1] == pytest.approx(0.5) and const[-1] == pytest.approx(0.5)
    assert const == pytest.approx([0.5 / 3, 1.0 / 3, 0.5])
    assert poly == sorted(poly) and poly[0] > const[0]  # polynomial cuts most at the start
    steps = np.diff([0.0, *poly])
    assert np.all(np.diff(steps) < 0)
    assert schedule_fractions(0.8, 1) == [pytest.approx(0.8)]


@pytest.mark.parametrize(
    "args,needle",
    [
        ((1.0, 3), "(0, 1)"),
        ((0.0, 3), "(0, 1)"),
        ((0.5, 0), "`steps` >= 1"),
        ((0.5, 3, "cubic"), "'polynomial' or 'constant'"),
    ],
)
def test_schedule_fraction_refusals(args, needle):
    with pytest.raises(NeuronvizError) as e:
        schedule_fractions(*args)
    assert needle in str(e.value)


def test_l2_scores_are_kernel_column_norms(demo_model):
    dense = demo_model.get_layer("dense").kernel.numpy()
    np.testing.assert_allclose(
        l2_scores(demo_model, "dense"), np.linalg.norm(dense, axis=0), rtol=1e-5
    )
    conv = demo_model.get_layer("conv2d_1").kernel.numpy()
    np.testing.assert_allclose(
        l2_scores(demo_model, "conv2d_1"), np.sqrt((conv**2).sum(axis=(0, 1, 2))), rtol=1e-5
    )
    inp = keras.Input((4, 4, 3))
    tconv = keras.layers.Conv2DTranspose(5, 3, name="up")(inp)
    model = keras.Model(inp, tconv)
    k = model.get_layer("up").kernel.numpy()  # (3, 3, out=5, in=3)
    np.testing.assert_allclose(
        l2_scores(model, "up"), np.sqrt((k**2).sum(axis=(0, 1, 3))), rtol=1e-5
    )


def test_iterative_schedule_on_the_demo(demo_model, demo_val):
    from neuronviz.resources import demo_train

    tr = np.load(demo_train())
    train = (tr["x"][:256], tr["y"][:256])
    val = (demo_val[0][:300], demo_val[1][:300])
    before = demo_model.get_layer("dense").kernel.numpy().copy()
    progress = []
    sched = PruneSchedule(
        demo_model,
        ["dense"],
        target=0.5,
        steps=2,
        schedule="constant",
        train=train,
        val=val,
        epochs_per_step=1,
        on_progress=progress.append,
    )
    steps = list(sched.run())
    assert [s.step for s in steps] == [0, 1, 2]
    assert [s.widths["dense"] for s in steps] == [(512, 512), (512, 384), (512, 256)]
    assert steps[0].removed == {} and steps[0].pruned == steps[0].finetuned
    first = steps[1].removed["dense"]
    norms = np.linalg.norm(before, axis=0)
    assert sorted(first) == sorted(
        np.argsort(norms, kind="stable")[:128].tolist()
    )  # lowest L2 first
    assert not set(first) & set(steps[2].removed["dense"])
    assert sorted(first + steps[2].removed["dense"]) == sched.removed["dense"]
    for s in steps[1:]:
        assert 0.5 < s.pruned["accuracy"] <= 1 and s.finetuned["loss"] <= s.pruned["loss"] + 1e-6
        assert s.params < steps[0].params
    assert sched.result.get_layer("dense").units == 256
    assert len([e for e in progress if e.kind == "done"]) == 2
    np.testing.assert_array_equal(demo_model.get_layer("dense").kernel.numpy(), before)


def test_given_scores_decide_and_original_indices_are_reported(demo_model, demo_val):
    scores = {"dense": np.arange(512, dtype=float)}  # lowest index goes first
    sched = PruneSchedule(
        demo_model, {"dense": 0.25}, steps=2, schedule="polynomial", val=demo_val, scores=scores
    )
    steps = list(sched.run())
    removed = [i for s in steps for i in s.removed.get("dense", [])]
    assert removed == list(range(128))  # original ids, even after the first cut renumbered units
    first = round(schedule_fractions(0.25, 2)[0] * 512)
    assert first == 112 and steps[1].removed["dense"] == list(range(first))
    assert all(s.finetuned is None for s in steps[1:])  # no training data: prune only


def test_cancel_stops_the_schedule(demo_model, demo_val):
    sched = PruneSchedule(
        demo_model, ["dense"], target=0.5, steps=4, val=(demo_val[0][:100], demo_val[1][:100])
    )
    seen = []
    for s in sched.run():
        seen.append(s.step)
        if s.step == 1:
            sched.cancel()
    assert seen == [0, 1]
    assert sched.result.get_layer("dense").units == 512 - len(sched.removed["dense"]) < 512


def test_refusals(demo_model, demo_val):
    with pytest.raises(NeuronvizError, match="Did you mean 'dense'"):
        PruneSchedule(demo_model, ["dens"], val=demo_val)
    with pytest.raises(NeuronvizError, match="validation data"):
        PruneSchedule(demo_model, ["dense"])
    with pytest.raises(NeuronvizError, match=r"\(0, 1\)"):
        PruneSchedule(demo_model, {"dense": 1.5}, val=demo_val)
    sched = PruneSchedule(demo_model, ["dense"], val=demo_val, scores={"dense": np.ones(10)})
    with pytest.raises(NeuronvizError, match="Expected 512 scores"):
        list(sched.run())
