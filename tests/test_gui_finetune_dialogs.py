"""The fine-tuning and sparsify dialogs, driven like a user would (real models, real threads)."""

import math

import keras
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402

from neuronviz.gui.finetune_dialog import FinetuneDialog  # noqa: E402
from neuronviz.gui.sparsify_dialog import ALL_KERNELS, SparsifyDialog  # noqa: E402


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,))
    h = keras.layers.Dense(32, activation="relu", name="hidden")(inp)
    out = keras.layers.Dense(3, name="out")(h)
    return keras.Model(inp, out)


def tiny_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype("float32")
    return x, x[:, :3].argmax(axis=1).astype("int64")


def test_finetune_dialog_runs_and_compares(qtbot):
    model = tiny_model()
    dialog = FinetuneDialog(
        model,
        tiny_data(256),
        tiny_data(64, seed=1),
        before={"accuracy": 0.9, "loss": 0.3},
        epochs=2,
        batch_size=32,
        learning_rate=1e-2,
    )
    qtbot.addWidget(dialog)
    assert not dialog.use_button.isEnabled() and dialog.result_model is None
    with qtbot.waitSignal(dialog.training_finished, timeout=60000) as blocker:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert dialog.wait(10000)
    done = blocker.args[0]
    assert done.kind == "done" and done.stopped == "completed"
    assert dialog.progress_bar.value() == dialog.progress_bar.maximum()
    assert dialog.result_model is not None and dialog.result_model is not model
    assert (
        dialog.use_button.isEnabled()
        and dialog.start_button.isEnabled()
        and not dialog.cancel_button.isEnabled()
    )
    x, y = dialog.train_loss_curve.getData()
    assert len(x) == 2 * 8 and x[-1] == pytest.approx(2.0)  # one point per batch
    vx, vy = dialog.val_loss_curve.getData()
    assert list(vx) == [0.0, 1.0, 2.0] and all(math.isfinite(v) for v in vy)
    table = {
        dialog.table.verticalHeaderItem(r).text(): [
            dialog.table.item(r, c).text() for c in range(3)
        ]
        for r in range(3)
    }
    assert table["Before pruning"][:2] == ["0.9000", "0.3000"]
    pruned_acc, tuned = dialog.scores()["Pruned"][0], dialog.scores()["Fine-tuned"]
    assert table["Pruned"][0] == f"{pruned_acc:.4f}" and table["Fine-tuned"][1] == f"{tuned[1]:.4f}"
    assert (
        tuned[1] <= dialog.scores()["Pruned"][1]
    )  # best validation loss, never worse than the start
    assert table["Fine-tuned"][2].endswith("pts")


def test_cancel_really_cancels(qtbot):
    model = tiny_model()
    dialog = FinetuneDialog(model, tiny_data(4096), tiny_data(64, seed=1), epochs=20, batch_size=8)
    qtbot.addWidget(dialog)
    total = dialog.epochs.value() * 512
    dialog.start()
    qtbot.waitUntil(
        lambda: dialog.last_event is not None and dialog.last_event.kind == "batch", timeout=30000
    )
    assert dialog.cancel_button.isEnabled()
    with qtbot.waitSignal(dialog.training_finished, timeout=30000) as blocker:
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert dialog.wait(10000) and not dialog.running
    done = blocker.args[0]
    assert done.stopped == "cancelled" and dialog.job.stopped == "cancelled"
    trained = len(dialog.train_loss_curve.getData()[0])
    assert 0 < trained < total // 10  # it stopped long before the planned 10,240 batches
    assert dialog.progress_bar.value() < dialog.progress_bar.maximum() // 10
    assert dialog.result_model is None and not dialog.use_button.isEnabled()
    assert "Cancelled" in dialog.status.text()
    assert dialog.start_button.isEnabled()


def test_closing_while_training_stops_the_worker(qtbot):
    dialog = FinetuneDialog(
        tiny_model(), tiny_data(4096), tiny_data(64, seed=1), epochs=20, batch_size=8
    )
    qtbot.addWidget(dialog)
    dialog.start()
    qtbot.waitUntil(
        lambda: dialog.last_event is not None and dialog.last_event.kind == "batch", timeout=30000
    )
    dialog.reject()
    assert not dialog.running and dialog.job.cancelled


def test_sparsify_dialog_threshold_follows_the_amount(qtbot, demo_model):
    dialog = SparsifyDialog(demo_model, amount=0.3)
    qtbot.addWidget(dialog)
    assert (
        dialog.view == "dense/kernel" and dialog.scope == "layer"
    )  # the largest kernel by default
    assert dialog.slider.value() == 300
    dense = np.sort(np.abs(demo_model.get_layer("dense").kernel.numpy()).ravel())
    positions = []
    for amount in (0.3, 0.6, 0.9):
        dialog.spin.setValue(amount * 100)
        assert dialog.slider.value() == round(amount * 1000)
        assert dialog.threshold_line.isVisible()
        expected = dense[round(amount * dense.size) - 1]
        assert dialog.threshold_line.value() == pytest.approx(math.log10(expected), abs=1e-6)
        positions.append(dialog.threshold_line.value())
        assert f"{amount:.1%}" in dialog.sparsity_label.text()
    assert positions == sorted(positions) and positions[0] < positions[-1] - 0.5
    dialog.slider.setValue(450)  # the slider drives the spin box too
    assert dialog.amount == pytest.approx(0.45)
    assert dialog.threshold_line.value() == pytest.approx(
        math.log10(dense[round(0.45 * dense.size) - 1]), abs=1e-6
    )

    dialog.set_view(ALL_KERNELS)
    assert not dialog.threshold_line.isVisible()  # per-layer thresholds differ
    dialog.scope_box.setCurrentIndex(dialog.scope_box.findData("global"))
    assert dialog.threshold_line.isVisible()
    counts, _ = dialog.bars.getData()
    assert len(counts) > 0
    _, total = dialog.predicted_sparsity()
    assert total == pytest.approx(0.45, abs=1e-3)
    dialog.spin.setValue(0.0)
    assert not dialog.threshold_line.isVisible()


def test_sparsify_dialog_applies(qtbot):
    model = tiny_model()
    dialog = SparsifyDialog(model, amount=0.5, scope="global")
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.applied, timeout=10000) as blocker:
        dialog.buttons.accepted.emit()
    result = blocker.args[0]
    assert result is dialog.result and result.scope == "global"
    assert result.sparsity == pytest.approx(0.5, abs=1e-2)
    assert dialog.result.model is not model
    assert np.count_nonzero(model.get_layer("hidden").kernel.numpy()) == 8 * 32
    assert "not faster" in dialog.explanation.text() or "not speed" in dialog.explanation.text()


def test_finetune_dialog_keeps_a_sparse_models_zeros_by_default(qtbot):
    from neuronviz.backend.recovery.sparsity import sparsify

    sparse = sparsify(tiny_model(), 0.5, layers=["hidden"])
    zeros = ~sparse.masks["hidden/kernel"]
    dialog = FinetuneDialog(
        sparse.model, tiny_data(256), tiny_data(64, seed=1), epochs=2, batch_size=32,
        learning_rate=1e-2,
    )  # fmt: skip
    qtbot.addWidget(dialog)
    assert dialog.keep_zeros is not None and dialog.keep_zeros.isChecked()
    assert f"{int(zeros.sum()):,} zero weights" in dialog.keep_zeros.text()
    with qtbot.waitSignal(dialog.training_finished, timeout=60000):
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert dialog.wait(10000)
    tuned = dialog.result_model.get_layer("hidden").kernel.numpy()
    assert np.all(tuned[zeros] == 0)


def test_finetune_dialog_offers_nothing_for_a_dense_model(qtbot):
    dialog = FinetuneDialog(tiny_model(), tiny_data(64), tiny_data(32, seed=1))
    qtbot.addWidget(dialog)
    assert dialog.keep_zeros is None and not dialog.masks
