"""Schedules the Session's work in workers: opening files, the first pass over the data
(preview cache, activation statistics), and the debounced live preview.

The Session makes the jobs and owns their results; this class only decides when and in
which worker they run, and hands each result back to the Session on the UI thread."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from neuronviz.gui.state import State
from neuronviz.gui.workers import Tasks, report
from neuronviz.session import load_model_parts

DEBOUNCE_MS = 100


class Pipeline(QObject):
    opened = Signal(str)  # "model" or "data", after a successful open
    failed = Signal(str, str)  # what ("model", "data"), one-line message
    analysisDone = Signal()

    def __init__(self, state: State, tasks: Tasks, parent=None):
        super().__init__(parent)
        self.state, self.tasks = state, tasks
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._submit_preview)
        self._last_submit = 0.0
        self._after_model = None
        self.stats_samples: int | None = None
        state.planChanged.connect(self.schedule_preview)
        state.previewerChanged.connect(self.schedule_preview)

    @property
    def session(self):
        return self.state.session

    # ---- opening ----------------------------------------------------------------------
    def open_model(self, path, unsafe: bool = False, then=None) -> None:
        """Load a model in a worker; `then()` runs on the UI thread after it is set."""
        path = str(path)
        self.tasks.cancel("analysis")

        def done(parts):
            self.session.set_model(parts)
            self.opened.emit("model")
            if self.session.dataset is not None:
                self.analyze()
            if then is not None:
                then()

        self.tasks.submit(
            "open",
            lambda: load_model_parts(path, unsafe),
            done,
            lambda msg: self.failed.emit("model", msg),
        )

    def open_data(self, source, then=None) -> None:
        source = str(source)
        if self.session.model is None:
            self.failed.emit("data", "Open a model before opening validation data.")
            return
        self.tasks.cancel("analysis")

        def done(ds):
            self.session.set_data(ds, source)
            self.opened.emit("data")
            self.analyze()
            if then is not None:
                then()

        self.tasks.submit(
            "open",
            lambda: self.session.load_data_parts(source),
            done,
            lambda msg: self.failed.emit("data", msg),
        )

    # ---- the first pass over the data -------------------------------------------------
    def analyze(self) -> None:
        """Warm the previewer (baseline score), then compute activation statistics. One
        cancellable task with progress."""
        s = self.session
        if s.model is None or s.dataset is None:
            return
        job = s.analysis_job(self.stats_samples, report)

        def got(result):
            s.set_analysis(result)
            self.analysisDone.emit()

        self.tasks.submit(
            "analysis", job, got, lambda msg: self.state.error(f"Analysis failed: {msg}")
        )

    # ---- live preview -----------------------------------------------------------------
    def schedule_preview(self) -> None:
        """Leading-edge debounce: an isolated change is scored at once; a burst of
        changes is scored once, DEBOUNCE_MS after the last."""
        if self.session.previewer is None:
            return
        now = time.monotonic()
        if not self.tasks.is_running("preview") and now - self._last_submit > DEBOUNCE_MS / 1000:
            self._debounce.stop()
            self._submit_preview()
        else:
            self._debounce.start()

    def _submit_preview(self) -> None:
        s = self.session
        if s.previewer is None:
            return
        self._last_submit = time.monotonic()
        plan, previewer, job = s.preview_job()
        self.tasks.submit(
            "preview",
            job,
            lambda score: s.set_score(plan, score, previewer),
            lambda msg: self.state.error(f"Preview failed: {msg}"),
        )
