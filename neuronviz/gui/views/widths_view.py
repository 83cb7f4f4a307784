"""Widths across the network: one row per unit-creating layer, its units before (grey)
and after the current plan (blue), beside its share of the model's params and MACs
(before: grey, after: blue). Where the model is big, and what the plan removes.
A click on a row shows that layer's units."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout

from neuronviz.gui import theme
from neuronviz.gui.views.base import View

BEFORE = (175, 175, 175)
MAX_TICKS = 45  # layer names shown on the left axis (every k-th on deep models)


def rows_of(session) -> list[str]:
    """Unit-creating layers (the sources of every group), in graph order."""
    tr = session.trace
    sources = {p for g in tr.units.groups for p in g.sources if p in tr.layer_units}
    return [p for p in tr.graph.layers if p in sources]


def row_at(y: float, n: int) -> int:
    r = int(np.floor(y + 0.5))
    return r if 0 <= r < n else -1


class LayerRowsView(View):
    """A chart with one row per layer (`rows`): a band marks the current layer's row and
    follows layer changes without a redraw."""

    def add_band(self, plot, alpha: int) -> None:
        self.rows: list[str] = []
        self.current = pg.LinearRegionItem(
            orientation="horizontal", movable=False, brush=pg.mkBrush(228, 87, 46, alpha)
        )
        plot.addItem(self.current)
        self.state.layerChanged.connect(self.mark_layer)

    def mark_layer(self) -> None:
        layer = self.session.layer
        self.current.setVisible(layer in self.rows)
        if layer in self.rows:
            i = self.rows.index(layer)
            self.current.setRegion((i - 0.5, i + 0.5))

    def cleanup(self) -> None:
        try:
            self.state.layerChanged.disconnect(self.mark_layer)
        except (RuntimeError, TypeError):
            pass
        super().cleanup()


class WidthsView(LayerRowsView):
    listens = ("modelChanged", "planChanged")

    def __init__(self, state, selection, parent=None):
        super().__init__(state, selection, parent)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(theme.plot_colors()[0])
        self.plots = []
        for i, title in enumerate(("units", "% of params", "% of MACs")):
            p = self.canvas.addPlot(row=0, col=i)
            p.setMenuEnabled(False)
            p.invertY(True)
            p.setLabel("bottom", title)
            p.getViewBox().setMouseEnabled(x=False, y=True)
            p.showGrid(x=True, alpha=0.2)
            if i:
                p.setYLink(self.plots[0])
                p.getAxis("left").setStyle(showValues=False)
            self.plots.append(p)
        self.canvas.ci.layout.setColumnStretchFactor(0, 3)
        self.bars = [
            [pg.BarGraphItem(x0=[], y=[], height=0.8, width=[]) for _ in range(2)] for _ in range(3)
        ]
        for p, pair in zip(self.plots, self.bars, strict=True):
            for b in pair:
                p.addItem(b)
        self.add_band(self.plots[0], alpha=40)
        self.info = QLabel()
        self.info.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.info)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)

    def redraw(self) -> None:
        s = self.session
        if s.trace is None:
            return
        rows = rows_of(s)
        fresh = rows != self.rows
        self.rows = rows
        removed, after = s.removed(), s.counts_after()
        n = len(rows)
        y = np.arange(n, dtype=float)
        units0 = np.array([s.units(p) for p in rows], float)
        units1 = units0 - [len(removed.get(p, ())) for p in rows]
        share = []
        for counts, idx in ((s.before, 0), (after, 0), (s.before, 1), (after, 1)):
            total = max(s.before.params if idx == 0 else s.before.macs, 1)
            share.append(np.array([100 * counts.layers.get(p, (0, 0))[idx] / total for p in rows]))
        values = [(units0, units1), (share[0], share[1]), (share[2], share[3])]
        for pair, (v0, v1) in zip(self.bars, values, strict=True):
            pair[0].setOpts(x0=np.zeros(n), y=y, width=v0, height=0.8, brush=BEFORE, pen=None)
            pair[1].setOpts(x0=np.zeros(n), y=y, width=v1, height=0.5, brush=theme.UNIT, pen=None)
        if fresh:
            step = max(1, n // MAX_TICKS)
            self.plots[0].getAxis("left").setTicks([[(i, rows[i]) for i in range(0, n, step)]])
            for p in self.plots:
                p.setYRange(-0.5, min(n, 60) - 0.5, padding=0)
        self.mark_layer()
        tot0, tot1 = int(units0.sum()), int(units1.sum())
        self.info.setText(
            f"{n} unit-creating layers: {tot0:,} → {tot1:,} units; params "
            f"{s.before.params:,} → {after.params:,}; MACs {s.before.macs:,} → {after.macs:,}. "
            "Grey: before, blue: after the current selection. Click a row to show its units."
        )

    def _on_click(self, ev) -> None:
        for p in self.plots:
            if p.sceneBoundingRect().contains(ev.scenePos()):
                r = row_at(p.getViewBox().mapSceneToView(ev.scenePos()).y(), len(self.rows))
                if r >= 0:
                    self.session.set_layer(self.rows[r])
                return
