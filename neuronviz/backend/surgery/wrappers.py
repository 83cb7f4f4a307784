"""Rules for layers that wrap another layer: Bidirectional and TimeDistributed.

Bidirectional runs a forward and a backward recurrent layer. With a `sum`, `ave` or `mul`
merge, unit i of the output is forward unit i combined with backward unit i: removing it
removes both. With `concat` (or no merge), the halves are separate units, side by side;
Keras builds both halves from one width, so a selection must take as many units from
each half. TimeDistributed applies its layer at every time step: the inner layer's rule
holds, with the time axis removed from the shapes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from neuronviz.backend.surgery.registry import rule_for
from neuronviz.backend.surgery.rules import Opaque, Rule
from neuronviz.backend.surgery.sources import RecurrentRule

_RECURRENT = RecurrentRule()


def rule_for_layer(layer, input_rank: int) -> Rule:
    inner = layer.layer if type(layer).__name__ == "TimeDistributed" else layer.forward_layer
    rule = rule_for(inner, input_rank - 1)
    if isinstance(rule, Opaque):
        return Opaque(f"wraps {type(inner).__name__}: {rule.why}")
    if rule.inner_units:
        return Opaque(f"wraps {type(inner).__name__}, whose units are inside it")
    if type(layer).__name__ == "TimeDistributed":
        return TimeDistributedRule(rule)
    if not isinstance(rule, RecurrentRule) or not isinstance(
        rule_for(layer.backward_layer, input_rank), RecurrentRule
    ):
        return Opaque("a Bidirectional half is not a SimpleRNN, GRU or LSTM")
    if layer.stateful:
        return Opaque("stateful recurrent layer")
    return BidirectionalRule()


def with_changes(serialized: dict, changes: dict) -> dict:
    """A serialised inner layer with config `changes`, rebuilt from its new shape."""
    out = {k: v for k, v in serialized.items() if k != "build_config"}
    out["config"] = {**serialized["config"], **changes}
    return out


class BidirectionalRule(Rule):
    has_units = True
    mix = "recurrent"

    def trace(self, ctx, call):
        layer = call.layer
        if len(call.data_inputs) > 1:
            return Opaque("called with an initial state").trace(ctx, call)
        u = int(layer.forward_layer.units)
        if layer.merge_mode in ("sum", "ave", "mul"):
            fw = bw = ctx.units_of(call, u)
            outs = [fw]
        else:
            ids = ctx.units_of(call, 2 * u)
            fw, bw = ids[:u], ids[u:]
            ctx.balance(fw, bw, f"Bidirectional '{call.path}' (merge_mode={layer.merge_mode})")
            outs = [ids] if layer.merge_mode == "concat" else [fw, bw]
        states = (len(call.output_shapes) - len(outs)) // 2
        return outs + [fw] * states + [bw] * states

    def halves(self, layer, out_keeps):
        u = int(layer.forward_layer.units)
        if layer.merge_mode in ("sum", "ave", "mul"):
            return out_keeps[0], out_keeps[0]
        if layer.merge_mode == "concat":
            return out_keeps[0][:u], out_keeps[0][u:]
        return out_keeps[0], out_keeps[1]

    def prune(self, layer, weights, in_keeps, out_keeps):
        ofw, obw = self.halves(layer, out_keeps)
        n = len(layer.forward_layer.weights)
        cf, wf = _RECURRENT.prune(layer.forward_layer, weights[:n], in_keeps, [ofw])
        cb, wb = _RECURRENT.prune(layer.backward_layer, weights[n:], in_keeps, [obw])
        cfg = layer.get_config()
        changes = {
            "layer": with_changes(cfg["layer"], cf),
            "backward_layer": with_changes(cfg["backward_layer"], cb),
        }
        return changes, wf + wb

    def unit_kernel(self, layer):
        """(in, gates, units): forward then backward units side by side; with a sum, ave
        or mul merge each unit has both halves' gates (in, 2 * gates, units)."""
        fw = _RECURRENT.unit_kernel(layer.forward_layer)
        bw = _RECURRENT.unit_kernel(layer.backward_layer)
        axis = 1 if layer.merge_mode in ("sum", "ave", "mul") else -1
        return np.concatenate([fw, bw], axis=axis)

    def macs(self, call):
        return sum(
            _RECURRENT.macs(dataclasses.replace(call, layer=half))
            for half in (call.layer.forward_layer, call.layer.backward_layer)
        )


class _StepContext:
    """The trace context as the inner layer of a TimeDistributed sees it: channel axes
    counted without the time axis."""

    def __init__(self, ctx, call):
        self._ctx, self._call = ctx, call

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def axis(self, key) -> int:
        return self._ctx.axis(key) - 1

    def view(self, key, axis: int, call):
        return self._ctx.view(key, axis + 1, self._call)


class TimeDistributedRule(Rule):
    """The inner layer's rule at every time step."""

    def __init__(self, inner: Rule):
        self.inner = inner
        self.mix = inner.mix
        self.has_units = inner.has_units
        self.unit_kind = inner.unit_kind

    @staticmethod
    def step_call(call):
        """The call as the inner layer sees it: its layer, shapes without the time axis."""

        def drop(shapes):
            return [tuple(s[:1]) + tuple(s[2:]) for s in shapes]

        return dataclasses.replace(
            call,
            layer=call.layer.layer,
            input_shapes=drop(call.input_shapes),
            output_shapes=drop(call.output_shapes),
        )

    def channel_axis(self, layer, rank):
        if type(layer).__name__ != "TimeDistributed":  # the inner layer, at one step
            return self.inner.channel_axis(layer, rank)
        axis = self.inner.channel_axis(layer.layer, rank - 1)
        return None if axis is None else axis + 1

    def trace(self, ctx, call):
        outs = self.inner.trace(_StepContext(ctx, call), self.step_call(call))
        return [(o[0], o[1] + 1) if isinstance(o, tuple) else o for o in outs]

    def unit_kernel(self, layer):
        return self.inner.unit_kernel(layer.layer)

    def prune(self, layer, weights, in_keeps, out_keeps):
        changes, out = self.inner.prune(layer.layer, weights, in_keeps, out_keeps)
        return {"layer": with_changes(layer.get_config()["layer"], changes)}, out

    def macs(self, call):
        steps = int(call.input_shapes[0][1] or 1)
        return steps * self.inner.macs(self.step_call(call))
