"""Fine-tuning dialog: run a FinetuneJob off the UI thread (a task of gui.workers.Tasks),
with live curves, a progress bar, a Cancel button that stops before the next batch, and
a before / pruned / fine-tuned comparison at the end.

    dialog = FinetuneDialog(pruned_model, train, val, before=score_before, pruned=score_pruned)
    if dialog.exec() == QDialog.Accepted:
        model = dialog.result_model
"""

from __future__ import annotations

import math
import queue

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from neuronviz.gui.workers import Tasks, drain

TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"
FINETUNE_TASK = "finetune"


def score_values(score) -> tuple[float | None, float | None]:
    """(accuracy, loss) from a dict {accuracy, loss}, a Score-like object, or None."""
    if score is None:
        return None, None
    get = score.get if isinstance(score, dict) else (lambda k: getattr(score, k, None))
    return _num(get("accuracy")), _num(get("loss"))


def _num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class FinetuneDialog(QDialog):
    """See the module docstring. `before` and `pruned` are optional {accuracy, loss}
    scores for the comparison table; without `pruned`, the score measured before
    training is used."""

    training_finished = Signal(object)  # the "done" Progress, or None on failure

    def __init__(
        self,
        model,
        train,
        val,
        *,
        before=None,
        pruned=None,
        epochs: int = 3,
        batch_size: int = 64,
        learning_rate: float = 1e-4,
        patience: int = 2,
        masks="auto",
        parent: QWidget | None = None,
        tasks: Tasks | None = None,
    ):
        super().__init__(parent)
        self.tasks = tasks if tasks is not None else Tasks(self)
        self.setWindowTitle("Fine-tune to recover accuracy")
        if isinstance(masks, str):  # "auto": the zeros of sparse kernels stay zero
            from neuronviz.api import sparse_masks

            masks = sparse_masks(model)
        self.model, self.train, self.val, self.masks = model, train, val, masks
        self.before, self.pruned = before, pruned
        self.job = None
        self.last_event = None
        self.error: str | None = None
        self._running = False
        self._events: queue.SimpleQueue = queue.SimpleQueue()  # Progress events, worker -> UI
        self._train_x: list[float] = []
        self._train_loss: list[float] = []
        self._train_acc: list[float] = []
        self._val_x: list[float] = []
        self._val_loss: list[float] = []
        self._val_acc: list[float] = []
        self._build(epochs, batch_size, learning_rate, patience)

    # ---- layout ---------------------------------------------------------------------
    def _build(self, epochs, batch_size, learning_rate, patience) -> None:
        self.epochs = QSpinBox(minimum=1, maximum=1000, value=int(epochs))
        self.batch_size = QSpinBox(minimum=1, maximum=65536, value=int(batch_size))
        self.learning_rate = QDoubleSpinBox(
            decimals=6, minimum=1e-6, maximum=1.0, singleStep=1e-4, value=float(learning_rate)
        )
        self.patience = QSpinBox(minimum=1, maximum=1000, value=int(patience))
        form = QFormLayout()
        form.addRow("Epochs (at most)", self.epochs)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Learning rate (Adam)", self.learning_rate)
        form.addRow("Early-stopping patience", self.patience)
        n_train, n_val = len(_labels(self.train)), len(_labels(self.val))
        self.info = QLabel(
            f"{n_train:,} training and {n_val:,} validation samples. The best epoch "
            "(lowest validation loss) is kept."
        )
        self.info.setWordWrap(True)
        self.keep_zeros = None
        if self.masks:
            from neuronviz.api import describe_masks

            self.keep_zeros = QCheckBox(f"Keep the {describe_masks(self.masks)} at zero")
            self.keep_zeros.setChecked(True)
            self.keep_zeros.setToolTip(
                "The model is sparse (e.g. made by Sparsify). Unchecked, its zero weights may "
                "move during training and the sparsity is lost."
            )
            form.addRow("", self.keep_zeros)

        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar(minimum=0, maximum=1000, value=0, textVisible=False)
        self.status = QLabel("Ready.")
        row = QHBoxLayout()
        row.addWidget(self.progress_bar, 1)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)

        self.loss_plot = pg.PlotWidget()
        self.acc_plot = pg.PlotWidget()
        for plot, label in ((self.loss_plot, "loss"), (self.acc_plot, "accuracy")):
            plot.setLabel("bottom", "epoch")
            plot.setLabel("left", label)
            plot.addLegend(offset=(-10, 10))
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setMinimumHeight(160)
        self.train_loss_curve = self.loss_plot.plot(
            pen=pg.mkPen(TRAIN_COLOR, width=2), name="train"
        )
        self.val_loss_curve = self.loss_plot.plot(
            pen=pg.mkPen(VAL_COLOR, width=2),
            symbol="o",
            symbolSize=7,
            symbolBrush=VAL_COLOR,
            name="validation",
        )
        self.train_acc_curve = self.acc_plot.plot(pen=pg.mkPen(TRAIN_COLOR, width=2), name="train")
        self.val_acc_curve = self.acc_plot.plot(
            pen=pg.mkPen(VAL_COLOR, width=2),
            symbol="o",
            symbolSize=7,
            symbolBrush=VAL_COLOR,
            name="validation",
        )
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.acc_plot)

        self.table = QTableWidget(3, 3)
        self.table.setHorizontalHeaderLabels(["Accuracy", "Loss", "Accuracy vs pruned"])
        self.table.setVerticalHeaderLabels(["Before pruning", "Pruned", "Fine-tuned"])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMaximumHeight(130)
        self._fill_table()

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Close
        )
        self.use_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.use_button.setText("Use fine-tuned model")
        self.use_button.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.info)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addLayout(plots, 1)
        layout.addWidget(self.table)
        layout.addWidget(self.buttons)
        self.resize(820, 640)

    # ---- running --------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def result_model(self):
        """The fine-tuned model (None until a run ends with one)."""
        return self.job.result if self.job is not None else None

    @Slot()
    def start(self) -> None:
        """Start a run with the current settings (a new copy of the model each time)."""
        if self.running:
            return
        from neuronviz.api import FinetuneJob
        from neuronviz.errors import NeuronvizError

        try:
            self.job = FinetuneJob(
                self.model,
                self.train,
                self.val,
                epochs=self.epochs.value(),
                batch_size=self.batch_size.value(),
                learning_rate=self.learning_rate.value(),
                patience=self.patience.value(),
                masks=self.masks if self.keep_zeros and self.keep_zeros.isChecked() else None,
            )
        except NeuronvizError as e:
            self._on_failed(str(e))
            return
        for series in (
            self._train_x,
            self._train_loss,
            self._train_acc,
            self._val_x,
            self._val_loss,
            self._val_acc,
        ):
            series.clear()
        self.error, self.last_event = None, None
        self._redraw()
        self.progress_bar.setValue(0)
        self.status.setText("Measuring the starting point…")
        self._running = True
        self._set_running(True)
        job, events = self.job, self._events

        def work():  # in the worker: events go through a queue, never through Qt
            last = None
            for event in job.run():
                last = event
                events.put(event)
                yield event.fraction
            return last

        self.tasks.submit(
            FINETUNE_TASK,
            work,
            self._on_finished,
            self._on_failed,
            lambda *_: self._drain_events(),
        )

    def _drain_events(self) -> None:
        drain(self._events, self._on_progress)

    @Slot()
    def cancel(self) -> None:
        """Ask the job to stop before its next batch."""
        if self.job is not None and self.running:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling…")

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the worker has ended and its results are shown (True) or `msecs` passed."""
        return self.tasks.wait(msecs, FINETUNE_TASK)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (self.epochs, self.batch_size, self.learning_rate, self.patience):
            w.setEnabled(not running)
        self.use_button.setEnabled(not running and self.result_model is not None)

    @Slot(object)
    def _on_progress(self, e) -> None:
        self.last_event = e
        self.progress_bar.setValue(int(round(e.fraction * 1000)))
        if e.kind == "batch":
            self._train_x.append(e.epoch - 1 + e.batch / e.batches)
            self._train_loss.append(e.loss)
            self._train_acc.append(e.accuracy)
            self.status.setText(
                f"Epoch {e.epoch}/{e.epochs}, batch {e.batch}/{e.batches}: "
                f"loss {e.loss:.4f}, accuracy {e.accuracy:.4f}"
            )
        elif e.kind in ("start", "epoch"):
            self._val_x.append(float(e.epoch))
            self._val_loss.append(e.val_loss)
            self._val_acc.append(e.val_accuracy)
            self.status.setText(
                f"Epoch {e.epoch}/{e.epochs}: validation loss {e.val_loss:.4f}, "
                f"accuracy {e.val_accuracy:.4f}"
                if e.epoch
                else f"Before training: validation loss {e.val_loss:.4f}, accuracy {e.val_accuracy:.4f}"
            )
        self._redraw()

    def _redraw(self) -> None:
        self.train_loss_curve.setData(self._train_x, self._train_loss)
        self.train_acc_curve.setData(self._train_x, self._train_acc)
        self.val_loss_curve.setData(self._val_x, self._val_loss)
        self.val_acc_curve.setData(self._val_x, self._val_acc)

    @Slot(object)
    def _on_finished(self, e) -> None:
        self._drain_events()
        self.last_event = e
        self._running = False
        self._set_running(False)
        why = {
            "completed": "Finished",
            "early_stopping": "Stopped early (no better validation loss)",
            "cancelled": "Cancelled",
        }.get(getattr(e, "stopped", None), "Finished")
        if self.result_model is not None:
            best = self.job.best
            self.status.setText(
                f"{why}. Keeping epoch {best['epoch']}: validation accuracy "
                f"{best['accuracy']:.4f}, loss {best['loss']:.4f}."
            )
        else:
            self.status.setText(f"{why} before the first epoch ended: no fine-tuned model.")
        self._fill_table()
        self.training_finished.emit(e)

    @Slot(str)
    def _on_failed(self, text: str) -> None:
        self.error = text
        self._running = False
        self._set_running(False)
        self.status.setText(f"Error: {text}")
        self.training_finished.emit(None)

    # ---- comparison -----------------------------------------------------------------
    def scores(self) -> dict[str, tuple[float | None, float | None]]:
        """Row label -> (accuracy, loss) as shown in the comparison table."""
        pruned = (
            self.pruned
            if self.pruned is not None
            else (self.job.initial if self.job is not None else None)
        )
        tuned = self.job.best if self.result_model is not None else None
        return {
            "Before pruning": score_values(self.before),
            "Pruned": score_values(pruned),
            "Fine-tuned": score_values(tuned),
        }

    def _fill_table(self) -> None:
        rows = self.scores()
        ref = rows["Pruned"][0]
        for r, (acc, loss) in enumerate(rows.values()):
            delta = f"{(acc - ref) * 100:+.2f} pts" if acc is not None and ref is not None else "—"
            cells = (
                f"{acc:.4f}" if acc is not None else "—",
                f"{loss:.4f}" if loss is not None else "—",
                delta,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)

    # ---- closing --------------------------------------------------------------------
    def done(self, code: int) -> None:
        if self.running:
            self.cancel()
            self.wait()
        super().done(code)

    def closeEvent(self, event) -> None:
        if self.running:
            self.cancel()
            self.wait()
        super().closeEvent(event)


def _labels(data):
    """The labels of (x, y) or of a Dataset."""
    return data.y if hasattr(data, "y") else data[1]
