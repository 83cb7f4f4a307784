"""The main window on the demo: real clicks on pyqtgraph items change the selection,
the preview shows the engine's masked accuracy, undo restores, coupled units show in
every member layer, criteria and the sensitivity sweep select units."""

import json

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

import gui_helpers as testing  # noqa: E402
from PySide6.QtCore import QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import neuronviz.api as nv  # noqa: E402
from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.gui import theme  # noqa: E402


def _wait(cond, timeout=120.0):
    import time

    t0 = time.monotonic()
    while not cond():
        QApplication.processEvents()
        time.sleep(0.005)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("condition not met")


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    from neuronviz.gui.app import create_main_window

    settings = QSettings(
        str(tmp_path_factory.mktemp("settings") / "nv.ini"), QSettings.Format.IniFormat
    )
    w = create_main_window(demo=True, settings=settings)
    w.resize(1280, 800)
    w.show()
    s = w.state.session
    _wait(
        lambda: (
            s.model is not None
            and s.act_stats is not None
            and s.previewer is not None
            and w.state.baseline is not None
        )
    )
    yield w
    w.close()


@pytest.fixture(autouse=True)
def fresh(win, qtbot):
    """Each test starts on 'dense', nothing selected, the Norms tab, zoomed on 40 units."""
    win.selection.clear()
    win.selection.stack.clear()
    win.state.session.set_layer("dense")
    win.tabs.setCurrentWidget(win.norms)
    win.norms.sorted.setChecked(False)
    win.norms.range.setChecked(False)
    win.banner.hide()
    qtbot.waitExposed(win)
    win.norms.ensure_drawn()
    win.norms.plot.setXRange(-0.5, 39.5, padding=0)
    QApplication.processEvents()
    yield


def click_bar(qtbot, win, unit, modifier=Qt.KeyboardModifier.NoModifier):
    testing.click_item(
        qtbot, win.norms.plot, win.norms.bars, testing.bar_center(win.norms, unit), modifier
    )


def engine_accuracy(model, plan, x, y):
    out = nv.masked_predict(model, plan, x)
    return float(np.mean(np.argmax(out, axis=-1) == y))


def test_demo_opens_on_dense(win, demo_val):
    s = win.state.session
    assert s.layer == "dense"
    assert s.dataset.n == len(demo_val[1])
    assert win.navigator.tree.currentIndex().data() == "dense"
    assert "model.keras" in win.windowTitle()
    assert win.preview.labels["Accuracy"][0].text() == "97.70%"


def test_click_bar_toggles_unit_and_preview_matches_engine(win, qtbot, demo_val):
    click_bar(qtbot, win, 7)
    assert win.state.session.plan == Plan({"dense": [7]})
    click_bar(qtbot, win, 12)
    plan = Plan({"dense": [7, 12]})
    assert win.state.session.plan == plan
    testing.wait_score(qtbot, win)
    want = engine_accuracy(win.state.session.model, plan, *demo_val)
    assert testing.after_accuracy_text(win.preview) == f"{100 * want:.2f}%"
    assert win.state.score.accuracy == pytest.approx(want, abs=1e-9)
    # the selected bars are drawn in the selection colour
    brushes = win.norms.bars.opts["brushes"]
    assert brushes[7].color() == theme.SELECTED and brushes[8].color() != theme.SELECTED
    assert "dense · unit <b>12</b>" in win.unit.header.text().replace(
        "</b> · unit", " · unit"
    ).replace("<b>dense", "dense")
    click_bar(qtbot, win, 7)  # toggles off
    assert win.state.session.plan == Plan({"dense": [12]})


def test_shift_and_ctrl_click(win, qtbot):
    click_bar(qtbot, win, 10)
    click_bar(qtbot, win, 14, Qt.KeyboardModifier.ShiftModifier)
    assert win.state.session.plan == Plan({"dense": range(10, 15)})
    click_bar(qtbot, win, 20, Qt.KeyboardModifier.ControlModifier)
    assert win.state.session.plan == Plan({"dense": [10, 11, 12, 13, 14, 20]})
    assert win.navigator.rows["dense"][2].text() == "6"


def test_undo_redo_with_the_keyboard(win, qtbot):
    click_bar(qtbot, win, 3)
    click_bar(qtbot, win, 5)
    assert win.state.session.plan == Plan({"dense": [3, 5]})
    win.activateWindow()
    win.norms.plot.setFocus()
    qtbot.keyClick(win.norms.plot, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert win.state.session.plan == Plan({"dense": [3]})
    qtbot.keyClick(win.norms.plot, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert win.state.session.plan == Plan()
    qtbot.keyClick(
        win.norms.plot,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert win.state.session.plan == Plan({"dense": [3]})
    testing.wait_score(qtbot, win)


def test_heatmap_row_click_and_region_drag(win, qtbot):
    win.tabs.setCurrentWidget(win.heatmap)
    hm = win.heatmap
    hm.ensure_drawn()
    hm.plot.setYRange(0, 40, padding=0)
    QApplication.processEvents()
    testing.click_item(qtbot, hm.plot, hm.image, testing.row_center(hm, 30))
    assert win.state.session.plan == Plan({"dense": [30]})
    over = hm.overlay.image
    assert over[30, 0, 3] > 0 and over[29, 0, 3] == 0
    hm.range.setChecked(True)
    region = hm.range_tool.region
    region.setRegion((2.0, 6.0))
    QApplication.processEvents()
    start = testing.scene_pos(hm.plot, region, QPointF(hm.ncols / 2, 4.0))
    end = testing.scene_pos(hm.plot, region, QPointF(hm.ncols / 2, 14.0))
    testing.drag(qtbot, hm.plot, start, end)
    lo, hi = region.getRegion()
    assert hi - lo == pytest.approx(4.0, abs=0.5) and lo > 8
    want = np.arange(int(np.ceil(lo - 0.5)), int(np.floor(hi - 0.5)) + 1)
    assert win.state.session.plan == Plan({"dense": want})


def test_norm_range_tool_and_sorted_order(win, qtbot):
    win.norms.sorted.setChecked(True)
    win.norms.range.setChecked(True)
    order = win.norms.bars.order.copy()
    np.testing.assert_array_equal(
        order, np.argsort(win.state.session.norms("dense"), kind="stable")
    )
    region = win.norms.range_tool.region
    region.setRegion((-0.5, 9.5))
    region.sigRegionChangeFinished.emit(region)
    assert win.state.session.plan == Plan({"dense": order[:10]})
    win.norms.plot.setXRange(-0.5, 39.5, padding=0)
    QApplication.processEvents()
    click_bar(qtbot, win, int(order[20]))
    assert int(order[20]) in win.state.session.plan.remove["dense"]


def test_coupled_units_show_in_every_member_layer(win, qtbot):
    s = win.state.session
    s.set_layer("conv2d")
    QApplication.processEvents()
    win.norms.plot.setXRange(-0.5, 31.5, padding=0)
    QApplication.processEvents()
    click_bar(qtbot, win, 3)
    assert s.plan == Plan({"conv2d": [3]})
    assert win.navigator.rows["max_pooling2d"][2].text() == "1"
    s.set_layer("max_pooling2d")
    QApplication.processEvents()
    brushes = win.norms.bars.opts["brushes"]
    assert brushes[3].color() == theme.COUPLED
    win.tabs.setCurrentWidget(win.heatmap)
    win.heatmap.ensure_drawn()
    strip = win.heatmap.strip.image
    assert tuple(strip[3, 0, :3]) == (
        theme.COUPLED.red(),
        theme.COUPLED.green(),
        theme.COUPLED.blue(),
    )
    # clicking the coupled unit in the member layer unselects it everywhere
    win.tabs.setCurrentWidget(win.norms)
    win.norms.plot.setXRange(-0.5, 31.5, padding=0)
    QApplication.processEvents()
    click_bar(qtbot, win, 3)
    assert s.plan == Plan()


def test_invert_clear_and_refusal(win, qtbot):
    s = win.state.session
    click_bar(qtbot, win, 1)
    win.menus.actions["invert"].trigger()
    assert len(s.plan.remove["dense"]) == 511 and 1 not in s.plan.remove["dense"]
    win.menus.actions["clear"].trigger()
    assert s.plan == Plan()
    s.set_layer("conv2d")
    win.menus.actions["invert"].trigger()  # would remove all 32 filters
    assert s.plan == Plan()
    assert "at least one unit" in win.banner.text()
    s.set_layer("dense_1")  # output units may go, with a warning
    win.selection.edit("dense_1", [0], "toggle")
    assert s.plan == Plan({"dense_1": [0]}) and "model outputs" in win.banner.text()


def test_navigator_rows_filter_and_click(win, qtbot):
    nav = win.navigator
    assert set(nav.rows) == set(win.state.session.trace.graph.layers)
    flags = nav.rows["flatten"][0].flags()
    assert not flags & Qt.ItemFlag.ItemIsSelectable
    assert nav.rows["dense"][1].text() == "512" and nav.rows["dense"][3].text() == "Dense"
    nav.filter.setText("conv")
    assert nav.proxy.rowCount() == 2
    nav.filter.setText("maxpool")
    assert nav.proxy.rowCount() == 2
    nav.filter.clear()
    rect = nav.row_rect("conv2d_1")
    qtbot.mouseClick(nav.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert win.state.session.layer == "conv2d_1"
    rect = nav.row_rect("flatten")
    qtbot.mouseClick(nav.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert win.state.session.layer == "conv2d_1"  # layers without units are not selectable


def test_criterion_dialog(win, qtbot):
    from neuronviz.gui.criterion_dialog import run_criterion_dialog

    dlg = run_criterion_dialog(win.bench)
    dlg.criterion.setCurrentIndex(dlg.criterion.findData("l2"))
    dlg.scope.setCurrentIndex(dlg.scope.findData("layer"))
    dlg.percent.setValue(25.0)
    assert "Selects 152 units in 3 layers" in dlg.preview.text()
    dlg.accept()
    want = win.state.session.criterion_plan("l2", fraction=0.25, scope="layer")
    assert win.state.session.plan == want
    dlg = run_criterion_dialog(win.bench)
    dlg.criterion.setCurrentIndex(dlg.criterion.findData("dead"))
    dlg.scope.setCurrentIndex(dlg.scope.findData("current"))
    dlg.mode.setCurrentIndex(dlg.mode.findData("replace"))
    dlg.accept()
    dead = np.flatnonzero(win.state.session.act("dense").dead)
    assert set(win.state.session.plan.remove["dense"]) == set(dead.tolist())
    assert "conv2d" in win.state.session.plan.remove  # other layers kept
    win.selection.stack.undo()
    assert win.state.session.plan == want


def test_save_and_load_selection_as_plan(win, qtbot, tmp_path):
    click_bar(qtbot, win, 2)
    click_bar(qtbot, win, 4)
    path = tmp_path / "sel.json"
    win.selection.save(path)
    assert json.loads(path.read_text()) == {"remove": {"dense": [2, 4]}}
    win.selection.clear()
    assert win.selection.load(path)
    assert win.state.session.plan == Plan({"dense": [2, 4]})
    bad = tmp_path / "bad.json"
    bad.write_text('{"remove": {"nope": [1]}}')
    assert not win.selection.load(bad)
    assert "unknown layer 'nope'" in win.banner.text()


def test_statistics_and_unit_detail(win, qtbot):
    win.tabs.setCurrentWidget(win.stats)
    win.stats.ensure_drawn()
    dead = int(win.state.session.act("dense").dead.sum())
    assert f"dead units: <b>{dead}</b>" in win.stats.summary.text()
    win.state.set_focus("conv2d_1", 5)
    win.unit.ensure_drawn()
    assert "filter 5 of 'conv2d_1'" in win.unit.weights.titleLabel.text
    assert win.unit.kernel_img.image is not None
    qtbot.waitUntil(lambda: win.unit.saliency_for == ("conv2d_1", 5), timeout=60000)
    assert win.unit.sal_img.image.shape == (28, 28)


def test_sensitivity_sweep_and_point_click(win, qtbot):
    view = win.sensitivity
    win.tabs.setCurrentWidget(view)
    view.steps.setCurrentText("5 steps")
    view.run()
    qtbot.waitUntil(lambda: win.state.session.sweep is not None, timeout=120000)
    view.ensure_drawn()
    res = win.state.session.sweep
    assert {c.layer for c in res.curves} == {"conv2d", "conv2d_1", "dense"}
    curve = res.curve("dense")
    assert curve.fractions == [0.0, 0.2, 0.4, 0.6, 0.8]
    pts = view.points["dense"]
    testing.click_item(qtbot, view.plot, pts, testing.point_pos(view, "dense", 2))
    k = curve.removed[2]
    plan = win.state.session.plan
    assert len(plan.remove["dense"]) == k == round(0.4 * 512)
    smallest = np.argsort(win.state.session.norms("dense"), kind="stable")[:k]
    assert set(plan.remove["dense"]) == set(smallest.tolist())
    testing.wait_score(qtbot, win)
    assert win.state.score.accuracy == pytest.approx(curve.accuracy[2], abs=1e-9)
