"""Opening the fine-tune and sparsify dialogs from the main window: what data they get,
and what happens to their result. Each function receives the Workbench, not the window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from neuronviz.errors import NeuronvizError
from neuronviz.gui.files import DATA_FILTER, MODEL_FILTER
from neuronviz.gui.finetune_dialog import FinetuneDialog
from neuronviz.gui.sparsify_dialog import SparsifyDialog
from neuronviz.gui.workers import error_text


def training_data(bench, model):
    """Training data for fine-tuning: the demo's training split for the demo, else a
    file the user picks (None if cancelled)."""
    import neuronviz.api as api

    if bench.session.data_source == "demo":
        from neuronviz.resources import demo_train

        return api.load_data(demo_train(), model)
    path, _ = QFileDialog.getOpenFileName(
        bench.parent, "Training data for fine-tuning (.npz)", str(Path.home()), DATA_FILTER
    )
    return api.load_data(path, model) if path else None


def open_finetune(bench, model_path=None):
    """Fine-tune the pruned model at `model_path` (default: the open model); the result is
    saved next to it as '<name>-finetuned.keras' and can be reopened."""
    import neuronviz.api as api

    s, st = bench.session, bench.state
    if s.dataset is None:
        st.error("Fine-tuning needs validation data: open it first (Ctrl+D).")
        return None
    path = Path(model_path) if model_path else s.model_path
    try:
        model = api.load_model(path) if model_path else s.model
        train = training_data(bench, model)
    except NeuronvizError as e:
        st.error(str(e))
        return None
    if train is None:
        return None
    pruned = s.score_for() if model_path else None
    dlg = FinetuneDialog(
        model, train, s.dataset, before=s.baseline, pruned=pruned, parent=bench.parent
    )

    def accepted():
        tuned = dlg.result_model
        if tuned is None:
            return
        out = (
            path.with_name(path.stem + "-finetuned.keras")
            if path
            else Path.cwd() / "finetuned.keras"
        )
        try:
            api.save_model(tuned, out, source=s.model_path)
        except Exception as e:  # noqa: BLE001
            st.error(f"Could not save the fine-tuned model: {error_text(e)}")
            return
        st.info(f"Saved the fine-tuned model as {out.name}.")
        bench.last_finetuned = out

    dlg.accepted.connect(accepted)
    dlg.open()
    return dlg


def open_sparsify(bench):
    """Zero the smallest weights of the open model; the result is saved where the user says."""
    s, st = bench.session, bench.state
    dlg = SparsifyDialog(s.model, parent=bench.parent)

    def applied(result):
        stem = s.model_path.stem if s.model_path else s.model.name
        path, _ = QFileDialog.getSaveFileName(
            bench.parent,
            "Save the sparse model",
            str(Path.cwd() / f"{stem}-sparse.keras"),
            MODEL_FILTER,
        )
        if not path:
            return
        import neuronviz.api as api

        try:
            out = api.save_model(result.model, path, source=s.model_path)
        except Exception as e:  # noqa: BLE001
            st.error(f"Could not save the sparse model: {error_text(e)}")
            return
        st.info(f"Saved {out.name}: {result.sparsity:.1%} of kernel weights are zero.")

    dlg.applied.connect(applied)
    dlg.open()
    return dlg
