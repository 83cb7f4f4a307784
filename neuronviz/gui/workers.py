"""Run long work off the UI thread: generators yielding progress, with a cancel flag.

A *job* is a zero-argument callable returning either a generator or a plain value. A
generator yields progress (a float in 0..1, or a ``(fraction, text)`` pair) and returns
its result (``return value`` -> StopIteration.value). Between yields the worker checks
its cancel flag and closes the generator when set.

`Tasks` keeps at most one live worker per task name. Submitting while one runs cancels
the running one and queues the new job, which starts when the old one has stopped; a
generation counter guarantees that only the newest job's result is delivered.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, Signal


class Cancelled(Exception):
    """Raised inside a job (e.g. from a progress callback) when the user cancelled."""


class CancelFlag:
    def __init__(self):
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def callback(self, report: Callable | None = None) -> Callable:
        """A progress callback for callback-style engines: reports, and raises Cancelled."""

        def progress(fraction=None, *args):
            self.check()
            if report is not None and fraction is not None:
                report(fraction)

        return progress


def error_text(e: BaseException) -> str:
    """One readable line for any exception (NeuronvizError messages are already one line)."""
    from neuronviz.errors import NeuronvizError

    msg = str(e).strip()
    first = msg.splitlines()[0] if msg else ""
    if isinstance(e, NeuronvizError):
        return first
    return f"{type(e).__name__}: {first[:200]}" if first else type(e).__name__


def drain(q: queue.Queue | queue.SimpleQueue, handle: Callable) -> None:
    """On the UI thread: handle(item) for every item a worker has queued so far."""
    while True:
        try:
            item = q.get_nowait()
        except queue.Empty:
            return
        handle(item)


_local = threading.local()


def report(fraction: float, text: str = "") -> None:
    """From inside a running job (any depth, e.g. an engine's progress callback): report
    progress and raise Cancelled if the job was cancelled. A no-op outside a worker."""
    job = getattr(_local, "job", None)
    if job is None:
        return
    job.flag.check()
    job.emit_progress(fraction, text)


class _Bridge(QObject):
    """Wakes the UI thread. No Python object crosses threads through Qt: workers put
    their messages on a queue.Queue and emit this argument-less signal."""

    wake = Signal()


class _Job:
    """One run of a job on its own Python thread."""

    def __init__(self, name: str, job: Callable, flag: CancelFlag, post: Callable, gen: int):
        self.name, self.job, self.flag, self.post, self.gen = name, job, flag, post, gen
        self._last = 0.0
        self.thread = threading.Thread(target=self.run, name=f"neuronviz-{name}-{gen}", daemon=True)

    def run(self) -> None:
        outcome, payload = "ok", None
        _local.job = self
        try:
            value = self.job()
            if isinstance(value, types.GeneratorType):
                value = self._drive(value)
            payload = value
        except Cancelled:
            outcome = "cancelled"
        except BaseException as e:  # noqa: BLE001 - reported to the user, never raised in Qt
            outcome, payload = "error", (error_text(e), traceback.format_exc())
        finally:
            _local.job = None
        if self.flag.is_set() and outcome == "ok":
            outcome = "cancelled"
        self.post(("done", self.name, self.gen, outcome, payload))

    def emit_progress(self, frac, text="") -> None:
        now = time.monotonic()
        if frac is not None and (now - self._last > 0.03 or frac >= 1):
            self._last = now
            self.post(("progress", self.name, self.gen, float(frac), str(text)))

    def _drive(self, gen):
        try:
            while True:
                if self.flag.is_set():
                    gen.close()
                    raise Cancelled()
                item = next(gen)
                frac, text = item if isinstance(item, tuple) else (item, "")
                self.emit_progress(frac, text)
        except StopIteration as stop:
            return stop.value


@dataclass
class _Task:
    gen: int = 0
    running: tuple | None = None  # (gen, flag)
    pending: tuple | None = None  # (job, handlers)
    handlers: dict = field(default_factory=dict)


class Tasks(QObject):
    """Named tasks, one live worker each. Signals carry the task name."""

    started = Signal(str)
    progress = Signal(str, float, str)
    finished = Signal(str, str)  # name, outcome

    def __init__(self, parent=None):
        super().__init__(parent)
        self._tasks: dict[str, _Task] = {}
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[tuple[str, threading.Thread]] = []
        self._bridge = _Bridge(self)
        self._bridge.wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)

    def submit(
        self,
        name: str,
        job: Callable,
        on_result: Callable | None = None,
        on_error: Callable | None = None,
        on_progress: Callable | None = None,
    ) -> int:
        """Run `job` as task `name`, cancelling (and dropping) any earlier job of that name.
        Returns the job's generation number."""
        t = self._tasks.setdefault(name, _Task())
        t.gen += 1
        handlers = {"result": on_result, "error": on_error, "progress": on_progress}
        if t.running is not None:
            t.running[1].set()
            t.pending = (t.gen, job, handlers)
        else:
            self._start(name, t, t.gen, job, handlers)
        return t.gen

    def _post(self, message) -> None:  # any thread
        self._queue.put(message)
        try:
            self._bridge.wake.emit()
        except RuntimeError:  # the window (and its bridge) closed while the job ran
            pass  # nobody is left to tell

    def _start(self, name, t: _Task, gen: int, job, handlers) -> None:
        flag = CancelFlag()
        t.running, t.handlers = (gen, flag), handlers
        self.started.emit(name)
        worker = _Job(name, job, flag, self._post, gen)
        self._threads = [(n, th) for n, th in self._threads if th.is_alive()]
        self._threads.append((name, worker.thread))
        worker.thread.start()

    def _drain(self) -> None:
        drain(self._queue, self._dispatch)

    def _dispatch(self, msg) -> None:
        if msg[0] == "progress":
            self._on_progress(*msg[1:])
        else:
            self._on_done(*msg[1:])

    def _on_progress(self, name, gen, frac, text) -> None:
        t = self._tasks[name]
        if gen != t.gen or t.running is None or t.running[0] != gen:
            return
        if t.handlers.get("progress"):
            t.handlers["progress"](frac, text)
        self.progress.emit(name, frac, text)

    def _on_done(self, name, gen, outcome, payload) -> None:
        t = self._tasks[name]
        if t.running is not None and t.running[0] == gen:
            t.running = None
        current = gen == t.gen
        handlers = t.handlers
        if t.pending is not None and t.running is None:
            pgen, job, h = t.pending
            t.pending = None
            self._start(name, t, pgen, job, h)
        if not current:
            return
        if outcome == "ok" and handlers.get("result"):
            handlers["result"](payload)
        elif outcome == "error":
            if handlers.get("error"):
                handlers["error"](payload[0])
        self.finished.emit(name, outcome)

    def cancel(self, name: str) -> None:
        """Cancel task `name` (its running job stops at the next progress step; a queued
        job is dropped). No result is delivered."""
        t = self._tasks.get(name)
        if t is None:
            return
        t.pending = None
        if t.running is not None:
            t.running[1].set()

    def is_running(self, name: str) -> bool:
        t = self._tasks.get(name)
        return bool(t and (t.running is not None or t.pending is not None))

    def running_names(self) -> list[str]:
        return [n for n in self._tasks if self.is_running(n)]

    def wait(self, msecs: int = 30000, name: str | None = None) -> bool:
        """Block until every worker thread (of task `name`, if given) has ended, then
        deliver what they reported. True if they all ended in time."""
        deadline = time.monotonic() + msecs / 1000
        threads = [th for n, th in self._threads if name is None or n == name]
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
        self._drain()
        return not any(th.is_alive() for th in threads)

    def cleanup(self) -> None:
        """Cancel everything and wait for the workers to stop (they stop at their next
        progress step; a single long engine call is waited for)."""
        for name in list(self._tasks):
            self.cancel(name)
        self.wait(120000)
