"""Plan editing with undo/redo: every change is a QUndoCommand that swaps Plans.

Views translate mouse gestures into (layer, indices, op) and call `PlanEditor.click` or
`PlanEditor.edit`; the Session validates the new plan (through its plan cache). A refused plan (for example one
that would empty a layer) is reported as a one-line message and nothing changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QUndoCommand, QUndoStack

from neuronviz.core.plan import Plan, format_spec
from neuronviz.errors import NeuronvizError
from neuronviz.gui.state import State


class PlanCommand(QUndoCommand):
    def __init__(self, state: State, old: Plan, new: Plan, text: str):
        super().__init__(text)
        self.state, self.old, self.new = state, old, new

    def redo(self) -> None:
        self.state.session.set_plan(self.new)

    def undo(self) -> None:
        self.state.session.set_plan(self.old)


class PlanEditor(QObject):
    """Undoable edits of the Session's plan (the resolved plan is core.units.Selection)."""

    def __init__(self, state: State, parent=None):
        super().__init__(parent)
        self.state = state
        self.stack = QUndoStack(self)
        self._anchor: tuple[str, int] | None = None  # for Shift-click ranges
        state.modelChanged.connect(self._reset)

    @property
    def session(self):
        return self.state.session

    def _reset(self) -> None:
        self.stack.clear()
        self._anchor = None

    def apply(self, plan: Plan, text: str) -> bool:
        """Make `plan` the selection (undoable). False, with a message, if refused."""
        s = self.session
        if s.trace is None:
            return False
        if plan == s.plan:
            return True
        try:
            s.check_plan(plan)
        except NeuronvizError as e:
            self.state.error(str(e))
            return False
        self.stack.push(PlanCommand(self.state, s.plan, plan, text))
        return True

    def edit(self, layer: str, indices, op: str, text: str | None = None) -> bool:
        s = self.session
        why = s.why_not_selectable(layer)
        if why is not None:
            self.state.error(f"Units of layer '{layer}' cannot be selected: {why}.")
            return False
        idx = np.asarray(list(indices), np.int64)
        try:
            plan = s.edited(layer, idx, op)
        except NeuronvizError as e:
            self.state.error(str(e))
            return False
        label = text or f"{op.capitalize()} {layer}:{format_spec(idx) if len(idx) else '-'}"
        applied = self.apply(plan, label)
        warning = s.output_warning(layer)
        if applied and warning and plan.remove.get(layer):
            self.state.warning(warning)
        return applied

    def click(self, layer: str, unit: int, modifiers, order=None) -> bool:
        """A click on `unit`: plain click toggles it; Ctrl-click adds it; Shift-click
        selects the range from the last clicked unit (in display `order`, if given)."""
        mods = Qt.KeyboardModifier(modifiers)
        if mods & Qt.KeyboardModifier.ShiftModifier and self._anchor and self._anchor[0] == layer:
            order = np.arange(self.session.units(layer)) if order is None else np.asarray(order)
            pos = {int(u): i for i, u in enumerate(order)}
            a, b = sorted((pos[self._anchor[1]], pos[int(unit)]))
            ok = self.edit(layer, order[a : b + 1], "add", f"Select {layer} range")
        elif mods & Qt.KeyboardModifier.ControlModifier:
            ok = self.edit(layer, [unit], "add")
        else:
            ok = self.edit(layer, [unit], "toggle")
        self._anchor = (layer, int(unit))
        return ok

    # ---- menu actions -----------------------------------------------------------------
    def clear(self) -> None:
        self.apply(Plan(), "Clear selection")

    def clear_layer(self) -> None:
        if self.session.layer:
            self.edit(self.session.layer, [], "set", f"Clear {self.session.layer}")

    def invert(self) -> None:
        s = self.session
        if s.layer is None:
            return
        if s.why_not_selectable(s.layer) is not None:
            self.edit(s.layer, [], "set")  # reports why
            return
        try:
            plan = s.inverted(s.layer)
        except NeuronvizError as e:
            self.state.error(str(e))
            return
        self.apply(plan, f"Invert {s.layer}")

    def save(self, path) -> None:
        self.session.plan.save(path)
        self.state.info(f"Saved the selection to {Path(path).name}.")

    def load(self, path) -> bool:
        try:
            plan = Plan.load(path)
        except NeuronvizError as e:
            self.state.error(str(e))
            return False
        return self.apply(plan, f"Load {Path(path).name}")
