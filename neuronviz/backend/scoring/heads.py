"""Removing heads of an attention layer as a subtraction: each head adds its own term.

A projected attention layer's output is its output projection's bias plus one term per
query head (that head's attention output through its rows of the output projection).
So the output without heads S is the full output minus the terms of S: the numbers the
pruned layer computes, up to the order of the sums. `HeadTerms` computes the full output
and each head's term once over the dataset (a copy keeping one head gives bias + term),
and the preview then scores any removal of that layer's heads without rerunning it.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from neuronviz.backend.model.graph import Call
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.surgery.attention import ProjectedAttention
from neuronviz.backend.surgery.masking import Masker, local_copy


def has_heads(tr: Trace, index: int) -> bool:
    """True when call `index` is a projected attention layer (its units are heads)."""
    calls = tr.graph.calls
    return index < len(calls) and isinstance(tr.rule(calls[index].path), ProjectedAttention)


def removed_heads(tr: Trace, masker: Masker, index: int) -> np.ndarray | None:
    """The heads removed from call `index`, when removing them is all the selection
    changes at that call (inputs and output channels whole); otherwise None."""
    if (
        not has_heads(tr, index)
        or index not in masker.local
        or index in masker.input_masks
        or len(tr.graph.calls[index].outputs) != 1
    ):
        return None
    ins, outs = tr.keeps(masker.selection, tr.graph.calls[index])
    if not all(k.all() for k in ins + outs[:-1]):
        return None
    return np.flatnonzero(~outs[-1])


class HeadTerms:
    """One attention call's output over all samples, and each head's term in it."""

    def __init__(self, tr: Trace, call: Call, n: int):
        ins, outs = _whole(tr, call)
        heads = len(outs[-1])
        self.copies = []
        for h in range(heads):
            one = np.zeros(heads, bool)
            one[h] = True
            self.copies.append(local_copy(tr, call, ins, outs[:-1] + [one]))
        bias = call.layer._output_dense.bias
        self.bias = None if bias is None else np.asarray(bias.numpy())
        self.n = n
        self.output: np.ndarray | None = None  # (n, ..., width)
        self.terms: np.ndarray | None = None  # (heads, n, ..., width)

    @staticmethod
    def nbytes_for(tr: Trace, call: Call, positions=None) -> int:
        """Bytes per sample of the output and the terms (float32) at `positions` (or all)."""
        shape = list(call.output_shapes[0][1:])
        if positions is not None:
            shape[0] = len(positions)
        return int(np.prod(shape, dtype=np.int64)) * 4 * (len(tr.layer_units[call.path]) + 1)

    @property
    def nbytes(self) -> int:
        return 0 if self.output is None else self.output.nbytes + self.terms.nbytes

    def add(self, call: Call, values: dict, lo: int) -> None:
        """Compute samples lo.. from `values` (the call's inputs for those samples);
        `call` may be a copy that takes positions of its inputs."""
        key = call.outputs[0]
        call.run(values)
        full = ops.convert_to_numpy(values[key])
        terms = []
        for copy in self.copies:
            call.run(values, layer=copy)
            term = ops.convert_to_numpy(values[key])
            terms.append(term - self.bias if self.bias is not None else term)
        if self.output is None:
            self.output = np.empty((self.n,) + full.shape[1:], full.dtype)
            self.terms = np.empty((len(terms), self.n) + full.shape[1:], full.dtype)
        self.output[lo : lo + len(full)] = full
        self.terms[:, lo : lo + len(full)] = np.stack(terms)

    def without(self, heads: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """The output of samples lo..hi with `heads` removed."""
        out = self.output[lo:hi]
        for h in heads:
            out = out - self.terms[h, lo:hi]
        return out


def _whole(tr: Trace, call: Call) -> tuple[list, list]:
    """Keeps of a call that keep everything (one more output keep: the heads)."""
    ins = [np.ones(len(m), bool) for m in tr.input_maps(call)]
    outs = [np.ones(len(tr.maps[k]), bool) for k in call.outputs]
    return ins, outs + [np.ones(len(tr.layer_units[call.path]), bool)]
