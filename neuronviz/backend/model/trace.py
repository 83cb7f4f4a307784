"""Trace a flat graph into channel maps and unit groups."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuronviz.backend.model.graph import Call, FlatGraph, Key
from neuronviz.backend.surgery.rules import Opaque, Probe, Rule, _last, rule_for
from neuronviz.core.plan import Plan
from neuronviz.core.units import Selection, UnitGraph


@dataclass(eq=False)
class Trace:
    """Everything known about where units live in one model."""

    graph: FlatGraph
    units: UnitGraph
    maps: dict  # tensor key -> channel map
    rules: dict  # layer path -> Rule
    layer_units: dict  # layer path -> map of its output units, or its inner units (heads)
    renorm_sources: set = field(default_factory=set)

    def map(self, key: Key) -> np.ndarray:
        return self.maps[key]

    def rule(self, path: str) -> Rule:
        return self.rules[path]

    def select(self, plan: Plan) -> Selection:
        """Resolve a plan against this model (raises NeuronvizError on bad input)."""
        from neuronviz.backend.surgery.branches import dead_layers

        return self.units.resolve(
            plan, self.layer_units, self.graph.aliases(), lambda sel: dead_layers(self, sel)
        )

    def keeps(self, selection: Selection, call: Call) -> tuple[list, list]:
        """(input keeps, output keeps) of a call under a selection; a rule with inner units
        (attention heads) gets their keep as one more output keep."""
        ins = [selection.keep(self.maps[k]) for k in call.inputs]
        outs = [selection.keep(self.maps[k]) for k in call.outputs]
        if self.rules[call.path].inner_units:
            outs.append(selection.keep(self.layer_units[call.path]))
        return ins, outs

    def inner(self, path: str) -> bool:
        """True when the layer's units are inside it (heads), not on its output."""
        return self.rules[path].inner_units and path in self.layer_units

    def unit_kind(self, path: str) -> str:
        """What a layer's units are, for people: "head" (attention), "channel" (conv),
        "neuron" (a Dense's own units, as in an FFN) or "unit" (the rest, and the hidden
        size shared by several layers, such as a residual stream)."""
        rule = self.rules.get(path)
        if rule is None or path not in self.layer_units:
            return "unit"
        if rule.inner_units:
            return rule.unit_kind
        g = self.group_of(path)
        if not isinstance(g, int):
            return "unit"
        sources = self.units.groups[g].sources
        kinds = {self.rules[s].unit_kind for s in sources if s in self.rules}
        if len(kinds) != 1 or (kinds == {"neuron"} and len(sources) > 1):
            return "unit"
        return kinds.pop()

    def group_of(self, path: str):
        """The group(s) of a layer with units: an index, a list of indices, or None."""
        if path not in self.layer_units:
            return None
        gs = self.units.groups_of(self.layer_units[path])
        return gs[0] if len(gs) == 1 else gs


class _Context:
    def __init__(self, fg: FlatGraph):
        self.units = UnitGraph()
        self.maps: dict = {}
        self.spaces: dict[str, np.ndarray] = {}
        self.renorm_sources: set = set()
        self.moved: dict = {}  # key -> (source map, shape, layers): channels off the last axis

    def pin_moved(self, keys, where: str) -> None:
        """Pin the units of tensors whose channels were moved off the last axis."""
        for k in keys:
            if k in self.moved:
                mover = self.moved[k][2][-1]
                self.pin(
                    self.moved[k][0],
                    f"layer '{mover.name}' ({type(mover).__name__}) mixes the channel axis "
                    f"(moves channels off the last axis) before {where} reads them",
                )

    def map(self, key):
        return self.maps[key]

    def units_of(self, call: Call, size: int | None = None) -> np.ndarray:
        """The layer's own units (one block per layer, shared by all its calls)."""
        if call.path not in self.spaces:
            size = _last(call.output_shapes[0]) if size is None else size
            self.spaces[call.path] = self.units.new_space(call.path, size)
        return self.spaces[call.path]

    def balance(self, a, b, what: str):
        """A selection must remove as many units from `a` as from `b`."""
        self.units.balance(a, b, what)

    def pin(self, ids, reason):
        self.units.pin(np.asarray(ids).tolist(), reason)

    def union(self, a, b, where):
        self.units.union_maps(a, b, where)


def trace(fg: FlatGraph) -> Trace:
    ctx = _Context(fg)
    for k, shape in zip(fg.inputs, fg.input_shapes, strict=True):
        ctx.maps[k] = np.full(_last(shape), -1, dtype=np.int64)
    rules: dict[str, Rule] = {}
    first_maps: dict[str, list] = {}
    for call in fg.calls:
        rank = len(call.input_shapes[0]) if call.input_shapes else 0
        if call.path not in rules:
            refused = fg.refused.get(call.path)
            rules[call.path] = Opaque(refused) if refused else rule_for(call.layer, rank)
        rule = rules[call.path]
        if not isinstance(rule, Probe):
            ctx.pin_moved(call.inputs, f"layer '{call.path}'")
        outs = rule.trace(ctx, call)
        if len(outs) != len(call.outputs) or any(
            len(m) != _last(s) for m, s in zip(outs, call.output_shapes, strict=True)
        ):
            outs = Opaque("unexpected output shape").trace(ctx, call)
            rules[call.path] = Opaque("unexpected output shape")
        for k, m in zip(call.outputs, outs, strict=True):
            ctx.maps[k] = np.asarray(m, dtype=np.int64)
        # a shared layer with weights must see the same channels in every call
        in_maps = [ctx.maps[k] for k in call.inputs]
        if call.path in first_maps and getattr(call.layer, "weights", None):
            for a, b in zip(first_maps[call.path], in_maps, strict=True):
                ctx.union(a, b, call.path)
        first_maps.setdefault(call.path, in_maps)
    ctx.pin_moved(fg.outputs, "the model output")
    for k in fg.outputs:
        ctx.units.mark_output(ctx.maps[k].tolist())
    layer_units = {}
    for path in fg.layers:
        if rules[path].inner_units:
            layer_units[path] = ctx.spaces[path]
            continue
        call = fg.first_call(path)
        m = ctx.maps[call.outputs[0]]
        if (m >= 0).any() and len(np.unique(m)) == len(m) and not isinstance(rules[path], Opaque):
            layer_units[path] = m
    ctx.units.finalize(layer_units)
    return Trace(fg, ctx.units, ctx.maps, rules, layer_units, ctx.renorm_sources)
