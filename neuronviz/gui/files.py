"""File dialogs, Recent Files (QSettings) and opening whatever was dropped. Each function
receives the Workbench (settings, parent widget, open actions), not the window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5);;All files (*)"
DATA_FILTER = "Validation data (*.npz);;All files (*)"
PLAN_FILTER = "Selection plans (*.json);;All files (*)"
MAX_RECENT = 8
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def recent(settings, kind: str) -> list[str]:
    value = settings.value(f"recent/{kind}", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or [])]


def remember(bench, kind: str, path: str) -> None:
    path = str(Path(path).resolve()) if path != "demo" else path
    items = [path] + [p for p in recent(bench.settings, kind) if p != path]
    bench.settings.setValue(f"recent/{kind}", items[:MAX_RECENT])
    bench.settings.sync()
    bench.recent_changed()


def _start_dir(bench, kind: str) -> str:
    items = recent(bench.settings, kind)
    return str(Path(items[0]).parent) if items else str(Path.home())


def ask_open_model(bench) -> None:
    path, _ = QFileDialog.getOpenFileName(
        bench.parent, "Open a model", _start_dir(bench, "models"), MODEL_FILTER
    )
    if path:
        bench.open_model(path)


def ask_open_data(bench) -> None:
    path, _ = QFileDialog.getOpenFileName(
        bench.parent, "Open validation data (.npz)", _start_dir(bench, "data"), DATA_FILTER
    )
    if path:
        bench.open_data(path)


def ask_open_image_folder(bench) -> None:
    path = QFileDialog.getExistingDirectory(
        bench.parent, "Open an image folder (one sub-folder per class)", _start_dir(bench, "data")
    )
    if path:
        bench.open_data(path)


def ask_save_plan(bench) -> None:
    s = bench.session
    base = (s.model_path.stem if s.model_path else "model") + "-plan.json"
    path, _ = QFileDialog.getSaveFileName(
        bench.parent,
        "Save the selection as a plan",
        str(Path(_start_dir(bench, "models")) / base),
        PLAN_FILTER,
    )
    if path:
        bench.editor.save(path)


def ask_load_plan(bench) -> None:
    path, _ = QFileDialog.getOpenFileName(
        bench.parent, "Load a selection plan", _start_dir(bench, "models"), PLAN_FILTER
    )
    if path:
        bench.editor.load(path)


def open_any(bench, paths: list[str]) -> None:
    """Open dropped files: a model, then data (.npz or a folder), then a plan (.json)."""
    models = [p for p in paths if Path(p).suffix.lower() in MODEL_SUFFIXES]
    data = [p for p in paths if Path(p).suffix.lower() == ".npz" or Path(p).is_dir()]
    plans = [p for p in paths if Path(p).suffix.lower() == ".json"]
    other = [p for p in paths if p not in models + data + plans]
    if models:
        bench.open_model(models[0], data=data[0] if data else None)
    elif data:
        bench.open_data(data[0])
    if plans and not models:
        bench.editor.load(plans[0])
    if other and not (models or data or plans):
        bench.state.error(
            f"Expected a .keras/.h5 model, .npz data, an image folder or a .json plan. "
            f"Received: '{Path(other[0]).name}'",
        )
