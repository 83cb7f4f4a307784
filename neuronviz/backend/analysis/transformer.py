"""Data statistics behind the importances of attention heads and FFN neurons.

`unit_data` makes one pass over the data. For every projected attention layer
(MultiHeadAttention, GroupQueryAttention) it runs a private copy whose output projection
multiplies each head's output by a gate of 1 before projecting (the copy computes what
the layer computes), and records each head's output and, with labels, the gradient of
the loss w.r.t. each head's gate. For every Dense call it records the sum and the sum of
squares of each input channel. The importances read from it (per unit, higher = more
important):

- ``head_norm``: the L2 norm of a head's output over positions and head dimensions,
  averaged over samples;
- ``head_taylor``: |dL/dg| for the head's gate g, averaged over samples (first-order
  Taylor on the head mask, Michel et al. 2019, "Are Sixteen Heads Really Better than One?");
- ``wanda``: sum_j |W[j, k]| * ||X_j||_2 for unit k of a Dense layer, X_j its input
  channel j over all samples and positions (Wanda, Sun et al. 2023, reduced over the column);
- ``flap``: the variance of the unit's channel where it enters a Dense consumer, times
  the squared norm of the consumer's input row, summed over the consumers (FLAP's
  fluctuation metric, An et al. 2024).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from keras import ops

from neuronviz.backend.analysis.gradients import _batches, per_sample_loss
from neuronviz.backend.analysis.heads import gated_copy, head_norms
from neuronviz.backend.analysis.stats import as_inputs
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.surgery.attention import heads_of
from neuronviz.backend.surgery.rules import _np
from neuronviz.backend.surgery.sources import DenseRule


@dataclass
class UnitData:
    """What one pass over the data measured (see the module docstring)."""

    head_norm: dict = field(default_factory=dict)  # attention layer -> (heads,)
    head_taylor: dict = field(default_factory=dict)  # attention layer -> (heads,); needs labels
    inputs: dict = field(default_factory=dict)  # Dense layer -> (count, sum, sum of squares)


def unit_data(model, trace: Trace, x, y=None, batch_size: int = 64, progress=None) -> UnitData:
    """Measure heads and Dense inputs on `x` (and, with labels `y`, the heads' Taylor
    scores through the compiled loss). `progress(fraction)` is called after each batch."""
    fg = trace.graph
    total = len(as_inputs(x, len(fg.inputs))[0])
    loss = per_sample_loss(model) if y is not None else None
    probe = _Probe(trace)
    n = 0
    for s, batch in _batches(fg, x, batch_size):
        with tf.GradientTape() if loss is not None else contextlib.nullcontext() as tape:
            probe.start(int(batch[0].shape[0]), tape)
            values = fg.run(batch, hook=probe.hook)
            if loss is not None:
                yb = ops.convert_to_tensor(np.asarray(y[s : s + batch_size]))
                target = ops.sum(ops.cast(loss(yb, values[fg.outputs[0]]), "float32"))
        if loss is not None and probe.gates:
            grads = tape.gradient(target, list(probe.gates.values()))
            for index, g in zip(probe.gates, grads, strict=True):
                path = fg.calls[index].path
                if g is not None:
                    t = np.abs(ops.convert_to_numpy(g)).astype(np.float64).sum(axis=0)
                    probe.taylor[path] = probe.taylor.get(path, 0) + t
        n += int(batch[0].shape[0])
        if progress is not None:
            progress(n / total)
    return UnitData(
        head_norm={p: v / max(n, 1) for p, v in probe.norms.items()},
        head_taylor={p: v / max(n, 1) for p, v in probe.taylor.items()},
        inputs=probe.inputs,
    )


class _Probe:
    """The hook of one pass: gated attention copies, Dense input sums."""

    def __init__(self, trace: Trace):
        fg = trace.graph
        self.heads = {c.index: gated_copy(trace, c) for c in fg.calls if trace.inner(c.path)}
        self.dense = {
            c.index
            for c in fg.calls
            if isinstance(trace.rule(c.path), DenseRule) and c is fg.first_call(c.path)
        }
        self.inputs = {
            fg.calls[i].path: [0, np.zeros(w), np.zeros(w)]
            for i in self.dense
            for w in [int(fg.calls[i].input_shapes[0][-1])]
        }
        self.norms: dict[str, np.ndarray] = {}
        self.taylor: dict[str, np.ndarray] = {}

    def start(self, rows: int, tape) -> None:
        self.rows, self.tape, self.gates = rows, tape, {}

    def hook(self, call, values) -> bool:
        if call.index in self.dense:
            a = ops.convert_to_numpy(values[call.inputs[0]]).astype(np.float64)
            a = a.reshape(-1, a.shape[-1])
            acc = self.inputs[call.path]
            acc[0] += len(a)
            acc[1] += a.sum(axis=0)
            acc[2] += (a * a).sum(axis=0)
        if call.index not in self.heads:
            return False
        copy, gated = self.heads[call.index]
        gated.gate = tf.ones((self.rows, heads_of(copy)[0]))
        if self.tape is not None:
            self.tape.watch(gated.gate)
            self.gates[call.index] = gated.gate
        call.run(values, layer=copy)
        per = ops.convert_to_numpy(ops.sum(head_norms(gated.heads), axis=0))
        self.norms[call.path] = self.norms.get(call.path, 0) + per.astype(np.float64)
        return True


# ---- the importances (registered in analysis.importance) ---------------------------------
def head_norm(ctx, path: str) -> np.ndarray | None:
    """L2 norm of each head's output, averaged over samples."""
    return None if ctx.unit_data is None else ctx.unit_data.head_norm.get(path)


def head_taylor(ctx, path: str) -> np.ndarray | None:
    """|dL/d(head gate)|, averaged over samples (needs labels)."""
    return None if ctx.unit_data is None else ctx.unit_data.head_taylor.get(path)


def _input_norms(ctx, path: str):
    acc = None if ctx.unit_data is None else ctx.unit_data.inputs.get(path)
    return None if acc is None or not acc[0] else acc


def wanda(ctx, path: str) -> np.ndarray | None:
    """sum_j |W[j, k]| * ||X_j||_2 for each unit k of a Dense layer."""
    acc = _input_norms(ctx, path)
    if acc is None:
        return None
    w = np.abs(_np(ctx.trace.graph.layers[path].kernel).astype(np.float64))
    return (w * np.sqrt(acc[2])[:, None]).sum(axis=0)


def flap(ctx, path: str) -> np.ndarray | None:
    """Variance of the unit's channel entering each Dense consumer times the squared norm
    of the consumer's input row, summed over consumers (NaN where no Dense reads it)."""
    tr = ctx.trace
    if ctx.unit_data is None or path not in tr.layer_units or tr.inner(path):
        return None
    total: dict[int, float] = {}
    for consumer in ctx.unit_data.inputs:
        acc = _input_norms(ctx, consumer)
        if acc is None:
            continue
        count, s, ss = acc
        var = np.maximum(ss / count - (s / count) ** 2, 0.0)
        rows = (_np(tr.graph.layers[consumer].kernel).astype(np.float64) ** 2).sum(axis=1)
        roots = tr.units.roots(tr.map(tr.graph.first_call(consumer).inputs[0]))
        for r, v in zip(roots.tolist(), (var * rows).tolist(), strict=True):
            if r >= 0:
                total[r] = total.get(r, 0.0) + v
    scores = [total.get(r, np.nan) for r in tr.units.roots(tr.layer_units[path]).tolist()]
    return None if all(np.isnan(scores)) else np.asarray(scores, np.float64)
