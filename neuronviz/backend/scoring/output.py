"""The one output policy: what a model's output is, and which loss and metric go with it.

`output_kind` walks back from the first output through layers that pass its meaning on
(Dropout, Flatten, a linear Activation, ...) to the layer that makes it: "softmax"
(probabilities over classes), "sigmoid" (independent probabilities; one unit is a binary
decision) or "logits" (anything else). `training_loss` is the loss fine-tuning uses,
`predicted_classes` what accuracy counts; the preview and `evaluate` score with
evaluation.scorer, which reads the same kind.
"""

from __future__ import annotations

import keras
import numpy as np

from neuronviz.backend.model.graph import FlatGraph, flatten
from neuronviz.core.metrics import predict_classes

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
