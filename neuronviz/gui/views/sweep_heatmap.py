"""The sensitivity sweep as a heatmap: one row per group, one column per fraction
removed, coloured by the accuracy drop (the perplexity rise, for a causal LM's token
data). A click on a cell reports (layer, column)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from neuronviz.gui import theme


class SweepCells(pg.ImageItem):
    """Row-major cells; a click reports (row, column)."""

    sigCellClicked = Signal(int, int)

    def __init__(self):
        super().__init__(axisOrder="row-major")

    def mouseClickEvent(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self.image is None:
            return
        r, c = int(np.floor(ev.pos().y())), int(np.floor(ev.pos().x()))
        rows, cols = self.image.shape[:2]
        if 0 <= r < rows and 0 <= c < cols:
            ev.accept()
            self.sigCellClicked.emit(r, c)


def scored(res) -> tuple[str, float, list[np.ndarray]]:
    """What a sweep is shown by: (label, baseline, per group its values at each fraction,
    NaN where not scored). Accuracy in %, or perplexity for a causal LM's token data
    (its next-token accuracy moves in coarse steps)."""
    if res.baseline.perplexity is not None:
        label, base, rows = (
            "perplexity",
            res.baseline.perplexity,
            [c.perplexity for c in res.curves],
        )
    else:
        label, base = "accuracy (%)", 100 * res.baseline.accuracy
        rows = [[None if a is None else 100 * a for a in c.accuracy] for c in res.curves]
    finite = [
        np.array([v if v is not None and math.isfinite(v) else np.nan for v in r], float)
        for r in rows
    ]
    return label, float(base), finite


def drop_matrix(res) -> np.ndarray:
    """Damage, groups x fractions (NaN where not scored): the accuracy drop in percentage
    points, or the perplexity rise in % of the baseline's."""
    label, base, rows = scored(res)
    m = np.array(rows, np.float32)
    return 100 * (m / base - 1) if label == "perplexity" else base - m


def damage_label(res) -> str:
    return "perplexity rise (%)" if res.baseline.perplexity is not None else "accuracy drop (pt)"


class SweepHeatmap(pg.PlotWidget):
    cellClicked = Signal(str, int)  # layer, fraction index

    def __init__(self, parent=None):
        super().__init__(parent)
        theme.style_plot(self)
        self.setMenuEnabled(False)
        pi = self.getPlotItem()
        pi.setLabel("bottom", "% of the layer's units removed")
        pi.invertY(True)
        self.cells = SweepCells()
        self.cells.setColorMap(pg.colormap.get("inferno"))
        self.addItem(self.cells)
        self.colorbar = pg.ColorBarItem(
            colorMap=pg.colormap.get("inferno"), interactive=False, label="accuracy drop (pt)"
        )
        self.colorbar.setImageItem(self.cells, insert_in=pi)
        self.layers: list[str] = []
        self.cells.sigCellClicked.connect(self._on_cell)

    def set_result(self, res) -> None:
        drops = drop_matrix(res)
        self.colorbar.axis.setLabel(damage_label(res))
        self.layers = [c.layer for c in res.curves]
        finite = drops[np.isfinite(drops)]
        hi = max(float(finite.max()) if len(finite) else 1.0, 0.5)
        img = np.ascontiguousarray(np.nan_to_num(drops, nan=hi), np.float32)
        self.cells.setImage(img, levels=(0.0, hi))
        self.colorbar.setLevels((0.0, hi))
        pi = self.getPlotItem()
        fr = res.curves[0].fractions if res.curves else []
        pi.getAxis("bottom").setTicks([[(j + 0.5, f"{100 * f:.0f}") for j, f in enumerate(fr)]])
        step = max(1, len(self.layers) // 40)  # keep the names legible on deep models
        pi.getAxis("left").setTicks(
            [[(i + 0.5, self.layers[i]) for i in range(0, len(self.layers), step)]]
        )
        pi.setRange(xRange=(0, len(fr)), yRange=(0, len(self.layers)), padding=0.01)

    def _on_cell(self, row: int, col: int) -> None:
        self.cellClicked.emit(self.layers[row], col)
