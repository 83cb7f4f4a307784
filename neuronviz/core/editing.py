"""Plan editing: add, remove, toggle or set units of one layer, over coupled units.

Pure NumPy on a trace's unit graph (`trace.layer_units`, `trace.units.roots`,
`trace.graph.aliases()`, `trace.select`): every function returns a new Plan.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError

OPS = ("add", "remove", "toggle", "set")


def unit_roots(trace, path: str, indices) -> np.ndarray:
    """The class (root unit id) of each of `path`'s units at `indices`."""
    m = trace.layer_units[path]
    return trace.units.roots(m[np.asarray(list(indices), np.int64)])


def without_roots(trace, plan: Plan, roots: np.ndarray) -> Plan:
    """`plan` without any unit of the given classes, in whichever layer it names them."""
    aliases = trace.graph.aliases()
    out = {}
    for layer, idx in plan.remove.items():
        keep = ~np.isin(unit_roots(trace, aliases.get(layer, layer), idx), roots)
        out[layer] = [i for i, k in zip(idx, keep, strict=True) if k]
    return Plan(out)


def selected_mask(trace, plan: Plan, path: str) -> np.ndarray:
    """True for each unit of `path` that `plan` removes (directly or through coupling)."""
    return ~trace.select(plan).keep(trace.layer_units[path])


def edited(
    trace,
    plan: Plan,
    path: str,
    indices: Iterable[int],
    op: str = "toggle",
    selected: np.ndarray | None = None,
) -> Plan:
    """`plan` edited at layer `path` (op: add, remove, toggle, set). `selected`: the
    current `selected_mask(trace, plan, path)`, if known (toggle needs it)."""
    idx = np.unique(np.asarray(list(indices), np.int64))
    n = len(trace.layer_units[path])
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise NeuronvizError(
            f"Expected `indices` in [0, {n}) for layer '{path}'. Received: indices={idx[idx >= n][:5].tolist()}"
        )
    if op == "add":
        return plan.merged(Plan({path: idx}))
    if op == "remove":
        return without_roots(trace, plan, unit_roots(trace, path, idx))
    if op == "set":
        cleared = without_roots(trace, plan, unit_roots(trace, path, range(n)))
        return cleared.merged(Plan({path: idx}))
    if op == "toggle":
        on = (selected if selected is not None else selected_mask(trace, plan, path))[idx]
        plan = without_roots(trace, plan, unit_roots(trace, path, idx[on]))
        return plan.merged(Plan({path: idx[~on]}))
    raise ValueError(f"Expected `op` in {OPS}. Received: op={op!r}")
