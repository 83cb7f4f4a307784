"""Hooks to the standalone fine-tune and sparsify dialogs (neuronviz.gui.finetune_dialog
and neuronviz.gui.sparsify_dialog): what data they get, and what happens to their result."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from neuronviz.errors import NeuronvizError
from neuronviz.gui.files import DATA_FILTER, MODEL_FILTER
from neuronviz.gui.workers import error_text


def _module(name: str):
    try:
        if importlib.util.find_spec(f"neuronviz.gui.{name}") is None:
            return None
        return importlib.import_module(f"neuronviz.gui.{name}")
    except ImportError:
        return None


def has_finetune() -> bool:
    return _module("finetune_dialog") is not None


def has_sparsify() -> bool:
    return _module("sparsify_dialog") is not None


def training_data(win, model):
    """Training data for fine-tuning: the demo's training split for the demo, else a
    file the user picks (None if cancelled)."""
    from neuronviz.backend.model.data import load_data

    s = win.state.session
    if s.data_source == "demo":
        from neuronviz.resources import demo_train

        return load_data(demo_train(), model)
    path, _ = QFileDialog.getOpenFileName(
        win, "Training data for fine-tuning (.npz)", str(Path.home()), DATA_FILTER
    )
    return load_data(path, model) if path else None


def open_finetune(win, model_path=None):
    """Fine-tune the pruned model at `model_path` (default: the open model); the result is
    saved next to it as '<name>-finetuned.keras' and can be reopened."""
    mod = _module("finetune_dialog")
    s = win.state.session
    if mod is None:
        win.state.error("Fine-tuning is not available in this installation.")
        return None
    if s.dataset is None:
        win.state.error("Fine-tuning needs validation data: open it first (Ctrl+D).")
        return None
    import neuronviz.api as api

    path = Path(model_path) if model_path else s.model_path
    try:
        model = api.load_model(path) if model_path else s.model
        train = training_data(win, model)
    except NeuronvizError as e:
        win.state.error(str(e))
        return None
    if train is None:
        return None
    base, score = win.state.baseline, win.state.score
    dlg = mod.FinetuneDialog(
        model, train, s.dataset, before=base, pruned=score if model_path else None, parent=win
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
            win.state.error(f"Could not save the fine-tuned model: {error_text(e)}")
            return
        win.state.info(f"Saved the fine-tuned model as {out.name}.")
        win.last_finetuned = out

    dlg.accepted.connect(accepted)
    dlg.open()
    return dlg


def open_sparsify(win):
    """Zero the smallest weights of the open model; the result is saved where the user says."""
    mod = _module("sparsify_dialog")
    s = win.state.session
    if mod is None:
        win.state.error("Sparsifying is not available in this installation.")
        return None
    dlg = mod.SparsifyDialog(s.model, parent=win)

    def applied(result):
        stem = s.model_path.stem if s.model_path else s.model.name
        path, _ = QFileDialog.getSaveFileName(
            win, "Save the sparse model", str(Path.cwd() / f"{stem}-sparse.keras"), MODEL_FILTER
        )
        if not path:
            return
        import neuronviz.api as api

        try:
            out = api.save_model(result.model, path, source=s.model_path)
        except Exception as e:  # noqa: BLE001
            win.state.error(f"Could not save the sparse model: {error_text(e)}")
            return
        win.state.info(f"Saved {out.name}: {result.sparsity:.1%} of kernel weights are zero.")

    dlg.applied.connect(applied)
    dlg.open()
    return dlg
