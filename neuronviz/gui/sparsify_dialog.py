"""Sparsify dialog: choose how many of the smallest kernel weights to zero, see where the
magnitude threshold falls on a histogram, and what sparsity it gives.

    dialog = SparsifyDialog(model)
    if dialog.exec() == QDialog.Accepted:
        sparse = dialog.result          # a SparseResult: .model, .masks, .layer_sparsity
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

ALL_KERNELS = "all kernels"
SLIDER_STEPS = 990  # amount = value / 1000, up to 0.99

# Measured with benchmarks/bench_finetune.py on the demo CNN (Keras on CPU, batch 32, median).
EXPLANATION = (
    "Zeroing single weights (unstructured sparsity) keeps every layer's shape: dense CPU/GPU "
    "kernels still multiply the zeros, so inference is not faster. It pays off in storage, "
    "because zeros compress well. Removing whole units shrinks the layers themselves and does "
    "make inference faster. On the demo CNN, 80% sparsity leaves latency at {sparse_ms} ms "
    "(dense: {dense_ms} ms) and cuts the gzip-compressed .keras from {dense_gz} MB to "
    "{sparse_gz} MB; removing 80% of the Dense(512) units gives {pruned_ms} ms and "
    "{pruned_gz} MB, and also removing half of conv2d_1's filters gives {both_ms} ms."
)
MEASURED = {
    "dense_ms": "15.5",
    "sparse_ms": "15.3",
    "pruned_ms": "13.7",
    "both_ms": "9.8",
    "dense_gz": "6.19",
    "sparse_gz": "1.61",
    "pruned_gz": "1.39",
}


class SparsifyDialog(QDialog):
    """See the module docstring. `layers`: restrict to these layers (default: every
    layer with a kernel)."""

    applied = Signal(object)  # the SparseResult

    def __init__(
        self,
        model,
        *,
        layers=None,
        amount: float = 0.5,
        scope: str = "layer",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        from neuronviz.api import MagnitudeProfile

        self.setWindowTitle("Sparsify: zero the smallest weights")
        self.model, self.layers = model, layers
        self.profile = MagnitudeProfile(model, layers)
        self.result = None
        self._hist = self._histograms()
        self._build(amount, scope)
        self.refresh()

    # ---- data -----------------------------------------------------------------------
    def _histograms(self) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
        """Per kernel and pooled: (counts, edges in log10|w|, exact zeros)."""
        nonzero = self.profile.all[self.profile.all > 0]
        lo, hi = (np.log10(nonzero[0]), np.log10(nonzero[-1])) if len(nonzero) else (-3.0, 0.0)
        edges = np.linspace(math.floor(lo * 4) / 4, math.ceil(hi * 4) / 4 + 1e-9, 81)
        out = {}
        for name, v in [(ALL_KERNELS, self.profile.all), *self.profile.sorted.items()]:
            nz = v[v > 0]
            counts, _ = np.histogram(np.log10(nz), bins=edges)
            out[name] = (counts, edges, int(len(v) - len(nz)))
        return out

    # ---- layout ---------------------------------------------------------------------
    def _build(self, amount: float, scope: str) -> None:
        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=SLIDER_STEPS)
        self.spin = QDoubleSpinBox(
            decimals=1, minimum=0.0, maximum=SLIDER_STEPS / 10, singleStep=1.0, suffix=" %"
        )
        self.scope_box = QComboBox()
        self.scope_box.addItem("per layer: the same fraction of every kernel", "layer")
        self.scope_box.addItem("global: the smallest weights of all kernels together", "global")
        self.view_box = QComboBox()
        largest = max(self.profile.sorted, key=lambda n: self.profile.sorted[n].size)
        for name in [ALL_KERNELS, *self.profile.sorted]:
            size = self.profile.all.size if name == ALL_KERNELS else self.profile.sorted[name].size
            self.view_box.addItem(f"{name} ({size:,} weights)", name)
        self.view_box.setCurrentIndex(self.view_box.findData(largest))
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        form = QFormLayout()
        form.addRow("Zero the smallest", row)
        form.addRow("Scope", self.scope_box)
        form.addRow("Histogram of", self.view_box)

        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "log10 |weight|")
        self.plot.setLabel("left", "weights")
        self.plot.setMinimumHeight(220)
        self.bars = pg.PlotDataItem(
            stepMode="center",
            fillLevel=0,
            brush=(86, 131, 181, 150),
            pen=pg.mkPen((86, 131, 181), width=1),
        )
        self.plot.addItem(self.bars)
        self.threshold_line = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen((228, 87, 46), width=2),
            label="threshold",
            labelOpts={"position": 0.9},
        )
        self.plot.addItem(self.threshold_line)

        self.threshold_label = QLabel()
        self.sparsity_label = QLabel()
        self.sparsity_label.setWordWrap(True)
        self.sparsity_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.explanation = QLabel(EXPLANATION.format(**MEASURED))
        self.explanation.setWordWrap(True)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Sparsify")
        self.buttons.accepted.connect(self.apply)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.threshold_label)
        layout.addWidget(self.sparsity_label)
        layout.addWidget(self.explanation)
        layout.addWidget(self.buttons)
        self.resize(760, 600)

        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)
        self.scope_box.currentIndexChanged.connect(self.refresh)
        self.view_box.currentIndexChanged.connect(self.refresh)
        self.scope_box.setCurrentIndex(max(self.scope_box.findData(scope), 0))
        self.set_amount(amount)

    # ---- state ----------------------------------------------------------------------
    @property
    def amount(self) -> float:
        return round(self.spin.value() / 100.0, 4)

    @property
    def scope(self) -> str:
        return self.scope_box.currentData()

    @property
    def view(self) -> str:
        return self.view_box.currentData()

    def set_amount(self, amount: float) -> None:
        amount = min(max(float(amount), 0.0), SLIDER_STEPS / 1000)
        self.spin.setValue(amount * 100.0)  # moves the slider through _from_spin

    def set_view(self, name: str) -> None:
        self.view_box.setCurrentIndex(self.view_box.findData(name))

    @Slot(int)
    def _from_slider(self, value: int) -> None:
        if abs(self.spin.value() - value / 10) > 1e-9:
            self.spin.blockSignals(True)
            self.spin.setValue(value / 10)
            self.spin.blockSignals(False)
        self.refresh()

    @Slot(float)
    def _from_spin(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(value * 10)))
        self.slider.blockSignals(False)
        self.refresh()

    def threshold(self) -> float | None:
        """The magnitude threshold drawn on the histogram (None: per-layer thresholds differ
        and the pooled view is shown)."""
        if self.scope == "layer" and self.view == ALL_KERNELS:
            return None
        return self.profile.threshold(
            self.amount, self.scope, None if self.view == ALL_KERNELS else self.view
        )

    def predicted_sparsity(self) -> tuple[dict[str, float], float]:
        """Per kernel and overall zero fraction for the current amount and scope."""
        per = self.profile.sparsity(self.amount, self.scope)
        sizes = {n: v.size for n, v in self.profile.sorted.items()}
        total = sum(per[n] * sizes[n] for n in per) / max(sum(sizes.values()), 1)
        return per, total

    @Slot()
    def refresh(self) -> None:
        counts, edges, zeros = self._hist[self.view]
        self.bars.setData(edges, counts)
        thr = self.threshold()
        self.threshold_line.setVisible(thr is not None and thr > 0)
        if thr is not None and thr > 0:
            self.threshold_line.setValue(math.log10(thr))
            self.threshold_label.setText(
                f"Threshold |w| ≤ {thr:.3g} (log10 {math.log10(thr):.2f})"
                + (f"; {zeros:,} weights are already zero" if zeros else "")
            )
        elif thr is None:
            self.threshold_label.setText(
                "Per-layer scope: each kernel has its own threshold; pick a kernel to see it."
            )
        else:
            self.threshold_label.setText("Nothing is zeroed at 0 %.")
        per, total = self.predicted_sparsity()
        parts = ", ".join(f"{n.rsplit('/', 1)[0]} {f:.1%}" for n, f in per.items())
        self.sparsity_label.setText(
            f"Resulting sparsity: {total:.1%} of kernel weights ({parts}). "
            "Biases and normalisation weights are kept."
        )

    @Slot()
    def apply(self) -> None:
        """Build the sparse model (the input model is not changed) and accept."""
        from neuronviz.api import sparsify
        from neuronviz.errors import NeuronvizError

        try:
            self.result = sparsify(self.model, self.amount, layers=self.layers, scope=self.scope)
        except NeuronvizError as e:
            self.sparsity_label.setText(f"Error: {e}")
            return
        self.applied.emit(self.result)
        self.accept()
