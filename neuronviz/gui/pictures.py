"""Pictures of any view as PNG or SVG (by the file's suffix).

pyqtgraph plots: PNG through pyqtgraph's ImageExporter (twice the screen size), SVG
through Qt's QSvgGenerator (vector); the graph view's scene is drawn whole, not just what
is scrolled into view; any other widget is painted as it is on screen."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401 - registers the exporters
from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsView, QWidget

from neuronviz.errors import NeuronvizError
from neuronviz.gui import theme

MAX_SIDE = 8000  # pixels: a whole deep-model graph is scaled down to fit

FILTER = "PNG image (*.png);;SVG drawing (*.svg)"


def target_of(widget: QWidget) -> QWidget:
    """What to draw: the widget if it is a graphics view, else its biggest visible one."""
    if isinstance(widget, QGraphicsView):
        return widget
    views = [v for v in widget.findChildren(QGraphicsView) if v.isVisibleTo(widget)]
    if not views:
        return widget
    return max(views, key=lambda v: v.width() * v.height())


def save_picture(widget: QWidget, path) -> Path:
    """Write a picture of `widget` (a view, a plot, the graph) to `path` (.png or .svg)."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".png", ".svg"):
        raise NeuronvizError(
            f"Expected a picture file ending in .png or .svg. Received: '{path.name}'"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    target = target_of(widget)
    if isinstance(target, pg.GraphicsView):
        if kind == ".png":
            ex = pg.exporters.ImageExporter(target.scene())
            ex.parameters()["width"] = max(2 * target.width(), 400)
            ex.export(str(path))
        else:  # pyqtgraph 0.13's SVGExporter fails on Qt 6.7+ paths: Qt's own SVG
            size = target.viewport().size()
            _paint(path, kind, size, lambda p: target.render(p, source=target.viewport().rect()))
    elif isinstance(target, QGraphicsView):
        _scene(target, path, kind)
    else:
        _paint(path, kind, target.size(), lambda p: target.render(p))
    return path


def _scene(view: QGraphicsView, path: Path, kind: str) -> None:
    rect = view.scene().itemsBoundingRect().adjusted(-20, -20, 20, 20)
    scale = min(2.0, MAX_SIDE / max(rect.width(), rect.height(), 1.0))  # 2x, as plots
    size = QSize(max(1, int(rect.width() * scale)), max(1, int(rect.height() * scale)))
    _paint(
        path,
        kind,
        size,
        lambda p: view.scene().render(p, QRectF(0, 0, size.width(), size.height()), rect),
    )


def _paint(path: Path, kind: str, size: QSize, draw) -> None:
    if kind == ".svg":
        from PySide6.QtSvg import QSvgGenerator

        gen = QSvgGenerator()
        gen.setFileName(str(path))
        gen.setSize(size)
        gen.setViewBox(QRectF(0, 0, size.width(), size.height()))
        gen.setTitle(path.stem)
        p = QPainter(gen)
    else:
        img = QImage(size, QImage.Format.Format_ARGB32)
        img.fill(theme.plot_colors()[0])
        p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    try:
        draw(p)
    finally:
        p.end()
    if kind == ".png" and not img.save(str(path)):
        raise NeuronvizError(f"Could not write the picture '{path}'.")


def ask_save_picture(widget: QWidget, parent, name: str, state) -> Path | None:
    """Ask where to save a picture of `widget`; report the outcome through `state`."""
    from PySide6.QtWidgets import QFileDialog

    fn, _ = QFileDialog.getSaveFileName(parent, "Save a picture", f"{name}.png", FILTER)
    if not fn:
        return None
    try:
        out = save_picture(widget, fn)
    except Exception as e:  # noqa: BLE001 - one line for the user
        state.error(f"Could not save the picture: {e}")
        return None
    state.info(f"Saved a picture of the {name} view to {out.name}.")
    return out
