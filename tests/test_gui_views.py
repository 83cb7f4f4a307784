"""View pieces on their own: the heatmap's display downsampling at scale, conv kernel
mosaics, nested models in the navigator, cancelling the first pass, Taylor and the
fine-tune / sparsify hooks, and following a dark colour scheme."""

import numpy as np
import pytest

pytest.importorskip("PySide6")

import gui_helpers as testing  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.gui import theme  # noqa: E402
from neuronviz.gui.views.heatmap import MAX_COLS, display_array  # noqa: E402
from neuronviz.gui.views.unit_view import mosaic  # noqa: E402
from neuronviz.resources import demo_model  # noqa: E402


def test_heatmap_display_of_2048_units_by_10000_samples_is_small():
    rng = np.random.default_rng(0)
    per_sample = rng.random((10_000, 2048), dtype=np.float32)
    per_sample[5, 7] = np.nan
    labels = rng.integers(0, 10, 10_000)
    img, levels, bounds = display_array(per_sample, labels, by_class=True, per_unit=False)
    assert img.shape == (2048, int(np.ceil(10_000 / np.ceil(10_000 / MAX_COLS))))
    assert img.shape[1] <= MAX_COLS and img.dtype == np.float32 and img.flags.c_contiguous
    assert np.isfinite(img).all() and levels[0] < levels[1]
    assert [c for _, c in bounds] == list(range(10))
    img2, levels2, _ = display_array(per_sample[:300], None, by_class=False, per_unit=True)
    assert img2.shape == (2048, 300) and levels2 == (0.0, 1.0) and img2.max() <= 1.0


def test_kernel_mosaic():
    k = np.arange(5 * 5 * 6, dtype=np.float32).reshape(5, 5, 6)
    m = mosaic(k)
    assert m.shape == (2 * 6 - 1, 3 * 6 - 1)
    np.testing.assert_array_equal(m[:5, :5], k[:, :, 0])
    np.testing.assert_array_equal(m[6:11, 6:11], k[:, :, 4])


def test_nested_models_are_children_in_the_navigator(make, qtbot, tmp_path):
    from engine_models import nested_shared

    path = tmp_path / "nested.keras"
    nested_shared().save(path)
    win = make(model=path)
    testing.wait_model(qtbot, win)
    nav = win.navigator
    assert "seq/in1" in nav.rows and "func/fin1" in nav.rows
    seq = nav.rows["seq/in1"][0].parent()
    assert seq is not None and seq.text() == "seq" and nav.rows["seq/in1"][0].text() == "in1"
    nav.filter.setText("fin1")
    assert nav.proxy.rowCount() == 1  # the 'func' folder, kept for its matching child
    nav.filter.clear()
    win.state.session.set_layer("seq/in1")
    assert nav.tree.currentIndex().data() == "in1"
    testing.click_item(qtbot, win.norms.plot, win.norms.bars, testing.bar_center(win.norms, 2))
    assert win.state.session.plan == Plan({"seq/in1": [2]})
    assert win.preview.labels["Params"][1].text() != win.preview.labels["Params"][0].text()


def test_captured_layers_are_expandable_rows_with_totals(make, qtbot, tmp_path):
    from test_capture import resnet_with_blocks

    path = tmp_path / "blocks.keras"
    resnet_with_blocks(nested=True).save(path)
    win = make(model=path)
    testing.wait_model(qtbot, win)
    nav, s = win.navigator, win.state.session
    conv = nav.rows["stage/block1/conv_a"]
    block = conv[0].parent()
    stage = block.parent()
    assert (block.text(), stage.text(), conv[0].text()) == ("block1", "stage", "conv_a")
    row = [block.parent().child(block.row(), c).text() for c in range(8)]
    assert row[3] == "ResBlock (captured)"
    inner = [i for i in s.layers() if i.path.startswith("stage/block1/")]
    from neuronviz.gui.navigator import human

    assert row[5] == human(sum(i.params for i in inner)) and row[6] == human(
        sum(i.macs for i in inner)
    )
    assert conv[1].text() == "6" and conv[5].text() and conv[6].text()
    assert nav.tree.isExpanded(nav.proxy.mapFromSource(block.index()))
    win.state.session.set_layer("stage/block1/conv_a")
    testing.click_item(qtbot, win.norms.plot, win.norms.bars, testing.bar_center(win.norms, 2))
    assert win.state.session.plan == Plan({"stage/block1/conv_a": [2]})


def test_first_pass_progress_and_cancel(make, qtbot):
    win = make(model=demo_model())
    testing.wait_model(qtbot, win)
    win.state.session.open_data("demo")  # synchronous, so the pass below is the only one
    win.pipeline.stats_samples = None
    win.pipeline.analyze()
    qtbot.waitUntil(
        lambda: win.progress.isVisible() and win.progress.bar.value() > 0, timeout=60000
    )
    with qtbot.waitSignal(win.tasks.finished, timeout=60000) as blocker:
        qtbot.mouseClick(win.progress.button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["analysis", "cancelled"]
    assert win.state.session.act_stats is None and win.state.session.previewer is None
    assert not win.progress.isVisible() and "cancelled" in win.statusBar().currentMessage()
    win.menus.actions["stats"].trigger()  # Ctrl+R runs it again
    testing.wait_ready(qtbot, win)


def test_taylor_criterion_and_dialog_hooks(make, qtbot):
    from neuronviz.gui.criterion_dialog import apply_spec
    from neuronviz.gui.integrations import open_finetune, open_sparsify

    win = make(demo=True)
    testing.wait_ready(qtbot, win)
    s = win.state.session
    s.dataset.x, s.dataset.y = s.dataset.x[:200], s.dataset.y[:200]  # keep Taylor quick
    apply_spec(
        win.bench,
        {
            "criterion": "taylor",
            "scope": "current",
            "fraction": 0.1,
            "threshold": 0.9,
            "mode": "replace",
        },
    )
    qtbot.waitUntil(lambda: bool(s.plan), timeout=120000)
    order = np.argsort(s.taylor["dense"], kind="stable")[:51]
    assert set(s.plan.remove["dense"]) == set(order.tolist())
    dlg = open_finetune(win.bench)
    assert dlg is not None and dlg.isVisible()
    dlg.reject()
    dlg = open_sparsify(win.bench)
    assert dlg is not None and dlg.isVisible()
    dlg.reject()


def test_follows_a_dark_colour_scheme(make, qtbot):
    """A dark system scheme reaches the app as a dark palette (Fusion); the plots follow."""
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    win = make()
    light = app.palette()
    dark = QPalette(light)
    dark.setColor(QPalette.ColorRole.Window, QColor(40, 40, 44))
    dark.setColor(QPalette.ColorRole.WindowText, QColor(220, 220, 220))
    dark.setColor(QPalette.ColorRole.Base, QColor(30, 30, 33))
    dark.setColor(QPalette.ColorRole.Text, QColor(220, 220, 220))
    try:
        app.setPalette(dark)
        qtbot.waitUntil(
            lambda: win.norms.plot.backgroundBrush().color().lightness() < 80, timeout=5000
        )
        assert theme.is_dark()
        assert win.unit.glw.backgroundBrush().color().lightness() < 80
    finally:
        app.setPalette(light)
    qtbot.waitUntil(
        lambda: win.norms.plot.backgroundBrush().color().lightness() > 200, timeout=5000
    )


def test_binding_refcount_guard_keeps_none_alive():
    """PySide6 6.12 on Python 3.11 drops a reference to None per void call and to True
    per emit(); without neuronviz.gui.compat.guard() this loop aborts the interpreter."""
    import sys

    from PySide6.QtCore import QObject, Signal

    from neuronviz.gui import compat

    class Probe(QObject):
        ping = Signal()

    obj = Probe()
    obj.ping.connect(lambda: None)
    for _ in range(100_000):
        obj.setObjectName("x")
        obj.ping.emit()
    assert sys.getrefcount(None) > 10_000 and sys.getrefcount(True) > 10_000
    if sys.version_info < (3, 12) and max(compat.leaks_per_call().values()) >= 0.5:
        assert compat._applied
