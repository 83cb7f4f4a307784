"""Attention layers as consumers of units (their own heads are not pruned here).

MultiHeadAttention and GroupedQueryAttention project query, key and value with
EinsumDense kernels of shape (dim, heads, head_dim): a removed input unit is a removed
kernel row, exactly as for Dense. Their output has the query's width when no
`output_shape` is set, so the output carries the query's units (a transformer adds it
to the query's residual stream) and the output projection loses those columns.
GroupedQueryAttention requires query, key and value of one width: they are coupled.

Attention and AdditiveAttention have no projections: scores mix query and key feature
by feature (a dot product, or tanh(q + k)), so query and key must lose the same
features (they are coupled), and the output carries the value's units. A feature that
is zero in both query and key adds nothing to either score, so zeroing is exact.
"""

from __future__ import annotations

import numpy as np

from neuronviz.backend.surgery.rules import Rule, _last

_PROJECTED = ("MultiHeadAttention", "GroupedQueryAttention")


def rule_for_layer(layer, input_rank: int) -> Rule:
    return ProjectedAttention() if type(layer).__name__ in _PROJECTED else DotAttention()


def _arguments(call, names: tuple[str, ...]) -> dict:
    """Argument name (query, value, key) -> position in `call.inputs`."""
    pos = {id(t): i for i, t in enumerate(call.node.input_tensors)}
    args, kwargs = call.node.arguments.args, call.node.arguments.kwargs
    if names[0] == "inputs":  # Attention([query, value, key])
        args = list(args[0] if args else kwargs.get("inputs", []))
        names, kwargs = ("query", "value", "key"), {}
    out = {n: pos[id(a)] for n, a in zip(names, args, strict=False) if id(a) in pos}
    out.update({n: pos[id(a)] for n, a in kwargs.items() if n in names and id(a) in pos})
    out.setdefault("key", out["value"])
    return out


def _pin_others(ctx, call, used: dict) -> None:
    keys = {call.inputs[i] for i in used.values()}
    for k in call.inputs:
        if k not in keys:
            ctx.pin(ctx.map(k), f"they reach a mask argument of '{call.path}'")


def _fixed(shapes) -> list[np.ndarray]:
    return [np.full(_last(s), -1, np.int64) for s in shapes]


class ProjectedAttention(Rule):
    """MultiHeadAttention, GroupedQueryAttention: slice the projections' input rows."""

    mix = "linear"

    slots: dict | None = None  # argument name -> input position (set by trace)

    def trace(self, ctx, call):
        self.slots = _arguments(call, ("query", "value", "key"))
        _pin_others(ctx, call, self.slots)
        q = ctx.map(call.inputs[self.slots["query"]])
        if type(call.layer).__name__ == "GroupedQueryAttention":  # Keras needs equal widths
            for name in ("value", "key"):
                ctx.union(q, ctx.map(call.inputs[self.slots[name]]), call.path)
        if self._query_width(call.layer) and _last(call.output_shapes[0]) == len(q):
            return [q.copy()] + _fixed(call.output_shapes[1:])
        return _fixed(call.output_shapes)

    @staticmethod
    def _query_width(layer) -> bool:
        """True when the output has the query's width (no explicit output_shape)."""
        return not getattr(layer, "_output_shape", None)

    def prune(self, layer, weights, in_keeps, out_keeps):
        q, v, k = (in_keeps[self.slots[n]] for n in ("query", "value", "key"))
        rows = {"_query_dense": q, "_gate_dense": q, "_key_dense": k, "_value_dense": v}
        slicers = {}
        for attr, keep in rows.items():
            sub = getattr(layer, attr, None)
            if sub is not None:
                slicers[id(sub.kernel)] = lambda w, keep=keep: w[keep]
        if self._query_width(layer):
            out = layer._output_dense
            slicers[id(out.kernel)] = lambda w: w[..., q]
            if out.bias is not None:
                slicers[id(out.bias)] = lambda w: w[q]
        new = [
            np.ascontiguousarray(slicers[id(var)](w)) if id(var) in slicers else w
            for var, w in zip(layer.weights, weights, strict=True)
        ]
        return {}, new

    def macs(self, call):
        layer, shapes = call.layer, call.input_shapes
        tq = int(np.prod(shapes[0][1:-1]))
        tv = int(np.prod(shapes[1][1:-1])) if len(shapes) > 1 else tq

        def size(attr):
            sub = getattr(layer, attr, None)
            return int(np.prod(sub.kernel.shape)) if sub is not None else 0

        wq = layer._query_dense.kernel.shape
        scores = tq * tv * int(wq[1]) * int(wq[2]) * 2
        proj = tq * (size("_query_dense") + size("_gate_dense") + size("_output_dense"))
        return proj + tv * (size("_key_dense") + size("_value_dense")) + scores


class DotAttention(Rule):
    """Attention, AdditiveAttention: query and key features coupled; output = value's units."""

    mix = "linear"
    slots: dict | None = None

    def trace(self, ctx, call):
        self.slots = _arguments(call, ("inputs",))
        _pin_others(ctx, call, self.slots)
        q, v, k = (ctx.map(call.inputs[self.slots[n]]) for n in ("query", "value", "key"))
        ctx.union(q, k, call.path)
        return [v.copy()] + _fixed(call.output_shapes[1:])

    def prune(self, layer, weights, in_keeps, out_keeps):
        q = in_keeps[self.slots["query"]]
        return {}, [
            w[q] if var.name.rsplit("/", 1)[-1] == "scale" and w.ndim == 1 else w
            for var, w in zip(layer.weights, weights, strict=True)
        ]

    def macs(self, call):
        shapes = call.input_shapes
        tq, tv = int(np.prod(shapes[0][1:-1])), int(np.prod(shapes[1][1:-1]))
        return tq * tv * (_last(shapes[0]) + _last(shapes[1]))
