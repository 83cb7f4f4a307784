"""Unit detail: the hovered or clicked unit's statistics, its incoming weights (a conv
filter's kernel as small images), the upstream units it listens to most, and, for image
models, the input that excites it most with its saliency map (for an attention head, the
gradient of the head's output norm)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QTimer
from PySide6.QtWidgets import QLabel, QVBoxLayout

from neuronviz.gui import theme
from neuronviz.gui.views.base import View


def mosaic(kernel: np.ndarray, max_tiles: int = 64) -> np.ndarray:
    """(kh, kw, cin) -> one image of up to max_tiles kh x kw tiles with 1-pixel gaps."""
    kh, kw, cin = kernel.shape
    n = min(cin, max_tiles)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    gap = 0.0
    out = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1), gap, np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = kernel[:, :, i]
    return out


def is_image_model(model) -> bool:
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, ValueError):
        return False
    return (
        len(model.inputs) == 1
        and len(shape) == 4
        and shape[-1] in (1, 3, 4)
        and "float" in str(model.inputs[0].dtype)
    )


class UnitView(View):
    listens = (
        "modelChanged",
        "planChanged",
        "actStatsChanged",
        "weightStatsChanged",
        "layerChanged",
    )

    def __init__(self, state, selection, tasks=None, parent=None):
        super().__init__(state, selection, parent)
        self.tasks = tasks
        self.header = QLabel("<i>Hover or click a unit</i>")
        self.header.setWordWrap(True)
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground(theme.plot_colors()[0])
        self.glw.setMinimumHeight(230)
        self.weights = self.glw.addPlot(row=0, col=0, colspan=2, title="incoming weights")
        self.weights.setMenuEnabled(False)
        self.weights.setMouseEnabled(x=False, y=False)
        self.curve = pg.PlotDataItem(pen=pg.mkPen(theme.UNIT))
        self.kernel_img = pg.ImageItem(axisOrder="row-major")
        self.kernel_img.setColorMap(theme.diverging())
        self.sample_label = self.glw.addLabel("", row=1, col=0, size="9pt")
        self.sal_label = self.glw.addLabel("", row=1, col=1, size="9pt")
        self.sample_vb = self.glw.addViewBox(
            row=2, col=0, lockAspect=True, invertY=True, enableMouse=False
        )
        self.sal_vb = self.glw.addViewBox(
            row=2, col=1, lockAspect=True, invertY=True, enableMouse=False
        )
        self.glw.ci.layout.setRowStretchFactor(0, 3)
        self.glw.ci.layout.setRowStretchFactor(2, 2)
        self.sample_img = pg.ImageItem(axisOrder="row-major")
        self.sal_img = pg.ImageItem(axisOrder="row-major")
        self.sal_img.setColorMap(pg.colormap.get("inferno"))
        self.sample_vb.addItem(self.sample_img)
        self.sal_vb.addItem(self.sal_img)
        self.upstream = QLabel()
        self.upstream.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.header)
        lay.addWidget(self.stats)
        lay.addWidget(self.glw, 1)
        lay.addWidget(self.upstream)
        self._sal_timer = QTimer(self)
        self._sal_timer.setSingleShot(True)
        self._sal_timer.setInterval(250)
        self._sal_timer.timeout.connect(self._request_saliency)
        state.focusChanged.connect(self.changed)
        self._connected.append(state.focusChanged)
        self._shown = None
        self.saliency_for = None  # (layer, unit) whose saliency is displayed

    def redraw(self) -> None:
        s, f = self.session, self.state.focus
        if s.model is None or f is None or f[0] not in (s.trace.layer_units if s.trace else {}):
            self._blank()
            return
        path, unit = f
        if unit >= s.units(path):
            self._blank()
            return
        sel, direct = s.selected_mask(path)[unit], s.direct_mask(path)[unit]
        g = s.group(path)
        tag = (
            f"<span style='color:{theme.SELECTED.name()}'>selected</span>"
            if direct
            else f"<span style='color:{theme.COUPLED.name()}'>removed with its group</span>"
            if sel
            else "kept"
        )
        self.glw.setVisible(True)
        self.header.setText(
            f"<b>{path}</b> · unit <b>{unit}</b> — {tag}<br><small>group {g.index} '{g.name}'"
            f" ({len(g.members)} layer{'s' if len(g.members) != 1 else ''})</small>"
        )
        rows = []
        for kind in ("l2", "l1"):
            v = s.norms(path, kind)
            if v is not None:
                rows.append((f"{kind.upper()} norm", f"{float(v[unit]):.4g}"))
        ws = s.weight_stats.get(path) if s.weight_stats else None
        if ws is not None and ws.bias is not None:
            rows.append(("bias", f"{float(np.asarray(ws.bias)[unit]):.4g}"))
        if ws is not None and ws.bn_gamma is not None:
            rows.append(("BN γ", f"{float(np.asarray(ws.bn_gamma)[unit]):.4g}"))
        act = s.act(path)
        if act is not None:
            rows += [
                ("mean", f"{float(act.mean[unit]):.4g}"),
                ("std", f"{float(act.std[unit]):.4g}"),
                ("max", f"{float(act.max[unit]):.4g}"),
                ("APoZ", f"{float(act.apoz[unit]):.3f}"),
                ("dead", "yes" if bool(act.dead[unit]) else "no"),
            ]
        half = (len(rows) + 1) // 2
        cells = []
        for i in range(half):
            pair = rows[i : i + 1] + rows[half + i : half + i + 1]
            cells.append(
                "<tr>"
                + "".join(
                    f"<td>{a}&nbsp;</td><td align=right>{b}&nbsp;&nbsp;&nbsp;&nbsp;</td>"
                    for a, b in pair
                )
                + "</tr>"
            )
        self.stats.setText("<table>" + "".join(cells) + "</table>")
        self._draw_weights(path, unit)
        self._draw_upstream(path, unit)
        if (path, unit) != self.saliency_for:
            self._sal_timer.start()

    def _blank(self) -> None:
        self.glw.setVisible(False)
        self.header.setText("<i>Hover or click a unit to see its details</i>")
        self.stats.setText("")
        self.upstream.setText("")
        self.curve.setData([], [])
        self.kernel_img.clear()

    def _draw_weights(self, path, unit) -> None:
        s = self.session
        k = s.kernel(path)
        for it in (self.curve, self.kernel_img):
            if it.scene() is not None:
                self.weights.removeItem(it)
        if k is None:
            self.weights.setTitle("no incoming weights", size="9pt")
            return
        src, kernel, idx = k
        col = kernel[..., int(idx[unit])]
        if col.ndim == 3:  # conv2d filter: (kh, kw, cin)
            img = mosaic(col)
            lim = float(np.abs(col).max()) or 1.0
            self.kernel_img.setImage(img, levels=(-lim, lim), autoLevels=False)
            self.kernel_img.setRect(QRectF(0, 0, img.shape[1], img.shape[0]))
            self.weights.addItem(self.kernel_img)
            self.weights.hideAxis("left")
            self.weights.hideAxis("bottom")
            self.weights.invertY(True)
            self.weights.setAspectLocked(True)
            self.weights.setTitle(
                f"filter {int(idx[unit])} of '{src}' ({min(col.shape[2], 64)}/{col.shape[2]} inputs)",
                size="9pt",
            )
            self.weights.autoRange()
        else:
            flat = col.reshape(-1)
            self.weights.showAxis("left")
            self.weights.showAxis("bottom")
            self.weights.invertY(False)
            self.weights.setAspectLocked(False)
            self.curve.setData(np.arange(len(flat)), flat)
            self.weights.addItem(self.curve)
            what = (  # ProjectedAttention.unit_kernel: the head's columns, then its output rows
                "query, value and output-projection weights"
                if s.trace.inner(src)
                else "incoming weights"
            )
            self.weights.setTitle(f"{what} ({len(flat):,})", size="9pt")
            self.weights.autoRange()

    def _draw_upstream(self, path, unit) -> None:
        s = self.session
        k = s.kernel(path)
        if k is None:
            self.upstream.setText("")
            return
        try:
            from neuronviz.api import unit_top_inputs, upstream_unit

            top = unit_top_inputs(s.trace, k[0], int(k[2][unit]), k=6)
        except Exception:  # noqa: BLE001 - optional detail
            self.upstream.setText("")
            return
        items = []
        for i, w in top:
            up = upstream_unit(s.trace, k[0], i)
            where = f"{up[0]} #{up[1]}" if up else f"input {i}"
            items.append(f"{where} <span style='color:gray'>(ch {i})</span>: {w:+.3f}")
        self.upstream.setText("<b>Strongest inputs</b><br>" + "<br>".join(items))

    def _request_saliency(self) -> None:
        s, f = self.session, self.state.focus
        if f is None or self.tasks is None or s.dataset is None or not is_image_model(s.model):
            self.sample_img.clear()
            self.sal_img.clear()
            image = s.model is None or is_image_model(s.model)
            self.sample_label.setText("" if image else "no saliency map: the input is not an image")
            self.sal_label.setText("")
            return
        path, unit = f
        act = s.act(path)
        if act is not None and bool(act.dead[unit]):
            self.saliency_for = (path, unit)
            self.sample_img.clear()
            self.sal_img.clear()
            self.sample_label.setText("dead: never active")
            self.sal_label.setText("on the validation data")
            return
        i = int(np.argmax(act.per_sample[:, unit])) if act is not None else 0
        x = s.dataset.x[i : i + 1]
        model, trace = s.model, s.trace
        head = trace is not None and trace.inner(path)

        def job():  # a head's saliency is that of its output norm (api.saliency)
            from neuronviz.api import saliency

            return saliency(model, path, unit, x, trace=trace)

        def got(sal):
            if self.state.focus != (path, unit):
                return
            self.saliency_for = (path, unit)
            img = np.asarray(x[0], np.float32)
            self.sample_img.setImage(img[..., 0] if img.shape[-1] == 1 else img, autoLevels=True)
            m = np.abs(np.asarray(sal[0], np.float32)).max(axis=-1)
            self.sal_img.setImage(m, levels=(0.0, float(m.max()) or 1.0), autoLevels=False)
            self.sample_vb.autoRange(padding=0)
            self.sal_vb.autoRange(padding=0)
            self.sample_label.setText(f"top sample #{i}")
            self.sal_label.setText("saliency of its output norm" if head else "saliency")

        self.tasks.submit("saliency", job, got)

    def cleanup(self) -> None:
        self._sal_timer.stop()
        super().cleanup()
