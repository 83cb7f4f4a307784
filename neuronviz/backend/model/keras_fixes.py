"""Workarounds: a Keras bug that breaks channels_first layers run eagerly, and (below)
keras-hub 0.32 Llama layers whose get_config() fails.

Keras 3's TensorFlow `ops.add(x, b)` turns an add into `tf.nn.bias_add` when `b` has a
single non-1 dimension of the size of `x`'s channel axis, and picks the NHWC form
whenever `x.shape[-1]` has that size too. A channels_first Conv2D adds its bias shaped
(1, C, 1, 1): when the output's width equals C, the bias lands on the width axis
(e.g. (4, 3, 3, 3) gets bias[w] instead of bias[c]). `predict` traces with relaxed
shapes and is unaffected, but eager calls (neuronviz runs the graph call by call)
are wrong. Seen in Keras 3.15.1. The fix: a `b` whose one non-1 dimension is not its
last is added with plain `tf.add`; every other add is left to Keras.
"""

from __future__ import annotations

import keras

_applied = False


def apply() -> None:
    """Install the workaround once (TensorFlow backend only)."""
    global _applied
    if _applied or keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf
    from keras.src.backend.tensorflow import numpy as tf_numpy

    original = tf_numpy.add

    def add(x1, x2):
        shape = getattr(x2, "shape", None)
        if shape is not None and len(shape) > 1:
            big = [i for i, d in enumerate(shape) if d is None or d > 1]
            if len(big) == 1 and big[0] != len(shape) - 1:
                x1 = tf_numpy.convert_to_tensor(x1)
                x2 = tf_numpy.convert_to_tensor(x2)
                dtype = tf_numpy.dtypes.result_type(x1.dtype, x2.dtype)
                return tf.add(
                    tf_numpy.convert_to_tensor(x1, dtype), tf_numpy.convert_to_tensor(x2, dtype)
                )
        return original(x1, x2)

    add.__wrapped__ = original
    tf_numpy.add = add
    _applied = True


_ROPE = (
    "rope_max_wavelength",
    "rope_position_scaling_factor",
    "rope_frequency_adjustment_factor",
    "rope_low_freq_factor",
    "rope_high_freq_factor",
    "rope_pretraining_sequence_length",
)
_HUB_BROKEN = {  # module -> classes whose get_config() reads the unset `rope_scaling_factor`
    "keras_hub.src.models.llama.llama_attention": "LlamaAttention",
    "keras_hub.src.models.llama.llama_decoder": "LlamaTransformerDecoder",
}


def apply_hub() -> None:
    """keras-hub 0.32's LlamaAttention and LlamaTransformerDecoder get_config() read
    `self.rope_scaling_factor`, which they never set: any graph holding them fails to
    serialise (AttributeError). Where keras-hub is loaded and the bug is there, their
    get_config() returns the rope_* values their __init__ takes (a config that keras-hub
    itself loads, without neuronviz)."""
    import sys

    for module, name in _HUB_BROKEN.items():
        cls = getattr(sys.modules.get(module), name, None)
        if cls is None or getattr(cls.get_config, "_neuronviz_fixed", False):
            continue
        cls.get_config = _rope_config(cls.get_config)
    _cached_attention_spec()


def _rope_config(original):
    def get_config(self):
        missing = not hasattr(self, "rope_scaling_factor")
        if missing:
            object.__setattr__(self, "rope_scaling_factor", None)
        try:
            config = original(self)
        finally:
            if missing:
                object.__delattr__(self, "rope_scaling_factor")
        if missing:
            config.pop("rope_scaling_factor", None)
            config.update({k: getattr(self, k) for k in _ROPE})
        return config

    get_config._neuronviz_fixed = True
    get_config.__wrapped__ = original
    return get_config


def _cached_attention_spec() -> None:
    """keras-hub's CachedMultiHeadAttention (GPT-2's attention) takes `cache` and
    `cache_update_index` in call(), but inherits MultiHeadAttention.compute_output_spec,
    which does not: it cannot be called on symbolic tensors, so no graph of a block that
    holds it can be captured. Without a cache, its output spec is MultiHeadAttention's;
    this gives the class that compute_output_spec (once, if keras-hub is loaded)."""
    import sys

    module = sys.modules.get("keras_hub.src.layers.modeling.cached_multi_head_attention")
    cls = getattr(module, "CachedMultiHeadAttention", None)
    if cls is None or "compute_output_spec" in vars(cls):
        return
    base = keras.layers.MultiHeadAttention.compute_output_spec

    def compute_output_spec(
        self, query, value, key=None, attention_mask=None, cache=None,
        cache_update_index=None, return_attention_scores=False, training=None,
    ):  # fmt: skip
        if cache is not None or cache_update_index is not None:
            raise NotImplementedError("symbolic calls with a cache")
        return base(
            self, query, value, key, attention_mask=attention_mask,
            return_attention_scores=return_attention_scores, training=training,
        )  # fmt: skip

    compute_output_spec.__wrapped__ = base  # what Keras itself accepts (inspect.signature)
    cls.compute_output_spec = compute_output_spec
