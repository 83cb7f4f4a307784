"""Measured CPU latency of a model, and of an original against its pruned copy."""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from neuronviz.backend.model.graph import pack_inputs


@dataclass(frozen=True)
class Latency:
    """Median milliseconds per batch of `batch_size`, original and pruned (same process,
    both warm, runs interleaved so that load on the machine hits both alike)."""

    original_ms: float
    pruned_ms: float
    batch_size: int
    runs: int

    @property
    def ratio(self) -> float:
        return self.pruned_ms / self.original_ms

    def to_dict(self) -> dict:
        return {
            "latency_ms_before": round(self.original_ms, 3),
            "latency_ms_after": round(self.pruned_ms, 3),
            "latency_ratio": round(self.ratio, 4),
            "latency_batch_size": self.batch_size,
            "latency_runs": self.runs,
        }


def example_batch(model: keras.Model, batch_size: int, shapes=None, seed: int = 0) -> list:
    """Random inputs for `model` (None dims from `shapes`, the traced example shapes)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, t in enumerate(model.inputs):
        dims = list(t.shape[1:])
        if shapes is not None:
            dims = [d if d is not None else s for d, s in zip(dims, shapes[i][1:], strict=False)]
        dims = [16 if d is None else int(d) for d in dims]
        if "int" in str(t.dtype):
            out.append(tf.constant(rng.integers(0, 2, (batch_size, *dims)), dtype=t.dtype))
        else:
            out.append(tf.constant(rng.random((batch_size, *dims), np.float32), dtype=t.dtype))
    return out


def _timer(model: keras.Model, batch: list):
    fn = tf.function(lambda *xs: model(pack_inputs(model, list(xs)), training=False))

    def once() -> float:
        t0 = time.perf_counter()
        for y in tf.nest.flatten(fn(*batch)):
            y.numpy()
        return (time.perf_counter() - t0) * 1000.0

    return once


def measure_latency(
    model: keras.Model, batch_size: int = 32, runs: int = 7, warmup: int = 2, shapes=None
) -> float:
    """Median ms per batch of one model (compiled once, `warmup` runs untimed)."""
    once = _timer(model, example_batch(model, batch_size, shapes))
    for _ in range(max(1, warmup)):
        once()
    return float(np.median([once() for _ in range(max(1, runs))]))


def compare_latency(
    original: keras.Model,
    pruned: keras.Model,
    batch_size: int = 32,
    runs: int = 7,
    warmup: int = 2,
    shapes=None,
    progress=None,
) -> Latency:
    """Latency of `original` and `pruned` on the same random batch, runs interleaved.
    `progress(fraction)` is called after every run (it may raise to stop)."""
    batch = example_batch(original, batch_size, shapes)
    a, b = _timer(original, batch), _timer(pruned, batch)
    total = max(1, warmup) + max(1, runs)
    for i in range(max(1, warmup)):
        a(), b()
        if progress is not None:
            progress((i + 1) / total)
    ta, tb = [], []
    for i in range(max(1, runs)):
        ta.append(a())
        tb.append(b())
        if progress is not None:
            progress((max(1, warmup) + i + 1) / total)
    return Latency(float(np.median(ta)), float(np.median(tb)), int(batch_size), int(runs))
