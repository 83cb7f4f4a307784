"""The graph view: a layered layout of the demo, a residual net and a nested model;
hovering highlights exactly the engine's group and its consumers; clicking a node shows
its units in the other views; plan changes update the nodes without a new layout."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("grandalf")

import gui_helpers as testing  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.gui.graph_layout import NODE_H, LayerGraph  # noqa: E402
from neuronviz.gui.views.graph_view import (  # noqa: E402
    CONSUMER,
    CURRENT,
    MEMBER,
    TEXT_LOD,
    GraphView,
)
from neuronviz.resources import demo_model  # noqa: E402


def graph_view(qtbot, model):
    from neuronviz.gui.state import State
    from neuronviz.session import Session, analyze_parts

    s = Session()
    s.set_model(analyze_parts(model))
    view = GraphView(State(s))
    qtbot.addWidget(view)
    view.resize(500, 700)
    view.show()
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: bool(view.items), timeout=30000)
    return view


def node_pos(view, node_id):
    """Viewport coordinates of a node's centre."""
    return view.canvas.mapFromScene(view.items[node_id].scenePos())


def hover(view, node_id):
    """A real mouse move over a node (hover events come from the viewport's moves), or
    to the viewport's corner for None."""
    vp = view.canvas.viewport()
    if node_id is not None:
        view.canvas.centerOn(view.items[node_id])
        QApplication.processEvents()
    pos = QPointF(node_pos(view, node_id)) if node_id else QPointF(2, 2)
    ev = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        pos,
        QPointF(vp.mapToGlobal(QPoint(int(pos.x()), int(pos.y())))),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(vp, ev)
    QApplication.processEvents()


def assert_downward(lay, graph):
    """Every edge goes down a layer: the layout is layered top to bottom."""
    for a, b in graph.edges:
        assert lay.pos[b][1] >= lay.pos[a][1] + NODE_H, (a, b)


def test_demo_graph_has_every_layer_and_edge(qtbot):
    import keras

    model = keras.saving.load_model(demo_model(), safe_mode=True)
    view = graph_view(qtbot, model)
    fg = view.session.trace.graph
    assert set(view.items) == set(fg.layers) | {"<input>"}
    assert len(view.graph.edges) == len(fg.layers)  # a chain: one edge into each layer
    assert_downward(view.layout, view.graph)
    item = view.items["conv2d"]
    assert item.width_text() == "Conv2D  32" and item.fraction == 0
    lay = view.layout
    view.session.set_plan(Plan({"conv2d": [0, 1, 2, 3]}))
    assert item.width_text() == "Conv2D  32 → 28" and item.fraction == pytest.approx(4 / 32)
    assert view.items["max_pooling2d"].width_text() == "MaxPooling2D  32 → 28"
    assert view.layout is lay  # no new layout for a plan change
    hover(view, "conv2d")
    h = view.highlighted()
    assert h[CURRENT] == {"conv2d"} and h[MEMBER] == {"max_pooling2d"}
    assert h[CONSUMER] == {"conv2d_1"}


def test_hover_highlights_exactly_the_engine_group_in_a_residual_net(qtbot):
    from engine_models import residual_merges

    view = graph_view(qtbot, residual_merges())
    tr = view.session.trace
    group = tr.units.groups[tr.group_of("c")]
    assert len(group.members) > 10  # the whole residual trunk
    assert_downward(view.layout, view.graph)
    for layer in ("c", "add", "min"):
        hover(view, layer)
        h = view.highlighted()
        assert h[CURRENT] == {layer}
        assert h[MEMBER] | h[CURRENT] == set(group.members)
        assert h[CONSUMER] == {"head"}  # the only layer reading the trunk's channels
    hover(view, "head")
    assert view.highlighted()[MEMBER] | {"head"} == set(
        tr.units.groups[tr.group_of("head")].members
    )


def test_nested_models_are_boxes_that_collapse(qtbot, tmp_path):
    from engine_models import nested_shared

    view = graph_view(qtbot, nested_shared())
    assert set(view.layout.boxes) == {"seq", "func"}
    assert {"seq/in1", "seq/in2", "func/fin1", "func/fin2"} <= set(view.items)
    assert_downward(view.layout, view.graph)
    expanded = view.layout
    with qtbot.waitSignal(view.layoutReady, timeout=10000):
        view.toggle_box("seq")
    assert "seq" in view.items and "seq/in1" not in view.items
    assert view.items["seq"].node.kind == "Model" and set(view.layout.boxes) == {"func"}
    # hovering a member inside the closed box marks the box
    view.session.set_layer("add")
    assert view.highlighted()[MEMBER] >= {"seq"} or view.highlighted()[CONSUMER] >= {"seq"}
    with qtbot.waitSignal(view.layoutReady, timeout=10000):
        view.clicked("seq")  # a click on a closed box opens it
    assert view.layout is expanded  # cached: the same layout as before


def test_level_of_detail_and_fit(qtbot):
    from engine_models import residual_merges

    view = graph_view(qtbot, residual_merges())
    view.fit()
    QApplication.processEvents()
    assert view.canvas.zoom() > 0
    view.canvas.resetTransform()
    view.canvas.scale(0.2, 0.2)
    img_far = view.canvas.grab().toImage()
    assert view.canvas.zoom() < TEXT_LOD and not img_far.isNull()


def test_clicking_a_node_switches_the_unit_views(make, qtbot):
    win = make(model=demo_model())
    testing.wait_model(qtbot, win)
    g = win.graph
    qtbot.waitUntil(lambda: bool(g.items), timeout=60000)
    assert win.state.session.layer == "conv2d"
    g.canvas.centerOn(g.items["dense"])
    QApplication.processEvents()
    qtbot.mouseClick(g.canvas.viewport(), Qt.MouseButton.LeftButton, pos=node_pos(g, "dense"))
    assert win.state.session.layer == "dense"
    win.norms.ensure_drawn()
    assert len(win.norms.bars.order) == 512  # the norms view shows dense's units
    assert win.navigator.tree.currentIndex().data() == "dense"  # the layer list follows
    assert g.highlighted()[CURRENT] == {"dense"} and g.highlighted()[CONSUMER] == {"dense_1"}
    hover(g, None)  # the mouse leaves the node (for the layer list)
    assert g.highlighted()[CURRENT] == {"dense"}
    win.state.session.set_layer("conv2d_1")  # and the graph follows the layer list
    assert g.highlighted()[CURRENT] == {"conv2d_1"}


def test_mobilenet_layout_is_layered():
    import keras

    from neuronviz.api import analyze

    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35
    )
    graph = LayerGraph.from_trace(analyze(model))
    lay = graph.layout()
    assert len(lay.pos) == len(model.layers)  # InputLayer is the "<input>" node
    assert_downward(lay, graph)
    assert graph.layout() is lay


def test_a_captured_custom_layer_is_a_box(qtbot):
    import keras
    from keras import layers as L
    from keras import ops

    class Block(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.conv_a = L.Conv2D(6, 3, padding="same", name="conv_a")
            self.conv_b = L.Conv2D(6, 3, padding="same", name="conv_b")

        def call(self, x):
            return ops.relu(x + self.conv_b(ops.relu(self.conv_a(x))))

    x = keras.Input((8, 8, 3))
    h = L.Conv2D(6, 3, padding="same", name="stem")(x)
    h = L.GlobalAveragePooling2D(name="gap")(Block(name="block")(h))
    view = graph_view(qtbot, keras.Model(x, L.Dense(3, name="head")(h)))
    assert "block" in view.layout.boxes and "block/conv_a" in view.items
    assert_downward(view.layout, view.graph)
    tr = view.session.trace
    hover(view, "block/conv_b")
    h = view.highlighted()
    assert h[MEMBER] | h[CURRENT] == set(tr.units.groups[tr.group_of("stem")].members)
    assert h[CONSUMER] == {"block/conv_a", "head"}
    with qtbot.waitSignal(view.layoutReady, timeout=10000):
        view.toggle_box("block")
    assert view.items["block"].node.kind == "Model" and "block/conv_a" not in view.items
