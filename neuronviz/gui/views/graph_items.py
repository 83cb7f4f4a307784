"""The graph view's scene items: a layer node (level of detail: plain boxes when zoomed
out), a nested model's box, and the canvas that pans and zooms."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from neuronviz.gui import theme
from neuronviz.gui.graph_layout import NODE_H, NODE_W
from neuronviz.gui.views.graph_overlays import text_colour

if TYPE_CHECKING:
    from neuronviz.gui.views.graph_view import GraphView

TEXT_LOD = 0.45  # below this zoom, nodes are plain boxes (no text)
MEMBER, CONSUMER, THROUGH, CURRENT = "member", "consumer", "through", "current"
MARK_PENS = {
    CURRENT: (QColor(20, 20, 20), 3.5, Qt.PenStyle.SolidLine),
    MEMBER: (theme.SELECTED, 3.0, Qt.PenStyle.SolidLine),
    CONSUMER: (QColor(40, 110, 220), 2.5, Qt.PenStyle.DashLine),
    THROUGH: (theme.COUPLED, 2.0, Qt.PenStyle.DotLine),
}


class NodeItem(QGraphicsItem):
    """One layer (or a collapsed nested model): kind, width before -> after, a bar of
    how much of it is selected. Paints plain boxes when zoomed out."""

    def __init__(self, view: GraphView, node, pos, fill: QColor, fm: QFontMetrics):
        super().__init__()
        self.view, self.node = view, node
        self.setPos(QPointF(*pos))
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setZValue(2)
        self.fill = fill
        self.after: int | None = node.units
        self.fraction = 0.0
        self.mark: str | None = None
        name = node.id.rsplit("/", 1)[-1] if node.kind != "Model" else f"▸ {node.id}"
        self.title = fm.elidedText(name, Qt.TextElideMode.ElideMiddle, int(NODE_W - 10))
        self.setToolTip(node.id)

    def boundingRect(self) -> QRectF:
        return QRectF(-NODE_W / 2 - 3, -NODE_H / 2 - 3, NODE_W + 6, NODE_H + 6)

    def width_text(self) -> str:
        n = self.node.units
        if n is None:
            return self.node.kind
        if self.after is not None and self.after != n:
            return f"{self.node.kind}  {n} → {self.after}"
        return f"{self.node.kind}  {n}"

    def paint(self, p: QPainter, option, widget=None) -> None:
        lod = option.levelOfDetailFromTransform(p.worldTransform())
        rect = QRectF(-NODE_W / 2, -NODE_H / 2, NODE_W, NODE_H)
        if self.mark:
            colour, width, style = MARK_PENS[self.mark]
            p.setPen(QPen(colour, width, style))
        else:
            p.setPen(QPen(theme.DEAD, 1.0))
        p.setBrush(QBrush(self.fill))
        if lod < TEXT_LOD:
            p.drawRect(rect)
        else:
            p.drawRoundedRect(rect, 5, 5)
        if self.fraction > 0:
            bar = QRectF(rect.left() + 3, rect.bottom() - 7, (NODE_W - 6) * self.fraction, 4)
            p.fillRect(bar, theme.SELECTED)
        if lod < TEXT_LOD:
            return
        p.setPen(text_colour(self.fill))
        p.setFont(self.view.font_bold)
        p.drawText(QRectF(rect.left() + 5, rect.top() + 3, NODE_W - 10, 18), 0, self.title)
        p.setFont(self.view.font)
        p.drawText(QRectF(rect.left() + 5, rect.top() + 21, NODE_W - 10, 16), 0, self.width_text())

    def hoverEnterEvent(self, ev) -> None:
        self.view.hover(self.node.id)

    def hoverLeaveEvent(self, ev) -> None:
        self.view.hover(None)

    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.view.clicked(self.node.id)
        else:
            ev.ignore()


class BoxItem(QGraphicsRectItem):
    """An expanded nested model; a click on its title bar collapses it."""

    def __init__(self, view: GraphView, path: str, rect):
        x0, y0, x1, y1 = rect
        super().__init__(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.view, self.path = view, path
        self.setPen(QPen(theme.DEAD, 1.2, Qt.PenStyle.DashLine))
        self.setBrush(QBrush(QColor(128, 128, 128, 22)))
        self.setZValue(0)
        label = QGraphicsSimpleTextItem(f"▾ {path}", self)
        label.setFont(view.font_bold)
        label.setBrush(QBrush(plot_fg()))
        label.setPos(x0 + 6, y0 + 2)
        self.setToolTip(f"Nested model '{path}': click its title to collapse it")

    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton and ev.pos().y() < self.rect().top() + 20:
            ev.accept()
            self.view.toggle_box(self.path)
        else:
            ev.ignore()


def plot_fg() -> QColor:
    return theme.plot_colors()[1]


class GraphCanvas(QGraphicsView):
    """Pan by dragging the background, zoom with the wheel around the mouse."""

    def __init__(self, scene):
        super().__init__(scene)
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing, True)

    def wheelEvent(self, ev) -> None:
        factor = 1.0015 ** ev.angleDelta().y()
        zoom = self.transform().m11() * factor
        if 0.02 <= zoom <= 4.0:
            self.scale(factor, factor)

    def zoom(self) -> float:
        return self.transform().m11()
