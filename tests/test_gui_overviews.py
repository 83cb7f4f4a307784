"""Network overviews on the demo: the sweep heatmap selects what the sweep scored, the
widths chart follows the plan, the importance strip highlights what the global criterion
removes; rows and cells are clicked with the real mouse."""

import numpy as np
import pytest

pytest.importorskip("PySide6")

import gui_helpers as testing  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from neuronviz.core.plan import Plan  # noqa: E402


@pytest.fixture
def win(make, qtbot):
    w = make(demo=True)
    testing.wait_ready(qtbot, w)
    return w


def cell_pos(heatmap, layer, col):
    """Item coordinates of a sweep heatmap cell's centre."""
    return QPointF(col + 0.5, heatmap.layers.index(layer) + 0.5)


def row_scene_pos(plot, rows, layer):
    """Scene coordinates of the middle of a layer's row in a row chart."""
    vb = plot.getViewBox()
    x0, x1 = vb.viewRange()[0]
    return vb.mapViewToScene(pg.Point((x0 + x1) / 2, rows.index(layer)))


def click_scene(qtbot, widget, scene_pos):
    QApplication.processEvents()
    qtbot.mouseClick(
        widget.viewport(), Qt.MouseButton.LeftButton, pos=widget.mapFromScene(scene_pos)
    )
    QApplication.processEvents()


def test_sweep_heatmap_click_selects_what_the_sweep_scored(win, qtbot):
    s = win.state.session
    view = win.sensitivity
    view.heatmap_above = 0  # the demo has 3 groups: show them as a heatmap anyway
    win.tabs.setCurrentWidget(view)
    view.steps.setCurrentText("5 steps")
    view.run()
    qtbot.waitUntil(lambda: s.sweep is not None, timeout=120000)
    view.ensure_drawn()
    assert view.stack.currentWidget() is view.heatmap
    res = s.sweep
    img = view.heatmap.cells.image
    assert img.shape == (len(res.curves), 5)
    c = res.curve("conv2d_1")
    row = view.heatmap.layers.index("conv2d_1")
    assert img[row, 3] == pytest.approx(100 * (res.baseline.accuracy - c.accuracy[3]), abs=1e-4)
    win.selection.edit("dense", [7], "add")  # the rest of the selection stays
    testing.click_item(
        qtbot, view.heatmap, view.heatmap.cells, cell_pos(view.heatmap, "conv2d_1", 3)
    )
    plan = s.plan
    k = c.removed[3]
    assert k == round(0.6 * 64) and len(plan.remove["conv2d_1"]) == k
    smallest = np.argsort(s.norms("conv2d_1"), kind="stable")[:k]  # the sweep's L2 order
    assert set(plan.remove["conv2d_1"]) == set(smallest.tolist())
    assert set(plan.remove["dense"]) == {7} and s.layer == "conv2d_1"
    # the sweep's own number, without the dense unit: the preview scores it the same
    win.selection.edit("dense", [], "set")
    testing.wait_score(qtbot, win)
    assert win.state.score.accuracy == pytest.approx(c.accuracy[3], abs=1e-9)


def test_widths_chart_follows_the_plan_and_a_row_click_shows_the_layer(win, qtbot):
    s = win.state.session
    view = win.widths
    win.tabs.setCurrentWidget(view)
    view.ensure_drawn()
    assert view.rows == ["conv2d", "conv2d_1", "dense", "dense_1"]
    before, after = view.bars[0]
    np.testing.assert_array_equal(before.opts["width"], [32, 64, 512, 10])
    s.set_plan(Plan({"dense": list(range(100))}))
    view.ensure_drawn()
    np.testing.assert_array_equal(after.opts["width"], [32, 64, 412, 10])
    params_after = view.bars[1][1].opts["width"]
    want = 100 * s.counts_after().layers["dense"][0] / s.before.params
    assert params_after[2] == pytest.approx(want)
    assert params_after[3] < view.bars[1][0].opts["width"][3]  # dense_1 loses input rows
    assert view.bars[2][0].opts["width"].sum() == pytest.approx(
        100 * sum(s.before.layers[p][1] for p in view.rows) / s.before.macs
    )
    click_scene(qtbot, view.canvas, row_scene_pos(view.plots[0], view.rows, "conv2d_1"))
    assert s.layer == "conv2d_1"


def test_importance_strip_marks_the_global_criterion_and_selects_it(win, qtbot):
    from neuronviz.core.criteria import smallest

    s = win.state.session
    view = win.importance
    win.tabs.setCurrentWidget(view)
    view.fraction.setValue(30.0)
    view.ensure_drawn()
    assert view.rows == ["conv2d", "conv2d_1", "dense"]  # the output layer is not prunable
    scores = {p: s.norms(p) for p in view.rows}
    want = smallest(scores, fraction=0.3, scope="global")
    n_cut = sum(len(v) for v in want.remove.values())
    assert len(view.cut.data) == n_cut > 0
    assert len(view.kept.data) + n_cut == sum(len(v) for v in scores.values())
    qtbot.mouseClick(view.apply_button, Qt.MouseButton.LeftButton)
    assert s.plan == want
    click_scene(qtbot, view.plot, row_scene_pos(view.plot.getPlotItem(), view.rows, "dense"))
    assert s.layer == "dense"
