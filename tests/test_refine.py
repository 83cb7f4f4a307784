"""Refining a budget plan with data (analysis/refine.py): the same widths, units chosen
by exact loss in block-greedy rounds.

The oracle is a NumPy forward pass of the model's weights with the removed units' kernel
columns and biases zeroed (ReLU: a zeroed unit outputs 0, what removing it means),
scored with the cross-entropy computed here; the pruned model's own logits check the
previewer's score. The greedy choices are recomputed from that
oracle, independently of the previewer."""

import keras
import numpy as np
import pytest
from conftest import run_cli

import neuronviz.api as nv
from neuronviz.backend.analysis.refine import refine_plan
from neuronviz.backend.scoring.preview import Previewer
from neuronviz.core.plan import Plan

L = keras.layers


@pytest.fixture(scope="module")
def setup():
    keras.utils.set_random_seed(5)
    x = keras.Input((6,))
    h = L.Dense(7, activation="relu", name="a")(x)
    h = L.Dense(6, activation="relu", name="b")(h)
    model = keras.Model(x, L.Dense(3, name="out")(h))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((200, 6)).astype("float32")
    ys = model.predict(xs, verbose=0).argmax(1)
    ys[::4] = rng.integers(0, 3, len(ys[::4]))  # not perfectly fit: losses differ
    data = nv.Dataset(xs, ys, 3)
    tr = nv.analyze(model)
    return model, tr, data, Previewer(model, tr, data)


def oracle_loss(model, data, remove: dict) -> float:
    """Mean cross-entropy of the model's NumPy forward pass with units zeroed."""
    h = np.asarray(data.x, np.float64)
    for name in ("a", "b", "out"):
        w, b = (np.array(v, np.float64) for v in model.get_layer(name).get_weights())
        w[:, list(remove.get(name, []))] = 0.0
        b[list(remove.get(name, []))] = 0.0
        h = h @ w + b
        h = np.maximum(h, 0.0) if name != "out" else h
    lse = h.max(1) + np.log(np.exp(h - h.max(1, keepdims=True)).sum(1))
    return float(np.mean(lse - h[np.arange(len(data.y)), data.y]))


def greedy(model, data, fixed: dict, layer: str, width: int, takes: list[int]) -> list[int]:
    """Block-greedy by the oracle: each round, the `take` units whose single removal (on
    top of the units gone so far) costs least loss."""
    removed: list[int] = []
    for take in takes:
        kept = [u for u in range(width) if u not in removed]
        losses = [oracle_loss(model, data, {**fixed, layer: removed + [u]}) for u in kept]
        removed += [kept[i] for i in np.argsort(losses, kind="stable")[:take]]
    return sorted(removed)


def test_refined_units_are_the_greedy_choice_of_the_oracle(setup):
    model, tr, data, pv = setup
    plan = Plan({"a": [0, 1, 2], "b": [0, 1]})  # the widths to keep: 4 of 7, 4 of 6
    refined = refine_plan(pv, tr, plan, rounds=2)
    a = greedy(model, data, {"b": [0, 1]}, "a", 7, [1, 2])
    b = greedy(model, data, {"a": a}, "b", 6, [1, 1])
    want = {"a": a, "b": b}
    if oracle_loss(model, data, want) >= oracle_loss(model, data, plan.remove):
        want = plan.remove  # kept only where it lowers the loss
    assert {k: list(v) for k, v in refined.remove.items()} == {k: list(v) for k, v in want.items()}
    assert {k: len(v) for k, v in refined.remove.items()} == {"a": 3, "b": 2}
    assert want != plan.remove  # this case does change the plan: units a 1, 5, 6 and b 4, 5


def test_refined_is_never_worse_and_the_pruned_model_scores_it(setup):
    model, tr, data, pv = setup
    for remove in ({"a": [4, 5]}, {"b": [2, 3, 5]}, {"a": [0], "b": [1]}):
        plan = Plan(remove)
        refined = refine_plan(pv, tr, plan)
        assert oracle_loss(model, data, refined.remove) <= oracle_loss(model, data, remove)
        pruned = nv.prune(model, refined, tr).model
        z = np.asarray(pruned.predict(data.x, verbose=0), np.float64)
        lse = z.max(1) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1))
        exact = float(np.mean(lse - z[np.arange(len(data.y)), data.y]))
        assert pv.score(refined).loss == pytest.approx(exact, rel=1e-5)


def test_a_window_scores_only_the_criterions_first_candidates(demo_model, demo_val):
    x, y = demo_val
    data = nv.Dataset(x[:64], y[:64], 10)
    tr = nv.analyze(demo_model)
    pv, seen = Previewer(demo_model, tr, data), []

    class Spy:  # the previewer, recording which plans were scored
        def score(self, plan, **kw):
            seen.append(plan)
            return pv.score(plan, **kw)

    order = {"dense": np.arange(512)[::-1]}  # a criterion's order: 511 least important
    refined = refine_plan(Spy(), tr, Plan({"dense": [0]}), order, rounds=1)
    candidates = [p.remove["dense"][0] for p in seen[:-2]]  # then refined vs given
    assert candidates == list(range(511, 500, -1))  # 3 x 1 + 8 of them, in that order
    assert refined.remove["dense"][0] in candidates or refined.remove == {"dense": [0]}


def test_progress_reports_and_stops(setup):
    _, tr, _, pv = setup
    seen = []
    refine_plan(pv, tr, Plan({"a": [0, 1]}), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) == 7 + 6

    class Stop(Exception):
        pass

    def stop(_):
        raise Stop

    with pytest.raises(Stop):
        refine_plan(pv, tr, Plan({"a": [0, 1]}), progress=stop)


def test_budget_refine_keeps_widths_and_needs_data(setup, tmp_path):
    model, tr, data, _ = setup
    plain = nv.plan_to_budget(model, "params=0.7", data=data, round_to=1, trace=tr)
    refined = nv.plan_to_budget(model, "params=0.7", data=data, round_to=1, trace=tr, refine=True)
    widths = {k: len(v) for k, v in plain.plan.remove.items()}
    assert {k: len(v) for k, v in refined.plan.remove.items()} == widths
    assert refined.after == plain.after and refined.to_dict()["refined"] == refined.refined
    assert oracle_loss(model, data, refined.plan.remove) <= oracle_loss(
        model, data, plain.plan.remove
    )
    with pytest.raises(nv.NeuronvizError, match="Expected `data` to refine"):
        nv.plan_to_budget(model, "params=0.7", trace=tr, refine=True)
    assert plain.plan.remove


def test_cli_refine_needs_target_and_data(tmp_path, demo_model_path):
    out = tmp_path / "o.keras"
    r = run_cli("prune", demo_model_path, "-o", out, "--target", "macs=0.5", "--refine")
    assert r.returncode != 0 and not out.exists()
    assert "Expected --refine with --target and --data" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_apps_budget_job_refines_on_the_open_data(setup):
    from neuronviz.errors import NeuronvizError
    from neuronviz.session import Session, analyze_parts

    model, tr, data, _ = setup
    s = Session()
    s.set_model(analyze_parts(model))
    with pytest.raises(NeuronvizError, match="Open validation data to refine"):
        s.budget_job("params=0.7", round_to=1, refine=True)
    s.set_data(data, "test data")
    texts = []
    gen = s.budget_job("params=0.7", round_to=1, refine=True, report=lambda f, t: texts.append(t))()
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        got = stop.value
    want = nv.plan_to_budget(model, "params=0.7", data=data, round_to=1, trace=tr, refine=True)
    assert got.plan == want.plan and got.refined == want.refined
    assert "Refining the units on the data…" in texts


def test_public_refine_states_one_layer_per_group(demo_model, demo_val):
    x, y = demo_val
    data = nv.Dataset(x[:64], y[:64], 10)
    tr = nv.analyze(demo_model)
    hand = {"max_pooling2d": [1, 2], "dense": [5, 6, 7]}  # a pass-through names conv2d's units
    got = nv.refine_plan(demo_model, hand, data, trace=tr)
    assert set(got.remove) == {"conv2d", "dense"}
    assert len(got.remove["conv2d"]) == 2 and len(got.remove["dense"]) == 3
    first = {"max_pooling2d": [1, 2]}  # every unit a candidate: the first conv only (fast)
    unordered = nv.refine_plan(demo_model, first, data, criterion=None, trace=tr)
    direct = refine_plan(Previewer(demo_model, tr, data), tr, Plan({"conv2d": [1, 2]}))
    assert unordered == direct
