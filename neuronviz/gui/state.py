"""A thin Qt wrapper over the headless Session: its events as Qt signals, plus the few
pieces of view state shared between views (the focused unit, messages)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from neuronviz.session import EVENTS, Session


class State(QObject):
    modelChanged = Signal()
    dataChanged = Signal()
    weightStatsChanged = Signal()
    actStatsChanged = Signal()
    previewerChanged = Signal()
    planChanged = Signal()
    layerChanged = Signal()
    sweepChanged = Signal()
    focusChanged = Signal(str, int)  # layer, unit (-1: none); hover or click
    scoreChanged = Signal()  # the preview's score for the current plan arrived
    message = Signal(str, str)  # level ("error", "warning", "info"), one line

    def __init__(self, session: Session | None = None, parent=None):
        super().__init__(parent)
        self.session = session or Session()
        self.focus: tuple[str, int] | None = None
        self.baseline = None  # Score of the unmasked model
        self.score = None  # Score of the current plan (None while computing)
        self.score_plan = None
        self._signals = {
            "model": self.modelChanged,
            "data": self.dataChanged,
            "weight_stats": self.weightStatsChanged,
            "act_stats": self.actStatsChanged,
            "previewer": self.previewerChanged,
            "plan": self.planChanged,
            "layer": self.layerChanged,
            "sweep": self.sweepChanged,
        }
        assert set(self._signals) == set(EVENTS)
        for event, sig in self._signals.items():
            self.session.subscribe(event, sig.emit)
        self.modelChanged.connect(self._reset_scores)
        self.dataChanged.connect(self._reset_scores)

    def replay(self) -> None:
        """Emit every state signal once (for views attached to an already loaded session)."""
        for sig in self._signals.values():
            sig.emit()
        if self.session.previewer is not None and self.baseline is None:
            self.baseline = self.session.previewer.baseline()

    def _reset_scores(self) -> None:
        self.baseline = self.score = self.score_plan = None
        self.focus = None

    def set_focus(self, layer: str | None, unit: int) -> None:
        new = None if layer is None or unit < 0 else (layer, int(unit))
        if new != self.focus:
            self.focus = new
            self.focusChanged.emit(layer or "", int(unit) if new else -1)

    def set_score(self, plan, score) -> None:
        self.score_plan, self.score = plan, score
        self.scoreChanged.emit()

    def error(self, text: str) -> None:
        self.message.emit("error", text)

    def warning(self, text: str) -> None:
        self.message.emit("warning", text)

    def info(self, text: str) -> None:
        self.message.emit("info", text)

    def cleanup(self) -> None:
        for event, sig in self._signals.items():
            self.session.unsubscribe(event, sig.emit)
