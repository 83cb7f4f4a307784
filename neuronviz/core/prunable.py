"""The one prunability check: may a group, or a layer's units, be removed?

Works on a trace's unit graph (`trace.units`, `trace.layer_units`, `trace.group_of`,
`trace.rule(path).has_units`); numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable

NO_UNITS = "this layer has no units of its own"


def why_not_prunable(group, *, outputs_ok: bool = True, min_units: int = 1) -> str | None:
    """None when units of `group` may be removed, else a one-line reason. `outputs_ok`:
    a group reaching a model output counts as prunable (the GUI allows it with a warning);
    `min_units`: the smallest group worth considering (2 for ranking criteria)."""
    if group.blocked:
        return "blocked: " + group.blocked[0]
    if not outputs_ok and group.reaches_output:
        return "its units are the model's outputs"
    if group.size < min_units:
        return "it has a single unit"
    return None


def layer_groups(trace, path: str) -> list[int]:
    """Indices of the groups holding `path`'s units ([] for a layer without units)."""
    g = trace.group_of(path)
    return [] if g is None else (list(g) if isinstance(g, list) else [g])


def why_layer_not_prunable(trace, path: str) -> str | None:
    """None when units of layer `path` may be selected, else a one-line reason."""
    if path not in trace.layer_units:
        return NO_UNITS
    for i in layer_groups(trace, path):
        why = why_not_prunable(trace.units.groups[i])
        if why:
            return "its units cannot be removed: " + why.removeprefix("blocked: ")
    return None


def prunable_layers(
    trace,
    candidates: Iterable[str] | None = None,
    one_per_group: bool = True,
    prefer: str = "first",
) -> list[str]:
    """Layers a criterion may select from: with units, in exactly one group that is
    prunable and does not reach a model output. `candidates` defaults to the
    unit-creating layers. With `one_per_group`, one candidate per group is kept, so
    per-layer selections cannot add up to a whole group: the first in the order given,
    or with prefer="last" the last one (for activation statistics: the output
    downstream layers actually see, e.g. the ReLU after Conv -> BatchNorm)."""
    if candidates is None:
        candidates = [p for p in trace.layer_units if trace.rule(p).has_units]
    groups = trace.units.groups
    chosen: dict[int, list[str]] = {}
    for path in candidates:
        g = trace.group_of(path)
        if isinstance(g, int) and why_not_prunable(groups[g], outputs_ok=False) is None:
            chosen.setdefault(g, []).append(path)
    if not one_per_group:
        return [p for ps in chosen.values() for p in ps]
    return [ps[-1] if prefer == "last" else ps[0] for ps in chosen.values()]
