"""Selection criteria: turn per-unit scores or statistics into a Plan (not yet applied).

Numpy only. Every function leaves at least one unit in each layer: when a criterion
would take all of a layer's units, the best-scoring one (largest score, lowest APoZ,
or the first dead unit) stays. Units of layers outside `allowed` (when given) are never
selected; use `neuronviz.core.prunable.prunable_layers(trace)` to skip blocked groups,
groups reaching a model output, and extra layers of one group (with activation
statistics: `prunable_layers(trace, stats, prefer="last")`). Scores come from the
importance plug-ins (neuronviz.backend.analysis.importance). NaN scores are never
selected. Trace.select still checks the plan against the model's groups.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError

SCOPES = ("layer", "global")


def _layers(data: Mapping, allowed: Collection[str] | None) -> list[str]:
    return [k for k in data if allowed is None or k in allowed]


def _count(size: int, fraction: float | None, n: int | None) -> int:
    k = int(np.floor(fraction * size + 1e-9)) if fraction is not None else int(n)
    return max(0, min(k, size))


def _check(fraction, n, scope) -> None:
    if (fraction is None) == (n is None):
        raise NeuronvizError(
            f"Expected exactly one of `fraction` or `n`. Received: fraction={fraction}, n={n}"
        )
    if fraction is not None and not 0.0 <= float(fraction) <= 1.0:
        raise NeuronvizError(f"Expected `fraction` in [0, 1]. Received: fraction={fraction}")
    if n is not None and int(n) < 0:
        raise NeuronvizError(f"Expected `n` >= 0. Received: n={n}")
    if scope not in SCOPES:
        raise NeuronvizError(f"Expected `scope` in {SCOPES}. Received: scope={scope!r}")


def _order(scores: np.ndarray) -> np.ndarray:
    """Indices by ascending score (NaN last), ties by index."""
    s = np.where(np.isnan(scores), np.inf, scores)
    return np.lexsort((np.arange(len(s)), np.isnan(scores), s))


def normalised(scores: np.ndarray) -> np.ndarray:
    """Scores divided by the layer's mean absolute score (unchanged when that is 0)."""
    s = np.asarray(scores, np.float64)
    finite = s[np.isfinite(s)]
    scale = float(np.abs(finite).mean()) if len(finite) else 0.0
    return s / scale if scale > 0 else s


def smallest(
    scores: Mapping[str, np.ndarray],
    fraction: float | None = None,
    n: int | None = None,
    scope: str = "layer",
    allowed: Collection[str] | None = None,
) -> Plan:
    """The units with the smallest scores (e.g. L1/L2 norms).

    scope="layer": `fraction` (floor of fraction x units) or `n` units in each layer.
    scope="global": `fraction` of all units of the considered layers, or `n` in total,
    ranked across layers after dividing each layer's scores by its mean absolute score
    (see `normalised`), so layers of different scale compete fairly.
    At most units-1 are taken from any layer; NaN scores are never taken."""
    _check(fraction, n, scope)
    layers = _layers(scores, allowed)
    arrays = {k: np.asarray(scores[k], np.float64).reshape(-1) for k in layers}
    out: dict[str, list[int]] = {}
    if scope == "layer":
        for k in layers:
            s = arrays[k]
            take = min(_count(len(s), fraction, n), len(s) - 1, int((~np.isnan(s)).sum()))
            if take > 0:
                out[k] = _order(s)[:take].tolist()
        return Plan(out)
    total = sum(len(a) for a in arrays.values())
    budget = _count(total, fraction, n)
    if budget == 0 or not layers:
        return Plan()
    vals = np.concatenate([normalised(arrays[k]) for k in layers])
    which = np.concatenate([np.full(len(arrays[k]), i) for i, k in enumerate(layers)])
    index = np.concatenate([np.arange(len(arrays[k])) for k in layers])
    order = np.lexsort((index, which, np.where(np.isnan(vals), np.inf, vals)))
    order = order[~np.isnan(vals[order])]
    taken = np.zeros(len(layers), np.int64)
    caps = np.array([len(arrays[k]) - 1 for k in layers])
    for j in order:
        w = which[j]
        if taken[w] < caps[w]:
            taken[w] += 1
            out.setdefault(layers[w], []).append(int(index[j]))
            budget -= 1
            if budget == 0:
                break
    return Plan(out)


def _field(stats, name: str) -> np.ndarray:
    return np.asarray(getattr(stats, name) if hasattr(stats, name) else stats[name])


def dead_units(stats: Mapping, allowed: Collection[str] | None = None) -> Plan:
    """Units that were never non-zero on the data (`stats`: layer -> UnitStats or a
    mapping with 'dead'). If a whole layer is dead, its first unit stays."""
    out = {}
    for k in _layers(stats, allowed):
        idx = np.flatnonzero(_field(stats[k], "dead"))
        if len(idx) == len(_field(stats[k], "dead")):
            idx = idx[1:]
        if len(idx):
            out[k] = idx.tolist()
    return Plan(out)


def apoz_above(stats: Mapping, threshold: float, allowed: Collection[str] | None = None) -> Plan:
    """Units whose average percentage of zeros (APoZ, 0..1) is above `threshold`.
    If every unit of a layer qualifies, the one with the lowest APoZ stays."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise NeuronvizError(f"Expected an APoZ `threshold` in [0, 1]. Received: {threshold}")
    out = {}
    for k in _layers(stats, allowed):
        apoz = _field(stats[k], "apoz").astype(np.float64)
        hit = apoz > threshold
        if hit.all() and len(hit):
            hit[_order(apoz)[0]] = False
        if hit.any():
            out[k] = np.flatnonzero(hit).tolist()
    return Plan(out)
