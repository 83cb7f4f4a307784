"""The head map in a real window: attention layers x heads of a tiny ViT-style model
(MultiHeadAttention blocks of 4 and 2 heads and a GroupQueryAttention of 4 query heads
on 2 KV heads), coloured by head importance; a click selects a head and the preview
scores it; undo removes it."""

import keras
import numpy as np
import pytest

pytest.importorskip("PySide6")

import gui_helpers as testing  # noqa: E402
from engine_models import randomize  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402

import neuronviz.api as nv  # noqa: E402

L = keras.layers
HEADS = {"mha_0": (4, 4), "gqa_1": (4, 2), "mha_2": (2, 2)}


def heads_model(dim=16, classes=3):
    x = keras.Input((16, 16, 3))
    h = L.Reshape((16, dim), name="tokens")(L.Conv2D(dim, 4, strides=4, name="patch")(x))
    for name, layer in (
        ("mha_0", L.MultiHeadAttention(4, 4, name="mha_0")),
        ("gqa_1", L.GroupQueryAttention(4, 4, 2, name="gqa_1")),
        ("mha_2", L.MultiHeadAttention(2, 8, name="mha_2")),
    ):
        a = L.LayerNormalization(name=f"ln_{name}")(h)
        h = L.Add(name=f"res_{name}")([h, layer(a, a)])
    h = L.GlobalAveragePooling1D(name="pool")(h)
    model = keras.Model(x, L.Dense(classes, name="head")(h))
    model = randomize(model, seed=4)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("heads")
    model = heads_model()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 16, 16, 3)).astype("float32")
    y = model.predict(x, verbose=0).argmax(axis=1)  # accuracy 1.0 before any removal
    model.save(d / "heads.keras")
    np.savez(d / "val.npz", x=x, y=y)
    return model, d / "heads.keras", d / "val.npz", nv.Dataset(x, y, 3)


def cell_center(view, layer: str, head: int) -> QPointF:
    return QPointF(head + 0.5, view.rows.index(layer) + 0.5)


def zeroed_head_accuracy(model, layer: str, head: int, data) -> float:
    """Accuracy with one head's output-projection rows zeroed by hand (no neuronviz)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    out = copy.get_layer(layer)._output_dense.kernel
    w = np.array(out.numpy())
    w[head] = 0
    out.assign(w)
    return float((copy.predict(data.x, verbose=0).argmax(axis=1) == data.y).mean())


def test_head_map_selects_heads_and_follows_the_plan(make, qtbot, files):
    model, path, val, data = files
    win = make(model=path, data=val)
    testing.wait_ready(qtbot, win)
    view = win.head_map
    qtbot.waitUntil(view.isVisible, timeout=5000)  # opened for a model with heads
    win.head_dock.close()
    win.menus.actions["head_map"].trigger()
    qtbot.waitUntil(view.isVisible, timeout=5000)
    s = win.state.session
    qtbot.waitUntil(lambda: s.head_scores("head_norm") is not None, timeout=60000)
    view.ensure_drawn()
    assert view.rows == list(HEADS) and view.values.shape == (3, 4)

    # colours follow the importance: the image's values are the measured head norms
    want = nv.importance(model, "head_norm", data=data)
    for r, layer in enumerate(view.rows):
        q = HEADS[layer][0]
        np.testing.assert_allclose(view.image.image[r, :q], want[layer], rtol=1e-4)
        assert np.isnan(view.values[r, q:]).all()  # mha_2: two empty cells
    assert view.empty_cells.image[2, 2:, 3].min() > 0 and view.empty_cells.image[0, :, 3].max() == 0
    assert [(r.x(), r.width()) for r in view.group_rects] == [
        pytest.approx((0.04, 1.92)),
        pytest.approx((2.04, 1.92)),
    ]
    assert all(int(r.y()) == 1 for r in view.group_rects)  # the GQA row only

    # the Activations heatmap of an attention layer: heads x samples, each head's output
    # norm per sample (their mean is head_norm)
    s.set_layer("gqa_1")
    win.heatmap.ensure_drawn()
    img, per_sample = win.heatmap.image.image, s.act("gqa_1").per_sample
    assert img.shape == (4, 48) and win.heatmap.info.text() == "4 heads"
    np.testing.assert_allclose(np.sort(img, axis=1), np.sort(per_sample.T, axis=1), rtol=1e-6)
    np.testing.assert_allclose(per_sample.mean(axis=0), want["gqa_1"], rtol=1e-4)

    # hovering a cell names layer, head and value
    pos = testing.scene_pos(view.plot, view.image, cell_center(view, "gqa_1", 3))
    qtbot.mouseMove(view.plot.viewport(), pos)
    qtbot.waitUntil(lambda: "gqa_1 · head 3" in view.image.toolTip(), timeout=5000)
    assert f"{want['gqa_1'][3]:.4g}" in view.image.toolTip()

    # the unit panel of a head: its saliency is that of the head's output norm (checked
    # against plain TensorFlow in test_gradients), on the sample where that norm is largest
    win.state.set_focus("gqa_1", 3)
    win.unit.ensure_drawn()
    qtbot.waitUntil(lambda: win.unit.saliency_for == ("gqa_1", 3), timeout=60000)
    i = int(np.argmax(per_sample[:, 3]))
    sal = np.abs(nv.saliency(model, "gqa_1", 3, data.x[i : i + 1])[0]).max(axis=-1)
    np.testing.assert_allclose(win.unit.sal_img.image, sal, rtol=1e-5, atol=1e-7)
    assert win.unit.sal_label.text == "saliency of its output norm"
    assert "query, value and output-projection weights" in win.unit.weights.titleLabel.text
    wq = model.get_layer("gqa_1")._query_dense.kernel.numpy()[:, 3]
    top = int(np.argmax(np.linalg.norm(wq, axis=1)))
    assert f"(ch {top})" in win.unit.upstream.text().split("<br>")[1]

    # a click puts exactly that head in the plan; the preview scores it
    testing.click_item(qtbot, view.plot, view.image, cell_center(view, "gqa_1", 3))
    assert s.plan == nv.Plan({"gqa_1": [3]})
    marks = view.marks.getData()
    assert list(marks[0]) == [3.5] and list(marks[1]) == [1.5]
    testing.wait_score(qtbot, win)
    independent = nv.evaluate(model, data, nv.Plan({"gqa_1": [3]}))
    assert s.score_for().accuracy == pytest.approx(independent.accuracy)
    assert s.score_for().loss == pytest.approx(independent.loss, rel=1e-4)
    assert independent.accuracy == pytest.approx(zeroed_head_accuracy(model, "gqa_1", 3, data))

    # undo elsewhere: the map follows
    win.menus.actions["undo"].trigger()
    assert s.plan == nv.Plan()
    view.ensure_drawn()
    assert len(view.marks.getData()[0]) == 0

    # the per-layer scale and Taylor importance (measured on demand, in the worker)
    view.importance.setCurrentIndex(view.importance.findData("head_taylor"))
    qtbot.waitUntil(lambda: s.head_scores("head_taylor") is not None, timeout=60000)
    view.scale.setCurrentIndex(1)
    view.ensure_drawn()
    taylor = s.head_scores("head_taylor")
    np.testing.assert_allclose(
        view.values[0, :4], taylor["mha_0"] / taylor["mha_0"].max(), rtol=1e-6
    )

    # measuring again and cancelling (Analysis > Cancel) keeps what was measured
    before = s.unit_data
    with qtbot.waitSignal(
        win.tasks.finished, timeout=30000, check_params_cb=lambda name, _: name == "heads"
    ) as done:
        view.compute.click()
        win.menus.actions["cancel"].trigger()
    assert done.args == ["heads", "cancelled"] and s.unit_data is before


def test_head_map_of_a_model_without_heads(qtbot):
    from neuronviz.gui.plan_editor import PlanEditor
    from neuronviz.gui.state import State
    from neuronviz.gui.views.head_map import HeadMapView
    from neuronviz.gui.views.unit_view import UnitView
    from neuronviz.gui.workers import Tasks
    from neuronviz.session import Session, analyze_parts

    x = keras.Input((4,))
    s = Session()
    s.set_model(analyze_parts(keras.Model(x, L.Dense(3, name="d")(L.Dense(5)(x)))))
    state = State(s)
    tasks = Tasks()
    view = HeadMapView(state, PlanEditor(state), tasks)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    assert "no attention heads" in view.message.toPlainText()
    unit = UnitView(state, PlanEditor(state), tasks)
    qtbot.addWidget(unit)
    state.set_focus("d", 1)
    unit._request_saliency()
    assert unit.sample_label.text == "no saliency map: the input is not an image"
    unit.cleanup()
    assert view.rows == [] and not view.compute.isEnabled()
    assert not s.set_unit_data(nv.UnitData(), keras.Model(x, x), s.dataset)  # another model's
    assert s.unit_data is None
    view.cleanup()


def test_head_map_opens_for_models_with_heads_only(make, qtbot, files):
    from neuronviz.resources import demo_model

    _, path, val, _ = files
    win = make(model=path, data=val)
    testing.wait_model(qtbot, win)
    qtbot.waitUntil(win.head_dock.isVisible, timeout=5000)
    win.open_model(demo_model())  # a CNN: no heads, no empty dock
    qtbot.waitUntil(lambda: win.state.session.model_path == demo_model(), timeout=60000)
    qtbot.waitUntil(lambda: not win.head_dock.isVisible(), timeout=5000)
    win.open_model(path)
    qtbot.waitUntil(win.head_dock.isVisible, timeout=60000)
