"""Entry points: `run_app` (the `neuronviz [MODEL] [--data DATA] [--demo]` command) and
`create_main_window` (also used by tests and scripts)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from neuronviz.gui import theme

ORG, APP = "neuronviz", "neuronviz"
_GC = None


def app_settings() -> QSettings:
    """The app's settings; NEURONVIZ_SETTINGS=path.ini redirects them (tests, scripts)."""
    path = os.environ.get("NEURONVIZ_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORG, APP)


def ensure_app(argv=None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else [sys.argv[0]])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationDisplayName("neuronviz")
    if not os.environ.get("NEURONVIZ_NATIVE_STYLE"):
        app.setStyle("Fusion")  # Fusion follows the system's light/dark palette
    theme.apply_theme()
    global _GC
    if _GC is None:
        # Collect cycles only on the UI thread: a collection triggered in a worker could
        # destroy Qt objects there and crash (pyqtgraph's recipe).
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _GC = GarbageCollector(interval=0.5)
    return app


def create_main_window(
    model=None,
    data=None,
    demo: bool = False,
    unsafe: bool = False,
    *,
    settings: QSettings | None = None,
    session=None,
    layer: str | None = None,
):
    """A MainWindow (not shown) that starts opening `model` / `data` / the demo."""
    ensure_app()
    from neuronviz.gui.main_window import MainWindow

    win = MainWindow(
        settings=settings if settings is not None else app_settings(),
        session=session,
        unsafe=unsafe,
    )
    if demo:
        from neuronviz.resources import demo_model

        win.open_model(demo_model(), data=data or "demo", layer=layer or "dense")
    elif model is not None:
        win.open_model(Path(model), data=data, layer=layer)
    elif data is not None:
        win.show_message(
            "error", "Open a model before opening validation data (neuronviz MODEL --data DATA)."
        )
    return win


class _FirstPaint(QObject):
    """Reports the time to the first painted window (NEURONVIZ_REPORT_FIRST_PAINT)."""

    def __init__(self, t0: float, quit_after: bool):
        super().__init__()
        self.t0, self.quit_after, self.done = t0, quit_after, False

    def eventFilter(self, obj, ev) -> bool:
        if (
            ev.type() == QEvent.Type.Paint
            and not self.done
            and getattr(obj, "isWindow", None) is not None
        ):
            self.done = True
            print(f"first-paint-seconds {time.time() - self.t0:.3f}", flush=True)
            if self.quit_after:
                QTimer.singleShot(0, QApplication.instance().quit)
        return False


def run_app(model=None, data=None, demo: bool = False, unsafe: bool = False) -> int:
    """Run the desktop app until its window closes; returns the exit code."""
    app = ensure_app(sys.argv)
    win = create_main_window(model=model, data=data, demo=demo, unsafe=unsafe)
    watcher = None
    if os.environ.get("NEURONVIZ_REPORT_FIRST_PAINT"):
        t0 = float(os.environ.get("NEURONVIZ_T0", time.time()))
        watcher = _FirstPaint(t0, os.environ.get("NEURONVIZ_REPORT_FIRST_PAINT") == "quit")
        app.installEventFilter(watcher)
    win.show()
    try:
        return int(app.exec())
    finally:
        win.cleanup()
        del watcher
