"""Accuracy and loss from model outputs and integer labels. NumPy only.

`kind` says what the outputs are: "softmax" (probabilities), "sigmoid" (probabilities;
one unit means binary) or "logits" (anything else). Crossentropy treats probabilities
like Keras does (renormalised, clipped to [1e-7, 1 - 1e-7]) and logits through a
numerically stable log-softmax.

Removed output units: pass `keep` (bool over the last axis) and only the kept columns
are scored, with class ids renumbered to match. A sample whose label is a removed class
counts as wrong for accuracy and is left out of the loss (the model has no output for
it); the loss is NaN when every label is a removed class.

Next-token scores (causal LMs): labels are the shifted token ids, and positions with
nothing to predict (the last one, or a padding target) carry the label `IGNORE`; they are
left out entirely (not in `n`). `with_perplexity=True` adds exp(mean loss) to the Score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KINDS = ("softmax", "sigmoid", "logits")
EPSILON = 1e-7  # keras.config.epsilon()
IGNORE = -100  # the label of a position that is not scored (e.g. a padding target)

# loss_fn(labels (M,), outputs (M, C)) -> per-sample losses (M,) or their mean
LossFn = Callable[[np.ndarray, np.ndarray], "np.ndarray | float"]


@dataclass(frozen=True)
class Score:
    """Top-1 accuracy and mean loss over `n` labels (samples; positions for sequence
    outputs; counted tokens for next-token scores, which also have a perplexity)."""

    accuracy: float
    loss: float
    n: int
    perplexity: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready: a non-finite loss or perplexity becomes None; "perplexity" only
        for next-token scores."""
        out = {"accuracy": float(self.accuracy), "loss": _finite(self.loss), "n": int(self.n)}
        if self.perplexity is not None:
            out["perplexity"] = _finite(self.perplexity)
        return out


def _finite(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def perplexity(loss: float) -> float:
    """exp(mean crossentropy); inf where it overflows, NaN for a NaN loss."""
    return math.exp(loss) if loss < 700 else (float("inf") if loss == loss else float("nan"))


@dataclass(frozen=True)
class Tally:
    """The sums behind a Score, for one batch; `combined` adds batches up."""

    hits: int
    n: int
    loss_sum: float
    n_loss: int  # labels that count in the loss (not a removed class)


def score(
    outputs: np.ndarray,
    y: np.ndarray,
    kind: str,
    loss_fn: LossFn | None = None,
    keep: np.ndarray | None = None,
    with_perplexity: bool = False,
) -> Score:
    """Score `outputs` (N, C) against integer labels `y` (N,).

    `loss_fn` replaces the built-in crossentropy (e.g. the model's compiled loss); it
    receives the kept labels and outputs. `keep` marks the output columns that still
    exist (see the module docstring for labels of removed classes). Labels equal to
    `IGNORE` are not scored; `with_perplexity` adds exp(loss).
    """
    return combined([tally(outputs, y, kind, loss_fn, keep)], with_perplexity)


def tally(
    outputs: np.ndarray,
    y: np.ndarray,
    kind: str,
    loss_fn: LossFn | None = None,
    keep: np.ndarray | None = None,
) -> Tally:
    """The sums of `score` for one batch of outputs and labels."""
    if kind not in KINDS:
        raise ValueError(f"Expected `kind` in {KINDS}. Received: kind={kind!r}")
    outputs, labels = _as_rows(outputs, y)
    counted = labels != IGNORE
    if not counted.all():
        outputs, labels = outputs[counted], labels[counted]
    outputs, labels = _kept(outputs, labels, keep)
    if len(labels) == 0:
        return Tally(0, 0, 0.0, 0)
    hits = int(np.count_nonzero(predict_classes(outputs, kind) == labels))
    scored = labels >= 0
    m = int(np.count_nonzero(scored))
    if m == 0:
        loss_sum = 0.0
    elif loss_fn is not None:
        values = np.asarray(loss_fn(labels[scored], outputs[scored]), dtype=np.float64)
        loss_sum = float(values.sum()) if values.ndim else float(values) * m  # or their mean
    else:
        loss_sum = float(
            np.sum(crossentropy(outputs[scored], labels[scored], from_logits=kind == "logits"))
        )
    return Tally(hits, len(labels), loss_sum, m)


def combined(tallies, with_perplexity: bool = False) -> Score:
    """One Score from the tallies of several batches (NaN where nothing was counted)."""
    hits = sum(t.hits for t in tallies)
    n = sum(t.n for t in tallies)
    m = sum(t.n_loss for t in tallies)
    loss = sum(t.loss_sum for t in tallies) / m if m else float("nan")
    ppl = perplexity(loss) if with_perplexity else None
    return Score(hits / n if n else float("nan"), loss if n else float("nan"), n, ppl)


def predict_classes(outputs: np.ndarray, kind: str) -> np.ndarray:
    """Top-1 class per row; one unit is a binary decision (0.5 for probabilities, 0 for logits)."""
    outputs = np.asarray(outputs)
    if outputs.shape[-1] == 1:
        threshold = 0.0 if kind == "logits" else 0.5
        return (outputs[:, 0] > threshold).astype(np.int64)
    return np.argmax(outputs, axis=-1)


def crossentropy(outputs: np.ndarray, labels: np.ndarray, from_logits: bool) -> np.ndarray:
    """Per-sample crossentropy of integer labels; binary for a single output unit. Wide
    outputs (a language model's vocabulary) are computed in blocks of rows, so the float64
    temporaries stay small."""
    outputs = np.asarray(outputs)
    labels = np.asarray(labels, dtype=np.int64)
    if outputs.shape[-1] == 1:
        z, t = outputs[:, 0].astype(np.float64), labels.astype(np.float64)
        if from_logits:
            return np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        p = np.clip(z, EPSILON, 1 - EPSILON)
        return -(t * np.log(p) + (1 - t) * np.log(1 - p))
    step = max(1, _BLOCK // outputs.shape[-1])
    return np.concatenate(
        [
            _categorical(outputs[lo : lo + step], labels[lo : lo + step], from_logits)
            for lo in range(0, len(labels), step)
        ]
        or [np.zeros(0)]
    )


_BLOCK = 1 << 22  # values per block of rows (32 MB of float64)


def _categorical(outputs: np.ndarray, labels: np.ndarray, from_logits: bool) -> np.ndarray:
    z = np.asarray(outputs, dtype=np.float64)
    rows = np.arange(len(labels))
    if from_logits:
        shifted = z - z.max(axis=-1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=-1))
        return log_sum - shifted[rows, labels]
    total = z.sum(axis=-1, keepdims=True)
    p = np.clip(z / np.where(total == 0, 1.0, total), EPSILON, 1 - EPSILON)
    return -np.log(p[rows, labels])


def _as_rows(outputs, y) -> tuple[np.ndarray, np.ndarray]:
    """Outputs as (M, C) and labels as (M,), for any leading shape."""
    outputs = np.asarray(outputs)
    y = np.asarray(y).astype(np.int64, copy=False)
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    if y.shape == outputs.shape and outputs.shape[-1] == 1:
        y = y[..., 0]
    if y.shape != outputs.shape[:-1]:
        raise ValueError(f"Expected labels of shape {outputs.shape[:-1]}. Received: {y.shape}")
    width = outputs.shape[-1]
    return outputs.reshape(-1, width), y.reshape(-1)


def _kept(outputs: np.ndarray, labels: np.ndarray, keep) -> tuple[np.ndarray, np.ndarray]:
    """Drop removed columns and renumber labels (removed classes become -1)."""
    width = outputs.shape[-1]
    classes = len(keep) if keep is not None else width
    limit = 2 if classes == 1 else classes
    if len(labels) and (labels.min() < 0 or labels.max() >= limit):
        raise ValueError(
            f"Expected labels in [0, {limit}). Received: {labels.min()}..{labels.max()}"
        )
    if keep is None:
        return outputs, labels
    keep = np.asarray(keep, dtype=bool)
    if keep.all() or classes == 1:
        return outputs, labels
    if width == classes:
        outputs = outputs[:, keep]
    elif width != int(keep.sum()):
        raise ValueError(
            f"Expected outputs with {classes} or {int(keep.sum())} columns. Received: {width}"
        )
    new_id = np.full(classes, -1, dtype=np.int64)
    new_id[keep] = np.arange(int(keep.sum()))
    return outputs, new_id[labels]
