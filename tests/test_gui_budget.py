"""Budgets in the app, on the demo in a real window: the "Prune to budget" dialog (its plan
is `nv.plan_to_budget`'s, called independently; one undo step; an unreachable budget is
one line and changes nothing; cancel; the prune -> fine-tune schedule), channel rounding
as a setting and as an action, and "Measure speed" in the preview panel."""

import re
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

import gui_helpers as testing  # noqa: E402
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import neuronviz.api as nv  # noqa: E402
from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.gui import rounding  # noqa: E402
from neuronviz.gui.budget_dialog import BudgetDialog  # noqa: E402
from neuronviz.gui.navigator import human  # noqa: E402

HAND = Plan({"dense": list(range(5))})


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    from neuronviz.gui.app import create_main_window

    settings = QSettings(
        str(tmp_path_factory.mktemp("settings") / "nv.ini"), QSettings.Format.IniFormat
    )
    w = create_main_window(demo=True, settings=settings)
    w.show()
    s = w.state.session
    t0 = time.monotonic()
    while not (s.model is not None and s.previewer is not None and s.baseline is not None):
        QApplication.processEvents()
        time.sleep(0.005)
        assert time.monotonic() - t0 < 120
    yield w
    w.close()


@pytest.fixture(autouse=True)
def hand_selection(win, qtbot):
    """Each test starts with a hand selection of 5 Dense units and an empty undo stack."""
    testing.wait_idle(qtbot, win)
    win.selection.stack.clear()
    win.state.session.set_plan(HAND)
    win.banner.hide()
    yield


def open_dialog(win) -> BudgetDialog:
    win.menus.actions["budget"].trigger()
    return win.findChildren(BudgetDialog)[-1]


def run(qtbot, dlg, timeout=120_000) -> str:
    with qtbot.waitSignal(dlg.done_run, timeout=timeout) as blocker:
        qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def kept_widths(model, plan) -> dict:
    return {k: b for k, (a, b) in nv.prune(model, plan).widths().items()}


def test_budget_plan_is_the_apis_meets_the_budget_and_undo_restores(win, qtbot, demo_model):
    s = win.state.session
    dlg = open_dialog(win)
    assert "replaces your current selection (5 units in 1 layer)" in dlg.note.text()
    assert dlg.round_to.value() == nv.DEFAULT_ROUND_TO and dlg.criterion.currentData() == "l2"
    assert dlg.target() == "macs=0.5" and dlg.options()["scope"] == "auto"
    assert run(qtbot, dlg) == "applied"
    assert not dlg.isVisible()
    # the same call, made independently (the model loaded again, its own trace and data)
    want = nv.plan_to_budget(
        demo_model, "macs=0.5", data=nv.load_data("demo", demo_model), **dlg.options()
    )
    assert s.plan == want.plan and s.plan != HAND
    after = s.counts_after()
    assert after.macs <= 0.5 * s.before.macs and after.macs == want.after.macs
    assert all(w % 8 == 0 for w in kept_widths(demo_model, s.plan).values())
    testing.wait_score(qtbot, win)  # the preview follows
    assert win.preview.labels["MACs"][1].text() == human(after.macs)
    assert win.selection.stack.count() == 1
    win.menus.actions["undo"].trigger()
    assert s.plan == HAND


def test_unreachable_budget_is_one_line_and_changes_nothing(win, qtbot, demo_model):
    s = win.state.session
    dlg = open_dialog(win)
    dlg.scope.setCurrentIndex(dlg.scope.findData("global"))
    dlg.value.setValue(0.5)  # 0.5 % of the MACs: below what the demo can reach
    with pytest.raises(nv.NeuronvizError) as refused:
        nv.plan_to_budget(demo_model, dlg.target(), **dlg.options())
    assert run(qtbot, dlg) == "error"
    assert dlg.status.text() == str(refused.value) and "\n" not in dlg.status.text()
    assert "smallest macs" in dlg.status.text()
    assert s.plan == HAND and win.selection.stack.count() == 0 and dlg.isVisible()
    # cancelled right away: nothing applied, the dialog is ready again
    dlg.value.setValue(50.0)
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    assert dlg.status.text() == "Cancelled: nothing changed." and dlg.run_button.isEnabled()
    testing.wait_idle(qtbot, win)
    assert s.plan == HAND and win.selection.stack.count() == 0
    dlg.reject()


def test_refine_on_the_data_shows_its_phase_and_cancels(win, qtbot):
    """Refining is slow (exact previews): the dialog says so while it runs, and Cancel
    stops it mid-way with nothing changed (the refinement itself: test_refine.py)."""
    s = win.state.session
    dlg = open_dialog(win)
    assert dlg.refine.isEnabled() and not dlg.options()["refine"]  # off by default
    dlg.refine.setChecked(True)
    assert dlg.options()["refine"]
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.status.text() == "Refining the units on the data…", timeout=60000)
    assert not dlg.refine.isEnabled()  # locked while running
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.run_button.isEnabled(), timeout=30000)
    assert dlg.status.text() == "Cancelled: nothing changed."
    testing.wait_idle(qtbot, win)
    assert s.plan == HAND and win.selection.stack.count() == 0
    dlg.reject()


def test_refine_selection_on_the_data_is_one_undo_step(win, qtbot, demo_model):
    s = win.state.session
    with qtbot.waitSignal(
        win.tasks.finished, timeout=120_000, check_params_cb=lambda name, _: name == "refine"
    ):
        win.menus.actions["refine"].trigger()
    want = nv.refine_plan(demo_model, HAND, nv.load_data("demo", demo_model))
    assert want != HAND and len(want.remove["dense"]) == 5  # the same width
    assert s.plan == want and win.selection.stack.count() == 1
    win.menus.actions["undo"].trigger()
    assert s.plan == HAND


def test_round_selection_is_a_setting_and_one_undo_step(win, qtbot, demo_model):
    s = win.state.session
    win.menus.actions["round_to_16"].trigger()
    assert rounding.round_to(win.settings) == 16
    assert "Multiples of 16" in win.menus.actions["round"].text()
    dlg = open_dialog(win)
    assert dlg.round_to.value() == 16  # the budget dialog uses the setting
    dlg.reject()
    win.menus.actions["round_to_8"].trigger()
    hand = Plan({"dense": list(range(37)), "conv2d_1": [1, 2, 3, 4, 5, 6]})
    win.selection.apply(hand, "hand")
    win.menus.actions["round"].trigger()
    assert s.plan != hand
    widths = kept_widths(demo_model, s.plan)
    assert set(widths) >= {"dense", "conv2d_1"}
    assert all(w % 8 == 0 for w in widths.values()), widths
    win.menus.actions["undo"].trigger()
    assert s.plan == hand


def test_measure_speed_shows_latency_and_clears_on_plan_change(win, qtbot):
    s, panel = win.state.session, win.preview
    s.set_plan(Plan({"dense": list(range(256)), "conv2d_1": list(range(32))}))
    win.menus.actions["speed"].trigger()
    assert panel.speed_button.text() == "Cancel"
    qtbot.waitUntil(lambda: s.latency_for() is not None, timeout=120_000)
    before, after, change = (c.text() for c in panel.labels["Latency"])
    ms = [float(re.fullmatch(r"([\d.]+) ms", t).group(1)) for t in (before, after)]
    assert all(v > 0 for v in ms)
    lat = s.latency_for()
    assert ms == [round(lat.original_ms, 2), round(lat.pruned_ms, 2)]
    macs = s.counts_after().macs / s.before.macs
    assert change == f"×{lat.ratio:.2f} (MACs ×{macs:.2f})"
    assert panel.speed_button.text() == "Measure speed"
    win.selection.edit("dense", [300], "add")  # the plan changes: the figures are stale
    assert [c.text() for c in panel.labels["Latency"]] == ["–", "–", ""]
    # cancel: the button stops it, and nothing is shown
    qtbot.mouseClick(panel.speed_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.speed_button, Qt.MouseButton.LeftButton)
    testing.wait_idle(qtbot, win)
    assert s.latency_for() is None and panel.labels["Latency"][1].text() == "–"


def test_schedule_reaches_the_budget_widths_and_saves(win, qtbot, tmp_path, demo_model):
    from neuronviz.resources import demo_train

    d = np.load(demo_train())
    train = tmp_path / "train.npz"
    np.savez(train, x=d["x"][:128], y=d["y"][:128])
    out = tmp_path / "scheduled.keras"
    dlg = open_dialog(win)
    dlg.scope.setCurrentIndex(dlg.scope.findData("global"))
    dlg.steps.setValue(2)
    assert dlg.run_button.text() == "Run schedule" and "not changed" in dlg.note.text()
    dlg.train.setText(str(train))
    dlg.output.setText(str(out))
    assert run(qtbot, dlg) == "saved"
    assert out.exists() and dlg.open_button.isVisible()
    want = nv.plan_to_budget(demo_model, "macs=0.5", **dlg.options())
    units = nv.analyze(nv.load_model(out)).layer_units
    full = nv.analyze(demo_model).layer_units
    assert want.plan and all(
        len(units[layer]) == len(full[layer]) - len(idx) for layer, idx in want.plan.remove.items()
    )
    assert win.state.session.plan == HAND  # the schedule leaves the selection alone
    dlg.reject()


def test_schedule_cancel_stops_during_fine_tuning(win, qtbot, tmp_path):
    from neuronviz.resources import demo_train

    d = np.load(demo_train())
    train = tmp_path / "train.npz"
    np.savez(train, x=d["x"][:2048], y=d["y"][:2048])
    out = tmp_path / "never.keras"
    dlg = open_dialog(win)
    dlg.scope.setCurrentIndex(dlg.scope.findData("global"))
    dlg.steps.setValue(3)
    dlg.train.setText(str(train))
    dlg.output.setText(str(out))
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.status.text().startswith("Step 1/3"), timeout=120_000)
    assert 0 < dlg.progress.value() < dlg.progress.maximum()  # progress from fine-tuning
    with qtbot.waitSignal(dlg.done_run) as blocker:
        qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["cancelled"]
    testing.wait_idle(qtbot, win)
    # the worker stopped before its last line (saving the model), and changed nothing
    assert not out.exists() and win.state.session.plan == HAND
    dlg.reject()
