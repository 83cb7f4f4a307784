"""Export from the window: a reload-checked model whose layer widths match the
selection, the plan JSON, a Markdown report with PNG plots, and reopening."""

import json

import pytest

pytest.importorskip("PySide6")

import gui_helpers as testing  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

import neuronviz.api as nv  # noqa: E402
from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.gui.app import create_main_window  # noqa: E402
from neuronviz.gui.export import run_export_dialog  # noqa: E402


def test_export_writes_model_plan_and_report_then_reopens(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    win = create_main_window(demo=True, settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    testing.wait_ready(qtbot, win)
    s = win.state.session
    assert run_export_dialog(win.bench) is None and "Select units" in win.banner.text()
    s.set_layer("conv2d")
    win.norms.plot.setXRange(-0.5, 31.5, padding=0)
    for unit in (1, 4, 9):
        testing.click_item(
            qtbot, win.norms.plot, win.norms.bars, testing.bar_center(win.norms, unit)
        )
    s.set_layer("dense")
    win.selection.edit("dense", range(0, 200), "add")
    plan = s.plan
    assert plan == Plan({"conv2d": [1, 4, 9], "dense": range(200)})
    testing.wait_score(qtbot, win)
    dlg = run_export_dialog(win.bench)
    out = tmp_path / "small.keras"
    dlg.path.setText(str(out))
    dlg.reopen.setChecked(True)
    dlg.accept()
    qtbot.waitUntil(lambda: win.bench.last_export is not None, timeout=120000)
    path, result = win.bench.last_export
    assert path == out and out.exists()
    saved = nv.load_model(out)
    widths = {
        layer.name: layer.output.shape[-1]
        for layer in saved.layers
        if layer.name in ("conv2d", "conv2d_1", "dense")
    }
    assert widths == {"conv2d": 32 - 3, "conv2d_1": 64, "dense": 512 - 200}
    assert result.after.params == s.counts_after(plan).params == saved.count_params()
    assert json.loads((tmp_path / "small.plan.json").read_text()) == plan.to_dict()
    report = (tmp_path / "small-report" / "report.md").read_text()
    assert "| `dense` | 512 | 312 |" in report and "| `conv2d` | 32 | 29 |" in report
    assert "accuracy" in report and "![units](units.png)" in report
    assert (tmp_path / "small-report" / "units.png").stat().st_size > 1000
    assert (tmp_path / "small-report" / "norms-dense.png").exists()
    assert "reload check passed" in win.banner.text()
    # the pruned model reopens in the window, with the same data
    qtbot.waitUntil(lambda: s.model_path == out and s.dataset is not None, timeout=120000)
    assert s.units("dense") == 312
    testing.wait_ready(qtbot, win)
    win.cleanup()
