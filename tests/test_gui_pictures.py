"""Pictures of views (PNG and SVG, not blank, the whole graph) and the plan's Markdown
report, on the demo with a selection and a sweep."""

import json
import re

import numpy as np
import pytest

pytest.importorskip("PySide6")

import gui_helpers as testing  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.errors import NeuronvizError  # noqa: E402
from neuronviz.gui.navigator import human  # noqa: E402
from neuronviz.gui.pictures import save_picture  # noqa: E402
from neuronviz.gui.report import plan_report  # noqa: E402


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    from PySide6.QtCore import QSettings

    from neuronviz.gui.app import create_main_window

    settings = QSettings(str(tmp_path_factory.mktemp("s") / "s.ini"), QSettings.Format.IniFormat)
    w = create_main_window(demo=True, settings=settings)
    w.resize(1400, 900)
    w.show()
    yield w
    w.cleanup()
    w.close()


def ready(qtbot, win):
    testing.wait_ready(qtbot, win)
    s = win.state.session
    if s.sweep is None:
        win.sensitivity.heatmap_above = 0
        win.sensitivity.steps.setCurrentText("5 steps")
        win.sensitivity.run()
        qtbot.waitUntil(lambda: s.sweep is not None, timeout=120000)
    s.set_plan(Plan({"conv2d": [1, 4, 9], "dense": range(100)}))
    return s


def assert_picture(png, svg):
    img = QImage(str(png))
    assert not img.isNull() and img.width() > 200 and img.height() > 200
    arr = np.frombuffer(img.convertToFormat(QImage.Format.Format_RGB32).constBits(), np.uint32)
    assert len(np.unique(arr)) > 8, "blank picture"
    text = svg.read_text()
    assert "<svg" in text and len(re.findall(r"<(path|polyline|rect|text|image)\b", text)) > 5


@pytest.mark.parametrize("tab", ["norms", "sensitivity", "widths", "importance"])
def test_pictures_of_the_views(win, qtbot, tmp_path, tab):
    ready(qtbot, win)
    view = getattr(win, tab)
    win.tabs.setCurrentWidget(view)
    qtbot.wait(50)
    png = save_picture(view, tmp_path / f"{tab}.png")
    svg = save_picture(view, tmp_path / f"{tab}.svg")
    assert_picture(png, svg)


def test_picture_of_the_whole_graph(win, qtbot, tmp_path):
    ready(qtbot, win)
    g = win.graph
    qtbot.waitUntil(lambda: bool(g.items), timeout=60000)
    g.canvas.scale(3, 3)  # zoomed in: only part of the graph is on screen
    png = save_picture(g.canvas, tmp_path / "graph.png")
    svg = save_picture(g.canvas, tmp_path / "graph.svg")
    assert_picture(png, svg)
    rect = g.scene.itemsBoundingRect().adjusted(-20, -20, 20, 20)  # the whole scene
    img = QImage(str(png))
    assert (img.width(), img.height()) == (int(2 * rect.width()), int(2 * rect.height()))
    assert "dense_1" in svg.read_text()  # the last node is in the picture: not clipped


def test_picture_refuses_other_formats(win, tmp_path):
    with pytest.raises(NeuronvizError, match=r"\.png or \.svg"):
        save_picture(win.norms, tmp_path / "norms.jpg")
    assert not (tmp_path / "norms.jpg").exists()


def test_plan_report_lists_layers_widths_params_macs_and_scores(win, qtbot):
    s = ready(qtbot, win)
    testing.wait_score(qtbot, win)
    text = plan_report(s)
    before, after = s.before, s.counts_after()
    p0, m0 = before.layers["dense"]
    p1, m1 = after.layers["dense"]
    assert f"| `dense` | 512 | 412 | {p0:,} | {p1:,} | {human(m0)} | {human(m1)} |" in text
    assert "| `conv2d` | 32 | 29 |" in text and "| `max_pooling2d` | 32 | 29 |" in text
    q0, _ = before.layers["dense_1"]
    assert f"| `dense_1` | 10 | 10 | {q0:,} | {after.layers['dense_1'][0]:,} |" in text
    assert f"| parameters | {before.params:,} | {after.params:,} |" in text
    score = s.score_for()
    assert f"{100 * s.baseline.accuracy:.2f}% | {100 * score.accuracy:.2f}%" in text
    plan_json = text.split("```json\n")[1].split("```")[0]
    assert Plan.from_dict(json.loads(plan_json)) == s.plan
