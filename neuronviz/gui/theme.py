"""Colours shared by every view, and light/dark palettes that follow the system."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

UNIT = QColor(86, 131, 181)  # an ordinary unit
SELECTED = QColor(228, 87, 46)  # selected in this layer
COUPLED = QColor(243, 167, 18)  # removed because a coupled layer's unit is selected
DEAD = QColor(150, 150, 150)
HOVER = QColor(46, 196, 182)
CURVES = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def is_dark() -> bool:
    app = QGuiApplication.instance()
    if app is None:
        return False
    try:
        scheme = app.styleHints().colorScheme()
        if scheme == Qt.ColorScheme.Dark:
            return True
        if scheme == Qt.ColorScheme.Light:
            return False
    except AttributeError:  # Qt < 6.5
        pass
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def plot_colors() -> tuple[QColor, QColor]:
    """(background, foreground) for plots in the current scheme."""
    if is_dark():
        return QColor(30, 31, 34), QColor(210, 212, 216)
    return QColor(255, 255, 255), QColor(40, 40, 40)


def apply_theme() -> None:
    """Configure pyqtgraph to match the application's light or dark scheme."""
    bg, fg = plot_colors()
    pg.setConfigOptions(background=bg, foreground=fg, antialias=False, imageAxisOrder="row-major")


def style_plot(widget: pg.PlotWidget) -> None:
    bg, fg = plot_colors()
    widget.setBackground(bg)
    item = widget.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        ax = item.getAxis(name)
        ax.setPen(fg)
        ax.setTextPen(fg)
        ax.enableAutoSIPrefix(False)


def unit_brushes(
    n: int, selected: np.ndarray, direct: np.ndarray, dead: np.ndarray | None = None
) -> list:
    """One brush per unit: selected (in this layer), coupled, dead, or plain."""
    plain, sel, cpl = pg.mkBrush(UNIT), pg.mkBrush(SELECTED), pg.mkBrush(COUPLED)
    dd = pg.mkBrush(DEAD)
    out = [plain] * n
    for i in np.flatnonzero(dead if dead is not None else np.zeros(n, bool)):
        out[i] = dd
    for i in np.flatnonzero(selected):
        out[i] = sel if direct[i] else cpl
    return out


def legend_html() -> str:
    """The unit colours, for a small legend next to a plot."""
    items = [(SELECTED, "selected"), (COUPLED, "coupled"), (DEAD, "dead")]
    return " ".join(f"<span style='color:{c.name()}'>■</span>&nbsp;{t}" for c, t in items)


def viridis():
    return pg.colormap.get("viridis")


def diverging():
    return pg.colormap.get("CET-D1")
