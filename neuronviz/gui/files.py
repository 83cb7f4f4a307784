"""File dialogs, Recent Files (QSettings) and opening whatever was dropped."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5);;All files (*)"
DATA_FILTER = "Validation data (*.npz);;All files (*)"
PLAN_FILTER = "Selection plans (*.json);;All files (*)"
MAX_RECENT = 8
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def recent(win, kind: str) -> list[str]:
    value = win.settings.value(f"recent/{kind}", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or [])]


def remember(win, kind: str, path: str) -> None:
    path = str(Path(path).resolve()) if path != "demo" else path
    items = [path] + [p for p in recent(win, kind) if p != path]
    win.settings.setValue(f"recent/{kind}", items[:MAX_RECENT])
    win.settings.sync()
    win.refresh_recent()


def _start_dir(win, kind: str) -> str:
    items = recent(win, kind)
    return str(Path(items[0]).parent) if items else str(Path.home())


def ask_open_model(win) -> None:
    path, _ = QFileDialog.getOpenFileName(
        win, "Open a model", _start_dir(win, "models"), MODEL_FILTER
    )
    if path:
        win.open_model(path)


def ask_open_data(win) -> None:
    path, _ = QFileDialog.getOpenFileName(
        win, "Open validation data (.npz)", _start_dir(win, "data"), DATA_FILTER
    )
    if path:
        win.open_data(path)


def ask_open_image_folder(win) -> None:
    path = QFileDialog.getExistingDirectory(
        win, "Open an image folder (one sub-folder per class)", _start_dir(win, "data")
    )
    if path:
        win.open_data(path)


def ask_save_plan(win) -> None:
    s = win.state.session
    base = (s.model_path.stem if s.model_path else "model") + "-plan.json"
    path, _ = QFileDialog.getSaveFileName(
        win,
        "Save the selection as a plan",
        str(Path(_start_dir(win, "models")) / base),
        PLAN_FILTER,
    )
    if path:
        win.selection.save(path)


def ask_load_plan(win) -> None:
    path, _ = QFileDialog.getOpenFileName(
        win, "Load a selection plan", _start_dir(win, "models"), PLAN_FILTER
    )
    if path:
        win.selection.load(path)


def open_any(win, paths: list[str]) -> None:
    """Open dropped files: a model, then data (.npz or a folder), then a plan (.json)."""
    models = [p for p in paths if Path(p).suffix.lower() in MODEL_SUFFIXES]
    data = [p for p in paths if Path(p).suffix.lower() == ".npz" or Path(p).is_dir()]
    plans = [p for p in paths if Path(p).suffix.lower() == ".json"]
    other = [p for p in paths if p not in models + data + plans]
    if models:
        win.open_model(models[0], data=data[0] if data else None)
    elif data:
        win.open_data(data[0])
    if plans and not models:
        win.selection.load(plans[0])
    if other and not (models or data or plans):
        win.show_message(
            "error",
            f"Expected a .keras/.h5 model, .npz data, an image folder or a .json plan. "
            f"Received: '{Path(other[0]).name}'",
        )
