"""Importance across the network: one row per prunable group (its criterion layer), every
unit a dot at its importance divided by the layer's mean (as the global criterion ranks
them), the median as a bar. The units the global criterion would remove at the chosen
fraction are red; "Select these" makes them the selection. A click on a row shows that
layer's units."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from neuronviz.core.criteria import normalised
from neuronviz.errors import NeuronvizError
from neuronviz.gui import theme
from neuronviz.gui.views.widths_view import MAX_TICKS, LayerRowsView, row_at

CRITERIA = [("l2", "L2 norm"), ("l1", "L1 norm"), ("taylor", "Taylor importance")]


class ImportanceView(LayerRowsView):
    listens = ("modelChanged", "weightStatsChanged", "sweepChanged")

    def __init__(self, state, selection, parent=None):
        super().__init__(state, selection, parent)
        self.criterion = QComboBox()
        for key, text in CRITERIA:
            self.criterion.addItem(text, key)
        self.fraction = QDoubleSpinBox()
        self.fraction.setRange(0.0, 95.0)
        self.fraction.setValue(20.0)
        self.fraction.setSuffix(" % of all units")
        self.fraction.setToolTip("Global criterion: this share of all units, ranked across layers")
        self.apply_button = QPushButton("Select these")
        self.apply_button.setToolTip("Make the red units the selection (undoable)")
        top = QHBoxLayout()
        for w in (QLabel("Smallest"), self.criterion, self.fraction, self.apply_button):
            top.addWidget(w)
        top.addStretch(1)
        self.plot = self.themed_plot()
        pi = self.plot.getPlotItem()
        pi.invertY(True)
        pi.setLabel("bottom", "unit importance / the layer's mean")
        pi.showGrid(x=True, alpha=0.2)
        self.plot.getViewBox().setMouseEnabled(x=True, y=True)
        self.kept = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(theme.UNIT))
        self.cut = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(theme.SELECTED))
        self.medians = pg.ScatterPlotItem(symbol="|", size=14, pen=pg.mkPen(theme.DEAD, width=2))
        for it in (self.kept, self.cut, self.medians):
            self.plot.addItem(it)
        self.add_band(self.plot, alpha=30)
        self.info = QLabel()
        self.info.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.info)
        self.plan = None
        self.criterion.currentIndexChanged.connect(self.changed)
        self.fraction.valueChanged.connect(self.changed)
        self.apply_button.clicked.connect(self.apply)
        self.plot.scene().sigMouseClicked.connect(self._on_click)

    def redraw(self) -> None:
        s = self.session
        self.plan = None
        if s.trace is None:
            return
        crit = self.criterion.currentData()
        try:
            scores = s.criterion_scores(crit)
            plan = s.criterion_plan(crit, fraction=self.fraction.value() / 100, scope="global")
        except NeuronvizError as e:
            for it in (self.kept, self.cut, self.medians):
                it.setData([], [])
            self.info.setText(f"{e} (Taylor importance comes with a sweep by Taylor.)")
            return
        fresh = list(scores) != self.rows
        self.rows = list(scores)
        xs, ys, cut, med = [], [], [], []
        rng = np.random.default_rng(0)
        for i, (layer, v) in enumerate(scores.items()):
            x = np.nan_to_num(normalised(v), nan=0.0)
            y = i + rng.uniform(-0.3, 0.3, len(x))
            mask = np.zeros(len(x), bool)
            mask[list(plan.remove.get(layer, ()))] = True
            xs.append(x)
            ys.append(y)
            cut.append(mask)
            med.append(float(np.median(x)))
        x, y, m = (np.concatenate(a) if a else np.zeros(0) for a in (xs, ys, cut))
        m = m.astype(bool)
        self.kept.setData(x[~m], y[~m])
        self.cut.setData(x[m], y[m])
        self.medians.setData(np.array(med), np.arange(len(med), dtype=float))
        self.plan = plan
        n = len(self.rows)
        if fresh:
            step = max(1, n // MAX_TICKS)
            self.plot.getPlotItem().getAxis("left").setTicks(
                [[(i, self.rows[i]) for i in range(0, n, step)]]
            )
            self.plot.getPlotItem().setYRange(-0.5, min(n, 60) - 0.5, padding=0)
        self.mark_layer()
        total = int(sum(len(v) for v in scores.values()))
        self.info.setText(
            f"{n} prunable groups, {total:,} units. Red: the {int(m.sum()):,} units the global "
            f"smallest-{crit} criterion removes at {self.fraction.value():g}% (ranked after "
            "dividing by each layer's mean). Click a row to show its units."
        )

    def apply(self) -> None:
        self.ensure_drawn()
        if self.plan is not None:
            self.selection.apply(
                self.plan,
                f"Select {self.fraction.value():g}% by global {self.criterion.currentData()}",
            )

    def _on_click(self, ev) -> None:
        vb = self.plot.getViewBox()
        if vb.sceneBoundingRect().contains(ev.scenePos()):
            r = row_at(vb.mapSceneToView(ev.scenePos()).y(), len(self.rows))
            if r >= 0:
                self.session.set_layer(self.rows[r])
