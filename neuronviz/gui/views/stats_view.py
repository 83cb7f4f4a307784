"""Statistics of the current layer: histograms of its weights, of its units' mean
activation and of their APoZ (fraction of zero outputs), with dead and selected units
marked."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGridLayout, QLabel

from neuronviz.gui import theme
from neuronviz.gui.views.base import View


def _hist(values: np.ndarray, bins: int = 60, edges=None):
    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if edges is None:
        if len(v) == 0:
            return np.zeros(1), np.array([0.0, 1.0])
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
    counts, edges = np.histogram(v, bins=edges)
    return counts, edges


class StatsView(View):
    listens = (
        "modelChanged",
        "layerChanged",
        "planChanged",
        "actStatsChanged",
        "weightStatsChanged",
    )

    def __init__(self, state, selection, parent=None):
        super().__init__(state, selection, parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        self.plots = {}
        specs = [
            ("weights", "Weights", "weight value"),
            ("mean", "Mean activation per unit", "mean activation"),
            ("apoz", "APoZ per unit", "APoZ (fraction of zero outputs)"),
        ]
        for i, (name, title, xlabel) in enumerate(specs):
            w = pg.PlotWidget()
            w.setTitle(title, size="10pt")
            theme.style_plot(w)
            w.setMenuEnabled(False)
            w.getPlotItem().setLabel("bottom", xlabel)
            w.getPlotItem().setLabel("left", "count")
            w.setMouseEnabled(x=False, y=False)
            w.setMinimumSize(120, 120)
            self.plots[name] = w
            grid.addWidget(w, i // 2, i % 2)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setMinimumWidth(100)
        grid.addWidget(self.summary, 1, 1)
        for i in range(2):
            grid.setColumnStretch(i, 1)
            grid.setRowStretch(i, 1)
        self.items: dict[str, list] = {k: [] for k in self.plots}

    def _clear(self, name: str) -> None:
        for it in self.items[name]:
            self.plots[name].removeItem(it)
        self.items[name] = []

    def _add(self, name: str, item) -> None:
        self.plots[name].addItem(item)
        self.items[name].append(item)

    def _bars(self, name, counts, edges, colour, alpha=255) -> None:
        c = pg.QtGui.QColor(colour)
        c.setAlpha(alpha)
        self._add(
            name,
            pg.PlotDataItem(
                edges, counts, stepMode="center", fillLevel=0, brush=c, pen=pg.mkPen(colour)
            ),
        )

    def redraw(self) -> None:
        s = self.session
        for name in self.plots:
            self._clear(name)
        path = s.layer
        if path is None:
            self.summary.setText("")
            return
        k = s.kernel(path)
        if k is not None:
            src, kernel, _ = k
            counts, edges = _hist(kernel)
            self._bars("weights", counts, edges, theme.UNIT)
            self.plots["weights"].setTitle(f"Weights of '{src}'", size="10pt")
        else:
            self.plots["weights"].setTitle("No weights of its own", size="10pt")
        act = s.act(path)
        sel = s.selected_mask(path)
        lines = [f"<b>{path}</b>", f"{s.units(path)} units, {int(sel.sum())} selected"]
        if k is not None:
            lines.append(f"{k[1].size:,} weights in '{k[0]}'")
        if act is None:
            for name in ("mean", "apoz"):
                self.plots[name].setTitle("(needs validation data)", size="10pt")
            self.summary.setText("<br>".join(lines))
            return
        for name, values, title in (
            ("mean", act.mean, "Mean activation per unit"),
            ("apoz", act.apoz, "APoZ per unit"),
        ):
            counts, edges = _hist(values, 40)
            self._bars(name, counts, edges, theme.UNIT)
            if sel.any():
                c2, _ = _hist(np.asarray(values)[sel], edges=edges)
                self._bars(name, c2, edges, theme.SELECTED, 200)
            self.plots[name].setTitle(title, size="10pt")
        dead = np.asarray(act.dead)
        if dead.any():
            c3, edges = _hist(np.asarray(act.apoz)[dead], edges=_hist(act.apoz, 40)[1])
            self._bars("apoz", c3, edges, theme.DEAD, 255)
            self._add(
                "apoz",
                pg.InfiniteLine(
                    pos=1.0,
                    angle=90,
                    pen=pg.mkPen(theme.DEAD, width=2, style=pg.QtCore.Qt.PenStyle.DashLine),
                    label=f"{int(dead.sum())} dead",
                    labelOpts={"position": 0.9},
                ),
            )
        lines += [
            f"dead units: <b>{int(dead.sum())}</b>",
            f"mean APoZ: {float(np.mean(act.apoz)):.3f}",
            f"mean activation: {float(np.mean(act.mean)):.4g}",
            f"<span style='color:{theme.SELECTED.name()}'>■</span> selected &nbsp; "
            f"<span style='color:{theme.DEAD.name()}'>■</span> dead",
        ]
        self.summary.setText("<br>".join(lines))
