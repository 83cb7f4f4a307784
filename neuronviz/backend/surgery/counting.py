"""Parameters and multiply-accumulates, per layer and in total."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from neuronviz.backend.model.graph import FlatGraph
from neuronviz.backend.surgery.registry import count_params, rule_for
from neuronviz.backend.surgery.rules import with_width


@dataclass
class Counts:
    params: int
    macs: int
    layers: dict = field(default_factory=dict)  # path -> (params, macs)


def count(fg: FlatGraph) -> Counts:
    per: dict[str, list[int]] = {}
    for call in fg.calls:
        entry = per.setdefault(call.path, [count_params(call.layer), 0])
        rank = len(call.input_shapes[0]) if call.input_shapes else 0
        entry[1] += rule_for(call.layer, rank).macs(call)
    layers = {k: (p, m) for k, (p, m) in per.items()}
    return Counts(int(fg.model.count_params()), sum(m for _, m in layers.values()), layers)


class _LayerView:
    """A layer with some config values replaced (for counting a pruned layer's MACs)."""

    def __init__(self, layer, changes: dict):
        self._layer, self._changes = layer, changes

    def __getattr__(self, name):
        if name in self._changes:
            return self._changes[name]
        return getattr(self._layer, name)


def count_after(tr, before: Counts, sel) -> Counts:
    """Params and MACs of the model pruned by selection `sel`, from `before` (its counts)
    without rebuilding it: each changed call's rule slices dummy weights, exactly as the
    surgery would, and counts the MACs of a view of the layer with the new config."""
    if not sel:
        return before
    fg = tr.graph
    layers = dict(before.layers)
    delta_p = 0
    seen = set()
    macs = {k: 0 for k in layers}
    for call in fg.calls:
        in_keeps, out_keeps = tr.keeps(sel, call)  # with an attention layer's heads
        rule, layer = tr.rule(call.path), call.layer
        if all(k.all() for k in in_keeps + out_keeps):
            macs[call.path] += rule.macs(call)
            continue
        dummies = [  # raw ops (x + y, ops.relu) have no weights
            np.broadcast_to(np.zeros((), np.int8), tuple(v.shape))
            for v in getattr(layer, "weights", [])
        ]
        changes, sliced = rule.prune(layer, dummies, in_keeps, out_keeps)
        if call.path not in seen:
            seen.add(call.path)
            p_new = int(sum(np.size(w) for w in sliced))
            delta_p += layers[call.path][0] - p_new
            layers[call.path] = (p_new, layers[call.path][1])
        shapes_in = [
            with_width(s, a, k.sum())
            for s, k, a in zip(call.input_shapes, in_keeps, tr.input_axes(call), strict=True)
        ]
        shapes_out = [
            with_width(s, tr.axis(o), k.sum())
            for s, k, o in zip(
                call.output_shapes, out_keeps[: len(call.outputs)], call.outputs, strict=True
            )
        ]
        view = dataclasses.replace(
            call, layer=_LayerView(layer, changes), input_shapes=shapes_in, output_shapes=shapes_out
        )
        macs[call.path] += rule.macs(view)
    layers = {k: (p, macs[k]) for k, (p, _) in layers.items()}
    return Counts(before.params - delta_p, sum(m for _, m in layers.values()), layers)
