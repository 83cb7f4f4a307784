"""Helpers for driving the real widgets from tests (pytest-qt's qtbot): waits, real
clicks and drags, and where a unit sits in a view."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

TIMEOUT_MS = 120_000


def scene_pos(view, item, point: QPointF):
    """Viewport coordinates of `point` (item coordinates) in a pyqtgraph view."""
    return view.mapFromScene(item.mapToScene(point))


def click_item(qtbot, view, item, point: QPointF, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A real mouse click on `item` at `point` (item coordinates)."""
    QApplication.processEvents()
    qtbot.mouseClick(
        view.viewport(), Qt.MouseButton.LeftButton, modifier, pos=scene_pos(view, item, point)
    )
    QApplication.processEvents()


def wait_model(qtbot, win, timeout: int = TIMEOUT_MS) -> None:
    qtbot.waitUntil(
        lambda: win.state.session.model is not None and not win.tasks.is_running("open"),
        timeout=timeout,
    )


def wait_ready(qtbot, win, timeout: int = TIMEOUT_MS) -> None:
    """Until the model, data, preview and activation statistics are all there."""
    s = win.state.session
    qtbot.waitUntil(
        lambda: (
            s.model is not None
            and s.previewer is not None
            and s.act_stats is not None
            and s.baseline is not None
        ),
        timeout=timeout,
    )


def wait_score(qtbot, win, timeout: int = TIMEOUT_MS) -> None:
    """Until the preview has the score of the current selection."""
    s = win.state.session
    qtbot.waitUntil(lambda: s.score_for() is not None, timeout=timeout)


def wait_idle(qtbot, win, timeout: int = TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: not win.tasks.running_names(), timeout=timeout)


def drag(qtbot, view, start, end, steps: int = 8) -> None:
    """A real left-button drag in a QGraphicsView's viewport (viewport coordinates)."""
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QMouseEvent

    vp = view.viewport()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    mods = Qt.KeyboardModifier.NoModifier

    def send(kind, pos, button, buttons):
        p = QPointF(pos)
        ev = QMouseEvent(
            kind, p, QPointF(vp.mapToGlobal(QPoint(int(p.x()), int(p.y())))), button, buttons, mods
        )
        QApplication.sendEvent(vp, ev)
        QApplication.processEvents()

    send(QMouseEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        t = i / steps
        pos = QPointF(start.x() + (end.x() - start.x()) * t, start.y() + (end.y() - start.y()) * t)
        send(QMouseEvent.Type.MouseMove, pos, none, left)
        qtbot.wait(5)
    send(QMouseEvent.Type.MouseButtonRelease, end, left, none)


# ---- where a unit sits in a view (item coordinates) ---------------------------------
def bar_center(norms, unit: int) -> QPointF:
    """The middle of a unit's bar in the Norms view."""
    import numpy as np

    i = int(np.flatnonzero(norms.bars.order == unit)[0])
    h = float(norms.bars.opts["height"][i])
    return QPointF(float(i), max(h / 2, norms.bars._top * 0.02))


def row_center(heatmap, unit: int) -> QPointF:
    """The middle of a unit's row in the Activations heatmap."""
    return QPointF(heatmap.ncols / 2, unit + 0.5)


def point_pos(sensitivity, layer: str, i: int) -> QPointF:
    """The i-th point of a layer's curve in the Sensitivity view."""
    pts = sensitivity.points[layer].points()[i].pos()
    return QPointF(pts.x(), pts.y())


def after_accuracy_text(preview) -> str:
    """The accuracy the preview panel shows for the selection."""
    return preview.labels["Accuracy"][1].text()
