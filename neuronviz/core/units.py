"""Units and groups (the DepGraph idea), independent of any framework.

Every unit-producing layer owns a block of global unit ids. Each tensor's channel axis
is described by a *map*: an int array with, per channel position, the unit id that
lives there (-1 for channels no layer owns, such as the model's input). Layers that
must lose the same units (an Add's inputs, a shared layer's calls) are joined with
`union_maps`, at the granularity of single units. A *class* is a set of joined units
that can only be removed together; a *group* is a set of layers tied by classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from neuronviz.core.names import resolve_layer
from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError


@dataclass
class Space:
    """The units one layer creates: global ids start .. start+size-1."""

    layer: str
    start: int
    size: int

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.size)


@dataclass
class Group:
    """Layers that lose the same units together."""

    index: int
    classes: np.ndarray  # root unit ids, in the order of the first member's units
    sources: list[str]  # unit-creating layers in the group
    members: list[str] = field(default_factory=list)  # every layer whose units lie in it
    blocked: list[str] = field(default_factory=list)  # why its units cannot be removed
    reaches_output: bool = False

    @property
    def name(self) -> str:
        return self.sources[0] if self.sources else f"group {self.index}"

    @property
    def size(self) -> int:
        return len(self.classes)


class UnitGraph:
    """Union-find over unit ids, plus the reasons some units cannot be removed."""

    def __init__(self):
        self.spaces: list[Space] = []
        self._parent: list[int] = []
        self._pins: dict[int, list[str]] = {}
        self._outputs: set[int] = set()
        self._root: np.ndarray | None = None
        self.groups: list[Group] = []
        self._group_of_root: dict[int, int] = {}
        self._balanced: list[tuple[np.ndarray, np.ndarray, str]] = []

    # ---- building -------------------------------------------------------------------
    def new_space(self, layer: str, size: int) -> np.ndarray:
        start = len(self._parent)
        self._parent.extend(range(start, start + size))
        self.spaces.append(Space(layer, start, size))
        return np.arange(start, start + size, dtype=np.int64)

    def _find(self, u: int) -> int:
        parent = self._parent
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    def union_maps(self, a: np.ndarray, b: np.ndarray, where: str) -> None:
        """Join a and b position by position; units meeting a fixed channel get pinned."""
        if len(a) != len(b):
            return  # broadcasting: a single channel against many constrains nothing
        for u, v in zip(a.tolist(), b.tolist(), strict=True):
            if u == v:
                continue
            if u < 0 or v < 0:
                self.pin(
                    [max(u, v)],
                    f"its units are tied to fixed channels (such as the model input) at '{where}'",
                )
                continue
            ru, rv = self._find(u), self._find(v)
            if ru != rv:
                self._parent[max(ru, rv)] = min(ru, rv)

    def owner(self, u: int) -> str:
        """The layer that created unit id `u`."""
        starts = [sp.start for sp in self.spaces]
        return self.spaces[int(np.searchsorted(starts, u, side="right")) - 1].layer

    def pin(self, ids: Iterable[int], reason: str) -> None:
        for u in ids:
            if u >= 0:
                reasons = self._pins.setdefault(int(u), [])
                if reason not in reasons:
                    reasons.append(reason)

    def balance(self, a: np.ndarray, b: np.ndarray, what: str) -> None:
        """Selections must remove as many units of `a` as of `b` (two halves of one layer)."""
        self._balanced.append((np.asarray(a), np.asarray(b), what))

    def mark_output(self, ids: Iterable[int]) -> None:
        self._outputs.update(int(u) for u in ids if u >= 0)

    # ---- after building -------------------------------------------------------------
    def finalize(self, layer_units: Mapping[str, np.ndarray]) -> None:
        """Compute classes and groups. `layer_units` maps each layer with units to its map."""
        n = len(self._parent)
        self._root = np.array([self._find(u) for u in range(n)], dtype=np.int64)
        self._root_or_none = np.append(self._root, -1)  # index -1 (no unit) -> -1
        # groups: spaces joined through shared roots
        space_of_root: dict[int, int] = {}
        parent = list(range(len(self.spaces)))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for si, sp in enumerate(self.spaces):
            for r in np.unique(self._root[sp.start : sp.start + sp.size]).tolist():
                sj = space_of_root.setdefault(r, si)
                a, b = find(si), find(sj)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        by_comp: dict[int, Group] = {}
        for si, sp in enumerate(self.spaces):
            comp = find(si)
            if comp not in by_comp:
                by_comp[comp] = Group(len(by_comp), np.zeros(0, np.int64), [])
            g = by_comp[comp]
            g.sources.append(sp.layer)
            roots = self._root[sp.start : sp.start + sp.size]
            new = roots[~np.isin(roots, g.classes)]
            _, first = np.unique(new, return_index=True)
            g.classes = np.concatenate([g.classes, new[np.sort(first)]])
        self.groups = list(by_comp.values())
        self._group_of_root = {int(r): g.index for g in self.groups for r in g.classes.tolist()}
        pinned_roots: dict[int, list[str]] = {}
        for u, reasons in self._pins.items():
            for r in reasons:
                lst = pinned_roots.setdefault(int(self._root[u]), [])
                if r not in lst:
                    lst.append(r)
        self._pinned_roots = pinned_roots
        output_roots = {int(self._root[u]) for u in self._outputs}
        for g in self.groups:
            for r in g.classes.tolist():
                for reason in pinned_roots.get(r, []):
                    if reason not in g.blocked:
                        g.blocked.append(reason)
                if r in output_roots:
                    g.reaches_output = True
        for layer, m in layer_units.items():
            for gi in self.groups_of(m):
                self.groups[gi].members.append(layer)

    def roots(self, ids: np.ndarray) -> np.ndarray:
        """Class (root unit id) of every entry; -1 stays -1."""
        return self._root_or_none[np.asarray(ids, dtype=np.int64)]

    def groups_of(self, ids: np.ndarray) -> list[int]:
        """Indices of the groups the given unit ids belong to, in order of appearance."""
        seen: list[int] = []
        for r in np.unique(self.roots(ids)).tolist():
            if r >= 0:
                gi = self._group_of_root[r]
                if gi not in seen:
                    seen.append(gi)
        return sorted(seen)

    def keep(self, ids: np.ndarray, removed: np.ndarray) -> np.ndarray:
        """Boolean mask over a map's positions: True where the channel stays."""
        return ~self.removed_flags(removed)[self.roots(ids)]

    def removed_flags(self, removed: np.ndarray) -> np.ndarray:
        """A lookup table: flags[root] is True for removed classes; flags[-1] (no unit) is False."""
        flags = np.zeros(len(self._parent) + 1, dtype=bool)
        flags[removed] = True
        return flags

    # ---- selections -----------------------------------------------------------------
    def resolve(
        self,
        plan: Plan,
        layer_units: Mapping[str, np.ndarray],
        aliases: Mapping[str, str] | None = None,
        dropped: Callable[[Selection], set[str]] | None = None,
    ) -> Selection:
        """Turn a plan into the set of removed classes, refusing anything unsafe.
        `dropped(selection)` names layers that leave the model whole (a branch that only
        fed a Concatenate): they may lose all their units."""
        aliases = aliases or {}
        removed: set[int] = set()
        for name, indices in plan.remove.items():
            layer = resolve_layer(name, layer_units, aliases)
            m = layer_units[layer]
            idx = np.asarray(indices, dtype=np.int64)
            bad = idx[(idx < 0) | (idx >= len(m))]
            if len(bad):
                shown = ", ".join(str(i) for i in bad[:5].tolist()) + (
                    ", ..." if len(bad) > 5 else ""
                )
                hint = (
                    f" (negative indices are not accepted: the last unit is {len(m) - 1})"
                    if (bad < 0).any()
                    else ""
                )
                raise NeuronvizError(
                    f"Expected `indices` in [0, {len(m)}) for layer '{layer}'. Received: indices=[{shown}]{hint}"
                )
            roots = self.roots(m[idx])
            if (roots < 0).any():
                raise NeuronvizError(
                    f"Units of layer '{layer}' at indices {idx[roots < 0][:5].tolist()} are fixed "
                    "channels (such as the model input) and cannot be removed."
                )
            for r in np.unique(roots).tolist():
                reasons = self._pinned_roots.get(r)
                if reasons:
                    raise NeuronvizError(f"Cannot remove units of layer '{layer}': {reasons[0]}.")
            removed.update(roots.tolist())
        removed_arr = np.array(sorted(removed), dtype=np.int64)
        flags = self.removed_flags(removed_arr)
        selection = Selection(removed_arr, self, layer_units)
        emptied = [k for k, m in layer_units.items() if len(m) and flags[self.roots(m)].all()]
        gone = dropped(selection) if dropped is not None and emptied else set()
        for g in self.groups:
            if (
                g.size
                and flags[g.classes].all()
                and any(m not in gone and m in emptied for m in g.members)
            ):
                raise NeuronvizError(
                    f"Expected at least one unit to remain in group '{g.name}' "
                    f"({g.size} units, layers {', '.join(g.members[:4])}{', ...' if len(g.members) > 4 else ''}). "
                    "Received: a selection that removes all of them (a whole branch can go "
                    "only when it feeds nothing but a Concatenate)."
                )
        for a, b, what in self._balanced:
            na, nb = int(flags[self.roots(a)].sum()), int(flags[self.roots(b)].sum())
            if na != nb:
                raise NeuronvizError(
                    f"Expected as many units removed from the forward half as from the backward "
                    f"half of {what}. Received: {na} forward, {nb} backward."
                )
        for layer in emptied:
            if layer not in gone:
                raise NeuronvizError(
                    f"Expected at least one unit to remain in layer '{layer}'. Received: a selection that removes all {len(layer_units[layer])}."
                )
        return selection


@dataclass
class Selection:
    """A resolved plan: the removed classes, checked against the graph."""

    removed: np.ndarray
    graph: UnitGraph
    layer_units: Mapping[str, np.ndarray]

    def __post_init__(self):
        self._flags = self.graph.removed_flags(self.removed)

    def __bool__(self) -> bool:
        return bool(len(self.removed))

    def keep(self, ids: np.ndarray) -> np.ndarray:
        """True where the channel stays (ids: a channel map)."""
        return ~self._flags[self.graph.roots(ids)]

    def removed_by_layer(self) -> dict[str, list[int]]:
        """Every layer with units -> the indices it loses (over whole groups)."""
        out = {}
        for layer, m in self.layer_units.items():
            lost = np.flatnonzero(~self.keep(m))
            if len(lost):
                out[layer] = lost.tolist()
        return out

    def touches_output(self) -> bool:
        return bool(self.graph._outputs) and bool(
            np.isin(self.graph.roots(np.array(sorted(self.graph._outputs))), self.removed).any()
        )

    def as_plan(self) -> Plan:
        return Plan(self.removed_by_layer())
