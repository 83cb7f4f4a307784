"""Which rule handles a layer: the tables from Keras layer and op names to rules, and
`rule_for`, which also refuses (as an Opaque rule) what a rule cannot follow."""

from __future__ import annotations

import importlib
import math

import numpy as np

from neuronviz.backend.surgery.rules import (
    Concat,
    Index,
    LayerNorm,
    LayerScaleRule,
    Merge,
    Opaque,
    PassThrough,
    PerChannel,
    Probe,
    Reduction,
    Renorm,
    RMSNorm,
    Rule,
    Spatial,
    UnitNorm,
    _axis_of,
    _is_softmax,
)  # fmt: skip
from neuronviz.backend.surgery.sources import (
    ChannelwiseConvRule,
    ConvRule,
    ConvTransposeRule,
    DenseRule,
    DepthwiseRule,
    EmbeddingRule,
    RecurrentRule,
    ReversibleEmbeddingRule,
    SeparableRule,
)  # fmt: skip

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
        "ReversibleEmbedding": ReversibleEmbeddingRule(),  # hidden dims; tied or not
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
OP_RULES["GetItem"] = Index()  # x[:, 0, :]: BERT's [CLS] token


# Layer types whose rules live in their own module (name -> module in this package)
_MODULE_RULES = {
    "Bidirectional": "wrappers",
    "TimeDistributed": "wrappers",
    "MultiHeadAttention": "attention",
    "GroupedQueryAttention": "attention",
    "Attention": "attention",
    "AdditiveAttention": "attention",
}
# keras-hub layers (module keras_hub.*) that a rule knows: they are not captured
_HUB_RULES: dict[str, Rule | str] = {
    "LlamaLayerNorm": RMSNorm(),
    "MistralLayerNormalization": RMSNorm(),
    "QwenLayerNorm": RMSNorm(),
    "RMSNormalization": RMSNorm(),  # Gemma's: x * (1 + scale)
    "LlamaAttention": "attention",
    "CachedMistralAttention": "attention",
    "CachedMultiHeadAttention": "attention",  # GPT-2's (called without a cache)
    "PositionEmbedding": PerChannel(),  # output channel c = its table's column c
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


def is_layer(op) -> bool:
    import keras

    return isinstance(op, keras.Layer)


def weights_of(op) -> list[np.ndarray]:
    return op.get_weights() if is_layer(op) else []


def hub_rule(layer, input_rank: int = 3) -> Rule | None:
    """The rule of a keras-hub layer that neuronviz knows, else None."""
    if not type(layer).__module__.startswith("keras_hub."):
        return None
    rule = _HUB_RULES.get(type(layer).__name__)
    if isinstance(rule, str):
        module = importlib.import_module(f"neuronviz.backend.surgery.{rule}")
        return module.rule_for_layer(layer, input_rank)
    return rule


def rule_for(layer, input_rank: int, input_axis: int | None = None) -> Rule:
    """The rule for `layer`, or an Opaque rule saying why it is unsupported.
    `input_axis`: where its first input has channels (default: the last axis)."""
    name = type(layer).__name__
    hub = hub_rule(layer, input_rank)
    if hub is not None:
        return hub
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
    if name in ("Dense", "Embedding", "ReversibleEmbedding") and (
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
