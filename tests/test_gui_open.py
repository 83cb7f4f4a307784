"""Opening things: the start screen's demo button, the command line, drag and drop,
Recent Files, and bad files that show one readable line while the app keeps working."""

import numpy as np
import pytest

pytest.importorskip("PySide6")

import gui_helpers as testing  # noqa: E402
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.resources import demo_model  # noqa: E402


def drop(win, *paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    ev = QDropEvent(
        QPointF(200, 200),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    win.dropEvent(ev)


def one_line(text: str) -> bool:
    return bool(text) and "\n" not in text and "Traceback" not in text


def test_start_screen_demo_button_and_recent_files(make, qtbot, settings):
    win = make()
    assert win.stack.currentWidget() is win.start
    assert win.start.demo.text() == "Open the demo"
    qtbot.mouseClick(win.start.demo, Qt.MouseButton.LeftButton)
    testing.wait_model(qtbot, win)
    qtbot.waitUntil(lambda: win.state.session.dataset is not None, timeout=60000)
    assert win.stack.currentWidget() is win.workspace
    assert win.state.session.layer == "dense"
    assert str(demo_model()) in settings.value("recent/models")
    win.menus.recent.aboutToShow.emit()
    assert any(str(demo_model()) == a.text() for a in win.menus.recent.actions())
    win.close()  # saves the layout
    assert settings.value("window/geometry") is not None
    again = make()
    assert again.start.recent.count() == 1 and again.start.recent.item(0).text() == str(
        demo_model()
    )


def test_bad_model_file_shows_one_line_and_the_app_stays_usable(make, qtbot, tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"this is not a zip file")
    win = make(model=bad)
    qtbot.waitUntil(lambda: win.banner.text() != "", timeout=60000)
    assert one_line(win.banner.text()) and "broken.keras" in win.banner.text()
    assert win.banner.level == "error"
    assert win.stack.currentWidget() is win.start and win.start.demo.isEnabled()
    drop(win, tmp_path / "notes.txt")
    assert "Expected a .keras/.h5 model" in win.banner.text()
    win.open_model(tmp_path / "missing.h5")
    qtbot.waitUntil(lambda: "not found" in win.banner.text(), timeout=60000)
    # still usable: the demo model opens in the same window
    win.open_model(demo_model())
    testing.wait_model(qtbot, win)
    assert win.stack.currentWidget() is win.workspace
    # bad data: missing file, then an npz that does not fit the model
    win.open_data(tmp_path / "nope.npz")
    qtbot.waitUntil(lambda: "not found" in win.banner.text(), timeout=60000)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 5, 5, 1), np.float32), y=np.zeros(4, np.int64))
    win.open_data(wrong)
    qtbot.waitUntil(lambda: "wrong.npz" in win.banner.text(), timeout=60000)
    assert one_line(win.banner.text())
    assert win.state.session.dataset is None
    assert "Open validation data" in win.preview.status.text()
    testing.click_item(qtbot, win.norms.plot, win.norms.bars, testing.bar_center(win.norms, 0))
    assert win.state.session.plan == Plan({"conv2d": [0]})  # selecting works without data


def test_command_line_model_and_data_then_drop_a_plan(make, qtbot, tmp_path):
    win = make(model=demo_model(), data="demo")
    testing.wait_ready(qtbot, win)
    plan = tmp_path / "p.json"
    Plan({"dense": [1, 2, 3]}).save(plan)
    drop(win, plan)
    assert win.state.session.plan == Plan({"dense": [1, 2, 3]})
    testing.wait_score(qtbot, win)
    win.selection.stack.undo()
    assert win.state.session.plan == Plan()


def test_drop_a_model(make, qtbot):
    win = make()
    drop(win, demo_model())
    testing.wait_model(qtbot, win)
    assert win.state.session.model_path == demo_model()


def test_about_box_lists_versions(make, qtbot):
    from neuronviz.gui.about import show_about, versions

    v = versions()
    assert set(v) >= {"neuronviz", "Keras", "TensorFlow", "Qt", "pyqtgraph"}
    win = make()
    box = show_about(win)
    for key, value in v.items():
        assert key in box.text() and value in box.text()
    box.close()
    assert win.menus.actions["undo"].shortcut().toString() == "Ctrl+Z"
    assert win.menus.actions["redo"].shortcut().toString() == "Ctrl+Shift+Z"
    assert QPoint(0, 0) is not None
