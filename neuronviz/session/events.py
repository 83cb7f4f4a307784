"""The session's event bus: listeners per event name, called synchronously in order."""

from __future__ import annotations

from collections.abc import Callable

EVENTS = (
    "model",
    "data",
    "weight_stats",
    "act_stats",
    "previewer",
    "plan",
    "score",
    "layer",
    "sweep",
    "latency",
)


class Events:
    """subscribe(event, fn) / unsubscribe(event, fn); `_emit(event)` calls fn() for each."""

    def __init__(self):
        self._listeners: dict[str, list[Callable]] = {e: [] for e in EVENTS}

    def subscribe(self, event: str, fn: Callable) -> None:
        self._listeners[event].append(fn)

    def unsubscribe(self, event: str, fn: Callable) -> None:
        if fn in self._listeners[event]:
            self._listeners[event].remove(fn)

    def _emit(self, *events: str) -> None:
        for event in events:
            for fn in list(self._listeners[event]):
                fn()
