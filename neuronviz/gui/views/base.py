"""The common shape of a view: subscribe to state signals, redraw lazily, clean up."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from neuronviz.gui import theme
from neuronviz.gui.plan_editor import PlanEditor
from neuronviz.gui.state import State


class View(QWidget):
    """A view redraws from the State when shown and when a signal it listens to fires.

    Subclasses list the signals in `listens` (names of State signals) and implement
    `redraw()`. Hidden views only mark themselves dirty, so switching stays instant and
    work is not done for views nobody looks at."""

    listens: tuple[str, ...] = ("modelChanged", "layerChanged", "planChanged")

    def __init__(self, state: State, selection: PlanEditor, parent=None):
        super().__init__(parent)
        self.state, self.selection = state, selection
        self._dirty = True
        self._connected = []
        for name in self.listens:
            sig = getattr(state, name)
            sig.connect(self.changed)
            self._connected.append(sig)

    @property
    def session(self):
        return self.state.session

    def changed(self, *args) -> None:
        self._dirty = True
        if self.isVisible():
            self._redraw_now()

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self._dirty:
            self._redraw_now()

    def _redraw_now(self) -> None:
        self._dirty = False
        self.redraw()

    def ensure_drawn(self) -> None:
        """Redraw now if anything changed (for tests and exports of hidden views)."""
        if self._dirty:
            self._redraw_now()

    def unit_toolbar(self, *controls) -> QHBoxLayout:
        """Controls on the left, the colour legend, and `self.info` right-aligned."""
        self.info = QLabel()
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.legend = QLabel(theme.legend_html())
        top = QHBoxLayout()
        for w in controls:
            top.addWidget(w)
        top.addWidget(self.legend)
        top.addSpacing(12)
        top.addWidget(self.info, 1)
        return top

    @staticmethod
    def themed_plot() -> pg.PlotWidget:
        plot = pg.PlotWidget()
        theme.style_plot(plot)
        plot.setMenuEnabled(False)
        return plot

    def redraw(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def cleanup(self) -> None:
        for sig in self._connected:
            try:
                sig.disconnect(self.changed)
            except (RuntimeError, TypeError):
                pass
        self._connected.clear()
