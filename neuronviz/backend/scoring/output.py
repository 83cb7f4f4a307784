"""The one output policy: what a model's output is, and which loss and metric go with it.

`output_kind` walks back from the first output through layers that pass its meaning on
(Dropout, Flatten, a linear Activation, ...) to the layer that makes it: "softmax"
(probabilities over classes), "sigmoid" (independent probabilities; one unit is a binary
decision) or "logits" (anything else). `training_loss` is the loss fine-tuning uses,
`predicted_classes` what accuracy counts; the preview and `evaluate` score with
evaluation.scorer, which reads the same kind.

`data_task` is the one rule for what data scores: an .npz with `token_ids` and no labels
`y` is a causal LM's token data ("next_token": position t predicts token t + 1, scored by
crossentropy and perplexity), for a model whose first output is (batch, seq, vocab)
scores; anything else has labels ("classify"). Giving `y` overrides it (e.g. per-position
tags for the same arrays).
"""

from __future__ import annotations

import keras
import numpy as np

from neuronviz.backend.model.graph import FlatGraph, flatten
from neuronviz.core.metrics import predict_classes
from neuronviz.errors import NeuronvizError

TASKS = ("classify", "next_token")
METRIC = "accuracy"  # Keras picks the matching (sparse) categorical or binary accuracy

# layers that pass their input's meaning through unchanged
_TRANSPARENT = {
    "Dropout",
    "Flatten",
    "Reshape",
    "Identity",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "SpatialDropout1D",
    "SpatialDropout2D",
}


def output_kind(model: keras.Model, graph: FlatGraph | None = None) -> str:
    """ "softmax", "sigmoid" or "logits": the activation of the layer making the first output."""
    fg = graph or flatten(model)
    producers = fg.producers()
    key = fg.outputs[0]
    while key in producers:
        call = producers[key]
        layer = call.layer
        if type(layer).__name__ in ("Softmax", "Sigmoid"):  # layers and raw Keras ops
            return type(layer).__name__.lower()
        fn = getattr(layer, "activation", None)
        name = getattr(fn, "__name__", "")
        if name in ("softmax", "sigmoid"):
            return name
        if type(layer).__name__ in _TRANSPARENT or (
            type(layer).__name__ == "Activation" and name == "linear"
        ):
            key = call.inputs[0]
            continue
        break
    return "logits"


def training_loss(model: keras.Model, graph: FlatGraph | None = None):
    """The model's compiled loss; otherwise sparse categorical cross-entropy (binary for
    one output unit), from logits unless the output is probabilities."""
    loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
    if isinstance(loss, str):
        return keras.losses.get(loss)
    if loss is not None:
        return loss
    kind = output_kind(model, graph)
    if int(model.outputs[0].shape[-1] or 0) == 1:
        return keras.losses.BinaryCrossentropy(from_logits=kind == "logits")
    return keras.losses.SparseCategoricalCrossentropy(from_logits=kind == "logits")


def predicted_classes(model: keras.Model, outputs, graph: FlatGraph | None = None) -> np.ndarray:
    """The class each row of `outputs` predicts (a threshold for one unit, else argmax)."""
    outputs = np.asarray(outputs)
    return predict_classes(outputs.reshape(-1, outputs.shape[-1]), output_kind(model, graph))


def next_token_shape(model: keras.Model) -> bool:
    """Whether the first output can be next-token scores: (batch, seq, vocab), vocab >= 2."""
    shape = tuple(model.outputs[0].shape)
    return len(shape) == 3 and int(shape[-1] or 0) >= 2


def data_task(model: keras.Model, keys, label: str = "") -> str:
    """ "next_token" for `token_ids` without `y` (refused for a model whose output is not
    (batch, seq, vocab)), else "classify". `keys`: the data's array names."""
    if "token_ids" not in keys or "y" in keys:
        return "classify"
    if not next_token_shape(model):
        where = f" in '{label}'" if label else ""
        raise NeuronvizError(
            "Expected labels `y`, or a causal LM whose output is next-token scores "
            f"(batch, seq, vocab), for `token_ids`{where}. Received: output shape "
            f"{tuple(model.outputs[0].shape)} and no `y`"
        )
    return "next_token"
