"""What dialogs and file actions receive instead of the main window: the Session (via
the State relay), the task runner, the plan editor, a parent widget for dialogs, the
settings, and the few window actions they may trigger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QWidget

from neuronviz.gui.plan_editor import PlanEditor
from neuronviz.gui.state import State
from neuronviz.gui.workers import Tasks


@dataclass
class Workbench:
    state: State
    tasks: Tasks
    editor: PlanEditor
    parent: QWidget
    settings: QSettings
    open_model: Callable  # (path, data=None, layer=None)
    open_data: Callable  # (source)
    status: Callable  # (text, msecs): a transient status-bar line
    recent_changed: Callable  # () after the recent-files list changed
    last_export: tuple | None = None  # (path, PruneResult) of the last export
    last_finetuned: Path | None = None  # where the last fine-tuned model was saved

    @property
    def session(self):
        return self.state.session
