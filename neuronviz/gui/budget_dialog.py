"""Prune to a budget: a target (MACs, params, size or latency), the importance that ranks
units, the scope and the channel rounding. The plan is made by `nv.plan_to_budget` in a
worker (one task of `Tasks`, with progress and cancel) and replaces the selection as one
undoable step, which the user can then edit by hand. With more than one step, the
budget's widths are reached by prune -> fine-tune steps (`nv.budget_schedule`) and the
result is saved as a new model; the selection is not changed.

A refusal (an unreachable budget, a criterion that needs data ...) is the API's one line
in the dialog, and nothing changes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from neuronviz.errors import NeuronvizError
from neuronviz.gui import rounding
from neuronviz.gui.files import DATA_FILTER, MODEL_FILTER
from neuronviz.gui.workers import report

BUDGET_TASK = "budget"
# kind -> (label, suffix, range, default); macs/params are shown in % of the original
KINDS = {
    "macs": ("MACs", " % of the original", (0.1, 100.0), 50.0),
    "params": ("Parameters", " % of the original", (0.1, 100.0), 50.0),
    "size": ("Size", " MB (float32 weights)", (0.001, 1e6), 1.0),
    "latency": ("Latency (measured)", " ms per batch", (0.001, 1e6), 10.0),
}
SCOPES = [
    ("auto", "Auto: global, or with data the better-scoring of both"),
    ("global", "Global: rank units across all groups"),
    ("layer", "Per layer: the same share of every group"),
]


def _demo_train() -> str:
    from neuronviz.resources import demo_train

    return str(demo_train())


def _line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


class BudgetDialog(QDialog):
    """See the module docstring. Receives the Workbench."""

    done_run = Signal(str)  # "applied", "unchanged", "saved", "error", "cancelled"

    def __init__(self, bench, parent: QWidget | None = None):
        super().__init__(parent if parent is not None else bench.parent)
        self.bench = bench
        self.setWindowTitle("Prune to a budget")
        self.result_plan = None  # the BudgetPlan of the last successful run
        self.saved: Path | None = None  # the model saved by the last schedule
        self._running = False
        self._build()
        self._on_kind()
        self._on_steps()
        bench.tasks.finished.connect(self._on_task_finished)

    @property
    def session(self):
        return self.bench.session

    # ---- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        import neuronviz.api as api

        s = self.session
        self.kind = QComboBox()
        for key, (label, *_) in KINDS.items():
            self.kind.addItem(label, key)
        self.value = QDoubleSpinBox(decimals=3)
        self.batch = QSpinBox(minimum=1, maximum=65536, value=32)
        self.batch.setToolTip("Batch size at which latency is measured")
        self.criterion = QComboBox()
        for name in api.IMPORTANCES:
            self.criterion.addItem(name, name)
        self.criterion.setCurrentIndex(self.criterion.findData("l2"))
        self.criterion.setToolTip(
            "The importance that ranks units (l1, l2 and bn_gamma read the weights; the "
            "others need validation data)"
        )
        self.scope = QComboBox()
        for key, text in SCOPES:
            self.scope.addItem(text, key)
        self.round_to = QSpinBox(minimum=1, maximum=1024)
        self.round_to.setValue(rounding.round_to(self.bench.settings))
        self.round_to.setSpecialValueText("1 (off)")
        self.round_to.setToolTip(
            "Every group that loses units keeps a multiple of N (the app's Channel Rounding "
            "setting; full SIMD blocks keep the latency in line with the MACs)"
        )
        self.refine = QCheckBox("Refine the units on the validation data (exact loss; slower)")
        self.refine.setToolTip(
            "Keep the widths found and choose each layer's units again by their exact loss "
            "on the open data, in four block-greedy rounds (about three previews per unit "
            "removed, per round). Kept only where it lowers the loss. Needs validation data."
        )
        self.refine.setEnabled(s.dataset is not None)
        self.steps = QSpinBox(minimum=1, maximum=50, value=1)
        self.steps.setSpecialValueText("1 (prune at once: fill the selection)")
        self.epochs = QSpinBox(minimum=1, maximum=1000, value=1)
        self.train = QLineEdit(_demo_train() if s.data_source == "demo" else "")
        self.train.setPlaceholderText("training data (.npz or an image folder)")
        self.output = QLineEdit(str(self._default_output()))
        form = QFormLayout()
        form.addRow("Target", self.kind)
        form.addRow("Budget", self.value)
        form.addRow("Latency batch size", self.batch)
        form.addRow("Rank units by", self.criterion)
        form.addRow("Scope", self.scope)
        form.addRow("Round widths to multiples of", self.round_to)
        form.addRow("", self.refine)
        form.addRow("Steps", self.steps)
        form.addRow("Fine-tune epochs per step", self.epochs)
        form.addRow("Fine-tune data", self._with_browse(self.train, self._browse_train))
        form.addRow("Save the result as", self._with_browse(self.output, self._browse_output))
        self.form = form
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.progress = QProgressBar(minimum=0, maximum=1000, value=0, textVisible=False)
        self.progress.setMaximumHeight(6)
        self.run_button = QPushButton("Plan")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.open_button = QPushButton("Open the result")
        self.open_button.setVisible(False)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self._open_result)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.note)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.open_button)
        lay.addWidget(self.buttons)
        self.kind.currentIndexChanged.connect(self._on_kind)
        self.steps.valueChanged.connect(self._on_steps)
        self.resize(520, 0)

    def _with_browse(self, edit: QLineEdit, slot) -> QWidget:
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit, 1)
        b = QToolButton()
        b.setText("…")
        b.clicked.connect(slot)
        h.addWidget(b)
        return w

    def _default_output(self) -> Path:
        s = self.session
        path = s.model_path
        stem = path.stem if path else (s.model.name if s.model is not None else "model")
        folder = Path.cwd() if path is None or "neuronviz/demo" in path.as_posix() else path.parent
        return folder / f"{stem}-budget.keras"

    def _browse_train(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Training data", str(Path.home()), DATA_FILTER)
        if path:
            self.train.setText(path)

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the scheduled model", self.output.text(), MODEL_FILTER
        )
        if path:
            self.output.setText(path)

    def _on_kind(self) -> None:
        kind = self.kind.currentData()
        _, suffix, (lo, hi), default = KINDS[kind]
        self.value.setDecimals(1 if kind in ("macs", "params") else 3)
        self.value.setRange(lo, hi)
        self.value.setSuffix(suffix)
        if kind == "size" and self.session.before is not None:
            default = round(self.session.before.params * 4 / 1e6 / 2, 3)
        if kind == "latency" and self.session.latency is not None:
            default = round(0.7 * self.session.latency.original_ms, 3)
        self.value.setValue(default)
        self._show_row(self.batch, kind == "latency")

    def _on_steps(self) -> None:
        schedule = self.steps.value() > 1
        for w in (self.epochs, self.train.parentWidget(), self.output.parentWidget()):
            self._show_row(w, schedule)
        self.run_button.setText("Run schedule" if schedule else "Plan")
        self.note.setText(self._note(schedule))
        self.adjustSize()

    def _show_row(self, field: QWidget, visible: bool) -> None:
        self.form.setRowVisible(field, visible)

    def _note(self, schedule: bool) -> str:
        s = self.session
        if schedule:
            return (
                "The budget's widths are reached in prune → fine-tune steps, validated on the "
                "open data; the result is saved as a new model. Your selection is not changed."
            )
        n = sum(len(v) for v in s.plan.remove.values())
        if not n:
            return "The plan becomes the selection; you can then edit it by hand."
        return (
            f"The plan replaces your current selection ({n} unit{'s' if n != 1 else ''} in "
            f"{len(s.plan.remove)} layer{'s' if len(s.plan.remove) != 1 else ''}); "
            "Edit ▸ Undo (Ctrl+Z) brings it back."
        )

    # ---- what to run ------------------------------------------------------------------
    def target(self) -> str:
        kind, v = self.kind.currentData(), self.value.value()
        return f"{kind}={v / 100 if kind in ('macs', 'params') else v:g}"

    def options(self) -> dict:
        """The keyword arguments given to `nv.plan_to_budget` (with the open data)."""
        return {
            "criterion": self.criterion.currentData(),
            "scope": self.scope.currentData(),
            "round_to": self.round_to.value(),
            "batch_size": self.batch.value(),
            "refine": self.refine.isChecked() and self.refine.isEnabled(),
        }

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if self._running or self.session.model is None:
            return
        s, tasks = self.session, self.bench.tasks
        steps = self.steps.value()
        target, kw = self.target(), self.options()
        rounding.set_round_to(self.bench.settings, kw["round_to"])
        self.open_button.setVisible(False)
        try:
            if steps > 1:
                job = s.schedule_job(
                    target,
                    self.train.text().strip(),
                    self.output.text().strip(),
                    steps=steps,
                    epochs_per_step=self.epochs.value(),
                    report=report,
                    **kw,
                )
                done = self._on_schedule
            else:
                job, done = s.budget_job(target, report=report, **kw), self._on_plan
        except NeuronvizError as e:
            self._on_error(str(e))
            return
        self._set_running(True)
        self.status.setText(f"Planning to {target}…")
        tasks.submit(BUDGET_TASK, job, done, self._on_error, self._on_progress)

    def _on_progress(self, frac: float, text: str) -> None:
        if frac > 0:  # busy until the first real step
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(round(1000 * frac)))
        if text:
            self.status.setText(text)

    def _on_plan(self, budget) -> None:
        self._set_running(False)
        self.result_plan = budget
        if not budget.plan:
            self.status.setText(f"The model already meets {budget.target}: nothing to remove.")
            self.done_run.emit("unchanged")
            return
        if not self.bench.editor.apply(budget.plan, f"Prune to budget {budget.target}"):
            self.status.setText("The plan was refused: see the message in the main window.")
            self.done_run.emit("error")
            return
        b, a = budget.before, budget.after
        self.bench.status(
            f"Budget {budget.target} met: MACs {a.macs / b.macs:.1%} and params "
            f"{a.params / b.params:.1%} of the original ({budget.criterion}, scope "
            f"{budget.scope}, round_to {budget.round_to}"
            f"{', units refined on the data' if budget.refined else ''}). Ctrl+Z restores the previous "
            "selection.",
            15000,
        )
        self.done_run.emit("applied")
        self.accept()

    def _on_schedule(self, result) -> None:
        self._set_running(False)
        budget, history, saved = result
        self.result_plan, self.saved = budget, Path(saved)
        last = history[-1]
        acc = (
            f"; accuracy {last.pruned['accuracy']:.4f} pruned → "
            f"{last.finetuned['accuracy']:.4f} fine-tuned at step {last.step}"
            if last.pruned and last.finetuned
            else ""
        )
        self.status.setText(
            f"Saved {self.saved.name} after {last.step} of {last.steps} steps: params "
            f"{budget.before.params:,} → {last.params:,}{acc}."
        )
        self.open_button.setVisible(True)
        self.done_run.emit("saved")

    def _on_error(self, msg: str) -> None:
        self._set_running(False)
        self.status.setText(_line(msg))
        self.done_run.emit("error")

    def cancel(self) -> None:
        if not self._running:
            return
        self.bench.tasks.cancel(BUDGET_TASK)
        self._set_running(False)
        self.status.setText("Cancelled: nothing changed.")
        self.done_run.emit("cancelled")

    def _on_task_finished(self, name: str, outcome: str) -> None:
        if name == BUDGET_TASK and outcome == "cancelled":  # e.g. from the status bar
            self.cancel()

    def _set_running(self, on: bool) -> None:
        self._running = on
        self.run_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        self.progress.setRange(0, 0 if on else 1000)
        if not on:
            self.progress.setValue(0)
        for w in (self.kind, self.value, self.batch, self.criterion, self.scope):
            w.setEnabled(not on)
        self.refine.setEnabled(not on and self.session.dataset is not None)
        for w in (self.round_to, self.steps, self.epochs, self.train, self.output):
            w.setEnabled(not on)

    def _open_result(self) -> None:
        if self.saved is not None:
            self.bench.open_model(self.saved, data=self.session.data_source)
            self.accept()

    # ---- closing ----------------------------------------------------------------------
    def done(self, code: int) -> None:
        self.cancel()
        try:
            self.bench.tasks.finished.disconnect(self._on_task_finished)
        except (RuntimeError, TypeError):
            pass
        super().done(code)


def run_budget_dialog(bench) -> BudgetDialog | None:
    if bench.session.model is None:
        return None
    dlg = BudgetDialog(bench)
    dlg.open()
    return dlg
