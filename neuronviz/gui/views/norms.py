"""Norm bar chart: one bar per unit of the current layer, in index order or sorted."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QComboBox, QVBoxLayout

from neuronviz.gui import theme
from neuronviz.gui.views.base import View
from neuronviz.gui.views.items import RangeTool, UnitBars


class NormView(View):
    listens = (
        "modelChanged",
        "layerChanged",
        "planChanged",
        "weightStatsChanged",
        "actStatsChanged",
    )

    def __init__(self, state, selection, parent=None):
        super().__init__(state, selection, parent)
        self.kind = QComboBox()
        self.kind.addItems(["L2 norm", "L1 norm"])
        self.kind.setToolTip("Norm of each unit's incoming weights")
        self.sorted = QCheckBox("Sorted")
        self.sorted.setToolTip("Order the bars by norm, smallest first (S)")
        self.range = QCheckBox("Range")
        self.range.setToolTip("Drag the band to select the units it covers (R)")
        top = self.unit_toolbar(self.kind, self.sorted, self.range)
        self.plot = self.themed_plot()
        self.plot.getPlotItem().setLabel("bottom", "unit")
        self.plot.getPlotItem().setLabel("left", "L2 norm")
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        self.bars = UnitBars()
        self.plot.addItem(self.bars)
        self.empty = pg.TextItem("", anchor=(0.5, 0.5))
        self.plot.addItem(self.empty)
        self.range_tool = RangeTool(self.plot.getPlotItem(), "vertical", self._on_range)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        self.kind.currentIndexChanged.connect(self.changed)
        self.sorted.toggled.connect(self.changed)
        self.range.toggled.connect(lambda on: self.range_tool.set_visible(on, len(self.bars.order)))
        self.bars.sigUnitClicked.connect(self._on_click)
        self.bars.sigUnitHovered.connect(
            lambda u: self.state.set_focus(self.session.layer, u) if u >= 0 else None
        )
        self._key = None

    def norms(self) -> np.ndarray | None:
        return self.session.norms(
            self.session.layer, "l1" if self.kind.currentIndex() == 1 else "l2"
        )

    def redraw(self) -> None:
        s = self.session
        path = s.layer
        values = self.norms() if path else None
        if values is None:
            self.bars.set_bars(np.zeros(0), np.zeros(0, np.int64), [])
            self.empty.setText(
                "No model open" if path is None else f"'{path}' has no weights of its own"
            )
            self.info.setText("")
            return
        self.empty.setText("")
        order = (
            np.argsort(values, kind="stable") if self.sorted.isChecked() else np.arange(len(values))
        )
        act = s.act(path)
        brushes = theme.unit_brushes(
            len(values),
            s.selected_mask(path),
            s.direct_mask(path),
            None if act is None else act.dead,
        )
        key = (id(s.model), path, self.kind.currentIndex(), self.sorted.isChecked())
        if key == self._key:
            self.bars.set_brushes(brushes)
        else:
            self.bars.set_bars(values, order, brushes)
            vb = self.plot.getViewBox()
            vb.setRange(
                xRange=(-0.5, len(values) - 0.5),
                yRange=(0, float(values.max() or 1) * 1.05),
                padding=0,
            )
            self.plot.getPlotItem().setLabel("left", self.kind.currentText())
            self.plot.getPlotItem().setLabel(
                "bottom", "unit (sorted by norm)" if self.sorted.isChecked() else "unit"
            )
            self._key = key
        n_sel = int(s.selected_mask(path).sum())
        self.info.setText(f"{n_sel} of {len(values)} selected")
        self.info.setToolTip(
            f"{path}: {n_sel} of {len(values)} units selected (coupled units included)"
        )
        if self.range_tool.visible:
            self.range_tool.region.setBounds((-0.5, len(values) - 0.5))

    def _on_click(self, unit: int, modifiers) -> None:
        self.state.set_focus(self.session.layer, unit)
        self.selection.click(self.session.layer, unit, modifiers, order=self.bars.order)

    def _on_range(self, lo: float, hi: float) -> None:
        pos = RangeTool.positions(lo, hi, len(self.bars.order))
        if self.session.layer:
            self.selection.edit(
                self.session.layer,
                self.bars.order[pos],
                "set",
                f"Select {self.session.layer} range",
            )
