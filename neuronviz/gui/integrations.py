"""Hooks to the standalone fine-tune and sparsify dialogs (another package's files)."""

from __future__ import annotations

import importlib
import importlib.util


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


def open_finetune(win, model_path=None):
    mod = _module("finetune_dialog")
    if mod is None:
        win.state.error("Fine-tuning is not available in this installation.")
        return None
    raise NotImplementedError  # wired once the dialog's API is known


def open_sparsify(win):
    mod = _module("sparsify_dialog")
    if mod is None:
        win.state.error("Sparsifying is not available in this installation.")
        return None
    raise NotImplementedError
