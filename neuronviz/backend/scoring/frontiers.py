"""The preview's frontier cache: unmasked tensors over the whole dataset, within a budget.

The *frontier* of call t is every tensor made before it and used by it or later (or a
model output): all a rerun from t needs. `FrontierCache` keeps frontiers as NumPy arrays
over all samples, sharing arrays between frontiers, and evicts the least recently used
ones when a new one would pass the memory budget. Other arrays that share the budget
(the preview's attention head terms, `extras`) go only after every other frontier.
Computing a frontier (running the calls) is the caller's, passed to `ensure`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from neuronviz.backend.model.graph import FlatGraph, Key


class FrontierCache:
    """Frontiers of `graph`'s calls over the samples of `inputs` (key -> array)."""

    def __init__(self, graph: FlatGraph, inputs: dict[Key, np.ndarray], budget_bytes: int):
        self.graph, self.inputs, self.budget_bytes = graph, inputs, int(budget_bytes)
        self.n = len(next(iter(inputs.values())))
        self.arrays: dict[Key, np.ndarray] = dict(inputs)  # key -> array over all samples
        self.frontiers: OrderedDict[int, tuple] = OrderedDict()  # t -> keys (LRU order)
        self.extras: OrderedDict[int, object] = OrderedDict()  # arrays with `nbytes` (LRU)
        self._keys: dict[int, tuple] = {}
        calls = graph.calls
        self._produced_at: dict[Key, int] = {k: -1 for k in graph.inputs}
        self.sample_bytes: dict[Key, int] = {k: a[:1].nbytes for k, a in inputs.items()}
        for c in calls:
            for i, k in enumerate(c.outputs):
                self._produced_at[k] = c.index
                self.sample_bytes[k] = _sample_bytes(c, i)
        self._last_use: dict[Key, int] = {}
        for c in calls:
            for k in c.inputs:
                self._last_use[k] = max(self._last_use.get(k, -1), c.index)
        for k in graph.outputs:
            self._last_use[k] = len(calls)
        self._order = sorted(self._produced_at, key=lambda k: self._produced_at[k])

    @property
    def nbytes(self) -> int:
        """Bytes held: the cached arrays (not the inputs) and the extras."""
        arrays = sum(a.nbytes for k, a in self.arrays.items() if k not in self.inputs)
        return arrays + sum(e.nbytes for e in self.extras.values())

    def keys_at(self, t: int) -> tuple:
        """The frontier of call `t`: tensors made before it and used at or after it."""
        keys = self._keys.get(t)
        if keys is None:
            keys = tuple(
                k for k in self._order if self._produced_at[k] < t <= self._last_use.get(k, -2)
            )
            self._keys[t] = keys
        return keys

    def best(self, t: int) -> int:
        """The latest cached frontier at or before `t` (0: the inputs)."""
        return max((s for s in self.frontiers if s <= t), default=0)

    def ensure(self, t: int, compute: Callable[[int, int, list], dict]) -> int:
        """Cache frontier `t` if the budget allows; return the frontier to start from.
        `compute(s, t, missing)`: the `missing` arrays of frontier t, from frontier s."""
        s = self.best(t)
        if s == t:
            if t in self.frontiers:
                self.frontiers.move_to_end(t)
            return t
        missing = [k for k in self.keys_at(t) if k not in self.arrays]
        need = sum(self.sample_bytes[k] for k in missing) * self.n
        if need > self.budget_bytes or not self.make_room(need, protect=s, keep=self.keys_at(t)):
            return s
        self.arrays.update(compute(s, t, missing))
        self.frontiers[t] = self.keys_at(t)
        return t

    def make_room(self, need: int, protect: int, keep: tuple) -> bool:
        """Evict least recently used frontiers (never `protect`, never arrays in `keep`),
        then extras, until `need` more bytes fit."""
        while self.nbytes + need > self.budget_bytes:
            victim = next((t for t in self.frontiers if t != protect), None)
            if victim is None:
                if not self.extras:
                    return False
                self.extras.popitem(last=False)
                continue
            del self.frontiers[victim]
            alive = set(self.inputs).union(keep, *self.frontiers.values())
            for k in [k for k in self.arrays if k not in alive]:
                del self.arrays[k]
        return True

    def batch(self, s: int, lo: int, rows: int) -> dict:
        """Frontier `s` for samples lo..lo+rows (NumPy views; layers convert them, and
        masks multiply them in NumPy, which is faster than a TensorFlow op here)."""
        return {k: self.arrays[k][lo : lo + rows] for k in self.keys_at(s) if k in self.arrays}

    def clear(self) -> None:
        """Drop every cached frontier and extra."""
        self.frontiers.clear()
        self.extras.clear()
        for k in [k for k in self.arrays if k not in self.inputs]:
            del self.arrays[k]


def _sample_bytes(call, i: int) -> int:
    """Bytes of one sample of a call's i-th output (unknown sizes count as 1)."""
    shape = call.output_shapes[i][1:]
    try:
        itemsize = np.dtype(str(call.node.outputs[i].dtype)).itemsize
    except (TypeError, AttributeError, IndexError):
        itemsize = 4
    return int(np.prod([d if d is not None else 1 for d in shape], dtype=np.int64)) * itemsize
