"""How each Keras layer type moves unit indices, and how to slice its weights.

A *rule* per layer type (Torch-Pruning's per-layer pruning functions):
- ``channel_axis(layer, rank)`` is the axis the layer reads and writes channels on
  (its ``data_format`` or ``axis``); None for layers that act on every axis alike
  (activations, merges), whose channels stay on whatever axis their input has them;
- ``trace(ctx, call)`` returns the channel map of each output (see core.units), or a
  (map, axis) pair where the rule decides the output's channel axis itself;
- ``prune(layer, weights, in_keeps, out_keeps)`` returns (config changes, new weights);
- ``macs(call)`` counts multiply-accumulates;
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

import importlib
import math

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
        out = keras.ops.convert_to_numpy(call.layer(codes))
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


def _is_softmax(fn) -> bool:
    return getattr(fn, "__name__", "") in ("softmax", "log_softmax")


_PASS = """Activation ReLU LeakyReLU ELU ThresholdedReLU Dropout SpatialDropout1D SpatialDropout2D
SpatialDropout3D GaussianNoise GaussianDropout AlphaDropout ActivityRegularization Identity
Rescaling""".split()
_SPATIAL = """MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D
AveragePooling3D GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D GlobalAveragePooling1D
GlobalAveragePooling2D GlobalAveragePooling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D
Cropping1D Cropping2D Cropping3D UpSampling1D UpSampling2D UpSampling3D""".split()

RULES: dict[str, Rule] = {name: PassThrough() for name in _PASS}
RULES.update({name: Spatial() for name in _SPATIAL})
RULES.update(
    {
        "Softmax": Renorm(),
        "BatchNormalization": PerChannel(),
        "PReLU": PerChannel(),
        "LayerNormalization": LayerNorm(),
        "UnitNormalization": UnitNorm(),
        "Add": Merge(),
        "Subtract": Merge(),
        "Multiply": Merge(),
        "Average": Merge(),
        "Maximum": Merge(),
        "Minimum": Merge(),
        "Concatenate": Concat(),
        "Flatten": Probe(),
        "Reshape": Probe(),
        "Permute": Probe(),
        "RepeatVector": Probe(),
        "Dense": DenseRule(),
        "Conv1D": ConvRule(),
        "Conv2D": ConvRule(),
        "Conv3D": ConvRule(),
        "Conv1DTranspose": ConvTransposeRule(),
        "Conv2DTranspose": ConvTransposeRule(),
        "Conv3DTranspose": ConvTransposeRule(),
        "SeparableConv1D": SeparableRule(),
        "SeparableConv2D": SeparableRule(),
        "DepthwiseConv1D": DepthwiseRule(),
        "DepthwiseConv2D": DepthwiseRule(),
        "Embedding": EmbeddingRule(),
        "SimpleRNN": RecurrentRule(),
        "GRU": RecurrentRule(),
        "LSTM": RecurrentRule(),
        # keras.applications helpers: ConvNeXt's per-channel LayerScale and StochasticDepth
        "LayerScale": LayerScaleRule(),
        "StochasticDepth": PassThrough(),
    }
)


# Raw Keras operations in a functional graph (e.g. `x + y` on KerasTensors makes an `Add` op)
_ELEMENTWISE_OPS = """Relu Relu6 Sigmoid Tanh Gelu Silu Swish Softplus Softsign Elu Selu LeakyRelu
HardSigmoid HardSilu HardSwish Mish Negative Abs Square Sqrt Exp Log Log1p Cast""".split()
OP_RULES: dict[str, Rule] = {name: PassThrough() for name in _ELEMENTWISE_OPS}
OP_RULES.update(
    {name: Merge() for name in "Add Subtract Multiply Divide TrueDivide Maximum Minimum".split()}
)


# Layer types whose rules live in their own module (name -> module in this package)
_MODULE_RULES = {
    "Bidirectional": "wrappers",
    "TimeDistributed": "wrappers",
    "MultiHeadAttention": "attention",
    "GroupedQueryAttention": "attention",
    "Attention": "attention",
    "AdditiveAttention": "attention",
}
_REDUCTIONS = {"Sum", "Mean", "Max", "Min", "Prod"}  # keras.ops reductions


def _reduction_rule(op, input_rank: int, channels: int) -> Rule:
    """A reduction keeps channels unless it reduces the channel axis (or all axes)."""
    axis = op.axis
    axes = (
        set(range(input_rank)) if axis is None else {axis} if isinstance(axis, int) else set(axis)
    )
    axes = {a % max(input_rank, 1) for a in axes}
    if channels in axes:
        return Opaque(f"reduces the channel axis (axis={axis})")
    kept_dims = getattr(op, "keepdims", False)
    return Reduction(0 if kept_dims else sum(1 for a in axes if a < channels))


class Reduction(PassThrough):
    """A keras.ops reduction over other axes: the channel axis moves left by `shift`."""

    def __init__(self, shift: int = 0):
        self.shift = shift

    def trace(self, ctx, call):
        key = call.inputs[0]
        return [(ctx.map(key), ctx.axis(key) - self.shift)]


def is_layer(op) -> bool:
    import keras

    return isinstance(op, keras.Layer)


def weights_of(op) -> list[np.ndarray]:
    return op.get_weights() if is_layer(op) else []


def rule_for(layer, input_rank: int, input_axis: int | None = None) -> Rule:
    """The rule for `layer`, or an Opaque rule saying why it is unsupported.
    `input_axis`: where its first input has channels (default: the last axis)."""
    name = type(layer).__name__
    if name in _MODULE_RULES and type(layer).__module__.startswith("keras."):
        module = importlib.import_module(f"neuronviz.backend.surgery.{_MODULE_RULES[name]}")
        return module.rule_for_layer(layer, input_rank)
    rank = max(input_rank, 1)
    channels = max(input_rank - 1, 0) if input_axis is None else input_axis
    if not is_layer(layer) and name in _REDUCTIONS:
        return _reduction_rule(layer, input_rank, channels)
    rule = (RULES if is_layer(layer) else OP_RULES).get(name)
    if rule is None or type(layer).__module__.split(".")[0] != "keras":
        return Opaque("custom or unsupported layer type" if rule is None else "custom subclass")
    if name == "LayerNormalization":
        axes = {_axis_of(a, rank) for a in layer.axis}
        if channels not in axes:
            return PassThrough()  # each channel normalised on its own
        if len(axes) != 1 or getattr(layer, "rms_scaling", False):
            return Opaque(f"normalises axes {sorted(axes)}, its channels and more")
    if name in ("Softmax", "UnitNormalization"):
        axis = layer.axis
        axes = {_axis_of(a, rank) for a in ([axis] if isinstance(axis, int) else axis)}
        if channels not in axes:
            return PassThrough()
        if len(axes) != 1:
            return Opaque(f"normalises axes {sorted(axes)}, its channels and more")
    if name == "Activation" and _is_softmax(layer.activation):
        return Renorm() if channels == rank - 1 else PassThrough()
    if name == "Rescaling" and (np.size(layer.scale) > 1 or np.size(layer.offset) > 1):
        return Opaque("per-channel scale")
    if name == "Dense" and (
        getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None)
    ):
        return Opaque("LoRA or quantized kernel")
    if isinstance(rule, ConvRule) and layer.groups > 1 and tuple(layer.kernel.shape)[-2] == 1:
        return ChannelwiseConvRule()
    if isinstance(rule, RecurrentRule) and layer.stateful:
        return Opaque("stateful recurrent layer")
    return rule


def count_params(layer) -> int:
    return int(sum(math.prod(v.shape) for v in getattr(layer, "weights", [])))
