"""Trace a flat graph into channel maps and unit groups."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuronviz.backend.model.graph import Call, FlatGraph, Key
from neuronviz.backend.surgery.registry import rule_for
from neuronviz.backend.surgery.rules import Opaque, Rule, width
from neuronviz.core.names import resolve_layer
from neuronviz.core.plan import Plan
from neuronviz.core.units import Selection, UnitGraph
from neuronviz.errors import NeuronvizError


@dataclass(eq=False)
class Trace:
    """Everything known about where units live in one model."""

    graph: FlatGraph
    units: UnitGraph
    maps: dict  # tensor key -> channel map
    rules: dict  # layer path -> Rule
    layer_units: dict  # layer path -> map of its output units, or its inner units (heads)
    renorm_sources: set = field(default_factory=set)
    axes: dict = field(default_factory=dict)  # tensor key -> its channel axis
    views: dict = field(default_factory=dict)  # call index -> [(map, axis)] of its inputs, as read

    def map(self, key: Key) -> np.ndarray:
        return self.maps[key]

    def axis(self, key: Key) -> int:
        """The axis of tensor `key` that its channel map runs along."""
        return self.axes[key]

    def input_maps(self, call: Call) -> list[np.ndarray]:
        """The channel maps of a call's inputs along the axes the layer reads."""
        return [m for m, _ in self.views[call.index]]

    def input_axes(self, call: Call) -> list[int]:
        return [a for _, a in self.views[call.index]]

    def shape(self, key: Key) -> tuple:
        """The symbolic shape of tensor `key`."""
        shapes = self.__dict__.get("_shapes")
        if shapes is None:
            shapes = dict(zip(self.graph.inputs, self.graph.input_shapes, strict=True))
            for c in self.graph.calls:
                shapes.update(zip(c.outputs, c.output_shapes, strict=True))
            self.__dict__["_shapes"] = shapes
        return shapes[key]

    def rule(self, path: str) -> Rule:
        return self.rules[path]

    def select(self, plan: Plan) -> Selection:
        """Resolve a plan against this model (raises NeuronvizError on bad input)."""
        from neuronviz.backend.surgery.branches import dead_layers

        aliases = self.graph.aliases()
        for name in plan.remove:
            self.layer_with_units(name, aliases)
        return self.units.resolve(
            plan, self.layer_units, aliases, lambda sel: dead_layers(self, sel)
        )

    def layer_with_units(self, name: str, aliases: dict | None = None) -> str:
        """The path of layer `name` (or its alias); NeuronvizError naming the true reason
        when the layer is unknown or has no units of its own."""
        aliases = self.graph.aliases() if aliases is None else aliases
        path = aliases.get(name, name)
        if path in self.layer_units:
            return path
        container = self.graph.nested_models.get(path)
        if container is not None:
            inner = [p for p in self.layer_units if p.startswith(path + "/")]
            hint = (
                "select one of its layers with units, such as "
                + ", ".join(f"'{p}'" for p in inner[:3])
                if inner
                else "none of its layers has units of its own"
            )
            raise NeuronvizError(
                f"Expected a layer with units. Received: '{path}' ({type(container).__name__}), "
                f"a model or custom layer made of other layers: {hint}."
            )
        if path not in self.graph.layers:
            resolve_layer(name, self.layer_units, aliases)  # raises: unknown, with suggestions
        layer, rule = self.graph.layers[path], self.rules[path]
        received = f"layer '{path}' ({type(layer).__name__})"
        m = self.maps[self.graph.first_call(path).outputs[0]]
        if isinstance(rule, Opaque):
            why = f" ({rule.why})" if rule.why else ""
            reason = f"which neuronviz cannot map unit indices through{why}"
        elif not (m >= 0).any():
            reason = "whose channels are fixed (such as the model input's), not units"
        else:
            owners = sorted({self.units.owner(int(u)) for u in m[m >= 0][:64].tolist()})
            reason = "which only moves units of " + ", ".join(f"'{o}'" for o in owners[:3])
        raise NeuronvizError(f"Expected a layer with units. Received: {received}, {reason}.")

    def keeps(self, selection: Selection, call: Call) -> tuple[list, list]:
        """(input keeps, output keeps) of a call under a selection; a rule with inner units
        (attention heads) gets their keep as one more output keep."""
        ins = [selection.keep(m) for m in self.input_maps(call)]
        outs = [selection.keep(self.maps[k]) for k in call.outputs]
        if self.rules[call.path].inner_units:
            outs.append(selection.keep(self.layer_units[call.path]))
        return ins, outs

    def inner(self, path: str) -> bool:
        """True when the layer's units are inside it (heads), not on its output."""
        return self.rules[path].inner_units and path in self.layer_units

    def unit_kind(self, path: str) -> str:
        """What a layer's units are, for people: "head" (attention), "channel" (conv),
        "neuron" (a Dense's own units, as in an FFN, or a gated FFN's gate and up) or "unit" (the rest, and the hidden
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
        if len(kinds) != 1 or (kinds == {"neuron"} and len(sources) > 1 and not self._gated(g)):
            return "unit"
        return kinds.pop()

    def _gated(self, g: int) -> bool:
        """Dense layers joined by a product only (a gated MLP: SwiGLU's gate and up), not
        by a sum (a residual stream)."""
        members = self.units.groups[g].members
        names = {type(self.graph.layers[m]).__name__ for m in members if m in self.graph.layers}
        return "Multiply" in names and not names & {"Add", "Subtract", "Average", "Concatenate"}

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
        self.axes: dict = {}
        self.spaces: dict[str, np.ndarray] = {}
        self.renorm_sources: set = set()
        self.views: dict = {}  # key -> (map, axis), for the call being traced
        self.rule: Rule | None = None  # the rule tracing it

    def map(self, key):
        view = self.views.get(key)
        return self.maps[key] if view is None else view[0]

    def axis(self, key) -> int:
        view = self.views.get(key)
        return self.axes[key] if view is None else view[1]

    def view(self, key, axis: int, call: Call) -> np.ndarray:
        """The map of `key` along `axis`. Units lying along another axis are pinned:
        the layer mixes them (a convolution over them, say)."""
        m, own = self.maps[key], self.axes[key]
        if own != axis:
            shape = next(s for k, s in zip(call.inputs, call.input_shapes, strict=True) if k == key)
            if (m >= 0).any():
                self.pin(
                    m,
                    f"layer '{call.path}' ({type(call.layer).__name__}) reads channels on axis "
                    f"{axis} of its input, but these units lie along axis {own}",
                )
            m = np.full(width(shape, axis), -1, dtype=np.int64)
        self.views[key] = (m, axis)
        return m

    def units_of(self, call: Call, size: int | None = None) -> np.ndarray:
        """The layer's own units (one block per layer, shared by all its calls), along its
        rule's channel axis (default: the last)."""
        if call.path not in self.spaces:
            if size is None:
                shape = call.output_shapes[0]
                axis = self.rule.channel_axis(call.layer, len(shape)) if self.rule else None
                size = width(shape, len(shape) - 1 if axis is None else axis)
            self.spaces[call.path] = self.units.new_space(call.path, size)
        return self.spaces[call.path]

    def balance(self, a, b, what: str):
        """A selection must remove as many units from `a` as from `b`."""
        self.units.balance(a, b, what)

    def pin(self, ids, reason):
        self.units.pin(np.asarray(ids).tolist(), reason)

    def union(self, a, b, where):
        self.units.union_maps(a, b, where)


def _trace_call(ctx: _Context, rule: Rule, call: Call) -> tuple[list, list]:
    """Run `rule` on `call`: the output maps and axes, and the inputs' views."""
    ctx.views, ctx.rule = {}, rule
    for k, s in zip(call.inputs, call.input_shapes, strict=True):
        axis = rule.channel_axis(call.layer, len(s))
        if axis is not None and len(s) > 1:
            ctx.view(k, axis, call)
    outs = rule.trace(ctx, call)
    views = [(ctx.map(k), ctx.axis(k)) for k in call.inputs]
    result = []
    for o, shape in zip(outs, call.output_shapes, strict=False):
        if isinstance(o, tuple):
            result.append(o)
            continue
        rank = len(shape)
        axis = rule.channel_axis(call.layer, rank)
        if axis is None:
            same = call.inputs and len(call.input_shapes[0]) == rank
            axis = views[0][1] if same else max(rank - 1, 0)
        result.append((o, axis))
    ok = len(result) == len(call.outputs) and all(
        len(m) == width(s, a) for (m, a), s in zip(result, call.output_shapes, strict=True)
    )
    ctx.views = {}
    return (result if ok else None), views


def trace(fg: FlatGraph) -> Trace:
    ctx = _Context(fg)
    for k, shape in zip(fg.inputs, fg.input_shapes, strict=True):
        ctx.maps[k] = np.full(width(shape, len(shape) - 1), -1, dtype=np.int64)
        ctx.axes[k] = max(len(shape) - 1, 0)
    rules: dict[str, Rule] = {}
    views: dict[int, list] = {}
    first_maps: dict[str, list] = {}
    for call in fg.calls:
        rank = len(call.input_shapes[0]) if call.input_shapes else 0
        in_axis = ctx.axes[call.inputs[0]] if call.inputs else None
        rule = rules.get(call.path)
        if rule is None:
            refused = fg.refused.get(call.path)
            rule = Opaque(refused) if refused else rule_for(call.layer, rank, in_axis)
        outs, views[call.index] = _trace_call(ctx, rule, call)
        if outs is None:
            rule = rules[call.path] = Opaque("unexpected output shape")
            outs, views[call.index] = _trace_call(ctx, rule, call)
        if call.path not in rules:
            rules[call.path] = rule.bound([a for _, a in views[call.index]], [a for _, a in outs])
        for k, (m, a) in zip(call.outputs, outs, strict=True):
            ctx.maps[k] = np.asarray(m, dtype=np.int64)
            ctx.axes[k] = int(a)
        # a shared layer with weights must see the same channels in every call
        in_maps = [m for m, _ in views[call.index]]
        if call.path in first_maps and getattr(call.layer, "weights", None) and rule.same_inputs:
            for a, b in zip(first_maps[call.path], in_maps, strict=True):
                ctx.union(a, b, call.path)
        first_maps.setdefault(call.path, in_maps)
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
    return Trace(fg, ctx.units, ctx.maps, rules, layer_units, ctx.renorm_sources, ctx.axes, views)
