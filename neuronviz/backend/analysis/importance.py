"""Importance plug-ins: one score per unit, higher = more important (Torch-Pruning's idea).

An importance is a callable ``imp(ctx, path) -> np.ndarray | None``: the score of every
unit of layer `path`, or None where it cannot say (no kernel, no statistics yet). The
registry `IMPORTANCES` holds the built-in ones; `register` adds more:

- ``l1``, ``l2``: norm of each unit's incoming weights (`Rule.unit_kernel`);
- ``bn_gamma``: |gamma| of the BatchNorm right after the layer;
- ``mean_activation``: mean output over the data (activation statistics);
- ``apoz``: 1 - the average percentage of zeros (a unit that is always 0 scores 0);
- ``taylor``: first-order Taylor importance (gradients.taylor_importance);
- ``head_norm``, ``head_taylor`` (attention heads), ``wanda``, ``flap`` (Dense units, such
  as FFN neurons): from one pass over the data (see analysis.transformer).

`layer_scores` asks one importance for many layers; `group_scores` reduces a group's
member layers to one score per class (mean, sum or max), optionally normalised within
the group so that groups of different scale can be ranked globally. The Norms tab,
criteria, the sensitivity sweep, the schedule and the CLI all read from here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from neuronviz.backend.analysis.transformer import UnitData, flap, head_norm, head_taylor, wanda
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.surgery.rules import Opaque, _np
from neuronviz.core.criteria import normalised
from neuronviz.core.names import resolve_layer
from neuronviz.errors import NeuronvizError, close_matches

REDUCTIONS = ("mean", "sum", "max")


@dataclass
class Context:
    """What an importance may read: the trace, and data-derived scores once computed."""

    trace: Trace
    act_stats: Mapping | None = None  # layer -> UnitStats
    taylor: Mapping | None = None  # layer -> Taylor importance per unit
    unit_data: UnitData | None = None  # head outputs and Dense inputs (analysis.transformer)


Importance = Callable[[Context, str], "np.ndarray | None"]


# ---- the plug-ins ------------------------------------------------------------------------
def unit_kernel(trace: Trace, path: str) -> np.ndarray | None:
    """Incoming weights of `path`'s units as (..., units), from its rule; None if none."""
    return trace.rule(path).unit_kernel(trace.graph.layers[path])


def _norm(p: int) -> Importance:
    def norm(ctx: Context, path: str) -> np.ndarray | None:
        k = unit_kernel(ctx.trace, path)
        if k is None:
            return None
        flat = np.abs(k.reshape(-1, k.shape[-1]).astype(np.float64))
        return flat.sum(axis=0) if p == 1 else np.sqrt((flat**2).sum(axis=0))

    norm.__name__ = f"l{p}"
    norm.__doc__ = f"L{p} norm of each unit's incoming weights."
    return norm


_CONSUMERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # trace -> key -> calls


def following_batchnorm(trace: Trace, path: str):
    """The BatchNormalization layer right after `path` (None if there is none)."""
    fg = trace.graph
    consumers = _CONSUMERS.get(trace)
    if consumers is None:
        consumers = _CONSUMERS[trace] = {}
        for call in fg.calls:
            for k in call.inputs:
                consumers.setdefault(k, []).append(call)
    for call in consumers.get(fg.first_call(path).outputs[0], []):
        if type(call.layer).__name__ == "BatchNormalization" and not isinstance(
            trace.rule(call.path), Opaque
        ):
            return call.layer
    return None


def bn_gamma(ctx: Context, path: str) -> np.ndarray | None:
    """|gamma| of the BatchNorm right after the layer."""
    bn = following_batchnorm(ctx.trace, path)
    gamma = getattr(bn, "gamma", None) if bn is not None else None
    return None if gamma is None else np.abs(_np(gamma).astype(np.float64))


def mean_activation(ctx: Context, path: str) -> np.ndarray | None:
    """Mean output of each unit over the data."""
    s = (ctx.act_stats or {}).get(path)
    return None if s is None else np.asarray(s.mean, np.float64)


def apoz(ctx: Context, path: str) -> np.ndarray | None:
    """1 - the average percentage of zeros: rarely active units score low."""
    s = (ctx.act_stats or {}).get(path)
    return None if s is None else 1.0 - np.asarray(s.apoz, np.float64)


def taylor(ctx: Context, path: str) -> np.ndarray | None:
    """First-order Taylor importance (see gradients.taylor_importance)."""
    t = (ctx.taylor or {}).get(path)
    return None if t is None else np.asarray(t, np.float64)


IMPORTANCES: dict[str, Importance] = {
    "l1": _norm(1),
    "l2": _norm(2),
    "bn_gamma": bn_gamma,
    "mean_activation": mean_activation,
    "apoz": apoz,
    "taylor": taylor,
    "head_norm": head_norm,
    "head_taylor": head_taylor,
    "wanda": wanda,
    "flap": flap,
}
DATA_IMPORTANCES = ("head_norm", "head_taylor", "wanda", "flap")  # read Context.unit_data


def register(name: str, importance: Importance) -> None:
    """Add (or replace) an importance under `name`."""
    IMPORTANCES[str(name)] = importance


def get(name: str) -> Importance:
    if name not in IMPORTANCES:
        raise NeuronvizError(
            f"Expected an importance in {', '.join(IMPORTANCES)}. Received: '{name}'."
            + close_matches(name, IMPORTANCES)
        )
    return IMPORTANCES[name]


# ---- asking many layers --------------------------------------------------------------------
def layer_scores(
    trace: Trace,
    name: str = "l2",
    layers: Iterable[str] | None = None,
    *,
    act_stats: Mapping | None = None,
    taylor: Mapping | None = None,
    unit_data: UnitData | None = None,
) -> dict[str, np.ndarray]:
    """Layer -> one score per unit, for the layers (default: every layer with units) the
    importance can score; the others are left out."""
    imp = get(name)
    ctx = Context(trace, act_stats, taylor, unit_data)
    lu = trace.layer_units
    wanted = lu if layers is None else [resolve_layer(p, lu, trace.graph.aliases()) for p in layers]
    out = {}
    for path in wanted:
        s = imp(ctx, path)
        if s is not None and len(s) == len(lu[path]):
            out[path] = np.asarray(s, np.float64)
    return out


def model_scores(model, layer: str, name: str = "l2", trace: Trace | None = None) -> np.ndarray:
    """One score per unit of one layer of `model` (a name, path or alias)."""
    import neuronviz.api as nv

    tr = trace if trace is not None else nv.analyze(model)
    path = resolve_layer(layer, tr.layer_units, tr.graph.aliases())
    s = layer_scores(tr, name, [path]).get(path)
    if s is None:
        raise NeuronvizError(
            f"Expected a layer that {name} importance can score (one with a kernel). "
            f"Received: '{layer}' ({type(tr.graph.layers[path]).__name__}); pass `scores` for it."
        )
    return s


def group_scores(
    trace: Trace,
    group,
    per_layer: Mapping[str, np.ndarray],
    reduce: str = "mean",
    normalise: bool = False,
) -> np.ndarray:
    """One score per class of `group` (in `group.classes` order): the scores its member
    layers give that class, reduced by `reduce` (NaN where no member has a score).
    `normalise` divides by the group's mean absolute score, for ranking across groups."""
    if reduce not in REDUCTIONS:
        raise NeuronvizError(f"Expected `reduce` in {REDUCTIONS}. Received: reduce={reduce!r}")
    pos = {int(r): i for i, r in enumerate(group.classes.tolist())}
    total = np.zeros(group.size, np.float64)
    count = np.zeros(group.size, np.int64)
    top = np.full(group.size, -np.inf)
    lu = trace.layer_units
    for path in dict.fromkeys(list(group.sources) + list(group.members)):
        if path not in per_layer or path not in lu:
            continue
        roots = trace.units.roots(lu[path]).tolist()
        for r, v in zip(roots, np.asarray(per_layer[path], np.float64).tolist(), strict=True):
            i = pos.get(int(r))
            if i is not None:
                total[i] += v
                count[i] += 1
                top[i] = max(top[i], v)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"sum": total, "mean": total / count, "max": top}[reduce]
    out = np.where(count > 0, out, np.nan)
    return normalised(out) if normalise else out


# ---- the weight statistics the Norms view and `inspect` show --------------------------------
@dataclass
class WeightStats:
    """Norms of each unit's incoming weights, its bias and the gamma of a following BatchNorm."""

    norm_l1: np.ndarray
    norm_l2: np.ndarray
    bias: np.ndarray | None
    bn_gamma: np.ndarray | None


def weight_stats(trace: Trace) -> dict[str, WeightStats]:
    """WeightStats for every unit-creating layer with a kernel, in graph order."""
    ctx = Context(trace)
    out = {}
    for path in trace.layer_units:
        rule = trace.rule(path)
        if not rule.has_units or unit_kernel(trace, path) is None:
            continue
        layer = trace.graph.layers[path]
        bias = None if hasattr(layer, "cell") else getattr(layer, "bias", None)
        bn = following_batchnorm(trace, path)
        gamma = getattr(bn, "gamma", None) if bn is not None else None
        out[path] = WeightStats(
            norm_l1=IMPORTANCES["l1"](ctx, path),
            norm_l2=IMPORTANCES["l2"](ctx, path),
            bias=_np(bias) if bias is not None else None,
            bn_gamma=_np(gamma) if gamma is not None else None,
        )
    return out
