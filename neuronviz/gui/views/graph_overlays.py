"""Node colours of the graph view: by group, sensitivity, importance or MACs share."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtGui import QColor

from neuronviz.gui import theme

OVERLAYS = {
    "group": "Coupled group",
    "sensitivity": "Sensitivity (accuracy drop)",
    "importance": "Importance (median unit L2 norm)",
    "macs": "MACs share",
}


def neutral() -> QColor:
    return QColor(70, 72, 76) if theme.is_dark() else QColor(236, 236, 236)


def overlay_values(session, overlay: str) -> tuple[dict[str, float], str]:
    """Layer path -> a value in [0, 1] for the continuous overlays, and a legend line."""
    s = session
    if overlay == "macs":
        total = max(s.before.macs, 1)
        v = {p: m / total for p, (_, m) in s.before.layers.items() if m}
        top = max(v.values(), default=0.0)
        return (
            {p: math.sqrt(x / top) for p, x in v.items()} if top else {},
            f"MACs share per layer (largest: {100 * top:.1f}% of the model)",
        )
    if overlay == "sensitivity":
        res = s.sweep
        if res is None:
            return {}, "Run the sensitivity sweep to colour layers by it."
        drops = {}
        for c in res.curves:
            acc = [a for a in c.accuracy if math.isfinite(a)]
            drop = float(np.mean([res.baseline.accuracy - a for a in acc])) if acc else 0.0
            for m in c.members:
                drops[m] = max(drop, 0.0)
        top = max(drops.values(), default=0.0) or 1.0
        return (
            {p: d / top for p, d in drops.items()},
            f"Mean accuracy drop over the sweep (darkest: {100 * top:.1f} pt)",
        )
    if overlay == "importance":
        med = {}
        for p in s.trace.layer_units:
            n = s.norms(p)
            if n is not None and len(n):
                med[p] = float(np.median(n))
        if not med:
            return {}, "No weight statistics for this model."
        ranks = np.argsort(np.argsort(list(med.values())))
        scale = max(len(med) - 1, 1)
        return (
            {p: float(r) / scale for p, r in zip(med, ranks, strict=True)},
            "Median unit L2 norm, ranked across layers (bright: large)",
        )
    return {}, "Colour: coupled group (grey: units that cannot be removed)"


def node_colours(session, overlay: str) -> tuple[dict[str, QColor], str]:
    """Layer path -> fill colour (layers not listed are neutral), and a legend line."""
    if overlay == "group":
        out = {}
        for p in session.trace.layer_units:
            g = session.group(p)
            if g is None:
                continue
            if g.blocked:
                out[p] = QColor(theme.DEAD).lighter(115)
            else:
                c = QColor(theme.CURVES[g.index % len(theme.CURVES)])
                out[p] = c.lighter(150) if not theme.is_dark() else c.darker(130)
        return out, overlay_values(session, overlay)[1]
    values, legend = overlay_values(session, overlay)
    cmap = theme.viridis() if overlay != "sensitivity" else _heat()
    v = np.array(list(values.values()), float)
    if overlay == "sensitivity":
        v = 1.0 - 0.8 * v  # a bigger drop is darker
    cols = cmap.map(v, mode="qcolor") if values else []
    return dict(zip(values, cols, strict=True)), legend


def _heat():
    import pyqtgraph as pg

    return pg.colormap.get("CET-L3")  # black-red-yellow: bigger drop is darker


def text_colour(fill: QColor) -> QColor:
    luma = 0.299 * fill.red() + 0.587 * fill.green() + 0.114 * fill.blue()
    return QColor(20, 20, 20) if luma > 140 else QColor(240, 240, 240)
