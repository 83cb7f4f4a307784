"""The public Python API. Everything here is also reachable from the CLI and the GUI.

Example::

    import neuronviz as nv

    model = nv.load_model("neuronviz/demo/model.keras")
    plan = nv.Plan({"dense": range(100)})          # remove 100 of the 512 units
    result = nv.prune(model, plan)                  # a new model; `model` is untouched
    print(result.widths())                          # {'dense': (512, 412)}
    print(result.before.params, "->", result.after.params)
    nv.save_pruned(result, "small.keras", model, plan)   # atomic, reload-checked
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import TYPE_CHECKING

import numpy as np

from neuronviz.backend.analysis.gradients import (
    saliency,
    taylor_importance,
    unit_top_inputs,
    upstream_unit,
)
from neuronviz.backend.analysis.gradients import unit_weight_gradients as _unit_weight_gradients
from neuronviz.backend.analysis.importance import (
    DATA_IMPORTANCES,
    IMPORTANCES,
    WeightStats,
    group_scores,
    layer_scores,
    weight_stats,
)
from neuronviz.backend.analysis.importance import register as register_importance
from neuronviz.backend.analysis.refine import refine_plan as _refine_plan
from neuronviz.backend.analysis.sensitivity import DEFAULT_FRACTIONS, Sweep, SweepResult
from neuronviz.backend.analysis.sensitivity import sweep as _sweep
from neuronviz.backend.analysis.stats import StatsJob, UnitStats, activation_stats
from neuronviz.backend.analysis.transformer import UnitData, unit_data
from neuronviz.backend.model.data import Dataset, load_data
from neuronviz.backend.model.export import export_tflite, file_size, tflite_bytes
from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.io import load_model, save_model
from neuronviz.backend.model.tokens import next_token_data
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.model.trace import trace as _trace
from neuronviz.backend.recovery.finetune import FinetuneJob, Progress
from neuronviz.backend.recovery.schedule import PruneSchedule, ScheduleStep, schedule_fractions
from neuronviz.backend.recovery.sparsity import (
    MagnitudeProfile,
    SparseResult,
    describe_masks,
    masks_from_zeros,
    sparse_masks,
    sparsify,
)
from neuronviz.backend.scoring.latency import Latency, measure_latency
from neuronviz.backend.scoring.latency import compare_latency as _compare_latency
from neuronviz.backend.scoring.preview import Previewer
from neuronviz.backend.surgery.attention import attention_heads
from neuronviz.backend.surgery.budget import DEFAULT_ROUND_TO, SCOPES, BudgetPlan, Target
from neuronviz.backend.surgery.budget import one_layer_per_group as _one_layer_per_group
from neuronviz.backend.surgery.budget import plan_to_budget as _plan_to_budget
from neuronviz.backend.surgery.budget import rank_groups as _rank_groups
from neuronviz.backend.surgery.budget import round_plan as _round_plan
from neuronviz.backend.surgery.counting import Counts, count, count_after
from neuronviz.backend.surgery.masking import masked_model, masked_predict
from neuronviz.backend.surgery.prune import PruneResult, save_pruned
from neuronviz.backend.surgery.prune import prune as _prune
from neuronviz.core.metrics import Score
from neuronviz.core.plan import Plan
from neuronviz.core.units import Group
from neuronviz.errors import NeuronvizError

if TYPE_CHECKING:
    import keras

__all__ = [
    "Plan", "NeuronvizError", "PruneResult", "Counts", "Trace", "Group", "Score",
    "load_model", "save_model", "save_pruned", "analyze", "groups", "prune",
    "masked_model", "masked_predict", "counts", "count_after",
    # data and scoring
    "Dataset", "load_data", "next_token_data", "Previewer", "evaluate",
    # statistics and importance
    "StatsJob", "UnitStats", "activation_stats", "WeightStats", "weight_stats",
    "IMPORTANCES", "register_importance", "importance", "layer_scores", "group_scores",
    "neuron_gradients", "saliency", "taylor_importance", "unit_top_inputs", "upstream_unit",
    "UnitData", "unit_data", "attention_heads",
    "sweep", "Sweep", "SweepResult", "DEFAULT_FRACTIONS",
    # budgets, rounding and speed
    "plan_to_budget", "BudgetPlan", "Target", "round_plan", "refine_plan", "DEFAULT_ROUND_TO",
    "measure_latency", "compare_latency", "Latency", "budget_schedule",
    # recovery
    "finetune", "FinetuneJob", "Progress", "PruneSchedule", "ScheduleStep", "schedule_fractions",
    "sparsify", "SparseResult", "MagnitudeProfile", "masks_from_zeros", "sparse_masks", "describe_masks", "export_tflite", "tflite_bytes", "file_size",
]  # fmt: skip


def analyze(model: keras.Model, input_shape=None) -> Trace:
    """Units, groups and channel maps of `model` (reusable across calls).

    Subclassed models and custom layers made of Keras layers and ops are captured into a
    graph. Inputs with None dimensions are traced at `input_shape` (one shape without the
    batch axis, or a list of them for several inputs), else at a small default
    (16 tokens or steps, 64x64 pixels); `trace.graph.example_note` says which."""
    return _trace(flatten(model, _shapes(input_shape)))


def _shapes(input_shape):
    if input_shape is None:
        return None
    one = all(d is None or isinstance(d, numbers.Integral) for d in input_shape)
    return [tuple(input_shape)] if one else [tuple(s) for s in input_shape]


def groups(model: keras.Model, input_shape=None) -> list[Group]:
    """The coupled unit groups: each lists its member layers and unit count."""
    return analyze(model, input_shape).units.groups


def counts(model: keras.Model, input_shape=None) -> Counts:
    """Parameters and MACs per layer and in total (MACs at the example input shapes)."""
    return count(flatten(model, _shapes(input_shape)))


def prune(model: keras.Model, plan: Plan | dict, trace: Trace | None = None) -> PruneResult:
    """A physically smaller copy of `model` without the plan's units (over whole groups)."""
    plan = plan if isinstance(plan, Plan) else Plan(plan)
    return _prune(model, plan, trace)


def evaluate(
    model: keras.Model,
    data,
    plan: Plan | dict | None = None,
    *,
    trace: Trace | None = None,
    batch_size: int = 512,
) -> Score:
    """Accuracy and loss of `model` on `data` (a Dataset or a source for `load_data`),
    with `plan`'s units masked (scores equal those of the pruned model). For a causal
    LM's token data (`next_token_data`, or an .npz with `token_ids` and no `y`): next-token
    accuracy, loss and perplexity over the counted tokens."""
    plan = plan if isinstance(plan, Plan) else Plan(plan or {})
    data = data if isinstance(data, Dataset) else load_data(data, model)
    tr = trace if trace is not None else analyze(model)
    # one pass and nothing kept: a one-off evaluation gains nothing from caching
    return Previewer(model, tr, data, budget_bytes=0, batch_size=batch_size).score(plan)


def importance(model: keras.Model, name: str = "l2", layers=None, data=None, trace=None) -> dict:
    """Layer -> one score per unit (higher = more important) by importance `name` (see
    IMPORTANCES: l1, l2, bn_gamma, mean_activation, apoz, taylor, head_norm, head_taylor,
    wanda, flap). All but l1, l2 and bn_gamma need `data` (a Dataset or a source for
    `load_data`); taylor and head_taylor use its labels through the compiled loss."""
    tr = trace if trace is not None else analyze(model)
    act = tay = measured = None
    if name in ("mean_activation", "apoz", "taylor", *DATA_IMPORTANCES):
        if data is None:
            raise NeuronvizError(f"Expected `data` to score units by {name}. Received: data=None")
        data = data if isinstance(data, Dataset) else load_data(data, model)
        if name == "taylor":
            tay = taylor_importance(model, tr, data.x, data.y)
        elif name in DATA_IMPORTANCES:
            measured = unit_data(model, tr, data.x, data.y if name == "head_taylor" else None)
        else:
            act = activation_stats(model, tr, data.x)
    return layer_scores(tr, name, layers, act_stats=act, taylor=tay, unit_data=measured)


def neuron_gradients(model: keras.Model, layer: str, unit: int, x, **kw) -> dict:
    """d(one unit's summed activation) / d(every trainable weight), keyed 'layer/weight'."""
    return _unit_weight_gradients(model, layer, unit, x, **kw)


def sweep(model: keras.Model, data, importance=None, fractions=DEFAULT_FRACTIONS, trace=None):
    """A sensitivity sweep (an iterator of progress; `.run()` returns a SweepResult): each
    prunable group loses its least important units, fraction by fraction."""
    tr = trace if trace is not None else analyze(model)
    data = data if isinstance(data, Dataset) else load_data(data, model)
    return _sweep(Previewer(model, tr, data), tr, importance, fractions)


def finetune(model: keras.Model, train, val, **kw) -> FinetuneJob:
    """A fine-tuning job on a copy of `model` (iterate `job.run()`, or `job.run_all()`)."""
    return FinetuneJob(model, train, val, **kw)


def round_plan(model: keras.Model, plan: Plan | dict, round_to: int, criterion="l2", trace=None):
    """`plan` adjusted so that every group it touches keeps a multiple of `round_to` units,
    of 2 x `round_to` from 16 x `round_to` units wide (fewer removed, or a few more of
    the least important by `criterion`)."""
    plan = plan if isinstance(plan, Plan) else Plan(plan)
    tr = trace if trace is not None else analyze(model)
    return _round_plan(tr, plan, int(round_to), importance(model, criterion, trace=tr))


def compare_latency(
    model: keras.Model, pruned, batch_size: int = 32, runs: int = 7, trace=None, progress=None
):
    """Median CPU latency (ms per batch) of `model` and `pruned` (a model or a PruneResult),
    same process, both warm, runs interleaved. `progress(fraction)` after every run."""
    pruned = getattr(pruned, "model", pruned)
    shapes = trace.graph.input_shapes if trace is not None else None
    return _compare_latency(model, pruned, batch_size, runs, shapes=shapes, progress=progress)


def refine_plan(
    model: keras.Model,
    plan: Plan | dict,
    data,
    criterion: str | None = "l2",
    trace=None,
    progress=None,
) -> Plan:
    """`plan` with each layer's units chosen again by exact loss on `data` (as many per
    layer; analysis/refine.py). `criterion` (any importance) limits each round to its
    least important candidates, which is much faster; None scores every unit. Kept
    only where it lowers the loss. `progress(fraction)` after every preview (it may
    raise to stop)."""
    tr = trace if trace is not None else analyze(model)
    data = data if isinstance(data, Dataset) else load_data(data, model)
    scores = None if criterion is None else importance(model, criterion, data=data, trace=tr)
    return _refined(
        model, tr, plan if isinstance(plan, Plan) else Plan(plan), data, scores, progress
    )


def _refined(model, tr, plan: Plan, data: Dataset, scores, progress) -> Plan:
    """`refine_plan` with the importance `scores` known (None: every unit a candidate)."""
    orders = None if scores is None else {r.layer: r.order for r in _rank_groups(tr, scores)}
    plan = _one_layer_per_group(tr, plan)
    return _refine_plan(Previewer(model, tr, data), tr, plan, orders, progress=progress)


def budget_schedule(
    model: keras.Model, budget: BudgetPlan, train, val, steps: int = 3, trace=None, **kw
) -> PruneSchedule:
    """A PruneSchedule that reaches `budget`'s widths in `steps` prune -> fine-tune steps
    (`train`, `val`: Datasets or (x, y); `kw`: PruneSchedule's options). Every step ranks
    the current model's units by `budget.criterion` (data-driven ones on `val`)."""
    tr = trace if trace is not None else analyze(model)
    fractions = {k: len(v) / len(tr.layer_units[k]) for k, v in budget.plan.remove.items()}
    if "scores" not in kw:  # every step ranks by the budget's own criterion
        kw["scores"] = _criterion_ranking(budget.criterion, val)
    xy = [(d.x, d.y) if isinstance(d, Dataset) else d for d in (train, val)]
    return PruneSchedule(model, fractions, steps=steps, train=xy[0], val=xy[1], **kw)


def _part(progress, lo: float, hi: float):
    """`progress` for one part of a job, reporting into [lo, hi]."""
    return None if progress is None else (lambda f: progress(lo + (hi - lo) * f))


def _merit(score: Score, data: Dataset) -> tuple:
    """Higher is better: accuracy, then loss, for classes; loss alone for token data
    (a causal LM's next-token accuracy hides most of what perplexity shows)."""
    loss = -float(score.loss) if score.loss is not None else float("nan")
    loss = loss if np.isfinite(loss) else float("-inf")
    if data.task == "next_token":
        return (loss,)
    return (score.accuracy, loss)


def _criterion_ranking(criterion: str, data):
    """(model, layer) -> one score per current unit: `criterion` reduced over the unit's
    group as a budget plan ranks it (`rank_groups`), measured on the current model."""
    if isinstance(data, tuple):  # (x, y)
        y = np.asarray(data[1])
        data = Dataset(data[0], y, int(y.max()) + 1 if y.size else 0, "(x, y)")
    latest: dict = {}

    def scores(model, layer: str):
        if latest.get("model") is not model:  # once per schedule step
            tr = analyze(model)
            per_layer = importance(model, criterion, data=data, trace=tr)
            latest.update(model=model, per_layer=per_layer, ranked=_rank_groups(tr, per_layer))
        for r in latest["ranked"]:
            if r.layer == layer:
                s = np.empty(r.size)
                s[r.order] = r.scores
                return s
        return latest["per_layer"][layer]

    return scores


def plan_to_budget(
    model: keras.Model,
    target: Target | str,
    *,
    criterion: str = "l2",
    scope: str = "auto",
    round_to: int = DEFAULT_ROUND_TO,
    data=None,
    sensitivity: SweepResult | None = None,
    batch_size: int = 32,
    trace: Trace | None = None,
    progress=None,
    refine: bool = False,
) -> BudgetPlan:
    """The plan that removes the least important units (by importance `criterion`,
    normalised within each group, ranked across groups or, with scope="layer", the same
    share of every group) until `target` is met: "macs=0.5", "params=0.5" (fraction or
    count), "size=5" (MB of float32 weights) or "latency=20" (ms per batch of
    `batch_size`, measured: the plan is refined until the pruned model meets it).
    Every group keeps a multiple of `round_to` units (of 2 x `round_to` from 16 x
    `round_to` units wide). `sensitivity` (a sweep) makes the groups that hurt most lose
    fewest units. scope="auto" (the default) is "global"
    without `data`; with it, both scopes are planned and the one that scores better on
    `data`, exactly (masked), is returned: higher accuracy, then lower loss (lower loss
    alone for a causal LM's token data). With `refine` (needs `data`), the widths found
    are kept and each layer's units are chosen again by exact loss on `data`
    (`refine_plan`: block-greedy over the criterion's 3k + 8 least important candidates
    when k units are left to remove, in 4 rounds; kept only where it lowers the loss).
    `progress(fraction)` is called as the search goes (it may raise to stop)."""
    tr = trace if trace is not None else analyze(model)
    target = target if isinstance(target, Target) else Target.parse(target, batch_size)
    if data is not None and not isinstance(data, Dataset):
        data = load_data(data, model)
    if refine and data is None:
        raise NeuronvizError("Expected `data` to refine the plan with. Received: data=None")
    scores = importance(model, criterion, data=data, trace=tr)
    search = _part(progress, 0.0, 0.1) if refine else progress
    found = _search_budget(
        model, tr, target, data, scores, criterion, scope, int(round_to), sensitivity, search
    )
    if not refine:
        return found
    plan = _refined(model, tr, found.plan, data, scores, _part(progress, 0.1, 1.0))
    return dataclasses.replace(found, plan=plan, refined=plan is not found.plan)


def _search_budget(
    model, tr, target, data, scores, criterion, scope, round_to, sensitivity, progress
) -> BudgetPlan:
    """`plan_to_budget`'s search, once the importance `scores` are known."""
    kw = dict(scores=scores, criterion=criterion, round_to=round_to, progress=progress)
    if scope == "auto" and (data is None or target.kind == "latency"):
        scope = "global"
    if target.kind != "latency" and scope == "auto":  # the better of both, scored exactly
        plans = [
            _plan_to_budget(tr, target, sensitivity=sensitivity, scope=s, **kw) for s in SCOPES
        ]
        previewer = Previewer(model, tr, data)
        ranked = []
        for i, bp in enumerate(plans):
            if progress is not None:  # may raise to stop between the scorings
                progress(0.96 + 0.02 * i)
            ranked.append((_merit(previewer.score(bp.plan), data), -i, bp))
        return max(ranked, key=lambda r: r[:2])[2]
    kw["scope"] = scope
    if target.kind != "latency":
        return _plan_to_budget(tr, target, sensitivity=sensitivity, **kw)
    shapes = tr.graph.input_shapes
    original_ms = measure_latency(model, target.batch_size, shapes=shapes)
    goal = min(1.0, target.value / original_ms)
    for _ in range(4):  # MACs are a guess for latency: measure and tighten
        bp = _plan_to_budget(tr, target, sensitivity=sensitivity, goal=goal, **kw)
        pruned_ms = original_ms
        if bp.plan:
            lat = _compare_latency(
                model,
                prune(model, bp.plan, tr).model,
                target.batch_size,
                shapes=shapes,
                progress=progress,
            )
            original_ms, pruned_ms = lat.original_ms, lat.pruned_ms
        bp.latency_ms = (original_ms, pruned_ms)
        if pruned_ms <= target.value:
            return bp
        goal *= 0.97 * target.value / pruned_ms
    raise NeuronvizError(
        f"Expected a reachable budget: the fastest plan found runs at {pruned_ms:.3g} ms per batch "
        f"of {target.batch_size} (original {original_ms:.3g} ms). Received: {target}"
    )
