"""The model's layer graph and its layered (Sugiyama) layout, computed once per model.

No Qt here: `LayerGraph.from_trace` reads the traced flat graph (nested models inlined)
and `LayerGraph.layout(collapsed)` places it top to bottom with grandalf's Sugiyama
layout (rank, crossing reduction, Brandes-Koepf coordinates). A collapsed nested model
is one node. Layouts are cached per set of collapsed boxes: selection, hover and plan
changes never lay the graph out again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NODE_W, NODE_H = 150.0, 46.0


@dataclass
class Node:
    id: str  # a layer path, a nested model's path (collapsed) or an input's name
    kind: str  # layer class name, "Input" or "Model"
    units: int | None  # width of its output (the layer's own units, or the channels)
    box: str | None = None  # innermost nested model holding it


@dataclass
class Layout:
    pos: dict  # node id -> (x, y) centre
    edges: list  # (src, dst, [(x, y), ...]) polylines, ends at the node centres
    boxes: dict  # expanded nested model path -> (x0, y0, x1, y1)
    nodes: dict  # node id -> Node (what is drawn: collapsed models are one node)

    def bounds(self) -> tuple[float, float, float, float]:
        xy = np.array(list(self.pos.values()) or [(0.0, 0.0)])
        return (
            float(xy[:, 0].min() - NODE_W),
            float(xy[:, 1].min() - NODE_H),
            float(xy[:, 0].max() + NODE_W),
            float(xy[:, 1].max() + NODE_H),
        )


@dataclass(eq=False)
class LayerGraph:
    nodes: dict  # id -> Node, in call order
    edges: list  # (src, dst), unique
    boxes: list  # nested model paths, outermost first
    _layouts: dict = field(default_factory=dict)

    @classmethod
    def from_trace(cls, trace) -> LayerGraph:
        fg = trace.graph
        boxes = sorted(fg.nested_models, key=lambda p: p.count("/"))
        nodes: dict[str, Node] = {}
        producer: dict = {}
        for i, (k, shape) in enumerate(zip(fg.inputs, fg.input_shapes, strict=True)):
            name = f"<input {i}>" if len(fg.inputs) > 1 else "<input>"
            nodes[name] = Node(name, "Input", shape[-1] if shape else None)
            producer[k] = name
        for call in fg.calls:
            producer.update({k: call.path for k in call.outputs})
            if call.path not in nodes:
                lu = trace.layer_units.get(call.path)
                shape = call.output_shapes[0] if call.output_shapes else ()
                width = len(lu) if lu is not None else (shape[-1] if shape else None)
                box = next((b for b in reversed(boxes) if call.path.startswith(b + "/")), None)
                nodes[call.path] = Node(call.path, type(call.layer).__name__, width, box)
        edges: dict = {}
        for call in fg.calls:
            for k in call.inputs:
                src = producer.get(k)
                if src is not None and src != call.path:
                    edges[(src, call.path)] = None
        return cls(nodes, list(edges), boxes)

    def shown(self, node_id: str, collapsed: frozenset) -> str:
        """The node that stands for `node_id` when the `collapsed` boxes are closed."""
        for b in self.boxes:  # outermost first: a closed outer box hides inner ones
            if b in collapsed and node_id.startswith(b + "/"):
                return b
        return node_id

    def layout(self, collapsed=frozenset()) -> Layout:
        collapsed = frozenset(collapsed)
        if collapsed not in self._layouts:
            self._layouts[collapsed] = self._compute(collapsed)
        return self._layouts[collapsed]

    def _compute(self, collapsed: frozenset) -> Layout:
        from grandalf.graphs import Edge, Graph, Vertex
        from grandalf.layouts import SugiyamaLayout

        shown: dict[str, Node] = {}
        for n in self.nodes.values():
            s = self.shown(n.id, collapsed)
            if s not in shown:
                shown[s] = n if s == n.id else Node(s, "Model", None, self._parent_box(s))
        verts = {s: Vertex(s) for s in shown}
        for v in verts.values():
            v.view = _View()
        pairs = {}
        for a, b in self.edges:
            sa, sb = self.shown(a, collapsed), self.shown(b, collapsed)
            if sa != sb:
                pairs[(sa, sb)] = Edge(verts[sa], verts[sb])
        for e in pairs.values():
            e.view = _EdgeView()
        g = Graph(list(verts.values()), list(pairs.values()))
        pos, x_off = {}, 0.0
        for comp in g.C:
            sug = SugiyamaLayout(comp)
            sug.xspace, sug.yspace = 24.0, 34.0
            roots = [v for v in comp.sV if not v.e_in()]
            sug.init_all(roots=roots or None)
            sug.draw(1.5)
            xs = [v.view.xy[0] for v in comp.sV]
            shift = x_off - min(xs) + NODE_W / 2
            for v in comp.sV:
                pos[v.data] = (v.view.xy[0] + shift, v.view.xy[1])
            for e in comp.sE:
                e.view.points = [(x + shift, y) for x, y in e.view.points]
            x_off = max(x for x, _ in pos.values()) + NODE_W + 40.0
        edges = [(a, b, e.view.points or [pos[a], pos[b]]) for (a, b), e in pairs.items()]
        boxes = {}
        for b in self.boxes:
            if self.shown(b + "/x", collapsed) != b + "/x":
                continue  # closed, or inside a closed box
            inside = [pos[s] for s in shown if s.startswith(b + "/")]
            if inside:
                xy = np.array(inside)
                depth = 10.0 * (4 - min(b.count("/"), 3))
                boxes[b] = (
                    float(xy[:, 0].min() - NODE_W / 2 - depth),
                    float(xy[:, 1].min() - NODE_H / 2 - depth - 14),
                    float(xy[:, 0].max() + NODE_W / 2 + depth),
                    float(xy[:, 1].max() + NODE_H / 2 + depth),
                )
        return Layout(pos, edges, boxes, shown)

    def _parent_box(self, path: str) -> str | None:
        return next((b for b in reversed(self.boxes) if path.startswith(b + "/")), None)


class _View:
    """What grandalf needs of a vertex: its size, and where it puts it."""

    w, h = NODE_W, NODE_H

    def __init__(self):
        self.xy = (0.0, 0.0)


class _EdgeView:
    def __init__(self):
        self.points: list = []

    def setpath(self, points) -> None:
        self.points = [tuple(p) for p in points]


@dataclass
class Reach:
    """Where a group's units live: its members (the engine's group members), the
    consumers that lose input rows, and layers without units of their own that carry
    them (Flatten, Reshape)."""

    members: set
    consumers: set = field(default_factory=set)
    through: set = field(default_factory=set)


def group_reach(trace) -> dict[int, Reach]:
    """Group index -> its Reach, from the traced channel maps."""
    units = trace.units
    out = {g.index: Reach(set(g.members)) for g in units.groups}
    for call in trace.graph.calls:
        g_in = {gi for k in call.inputs for gi in units.groups_of(trace.map(k))}
        g_out = {gi for k in call.outputs for gi in units.groups_of(trace.map(k))}
        for gi in g_in | g_out:
            r = out[gi]
            if call.path in r.members:
                continue
            if gi not in g_out and getattr(call.layer, "weights", None):
                r.consumers.add(call.path)
            else:
                r.through.add(call.path)
    return out
