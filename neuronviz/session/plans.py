"""The current plan, resolved through the session's one cache of resolved plans, and the
per-unit data views read for it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from neuronviz.core import editing
from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError

PLANS_KEPT = 300


@dataclass(frozen=True)
class Measured:
    """A value measured for one plan (a preview score, a latency). `for_plan` gives it for
    that plan only, so a stale figure never shows."""

    plan: Plan | None = None
    value: object = None

    def for_plan(self, plan: Plan):
        return self.value if self.value is not None and self.plan == plan else None


class Plans:
    """Session methods for the plan (mixed into Session). `_plans` is the one cache of
    resolved plans: the previewer resolves through `check_plan` too."""

    def _init_plans(self) -> None:
        self.plan = Plan()
        self._plans: OrderedDict = OrderedDict()  # (what, plan) -> value, most recent last
        self._plans_lock = threading.RLock()  # the previewer resolves from worker threads

    def _per_plan(self, what: str, plan: Plan, make: Callable):
        """A cached value per plan (the most recent few hundred plans are kept)."""
        key = (what, plan)
        with self._plans_lock:
            if key in self._plans:
                self._plans.move_to_end(key)
                return self._plans[key]
            value = make()
            self._plans[key] = value
            while len(self._plans) > PLANS_KEPT:
                self._plans.popitem(last=False)
            return value

    def check_plan(self, plan: Plan):
        """The resolved Selection of `plan` (raises NeuronvizError for a bad one)."""
        trace = self.trace
        return self._per_plan("sel", plan, lambda: trace.select(plan))

    def set_plan(self, plan: Plan) -> None:
        if self.trace is None:
            raise NeuronvizError("Open a model first.")
        self.check_plan(plan)
        if plan != self.plan:
            self.plan = plan
            self._emit("plan")

    def removed(self, plan: Plan | None = None) -> dict[str, np.ndarray]:
        """Layer -> indices it loses under `plan` (coupled units over whole groups)."""
        plan = self.plan if plan is None else plan
        return self._per_plan(
            "removed",
            plan,
            lambda: {
                k: np.asarray(v, np.int64)
                for k, v in self.check_plan(plan).removed_by_layer().items()
            },
        )

    def selected_mask(self, path: str | None = None, plan: Plan | None = None) -> np.ndarray:
        path = path or self.layer
        mask = np.zeros(self.units(path), bool)
        mask[self.removed(plan).get(path, [])] = True
        return mask

    def unit_totals(self, plan: Plan | None = None) -> tuple[int, int]:
        """(removable units, units removed by `plan`), counting each coupled unit once."""
        if "total_units" not in self._cache:
            groups = {self.group(p).index: self.group(p).size for p in self.selectable_layers()}
            self._cache["total_units"] = sum(groups.values())
        return self._cache["total_units"], int(
            len(self.check_plan(self.plan if plan is None else plan).removed)
        )

    def direct_mask(self, path: str | None = None) -> np.ndarray:
        """Units of `path` named in the plan itself (the others in selected_mask are
        removed because a coupled layer's units are selected)."""
        path = path or self.layer
        mask = np.zeros(self.units(path), bool)
        aliases = self.trace.graph.aliases()
        for layer, idx in self.plan.remove.items():
            if aliases.get(layer, layer) == path:
                mask[list(idx)] = True
        return mask

    def counts_after(self, plan: Plan | None = None):
        """Params and MACs of the pruned model, derived from the selection without
        rebuilding it (exact: the same slicing rules as the surgery)."""
        from neuronviz.api import count_after

        plan = self.plan if plan is None else plan
        return self._per_plan(
            "counts", plan, lambda: count_after(self.trace, self.before, self.check_plan(plan))
        )

    # ---- editing (core.editing on the current plan) ------------------------------------
    def edited(self, path: str, indices: Iterable[int], op: str = "toggle") -> Plan:
        """The current plan edited at `path` (op: add, remove, toggle, set). Pure."""
        selected = self.selected_mask(path) if op == "toggle" else None
        return editing.edited(self.trace, self.plan, path, indices, op, selected)

    def inverted(self, path: str | None = None) -> Plan:
        path = path or self.layer
        return self.edited(path, np.flatnonzero(~self.selected_mask(path)), "set")

    def cleared(self, path: str | None = None) -> Plan:
        """Without any selection (or without the selection in `path`)."""
        return Plan() if path is None else self.edited(path, [], "set")

    # ---- per-unit data, mapped onto any member layer of a group ------------------------
    def source_of(self, path: str) -> tuple[str, np.ndarray] | None:
        """(unit-creating layer, index into its units per unit of `path`) for a layer
        whose units another layer creates (BatchNorm, pooling ...); None if unknown."""
        key = ("source", path)
        if key not in self._cache:
            self._cache[key] = None
            roots = editing.unit_roots(self.trace, path, range(self.units(path)))
            for src in self.weight_stats or {}:
                if src == path:
                    self._cache[key] = (src, np.arange(len(roots)))
                    break
                src_roots = editing.unit_roots(self.trace, src, range(self.units(src)))
                pos = {int(r): i for i, r in enumerate(src_roots)}
                if all(int(r) in pos for r in roots):
                    self._cache[key] = (src, np.array([pos[int(r)] for r in roots]))
                    break
        return self._cache[key]

    def norms(self, path: str | None = None, kind: str = "l2") -> np.ndarray | None:
        """Per-unit norm of the incoming weights of `path`'s units (via their source)."""
        path = path or self.layer
        src = self.source_of(path) if path else None
        if src is None:
            return None
        ws = self.weight_stats[src[0]]
        return np.asarray(ws.norm_l1 if kind == "l1" else ws.norm_l2)[src[1]]

    def act(self, path: str | None = None):
        """The layer's UnitStats (activation statistics), or None before they exist."""
        path = path or self.layer
        return None if self.act_stats is None else self.act_stats.get(path)

    def kernel(self, path: str | None = None):
        """(source layer, its incoming weights as (..., units), index into them per unit
        of `path`), or None for a layer without a known source."""
        path = path or self.layer
        src = self.source_of(path) if path else None
        if src is None:
            return None
        key = ("kernel", src[0])
        if key not in self._cache:
            self._cache[key] = self.trace.rule(src[0]).unit_kernel(self.trace.graph.layers[src[0]])
        return src[0], self._cache[key], src[1]
