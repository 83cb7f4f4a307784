"""The headless Session: selection editing over coupled groups, exact counts without
surgery, criteria, statistics and preview wiring. No Qt."""

import numpy as np
import pytest

import neuronviz.api as nv
from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError
from neuronviz.session import Session


@pytest.fixture(scope="module")
def session(demo_model_path):
    s = Session()
    s.open_model(demo_model_path)
    return s


@pytest.fixture(autouse=True)
def _reset(session):
    session.set_plan(Plan())
    yield
    session.set_plan(Plan())


@pytest.fixture(scope="module")
def loaded(demo_model_path):
    """A session with demo data, activation statistics and a warm previewer."""
    s = Session()
    s.open_model(demo_model_path)
    s.open_data("demo")
    job = s.stats_job()
    for _ in job.run():
        pass
    s.set_act_stats(job.result)
    p = s.make_previewer()
    p.warm()
    s.set_previewer(p)
    return s


def test_model_facts(session):
    assert session.layer == "conv2d"
    assert session.selectable_layers() == [
        "conv2d",
        "max_pooling2d",
        "conv2d_1",
        "max_pooling2d_1",
        "dense",
        "dense_1",
    ]
    assert session.why_not_selectable("dense_1") is None  # allowed, with a warning
    assert "output shape" in session.output_warning("dense_1")
    assert session.output_warning("dense") is None
    assert "no units" in session.why_not_selectable("flatten")
    rows = {r.path: r for r in session.layers()}
    assert rows["dense"].units == 512 and rows["dense"].type == "Dense"
    assert rows["flatten"].units is None and rows["flatten"].output_shape == (None, 3136)
    assert rows["dense"].params == 3136 * 512 + 512
    assert session.unit_totals() == (32 + 64 + 512 + 10, 0)


def test_events_fire_on_change(session):
    seen = []
    session.subscribe("plan", lambda: seen.append("plan"))
    session.subscribe("layer", lambda: seen.append("layer"))
    session.set_plan(Plan({"dense": [1]}))
    session.set_plan(Plan({"dense": [1]}))  # no change, no event
    session.set_layer("dense")
    session.set_layer("dense")
    assert seen == ["plan", "layer"]
    with pytest.raises(NeuronvizError):
        session.set_layer("flatten")


def test_toggle_add_remove_set(session):
    p = session.edited("dense", [1, 2, 3], "toggle")
    assert dict(p.remove) == {"dense": (1, 2, 3)}
    session.set_plan(p)
    assert dict(session.edited("dense", [2, 5], "toggle").remove) == {"dense": (1, 3, 5)}
    assert dict(session.edited("dense", [7], "add").remove) == {"dense": (1, 2, 3, 7)}
    assert dict(session.edited("dense", [1, 3], "remove").remove) == {"dense": (2,)}
    assert dict(session.edited("dense", [9, 10], "set").remove) == {"dense": (9, 10)}
    assert dict(session.cleared("dense").remove) == {}
    inv = session.inverted("dense")
    assert len(inv.remove["dense"]) == 509 and 1 not in inv.remove["dense"]
    with pytest.raises(NeuronvizError, match=r"Expected `indices` in \[0, 512\)"):
        session.edited("dense", [600], "add")


def test_coupled_units_toggle_through_any_member(session):
    session.set_plan(Plan({"conv2d": [4, 5]}))
    assert session.removed()["max_pooling2d"].tolist() == [4, 5]
    mask = session.selected_mask("max_pooling2d")
    assert mask[[4, 5]].all() and mask.sum() == 2
    assert not session.direct_mask("max_pooling2d").any()  # selected through coupling
    assert session.direct_mask("conv2d")[[4, 5]].all()
    # unselecting in the pooling layer removes the conv unit from the plan
    assert dict(session.edited("max_pooling2d", [4], "toggle").remove) == {"conv2d": (5,)}


def test_refuses_a_plan_that_empties_a_layer(session):
    with pytest.raises(NeuronvizError, match="at least one unit"):
        session.set_plan(Plan({"conv2d": range(32)}))
    assert session.plan == Plan()


@pytest.mark.parametrize(
    "plan",
    [
        {"dense": list(range(100))},
        {"conv2d": [1, 2, 5], "max_pooling2d_1": [3], "dense": [0, 9]},
        {"conv2d_1": list(range(0, 64, 3))},
    ],
)
def test_counts_after_match_the_surgery(session, plan):
    plan = Plan(plan)
    after = session.counts_after(plan)
    result = nv.prune(session.model, plan, session.trace)
    assert (after.params, after.macs) == (result.after.params, result.after.macs)
    assert after.layers == result.after.layers


def test_norms_map_onto_member_layers(session):
    ws = session.weight_stats["conv2d"]
    np.testing.assert_allclose(session.norms("max_pooling2d"), ws.norm_l2)
    np.testing.assert_allclose(session.norms("conv2d", "l1"), ws.norm_l1)
    src, kernel, idx = session.kernel("max_pooling2d")
    assert src == "conv2d" and kernel.shape[-1] == 32 and idx.tolist() == list(range(32))


def test_criteria(session):
    p = session.criterion_plan("l2", fraction=0.25, scope="layer")
    assert {k: len(v) for k, v in p.remove.items()} == {"conv2d": 8, "conv2d_1": 16, "dense": 128}
    norms = session.norms("dense")
    assert set(p.remove["dense"]) == set(np.argsort(norms, kind="stable")[:128].tolist())
    g = session.criterion_plan("l1", fraction=0.1, scope="global")
    assert sum(len(v) for v in g.remove.values()) == int(0.1 * (32 + 64 + 512))
    one = session.criterion_plan("l2", n=5, layers=["dense"])
    assert list(one.remove) == ["dense"] and len(one.remove["dense"]) == 5
    with pytest.raises(NeuronvizError, match="statistics"):
        session.criterion_plan("dead")


def test_data_stats_and_preview(loaded):
    s = loaded
    assert s.dataset.n == 1000
    act = s.act("dense")
    assert act.per_sample.shape == (1000, 512)
    dead = s.criterion_plan("dead")
    assert set(dead.remove.get("dense", ())) == set(np.flatnonzero(act.dead).tolist())
    apoz = s.criterion_plan("apoz", threshold=0.95)
    assert set(apoz.remove.get("dense", ())) == set(np.flatnonzero(act.apoz > 0.95).tolist())
    base = s.previewer.baseline()
    assert base.accuracy == pytest.approx(0.977, abs=1e-3)
    plan = Plan({"dense": list(range(64))})
    assert s.previewer.score(plan).accuracy <= 1.0


def test_sweep_job(loaded):
    job = loaded.sweep_job("l2", [0.0, 0.5])
    gen = job()
    progress = []
    try:
        while True:
            progress.append(next(gen))
    except StopIteration as stop:
        result, taylor = stop.value
    assert progress and taylor is None
    assert {c.layer for c in result.curves} == {"conv2d", "conv2d_1", "dense"}
    loaded.set_sweep(result, "l2")
    assert loaded.sweep is result


def test_open_data_needs_a_model():
    with pytest.raises(NeuronvizError, match="Open a model"):
        Session().load_data_parts("demo")
