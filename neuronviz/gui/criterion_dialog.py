"""Select by criterion: smallest k% by norm (per layer or global), dead units, APoZ
above a threshold, or lowest Taylor importance. The Session picks the units; the dialog
only gathers the choice and shows how many units it would select."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
)

from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError

CRITERIA = [
    ("l2", "Smallest L2 norm"),
    ("l1", "Smallest L1 norm"),
    ("dead", "Dead units (never active)"),
    ("apoz", "APoZ above a threshold"),
    ("taylor", "Lowest Taylor importance (computes gradients)"),
]
SCOPES = [
    ("current", "Current layer"),
    ("layer", "Every layer, k% each"),
    ("global", "All layers, k% overall (ranked globally)"),
]


class CriterionDialog(QDialog):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Select by criterion")
        self.criterion = QComboBox()
        for key, text in CRITERIA:
            self.criterion.addItem(text, key)
        self.scope = QComboBox()
        for key, text in SCOPES:
            self.scope.addItem(text, key)
        self.percent = QDoubleSpinBox()
        self.percent.setRange(0.0, 99.0)
        self.percent.setDecimals(1)
        self.percent.setSuffix(" %")
        self.percent.setValue(20.0)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(0.9)
        self.mode = QComboBox()
        self.mode.addItem("Replace the selection", "replace")
        self.mode.addItem("Add to the selection", "add")
        self.preview = QLabel()
        self.preview.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Criterion", self.criterion)
        form.addRow("Where", self.scope)
        form.addRow("Amount (k)", self.percent)
        form.addRow("APoZ threshold", self.threshold)
        form.addRow("Then", self.mode)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.preview)
        lay.addWidget(self.buttons)
        for w in (self.criterion, self.scope, self.mode):
            w.currentIndexChanged.connect(self._update)
        for w in (self.percent, self.threshold):
            w.valueChanged.connect(self._update)
        self._update()

    def spec(self) -> dict:
        return {
            "criterion": self.criterion.currentData(),
            "scope": self.scope.currentData(),
            "fraction": self.percent.value() / 100.0,
            "threshold": self.threshold.value(),
            "mode": self.mode.currentData(),
        }

    def _update(self) -> None:
        spec = self.spec()
        self.percent.setEnabled(spec["criterion"] in ("l1", "l2", "taylor"))
        self.threshold.setEnabled(spec["criterion"] == "apoz")
        if spec["criterion"] == "taylor" and self.session.taylor is None:
            self.preview.setText(
                "Taylor importance is computed on the validation data when you press OK."
            )
            return
        try:
            plan = plan_for(self.session, spec)
            n = sum(len(v) for v in plan.remove.values())
            self.preview.setText(
                f"Selects {n} unit{'s' if n != 1 else ''} in {len(plan.remove)} layer"
                f"{'s' if len(plan.remove) != 1 else ''}"
                + (f": {', '.join(plan.remove)}" if plan.remove else ".")
            )
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        except NeuronvizError as e:
            self.preview.setText(str(e))
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)


def plan_for(session, spec: dict, taylor: dict | None = None) -> Plan:
    """The units the criterion picks (not merged with the current selection)."""
    layers = [session.layer] if spec["scope"] == "current" else None
    if layers and session.why_not_selectable(layers[0]) is not None:
        raise NeuronvizError(
            f"Units of layer '{layers[0]}' cannot be selected: {session.why_not_selectable(layers[0])}."
        )
    scope = "global" if spec["scope"] == "global" else "layer"
    return session.criterion_plan(
        spec["criterion"],
        fraction=spec["fraction"],
        scope=scope,
        threshold=spec["threshold"],
        layers=layers,
        taylor=taylor or session.taylor,
    )


def apply_spec(bench, spec: dict) -> None:
    """Pick the units (computing Taylor importance in a worker if needed) and apply."""
    s = bench.session

    def finish(taylor=None):
        if taylor is not None:
            s.set_taylor(taylor)
        try:
            picked = plan_for(s, spec, taylor)
        except NeuronvizError as e:
            bench.state.error(str(e))
            return
        if spec["mode"] == "add":
            plan = s.plan.merged(picked)
        elif spec["scope"] == "current":
            plan = s.edited(s.layer, picked.remove.get(s.layer, ()), "set")
        else:
            plan = picked
        name = dict(CRITERIA)[spec["criterion"]].split(" (")[0]
        if bench.editor.apply(plan, f"Select by {name}"):
            n = sum(len(v) for v in picked.remove.values())
            bench.status(f"{name}: {n} units selected.", 6000)

    if spec["criterion"] == "taylor" and s.taylor is None:
        bench.tasks.submit(
            "taylor",
            s.taylor_scores,
            finish,
            lambda msg: bench.state.error(f"Taylor importance failed: {msg}"),
        )
    else:
        finish()


def run_criterion_dialog(bench) -> CriterionDialog:
    dlg = CriterionDialog(bench.session, bench.parent)
    dlg.accepted.connect(lambda: apply_spec(bench, dlg.spec()))
    dlg.open()
    return dlg
