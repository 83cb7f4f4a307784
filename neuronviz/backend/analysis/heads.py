"""Attention heads' outputs, where the layer computes them: a private copy of a
projected attention layer (MultiHeadAttention, GroupedQueryAttention) whose output
projection records each head's output (batch, ..., heads, head_dim) and may scale it by
a gate first. The copy computes what the layer computes; the user's layer is untouched.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from neuronviz.backend.model.trace import Trace
from neuronviz.backend.surgery.masking import pruned_layer


class GatedProjection:
    """An attention copy's output projection: head h's output times gate[:, h] first."""

    def __init__(self, dense):
        self.dense = dense
        self.gate = None  # (batch, heads), or None for no gate
        self.heads = None  # the last per-head output seen

    def __call__(self, z, *args, **kwargs):
        if self.gate is not None:
            shape = (-1,) + (1,) * (len(z.shape) - 3) + (z.shape[-2], 1)
            z = z * ops.cast(ops.reshape(self.gate, shape), z.dtype)
        self.heads = z
        return self.dense(z, *args, **kwargs)


class _Nothing:
    """A selection that removes nothing."""

    def keep(self, ids):
        return np.ones(len(ids), bool)


def gated_copy(tr: Trace, call):
    """(copy of the call's attention layer, its GatedProjection): run the call with
    `call.run(values, layer=copy)`, then read `projection.heads`."""
    n = len(call.data_inputs)
    ins, outs = tr.keeps(_Nothing(), call)
    copy = pruned_layer(tr.rule(call.path), call.layer, ins[:n], outs, call.input_shapes[:n])
    gated = GatedProjection(copy._output_dense)
    copy._output_dense = gated
    return copy, gated


def head_norms(z):
    """Each head's output norm per sample, (batch, heads) float32: the L2 norm of
    z (batch, ..., heads, head_dim) over positions and head dimensions. A silent head's
    norm is 0 with a gradient of 0 (not sqrt's NaN at 0)."""
    z = ops.cast(z, "float32")
    axes = (*range(1, len(z.shape) - 2), len(z.shape) - 1)
    squares = ops.sum(z * z, axis=axes)
    live = squares > 0
    return ops.where(live, ops.sqrt(ops.where(live, squares, 1.0)), 0.0)
