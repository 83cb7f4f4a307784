"""Scoring a model's outputs: its compiled loss as a NumPy-friendly function, and `scorer`.

Scoring always uses the model's first output. When the model is compiled, its compiled
loss is used (regularisation penalties are not included); otherwise the built-in
crossentropy of `neuronviz.core.metrics`. Next-token scores (causal LMs) always use that
crossentropy, so that perplexity is exp(loss). What the output is comes from output.py.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from neuronviz.backend.model.graph import FlatGraph
from neuronviz.backend.scoring.output import output_kind
from neuronviz.core import metrics
from neuronviz.core.metrics import LossFn, Score


def compiled_loss(model: keras.Model, kind: str | None = None) -> LossFn | None:
    """The model's compiled loss as `loss_fn(labels, outputs) -> per-sample losses`, or None.
    `kind` (default: `output_kind(model)`) picks the fallback if the loss cannot be called."""
    loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
    if isinstance(loss, dict):
        names = list(getattr(model, "output_names", None) or [])
        loss = loss.get(names[0]) if names and names[0] in loss else next(iter(loss.values()), None)
    elif isinstance(loss, (list, tuple)):
        loss = loss[0] if loss else None
    if loss is None:
        return None
    try:
        loss = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
    except (ValueError, TypeError):
        return None
    fast = _numpy_crossentropy(loss)
    return fast if fast is not None else _KerasLoss(loss, (kind or output_kind(model)) == "logits")


def scorer(model: keras.Model, graph: FlatGraph | None = None, task: str = "classify"):
    """A Scorer for this model's output kind and loss, and the data's task (output.TASKS)."""
    kind = output_kind(model, graph)
    tokens = task == "next_token"
    return Scorer(kind, None if tokens else compiled_loss(model, kind), tokens)


class Scorer:
    """`scorer(outputs, y, keep=None) -> Score`; or `tally` each batch and `combine` them,
    so that wide outputs (an LM's vocabulary) need not be held for the whole dataset."""

    def __init__(self, kind: str, loss_fn: LossFn | None, with_perplexity: bool):
        self.kind, self.loss_fn, self.with_perplexity = kind, loss_fn, with_perplexity

    def tally(self, outputs: np.ndarray, y: np.ndarray, keep=None) -> metrics.Tally:
        return metrics.tally(outputs, y, self.kind, loss_fn=self.loss_fn, keep=keep)

    def combine(self, tallies) -> Score:
        return metrics.combined(tallies, self.with_perplexity)

    def __call__(self, outputs: np.ndarray, y: np.ndarray, keep=None) -> Score:
        return self.combine([self.tally(outputs, y, keep)])


def _loss_name(loss) -> str:
    fn = getattr(loss, "fn", loss)  # LossFunctionWrapper keeps the function in .fn
    return getattr(fn, "__name__", type(loss).__name__)


def _loss_options(loss) -> dict:
    if isinstance(loss, keras.losses.Loss):
        return dict(getattr(loss, "_fn_kwargs", {}) or {})
    return {}


class _NumpyCrossentropy:
    """A Keras crossentropy with default options, computed in NumPy (same numbers, no TF)."""

    def __init__(self, from_logits: bool):
        self.from_logits = from_logits

    def __call__(self, labels, outputs):
        return metrics.crossentropy(outputs, labels, from_logits=self.from_logits)


_CROSSENTROPY = {
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
}


def _numpy_crossentropy(loss) -> _NumpyCrossentropy | None:
    """A NumPy stand-in for the standard Keras crossentropies (default options only)."""
    name = _loss_name(loss)
    opts = _loss_options(loss)
    if (
        name not in _CROSSENTROPY
        or opts.get("label_smoothing", 0)
        or opts.get("ignore_class") is not None
    ):
        return None
    if opts.get("axis", -1) != -1:
        return None
    if name == "binary_crossentropy":
        return _BinaryOnly(bool(opts.get("from_logits", False)))
    return _NumpyCrossentropy(bool(opts.get("from_logits", False)))


class _BinaryOnly(_NumpyCrossentropy):
    """binary_crossentropy: NumPy for one output unit; Keras (one-hot targets) otherwise."""

    def __call__(self, labels, outputs):
        if outputs.shape[-1] == 1:
            return super().__call__(labels, outputs)
        loss = keras.losses.BinaryCrossentropy(from_logits=self.from_logits)
        return _KerasLoss(loss)(labels, outputs)


class _KerasLoss:
    """Any other loss, called through Keras with labels shaped the way it expects."""

    def __init__(self, loss, from_logits: bool = False):
        self.loss = loss
        self.from_logits = from_logits
        self.failed = False

    def __call__(self, labels, outputs):
        if not self.failed:
            try:
                target = _target_for(_loss_name(self.loss), labels, outputs.shape[-1])
                fn = self.loss.call if isinstance(self.loss, keras.losses.Loss) else self.loss
                values = keras.ops.convert_to_numpy(
                    fn(target, keras.ops.convert_to_tensor(outputs))
                )
                values = np.asarray(values, dtype=np.float64)
                return values.reshape(len(labels), -1).mean(axis=1) if values.ndim else values
            except Exception as e:  # noqa: BLE001 - reported once, then the built-in loss
                self.failed = True
                warnings.warn(
                    f"The compiled loss '{_loss_name(self.loss)}' could not score integer labels "
                    f"({type(e).__name__}); using crossentropy instead.",
                    stacklevel=2,
                )
        return metrics.crossentropy(outputs, labels, from_logits=self.from_logits)


def _target_for(name: str, labels: np.ndarray, width: int) -> np.ndarray:
    """Integer labels for sparse losses, a column for one unit, one-hot otherwise."""
    if "sparse" in name:
        return labels
    if width == 1:
        return labels.astype(np.float32)[:, None]
    return np.eye(width, dtype=np.float32)[labels]
