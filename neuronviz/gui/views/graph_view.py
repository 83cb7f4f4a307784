"""The model as a graph: layers top to bottom (a Sugiyama layout computed once per model),
nested models as collapsible boxes, coloured by an overlay. Hovering or selecting a layer
highlights its coupled group's members and the consumers that lose input rows; clicking
a layer shows its units in the other views (the Session's current layer)."""

from __future__ import annotations

import time

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics, QPainterPath, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsScene,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from neuronviz.gui import theme
from neuronviz.gui.graph_layout import LayerGraph, Layout, group_reach
from neuronviz.gui.views.graph_items import (  # noqa: F401 - marks re-exported for callers
    CONSUMER,
    CURRENT,
    MEMBER,
    TEXT_LOD,
    THROUGH,
    BoxItem,
    GraphCanvas,
    NodeItem,
)
from neuronviz.gui.views.graph_overlays import OVERLAYS, neutral, node_colours


class GraphView(QWidget):
    """The graph dock. Takes the State (session and its signals) and, optionally, the
    task runner that lays big graphs out off the UI thread."""

    layoutReady = Signal()

    def __init__(self, state, tasks=None, parent=None):
        super().__init__(parent)
        self.state, self.tasks = state, tasks
        self.font = QFont()
        self.font.setPointSizeF(8.5)
        self.font_bold = QFont(self.font)
        self.font_bold.setBold(True)
        self.overlay = QComboBox()
        for key, text in OVERLAYS.items():
            self.overlay.addItem(text, key)
        self.overlay.setToolTip("What the node colours show")
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Show the whole graph")
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.scene = QGraphicsScene(self)
        self.canvas = GraphCanvas(self.scene)
        top = QHBoxLayout()
        top.addWidget(self.overlay, 1)
        top.addWidget(self.fit_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.info)
        self.graph: LayerGraph | None = None
        self.layout: Layout | None = None
        self.reach: dict = {}
        self.collapsed: frozenset = frozenset()
        self.items: dict[str, NodeItem] = {}
        self.marks: dict[str, str] = {}
        self.layout_seconds = 0.0
        self._edge_item = self._hl_item = None
        self._hovered: str | None = None
        self._pending = False
        self.overlay.currentIndexChanged.connect(self.recolour)
        self.fit_button.clicked.connect(self.fit)
        self._connections = [
            (state.modelChanged, self._on_model),
            (state.planChanged, self.update_plan),
            (state.layerChanged, self._on_layer),
            (state.sweepChanged, self._on_data),
            (state.weightStatsChanged, self._on_data),
        ]
        for sig, slot in self._connections:
            sig.connect(slot)
        self._on_model()

    @property
    def session(self):
        return self.state.session

    # ---- model and layout -------------------------------------------------------------
    def _on_model(self) -> None:
        self.scene.clear()
        self.items, self.marks, self.layout = {}, {}, None
        self._edge_item = self._hl_item = None
        tr = self.session.trace
        self.graph = LayerGraph.from_trace(tr) if tr is not None else None
        self.reach = group_reach(tr) if tr is not None else {}
        self.collapsed = frozenset()
        self._pending = self.graph is not None
        if self._pending and self.isVisible():
            self._request_layout()

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self._pending:
            self._request_layout()

    def _request_layout(self) -> None:
        self._pending = False
        graph, collapsed = self.graph, self.collapsed

        def job():
            t = time.perf_counter()
            lay = graph.layout(collapsed)
            return graph, collapsed, lay, time.perf_counter() - t

        if self.tasks is None:
            self._show(job())
            return
        self.info.setText(f"Laying out {len(graph.nodes)} layers…")
        self.tasks.submit("graph", job, self._show, lambda msg: self.info.setText(msg))

    def _show(self, result) -> None:
        graph, collapsed, lay, seconds = result
        if graph is not self.graph or collapsed != self.collapsed:
            return  # a stale layout
        first = self.layout is None
        self.layout, self.layout_seconds = lay, seconds
        self.scene.clear()
        self.items, self.marks = {}, {}
        edges = QPainterPath()
        for _, _, pts in lay.edges:
            edges.moveTo(*pts[0])
            for pt in pts[1:]:
                edges.lineTo(*pt)
        self._edge_item = self.scene.addPath(edges, QPen(theme.DEAD, 1.2))
        self._edge_item.setZValue(1)
        self._hl_item = self.scene.addPath(QPainterPath(), QPen(theme.SELECTED, 2.5))
        self._hl_item.setZValue(1.5)
        for path, rect in lay.boxes.items():
            self.scene.addItem(BoxItem(self, path, rect))
        fill, fm = neutral(), QFontMetrics(self.font_bold)
        for nid, node in lay.nodes.items():
            item = NodeItem(self, node, lay.pos[nid], fill, fm)
            self.scene.addItem(item)
            self.items[nid] = item
        x0, y0, x1, y1 = lay.bounds()
        self.scene.setSceneRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.recolour()
        self.update_plan()
        self._highlight()
        if first:
            self.canvas.resetTransform()
            self._centre_on(self.session.layer)
        self.layoutReady.emit()

    def toggle_box(self, path: str) -> None:
        """Collapse or expand a nested model (one layout per set of closed boxes)."""
        self.collapsed = self.collapsed ^ {path}
        self._request_layout()

    # ---- colours, plan, highlight -----------------------------------------------------
    def _on_data(self) -> None:
        if self.overlay.currentData() in ("sensitivity", "importance"):
            self.recolour()

    def recolour(self) -> None:
        if not self.items or self.session.trace is None:
            return
        colours, legend = node_colours(self.session, self.overlay.currentData())
        base = neutral()
        for nid, item in self.items.items():
            item.fill = colours.get(nid, base)
            item.update()
        self._legend = legend
        self._show_info()

    def update_plan(self) -> None:
        """Widths after the plan and the selected bars; no relayout."""
        s = self.session
        if not self.items or s.trace is None:
            return
        removed = s.removed()
        for nid, item in self.items.items():
            n = item.node.units
            if n is None or nid not in s.trace.layer_units:
                continue
            k = len(removed.get(nid, ()))
            after, frac = n - k, k / n if n else 0.0
            if (after, frac) != (item.after, item.fraction):
                item.after, item.fraction = after, frac
                item.update()

    def _on_layer(self) -> None:
        self._highlight()
        self._centre_on(self.session.layer, only_if_hidden=True)

    def hover(self, node_id: str | None) -> None:
        self._hovered = node_id
        self._highlight()

    def highlighted(self) -> dict[str, set]:
        """What is highlighted now: mark -> node ids (for tests and the info line)."""
        out: dict[str, set] = {MEMBER: set(), CONSUMER: set(), THROUGH: set(), CURRENT: set()}
        for nid, mark in self.marks.items():
            out[mark].add(nid)
        return out

    def group_marks(self, path: str | None) -> dict[str, str]:
        """Layer -> mark for the groups of `path` (itself is CURRENT)."""
        tr = self.session.trace
        if path is None or tr is None:
            return {}
        g = tr.group_of(path)
        gis = [] if g is None else (g if isinstance(g, list) else [g])
        marks: dict[str, str] = {}
        for gi in gis:
            r = self.reach[gi]
            for kind, paths in ((THROUGH, r.through), (CONSUMER, r.consumers), (MEMBER, r.members)):
                for p in paths:
                    marks[p] = kind
        marks[path] = CURRENT
        return marks

    def _highlight(self) -> None:
        if not self.items:
            return
        target = self._hovered or self.session.layer
        coll = self.collapsed
        marks = {}
        for p, m in self.group_marks(target).items():
            shown = self.graph.shown(p, coll)
            if shown == p or shown not in marks:
                marks[shown] = m
        for nid in set(self.marks) | set(marks):
            item = self.items.get(nid)
            if item is not None and item.mark != marks.get(nid):
                item.mark = marks.get(nid)
                item.update()
        self.marks = {k: v for k, v in marks.items() if k in self.items}
        hl = QPainterPath()
        for a, b, pts in self.layout.edges:
            if a in self.marks and b in self.marks and self.marks[a] in (MEMBER, CURRENT):
                hl.moveTo(*pts[0])
                for pt in pts[1:]:
                    hl.lineTo(*pt)
        self._hl_item.setPath(hl)
        self._show_info()

    def _show_info(self) -> None:
        h = self.highlighted()
        target = self._hovered or self.session.layer
        g = self.session.group(target) if target else None
        n, k = len(h[MEMBER]) + 1, len(h[CONSUMER])
        group = (
            f"'{target}': group {g.index} — {n} layer{'s lose' if n > 1 else ' loses'} the same units, "
            f"{k} consumer{'s lose' if k != 1 else ' loses'} input rows."
            if g is not None
            else ""
        )
        self.info.setText(f"{group} {getattr(self, '_legend', '')}".strip())

    # ---- navigation -------------------------------------------------------------------
    def clicked(self, node_id: str) -> None:
        s = self.session
        if node_id in self.collapsed:
            self.toggle_box(node_id)
        elif s.trace is not None and node_id in s.trace.layer_units:
            s.set_layer(node_id)
        else:
            self.state.info(f"'{node_id}' has no units of its own to show.")

    def _centre_on(self, path: str | None, only_if_hidden: bool = False) -> None:
        item = (
            self.items.get(self.graph.shown(path, self.collapsed)) if path and self.graph else None
        )
        if item is None:
            return
        if only_if_hidden:
            visible = self.canvas.mapToScene(self.canvas.viewport().rect()).boundingRect()
            if visible.contains(item.sceneBoundingRect()):
                return
        self.canvas.centerOn(item)

    def fit(self) -> None:
        self.canvas.fitInView(self.scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def cleanup(self) -> None:
        for sig, slot in self._connections:
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        self._connections = []
