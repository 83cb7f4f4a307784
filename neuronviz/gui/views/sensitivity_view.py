"""Sensitivity: accuracy (perplexity, for a causal LM's token data) against the fraction
of units removed, one curve per layer (group), or a heatmap (groups x fractions, coloured
by the accuracy drop or perplexity rise) when there are more than HEATMAP_ABOVE groups.
Clicking a point or a cell selects that many of that layer's units by the criterion."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
)

from neuronviz.gui import theme
from neuronviz.gui.views.base import View
from neuronviz.gui.views.sweep_heatmap import SweepHeatmap, damage_label, scored
from neuronviz.gui.workers import error_text

CRITERIA = [("l2", "L2 norm"), ("l1", "L1 norm"), ("taylor", "Taylor importance")]
STEPS = {
    "10 steps": np.round(np.arange(0, 1.0, 0.1), 2),
    "20 steps": np.round(np.arange(0, 1.0, 0.05), 3),
    "5 steps": np.round(np.arange(0, 1.0, 0.2), 2),
}
HEATMAP_ABOVE = 8  # more groups than this: a heatmap instead of one line per group


class SensitivityView(View):
    listens = ("modelChanged", "sweepChanged", "previewerChanged", "planChanged")
    heatmap_above = HEATMAP_ABOVE

    def __init__(self, state, selection, tasks=None, parent=None):
        super().__init__(state, selection, parent)
        self.tasks = tasks
        self.criterion = QComboBox()
        for key, text in CRITERIA:
            self.criterion.addItem(f"Remove smallest {text}", key)
        self.steps = QComboBox()
        self.steps.addItems(list(STEPS))
        self.run_button = QPushButton("Run sweep")
        self.run_button.setToolTip(
            "Score the model with 0–90% of each layer's units removed (Ctrl+Shift+R)"
        )
        self.run_button.clicked.connect(self.run)
        self.info = QLabel()
        self.info.setWordWrap(True)
        top = QHBoxLayout()
        for w in (self.criterion, self.steps, self.run_button):
            top.addWidget(w)
        top.addStretch(1)
        self.plot = pg.PlotWidget()
        theme.style_plot(self.plot)
        self.plot.setMenuEnabled(False)
        pi = self.plot.getPlotItem()
        pi.setLabel("bottom", "% of the layer's units removed")
        pi.setLabel("left", "accuracy (%)")
        pi.showGrid(x=True, y=True, alpha=0.2)
        self.legend = pi.addLegend(offset=(10, -10))
        self.items: list = []
        self.points: dict[str, pg.ScatterPlotItem] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        self.heatmap = SweepHeatmap()
        self.heatmap.cellClicked.connect(self._on_cell)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.plot)
        self.stack.addWidget(self.heatmap)
        lay.addWidget(self.stack, 1)
        lay.addWidget(self.info)

    def run(self) -> None:
        s = self.session
        if s.previewer is None:
            self.state.error("The sensitivity sweep needs validation data and a ready preview.")
            return
        crit = self.criterion.currentData()
        try:
            job = s.sweep_job(crit, list(STEPS[self.steps.currentText()]))
        except Exception as e:  # noqa: BLE001
            self.state.error(error_text(e))
            return
        self.info.setText("Running the sweep…")
        self.tasks.submit(
            "sensitivity",
            job,
            lambda r: s.set_sweep(r[0], crit, r[1]),
            lambda msg: self.state.error(f"Sensitivity sweep failed: {msg}"),
        )

    def redraw(self) -> None:
        s = self.session
        self.run_button.setEnabled(s.previewer is not None)
        for it in self.items:
            self.plot.removeItem(it)
        self.items, self.points = [], {}
        self.legend.clear()
        res = s.sweep
        if res is None:
            self.info.setText(
                "Run the sweep to see how fast each layer's accuracy falls as units are removed. "
                "Then click a point to select that many units of that layer."
                if s.previewer is not None
                else "The sweep needs validation data."
            )
            return
        label, baseline, values = scored(res)
        pi = self.plot.getPlotItem()
        pi.setLabel("left", label)
        base = pg.InfiniteLine(
            pos=baseline,
            angle=0,
            pen=pg.mkPen((128, 128, 128), style=pg.QtCore.Qt.PenStyle.DashLine),
        )
        self.plot.addItem(base)
        self.items.append(base)
        crit = dict(CRITERIA).get(s.sweep_criterion, s.sweep_criterion)
        skipped = "; ".join(f"{k}: {v}" for k, v in res.skipped.items())
        skipped = f" Skipped — {skipped}." if skipped else ""
        if len(res.curves) > self.heatmap_above:
            self.heatmap.set_result(res)
            self.stack.setCurrentWidget(self.heatmap)
            self.info.setText(
                f"By smallest {crit}: {damage_label(res).rsplit(' (', 1)[0]} from the baseline "
                f"({_value(label, baseline)}) per group. Click a cell to select that "
                f"fraction of that layer's units.{skipped}"
            )
            return
        self.stack.setCurrentWidget(self.plot)
        for i, (c, acc) in enumerate(zip(res.curves, values, strict=True)):
            colour = theme.CURVES[i % len(theme.CURVES)]
            xs = 100 * np.asarray(c.fractions, float)
            line = pg.PlotDataItem(
                xs,
                acc,
                pen=pg.mkPen(colour, width=2),
                name=f"{c.layer} ({c.size} units)",
                connect="finite",
            )
            pts = pg.ScatterPlotItem(
                xs,
                np.nan_to_num(acc, nan=0.0),
                size=9,
                brush=pg.mkBrush(colour),
                pen=pg.mkPen(colour),
                hoverable=True,
                hoverSize=13,
                tip=None,
                data=[(c.layer, f, k) for f, k in zip(c.fractions, c.removed, strict=True)],
            )
            pts.sigClicked.connect(self._on_point)
            for it in (line, pts):
                self.plot.addItem(it)
                self.items.append(it)
            self.points[c.layer] = pts
        finite = [v for r in values for v in r.tolist() if math.isfinite(v)] or [baseline]
        if label == "perplexity":  # lower is better; a collapsed model must not flatten the rest
            pi.setYRange(0.95 * min(finite), min(max(finite), 10 * baseline) * 1.05, padding=0)
        else:
            pi.setYRange(max(0.0, min(finite) - 5), 100.5, padding=0)
        pi.setXRange(-3, 100 * max(max(c.fractions) for c in res.curves) + 3, padding=0)
        self.info.setText(
            f"By smallest {crit}. Baseline {_value(label, baseline)} (dashed). "
            "Click a point to select that many units of that layer." + skipped
        )

    def _on_point(self, item, points, ev=None) -> None:
        if not len(points):
            return
        layer, frac, _ = points[0].data()
        self.select_point(layer, self.session.sweep.curve(layer).fractions.index(frac))

    def _on_cell(self, layer: str, j: int) -> None:
        self.select_point(layer, j)

    def select_point(self, layer: str, j: int) -> None:
        """Select exactly what the sweep scored for `layer`'s group at its j-th fraction
        (the rest of the selection stays)."""
        s = self.session
        c = s.sweep.curve(layer)
        try:
            plan = s.edited(layer, [], "set").merged(s.sweep.plan_at(s.trace, layer, j))
        except Exception as e:  # noqa: BLE001
            self.state.error(error_text(e))
            return
        if s.layer != layer:
            s.set_layer(layer)
        crit = s.sweep_criterion or "l2"
        self.selection.apply(plan, f"Select {100 * c.fractions[j]:.0f}% of {layer} by {crit}")


def _value(label: str, value: float) -> str:
    return f"perplexity {value:.4g}" if label == "perplexity" else f"accuracy {value:.2f}%"
