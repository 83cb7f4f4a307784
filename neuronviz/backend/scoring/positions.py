"""Which sequence positions the model's outputs read, so the preview computes only those.

A [CLS]-pooled classifier reads one position of its last block (`x[:, 0]`). Layers that
act on each position alone (Dense, a LayerNormalization over features, Add,
activations, Dropout) commute with taking positions, so they run on the read positions
only, and an attention layer computes only those query positions (its keys and values
still cover every position; an attention mask loses the same query rows). The result
is the same numbers for those positions. Positions are axis 1 of tensors of rank 3 or
more. Anything else (pooling over positions, recurrent or convolutional layers, causal
or implicit Keras masks) reads every position, which stops the analysis there.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from neuronviz.backend.model.graph import Call, FlatGraph, Key

_ELEMENTWISE = set(
    """Activation ReLU LeakyReLU ELU ThresholdedReLU Dropout GaussianNoise GaussianDropout
AlphaDropout ActivityRegularization Identity Dense Add Subtract Multiply Average Maximum Minimum
Relu Relu6 Sigmoid Tanh Gelu Silu Swish Softplus Softsign Elu Selu LeakyRelu HardSigmoid
HardSilu HardSwish Mish Negative Abs Square Sqrt Exp Log Log1p Cast Divide TrueDivide""".split()
)
_FEATURE_NORMS = {"LayerNormalization", "Softmax", "UnitNormalization"}  # if over axes >= 2
_ATTENTION = {"MultiHeadAttention", "GroupedQueryAttention"}
_ATTENTION_KWARGS = {"query", "value", "key", "attention_mask", "training"}
_ALL = None  # every position


class Positions:
    """The calls that run on fewer positions than their tensors have, for `wrap`."""

    def __init__(self, graph: FlatGraph):
        self.graph = graph
        self.plan = {i: e for i, e in read_positions(graph).items() if _slices(e)}
        self._produced = {k: c.index for c in graph.calls for k in c.outputs}
        self._read: dict[Key, list] = {}  # key -> (call index, share of positions it reads)
        for call in graph.calls:
            reads = self.plan.get(call.index, (None, [_ALL] * len(call.inputs)))[1]
            for k, r, shape in zip(call.inputs, reads, call.input_shapes, strict=True):
                share = 1.0 if r is _ALL else len(r) / shape[1]
                self._read.setdefault(k, []).append((call.index, share))
        for k in graph.outputs:
            self._read.setdefault(k, []).append((len(graph.calls), 1.0))
        self._calls: dict[int, dict] = {}  # run_from -> {index: proxy Call or picked position}

    @classmethod
    def for_data(cls, graph: FlatGraph, inputs: list) -> Positions | None:
        """The positions of `graph`, if `inputs` have the shapes it was traced at."""
        same = all(
            tuple(a.shape[1:]) == tuple(s[1:])
            for a, s in zip(inputs, graph.input_shapes, strict=True)
        )
        return cls(graph) if same else None

    def __bool__(self) -> bool:
        return bool(self.plan)

    def wrap(self, hook, start: int, run_from: int | None = None):
        """`hook` for FlatGraph.run from call `start`, with the planned calls run on their
        read positions (through `hook`, which sees a Call whose inputs are taken).
        Tensors made from call `run_from` (default `start`) on hold their planned
        positions; earlier ones (the cached frontier) hold every position."""
        if not self.plan:
            return hook
        calls = self._planned(start if run_from is None else run_from)

        def run(call, values) -> bool:
            entry = calls.get(call.index)
            if entry is None:
                return hook(call, values) if hook is not None else False
            if isinstance(entry, Call):
                if hook is None or not hook(entry, values):
                    entry.run(values)
                return True
            values[call.outputs[0]] = _take(values[call.inputs[0]], entry)  # x[:, i]
            return True

        return run

    def call_at(self, index: int) -> Call:
        """Call `index` run from the frontier before it, on its read positions."""
        entry = self._planned(index).get(index)
        return entry if isinstance(entry, Call) else self.graph.calls[index]

    def held(self, index: int):
        """The positions call `index`'s outputs hold (None: all)."""
        return self.plan.get(index, (_ALL, None))[0]

    def share(self, index: int) -> float:
        """The share of positions call `index`'s outputs hold."""
        held = self.held(index)
        return 1.0 if held is None else len(held) / self.graph.calls[index].output_shapes[0][1]

    def read_share(self, key: Key, start: int) -> float:
        """The largest share of `key`'s positions that a call from `start` on reads."""
        return max((s for i, s in self._read.get(key, ()) if i >= start), default=1.0)

    def _planned(self, run_from: int) -> dict:
        """Call index -> a copy with slot functions, or the index a GetItem picks."""
        if run_from in self._calls:
            return self._calls[run_from]
        held: dict[Key, np.ndarray | None] = {}  # key -> positions its value holds
        out = self._calls[run_from] = {}
        for call in self.graph.calls[run_from:]:
            entry = self.plan.get(call.index)
            if entry is None:
                continue
            outs, reads = entry
            have = [
                held.get(k) if self._produced.get(k, -1) >= run_from else _ALL for k in call.inputs
            ]
            if outs is _ALL:  # a GetItem of one position
                if have[0] is not _ALL:
                    out[call.index] = int(np.searchsorted(have[0], reads[0][0]))
                continue
            fns = tuple(_taker(h, r) for h, r in zip(have, reads, strict=True))
            out[call.index] = dataclasses.replace(call, slot_fns=fns)
            for k in call.outputs:
                held[k] = outs
        return out


def read_positions(graph: FlatGraph) -> dict[int, tuple]:
    """Call index -> (positions its outputs hold, positions each input slot must hold);
    `None` is every position. Walks back from the outputs, which read every position."""
    need: dict[Key, np.ndarray | None] = dict.fromkeys(graph.outputs, _ALL)
    plan = {}
    for call in reversed(graph.calls):
        wants = [need[k] for k in call.outputs if k in need]
        q = _union(wants) if wants else _ALL
        reads = _reads(call, q)
        outs = q if reads is not None and type(call.layer).__name__ != "GetItem" else _ALL
        if reads is None:
            reads = [_ALL] * len(call.inputs)
        for k, r in zip(call.inputs, reads, strict=True):
            need[k] = _union([need[k], r]) if k in need else r
        plan[call.index] = (outs, reads)
    return plan


def _reads(call: Call, q) -> list | None:
    """Positions each input slot must hold for the outputs to hold `q` (None: refused)."""
    name = type(call.layer).__name__
    if len(call.outputs) != 1 or any(
        getattr(kt, "_keras_mask", None) is not None for kt in call.node.input_tensors
    ):
        return None
    if name == "GetItem":
        return _picked(call)
    if q is _ALL:
        return None
    out = call.output_shapes[0]
    if len(out) < 3:
        return None
    if name in _ELEMENTWISE or (name in _FEATURE_NORMS and _feature_axes(call.layer, len(out))):
        return _elementwise(call, q)
    if name in _ATTENTION:
        return _attention(call, q)
    return None


def _elementwise(call: Call, q) -> list | None:
    """Inputs of the output's shape hold `q`; broadcast ones (one position, or none) all."""
    out = call.output_shapes[0]
    reads = []
    for s in call.input_shapes:
        if len(s) == len(out) and s[1] == out[1]:
            reads.append(q)
        elif (len(s) == len(out) and s[1] == 1) or len(s) < len(out) - 1:
            reads.append(_ALL)
        else:
            return None
    return reads


def _attention(call: Call, q) -> list | None:
    """Query and the attention mask's query rows hold `q`; keys and values all."""
    args = call.node.arguments
    flags = [v for k, v in args.kwargs.items() if k not in _ATTENTION_KWARGS]
    if len(args.args) > 3 or any(v is not None and v is not False for v in flags):
        return None  # query/value masks; causal masks and returned scores unless False
    if getattr(call.layer, "_attention_axes", None) not in (None, (1,)):
        return None
    named = list(zip(("query", "value", "key"), args.args, strict=False))
    slots = [n for n, a in named + sorted(args.kwargs.items()) if isinstance(a, keras.KerasTensor)]
    if len(slots) != len(call.inputs) or len(call.input_shapes[slots.index("query")]) != 3:
        return None
    t = call.input_shapes[slots.index("query")][1]
    reads = []
    for n, s in zip(slots, call.input_shapes, strict=True):
        if n == "query" or (n == "attention_mask" and len(s) == 3 and s[1] == t and t != 1):
            reads.append(q)
        elif n == "attention_mask" and not (len(s) == 3 and s[1] == 1):
            return None
        else:
            reads.append(_ALL)
    return reads


def _picked(call: Call) -> list | None:
    """`x[:, i]` (more axes taken whole) reads position i."""
    args = call.node.arguments.args
    key = args[1] if len(args) == 2 else None
    shape = call.input_shapes[0]
    if not isinstance(key, tuple) or len(key) < 2 or len(shape) < 3 or shape[1] is None:
        return None
    whole = slice(None)
    if key[0] != whole or not isinstance(key[1], (int, np.integer)) or isinstance(key[1], bool):
        return None
    if any(k is not Ellipsis and k != whole for k in key[2:]):
        return None
    return [np.array([int(key[1]) % shape[1]])]


def _feature_axes(layer, rank: int) -> bool:
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return all(a % rank >= 2 for a in axes)


def _union(parts: list):
    if any(p is _ALL for p in parts):
        return _ALL
    return np.unique(np.concatenate(parts))


def _slices(entry) -> bool:
    outs, reads = entry
    return outs is not _ALL or any(r is not _ALL for r in reads)


def _taker(have, read):
    """A function taking positions `read` from a tensor holding `have` (None: as is)."""
    if read is _ALL:
        return None
    idx = read if have is _ALL else np.searchsorted(have, read)
    if have is not _ALL and len(have) == len(read):
        return None
    return lambda x: _take(x, idx)


def _take(x, idx):
    if isinstance(x, np.ndarray):
        return np.take(x, idx, axis=1)
    return ops.take(x, idx, axis=1)
