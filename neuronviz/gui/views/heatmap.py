"""Activation heatmap: units (rows) x samples (columns), each sample's spatial mean; for
an attention layer heads x samples, each sample's head output norm.

Columns are averaged in blocks down to at most MAX_COLS for display, so 2,048 units x
10,000 samples stays smooth; samples can be grouped by class. Display arrays are cached
per layer and option set, so switching layers back and forth is instant."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QCheckBox, QComboBox, QVBoxLayout

from neuronviz.gui import theme
from neuronviz.gui.views.base import View
from neuronviz.gui.views.items import RangeTool, UnitRows

MAX_COLS = 1500


def display_array(
    per_sample: np.ndarray, labels, by_class: bool, per_unit: bool, max_cols: int = MAX_COLS
) -> tuple[np.ndarray, tuple, list]:
    """(units x columns float32 C-contiguous, levels, class boundaries as (column, label))."""
    a = np.asarray(per_sample, np.float32)  # (N, units)
    n = a.shape[0]
    bounds: list = []
    if by_class and labels is not None and len(labels) == n:
        order = np.argsort(labels, kind="stable")
        a = a[order]
        ys = np.asarray(labels)[order]
        starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
        bounds = [(int(s), int(ys[s])) for s in starts]
    step = max(1, int(np.ceil(n / max_cols)))
    if step > 1:
        cols = int(np.ceil(n / step))
        pad = cols * step - n
        if pad:
            a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
        a = a.reshape(cols, step, -1).mean(axis=1)
        bounds = [(s / step, c) for s, c in bounds]
    img = np.ascontiguousarray(a.T)
    img = np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0)
    if per_unit:
        lo = img.min(axis=1, keepdims=True)
        span = img.max(axis=1, keepdims=True) - lo
        img = np.ascontiguousarray((img - lo) / np.where(span > 0, span, 1.0), np.float32)
        levels = (0.0, 1.0)
    else:
        lo, hi = np.percentile(img, [1, 99]) if img.size else (0.0, 1.0)
        levels = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    return img.astype(np.float32, copy=False), levels, bounds


class HeatmapView(View):
    listens = ("modelChanged", "layerChanged", "planChanged", "actStatsChanged")

    def __init__(self, state, selection, parent=None):
        super().__init__(state, selection, parent)
        self.by_class = QCheckBox("Group by class")
        self.by_class.setChecked(True)
        self.scale = QComboBox()
        self.scale.addItems(["Scale: whole layer", "Scale: per unit"])
        self.range = QCheckBox("Range")
        self.range.setToolTip("Drag the band to select the units (rows) it covers")
        top = self.unit_toolbar(self.by_class, self.scale, self.range)
        self.plot = self.themed_plot()
        pi = self.plot.getPlotItem()
        pi.setLabel("left", "unit")
        pi.setLabel("bottom", "samples")
        pi.invertY(True)
        self.image = UnitRows()
        self.image.setColorMap(theme.viridis())
        self.plot.addItem(self.image)
        self.strip = pg.ImageItem(axisOrder="row-major")  # selection marks left of the image
        self.overlay = pg.ImageItem(axisOrder="row-major")  # translucent selected rows
        for it in (self.strip, self.overlay):
            it.setAcceptedMouseButtons(pg.QtCore.Qt.MouseButton.NoButton)
            it.setAcceptHoverEvents(False)
            self.plot.addItem(it)
        self.overlay.setZValue(5)
        self.colorbar = pg.ColorBarItem(colorMap=theme.viridis(), interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=pi)
        self.lines: list = []
        self.empty = pg.TextItem("", anchor=(0.5, 0.5))
        self.plot.addItem(self.empty)
        self.range_tool = RangeTool(pi, "horizontal", self._on_range)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        self.by_class.toggled.connect(self._options)
        self.scale.currentIndexChanged.connect(self._options)
        self.range.toggled.connect(
            lambda on: self.range_tool.set_visible(on, len(self.image.order))
        )
        self.image.sigUnitClicked.connect(self._on_click)
        self.image.sigUnitHovered.connect(
            lambda u: self.state.set_focus(self.session.layer, u) if u >= 0 else None
        )
        self._cache: OrderedDict = OrderedDict()
        self._key = None
        self.ncols = 0

    def _options(self, *args) -> None:
        self._key = None
        self.changed()

    def _display(self, path, act):
        s = self.session
        key = (id(act), path, self.by_class.isChecked(), self.scale.currentIndex())
        if key not in self._cache:
            labels = s.dataset.y[: len(act.per_sample)] if s.dataset is not None else None
            self._cache[key] = display_array(
                act.per_sample, labels, self.by_class.isChecked(), self.scale.currentIndex() == 1
            )
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return key, self._cache[key]

    def redraw(self) -> None:
        s = self.session
        path = s.layer
        act = s.act(path) if path else None
        if act is None:
            self.image.clear()
            self.strip.clear()
            self.overlay.clear()
            self.image.order = np.zeros(0, np.int64)
            self.empty.setText(
                "Activation statistics appear here once validation data is open."
                if path
                else "No model open"
            )
            self.info.setText("")
            self._key = None
            return
        self.empty.setText("")
        key, (img, levels, bounds) = self._display(path, act)
        units, cols = img.shape
        if key != self._key:
            self.image.order = np.arange(units)
            self.image.setImage(img, levels=levels, autoLevels=False)
            self.image.setRect(QRectF(0, 0, cols, units))
            self.colorbar.setLevels(levels)
            for ln in self.lines:
                self.plot.removeItem(ln)
            self.lines = []
            for c, _label in bounds[1:] if len(bounds) > 1 else []:
                ln = pg.InfiniteLine(pos=c, angle=90, pen=pg.mkPen((255, 255, 255, 140), width=1))
                self.plot.addItem(ln)
                self.lines.append(ln)
            for c, label in bounds:
                t = pg.TextItem(str(label), anchor=(0, 1), color=(255, 255, 255))
                t.setPos(c + 1, units)
                self.plot.addItem(t)
                self.lines.append(t)
            self.plot.getViewBox().setRange(
                xRange=(-cols * 0.03, cols), yRange=(0, units), padding=0
            )
            self.ncols = cols
            self._key = key
        self._draw_selection(units, cols)
        n = len(act.per_sample)
        grouped = ", grouped by class" if self.by_class.isChecked() else ""
        shown = f", {cols} columns of ~{n / cols:.1f} samples" if cols < n else ""
        self.plot.getPlotItem().setLabel("bottom", f"samples ({n:,}{grouped}{shown})")
        kind = "head" if path in s.head_layers() else "unit"  # attention: heads x samples
        self.plot.getPlotItem().setLabel("left", kind)
        self.info.setText(f"{units} {kind}s")

    def _draw_selection(self, units: int, cols: int) -> None:
        s = self.session
        sel, direct = s.selected_mask(), s.direct_mask()
        rgba = np.zeros((units, 1, 4), np.ubyte)
        for mask, colour in ((sel & ~direct, theme.COUPLED), (sel & direct, theme.SELECTED)):
            rgba[mask, 0] = (colour.red(), colour.green(), colour.blue(), 255)
        act = s.act()
        if act is not None:
            dead = np.asarray(act.dead)[:units] & ~sel
            rgba[dead, 0] = (theme.DEAD.red(), theme.DEAD.green(), theme.DEAD.blue(), 255)
        self.strip.setImage(rgba, autoLevels=False, levels=None)
        self.strip.setRect(QRectF(-cols * 0.03, 0, cols * 0.025, units))
        over = rgba.copy()
        over[..., 3] = np.where(sel, 120, 0)[:, None]
        self.overlay.setImage(over, autoLevels=False, levels=None)
        self.overlay.setRect(QRectF(0, 0, cols, units))

    def _on_click(self, unit: int, modifiers) -> None:
        self.state.set_focus(self.session.layer, unit)
        self.selection.click(self.session.layer, unit, modifiers, order=self.image.order)

    def _on_range(self, lo: float, hi: float) -> None:
        pos = RangeTool.positions(lo, hi, len(self.image.order), centred=False)
        if self.session.layer and len(self.image.order):
            self.selection.edit(
                self.session.layer,
                self.image.order[pos],
                "set",
                f"Select {self.session.layer} rows",
            )
