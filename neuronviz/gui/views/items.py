"""pyqtgraph items that know which unit the mouse is on: bars and heatmap rows."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainterPath


class _PicksUnits:
    """Clicks and hovers report the unit under the mouse. Subclasses give `unit_at(coord)`,
    `_coordinate(pos)` and the signals sigUnitClicked(unit, modifiers), sigUnitHovered(unit)."""

    def mouseClickEvent(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        unit = self.unit_at(self._coordinate(ev.pos()))
        if unit >= 0:
            ev.accept()
            self.sigUnitClicked.emit(unit, ev.modifiers())

    def hoverEvent(self, ev) -> None:
        if ev.isExit():
            self.sigUnitHovered.emit(-1)
        else:
            self.sigUnitHovered.emit(self.unit_at(self._coordinate(ev.pos())))


class UnitBars(_PicksUnits, pg.BarGraphItem):
    """Bars at x = 0..n-1 (display positions). A click anywhere in a bar's column
    (not only on the bar) reports the unit shown there; so does hovering."""

    sigUnitClicked = Signal(int, object)  # unit, modifiers
    sigUnitHovered = Signal(int)  # unit or -1

    def __init__(self):
        super().__init__(x=np.zeros(0), height=np.zeros(0), width=0.8, pen=pg.mkPen(None))
        self.order = np.zeros(0, np.int64)
        self._top = 1.0
        self.setAcceptHoverEvents(True)

    def set_bars(self, heights: np.ndarray, order: np.ndarray, brushes: list) -> None:
        self.order = np.asarray(order, np.int64)
        h = np.asarray(heights, float)[self.order]
        self._top = float(h.max()) if len(h) and h.max() > 0 else 1.0
        width = 0.8 if len(h) <= 256 else 1.0
        self.setOpts(
            x=np.arange(len(h)), height=h, width=width, brushes=[brushes[i] for i in self.order]
        )

    def set_brushes(self, brushes: list) -> None:
        self.setOpts(brushes=[brushes[i] for i in self.order])

    def column_rect(self) -> QRectF:
        return QRectF(-0.5, 0.0, float(len(self.order)), self._top)

    def boundingRect(self) -> QRectF:
        return super().boundingRect().united(self.column_rect())

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.column_rect())
        return path

    def unit_at(self, x: float) -> int:
        i = int(np.floor(x + 0.5))
        return int(self.order[i]) if 0 <= i < len(self.order) else -1

    def _coordinate(self, pos) -> float:
        return pos.x()


class UnitRows(_PicksUnits, pg.ImageItem):
    """A row-major image whose rows are units (row r shows unit order[r])."""

    sigUnitClicked = Signal(int, object)
    sigUnitHovered = Signal(int)

    def __init__(self):
        super().__init__(axisOrder="row-major")
        self.order = np.zeros(0, np.int64)
        self.setAcceptHoverEvents(True)

    def unit_at(self, y: float) -> int:
        r = int(np.floor(y))
        return int(self.order[r]) if 0 <= r < len(self.order) else -1

    def _coordinate(self, pos) -> float:
        return pos.y()


class RangeTool:
    """A LinearRegionItem that, when dragged, selects the units it covers."""

    def __init__(self, plot: pg.PlotItem, orientation: str, on_range):
        self.plot = plot
        self.region = pg.LinearRegionItem(
            orientation=orientation, brush=pg.mkBrush(228, 87, 46, 40)
        )
        self.region.setZValue(10)
        self.region.sigRegionChangeFinished.connect(lambda *_: on_range(*self.region.getRegion()))
        self.visible = False

    def set_visible(self, on: bool, extent: int) -> None:
        if on and not self.visible:
            lo = max(0.0, extent * 0.4)
            self.region.blockSignals(True)
            self.region.setRegion((lo - 0.5, lo + max(1.0, extent * 0.1) - 0.5))
            self.region.blockSignals(False)
            self.plot.addItem(self.region)
        elif not on and self.visible:
            self.plot.removeItem(self.region)
        self.visible = on

    @staticmethod
    def positions(lo: float, hi: float, n: int, centred: bool = True) -> np.ndarray:
        """Display positions whose centre lies inside [lo, hi]."""
        c = 0.0 if centred else 0.5
        first, last = int(np.ceil(lo - c)), int(np.floor(hi - c))
        return np.arange(max(first, 0), min(last, n - 1) + 1)
