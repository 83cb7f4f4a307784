"""Budget plans, channel rounding and measured latency.

The oracle for pruned == masked is a copy of the model whose removed units have their
kernel columns and biases zeroed by hand (keras get/set_weights only): with ReLU or
linear activations, max pooling, Add and Flatten between them, a zeroed unit outputs
exactly 0 everywhere, which is what removing it means for every later layer."""

import json

import keras
import numpy as np
import pytest
from conftest import run_cli

import neuronviz.api as nv
from neuronviz.core.plan import Plan

L = keras.layers


def _oracle(model, removed: dict) -> keras.Model:
    """A copy of `model` with each removed unit's kernel column and bias set to 0."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for name, idx in removed.items():
        layer = copy.get_layer(name)
        if not hasattr(layer, "kernel"):
            continue  # pooling, Add: pass the zeros through
        w = layer.get_weights()
        w[0][..., list(idx)] = 0.0
        if len(w) > 1:
            w[1][list(idx)] = 0.0
        layer.set_weights(w)
    return copy


def _residual():
    x = keras.Input((12, 12, 3))
    a = L.Conv2D(32, 3, padding="same", activation="relu", name="a")(x)
    b = L.Conv2D(32, 3, padding="same", activation="relu", name="b")(a)
    h = L.Add(name="add")([a, b])
    c = L.Conv2D(48, 3, activation="relu", name="c")(h)
    d = L.Dense(40, activation="relu", name="d")(L.GlobalAveragePooling2D()(c))
    return keras.Model(x, L.Dense(5, name="out")(d))


@pytest.fixture(scope="module")
def residual():
    keras.utils.set_random_seed(3)
    return _residual()


def _widths(result):
    return {k: b for k, (a, b) in result.widths().items()}


@pytest.mark.parametrize("target", ["macs=0.5", "params=0.4", "size=0.02"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_budget_is_met_rounded_and_pruned_equals_oracle(residual, target, scope):
    bp = nv.plan_to_budget(residual, target, scope=scope, round_to=8)
    result = nv.prune(residual, bp.plan)
    # the exact counts of the rebuilt model equal the planner's, and meet the budget
    assert (result.after.macs, result.after.params) == (bp.after.macs, bp.after.params)
    kind, value = target.split("=")
    if kind == "macs":
        assert result.after.macs <= float(value) * result.before.macs
    elif kind == "params":
        assert result.after.params <= float(value) * result.before.params
    else:
        assert result.after.params * 4 / 1e6 <= float(value)
    assert bp.plan and all(w % 8 == 0 for w in _widths(result).values())
    x = np.random.default_rng(0).standard_normal((6, 12, 12, 3)).astype("float32")
    want = _oracle(residual, result.removed).predict(x, verbose=0)
    np.testing.assert_allclose(result.model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)


def test_demo_budget_within_one_rounding_step_and_replays(demo_model, demo_val, tmp_path):
    bp = nv.plan_to_budget(demo_model, "macs=0.5")
    assert bp.round_to == nv.DEFAULT_ROUND_TO == 8
    result = nv.prune(demo_model, bp.plan)
    assert result.after.macs <= 0.5 * result.before.macs
    # within one rounding step of the budget: the slack left is less than what giving
    # back one step (8 units) of some group that lost units would cost
    steps = [
        nv.prune(demo_model, Plan({**bp.plan.remove, layer: idx[8:]})).after.macs
        - result.after.macs
        for layer, idx in bp.plan.remove.items()
    ]
    assert 0.5 * result.before.macs - result.after.macs < max(steps)
    x = demo_val[0][:64]
    want = _oracle(demo_model, result.removed).predict(x, verbose=0)
    np.testing.assert_allclose(result.model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-4)
    path = tmp_path / "plan.json"
    bp.plan.save(path)
    replay = nv.prune(demo_model, Plan.load(path))
    assert replay.removed == result.removed


def test_auto_scope_with_data_returns_the_better_scoring_plan(demo_model):
    data = nv.load_data("demo", demo_model)
    auto = nv.plan_to_budget(demo_model, "macs=0.5", data=data)
    assert nv.plan_to_budget(demo_model, "macs=0.5").scope == "global"  # no data: global
    acc = {
        s: nv.evaluate(demo_model, data, nv.plan_to_budget(demo_model, "macs=0.5", scope=s).plan)
        for s in ("global", "layer")
    }
    assert auto.scope in acc
    assert acc[auto.scope].accuracy == max(a.accuracy for a in acc.values())


def test_sensitive_groups_lose_fewer_units(residual):
    plain = nv.plan_to_budget(residual, "macs=0.6", round_to=1)

    class Curve:  # the fields a SweepResult's curves have that the planner reads
        def __init__(self, name, acc):
            self.name, self.accuracy = name, acc

    class Sweep:
        baseline = nv.Score(0.9, 0.1, 10)
        curves = [Curve("a", [0.9, 0.1]), Curve("c", [0.9, 0.9]), Curve("d", [0.9, 0.9])]

    weighted = nv.plan_to_budget(residual, "macs=0.6", round_to=1, sensitivity=Sweep())
    lost = {k: len(v) for k, v in weighted.plan.remove.items()}
    assert lost.get("a", 0) < len(plain.plan.remove.get("a", ()))


def test_round_plan_keeps_multiples_and_the_users_units(demo_model):
    fewer = nv.round_plan(demo_model, {"conv2d_1": range(10)}, 8)
    assert len(fewer.remove["conv2d_1"]) == 8 and set(fewer.remove["conv2d_1"]) <= set(range(10))
    more = nv.round_plan(demo_model, {"conv2d_1": range(13)}, 8)
    assert len(more.remove["conv2d_1"]) == 16 and set(range(13)) <= set(more.remove["conv2d_1"])
    # the extra units are the least important (smallest L2) of the rest
    norms = nv.importance(demo_model, "l2", ["conv2d_1"])["conv2d_1"]
    extra = sorted(set(more.remove["conv2d_1"]) - set(range(13)))
    rest = sorted(set(range(13, 64)) - set(extra))
    assert norms[extra].max() <= norms[rest].min()
    with pytest.raises(nv.NeuronvizError, match=r"Expected `round_to` <= 32"):
        nv.round_plan(demo_model, {"conv2d": [1]}, 64)
    # a group at least 16 x 8 wide steps by 16: the Dense(512) keeps 496 of 502, not 504
    wide = nv.round_plan(demo_model, {"dense": range(10)}, 8)
    assert len(wide.remove["dense"]) == 16 and set(range(10)) <= set(wide.remove["dense"])


def test_unreachable_and_unknown_targets_refused(residual):
    with pytest.raises(nv.NeuronvizError, match=r"smallest macs this model reaches .* is macs="):
        nv.plan_to_budget(residual, "macs=0.0001")
    with pytest.raises(nv.NeuronvizError, match="Expected a target like"):
        nv.plan_to_budget(residual, "flops=0.5")


def test_compare_latency_times_both(residual):
    small = nv.prune(residual, nv.plan_to_budget(residual, "macs=0.3").plan)
    lat = nv.compare_latency(residual, small, batch_size=4, runs=3)
    assert lat.original_ms > 0 and lat.pruned_ms > 0 and lat.batch_size == 4
    assert lat.to_dict()["latency_ratio"] == pytest.approx(lat.ratio, rel=1e-3)


def test_latency_of_a_model_with_named_dict_inputs():
    """keras-hub backbones take {"token_ids": ..., "padding_mask": ...}: the timed call
    packs the inputs the way the model takes them."""
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    model = keras.Model({"b": b, "a": a}, keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    lat = nv.compare_latency(model, model, batch_size=2, runs=1)
    assert lat.original_ms > 0 and lat.pruned_ms > 0


def test_cli_target_save_plan_data_json_and_replay(tmp_path, demo_model_path):
    out, plan = tmp_path / "b.keras", tmp_path / "p.json"
    r = run_cli(
        "prune", demo_model_path, "-o", out, "--target", "macs=0.5", "--save-plan", plan,
        "--data", "demo", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["macs_after"] <= 0.5 * data["macs_before"] and data["round_to"] == 8
    assert data["latency_ms_before"] > 0 and data["latency_ms_after"] > 0
    assert 0 <= data["predicted"]["accuracy"] <= 1
    replay = run_cli("prune", demo_model_path, "-o", tmp_path / "r.keras", "--plan", plan, "--json")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["removed"] == data["removed"]
    # the predicted score is the pruned model's
    score = nv.evaluate(nv.load_model(out), "demo")
    assert score.accuracy == pytest.approx(data["predicted"]["accuracy"], abs=1e-6)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--target", "flops=0.5"], "Expected --target KIND=VALUE with KIND in macs"),
        (["--target", "macs=0.0001"], "smallest macs this model reaches with round_to=8 is"),
        (["--target", "macs=0.5", "--round-to", "1024"], "Expected `round_to` <= 512"),
        (["--remove", "conv2d:0-3", "--round-to", "64"], "Expected `round_to` <= 32"),
        (["--target", "macs=0.5", "--remove", "dense:1"], "Expected either --target"),
        (["--target", "macs=-1"], "Expected a positive number"),
        (["--target", "macs=0.5", "--steps", "2"], "Expected --steps N >= 1 with --target"),
    ],
)
def test_cli_budget_refusals_one_line_no_file(tmp_path, demo_model_path, args, needle):
    out, plan = tmp_path / "o.keras", tmp_path / "p.json"
    r = run_cli("prune", demo_model_path, "-o", out, "--save-plan", plan, *args)
    assert r.returncode != 0
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and not plan.exists()


def test_cli_steps_reach_the_budget_widths_through_the_schedule(tmp_path, demo_model_path):
    out = tmp_path / "s.keras"
    r = run_cli(
        "prune", demo_model_path, "-o", out, "--target", "macs=0.5", "--steps", "2",
        "--finetune-data", "demo-train", "--data", "demo", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [s["step"] for s in data["steps"]] == [0, 1, 2]
    assert data["macs_after"] <= 0.5 * data["macs_before"]
    assert all(b % 8 == 0 for _, b in data["widths"].values())
    small = nv.load_model(out)
    assert small.get_layer("conv2d").filters == data["widths"]["conv2d"][1]


def test_plan_to_budget_reports_progress_and_stops_when_the_callback_raises(residual):
    seen = []
    bp = nv.plan_to_budget(residual, "macs=0.5", scope="global", progress=seen.append)
    assert bp.plan and seen and seen == sorted(seen) and all(0 < f <= 0.95 for f in seen)

    class Stop(Exception):
        pass

    def stop(fraction):
        raise Stop

    with pytest.raises(Stop):  # how the app cancels a search (workers.report raises)
        nv.plan_to_budget(residual, "macs=0.5", scope="layer", progress=stop)


def test_schedule_ranks_every_step_by_the_budgets_criterion(demo_model, demo_val):
    """A budget planned with a criterion is reached through steps that rank units by that
    criterion too (here 1 / L2: the largest-norm Dense units go first), not by L2."""
    from neuronviz.backend.analysis import importance as imp

    def inverse_l2(ctx, path):
        k = imp.unit_kernel(ctx.trace, path)
        return None if k is None else 1.0 / np.sqrt((k.reshape(-1, k.shape[-1]) ** 2).sum(0))

    nv.register_importance("test_inverse_l2", inverse_l2)
    try:
        budget = nv.plan_to_budget(
            demo_model, "macs=0.5", criterion="test_inverse_l2", scope="layer"
        )
        sched = nv.budget_schedule(demo_model, budget, None, demo_val, steps=2)
        steps = list(sched.run())
    finally:
        imp.IMPORTANCES.pop("test_inverse_l2")
    kernel = demo_model.get_layer("dense").get_weights()[0]
    largest_first = np.argsort(-np.sqrt((kernel**2).sum(0)), kind="stable")
    first = steps[1].removed["dense"]
    assert 0 < len(first) < len(budget.plan.remove["dense"])
    assert sorted(first) == sorted(largest_first[: len(first)].tolist())
    assert {k: b for k, (_, b) in steps[-1].widths.items()} == {
        k: len(demo_model.get_layer(k.rsplit("/", 1)[-1]).get_weights()[1]) - len(v)
        for k, v in budget.plan.remove.items()
    }
