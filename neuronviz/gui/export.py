"""Export: prune the model and save it (atomic, reload-checked) in a worker with
progress; optionally also the plan JSON and a Markdown report; then offer to reopen the
pruned model or fine-tune it."""

from __future__ import annotations

import warnings
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from neuronviz.gui.files import MODEL_FILTER


def default_output(session) -> Path:
    """Next to the model file; in the working directory for the bundled demo."""
    from neuronviz.resources import demo_dir

    path = session.model_path
    bundled = path is not None and demo_dir() in path.resolve().parents
    if path is None or bundled or not path.parent.exists():
        return Path.cwd() / f"{session.model.name}-pruned.keras"
    return path.parent / f"{path.stem}-pruned.keras"


class ExportDialog(QDialog):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        s = session
        self.setWindowTitle("Export the pruned model")
        self.path = QLineEdit(str(default_output(s)))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        total, n = s.unit_totals()
        after = s.counts_after()
        summary = QLabel(
            f"Removes {n} of {total} units: {s.before.params:,} → {after.params:,} parameters."
        )
        summary.setWordWrap(True)
        self.save_plan = QCheckBox("Also save the selection as a plan (.plan.json)")
        self.save_plan.setChecked(True)
        self.report = QCheckBox("Also write a Markdown report with plots")
        self.report.setChecked(True)
        self.reopen = QCheckBox("Open the pruned model afterwards")
        self.finetune = QCheckBox("Fine-tune the pruned model afterwards…")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Save the pruned model as (.keras or .h5):"))
        lay.addLayout(row)
        lay.addWidget(summary)
        for w in (self.save_plan, self.report, self.reopen, self.finetune):
            lay.addWidget(w)
        lay.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the pruned model", self.path.text(), MODEL_FILTER
        )
        if path:
            self.path.setText(path)

    def options(self) -> dict:
        return {
            "path": Path(self.path.text()).expanduser(),
            "plan": self.save_plan.isChecked(),
            "report": self.report.isChecked(),
            "reopen": self.reopen.isChecked(),
            "finetune": self.finetune.isChecked(),
        }


def start_export(bench, options: dict) -> None:
    """Run the export in the "export" task; results are reported through the State.
    The scores come from the Session (the preview's); only a score the preview has not
    delivered yet is computed here, and handed to the Session."""
    import neuronviz.api as api

    s, st = bench.session, bench.state
    plan = s.plan
    if not plan:
        st.error("Select units to remove before exporting.")
        return
    model, trace, source, previewer = s.model, s.trace, s.model_path, s.previewer
    base, known = s.baseline, s.score_for(plan)
    out = Path(options["path"])

    def job():
        yield 0.05, "Pruning the model…"
        with warnings.catch_warnings(record=True) as caught:  # said once, when done
            warnings.simplefilter("always")
            result = api.prune(model, plan, trace)
        notes = [str(w.message) for w in caught if w.category is UserWarning]
        yield 0.4, "Saving and checking the saved model…"
        path = api.save_pruned(result, out, model, plan, source=source)
        score = known
        if previewer is not None and score is None:
            yield 0.9, "Scoring…"
            score = previewer.score(plan)
        return result, path, score, notes

    def done(payload):
        result, path, score, notes = payload
        if score is not None and known is None:
            s.set_score(plan, score, previewer)
        scores = (base, score) if previewer is not None else None
        written = [path.name]
        plan_path = None
        try:
            if options.get("plan"):
                plan_path = path.with_name(path.stem + ".plan.json")
                plan.save(plan_path)
                written.append(plan_path.name)
            if options.get("report"):
                from neuronviz.gui.report import write_report

                md = write_report(s, path, result, *(scores or (None, None)), plan_path=plan_path)
                written.append(f"{md.parent.name}/{md.name}")
        except Exception as e:  # noqa: BLE001 - the model is saved; say what else failed
            from neuronviz.gui.workers import error_text

            st.error(f"Saved {path.name}, but writing the extras failed: {error_text(e)}")
        bench.last_export = (path, result)
        if options.get("finetune"):
            from neuronviz.gui.integrations import open_finetune

            open_finetune(bench, path)
        elif options.get("reopen"):
            bench.open_model(path, data=s.data_source)
        st.message.emit(
            "warning" if notes else "info",
            f"Saved {', '.join(written)} — {result.before.params:,} → {result.after.params:,} parameters "
            f"(reload check passed)." + "".join(f" {n}" for n in notes),
        )

    bench.tasks.submit("export", job, done, lambda msg: st.error(f"Export failed: {msg}"))


def run_export_dialog(bench) -> ExportDialog | None:
    if not bench.session.plan:
        bench.state.error("Select units to remove before exporting.")
        return None
    dlg = ExportDialog(bench.session, bench.parent)
    dlg.accepted.connect(lambda: start_export(bench, dlg.options()))
    dlg.open()
    return dlg
