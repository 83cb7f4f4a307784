"""The head map: attention layers (rows, in model order) x heads (columns), coloured by a
head importance, like the figures of "Are Sixteen Heads Really Better than One?".

Cells past a layer's head count are empty. Query heads sharing one KV head
(GroupedQueryAttention) are outlined together. A click toggles the head in the selection
(through the PlanEditor: undoable, previewed); selected heads are marked with a cross.
Importances measured on the data run as the "heads" task (progress, cancel)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainterPath, QPen
from PySide6.QtWidgets import QComboBox, QGraphicsPathItem, QPushButton, QVBoxLayout

from neuronviz.gui import theme
from neuronviz.gui.views.base import View
from neuronviz.gui.workers import report

IMPORTANCES = [
    ("head_norm", "Head output norm"),
    ("head_taylor", "Head Taylor (gate gradient)"),
    ("l2", "Head weights' L2 norm"),
]
NO_SCORE = (150, 150, 150, 255)  # heads without a score (not measured yet)


class HeadCells(pg.ImageItem):
    """Row-major cells: clicks and hovers report (row, column); (-1, -1) on leaving."""

    sigCellClicked = Signal(int, int, object)  # row, column, modifiers
    sigCellHovered = Signal(int, int)

    def __init__(self):
        super().__init__(axisOrder="row-major")
        self.setAcceptHoverEvents(True)

    def cell_at(self, pos) -> tuple[int, int]:
        if self.image is None:
            return -1, -1
        r, c = int(np.floor(pos.y())), int(np.floor(pos.x()))
        rows, cols = self.image.shape[:2]
        return (r, c) if 0 <= r < rows and 0 <= c < cols else (-1, -1)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        r, c = self.cell_at(ev.pos())
        if r >= 0:
            ev.accept()
            self.sigCellClicked.emit(r, c, ev.modifiers())

    def hoverEvent(self, ev) -> None:
        self.sigCellHovered.emit(*((-1, -1) if ev.isExit() else self.cell_at(ev.pos())))


class HeadMapView(View):
    listens = ("modelChanged", "planChanged", "dataChanged", "weightStatsChanged")

    def __init__(self, state, selection, tasks, parent=None):
        super().__init__(state, selection, parent)
        self.tasks = tasks
        self.importance = QComboBox()
        for key, text in IMPORTANCES:
            self.importance.addItem(text, key)
        self.scale = QComboBox()
        self.scale.addItems(["Scale: all layers", "Scale: per layer"])
        self.scale.setToolTip("Per layer: each layer's heads divided by its largest score")
        self.compute = QPushButton("Measure")
        self.compute.setToolTip("Measure the heads on the validation data")
        top = self.unit_toolbar(self.importance, self.scale, self.compute)
        self.plot = self.themed_plot()
        pi = self.plot.getPlotItem()
        pi.invertY(True)
        pi.setLabel("bottom", "head")
        self.image = HeadCells()
        self.image.setColorMap(theme.viridis())
        self.empty_cells = pg.ImageItem(axisOrder="row-major")
        self.marks = pg.ScatterPlotItem(symbol="x", size=16, pxMode=True)
        self.outlines = QGraphicsPathItem()
        pen = QPen(theme.plot_colors()[1], 2)
        pen.setCosmetic(True)
        self.outlines.setPen(pen)
        for z, it in enumerate((self.image, self.empty_cells, self.outlines, self.marks)):
            it.setZValue(z)
            self.plot.addItem(it)
        for it in (self.empty_cells, self.marks):
            it.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            it.setAcceptHoverEvents(False)
        self.colorbar = pg.ColorBarItem(colorMap=theme.viridis(), interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=pi)
        self.message = pg.TextItem("", anchor=(0.5, 0.5))
        self.plot.addItem(self.message)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        self.rows: list[str] = []
        self.heads: dict[str, tuple[int, int]] = {}
        self.values = np.zeros((0, 0))  # rows x columns, NaN where no score or no head
        self.group_rects: list[QRectF] = []
        self._asked = (
            None  # (id(model), id(dataset), labels) last measured, so a cancel is not retried
        )
        self.importance.currentIndexChanged.connect(self.changed)
        self.scale.currentIndexChanged.connect(self.changed)
        self.compute.clicked.connect(lambda: self.measure(force=True))
        self.image.sigCellClicked.connect(self._on_click)
        self.image.sigCellHovered.connect(self._on_hover)

    @property
    def name(self) -> str:
        return self.importance.currentData()

    # ---- measuring ------------------------------------------------------------------------
    def measure(self, force: bool = False) -> None:
        """Measure the heads on the data (task "heads") if the importance needs it."""
        s = self.session
        if self.name == "l2" or s.dataset is None or not self.heads:
            return
        if s.head_scores(self.name) is not None and not force:
            return
        labels = self.name == "head_taylor" or bool(s.unit_data and s.unit_data.head_taylor)
        key = (id(s.model), id(s.dataset), labels)
        if not force and (self._asked == key or self.tasks.is_running("heads")):
            return
        self._asked = key
        model, ds = s.model, s.dataset
        job = s.head_data_job(labels, lambda f: report(f, "Measuring attention heads…"))

        def got(data):
            if s.set_unit_data(data, model, ds):
                self.changed()

        self.tasks.submit(
            "heads", job, got, lambda msg: self.state.error(f"Head importance failed: {msg}")
        )
        self._show_message("Measuring the heads on the validation data…")

    # ---- drawing --------------------------------------------------------------------------
    def redraw(self) -> None:
        s = self.session
        self.heads = s.head_layers()
        self.rows = list(self.heads)
        if not self.rows:
            self._clear()
            self._show_message(
                "No model open"
                if s.model is None
                else "This model has no attention heads (MultiHeadAttention or "
                "GroupQueryAttention layers)."
            )
            self.info.setText("")
            return
        cols = max(q for q, _ in self.heads.values())
        scores = s.head_scores(self.name)
        self.values = np.full((len(self.rows), cols), np.nan)
        for r, path in enumerate(self.rows):
            v = None if scores is None else scores.get(path)
            if v is not None:
                v = np.asarray(v, np.float64)
                if self.scale.currentIndex() == 1 and np.nanmax(np.abs(v)) > 0:
                    v = v / np.nanmax(np.abs(v))
                self.values[r, : len(v)] = v
        self._draw_cells(cols)
        self._draw_outlines()
        self._draw_selection()
        self.compute.setEnabled(self.name != "l2" and s.dataset is not None)
        if scores is None:
            self.measure()
            self._show_message(
                "Measuring the heads on the validation data…"
                if self.tasks.is_running("heads")
                else "Open validation data to measure the heads (or choose the weights' norm)."
                if s.dataset is None
                else "Not measured yet: press Measure."
            )
        else:
            self._show_message("")
        n = sum(q for q, _ in self.heads.values())
        grouped = " · outlined: query heads sharing a KV head" if self.group_rects else ""
        self.info.setText(f"{len(self.rows)} attention layers, {n} heads{grouped}")

    def _draw_cells(self, cols: int) -> None:
        rows = len(self.rows)
        finite = self.values[np.isfinite(self.values)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
        img = np.ascontiguousarray(np.nan_to_num(self.values, nan=lo), np.float32)
        self.image.setImage(img, levels=(lo, hi), autoLevels=False)
        self.image.setRect(QRectF(0, 0, cols, rows))
        self.colorbar.setLevels((lo, hi))
        over = np.zeros((rows, cols, 4), np.ubyte)
        empty = theme.plot_colors()[0].getRgb()  # cells past a layer's head count: none
        for r, path in enumerate(self.rows):
            q = self.heads[path][0]
            over[r, q:] = empty
            over[r, :q][np.isnan(self.values[r, :q])] = NO_SCORE
        self.empty_cells.setImage(over, autoLevels=False, levels=None)
        self.empty_cells.setRect(QRectF(0, 0, cols, rows))
        pi = self.plot.getPlotItem()
        step = max(1, rows // 40)
        pi.getAxis("left").setTicks([[(r + 0.5, self.rows[r]) for r in range(0, rows, step)]])
        hstep = max(1, cols // 32)
        pi.getAxis("bottom").setTicks([[(h + 0.5, str(h)) for h in range(0, cols, hstep)]])
        pi.setLabel("left", "")
        self.plot.getViewBox().setRange(xRange=(0, cols), yRange=(0, rows), padding=0.02)

    def _draw_outlines(self) -> None:
        """One rectangle around each group of query heads sharing a KV head."""
        self.group_rects = []
        path = QPainterPath()
        for r, layer in enumerate(self.rows):
            q, kv = self.heads[layer]
            if kv >= q:
                continue
            size = q // kv
            for g in range(kv):
                rect = QRectF(g * size, r, size, 1).adjusted(0.04, 0.06, -0.04, -0.06)
                self.group_rects.append(rect)
                path.addRect(rect)
        self.outlines.setPath(path)

    def _draw_selection(self) -> None:
        s = self.session
        xs, ys, brushes = [], [], []
        for r, layer in enumerate(self.rows):
            sel, direct = s.selected_mask(layer), s.direct_mask(layer)
            for h in np.flatnonzero(sel):
                xs.append(h + 0.5)
                ys.append(r + 0.5)
                brushes.append(theme.SELECTED if direct[h] else theme.COUPLED)
        self.marks.setData(x=xs, y=ys, brush=brushes, pen=[pg.mkPen(b, width=3) for b in brushes])

    def _clear(self) -> None:
        self.values = np.zeros((0, 0))
        self.group_rects = []
        self.image.clear()
        self.empty_cells.clear()
        self.outlines.setPath(QPainterPath())
        self.marks.setData(x=[], y=[])
        self.compute.setEnabled(False)

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        if text:
            vb = self.plot.getViewBox().viewRange()
            self.message.setPos((vb[0][0] + vb[0][1]) / 2, (vb[1][0] + vb[1][1]) / 2)

    # ---- the mouse ------------------------------------------------------------------------
    def cell(self, row: int, col: int) -> tuple[str, int] | None:
        """(layer, head) of a cell, or None for an empty cell."""
        if not 0 <= row < len(self.rows):
            return None
        layer = self.rows[row]
        return (layer, col) if 0 <= col < self.heads[layer][0] else None

    def describe(self, row: int, col: int) -> str:
        hit = self.cell(row, col)
        if hit is None:
            return ""
        v = self.values[row, col]
        value = "not measured" if np.isnan(v) else f"{v:.4g}"
        q, kv = self.heads[hit[0]]
        group = f" (KV head {col // (q // kv)})" if kv < q else ""
        return f"{hit[0]} · head {col}{group} · {self.importance.currentText()}: {value}"

    def _on_hover(self, row: int, col: int) -> None:
        text = self.describe(row, col)
        self.image.setToolTip(text)
        if text:
            layer, head = self.cell(row, col)
            self.info.setText(text)
            self.state.set_focus(layer, head)

    def _on_click(self, row: int, col: int, modifiers) -> None:
        hit = self.cell(row, col)
        if hit is None:
            return
        layer, head = hit
        self.session.set_layer(layer)
        self.state.set_focus(layer, head)
        self.selection.click(layer, head, modifiers)
