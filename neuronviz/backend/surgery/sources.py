"""Rules of the layers that create units: Dense, convolutions (plain, transposed,
separable, depthwise, channel-wise grouped), Embedding and recurrent layers. The rule
interface and the channel-moving rules are in rules.py; the name -> rule table in
registry.py."""

from __future__ import annotations

import numpy as np

from neuronviz.backend.surgery.rules import (
    Opaque,
    Rule,
    _by_name,
    _channels,
    _is_softmax,
    _last,
    _np,
    _positions,
    data_axis,
)  # fmt: skip


class Source(Rule):
    """Layers that create units: Dense, Conv, SeparableConv, ConvTranspose, Embedding."""

    has_units = True
    mix = "linear"
    width_key = "units"

    def channel_axis(self, layer, rank):
        return data_axis(layer, rank)

    def trace(self, ctx, call):
        ids = ctx.units_of(call)
        rank = len(call.output_shapes[0])
        if (
            getattr(call.layer, "activation", None) is not None
            and _is_softmax(call.layer.activation)
            and self.channel_axis(call.layer, rank) == rank - 1
        ):
            ctx.renorm_sources.add(call.path)
        return [ids]

    def config(self, out_keep):
        return {self.width_key: int(out_keep.sum())}

    def unit_kernel(self, layer) -> np.ndarray | None:
        kernel = getattr(layer, "kernel", None)
        return None if kernel is None else _np(kernel)


class DenseRule(Source):
    unit_kind = "neuron"

    def prune(self, layer, weights, in_keeps, out_keeps):
        i, o = in_keeps[0], out_keeps[0]
        return self.config(o), _by_name(
            layer, weights, {"kernel": lambda w: w[i][:, o], "bias": lambda w: w[o]}
        )

    def macs(self, call):
        return int(np.prod(call.input_shapes[0][1:])) * int(call.layer.units)


class ConvRule(Source):
    width_key = "filters"
    unit_kind = "channel"

    def trace(self, ctx, call):
        ids = super().trace(ctx, call)
        groups = getattr(call.layer, "groups", 1)
        if groups != 1:
            reason = f"layer '{call.path}' is a grouped convolution (groups={groups})"
            ctx.pin(ctx.map(call.inputs[0]), reason)
            ctx.pin(ids[0], reason)
        return ids

    def prune(self, layer, weights, in_keeps, out_keeps):
        i, o = in_keeps[0], out_keeps[0]
        if getattr(layer, "groups", 1) != 1:
            i = np.ones(weights[0].shape[-2], bool)
        return self.config(o), _by_name(
            layer, weights, {"kernel": lambda w: w[..., i, :][..., o], "bias": lambda w: w[o]}
        )

    def macs(self, call):
        layer = call.layer
        k = int(np.prod(layer.kernel_size))
        return (
            _positions(call.output_shapes[0], layer)
            * k
            * (_channels(call.input_shapes[0], layer) // layer.groups)
            * int(layer.filters)
        )


class ConvTransposeRule(Source):
    width_key = "filters"
    unit_kind = "channel"

    def unit_kernel(self, layer):
        k = super().unit_kernel(layer)  # (..., filters, in): the unit axis goes last
        return None if k is None else np.moveaxis(k, -2, -1)

    def prune(self, layer, weights, in_keeps, out_keeps):
        i, o = in_keeps[0], out_keeps[0]
        return self.config(o), _by_name(
            layer, weights, {"kernel": lambda w: w[..., o, :][..., i], "bias": lambda w: w[o]}
        )

    def macs(self, call):
        k = int(np.prod(call.layer.kernel_size))
        return (
            _positions(call.input_shapes[0], call.layer)
            * k
            * _channels(call.input_shapes[0], call.layer)
            * int(call.layer.filters)
        )


class SeparableRule(Source):
    width_key = "filters"
    unit_kind = "channel"

    def unit_kernel(self, layer):
        return _np(layer.pointwise_kernel)

    def prune(self, layer, weights, in_keeps, out_keeps):
        i, o = in_keeps[0], out_keeps[0]
        mi = np.repeat(i, layer.depth_multiplier)
        return self.config(o), _by_name(
            layer,
            weights,
            {
                "depthwise_kernel": lambda w: w[..., i, :],
                "pointwise_kernel": lambda w: w[..., mi, :][..., o],
                "bias": lambda w: w[o],
            },
        )

    def macs(self, call):
        layer = call.layer
        pos = _positions(call.output_shapes[0], layer)
        cin = _channels(call.input_shapes[0], layer) * layer.depth_multiplier
        return pos * int(np.prod(layer.kernel_size)) * cin + pos * cin * int(layer.filters)


class DepthwiseRule(Rule):
    """Channel-wise convolution: input channel c becomes outputs c*m .. c*m+m-1."""

    def trace(self, ctx, call):
        return [np.repeat(ctx.map(call.inputs[0]), call.layer.depth_multiplier)]

    def prune(self, layer, weights, in_keeps, out_keeps):
        i = in_keeps[0]
        mi = np.repeat(i, layer.depth_multiplier)
        return {}, _by_name(
            layer, weights, {"kernel": lambda w: w[..., i, :], "bias": lambda w: w[mi]}
        )

    def macs(self, call):
        layer = call.layer
        return (
            _positions(call.output_shapes[0], layer)
            * int(np.prod(layer.kernel_size))
            * _channels(call.input_shapes[0], layer)
            * layer.depth_multiplier
        )


class ChannelwiseConvRule(Rule):
    """A grouped Conv with one input channel per group (depthwise written as Conv2D(groups=C)):
    input channel c becomes filters c*m .. c*m+m-1, and the group count shrinks with it."""

    def trace(self, ctx, call):
        return [np.repeat(ctx.map(call.inputs[0]), call.layer.filters // call.layer.groups)]

    def prune(self, layer, weights, in_keeps, out_keeps):
        i = in_keeps[0]
        o = np.repeat(i, layer.filters // layer.groups)
        cfg = {"filters": int(o.sum()), "groups": int(i.sum())}
        return cfg, _by_name(
            layer, weights, {"kernel": lambda w: w[..., o], "bias": lambda w: w[o]}
        )

    def macs(self, call):
        return (
            _positions(call.output_shapes[0], call.layer)
            * int(np.prod(call.layer.kernel_size))
            * int(call.layer.filters)
        )


class EmbeddingRule(Source):
    width_key = "output_dim"
    mix = None

    def unit_kernel(self, layer):
        return _np(layer.embeddings)  # (vocab, dim)

    def prune(self, layer, weights, in_keeps, out_keeps):
        o = out_keeps[0]
        return self.config(o), _by_name(layer, weights, {"embeddings": lambda w: w[:, o]})


class ReversibleEmbeddingRule(EmbeddingRule):
    """ReversibleEmbedding (Keras 3.15; keras-hub's token embedding): an Embedding whose hidden dimensions are its units,
    also called with `reverse=True` to turn hidden states into logits (x @ E^T when tied,
    x @ R with R (hidden, vocab) when not). Both directions use the same hidden units, so
    removing dimension c removes column c of E (and row c of R): a tied layer stays tied
    and needs no re-tying. The reverse call reads those units (its input is joined to
    them) and mixes them linearly (masked inputs are exact)."""

    mix = "linear"
    same_inputs = False  # the forward call reads token ids, the reverse one hidden states

    @staticmethod
    def _reverse(call) -> bool:
        kwargs, args = call.node.arguments.kwargs, call.node.arguments.args
        return bool(kwargs.get("reverse", args[1] if len(args) > 1 else False))

    def trace(self, ctx, call):
        if not self._reverse(call):
            return super().trace(ctx, call)
        ctx.union(
            ctx.map(call.inputs[0]), ctx.units_of(call, int(call.layer.output_dim)), call.path
        )
        return [np.full(_last(call.output_shapes[0]), -1, np.int64)]

    def prune(self, layer, weights, in_keeps, out_keeps):
        """The hidden keep is the forward call's output keep or the reverse call's input
        keep (whichever call came first); the other side is fixed (it keeps everything)."""
        dim = int(layer.output_dim)
        cut = [k for k in (out_keeps[0], in_keeps[0]) if len(k) == dim and not k.all()]
        o = cut[0] if cut else np.ones(dim, bool)
        return self.config(o), _by_name(
            layer,
            weights,
            {"embeddings": lambda w: w[:, o], "reverse_embeddings": lambda w: w[o]},
        )

    def macs(self, call):
        if not self._reverse(call):
            return 0
        shape = call.input_shapes[0]
        return int(np.prod(shape[1:])) * int(call.layer.input_dim)


_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


class RecurrentRule(Source):
    """SimpleRNN/GRU/LSTM: a unit is one dimension of the state (every state output carries
    the same units). Every gate block of the input kernel, recurrent kernel and bias loses
    its columns, the recurrent kernel its rows. A zeroed output would stay in the
    recurrence, so the masked model runs the layer as a pruned copy (mix "recurrent")."""

    mix = "recurrent"

    def trace(self, ctx, call):
        if len(call.data_inputs) > 1:
            return Opaque("called with an initial state").trace(ctx, call)
        ids = ctx.units_of(call)
        return [ids for _ in call.output_shapes]

    def prune(self, layer, weights, in_keeps, out_keeps):
        i, o = in_keeps[0], out_keeps[0]
        g = np.tile(o, _GATES[type(layer).__name__])
        return self.config(o), _by_name(
            layer,
            weights,
            {
                "kernel": lambda w: w[i][:, g],
                "recurrent_kernel": lambda w: w[o][:, g],
                "bias": lambda w: w[..., g],
            },
        )

    def unit_kernel(self, layer):
        cell = getattr(layer, "cell", layer)
        k = super().unit_kernel(cell)  # (in, gates * units) -> (in, gates, units)
        units = int(cell.units)
        return None if k is None else k.reshape(k.shape[0], k.shape[-1] // units, units)

    def macs(self, call):
        shape = call.input_shapes[0]
        u = int(call.layer.units)
        return int(shape[1]) * _GATES[type(call.layer).__name__] * u * (_last(shape) + u)
