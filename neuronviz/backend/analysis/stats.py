"""Per-unit activation statistics over a data set (weight norms: see importance.py).

Activation statistics exist for every layer with units (its output, after its
activation) and are reduced over samples and spatial positions batch by batch, so the
memory held is O(samples x units) for `per_sample` plus one batch of live tensors. An
attention layer's units are its heads: a head's value per sample is the L2 norm of its
output over positions and head dimensions (so their mean over samples is `head_norm`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from neuronviz.backend.analysis.heads import gated_copy, head_norms
from neuronviz.backend.model.trace import Trace
from neuronviz.errors import NeuronvizError


# ---- activations -------------------------------------------------------------------------
@dataclass
class UnitStats:
    """Activation statistics of one layer's units over samples and spatial positions."""

    mean: np.ndarray
    std: np.ndarray
    max: np.ndarray
    apoz: np.ndarray  # fraction of outputs exactly 0
    dead: np.ndarray  # bool: never non-zero
    per_sample: np.ndarray  # (N, units) float32: spatial mean per sample
    positions: int  # spatial positions per sample (1 for Dense)


def _reduce(y):
    """Per batch (traced into the pass): spatial mean per sample (B, C); over samples and
    positions the sum of squared deviations from the batch mean, the max, the count of
    zeros (C,); positions. Sums are matmuls with a row of ones (oneDNN's fastest
    reduction here) and the shift is a `bias_add` (a broadcast `squared_difference` took
    about 1.5x the CPU time)."""
    y = tf.cast(y, tf.float32)
    c = tf.shape(y)[-1]
    y = tf.reshape(y, (tf.shape(y)[0], -1, c))  # (B, P, C)
    positions = tf.shape(y)[1]
    ones = tf.ones((tf.shape(y)[0], 1, positions), tf.float32)

    def over_positions(t):  # (B, P, C) -> (B, C)
        return tf.squeeze(tf.matmul(ones, t), axis=1)

    sample_mean = over_positions(y) / tf.cast(positions, tf.float32)
    flat = tf.reshape(y, (-1, c))  # (B * P, C)
    shifted = tf.nn.bias_add(flat, -tf.reduce_mean(sample_mean, axis=0))
    m2 = tf.squeeze(tf.matmul(tf.ones((1, tf.shape(flat)[0]), tf.float32), tf.square(shifted)), 0)
    zero_counts = over_positions(tf.cast(tf.equal(y, 0.0), tf.float32))  # exact below 2**24
    zeros = tf.reduce_sum(tf.cast(zero_counts, tf.int64), 0)
    top = tf.reduce_max(tf.reduce_max(y, axis=1), axis=0)
    return sample_mean, m2, top, zeros, positions


class _Accumulator:
    """Running count / mean / M2 (Chan et al.), max and zero counts over batches."""

    def __init__(self, n: int, units: int):
        self.count = 0
        self.mean = np.zeros(units, np.float64)
        self.m2 = np.zeros(units, np.float64)
        self.max = np.full(units, -np.inf, np.float64)
        self.zeros = np.zeros(units, np.int64)
        self.per_sample = np.zeros((n, units), np.float32)
        self.positions = 1

    def update(self, parts, offset: int) -> None:
        sample_mean, m2, top, zeros, positions = (ops.convert_to_numpy(t) for t in parts)
        b = len(sample_mean)
        self.positions = int(positions)
        self.per_sample[offset : offset + b] = sample_mean
        nb = b * self.positions
        total = self.count + nb
        delta = sample_mean.mean(axis=0, dtype=np.float64) - self.mean
        self.mean += delta * (nb / total)
        self.m2 += m2 + delta**2 * (self.count * nb / total)
        self.count = total
        self.max = np.maximum(self.max, top)
        self.zeros += zeros.astype(np.int64)

    def result(self) -> UnitStats:
        return UnitStats(
            mean=self.mean.astype(np.float32),
            std=np.sqrt(np.maximum(self.m2 / max(self.count, 1), 0.0)).astype(np.float32),
            max=self.max.astype(np.float32),
            apoz=(self.zeros / max(self.count, 1)).astype(np.float32),
            dead=self.zeros == self.count,
            per_sample=self.per_sample,
            positions=self.positions,
        )


def as_inputs(x, n_inputs: int) -> list[np.ndarray]:
    """One array per model input, all with the same number of samples."""
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(xs) != n_inputs:
        raise NeuronvizError(
            f"Expected {n_inputs} input array(s) for the model. Received: {len(xs)}"
        )
    if len({len(a) for a in xs}) != 1 or len(xs[0]) == 0:
        raise NeuronvizError(
            f"Expected input arrays with the same, non-zero number of samples. Received: {[len(a) for a in xs]}"
        )
    return xs


def input_dtypes(model: keras.Model) -> list[str]:
    return [str(t.dtype) for t in model.inputs]


def batch_tensors(xs: list[np.ndarray], start: int, stop: int, dtypes: list[str]) -> list:
    """Tensors of samples start:stop; float arrays cast to the float input's dtype."""
    out = []
    for a, dt in zip(xs, dtypes, strict=True):
        b = np.asarray(a[start:stop])
        if b.dtype.kind == "f" and "float" in dt and b.dtype != np.dtype(dt):
            b = b.astype(dt)
        out.append(ops.convert_to_tensor(b))
    return out


class StatsJob:
    """Activation statistics of every layer with units, in one compiled pass per batch.

    `run()` is a generator yielding the fraction done (0..1] after each batch, so a
    worker can report progress and cancel between batches (stop iterating); when it
    finishes, `result` maps layer path -> UnitStats (None until then). Shared layers are
    measured at their first call. The graph up to the last measured call is traced once
    into a tf.function that reduces each measured output where it is made: only (units,)
    and (batch, units) arrays leave the graph, and every activation is freed as soon as
    no later call needs it (the function is traced with the same free schedule). The
    compiled pass is kept on the trace, so a later job over the same layers reuses it."""

    def __init__(
        self,
        model: keras.Model,
        trace: Trace,
        x,
        batch_size: int = 256,
        layers: Iterable[str] | None = None,
    ):
        self.model = model
        self.trace = trace
        fg = trace.graph
        self.xs = as_inputs(x, len(fg.inputs))
        self.n = len(self.xs[0])
        self._dtypes = input_dtypes(model)
        self.batch_size = max(1, int(batch_size))
        wanted = list(trace.layer_units) if layers is None else list(layers)
        unknown = [p for p in wanted if p not in trace.layer_units]
        if unknown:
            raise NeuronvizError(f"Expected layers with units. Received: {unknown[:3]}")
        passes = trace.__dict__.setdefault("_stats_passes", {})
        key = tuple(dict.fromkeys(wanted))
        if key not in passes:
            passes[key] = _Pass(trace, key)
        self._pass = passes[key]
        self.layers = self._pass.layers
        self.result: dict[str, UnitStats] | None = None

    @property
    def peak_live(self) -> int:
        """Most tensors held at once during a pass (a memory check)."""
        return self._pass.peak_live

    def run(self) -> Iterator[float]:
        units = {p: len(self.trace.layer_units[p]) for p in self.layers}
        acc = {p: _Accumulator(self.n, u) for p, u in units.items()}
        for start in range(0, self.n, self.batch_size):
            stop = min(start + self.batch_size, self.n)
            parts = self._pass(batch_tensors(self.xs, start, stop, self._dtypes))
            for path, part in zip(self.layers, parts, strict=True):
                acc[path].update(part, start)
            yield stop / self.n
        self.result = {p: a.result() for p, a in acc.items()}

    def run_all(self) -> dict[str, UnitStats]:
        for _ in self.run():
            pass
        return self.result


class _Pass:
    """The compiled statistics pass over `layers` of a traced model (one per input spec)."""

    def __init__(self, trace: Trace, layers: tuple):
        fg = trace.graph
        self.trace = trace
        self._at_call: dict[int, list[str]] = {}
        for path in layers:
            self._at_call.setdefault(fg.first_call(path).index, []).append(path)
        self.layers = [p for i in sorted(self._at_call) for p in self._at_call[i]]  # call order
        self._head_calls = [fg.first_call(p) for p in layers if trace.inner(p)]
        self._heads: dict | None = None  # attention call -> a copy recording its heads
        self._stop = max(self._at_call, default=-1) + 1
        self._free_after = _free_schedule(fg, self._stop)
        self.peak_live = 0
        self._compiled: dict = {}  # input spec -> tf.function

    def __call__(self, batch: list) -> list:
        if self._heads is None:  # built on the first run, in the worker that runs the job
            self._heads = {c.index: gated_copy(self.trace, c) for c in self._head_calls}
        spec = tuple(tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in batch)
        fn = self._compiled.get(spec)
        if fn is None:
            fn = self._compiled[spec] = tf.function(self._forward, input_signature=spec)
        return fn(*batch)

    def _forward(self, *batch) -> list:
        """Run the graph up to the last measured call, reducing each measured output."""
        reduced: dict[str, tuple] = {}

        def hook(call, values) -> bool:
            heads = self._heads.get(call.index)
            call.run(values, layer=heads[0] if heads else None)
            self.peak_live = max(self.peak_live, len(values))
            for path in self._at_call.get(call.index, ()):
                y = (
                    head_norms(heads[1].heads)[:, None]
                    if self.trace.inner(path)
                    else channels_last(self.trace, call.outputs[0], values)
                )
                reduced[path] = _reduce(y)
            for k in self._free_after[call.index]:
                values.pop(k, None)
            return True

        self.trace.graph.run(list(batch), hook=hook, stop=self._stop)
        return [reduced[p] for p in self.layers]


def channels_last(trace: Trace, key, values: dict):
    """Tensor `key` from `values` with its channel axis moved last (units on the last axis)."""
    y = values[key]
    axis = trace.axis(key)
    return y if axis >= len(y.shape) - 1 else ops.moveaxis(y, axis, -1)


def _free_schedule(fg, stop: int) -> list[list]:
    """Per call index: the keys no call before `stop` needs after it."""
    last: dict = {k: -1 for k in fg.inputs}
    for call in fg.calls[:stop]:
        for k in call.inputs:
            last[k] = call.index
        for k in call.outputs:
            last.setdefault(k, call.index)
    free: list[list] = [[] for _ in fg.calls]
    for k, i in last.items():
        free[max(i, 0)].append(k)
    return free


def activation_stats(
    model: keras.Model, trace: Trace, x, batch_size: int = 256, layers=None
) -> dict[str, UnitStats]:
    """StatsJob(...).run_all(), for scripts."""
    return StatsJob(model, trace, x, batch_size, layers).run_all()
