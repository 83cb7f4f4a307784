"""A thin Qt relay over the headless Session: its events as Qt signals, plus the few
pieces of view state shared between views (the focused unit, messages). It owns no
session state: model, data, plan, baseline and score are read from the Session."""

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
    scoreChanged = Signal()  # the baseline or the preview score changed (Session "score")
    layerChanged = Signal()
    sweepChanged = Signal()
    latencyChanged = Signal()  # a measured latency (Session.latency_for) arrived or was reset
    focusChanged = Signal(str, int)  # layer, unit (-1: none); hover or click
    message = Signal(str, str)  # level ("error", "warning", "info"), one line

    def __init__(self, session: Session | None = None, parent=None):
        super().__init__(parent)
        self.session = session or Session()
        self.focus: tuple[str, int] | None = None
        self._signals = {
            "model": self.modelChanged,
            "data": self.dataChanged,
            "weight_stats": self.weightStatsChanged,
            "act_stats": self.actStatsChanged,
            "previewer": self.previewerChanged,
            "plan": self.planChanged,
            "score": self.scoreChanged,
            "layer": self.layerChanged,
            "sweep": self.sweepChanged,
            "latency": self.latencyChanged,
        }
        assert set(self._signals) == set(EVENTS)
        for event, sig in self._signals.items():
            self.session.subscribe(event, sig.emit)
        self.modelChanged.connect(self._reset_focus)
        self.dataChanged.connect(self._reset_focus)

    # read-only views of the Session's score (it is the one owner)
    @property
    def baseline(self):
        return self.session.baseline

    @property
    def score(self):
        """The preview score of the current plan, or None while it is computed."""
        return self.session.score_for()

    @property
    def score_plan(self):
        return self.session.score_plan

    def replay(self) -> None:
        """Emit every state signal once (for views attached to an already loaded session)."""
        for sig in self._signals.values():
            sig.emit()

    def _reset_focus(self) -> None:
        self.focus = None

    def set_focus(self, layer: str | None, unit: int) -> None:
        new = None if layer is None or unit < 0 else (layer, int(unit))
        if new != self.focus:
            self.focus = new
            self.focusChanged.emit(layer or "", int(unit) if new else -1)

    def error(self, text: str) -> None:
        self.message.emit("error", text)

    def warning(self, text: str) -> None:
        self.message.emit("warning", text)

    def info(self, text: str) -> None:
        self.message.emit("info", text)

    def cleanup(self) -> None:
        for event, sig in self._signals.items():
            self.session.unsubscribe(event, sig.emit)
