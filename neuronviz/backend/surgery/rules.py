"""How each Keras layer type moves unit indices, and how to slice its weights.

A *rule* per layer type (Torch-Pruning's per-layer pruning functions):
- ``channel_axis(layer, rank)`` is the axis the layer reads and writes channels on
  (its ``data_format`` or ``axis``); None for layers that act on every axis alike
  (activations, merges), whose channels stay on whatever axis their input has them;
- ``trace(ctx, call)`` returns the channel map of each output (see core.units), or a
  (map, axis) pair where the rule decides the output's channel axis itself;
- ``prune(layer, weights, in_keeps, out_keeps)`` returns (config changes, new weights);
- ``macs(call)`` counts multiply-accumulates;
- ``rebuilt(layer, changes)`` makes the unbuilt pruned copy (by default the same class
  from its config with the changes);
- ``unit_kernel(layer)`` gives the incoming weights of each unit, as (..., units), for
  layers that create units (None for the others): what weight importances score;
- ``mix`` says how the masked model treats the layer's inputs: ``"linear"`` mixes
  channels linearly, so zeroing removed input channels is exact; ``"renorm"``
  normalises over channels, so it is evaluated on the kept channels only.

A rule with ``inner_units`` (attention heads) owns units that are not on its output's
channel axis: its ``prune`` gets their keep as the last entry of ``out_keeps``, and the
masked model runs it as a pruned copy when any of them goes. ``unit_kind`` names its
units for people: "unit", "neuron", "channel" or "head".
"""

from __future__ import annotations

import numpy as np

_CHANNELS_FIRST = "channels_first"


def _last(shape) -> int:
    return int(shape[-1]) if len(shape) > 1 else 1


def width(shape, axis: int) -> int:
    """Channels of a tensor of `shape` along `axis` (1 for a tensor without one)."""
    return int(shape[axis]) if len(shape) > 1 else 1


def data_axis(layer, rank: int) -> int:
    """The channel axis of a layer with a `data_format`, for a tensor of `rank`."""
    if getattr(layer, "data_format", None) == _CHANNELS_FIRST and rank > 2:
        return 1
    return max(rank - 1, 0)


def with_width(shape, axis: int, n: int) -> tuple:
    """`shape` with `n` channels along `axis`."""
    if len(shape) <= 1:
        return tuple(shape)
    return tuple(shape[:axis]) + (int(n),) + tuple(shape[axis + 1 :])


def _axis_of(layer_axis, rank: int) -> int:
    return int(layer_axis) % rank


def _channels(shape, layer) -> int:
    """Channels of a conv layer's input or output of `shape`."""
    return width(shape, data_axis(layer, len(shape)))


def _positions(shape, layer) -> int:
    """Spatial positions of a conv layer's input or output of `shape`."""
    return int(np.prod(shape[1:])) // _channels(shape, layer)


def _by_name(layer, weights, slicers: dict) -> list[np.ndarray]:
    """Slice weights by variable name; names without a slicer are copied unchanged."""
    out = []
    for var, w in zip(layer.weights, weights, strict=True):
        name = var.name.rsplit("/", 1)[-1]
        fn = slicers.get(name)
        out.append(np.ascontiguousarray(fn(w)) if fn is not None else w)
    return out


class Rule:
    mix: str | None = None
    same_inputs = True  # every call of a shared layer reads the same channels
    has_units = False
    inner_units = False
    unit_kind = "unit"

    def channel_axis(self, layer, rank: int) -> int | None:
        return data_axis(layer, rank) if hasattr(layer, "data_format") else None

    def bound(self, in_axes: list[int], out_axes: list[int]) -> Rule:
        """This rule for a layer whose inputs and outputs have channels on these axes."""
        return self

    def trace(self, ctx, call) -> list[np.ndarray]:
        return [ctx.map(call.inputs[0]) for _ in call.output_shapes]

    def prune(self, layer, weights, in_keeps, out_keeps):
        return {}, weights

    def macs(self, call) -> int:
        return 0

    def unit_kernel(self, layer) -> np.ndarray | None:
        """The layer's incoming weights as (..., units), or None (no units of its own)."""
        return None

    def rebuilt(self, layer, changes: dict):
        """A new, unbuilt layer like `layer` with the config `changes` (a pruned copy)."""
        return type(layer).from_config({**layer.get_config(), **changes})

    def build_copy(self, clone, shapes) -> None:
        """Build a stand-alone copy of the layer for inputs of `shapes` (local surgery)."""
        clone.build(shapes[0] if len(shapes) == 1 else shapes)


def _np(v) -> np.ndarray:
    import keras

    return np.asarray(v.numpy() if hasattr(v, "numpy") else keras.ops.convert_to_numpy(v))


class PassThrough(Rule):
    """Channel-wise layers: activations, dropout, noise, ... Indices unchanged, on
    whichever axis the input has its channels."""


class Spatial(PassThrough):
    """Pooling, padding, cropping, upsampling: channel-wise on their data_format's
    channel axis (the last one for layers without a data_format, such as Cropping1D)."""

    def channel_axis(self, layer, rank):
        return data_axis(layer, rank)


class Renorm(PassThrough):
    """Channel-wise in its map, but normalises over the channel axis (softmax)."""

    mix = "renorm"

    def channel_axis(self, layer, rank):
        axis = getattr(layer, "axis", -1)
        return _axis_of(axis, rank) if isinstance(axis, int) else rank - 1


class PerChannel(PassThrough):
    """Channel-wise with per-channel weights (BatchNorm on its `axis`; PReLU, whose
    `alpha` spans the input's axes, on the axis its input has channels on: `axis`)."""

    def __init__(self, axis: int | None = None):
        self.axis = axis

    def channel_axis(self, layer, rank):
        if isinstance(getattr(layer, "axis", None), int):
            return _axis_of(layer.axis, rank)
        return None

    def bound(self, in_axes, out_axes):
        return self if self.axis == in_axes[0] else type(self)(in_axes[0])

    def prune(self, layer, weights, in_keeps, out_keeps):
        keep = in_keeps[0]
        out = []
        for w in weights:
            ax = 0 if w.ndim == 1 or self.axis is None else self.axis - 1
            if w.ndim and ax < w.ndim and w.shape[ax] == len(keep) and len(keep) > 1:
                w = np.compress(keep, w, axis=ax)
            out.append(w)
        return {}, out


class LayerScaleRule(PerChannel):
    """ConvNeXt's LayerScale: x * gamma, with its width in the config."""

    def prune(self, layer, weights, in_keeps, out_keeps):
        _, out = super().prune(layer, weights, in_keeps, out_keeps)
        return {"projection_dim": int(in_keeps[0].sum())}, out


class LayerNorm(PerChannel):
    mix = "renorm"

    def channel_axis(self, layer, rank):
        return _axis_of(layer.axis[0], rank)


class RMSNorm(LayerNorm):
    """keras-hub's RMS norms (LlamaLayerNorm, ...): over the last axis, a `scale` per channel."""

    def channel_axis(self, layer, rank):
        return rank - 1


class UnitNorm(PassThrough):
    """L2-normalises over channels: zeroed channels add nothing to the norm."""

    mix = "linear"

    def channel_axis(self, layer, rank):
        axis = layer.axis
        return _axis_of(axis if isinstance(axis, int) else axis[0], rank)


class Opaque(Rule):
    """A layer neuronviz cannot map indices through: its inputs' units are pinned."""

    def __init__(self, why: str = ""):
        self.why = why

    def channel_axis(self, layer, rank):
        return None

    def trace(self, ctx, call):
        layer = call.layer
        reason = f"they flow into layer '{call.path}' ({type(layer).__name__}), which neuronviz cannot map unit indices through"
        if self.why:
            reason += f" ({self.why})"
        for k in call.inputs:
            ctx.pin(ctx.map(k), reason)
        return [
            (np.full(_last(s), -1, dtype=np.int64), max(len(s) - 1, 0)) for s in call.output_shapes
        ]


def _shared_axis(ctx, call) -> int:
    """The output axis the inputs' channels line up on: that of the first input with
    units (inputs are right-aligned, as in broadcasting), else of the first input."""
    rank = len(call.output_shapes[0])
    ranked = [(k, len(s)) for k, s in zip(call.inputs, call.input_shapes, strict=True)]
    first = next(((k, r) for k, r in ranked if (ctx.map(k) >= 0).any()), ranked[0])
    return ctx.axis(first[0]) + rank - first[1]


class Merge(Rule):
    """Element-wise merges: every input joins one group (broadcast inputs excepted)."""

    def trace(self, ctx, call):
        out_shape = call.output_shapes[0]
        rank = len(out_shape)
        axis = _shared_axis(ctx, call)
        n = width(out_shape, axis)
        full = []
        for k, s in zip(call.inputs, call.input_shapes, strict=True):
            ax = axis - (rank - len(s))
            if len(s) > 1 and ax >= 1 and int(s[ax]) == n:
                full.append(ctx.view(k, ax, call))
        if not full:
            return [(np.full(n, -1, dtype=np.int64), axis)]
        for m in full[1:]:
            ctx.union(full[0], m, call.path)
        return [(full[0].copy(), axis)]


class Concat(Rule):
    def trace(self, ctx, call):
        rank = len(call.output_shapes[0])
        axis = _shared_axis(ctx, call)
        if _axis_of(call.layer.axis, rank) == axis:
            return [(np.concatenate([ctx.view(k, axis, call) for k in call.inputs]), axis)]
        return Merge().trace(ctx, call)


class Probe(Rule):
    """Pure data movement (Flatten, Reshape, Permute, RepeatVector): run the layer on
    channel codes to see where every channel lands. The output's channel axis is one
    along which every position holds a single channel (the last one preferred)."""

    def __init__(self, out_axis: int | None = None):
        self.out_axis = out_axis

    def channel_axis(self, layer, rank):
        return None

    def bound(self, in_axes, out_axes):
        return self if self.out_axis == out_axes[0] else Probe(out_axes[0])

    def trace(self, ctx, call):
        import keras

        key = call.inputs[0]
        in_map, in_axis = ctx.map(key), ctx.axis(key)
        shape = (1,) + tuple(int(d) for d in call.input_shapes[0][1:])
        if len(shape) > 1:
            codes = np.arange(1, shape[in_axis] + 1, dtype=np.float32)
            codes = np.broadcast_to(codes.reshape((-1,) + (1,) * (len(shape) - 1 - in_axis)), shape)
        else:
            codes = np.ones(shape, np.float32)
        if call.node.operation is call.layer:  # the node's own arguments (GetItem's index)
            args, kwargs = call.node.arguments.fill_in({id(call.node.input_tensors[0]): codes})
        else:  # a wrapped layer at one step: the wrapper's arguments are not its own
            args, kwargs = (codes,), {}
        out = keras.ops.convert_to_numpy(call.layer(*args, **kwargs))
        rank = out.ndim
        for axis in [rank - 1] + list(range(1, rank - 1)):
            flat = np.moveaxis(out, axis, -1).reshape(-1, out.shape[axis])
            lo, hi = flat.min(axis=0), flat.max(axis=0)
            if (lo == hi).all() and (lo >= 1).all():
                return [(in_map[lo.astype(np.int64) - 1], axis)]
        return Opaque(
            "it mixes the channel axis: no axis of its output holds one channel per position"
        ).trace(ctx, call)

    def prune(self, layer, weights, in_keeps, out_keeps):
        cfg = {}
        if type(layer).__name__ == "Reshape":
            target = list(layer.target_shape)
            i = -1 if self.out_axis is None else self.out_axis - 1
            if target[i] != -1:
                target[i] = int(out_keeps[0].sum())
            cfg["target_shape"] = tuple(target)
        return cfg, weights


class Index(Probe):
    """Indexing (`x[:, 0, :]`, a GetItem op) that takes whole channels: the channels are
    moved, never chosen (an index into the channel axis would pick other channels once
    some are removed)."""

    def bound(self, in_axes, out_axes):
        return self if self.out_axis == out_axes[0] else Index(out_axes[0])

    def trace(self, ctx, call):
        outs = super().trace(ctx, call)
        m = outs[0][0] if isinstance(outs[0], tuple) else outs[0]
        if not np.array_equal(m, ctx.map(call.inputs[0])):
            return Opaque("it indexes the channel axis").trace(ctx, call)
        return outs


class Reduction(PassThrough):
    """A keras.ops reduction over other axes: the channel axis moves left by `shift`."""

    def __init__(self, shift: int = 0):
        self.shift = shift

    def trace(self, ctx, call):
        key = call.inputs[0]
        return [(ctx.map(key), ctx.axis(key) - self.shift)]


def _is_softmax(fn) -> bool:
    return getattr(fn, "__name__", "") in ("softmax", "log_softmax")
