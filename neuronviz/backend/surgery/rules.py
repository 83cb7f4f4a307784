"""How each Keras layer type moves unit indices, and how to slice its weights.

A *rule* per layer type (Torch-Pruning's per-layer pruning functions):
- ``trace(ctx, call)`` returns the channel map of each output (see core.units);
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
    """Channel-wise layers: activations, dropout, pooling, padding, ... Indices unchanged."""


class Renorm(PassThrough):
    """Channel-wise in its map, but normalises over the channel axis (softmax)."""

    mix = "renorm"


class PerChannel(PassThrough):
    """Channel-wise with per-channel weights on the last axis (BatchNorm, PReLU)."""

    def prune(self, layer, weights, in_keeps, out_keeps):
        keep = in_keeps[0]
        out = [
            w[..., keep] if w.ndim and w.shape[-1] == len(keep) and len(keep) > 1 else w
            for w in weights
        ]
        return {}, out


class LayerScaleRule(PerChannel):
    """ConvNeXt's LayerScale: x * gamma, with its width in the config."""

    def prune(self, layer, weights, in_keeps, out_keeps):
        _, out = super().prune(layer, weights, in_keeps, out_keeps)
        return {"projection_dim": int(in_keeps[0].sum())}, out


class LayerNorm(PerChannel):
    mix = "renorm"


class UnitNorm(PassThrough):
    """L2-normalises over channels: zeroed channels add nothing to the norm."""

    mix = "linear"


class Opaque(Rule):
    """A layer neuronviz cannot map indices through: its inputs' units are pinned."""

    def __init__(self, why: str = ""):
        self.why = why

    def trace(self, ctx, call):
        layer = call.layer
        reason = f"they flow into layer '{call.path}' ({type(layer).__name__}), which neuronviz cannot map unit indices through"
        if self.why:
            reason += f" ({self.why})"
        for k in call.inputs:
            ctx.pin(ctx.map(k), reason)
        return [np.full(_last(s), -1, dtype=np.int64) for s in call.output_shapes]


class Merge(Rule):
    """Element-wise merges: every input joins one group (broadcast inputs excepted)."""

    def trace(self, ctx, call):
        maps = [ctx.map(k) for k in call.inputs]
        width = _last(call.output_shapes[0])
        full = [m for m in maps if len(m) == width]
        for m in full[1:]:
            ctx.union(full[0], m, call.path)
        return [full[0].copy()]


class Concat(Rule):
    def trace(self, ctx, call):
        rank = len(call.output_shapes[0])
        axis = call.layer.axis
        if axis in (-1, rank - 1):
            return [np.concatenate([ctx.map(k) for k in call.inputs])]
        return Merge().trace(ctx, call)


class Probe(Rule):
    """Pure data movement (Flatten, Reshape, Permute, RepeatVector): run the layer on
    channel codes to see where every channel lands. A move that takes channels off the
    last axis (Permute before Flatten) is followed through the next data-movement layers
    (`ctx.moved`); any other consumer of such a tensor pins its units."""

    def trace(self, ctx, call):
        import keras

        key = call.inputs[0]
        src_map, src_shape, chain = ctx.moved.get(key, (ctx.map(key), call.input_shapes[0], ()))
        chain = chain + (call.layer,)
        shape = (1,) + tuple(int(d) for d in src_shape[1:])
        codes = np.broadcast_to(np.arange(1, shape[-1] + 1, dtype=np.float32), shape)
        for layer in chain:
            codes = layer(codes)
        width = _last(call.output_shapes[0])
        out = keras.ops.convert_to_numpy(codes).reshape(-1, width)
        lo, hi = out.min(axis=0), out.max(axis=0)
        if (lo != hi).any() or (lo < 1).any():
            ctx.moved[call.outputs[0]] = (src_map, src_shape, chain)
            return [np.full(width, -1, dtype=np.int64)]
        return [src_map[lo.astype(np.int64) - 1]]

    def prune(self, layer, weights, in_keeps, out_keeps):
        cfg = {}
        if type(layer).__name__ == "Reshape":
            target = list(layer.target_shape)
            if target[-1] != -1:
                target[-1] = int(out_keeps[0].sum())
            cfg["target_shape"] = tuple(target)
        return cfg, weights


class Source(Rule):
    """Layers that create units: Dense, Conv, SeparableConv, ConvTranspose, Embedding."""

    has_units = True
    mix = "linear"
    width_key = "units"

    def trace(self, ctx, call):
        ids = ctx.units_of(call)
        if getattr(call.layer, "activation", None) is not None and _is_softmax(
            call.layer.activation
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
            int(np.prod(call.output_shapes[0][1:-1]))
            * k
            * (_last(call.input_shapes[0]) // layer.groups)
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
            int(np.prod(call.input_shapes[0][1:-1]))
            * k
            * _last(call.input_shapes[0])
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
        pos = int(np.prod(call.output_shapes[0][1:-1]))
        cin = _last(call.input_shapes[0]) * layer.depth_multiplier
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
            int(np.prod(call.output_shapes[0][1:-1]))
            * int(np.prod(layer.kernel_size))
            * _last(call.input_shapes[0])
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
            int(np.prod(call.output_shapes[0][1:-1]))
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
MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D
GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D GlobalAveragePooling1D
GlobalAveragePooling2D GlobalAveragePooling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D
Cropping1D Cropping2D Cropping3D UpSampling1D UpSampling2D UpSampling3D Rescaling""".split()

RULES: dict[str, Rule] = {name: PassThrough() for name in _PASS}
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


def _reduction_rule(op, input_rank: int) -> Rule:
    """A reduction keeps channels unless it reduces the channel axis (or all axes)."""
    axis = op.axis
    axes = (
        set(range(input_rank)) if axis is None else {axis} if isinstance(axis, int) else set(axis)
    )
    if axes & {-1, input_rank - 1}:
        return Opaque(f"reduces the channel axis (axis={axis})")
    return PassThrough()


def is_layer(op) -> bool:
    import keras

    return isinstance(op, keras.Layer)


def weights_of(op) -> list[np.ndarray]:
    return op.get_weights() if is_layer(op) else []


def rule_for(layer, input_rank: int) -> Rule:
    """The rule for `layer`, or an Opaque rule saying why it is unsupported."""
    name = type(layer).__name__
    if name in _MODULE_RULES and type(layer).__module__.startswith("keras."):
        module = importlib.import_module(f"neuronviz.backend.surgery.{_MODULE_RULES[name]}")
        return module.rule_for_layer(layer, input_rank)
    if not is_layer(layer) and name in _REDUCTIONS:
        return _reduction_rule(layer, input_rank)
    rule = (RULES if is_layer(layer) else OP_RULES).get(name)
    if rule is None or type(layer).__module__.split(".")[0] != "keras":
        return Opaque("custom or unsupported layer type" if rule is None else "custom subclass")
    if getattr(layer, "data_format", None) == _CHANNELS_FIRST and not isinstance(rule, Probe):
        return Opaque("channels_first data format")
    last = {-1, input_rank - 1}
    if name == "BatchNormalization" and layer.axis not in last:
        return Opaque(f"normalises axis {layer.axis}, not the channel axis")
    if name == "LayerNormalization" and (
        len(layer.axis) != 1 or layer.axis[0] not in last or getattr(layer, "rms_scaling", False)
    ):
        return Opaque(f"normalises axes {layer.axis}")
    if name in ("Softmax", "UnitNormalization"):
        axes = {layer.axis} if isinstance(layer.axis, int) else set(layer.axis)
        if not axes <= last:
            return (
                PassThrough()
                if name == "Softmax" and not axes & last
                else Opaque(f"normalises axes {sorted(axes)}")
            )
    if name == "Activation" and _is_softmax(layer.activation):
        return Renorm()
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
