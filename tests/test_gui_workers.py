"""Workers: generators with progress, a real cancel, one live worker per task, stale
results dropped, errors as one line."""

import threading
import time

import pytest

pytest.importorskip("PySide6")

from neuronviz.errors import NeuronvizError  # noqa: E402
from neuronviz.gui.workers import Tasks, report  # noqa: E402


@pytest.fixture
def tasks(qtbot):
    from PySide6.QtWidgets import QApplication

    assert QApplication.instance() is not None
    t = Tasks()
    yield t
    t.cleanup()


def test_result_and_progress(qtbot, tasks):
    got, progress = [], []

    def job():
        for i in range(5):
            yield (i + 1) / 5, f"step {i}"
        return 42

    with qtbot.waitSignal(tasks.finished, timeout=10000) as blocker:
        tasks.submit("t", job, got.append, on_progress=lambda f, s: progress.append(f))
    assert blocker.args == ["t", "ok"]
    assert got == [42]
    assert progress and progress[-1] == 1.0


def test_cancel_really_cancels(qtbot, tasks):
    steps = []
    started = threading.Event()

    def job():
        for i in range(10_000):
            started.set()
            steps.append(i)
            time.sleep(0.002)
            yield i / 10_000
        return "finished"

    got = []
    tasks.submit("long", job, got.append)
    assert started.wait(5)
    with qtbot.waitSignal(tasks.finished, timeout=10000) as blocker:
        tasks.cancel("long")
    assert blocker.args == ["long", "cancelled"]
    n = len(steps)
    time.sleep(0.1)
    assert len(steps) == n < 10_000  # it stopped, and stays stopped
    assert got == []
    assert not tasks.is_running("long")


def test_callback_style_job_cancels_through_report(qtbot, tasks):
    calls = []
    started = threading.Event()

    def engine(progress):
        for i in range(10_000):
            started.set()
            calls.append(i)
            time.sleep(0.002)
            progress(i / 10_000)

    tasks.submit("cb", lambda: engine(lambda f: report(f, "working")))
    assert started.wait(5)
    with qtbot.waitSignal(tasks.finished, timeout=10000) as blocker:
        tasks.cancel("cb")
    assert blocker.args == ["cb", "cancelled"]
    assert len(calls) < 10_000


def test_one_live_worker_and_stale_results_dropped(qtbot, tasks):
    live, peak, got = [0], [0], []
    lock = threading.Lock()

    def job(value):
        def run():
            with lock:
                live[0] += 1
                peak[0] = max(peak[0], live[0])
            try:
                for _ in range(20):
                    time.sleep(0.005)
                    yield 0.5
                return value
            finally:
                with lock:
                    live[0] -= 1

        return run

    for v in range(5):
        tasks.submit("preview", job(v), got.append)
    qtbot.waitUntil(lambda: not tasks.is_running("preview"), timeout=10000)
    qtbot.wait(50)
    assert got == [4]  # only the newest result is delivered
    assert peak[0] == 1  # never two workers of one task at once


def test_errors_are_one_line(qtbot, tasks):
    msgs = []

    def bad():
        raise NeuronvizError("Expected a thing. Received: another")

    def worse():
        raise ValueError("line one\nline two")

    with qtbot.waitSignal(tasks.finished, timeout=10000) as blocker:
        tasks.submit("a", bad, on_error=msgs.append)
    assert blocker.args == ["a", "error"]
    with qtbot.waitSignal(tasks.finished, timeout=10000):
        tasks.submit("b", worse, on_error=msgs.append)
    assert msgs == ["Expected a thing. Received: another", "ValueError: line one"]


def test_a_job_ending_after_its_window_closed_is_dropped_quietly(qtbot):
    """Closing the window deletes the tasks' Qt bridge; the worker's last message has
    nobody to wake, and must not end in a thread traceback."""
    import shiboken6

    tasks, go, errors = Tasks(), threading.Event(), []
    tasks.submit("slow", lambda: go.wait(10))
    ((_, thread),) = tasks._threads
    shiboken6.delete(tasks)
    hook, threading.excepthook = threading.excepthook, errors.append
    try:
        go.set()
        thread.join(10)
    finally:
        threading.excepthook = hook
    assert not thread.is_alive() and errors == []
