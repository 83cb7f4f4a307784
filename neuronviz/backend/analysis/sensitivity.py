"""Sensitivity sweep: how accuracy and loss fall as each group loses its weakest units
(and, for a causal LM's token data, how perplexity rises).

For every prunable group (not blocked, not reaching the model output, at least two
units) and every fraction f, the round(f * size) lowest-importance units are masked
(never all of them: at most size - 1) and the model is scored with a Previewer (compiled
where the rerun is big enough: a group's fractions share one trace).

    run = sweep(previewer, trace)
    for progress in run:          # floats in (0, 1]
        ...
    result = run.result           # a SweepResult
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from neuronviz.backend.analysis.importance import group_scores, layer_scores
from neuronviz.backend.model.trace import Trace
from neuronviz.core.metrics import Score
from neuronviz.core.names import resolve_layer
from neuronviz.core.plan import Plan
from neuronviz.core.prunable import why_not_prunable
from neuronviz.core.units import Group
from neuronviz.errors import NeuronvizError

DEFAULT_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class GroupCurve:
    """One group's accuracy and loss at each fraction of its units removed."""

    name: str
    layer: str  # the layer whose unit indices the plans use
    size: int
    members: list[str]
    fractions: list[float] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)  # units removed at each fraction
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    perplexity: list[float] | None = None  # next-token scores only

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "layer": self.layer,
            "size": self.size,
            "members": list(self.members),
            "fractions": list(self.fractions),
            "removed": list(self.removed),
            "accuracy": [_finite(a) for a in self.accuracy],
            "loss": [_finite(v) for v in self.loss],
        }
        if self.perplexity is not None:
            out["perplexity"] = [_finite(v) for v in self.perplexity]
        return out


@dataclass
class SweepResult:
    baseline: Score
    curves: list[GroupCurve]
    skipped: dict[str, str] = field(default_factory=dict)  # group name -> why
    # group name -> its classes, least important first (what each fraction removed)
    orders: dict = field(default_factory=dict, repr=False, compare=False)

    def curve(self, name: str) -> GroupCurve:
        for c in self.curves:
            if c.name == name or c.layer == name:
                return c
        raise KeyError(name)

    def plan_at(self, trace: Trace, name: str, j: int) -> Plan:
        """The plan the sweep scored for group (or layer) `name` at its j-th fraction."""
        c = self.curve(name)
        return _plan_for(trace, self.orders[c.name][: c.removed[j]])

    def to_dict(self) -> dict:
        return {
            "baseline": self.baseline.to_dict(),
            "groups": [c.to_dict() for c in self.curves],
            "skipped": dict(self.skipped),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per group and fraction: group,layer,size,fraction,removed,accuracy,loss
        (and perplexity, for next-token scores)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        tokens = self.baseline.perplexity is not None
        w.writerow(
            ["group", "layer", "size", "fraction", "removed", "accuracy", "loss"]
            + ["perplexity"] * tokens
        )
        for c in self.curves:
            ppl = c.perplexity or [None] * len(c.loss)
            for f, r, a, v, p in zip(c.fractions, c.removed, c.accuracy, c.loss, ppl, strict=True):
                row = [c.name, c.layer, c.size, f"{f:g}", r, _cell(a), _cell(v)]
                w.writerow(row + ([_cell(p)] if tokens else []))
        return buf.getvalue()


class Sweep:
    """An iterator of progress floats; `result` is set (and returned) when it finishes."""

    def __init__(
        self,
        previewer,
        trace: Trace,
        importance: Mapping[str, np.ndarray] | None,
        fractions=DEFAULT_FRACTIONS,
        groups=None,
    ):
        self.previewer, self.trace = previewer, trace
        self.groups = None if groups is None else set(groups)
        self.fractions = _checked_fractions(fractions)
        self.importance = _importance(trace, importance)
        self.result: SweepResult | None = None
        self._steps = iter(self._run())

    def __iter__(self) -> Iterator[float]:
        return self

    def __next__(self) -> float:
        return next(self._steps)

    def run(self) -> SweepResult:
        """Run to the end and return the result."""
        for _ in self:
            pass
        return self.result

    def _run(self):
        base = self.previewer.baseline()
        curves, skipped, orders = [], {}, {}
        jobs = []
        for g in self.trace.units.groups:
            if self.groups is not None and g.name not in self.groups:
                continue
            why = _why_skipped(g, self.trace, self.importance)
            if why:
                skipped[g.name] = why
                continue
            order = _class_order(g, self.trace, self.importance)
            layer = next(s for s in g.sources if s in self.trace.layer_units)
            curve = GroupCurve(g.name, layer, g.size, list(g.members))
            if base.perplexity is not None:
                curve.perplexity = []
            curves.append(curve)
            orders[g.name] = order
            for f in self.fractions:
                k = min(int(round(f * g.size)), g.size - 1)
                jobs.append((curve, f, k, order[:k]))
        total = sum(1 for *_, k, _ in jobs if k > 0)
        done = 0
        for curve, f, k, classes in jobs:
            s = base
            if k > 0:
                try:
                    s = self.previewer.score(_plan_for(self.trace, classes), compiled=True)
                except NeuronvizError:  # e.g. a member layer would lose all its units
                    nan = float("nan")
                    s = Score(nan, nan, base.n, None if base.perplexity is None else nan)
            curve.fractions.append(float(f))
            curve.removed.append(k)
            curve.accuracy.append(s.accuracy)
            curve.loss.append(s.loss)
            if curve.perplexity is not None:
                curve.perplexity.append(s.perplexity)
            if k > 0:
                done += 1
                yield done / total
        if total == 0:
            yield 1.0
        self.result = SweepResult(base, curves, skipped, orders)
        return self.result


def sweep(
    previewer,
    trace: Trace,
    importance: Mapping[str, np.ndarray] | None = None,
    fractions=DEFAULT_FRACTIONS,
    groups=None,
) -> Sweep:
    """A sensitivity sweep (see the module docstring). `importance`: layer -> one value
    per unit (higher = more important); layers left out get the "l2" importance.
    `groups`: the names of the groups to sweep (default: all)."""
    return Sweep(previewer, trace, importance, fractions, groups)


# ---- helpers --------------------------------------------------------------------------
def _checked_fractions(fractions) -> list[float]:
    out = [float(f) for f in fractions]
    if not out:
        raise NeuronvizError("Expected at least one fraction to sweep. Received: none")
    bad = [f for f in out if not 0.0 <= f <= 1.0 or math.isnan(f)]
    if bad:
        raise NeuronvizError(f"Expected fractions in [0, 1]. Received: {bad[:5]}")
    return out


def _importance(trace: Trace, given: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    lu = trace.layer_units
    aliases = trace.graph.aliases()
    sources = [p for g in trace.units.groups for p in g.sources if p in lu]
    out = layer_scores(trace, "l2", sources)
    for name, values in (given or {}).items():
        layer = resolve_layer(name, lu, aliases, "importance for layers with units")
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(values) != len(lu[layer]) or not np.isfinite(values).all():
            raise NeuronvizError(
                f"Expected {len(lu[layer])} finite importance values for layer '{layer}'. "
                f"Received: {len(values)} values"
                + ("" if np.isfinite(values).all() else " with NaN or inf")
            )
        out[layer] = values
    return out


def _why_skipped(g: Group, trace: Trace, importance: dict) -> str | None:
    why = why_not_prunable(g, outputs_ok=False, min_units=2)
    if why:
        return why
    if not any(s in trace.layer_units for s in g.sources):
        return "none of its layers has selectable units"
    if not any(s in importance for s in g.sources):
        return "no importance for its layers (no kernel to measure)"
    return None


def _class_order(g: Group, trace: Trace, importance: dict) -> np.ndarray:
    """The group's classes (root unit ids), least important first (ties: first unit first):
    the importance of its unit-creating layers, summed per class."""
    sources = {p: importance[p] for p in g.sources if p in importance}
    scores = np.nan_to_num(group_scores(trace, g, sources, reduce="sum"), nan=0.0)
    return g.classes[np.argsort(scores, kind="stable")]


def _plan_for(trace: Trace, classes: np.ndarray) -> Plan:
    """A plan removing exactly these classes, named through the layers that hold them."""
    remove: dict[str, list[int]] = {}
    wanted = np.asarray(classes, dtype=np.int64)
    left = set(wanted.tolist())
    for path, m in trace.layer_units.items():
        if not left:
            break
        roots = trace.units.roots(m)
        hit = np.isin(roots, list(left))
        if hit.any():
            remove[path] = np.flatnonzero(hit).tolist()
            left -= set(roots[hit].tolist())
    return Plan(remove)


def _finite(v: float):
    return float(v) if math.isfinite(v) else None


def _cell(v: float) -> str:
    return f"{v:.6g}" if math.isfinite(v) else ""
