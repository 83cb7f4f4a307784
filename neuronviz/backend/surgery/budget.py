"""Plans to a budget (MACs, params, size, latency) and channel rounding.

Units are ranked with an importance plug-in (analysis/importance.py), reduced over each
group and normalised within it, so groups of different scale compete fairly. A plan is
searched by bisection on how many of the ranked units go (scope="global") or on one
fraction of every group (scope="layer"); each candidate is counted exactly with
`count_after` (no rebuild). With `round_to` N, every group that loses units keeps a
multiple of N, and a group at least 16N wide a multiple of 2N (remove fewer, or a few
more of the least important), so oneDNN's SIMD blocks stay full and the latency follows
the MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from neuronviz.backend.analysis.importance import group_scores, layer_scores
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.surgery.counting import Counts, count, count_after
from neuronviz.core.plan import Plan
from neuronviz.core.prunable import why_not_prunable
from neuronviz.errors import NeuronvizError

TARGET_KINDS = ("macs", "params", "size", "latency")
SCOPES = ("global", "layer")
DEFAULT_ROUND_TO = 8  # measured on this CPU: see README, "Channel rounding"
MB = 1e6


@dataclass(frozen=True)
class Target:
    """A budget: `macs`/`params` as a fraction of the original (<= 1) or an absolute
    count (> 1); `size` in MB of weights; `latency` in ms per batch of `batch_size`."""

    kind: str
    value: float
    batch_size: int = 32

    @classmethod
    def parse(cls, spec: str, batch_size: int = 32) -> Target:
        """'macs=0.5', 'params=1e6', 'size=5', 'latency=20' (ms at `batch_size`)."""
        kind, sep, value = str(spec).partition("=")
        kind = kind.strip().lower()
        if not sep or kind not in TARGET_KINDS:
            raise NeuronvizError(
                f"Expected a target like macs=0.5, params=0.5, size=5 (MB) or latency=20 (ms). "
                f"Received: '{spec}'"
            )
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if not np.isfinite(v) or v <= 0:
            raise NeuronvizError(
                f"Expected a positive number in --target {kind}=. Received: '{spec}'"
            )
        return cls(kind, v, int(batch_size))

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


@dataclass
class Ranked:
    """One prunable group: the layer its plan uses, and its units from least important."""

    group: int
    layer: str
    size: int
    order: np.ndarray  # unit indices of `layer`, least important first
    scores: np.ndarray  # normalised (and sensitivity-weighted) scores, in `order`


def rank_groups(
    trace: Trace,
    scores: Mapping[str, np.ndarray] | None = None,
    *,
    sensitivity=None,
    reduce: str = "mean",
) -> list[Ranked]:
    """Every prunable group (not blocked, not reaching an output, 2+ units) with scores.
    `scores`: layer -> one importance per unit (an importance plug-in's `layer_scores`;
    default L2 norms)."""
    per_layer = layer_scores(trace, "l2") if scores is None else scores
    weights = _sensitivity_weights(sensitivity)
    lu = trace.layer_units
    out = []
    for g in trace.units.groups:
        if why_not_prunable(g, outputs_ok=False, min_units=2):
            continue
        layer = _plan_layer(trace, g)
        if layer is None:
            continue
        s = group_scores(trace, g, per_layer, reduce=reduce, normalise=True)
        if np.isnan(s).all():
            continue
        s = s * weights.get(g.name, 1.0)
        # class i of the group -> index of `layer`'s unit of that class
        where = {int(r): j for j, r in enumerate(trace.units.roots(lu[layer]).tolist())}
        idx = np.array([where[int(r)] for r in g.classes.tolist()], np.int64)
        order = np.lexsort((np.arange(g.size), np.where(np.isnan(s), np.inf, s)))
        out.append(Ranked(g.index, layer, g.size, idx[order], s[order]))
    return out


def _plan_layer(trace: Trace, g) -> str | None:
    """A member whose units are exactly the group's classes, one each."""
    lu = trace.layer_units
    classes = set(g.classes.tolist())
    for path in dict.fromkeys(list(g.sources) + list(g.members)):
        if path in lu and len(lu[path]) == g.size:
            if set(trace.units.roots(lu[path]).tolist()) == classes:
                return path
    return None


def one_layer_per_group(trace: Trace, plan: Plan) -> Plan:
    """`plan` stated through one layer per group it touches (the layer whose units are
    exactly the group's, as budget plans state them); a group without one keeps the
    plan's own entries."""
    sel = trace.select(plan)
    flags = trace.units.removed_flags(sel.removed)
    lu = trace.layer_units
    out = {}
    for g in trace.units.groups:
        if not g.size or not flags[g.classes].any():
            continue
        layer = _plan_layer(trace, g)
        if layer is None:
            out.update({p: v for p, v in plan.remove.items() if p in g.members})
        else:
            out[layer] = np.flatnonzero(~sel.keep(lu[layer])).tolist()
    return Plan(out)


def _sensitivity_weights(sweep) -> dict[str, float]:
    """Group name -> 1 + its mean accuracy drop over the sweep relative to the mean group's
    (its loss rise, for a causal LM's token data): groups that hurt most rank later and so
    lose fewest units."""
    if sweep is None:
        return {}
    tokens = sweep.baseline.perplexity is not None
    base = float((sweep.baseline.loss if tokens else sweep.baseline.accuracy) or 0.0)

    def hurt(c) -> list[float]:
        return (
            [max(v - base, 0.0) for v in c.loss]
            if tokens
            else [max(base - a, 0.0) for a in c.accuracy]
        )

    drops = {c.name: float(np.nanmean(hurt(c))) if c.accuracy else 0.0 for c in sweep.curves}
    mean = float(np.mean(list(drops.values()))) if drops else 0.0
    return {k: 1.0 + (v / mean if mean > 0 else 0.0) for k, v in drops.items()}


# ---- rounding ----------------------------------------------------------------------------
def group_step(size: int, round_to: int) -> int:
    """The rounding step of a group `size` units wide: `round_to`, or twice it from
    16 x `round_to` units on (at least 8 steps still, and oneDNN's 16-float blocks stay
    full: measured on ResNet50, see README, "Channel rounding")."""
    return 2 * round_to if round_to > 1 and size >= 16 * round_to else round_to


def rounded_keep(size: int, keep: int, round_to: int) -> int:
    """`keep` moved to the nearest multiple of the group's step (`group_step`) in
    [step, size]; a group that loses nothing keeps its width."""
    step = group_step(size, round_to)
    if step <= 1 or keep >= size:
        return keep
    k = int(round(keep / step)) * step
    k = max(step, min(k, (size // step) * step))
    return size if k >= size else k


def check_round_to(round_to: int, groups) -> None:
    """Refuse a rounding larger than a group it would apply to."""
    if int(round_to) < 1:
        raise NeuronvizError(f"Expected `round_to` >= 1. Received: round_to={round_to}")
    for g in groups:
        if g.size < round_to:
            raise NeuronvizError(
                f"Expected `round_to` <= {g.size}, the width of group '{g.name}'. "
                f"Received: round_to={round_to}"
            )


def round_plan(
    trace: Trace, plan: Plan, round_to: int, scores: Mapping[str, np.ndarray] | None = None
) -> Plan:
    """`plan` adjusted so that every group it touches keeps a multiple of `round_to`
    units: it removes fewer (the most important of its units are kept) or a few more
    (the least important of the rest, by `scores`: layer -> importance, default L2)."""
    sel = trace.select(plan)
    flags = trace.units.removed_flags(sel.removed)
    groups = trace.units.groups
    touched = [g for g in groups if g.size and flags[g.classes].any()]
    check_round_to(round_to, touched)
    ranked = {r.group: r for r in rank_groups(trace, scores)}
    lu = trace.layer_units
    out: dict[str, list[int]] = {}
    kept_plan = dict(sel.as_plan().remove)
    for g in touched:
        r = ranked.get(g.index)
        if r is None:
            continue  # keeps the plan's own choice (a group no importance can score)
        removed_idx = np.flatnonzero(~sel.keep(lu[r.layer]))
        keep = rounded_keep(g.size, g.size - len(removed_idx), round_to)
        n_remove = g.size - keep
        gone = set(removed_idx.tolist())
        ordered = [i for i in r.order.tolist() if i in gone] + [
            i for i in r.order.tolist() if i not in gone
        ]  # the plan's own units first, least important first within each part
        if n_remove > len(gone):
            extra = [i for i in r.order.tolist() if i not in gone][: n_remove - len(gone)]
            chosen = sorted(gone) + extra
        else:
            chosen = [i for i in ordered if i in gone][:n_remove]
        for path in g.members:  # this group's units are now stated through r.layer only
            kept_plan.pop(path, None)
        if chosen:
            out[r.layer] = sorted(chosen)
    for path, idx in kept_plan.items():  # groups rounding left alone
        if path not in out:
            out.setdefault(path, list(idx))
    result = Plan(out)
    trace.select(result)  # still a valid selection
    return result


# ---- planning to a budget ----------------------------------------------------------------
@dataclass
class BudgetPlan:
    plan: Plan
    target: Target
    before: Counts
    after: Counts
    round_to: int
    scope: str
    criterion: str
    latency_ms: tuple[float, float] | None = None  # (original, pruned) when measured
    refined: bool = False  # units re-chosen by exact loss on data (analysis/refine.py)

    def to_dict(self) -> dict:
        d = {
            "target": str(self.target),
            "criterion": self.criterion,
            "scope": self.scope,
            "round_to": self.round_to,
            "refined": self.refined,
            "params_before": self.before.params,
            "params_after": self.after.params,
            "macs_before": self.before.macs,
            "macs_after": self.after.macs,
            "macs_ratio": self.after.macs / self.before.macs if self.before.macs else None,
        }
        if self.latency_ms:
            d["latency_ms_before"], d["latency_ms_after"] = self.latency_ms
        return d


def _plan_for(ranked: list[Ranked], counts: np.ndarray, round_to: int) -> Plan:
    out = {}
    for r, c in zip(ranked, counts.tolist(), strict=True):
        keep = rounded_keep(r.size, r.size - int(c), round_to) if c else r.size
        if keep < r.size:
            out[r.layer] = sorted(r.order[: r.size - keep].tolist())
    return Plan(out)


def _caps(ranked: list[Ranked], round_to: int) -> np.ndarray:
    """The most units each group may lose: all but one (all but one step when rounding;
    a group narrower than two steps is left alone)."""
    if round_to <= 1:
        return np.array([r.size - 1 for r in ranked], np.int64)
    steps = [group_step(r.size, round_to) for r in ranked]
    return np.array(
        [r.size - s if r.size >= 2 * s else 0 for r, s in zip(ranked, steps, strict=True)], np.int64
    )


def _counts_at(ranked, caps, scope: str, t: float, flat) -> np.ndarray:
    """Units each group loses at step t: the t lowest-ranked units overall (global), or
    floor(t x size) of every group (layer)."""
    if scope == "layer":
        return np.minimum(caps, np.floor(t * np.array([r.size for r in ranked]) + 1e-9)).astype(
            np.int64
        )
    which = flat[: int(t)]
    return np.bincount(which, minlength=len(ranked)).astype(np.int64)


def plan_to_budget(
    trace: Trace,
    target: Target,
    *,
    scores: Mapping[str, np.ndarray] | None = None,
    criterion: str = "l2",
    scope: str = "global",
    round_to: int = DEFAULT_ROUND_TO,
    sensitivity=None,
    goal: float | None = None,
    progress=None,
) -> BudgetPlan:
    """The plan that removes the least important units (by `scores`, layer -> importance
    per unit, computed with `criterion`; default L2) until `target` is met (MACs,
    params or size; a latency target is met through `goal`, a MACs ratio, by the caller).
    Refuses an unreachable budget, naming the smallest reachable one. `progress(fraction)`
    is called after every candidate plan is counted (it may raise to stop)."""
    if scope not in SCOPES:
        raise NeuronvizError(f"Expected `scope` in {SCOPES}. Received: scope={scope!r}")
    before = count(trace.graph)
    ranked = rank_groups(trace, scores, sensitivity=sensitivity)
    if not ranked:
        raise NeuronvizError("Expected a model with prunable groups. Received: none to prune.")
    # a rounding larger than every group could round nothing (narrower groups are left alone)
    check_round_to(round_to, [trace.units.groups[max(ranked, key=lambda r: r.size).group]])
    kind, limit = _limit(target, before, goal)
    caps = _caps(ranked, round_to)
    # the global ranking, capped per group: (group of each ranked unit), least important first
    entries = [
        (s, gi, j) for gi, r in enumerate(ranked) for j, s in enumerate(r.scores[: caps[gi]])
    ]
    entries.sort(key=lambda e: (np.inf if np.isnan(e[0]) else e[0], e[1], e[2]))
    flat = np.array([e[1] for e in entries], np.int64)

    lo, hi = 0.0, (1.0 if scope == "layer" else float(len(flat)))
    expected = 3 + int(np.ceil(np.log2(max(2.0, 1e4 if scope == "layer" else hi))))
    calls = [0]

    def measure(t) -> tuple[Plan, Counts, float]:
        plan = _plan_for(ranked, _counts_at(ranked, caps, scope, t, flat), round_to)
        after = count_after(trace, before, trace.select(plan)) if plan else before
        calls[0] += 1
        if progress is not None:
            progress(min(0.95, calls[0] / expected))
        return plan, after, float(after.macs if kind == "macs" else after.params)

    best = measure(hi)
    if best[2] > limit:
        smallest = best[2] / (before.macs if kind == "macs" else before.params)
        raise NeuronvizError(
            f"Expected a reachable budget: the smallest {target.kind} this model reaches with "
            f"round_to={round_to} is {_describe(target, smallest, best[2], before)}. "
            f"Received: {target}"
        )
    if measure(lo)[2] <= limit:
        best = measure(lo)
    else:
        for _ in range(40 if scope == "layer" else 64):  # bisection: fewest removed that fit
            if hi - lo <= (1e-4 if scope == "layer" else 1):
                break
            mid = (lo + hi) / 2 if scope == "layer" else float((int(lo) + int(hi)) // 2)
            cand = measure(mid)
            if cand[2] <= limit:
                hi, best = mid, cand
            else:
                lo = mid
    plan, after, _ = _refill(trace, before, ranked, best, limit, kind, round_to)
    return BudgetPlan(plan, target, before, after, round_to, scope, criterion)


def _refill(trace, before, ranked, best, limit, kind, round_to, tries: int = 64):
    """Give back one rounding step at a time to the groups whose next unit scores
    highest, while the budget still holds (a coarse step may overshoot it)."""
    plan, after, value = best
    by_layer = {r.layer: r for r in ranked}
    for _ in range(tries):
        if value >= 0.99 * limit:
            break
        options = []
        for layer, idx in plan.remove.items():
            r = by_layer[layer]
            n = len(idx) - max(1, group_step(r.size, round_to))
            options.append((-float(r.scores[n]) if n >= 0 else np.inf, layer, max(n, 0)))
        improved = False
        for _, layer, n in sorted(options):
            cand = Plan({**plan.remove, layer: sorted(by_layer[layer].order[:n].tolist())})
            c_after = count_after(trace, before, trace.select(cand)) if cand else before
            c_value = float(c_after.macs if kind == "macs" else c_after.params)
            if c_value <= limit:
                plan, after, value, improved = cand, c_after, c_value, True
                break
        if not improved:
            break
    return plan, after, value


def _limit(target: Target, before: Counts, goal: float | None) -> tuple[str, float]:
    if target.kind == "latency" or goal is not None:
        return "macs", (goal if goal is not None else 1.0) * before.macs
    if target.kind == "size":
        return "params", target.value * MB / 4.0  # float32 weights
    base = before.macs if target.kind == "macs" else before.params
    return target.kind, target.value * base if target.value <= 1 else target.value


def _describe(target: Target, ratio: float, value: float, before: Counts) -> str:
    if target.kind == "size":
        return f"size={value * 4.0 / MB:.3g} (MB of float32 weights)"
    if target.kind == "latency":
        return f"macs={ratio:.3g} of the original"
    return f"{target.kind}={ratio:.3g} ({int(value):,})"
