"""The main window: start screen or workspace (navigator | per-layer views | preview and
unit detail), menus, status bar, drag and drop, remembered layout."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from neuronviz.gui import files, theme
from neuronviz.gui.bench import Workbench
from neuronviz.gui.menus import build_menus
from neuronviz.gui.navigator import Navigator
from neuronviz.gui.pipeline import Pipeline
from neuronviz.gui.plan_editor import PlanEditor
from neuronviz.gui.preview_panel import PreviewPanel
from neuronviz.gui.state import State
from neuronviz.gui.views.graph_view import GraphView
from neuronviz.gui.views.head_map import HeadMapView
from neuronviz.gui.views.heatmap import HeatmapView
from neuronviz.gui.views.importance_view import ImportanceView
from neuronviz.gui.views.norms import NormView
from neuronviz.gui.views.sensitivity_view import SensitivityView
from neuronviz.gui.views.stats_view import StatsView
from neuronviz.gui.views.unit_view import UnitView
from neuronviz.gui.views.widths_view import WidthsView
from neuronviz.gui.widgets import Banner, StartScreen, TaskProgress
from neuronviz.gui.workers import Tasks
from neuronviz.session import Session

TASK_LABELS = {
    "open": "Opening…",
    "analysis": "Analysing…",
    "sensitivity": "Sensitivity sweep…",
    "export": "Exporting…",
    "taylor": "Taylor importance…",
    "graph": "Laying out the graph…",
    "heads": "Measuring attention heads…",
    "budget": "Planning to a budget…",
    "speed": "Measuring speed…",
    "refine": "Refining the selection…",
}


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: QSettings | None = None,
        session: Session | None = None,
        unsafe: bool = False,
    ):
        super().__init__()
        self.setWindowTitle("neuronviz")
        self.setObjectName("neuronviz-main")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("neuronviz", "neuronviz")
        self.unsafe = unsafe
        self.state = State(session)
        self.tasks = Tasks(self)
        self.selection = PlanEditor(self.state, self)
        self.pipeline = Pipeline(self.state, self.tasks, self)
        self.bench = Workbench(
            self.state,
            self.tasks,
            self.selection,
            self,
            self.settings,
            self.open_model,
            self.open_data,
            self.statusBar().showMessage,
            self.refresh_recent,
        )
        self._build()
        self.menus = build_menus(self)
        self._connect()
        self.resize(1280, 800)
        self._restore_layout()
        self.refresh_recent()
        if self.state.session.model is not None:
            self.state.replay()
            self.pipeline.schedule_preview()
        self._on_model()

    # ---- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        st, sel = self.state, self.selection
        self.start = StartScreen()
        self.navigator = Navigator(st)
        self.norms = NormView(st, sel)
        self.heatmap = HeatmapView(st, sel)
        self.stats = StatsView(st, sel)
        self.sensitivity = SensitivityView(st, sel, self.tasks)
        self.unit = UnitView(st, sel, self.tasks)
        self.preview = PreviewPanel(st, self.tasks)
        self.widths = WidthsView(st, sel)
        self.importance = ImportanceView(st, sel)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for view, name in (
            (self.norms, "Norms"),
            (self.heatmap, "Activations"),
            (self.stats, "Statistics"),
            (self.sensitivity, "Sensitivity"),
            (self.widths, "Widths"),
            (self.importance, "Importance"),
        ):
            self.tabs.addTab(view, name)
        self.banner = Banner()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start)
        self.stack.addWidget(self.tabs)
        self.workspace = self.tabs
        central = QWidget()
        col = QVBoxLayout(central)
        col.setContentsMargins(4, 4, 4, 0)
        col.addWidget(self.banner)
        col.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.nav_dock = self._dock(
            "Layers", "layers", self.navigator, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        right = QWidget()
        rc = QVBoxLayout(right)
        rc.setContentsMargins(0, 0, 0, 0)
        rc.addWidget(self.preview)
        rc.addWidget(self.unit, 1)
        self.side_dock = self._dock(
            "Preview and unit", "preview", right, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.graph = GraphView(st, self.tasks)
        self.graph_dock = self._dock(
            "Graph", "graph", self.graph, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.splitDockWidget(self.nav_dock, self.graph_dock, Qt.Orientation.Vertical)
        self.head_map = HeadMapView(st, sel, self.tasks)
        self.head_dock = self._dock(
            "Head map", "head_map", self.head_map, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.head_dock.setFeatures(
            self.head_dock.features() | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.head_dock.hide()  # shown for models with heads; View ▸ Head Map (Ctrl+Shift+H)
        self.progress = TaskProgress()
        self.statusBar().addPermanentWidget(self.progress)
        self.views = [self.norms, self.heatmap, self.stats, self.sensitivity, self.unit]
        self.views += [self.widths, self.importance, self.head_map]

    def _dock(self, title, name, widget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        d.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, d)
        return d

    def _connect(self) -> None:
        st = self.state
        st.modelChanged.connect(self._on_model)
        st.message.connect(self.show_message)
        st.layerChanged.connect(self._update_title)
        st.planChanged.connect(self._update_title)
        self.start.openDemo.connect(self.open_demo)
        self.start.openModel.connect(lambda: files.ask_open_model(self.bench))
        self.start.openRecent.connect(lambda p: self.open_model(p))
        self.pipeline.failed.connect(self._on_failed)
        self.pipeline.opened.connect(self._on_opened)
        self.tasks.progress.connect(
            lambda name, f, text: self.progress.update_task(
                name, f, text or TASK_LABELS.get(name, name)
            )
        )
        self.tasks.started.connect(self._on_task_started)
        self.tasks.finished.connect(self._on_task_finished)
        self.progress.cancel.connect(self.cancel_task)
        self.selection.stack.indexChanged.connect(lambda *_: self._update_title())
        QGuiApplication.styleHints().colorSchemeChanged.connect(self.restyle)

    def restyle(self, *args) -> None:
        """Follow the system's light or dark scheme (Fusion updates the widgets; the
        plots get matching backgrounds and axes)."""
        import pyqtgraph as pg

        theme.apply_theme()
        for w in self.findChildren(pg.PlotWidget):
            theme.style_plot(w)
        for w in self.findChildren(pg.GraphicsLayoutWidget):
            w.setBackground(theme.plot_colors()[0])

    def changeEvent(self, ev) -> None:
        super().changeEvent(ev)
        if ev.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange):
            self.restyle()

    # ---- opening ----------------------------------------------------------------------
    def open_model(self, path, data=None, layer: str | None = None) -> None:
        """Open a model (in a worker); then optional data and a layer to show."""
        self.banner.dismiss_errors()
        self.start.set_busy(f"Opening {Path(str(path)).name}…")
        self.statusBar().showMessage(f"Opening {path}…")

        def then():
            files.remember(self.bench, "models", str(path))
            if layer and layer in self.state.session.trace.layer_units:
                self.state.session.set_layer(layer)
            if data is not None:
                self.open_data(data)

        self.pipeline.open_model(path, unsafe=self.unsafe, then=then)

    def open_data(self, source) -> None:
        self.banner.dismiss_errors()
        self.statusBar().showMessage(f"Opening data {source}…")
        self.pipeline.open_data(
            source,
            then=lambda: (
                files.remember(self.bench, "data", str(source)) if source != "demo" else None
            ),
        )

    def open_demo(self) -> None:
        from neuronviz.resources import demo_model

        self.open_model(demo_model(), data="demo", layer="dense")

    def _on_opened(self, what: str) -> None:
        s = self.state.session
        if what == "model":
            self.statusBar().showMessage(
                f"Opened {s.model_path.name if s.model_path else s.model.name}: "
                f"{len(s.trace.graph.layers)} layers, {len(s.trace.units.groups)} unit groups",
                8000,
            )
        else:
            self.statusBar().showMessage(f"Opened {s.dataset.n:,} validation samples", 8000)
        self.refresh_recent()

    def _on_failed(self, what: str, msg: str) -> None:
        self.start.set_busy(None)
        self.statusBar().clearMessage()
        prefix = "Could not open the model" if what == "model" else "Could not open the data"
        self.show_message("error", f"{prefix}: {msg}")

    def show_message(self, level: str, text: str) -> None:
        self.banner.show_message(level, text)
        self.statusBar().showMessage(text, 10000)

    def _on_model(self) -> None:
        has = self.state.session.model is not None
        self.stack.setCurrentWidget(self.workspace if has else self.start)
        self.nav_dock.setVisible(has)
        self.side_dock.setVisible(has)
        self.graph_dock.setVisible(has)
        if has and self.state.session.head_layers():
            self.show_head_map()  # a model with attention heads: its heads at a glance
        else:
            self.head_dock.hide()
        if has and not self._docks_sized:  # first time the workspace shows, no saved layout
            self._docks_sized = True
            QTimer.singleShot(
                0,
                lambda: (
                    self.resizeDocks(
                        [self.nav_dock, self.side_dock], [330, 360], Qt.Orientation.Horizontal
                    ),
                    self.resizeDocks(
                        [self.nav_dock, self.graph_dock], [2, 3], Qt.Orientation.Vertical
                    ),
                ),
            )
        self.start.set_busy(None)
        for a in self.menus.needs_model:
            a.setEnabled(has)
        self._update_title()

    def show_head_map(self) -> None:
        """Show the head map dock (attention layers x heads) and bring it to the front."""
        self.head_dock.show()
        self.head_dock.raise_()

    def _update_title(self) -> None:
        if getattr(self, "_cleaned", False):
            return
        s = self.state.session
        if s.model is None:
            self.setWindowTitle("neuronviz")
            return
        name = s.model_path.name if s.model_path else s.model.name
        dirty = "*" if not self.selection.stack.isClean() else ""
        self.setWindowTitle(f"{name}{dirty} — {s.layer or ''} — neuronviz")

    # ---- tasks ------------------------------------------------------------------------
    def _on_task_started(self, name: str) -> None:
        if name in TASK_LABELS:
            self.progress.update_task(name, 0.0, TASK_LABELS[name])

    def _on_task_finished(self, name: str, outcome: str) -> None:
        self.progress.done(name)
        if outcome == "cancelled" and name in TASK_LABELS:
            self.statusBar().showMessage(f"{TASK_LABELS[name].rstrip('…')} cancelled.", 6000)
            if name == "open":
                self.start.set_busy(None)

    def cancel_task(self, name: str | None = None) -> None:
        names = (
            [name]
            if name
            else [
                n
                for n in (
                    "analysis",
                    "sensitivity",
                    "export",
                    "taylor",
                    "heads",
                    "open",
                    "budget",
                    "speed",
                    "refine",
                )
                if self.tasks.is_running(n)
            ]
        )
        for n in names:
            self.tasks.cancel(n)

    # ---- drag and drop ----------------------------------------------------------------
    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            files.open_any(self.bench, paths)
            ev.acceptProposedAction()

    # ---- settings ---------------------------------------------------------------------
    def refresh_recent(self) -> None:
        self.start.set_recent(files.recent(self.settings, "models"))

    def _restore_layout(self) -> None:
        geo = self.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        state = self.settings.value("window/state")
        self._docks_sized = state is not None and self.restoreState(state)

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def closeEvent(self, ev) -> None:
        self.save_layout()
        self.cleanup()
        super().closeEvent(ev)

    def cleanup(self) -> None:
        """Stop workers and disconnect every view (idempotent)."""
        if getattr(self, "_cleaned", False):
            return
        self._cleaned = True
        self.tasks.cleanup()
        for v in self.views:
            v.cleanup()
        self.navigator.cleanup()
        self.graph.cleanup()
        self.preview.cleanup()
        self.state.cleanup()
