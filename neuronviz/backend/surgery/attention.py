"""Attention layers: their heads as units, and as consumers of the units they read.

MultiHeadAttention and GroupedQueryAttention project query, key and value with
EinsumDense kernels of shape (dim, heads, head_dim): a removed input unit is a removed
kernel row, exactly as for Dense. Their output has the query's width when no
`output_shape` is set, so the output carries the query's units (a transformer adds it
to the query's residual stream) and the output projection loses those columns.
GroupedQueryAttention requires query, key and value of one width: they are coupled.

Heads: a projected attention layer's own units are its query heads. Removing head h
removes its columns of the query (and gate) projection, its rows of the output
projection, and, without grouped KV heads, its key and value columns. With grouped KV
heads, query head h reads KV head h // (query heads / KV heads): a KV head goes when its
whole query group goes; a partly kept group keeps its KV head. Keras needs groups of one
size, so a KV head serving c kept query heads is repeated c / gcd(all c) times (exact:
the repeats are copies). Heads mix nothing between them before the output projection,
so the masked model runs the layer as a pruned copy (local surgery).

Attention and AdditiveAttention have no projections: scores mix query and key feature
by feature (a dot product, or tanh(q + k)), so query and key must lose the same
features (they are coupled), and the output carries the value's units. A feature that
is zero in both query and key adds nothing to either score, so zeroing is exact.
"""

from __future__ import annotations

import math

import numpy as np

from neuronviz.backend.surgery.rules import Rule, _last, _np

_PROJECTED = ("MultiHeadAttention", "GroupedQueryAttention")


_ROTARY = ("LlamaAttention", "CachedMistralAttention")  # keras-hub


def rule_for_layer(layer, input_rank: int) -> Rule:
    """Rotary attention for keras-hub's Llama/Mistral layers; projected attention for
    MultiHeadAttention, GroupedQueryAttention and their keras-hub subclasses known to the
    registry (CachedMultiHeadAttention, called without a cache)."""
    if type(layer).__name__ in _ROTARY:
        return RotaryAttention()
    projected = any(c.__name__ in _PROJECTED for c in type(layer).__mro__)
    return ProjectedAttention() if projected else DotAttention()


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
    """MultiHeadAttention, GroupedQueryAttention: query heads are the layer's units; the
    projections' input rows follow the units of query, key and value."""

    mix = "linear"
    has_units = True
    inner_units = True  # its units (heads) are not on its output's channel axis
    unit_kind = "head"

    slots: dict | None = None  # argument name -> input position (set by trace)

    def channel_axis(self, layer, rank):
        return rank - 1  # query, key and value features: the last axis

    def trace(self, ctx, call):
        self.slots = _arguments(call, ("query", "value", "key"))
        _pin_others(ctx, call, self.slots)
        ctx.units_of(call, heads_of(call.layer)[0])
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
        """out_keeps ends with the keep of the layer's heads."""
        q, v, k = (in_keeps[self.slots[n]] for n in ("query", "value", "key"))
        heads = out_keeps[-1]
        kv = kv_heads(heads, heads_of(layer)[1])
        slicers: dict[int, list] = {}

        def add(var, fn):
            if var is not None:
                slicers.setdefault(id(var), []).append(fn)

        for attr, rows, cols in (
            ("_query_dense", q, heads),
            ("_gate_dense", q, heads),
            ("_key_dense", k, kv),
            ("_value_dense", v, kv),
        ):
            sub = getattr(layer, attr, None)
            if sub is not None:
                add(sub.kernel, lambda w, rows=rows, cols=cols: w[rows][:, cols])
                add(getattr(sub, "bias", None), lambda w, cols=cols: w[cols])
        out = layer._output_dense
        add(out.kernel, lambda w: w[heads])
        if self._query_width(layer):
            add(out.kernel, lambda w: w[..., q])
            add(getattr(out, "bias", None), lambda w: w[q])
        new = []
        for var, w in zip(layer.weights, weights, strict=True):
            for fn in slicers.get(id(var), []):
                w = fn(w)
            new.append(np.ascontiguousarray(w))
        return self.config(layer, int(heads.sum()), len(kv)), new

    def config(self, layer, n: int, n_kv: int) -> dict:
        """The config changes of the layer keeping `n` query and `n_kv` KV heads."""
        if type(layer).__name__ == "GroupedQueryAttention":
            return {"num_query_heads": n, "num_key_value_heads": n_kv}
        return {"num_heads": n}

    def unit_kernel(self, layer):
        """Each head's weights as (..., heads): its query (and gate) and value columns (a
        grouped value column under each of its query heads) and its output-projection rows."""
        q, kv = heads_of(layer)
        parts = []
        for attr in ("_query_dense", "_gate_dense", "_value_dense"):
            sub = getattr(layer, attr, None)
            if sub is not None:
                w = (
                    np.repeat(_np(sub.kernel), q // kv, axis=1)
                    if attr == "_value_dense"
                    else _np(sub.kernel)
                )
                parts.append(np.moveaxis(w, 1, -1).reshape(-1, q))
        parts.append(np.moveaxis(_np(layer._output_dense.kernel), 0, -1).reshape(-1, q))
        return np.concatenate(parts)

    def build_copy(self, clone, shapes):
        q, v, k = (shapes[self.slots[n]] for n in ("query", "value", "key"))
        clone.build(q, v, k)

    def macs(self, call):
        """Projections and scores, from the config (heads, head sizes) and input widths, so
        a view of the layer with a pruned config counts the pruned layer."""
        layer, shapes = call.layer, call.input_shapes
        slots = self.slots or {"query": 0, "value": min(1, len(shapes) - 1)}
        sq, sv = shapes[slots["query"]], shapes[slots["value"]]
        sk = shapes[slots.get("key", slots["value"])]
        tq, tv = int(np.prod(sq[1:-1])), int(np.prod(sv[1:-1]))
        q, kv = heads_of(layer)
        if hasattr(layer, "num_query_heads"):  # GroupedQueryAttention
            kd = vd = int(layer.head_dim)
        else:
            kd, vd = int(layer._key_dim), int(layer._value_dim or layer._key_dim)
        out = getattr(layer, "_output_shape", None)
        width = int(sq[-1]) if not out else int(np.prod(out))
        gate = q * vd if getattr(layer, "_gate_dense", None) is not None else 0
        proj_q = tq * (int(sq[-1]) * (q * kd + gate) + q * vd * width)
        proj_kv = tv * (int(sk[-1]) * kv * kd + int(sv[-1]) * kv * vd)
        return proj_q + proj_kv + tq * tv * q * (kd + vd)


def heads_of(layer) -> tuple[int, int]:
    """(query heads, key/value heads) of a projected attention layer (or a view of one)."""
    if hasattr(layer, "num_query_heads"):  # GroupedQueryAttention, LlamaAttention
        return int(layer.num_query_heads), int(layer.num_key_value_heads)
    if hasattr(layer, "_num_query_heads"):  # keras-hub's CachedMistralAttention
        return int(layer._num_query_heads), int(layer._num_key_value_heads)
    return int(layer.num_heads), int(layer.num_heads)


def repeated_kv(trace, selection) -> list[str]:
    """One line per grouped-query layer whose KV heads a selection repeats (its groups
    keep different numbers of query heads): the pruned model's note, said once by
    `prune`, not by the counts and previews that slice the layer too."""
    notes = []
    for path, (q, n_kv) in attention_heads(trace).items():
        heads = selection.keep(trace.layer_units[path])
        kv = kv_heads(heads, n_kv)
        if q != n_kv and len(kv) > len(np.unique(kv)):
            kept = heads.reshape(n_kv, -1).sum(axis=1).tolist()
            notes.append(
                f"Layer '{trace.graph.layers[path].name}' keeps {kept} query heads per KV "
                f"group: its KV heads are repeated to {len(kv)} so that Keras's equal groups "
                "hold. Remove as many heads from every group to shrink the KV projections instead."
            )
    return notes


def attention_heads(trace) -> dict[str, tuple[int, int]]:
    """Layers whose units are attention heads, in graph order -> (query heads, KV heads);
    query head h shares KV head h // (query heads // KV heads)."""
    return {
        p: heads_of(layer)
        for p, layer in trace.graph.layers.items()
        if trace.inner(p) and isinstance(trace.rule(p), ProjectedAttention)
    }


def kv_heads(keep: np.ndarray, n_kv: int) -> np.ndarray:
    """The KV heads the kept query heads read, in order: KV head g repeated
    c_g / gcd(c) times, with c_g its kept query heads (equal groups, as Keras needs)."""
    counts = np.asarray(keep, bool).reshape(n_kv, -1).sum(axis=1)
    d = math.gcd(*counts.tolist()) or 1
    return np.repeat(np.arange(n_kv), counts // d)


class RotaryAttention(ProjectedAttention):
    """keras-hub's Llama-style self-attention (LlamaAttention, CachedMistralAttention):
    query (dim, heads, head_dim), key and value (dim, kv_heads, head_dim), output
    (heads, head_dim, dim), no biases, rotary embeddings within each head's head_dim (so
    removing whole heads is exact). LlamaAttention derives head_dim from dim // heads, so
    a pruned one is rebuilt as the CachedMistralAttention it equals (same weights and
    call, head_dim explicit) where its RoPE is the plain one."""

    def trace(self, ctx, call):
        node = call.node
        pos = {id(t): i for i, t in enumerate(node.input_tensors)}
        args, kwargs = node.arguments.args, node.arguments.kwargs
        hidden = args[0] if args else kwargs["hidden_states"]
        slot = pos[id(hidden)]
        self.slots = {"query": slot, "value": slot, "key": slot}
        _pin_others(ctx, call, self.slots)
        ctx.units_of(call, heads_of(call.layer)[0])
        return [ctx.map(call.inputs[slot]).copy()] + _fixed(call.output_shapes[1:])

    def config(self, layer, n, n_kv):
        return {"num_query_heads": n, "num_key_value_heads": n_kv, "head_dim": head_dim(layer)}

    def rebuilt(self, layer, changes):
        if type(layer).__name__ != "LlamaAttention":
            return super().rebuilt(layer, changes)
        from keras_hub.src.models.mistral.mistral_attention import CachedMistralAttention

        if layer.rope_low_freq_factor is not None or layer.rope_position_scaling_factor != 1.0:
            from neuronviz.errors import NeuronvizError

            raise NeuronvizError(
                f"Expected plain rotary embeddings in layer '{layer.name}' to prune it. "
                f"Received: rope_position_scaling_factor={layer.rope_position_scaling_factor}, "
                f"rope_low_freq_factor={layer.rope_low_freq_factor}."
            )
        return CachedMistralAttention(
            num_query_heads=changes.get("num_query_heads", layer.num_query_heads),
            num_key_value_heads=changes.get("num_key_value_heads", layer.num_key_value_heads),
            head_dim=changes.get("head_dim", head_dim(layer)),
            rope_max_wavelength=layer.rope_max_wavelength,
            kernel_initializer=layer.kernel_initializer,
            dropout=layer.dropout,
            dtype=layer.dtype_policy,
            name=layer.name,
        )

    def build_copy(self, clone, shapes):
        clone.build(shapes[self.slots["query"]])

    def macs(self, call):
        """Projections and scores, from the config (heads, head_dim) and input width."""
        shape = call.input_shapes[self.slots["query"] if self.slots else 0]
        t, dim = int(np.prod(shape[1:-1])), int(shape[-1])
        q, kv = heads_of(call.layer)
        hd = head_dim(call.layer)
        return t * dim * hd * (2 * q + 2 * kv) + t * t * q * 2 * hd


def head_dim(layer) -> int:
    """The head size of a Llama-style attention layer (or a view of one)."""
    size = getattr(layer, "head_dim", None) or getattr(layer, "_head_dim", None)
    return int(size) if size else int(layer._query_dense.kernel.shape[-1])


class DotAttention(Rule):
    """Attention, AdditiveAttention: query and key features coupled; output = value's units."""

    mix = "linear"
    slots: dict | None = None

    def channel_axis(self, layer, rank):
        return rank - 1  # query, key and value features: the last axis

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
