"""Weight-level (unstructured) magnitude pruning and masks that stay zero while training
(file sizes and TFLite export of the sparse model: backend/model/export.py).

Unstructured sparsity zeroes single weights inside kernels: the model keeps its shape,
so dense inference is exactly as fast as before, but the file compresses much better.
Removing whole units (neuronviz.api.prune) is what makes inference faster.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from neuronviz.backend.model.compiling import compile_like
from neuronviz.backend.model.graph import flatten
from neuronviz.core.names import resolve_layer
from neuronviz.errors import NeuronvizError, close_matches

SCOPES = ("layer", "global")


def prunable_kernels(model: keras.Model, layers=None) -> dict[str, keras.Variable]:
    """Weight path ('dense/kernel', 'block/conv/kernel') -> variable, for every trainable
    kernel (variable name ending in 'kernel'; biases, BatchNorm and embeddings are left alone).
    `layers` restricts it to those layer names (nested paths or unambiguous short names)."""
    fg = flatten(model)
    found: dict[str, keras.Variable] = {}
    owners: dict[str, str] = {}
    for path, layer in fg.layers.items():
        for var in layer.trainable_weights:
            if var.name.endswith("kernel"):
                found[f"{path}/{var.name}"] = var
                owners[f"{path}/{var.name}"] = path
    if layers is None:
        return found
    aliases = fg.aliases()
    with_kernels = sorted(set(owners.values()))
    wanted = []
    for name in layers:
        path = resolve_layer(name, fg.layers, aliases, "a layer of the model")
        if path not in with_kernels:
            raise NeuronvizError(
                f"Expected a layer with a kernel (Dense, Conv, ...). Received: '{name}' "
                f"({type(fg.layers[path]).__name__}). Layers with kernels: {', '.join(with_kernels[:8])}"
            )
        wanted.append(path)
    return {k: v for k, v in found.items() if owners[k] in wanted}


def _check_amount(amount) -> float:
    try:
        value = float(amount)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value < 1.0:
        raise NeuronvizError(
            f"Expected `amount` in [0, 1), the fraction of weights to zero. Received: amount={amount}"
        )
    return value


def _check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise NeuronvizError(
            f"Expected `scope` to be 'layer' or 'global'. Received: scope='{scope}'"
        )
    return scope


def _layer_of(weight_path: str) -> str:
    return weight_path.rsplit("/", 1)[0]


def magnitude_masks(
    kernels: dict[str, np.ndarray], amount: float, scope: str = "layer"
) -> dict[str, np.ndarray]:
    """Boolean keep-masks (True = weight stays) dropping the `amount` smallest |w|:
    within each kernel (scope='layer') or across all of them (scope='global')."""
    amount, scope = _check_amount(amount), _check_scope(scope)
    masks = {}
    if scope == "layer":
        for name, w in kernels.items():
            flat = np.abs(np.asarray(w)).ravel()
            k = min(int(round(amount * flat.size)), flat.size - 1)
            keep = np.ones(flat.size, dtype=bool)
            if k > 0:
                keep[np.argpartition(flat, k - 1)[:k]] = False
            masks[name] = keep.reshape(np.shape(w))
        return masks
    names = list(kernels)
    flats = [np.abs(np.asarray(kernels[n])).ravel() for n in names]
    allw = np.concatenate(flats) if flats else np.zeros(0)
    k = min(int(round(amount * allw.size)), max(allw.size - 1, 0))
    keep = np.ones(allw.size, dtype=bool)
    if k > 0:
        keep[np.argpartition(allw, k - 1)[:k]] = False
    start = 0
    for n, f in zip(names, flats, strict=True):
        masks[n] = keep[start : start + f.size].reshape(np.shape(kernels[n]))
        start += f.size
    return masks


class MagnitudeProfile:
    """Sorted kernel magnitudes, to answer 'what threshold / sparsity for amount a?'
    instantly (for sliders) without touching the model."""

    def __init__(self, model: keras.Model, layers=None):
        self.sorted = {
            n: np.sort(np.abs(v.numpy()).ravel())
            for n, v in prunable_kernels(model, layers).items()
        }
        if not self.sorted:
            raise NeuronvizError(
                "Expected a model with at least one kernel (Dense, Conv, ...). Received: none."
            )
        self.all = np.sort(np.concatenate(list(self.sorted.values())))

    def threshold(self, amount: float, scope: str = "global", weight: str | None = None) -> float:
        """Magnitude of the largest zeroed weight (0.0 when nothing is zeroed)."""
        values = self.all if scope == "global" or weight is None else self.sorted[weight]
        k = min(int(round(_check_amount(amount) * values.size)), values.size - 1)
        return float(values[k - 1]) if k > 0 else 0.0

    def sparsity(self, amount: float, scope: str = "layer") -> dict[str, float]:
        """Predicted zero fraction of each kernel (weight path -> fraction)."""
        if _check_scope(scope) == "layer":
            out = {}
            for n, v in self.sorted.items():
                k = min(int(round(amount * v.size)), v.size - 1)
                out[n] = k / v.size
            return out
        thr = self.threshold(amount, "global")
        if thr == 0.0 and amount * self.all.size < 0.5:
            return dict.fromkeys(self.sorted, 0.0)
        return {
            n: float(np.searchsorted(v, thr, side="right")) / v.size for n, v in self.sorted.items()
        }


@dataclass
class SparseResult:
    """A new model with the smallest kernel weights zeroed, and the masks to keep them zero."""

    model: keras.Model
    masks: dict[str, np.ndarray]  # weight path -> bool, True where the weight is kept
    layer_sparsity: dict[str, float]  # layer path -> zero fraction of its pruned kernel(s)
    sparsity: float  # zero fraction over all pruned kernels
    model_sparsity: float  # zero fraction over every weight of the model (biases included)
    amount: float = 0.0
    scope: str = "layer"
    zeros: int = 0
    kernel_weights: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "amount": self.amount,
            "scope": self.scope,
            "sparsity": self.sparsity,
            "model_sparsity": self.model_sparsity,
            "layers": self.layer_sparsity,
            "zeros": self.zeros,
            "kernel_weights": self.kernel_weights,
        }


def clone_with_weights(model: keras.Model) -> keras.Model:
    """A new model of the same architecture with a copy of the weights (compiled like
    `model`, with a fresh optimizer). `model` is not touched."""
    try:
        new = keras.models.clone_model(model)
    except Exception as e:
        raise NeuronvizError(
            f"Could not copy the model: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        ) from None
    new.set_weights(model.get_weights())
    with contextlib.suppress(Exception):  # a custom loss that cannot be rebuilt: leave uncompiled
        compile_like(new, model)
    return new


def sparsify(model: keras.Model, amount: float, layers=None, scope: str = "layer") -> SparseResult:
    """Zero the `amount` fraction of smallest-magnitude kernel weights, per layer or over all
    chosen layers together (global), in a new model. `model` is not changed."""
    amount, scope = _check_amount(amount), _check_scope(scope)
    kernels = prunable_kernels(model, layers)
    if not kernels:
        raise NeuronvizError(
            "Expected a model with at least one kernel (Dense, Conv, ...). Received: none."
        )
    masks = magnitude_masks({n: v.numpy() for n, v in kernels.items()}, amount, scope)
    new = clone_with_weights(model)
    new_kernels = prunable_kernels(new)
    for name, keep in masks.items():
        var = new_kernels[name]
        var.assign(np.where(keep, var.numpy(), 0).astype(var.dtype))
    return _result(new, masks, amount, scope)


def _result(model, masks, amount, scope) -> SparseResult:
    kernels = prunable_kernels(model)
    per_layer: dict[str, list[int]] = {}
    for name in masks:
        w = kernels[name].numpy()
        z, n = per_layer.setdefault(_layer_of(name), [0, 0])
        per_layer[_layer_of(name)] = [z + int(w.size - np.count_nonzero(w)), n + int(w.size)]
    zeros = sum(z for z, _ in per_layer.values())
    size = sum(n for _, n in per_layer.values())
    all_w = model.get_weights()
    total = sum(w.size for w in all_w)
    total_zeros = sum(int(w.size - np.count_nonzero(w)) for w in all_w)
    return SparseResult(
        model=model,
        masks=masks,
        layer_sparsity={k: z / n for k, (z, n) in per_layer.items()},
        sparsity=zeros / size if size else 0.0,
        model_sparsity=total_zeros / total if total else 0.0,
        amount=amount,
        scope=scope,
        zeros=zeros,
        kernel_weights=size,
    )


# ---- keeping zeros at zero while training -----------------------------------------------


class MaskConstraint(keras.constraints.Constraint):
    """w -> where(mask, w, 0). Keras applies variable constraints inside the compiled
    train step, right after every optimizer update."""

    def __init__(self, mask: np.ndarray):
        self.mask = np.asarray(mask, dtype=bool)

    def __call__(self, w):
        return ops.where(self.mask, w, ops.zeros_like(w))


def apply_masks(model: keras.Model, masks: dict[str, np.ndarray]) -> list[keras.Variable]:
    """Zero the masked weights of `model` now and keep them exactly zero through training.

    Multiplying the weights by a 0/1 mask once is not enough: the gradient with respect
    to a zeroed weight is generally not zero (it depends on that weight's input, not on
    its value), and optimizer state keeps pushing as well -- SGD momentum and Adam's first
    and second moments carry velocity accumulated before pruning and from every later
    step, so zeroed weights drift back within a step or two even if their gradient were
    masked. The mask is therefore re-applied after *every* optimizer step: as a variable
    constraint, which Keras runs in the same compiled train step as the update (so it also
    holds for model.fit and steps_per_execution > 1). Saved models carry no constraint
    (it is set on the variables, not in the layer config).

    Call it before training starts; an already traced train function is discarded so the
    constraints are picked up. Returns the constrained variables (see `remove_masks`).
    """
    kernels = prunable_kernels(model)
    out = []
    for name, keep in masks.items():
        var = kernels.get(name)
        if var is None:
            raise NeuronvizError(
                f"Expected mask names that match the model's kernels. Received: '{name}'."
                + close_matches(name, kernels)
            )
        keep = np.asarray(keep, dtype=bool)
        if tuple(keep.shape) != tuple(var.shape):
            raise NeuronvizError(
                f"Expected a mask of shape {tuple(var.shape)} for '{name}'. Received: shape {tuple(keep.shape)}"
            )
        var.assign(np.where(keep, var.numpy(), 0).astype(var.dtype))
        var.constraint = MaskConstraint(keep)
        out.append(var)
    model.train_function = None  # re-trace so the optimizer step sees the constraints
    return out


def remove_masks(variables) -> None:
    for var in variables:
        var.constraint = None


def masks_from_zeros(model: keras.Model, layers=None) -> dict[str, np.ndarray]:
    """Keep-masks read off a model's current zeros (e.g. a sparse model loaded from disk)."""
    return {n: v.numpy() != 0 for n, v in prunable_kernels(model, layers).items()}


# Trained float kernels have (almost) no exact zeros; `sparsify` writes many. A kernel with at
# least this fraction of exact zeros is taken to be sparse on purpose.
SPARSE_FRACTION = 0.01


def sparse_masks(model: keras.Model, min_fraction: float = SPARSE_FRACTION) -> dict:
    """Keep-masks of the kernels that are sparse (at least `min_fraction` exact zeros, the kind
    `sparsify` writes); {} for a dense model. Fine-tuning keeps these zeros by default."""
    masks = masks_from_zeros(model)
    return {n: m for n, m in masks.items() if m.size and 1 - m.mean() >= min_fraction}


def describe_masks(masks: dict) -> str:
    """'12,345 zero weights in 3 sparse kernels'."""
    zeros = int(sum(m.size - int(m.sum()) for m in masks.values()))
    return f"{zeros:,} zero weights in {len(masks)} sparse kernel{'s' * (len(masks) != 1)}"
