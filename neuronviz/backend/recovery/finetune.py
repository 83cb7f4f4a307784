"""Fine-tuning a (pruned) model to recover accuracy: a cancellable generator of progress.

    job = FinetuneJob(pruned, (x_train, y_train), (x_val, y_val), epochs=3)
    for event in job.run():          # one event per batch, per epoch, and a final one
        print(event.kind, event.fraction, event.val_accuracy)
    better = job.result              # a NEW model; `pruned` is never modified

Training runs on a copy of the model. Validation loss is measured before training and
after every epoch; training stops early after `patience` epochs without improvement,
and the result carries the weights with the lowest validation loss seen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

import keras
import numpy as np

from neuronviz.backend.model.compiling import compile_like
from neuronviz.backend.recovery.sparsity import apply_masks, clone_with_weights, sparse_masks
from neuronviz.backend.scoring.output import METRIC, predicted_classes, training_loss
from neuronviz.errors import NeuronvizError


class _NoRetracingNotice(logging.Filter):
    """Each pruned or fine-tuned model is a new model with its own traced functions, so
    TensorFlow's 'triggered tf.function retracing' notice is expected here, not a bug."""

    def filter(self, record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_NoRetracingNotice())


@dataclass(frozen=True)
class Progress:
    """One step of a fine-tuning run.

    kind: "start" (the validation score before training), "batch", "epoch" or "done".
    loss/accuracy: running means over the current epoch's batches (training data).
    val_loss/val_accuracy: on "start", "epoch" and "done" events.
    stopped: on "done": "completed", "early_stopping" or "cancelled".
    """

    kind: str
    epoch: int  # 1-based; 0 before training
    epochs: int
    batch: int  # batches done in this epoch
    batches: int  # batches per epoch
    fraction: float  # of all planned batches, 0..1
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    best_epoch: int = 0
    stopped: str | None = None


def xy(data) -> tuple:
    """(x, y) from a tuple or from a Dataset-like object with .x and .y."""
    if hasattr(data, "x") and hasattr(data, "y"):
        return data.x, data.y
    try:
        x, y = data
    except (TypeError, ValueError):
        raise NeuronvizError(
            f"Expected data as (x, y) or a Dataset. Received: {type(data).__name__}"
        ) from None
    return x, y


def _check_data(model: keras.Model, x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NeuronvizError(
            f"Expected a model with one input and one output for fine-tuning. "
            f"Received: {len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0 or len(x) != len(y):
        raise NeuronvizError(
            f"Expected {what} data with as many labels as samples (at least one). "
            f"Received: {len(x)} samples and {len(y)} labels"
        )
    want = tuple(model.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != want:
        raise NeuronvizError(
            f"Expected {what} samples of shape {want}. Received: {tuple(x.shape[1:])}"
        )
    classes = int(model.outputs[0].shape[-1])
    limit = 2 if classes == 1 else classes  # one unit: a binary decision
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and (y.min() < 0 or y.max() >= limit):
        raise NeuronvizError(
            f"Expected {what} labels in [0, {limit}) for a model with {classes} outputs. "
            f"Received: labels from {int(y.min())} to {int(y.max())}"
        )
    return (x.astype("float32") if x.dtype == np.float64 else x), y


def compile_for_training(
    model: keras.Model, source: keras.Model, learning_rate: float, optimizer=None
) -> None:
    model.compile(
        optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(learning_rate),
        loss=training_loss(source),
        metrics=[METRIC],
        jit_compile=False,
    )


def batched_score(model: keras.Model, x, y, batch_size: int = 256, cancelled=None) -> dict | None:
    """{"loss", "accuracy"} of a compiled model, averaged over samples. None if cancelled."""
    total_loss = total_acc = 0.0
    for s in range(0, len(x), batch_size):
        if cancelled is not None and cancelled():
            return None
        logs = model.test_on_batch(x[s : s + batch_size], y[s : s + batch_size], return_dict=True)
        n = len(x[s : s + batch_size])
        total_loss += float(logs["loss"]) * n
        total_acc += float(logs.get("accuracy", np.nan)) * n
    return {"loss": total_loss / len(x), "accuracy": total_acc / len(x)}


class FinetuneJob:
    """Fine-tune a copy of `model` on `train`, early-stopping on `val` (see module doc).

    masks: weight path -> bool keep-mask (from neuronviz.backend.recovery.sparsity); masked
    weights stay exactly zero after every optimizer step. The default, "auto", keeps the
    zeros of sparse kernels (sparsity.sparse_masks: what `sparsify` made stays sparse);
    pass None (or {}) to let every weight move.
    result: the new model with the best validation loss (the starting point counts);
    None until the run ends, and None if it was cancelled before the first epoch ended.
    """

    def __init__(
        self,
        model: keras.Model,
        train,
        val,
        epochs: int = 3,
        batch_size: int = 64,
        learning_rate: float = 1e-4,
        patience: int | None = 2,
        masks="auto",
        *,
        optimizer=None,
        seed: int = 0,
        min_delta: float = 0.0,
    ):
        if int(epochs) < 1:
            raise NeuronvizError(f"Expected `epochs` >= 1. Received: epochs={epochs}")
        if int(batch_size) < 1:
            raise NeuronvizError(f"Expected `batch_size` >= 1. Received: batch_size={batch_size}")
        if not float(learning_rate) > 0:
            raise NeuronvizError(
                f"Expected `learning_rate` > 0. Received: learning_rate={learning_rate}"
            )
        if patience is not None and int(patience) < 1:
            raise NeuronvizError(
                f"Expected `patience` >= 1 (or None for no early stopping). Received: patience={patience}"
            )
        for what, data in (("training", train), ("validation", val)):
            if getattr(data, "task", "classify") == "next_token":
                raise NeuronvizError(
                    f"Expected {what} data with labels for fine-tuning. Received: token data "
                    "(next-token scores); fine-tuning a causal LM is not supported yet"
                )
        self.model = model
        self.x, self.y = _check_data(model, *xy(train), "training")
        self.val_x, self.val_y = _check_data(model, *xy(val), "validation")
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.learning_rate, self.patience = float(learning_rate), patience
        if isinstance(masks, str):
            if masks != "auto":
                raise NeuronvizError(
                    f"Expected `masks` to be 'auto', None or a dict of keep-masks. Received: masks={masks!r}"
                )
            masks = sparse_masks(model)
        self.masks, self.optimizer, self.seed, self.min_delta = masks, optimizer, seed, min_delta
        self.batches = -(-len(self.x) // self.batch_size)
        self.result: keras.Model | None = None
        self.history: list[Progress] = []  # the "start" and "epoch" events
        self.stopped: str | None = None
        self._best_epoch = 0
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop before the next batch (thread-safe)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def initial(self) -> dict | None:
        """The validation score before training (available after the "start" event)."""
        return next(
            (
                {"loss": e.val_loss, "accuracy": e.val_accuracy}
                for e in self.history
                if e.kind == "start"
            ),
            None,
        )

    @property
    def best(self) -> dict | None:
        """The validation score of the best state so far (that of `result` at the end)."""
        e = next((e for e in self.history if e.epoch == self._best_epoch), None)
        return (
            None
            if e is None
            else {"loss": e.val_loss, "accuracy": e.val_accuracy, "epoch": e.epoch}
        )

    def run_all(self) -> keras.Model | None:
        for _ in self.run():
            pass
        return self.result

    def run(self) -> Iterator[Progress]:
        """Train (see the class doc). A job runs once; cancel() also stops a later run."""
        self.result, self.history, self.stopped, self._best_epoch = None, [], None, 0
        work = clone_with_weights(self.model)
        constrained = apply_masks(work, self.masks) if self.masks else []
        compile_for_training(work, self.model, self.learning_rate, self.optimizer)
        val_bs = max(self.batch_size, 256)
        base = Progress("start", 0, self.epochs, 0, self.batches, 0.0)
        score = batched_score(work, self.val_x, self.val_y, val_bs, lambda: self.cancelled)
        if score is None:
            yield self._finish(base, None, None, "cancelled")
            return
        start = replace(base, val_loss=score["loss"], val_accuracy=score["accuracy"])
        self.history.append(start)
        yield start
        best_loss, best_weights, best_epoch, waited = score["loss"], work.get_weights(), 0, 0
        rng = np.random.default_rng(self.seed)
        last = start
        for epoch in range(1, self.epochs + 1):
            order = rng.permutation(len(self.x))
            seen = loss_sum = acc_sum = 0.0
            for b in range(self.batches):
                if self.cancelled:
                    yield self._finish(
                        last, work if epoch > 1 else None, best_weights, "cancelled", constrained
                    )
                    return
                idx = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])
                logs = work.train_on_batch(self.x[idx], self.y[idx], return_dict=True)
                seen += len(idx)
                loss_sum += float(logs["loss"]) * len(idx)
                acc_sum += float(logs.get("accuracy", np.nan)) * len(idx)
                last = Progress(
                    "batch",
                    epoch,
                    self.epochs,
                    b + 1,
                    self.batches,
                    ((epoch - 1) * self.batches + b + 1) / (self.epochs * self.batches),
                    loss_sum / seen,
                    acc_sum / seen,
                    best_epoch=best_epoch,
                )
                yield last
            score = batched_score(work, self.val_x, self.val_y, val_bs, lambda: self.cancelled)
            if score is None:
                yield self._finish(
                    last, work if epoch > 1 else None, best_weights, "cancelled", constrained
                )
                return
            if score["loss"] < best_loss - self.min_delta:
                best_loss, best_weights, best_epoch, waited = (
                    score["loss"],
                    work.get_weights(),
                    epoch,
                    0,
                )
                self._best_epoch = epoch
            else:
                waited += 1
            last = replace(
                last,
                kind="epoch",
                val_loss=score["loss"],
                val_accuracy=score["accuracy"],
                best_epoch=best_epoch,
            )
            self.history.append(last)
            yield last
            if self.patience is not None and waited >= self.patience and epoch < self.epochs:
                yield self._finish(last, work, best_weights, "early_stopping", constrained)
                return
        yield self._finish(last, work, best_weights, "completed", constrained)

    def _finish(self, last: Progress, work, weights, why: str, constrained=()) -> Progress:
        for var in constrained:
            var.constraint = None
        if work is not None:
            result = keras.models.clone_model(
                work
            )  # fresh variables: no constraints, no optimizer state
            result.set_weights(weights)
            try:
                compiled = compile_like(result, self.model)
            except Exception:  # a custom loss that cannot be rebuilt
                compiled = False
            if not compiled:
                compile_for_training(result, self.model, self.learning_rate)
            self.result = result
        self.stopped = why
        best = self.best or {}
        return replace(
            last,
            kind="done",
            fraction=1.0 if why != "cancelled" else last.fraction,
            stopped=why,
            val_loss=best.get("loss"),
            val_accuracy=best.get("accuracy"),
            best_epoch=best.get("epoch", 0),
        )


def evaluate(model: keras.Model, data, batch_size: int = 256) -> dict:
    """{"loss", "accuracy"} of `model` on (x, y) with its training loss (see
    output.training_loss), from predictions only: `model` is not changed or compiled."""
    x, y = _check_data(model, *xy(data), "evaluation")
    loss_fn = training_loss(model)
    pred = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    total_loss = 0.0
    for s in range(0, len(x), batch_size):
        total_loss += float(loss_fn(y[s : s + batch_size], pred[s : s + batch_size])) * len(
            pred[s : s + batch_size]
        )
    labels = y if y.ndim == 1 or y.shape[-1] == 1 else y.argmax(-1)  # one-hot -> ids
    hits = predicted_classes(model, pred) == labels.reshape(-1)
    return {"loss": total_loss / len(x), "accuracy": float(hits.mean())}
