"""The preview's masked tail as compiled segments, for many plans from one start (a sweep).

The calls of a FlatGraph are cut at fixed boundaries (the first affected calls of the
groups) into segments. Each segment runs as a tf.function from the tensors that cross
its start to those that cross its end, with the channel masks of the calls in it passed
as tensor arguments: a segment is traced once per set of masked inputs, and every
fraction of a group, and every plan whose masks fall elsewhere, reuses that trace.
Masking a consumer's input is what the pruned model computes (up to float rounding).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

import tensorflow as tf

from neuronviz.backend.model.graph import FlatGraph
from neuronviz.backend.surgery.masking import Masker


class Uncompilable(Exception):
    """A segment could not be traced (a layer that needs eager tensors)."""


class Segments:
    """Compiled runs of `graph` from call a to call b (`keys_at(t)`: the tensors that
    cross the point before call t)."""

    def __init__(self, graph: FlatGraph, keys_at: Callable[[int], tuple], boundaries):
        self.graph, self.keys_at = graph, keys_at
        self.boundaries = sorted(set(boundaries) | {len(graph.calls)})
        self._compiled: dict[tuple, tf.types.experimental.GenericFunction] = {}
        self.traced, self.trace_seconds = 0, 0.0  # tracing so far (a cost to measure)

    def points(self, start: int, stop: int) -> list[int]:
        """`start`, the boundaries strictly between, and `stop`."""
        i = bisect.bisect_right(self.boundaries, start)
        j = bisect.bisect_left(self.boundaries, stop)
        return [start, *self.boundaries[i:j], stop]

    def run(self, values: dict, start: int, stop: int, masker: Masker | None = None) -> dict:
        """Run calls start..stop-1 from `values` (the frontier of `start`, key -> array);
        return the frontier of `stop` (key -> tensor)."""
        masks = masker.input_masks if masker is not None else {}
        points = self.points(start, stop)
        for a, b in zip(points, points[1:], strict=False):
            inside = tuple(
                (i, k) for i in sorted(masks) if a <= i < b for k in masks[i]
            )  # the masked inputs in this segment
            keys = self.keys_at(a)
            args = [values[k] for k in keys] + [masks[i][k] for i, k in inside]
            fn = self._compiled.get((a, b, inside))
            if fn is None:
                fn = self._compiled[(a, b, inside)] = self._trace(a, b, inside, args)
            args = [tf.convert_to_tensor(x) for x in args]
            values = dict(zip(self.keys_at(b), fn(*args), strict=True))
        return values

    def _trace(self, a: int, b: int, inside: tuple, args: list):
        keys, outs = self.keys_at(a), self.keys_at(b)
        graph = self.graph

        def forward(*tensors):
            values = dict(zip(keys, tensors[: len(keys)], strict=True))
            masks = dict(zip(inside, tensors[len(keys) :], strict=True))

            def hook(call, values) -> bool:
                here = {k: m for (i, k), m in masks.items() if i == call.index}
                if not here:
                    return False
                call.run(
                    values,
                    override={k: values[k] * tf.cast(m, values[k].dtype) for k, m in here.items()},
                )
                return True

            graph.run(None, start=a, stop=b, values=values, hook=hook if masks else None)
            return [values[k] for k in outs]

        spec = [tf.TensorSpec((None, *x.shape[1:]), x.dtype) for x in args[: len(keys)]]
        spec += [tf.TensorSpec(m.shape, m.dtype) for m in args[len(keys) :]]
        t = time.perf_counter()
        try:
            fn = tf.function(forward, autograph=False).get_concrete_function(*spec)
        except Exception as e:  # noqa: BLE001 - whatever a layer raises in a graph
            raise Uncompilable(f"calls {a}..{b - 1}: {type(e).__name__}") from e
        self.traced += 1
        self.trace_seconds += time.perf_counter() - t
        return fn
