"""Derivatives of single neurons, without a loss; saliency; first-order Taylor importance.

The derivative of one unit w.r.t. the weights needs no loss and no labels: take the
unit's activation (its channel of the layer's output), sum it over the batch and the
spatial positions, and differentiate that scalar with a GradientTape while running the
model's flat graph up to the layer. An attention head's activation is its output before
the output projection, measured as the statistics measure it (`heads.head_norms`: its L2
norm over positions and head dimensions, per sample)::

    grads = unit_weight_gradients(model, "dense", 7, x)   # {"dense/kernel": ..., ...}

All functions accept a layer name or a nested path ("inner/dense"). Shared layers are
measured at their first call.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from neuronviz.backend.analysis.heads import gated_copy, head_norms
from neuronviz.backend.analysis.stats import as_inputs, batch_tensors, input_dtypes
from neuronviz.backend.model.graph import FlatGraph, flatten
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.model.trace import trace as trace_graph
from neuronviz.backend.surgery.registry import rule_for
from neuronviz.backend.surgery.rules import _np, width
from neuronviz.backend.surgery.sources import ConvRule, EmbeddingRule, RecurrentRule, SeparableRule
from neuronviz.backend.surgery.wrappers import BidirectionalRule
from neuronviz.core.metrics import IGNORE
from neuronviz.core.names import resolve_layer
from neuronviz.errors import NeuronvizError


def layer_path(fg: FlatGraph, name: str) -> str:
    """The flat-graph path of a layer name or alias (NeuronvizError if unknown)."""
    return resolve_layer(name, fg.layers, fg.aliases(), "a layer of the model")


def _unit_call(fg: FlatGraph, name: str, unit: int, trace: Trace | None = None):
    """The layer's first call and the channel axis of its output."""
    call = fg.first_call(layer_path(fg, name))
    shape = call.output_shapes[0]
    if trace is not None:
        axis = trace.axis(call.outputs[0])
    else:
        rank = len(call.input_shapes[0]) if call.input_shapes else 0
        axis = rule_for(call.layer, rank).channel_axis(call.layer, len(shape))
        axis = len(shape) - 1 if axis is None else axis
    _check_unit(call, unit, width(shape, axis))
    return call, axis


def _check_unit(call, unit: int, n: int, kind: str = "") -> None:
    if not 0 <= int(unit) < n:
        raise NeuronvizError(
            f"Expected `unit` in [0, {n}) for layer '{call.path}'{kind}. Received: unit={unit}"
        )


def _has_heads(fg: FlatGraph, name: str, trace: Trace | None) -> bool:
    path = layer_path(fg, name)
    if trace is not None:
        return trace.inner(path)
    call = fg.first_call(path)
    rank = len(call.input_shapes[0]) if call.input_shapes else 0
    return bool(getattr(rule_for(call.layer, rank), "inner_units", False))


def unit_target(fg: FlatGraph, name: str, unit: int, trace: Trace | None = None):
    """(fn(batch) -> the scalar whose derivatives are the unit's, {id(weight): the variable
    that stands for it in fn}): fn runs the flat graph up to the layer and sums the unit's
    activation over samples (and positions). An attention head's activation is its
    output's norm (`head_norms`), read from a private copy of the layer (with copies of
    its weights) whose output projection records each head's output."""
    if not _has_heads(fg, name, trace):
        call, axis = _unit_call(fg, name, unit, trace)

        def channel(batch):
            return _unit_sum(fg.run(batch, stop=call.index + 1), call, axis, unit)

        return channel, {}
    tr = trace if trace is not None else trace_graph(fg)
    call = fg.first_call(layer_path(fg, name))
    _check_unit(call, unit, len(tr.layer_units[call.path]), " (its heads)")
    copy, gated = gated_copy(tr, call)

    def hook(c, values) -> bool:
        if c.index != call.index:
            return False
        c.run(values, layer=copy)
        return True

    def head(batch):
        fg.run(batch, hook=hook, stop=call.index + 1)
        return ops.sum(head_norms(gated.heads)[:, int(unit)])

    return head, {id(w): c for w, c in zip(call.layer.weights, copy.weights, strict=True)}


def _unit_sum(values: dict, call, axis: int, unit: int):
    y = values[call.outputs[0]]
    return ops.sum(ops.take(y, int(unit), axis=axis) if len(y.shape) > 1 else y)


def _batches(fg: FlatGraph, x, batch_size: int):
    xs = as_inputs(x, len(fg.inputs))
    dtypes = input_dtypes(fg.model)
    for s in range(0, len(xs[0]), batch_size):
        yield s, batch_tensors(xs, s, s + batch_size, dtypes)


def trainable_weights(fg: FlatGraph) -> dict[str, keras.Variable]:
    """'layer_path/weight_name' -> variable, for every trainable weight (each once); a
    weight of a sublayer keeps its sublayer's name ('mha/query/kernel')."""
    out, seen = {}, set()
    for path, layer in fg.layers.items():
        for v in getattr(layer, "trainable_weights", []):  # raw ops (x + y) have none
            if id(v) not in seen:
                seen.add(id(v))
                out[f"{path}/{_within(v, layer)}"] = v
    return out


def _within(v, layer) -> str:
    """The variable's path below its layer ('query/kernel' in a MultiHeadAttention)."""
    parts = str(getattr(v, "path", v.name)).split("/")
    return "/".join(parts[parts.index(layer.name) + 1 :]) if layer.name in parts[:-1] else v.name


def _graph(model: keras.Model, trace: Trace | None) -> FlatGraph:
    return trace.graph if trace is not None else flatten(model)


def unit_weight_gradients(
    model: keras.Model, layer: str, unit: int, x, batch_size: int = 256, trace: Trace | None = None
) -> dict[str, np.ndarray]:
    """d(sum over samples and positions of the unit's activation) / d(every trainable
    weight), keyed 'layer_path/weight_name'. Weights the unit does not depend on get
    zeros. Pass `trace` to reuse the model's flat graph."""
    fg = _graph(model, trace)
    target, swap = unit_target(fg, layer, unit, trace)
    weights = trainable_weights(fg)
    watched = [swap.get(id(v), v) for v in weights.values()]
    total = {k: np.zeros(tuple(v.shape), np.float64) for k, v in weights.items()}
    for _, batch in _batches(fg, x, batch_size):
        with tf.GradientTape() as tape:
            value = target(batch)
        grads = tape.gradient(value, watched)
        for k, g in zip(weights, grads, strict=True):
            if g is not None:
                total[k] += ops.convert_to_numpy(ops.convert_to_tensor(g))
    return {k: g.astype(np.float32) for k, g in total.items()}


def saliency(
    model: keras.Model, layer: str, unit: int, x, batch_size: int = 256, trace: Trace | None = None
):
    """d(unit activation summed over positions) / d(input), per sample: shaped like x
    (a list for several inputs). For an attention head: d(its output norm) / d(input)."""
    fg = _graph(model, trace)
    target, _ = unit_target(fg, layer, unit, trace)
    xs = as_inputs(x, len(fg.inputs))
    if any(np.asarray(a[:1]).dtype.kind not in "f" for a in xs):
        raise NeuronvizError(
            "Expected floating-point model inputs for a saliency map. Received: integer inputs (e.g. token ids)."
        )
    out = [np.zeros(np.shape(a), np.float32) for a in xs]
    for s, batch in _batches(fg, xs, batch_size):
        with tf.GradientTape() as tape:
            for t in batch:
                tape.watch(t)
            value = target(batch)
        for o, g in zip(out, tape.gradient(value, batch), strict=True):
            if g is not None:
                o[s : s + len(g)] = ops.convert_to_numpy(g)
    return out[0] if len(out) == 1 else out


def per_sample_loss(model: keras.Model):
    """The compiled loss as fn(y_true, y_pred) -> unreduced per-sample values."""
    loss = getattr(model, "loss", None)
    if loss is None:
        raise NeuronvizError(
            "Expected a compiled model (with a loss) to score units with labels. Received: a model without a loss."
        )
    if isinstance(loss, (list, tuple, dict)):
        raise NeuronvizError(
            "Expected a single loss to score units with labels. Received: one loss per output."
        )
    fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    return _skipping_ignored(fn.call if isinstance(fn, keras.losses.Loss) else fn)


def _skipping_ignored(fn):
    """`fn` with labels equal to IGNORE (next-token data: nothing to predict) adding 0."""

    def loss(y_true, y_pred):
        keep = ops.not_equal(y_true, IGNORE)
        values = fn(ops.where(keep, y_true, ops.zeros_like(y_true)), y_pred)
        if tuple(values.shape) != tuple(keep.shape):
            return values
        return values * ops.cast(keep, values.dtype)

    return loss


def taylor_importance(
    model: keras.Model, trace: Trace, x, y=None, batch_size: int = 64, layers=None
) -> dict[str, np.ndarray]:
    """First-order Taylor importance of every layer with units (Molchanov et al. 2017).

    Per unit: |mean over positions of a * dL/da| per sample, then the mean over samples,
    with `a` the layer's output. L is the sum of per-sample compiled losses when `y` is
    given, else the sum of all model outputs. One tape per batch watches every layer's
    output, in one compiled function per batch shape (only (units,) sums leave the
    graph); there is no loop over units."""
    fg = trace.graph
    paths = (
        [p for p in trace.layer_units if not trace.inner(p)]  # heads are inside their layer
        if layers is None
        else [layer_path(fg, p) for p in layers]
    )
    loss = per_sample_loss(model) if y is not None else None
    if loss is not None and len(fg.outputs) != 1:
        raise NeuronvizError(
            f"Expected a single-output model to score units with labels. Received: {len(fg.outputs)} outputs."
        )
    step = _TaylorStep(trace, paths, loss)
    acc = {p: np.zeros(step.units[p], np.float64) for p in paths}
    n = 0
    for s, batch in _batches(fg, x, batch_size):
        if loss is not None:
            batch = [*batch, ops.convert_to_tensor(np.asarray(y[s : s + batch_size]))]
        for p, v in zip(paths, step(batch), strict=True):
            acc[p] += ops.convert_to_numpy(v)
        n += len(batch[0])
    return {p: (v / max(n, 1)).astype(np.float32) for p, v in acc.items()}


class _TaylorStep:
    """One batch of Taylor importance, compiled: per layer, the sum over samples of
    |mean over positions of a * dL/da| (zeros where L does not depend on the layer)."""

    def __init__(self, trace: Trace, paths: list[str], loss):
        fg = trace.graph
        self.trace, self.paths, self.loss = trace, paths, loss
        self.keys = {p: fg.first_call(p).outputs[0] for p in paths}
        self.watched = {fg.first_call(p).index for p in paths}
        self.units = {p: len(trace.map(self.keys[p])) for p in paths}
        self._fn = None

    def __call__(self, batch: list) -> list:
        if self._fn is None:
            spec = [tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in batch]
            self._fn = tf.function(self._step, input_signature=spec)
        return self._fn(*batch)

    def _step(self, *args) -> list:
        fg = self.trace.graph
        batch = list(args[: len(fg.inputs)])
        with tf.GradientTape() as tape:

            def hook(call, values):
                call.run(values)
                if call.index in self.watched:
                    tape.watch(values[call.outputs[0]])
                return True

            values = fg.run(batch, hook=hook)
            outs = [values[k] for k in fg.outputs]
            if self.loss is None:
                target = sum(ops.sum(ops.cast(o, "float32")) for o in outs)
            else:
                target = ops.sum(ops.cast(self.loss(args[-1], outs[0]), "float32"))
        acts = [values[self.keys[p]] for p in self.paths]
        out = []
        for p, a, g in zip(self.paths, acts, tape.gradient(target, acts), strict=True):
            if g is None:
                out.append(tf.zeros((self.units[p],), tf.float32))
                continue
            prod = ops.cast(a, "float32") * ops.cast(g, "float32")
            axis = self.trace.axis(self.keys[p])
            if axis < len(prod.shape) - 1:
                prod = ops.moveaxis(prod, axis, -1)
            prod = tf.reshape(prod, (tf.shape(prod)[0], -1, self.units[p]))
            out.append(tf.reduce_sum(tf.abs(tf.reduce_mean(prod, axis=1)), axis=0))
        return out


def unit_top_inputs(trace: Trace, layer: str, unit: int, k: int = 10) -> list[tuple[int, float]]:
    """The input channels that drive a unit most: (input index, weight) by |weight|, largest first.

    Dense and Embedding: the signed weight (for Embedding the index is a token id).
    Layers with a kernel window (Conv*, ConvTranspose) or gates (recurrent): the L2 norm
    of the weights from that input channel (>= 0); SeparableConv: of its pointwise kernel
    over the depth multiplier. An attention head: its query input's channels, by the L2
    norm of the head's query weights from each (>= 0)."""
    fg = trace.graph
    if trace.inner(layer_path(fg, layer)):
        call = fg.first_call(layer_path(fg, layer))
        _check_unit(call, unit, len(trace.layer_units[call.path]), " (its heads)")
        per_input = np.linalg.norm(_np(call.layer._query_dense.kernel)[:, int(unit)], axis=-1)
        order = np.argsort(-per_input, kind="stable")[: max(0, int(k))]
        return [(int(i), float(per_input[i])) for i in order]
    call, _ = _unit_call(fg, layer, unit, trace)
    rule = trace.rule(call.path)
    w = rule.unit_kernel(call.layer)
    if w is None or not getattr(rule, "has_units", False):
        raise NeuronvizError(
            f"Expected a layer that creates units (Dense, Conv, ...). Received: '{call.path}' ({type(call.layer).__name__})"
        )
    col = w[..., int(unit)]
    offset = 0
    if col.ndim == 1:  # Dense, Embedding
        per_input = col.astype(np.float64)
    elif isinstance(rule, (RecurrentRule, BidirectionalRule)):
        per_input = np.linalg.norm(col, axis=1)
    elif isinstance(rule, SeparableRule):
        m = int(call.layer.depth_multiplier)
        per_input = np.linalg.norm(col.reshape(-1, m), axis=1)
    else:  # Conv / ConvTranspose (unit axis already last): (window..., in)
        per_input = np.linalg.norm(col.reshape(-1, col.shape[-1]), axis=0)
        groups = int(getattr(call.layer, "groups", 1) or 1) if isinstance(rule, ConvRule) else 1
        if groups > 1:
            offset = int(unit) // (int(call.layer.filters) // groups) * col.shape[-1]
    order = np.argsort(-np.abs(per_input), kind="stable")[: max(0, int(k))]
    return [(int(i) + offset, float(per_input[i])) for i in order]


def upstream_unit(trace: Trace, layer: str, input_index: int) -> tuple[str, int] | None:
    """Which (layer, unit) lives at channel `input_index` of the layer's input, if any."""
    fg = trace.graph
    call = fg.first_call(layer_path(fg, layer))
    if isinstance(trace.rule(call.path), EmbeddingRule) or not call.inputs:
        return None
    m = trace.input_maps(call)[0]
    if not 0 <= input_index < len(m) or m[input_index] < 0:
        return None
    uid = int(m[input_index])
    for sp in trace.units.spaces:
        if sp.start <= uid < sp.start + sp.size:
            return sp.layer, uid - sp.start
    return None
