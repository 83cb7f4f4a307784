"""Live preview: accuracy and loss (and perplexity, for a causal LM's token data) of the
masked model against the baseline, and the params and MACs before -> after, for the
current selection."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from neuronviz.gui import theme
from neuronviz.gui.navigator import human
from neuronviz.gui.state import State


def _pct(x) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.2f}%"


def _num(x, digits=4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _delta(a, b, pct=False, good_up=True) -> str:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return ""
    d = b - a
    text = f"{100 * d:+.2f} pt" if pct else f"{d:+.4f}"
    if text.lstrip("+-").rstrip(" pt").strip("0.") == "":
        return "±0" + (" pt" if pct else "")
    colour = theme.SELECTED.name() if (d < 0) == good_up else "#2ca02c"
    return f"<span style='color:{colour}'>{text}</span>"


def _shrink(a: int, b: int) -> str:
    if not a:
        return ""
    return f"<span style='color:#2ca02c'>−{100 * (a - b) / a:.1f}%</span>" if b < a else "±0%"


class PreviewPanel(QWidget):
    def __init__(self, state: State, parent=None):
        super().__init__(parent)
        self.state = state
        title = QLabel("<b>Live preview</b>")
        self.status = QLabel("Open a model and validation data.")
        self.status.setWordWrap(True)
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        for col, text in enumerate(["", "Before", "After", "Change"]):
            h = QLabel(f"<i>{text}</i>")
            grid.addWidget(h, 0, col)
        self.labels: dict[str, tuple[QLabel, QLabel, QLabel]] = {}
        self.names: dict[str, QLabel] = {}
        rows = ["Accuracy", "Loss", "Perplexity", "Params", "MACs", "Units"]
        for row, name in enumerate(rows, start=1):
            self.names[name] = QLabel(name)
            grid.addWidget(self.names[name], row, 0)
            cells = tuple(QLabel("–") for _ in range(3))
            for col, lab in enumerate(cells, start=1):
                lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                grid.addWidget(lab, row, col)
            self.labels[name] = cells
        self.progress = QProgressBar()  # busy while the preview computes; always laid out
        self.progress.setRange(0, 1)
        self.progress.setMaximumHeight(4)
        self.progress.setTextVisible(False)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(title)
        lay.addLayout(grid)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(line)
        self._conns = [
            (state.planChanged, self.refresh),
            (state.modelChanged, self.refresh),
            (state.scoreChanged, self.refresh),
            (state.previewerChanged, self.refresh),
            (state.dataChanged, self.refresh),
        ]
        for sig, slot in self._conns:
            sig.connect(slot)
        self.refresh()

    @property
    def session(self):
        return self.state.session

    def refresh(self) -> None:
        s = self.session
        base = s.baseline if s.model is not None else None
        tokens = base is not None and base.perplexity is not None
        for w in (self.names["Perplexity"], *self.labels["Perplexity"]):
            w.setVisible(tokens)  # next-token scores only
        if s.model is None:
            for cells in self.labels.values():
                for c in cells:
                    c.setText("–")
            self.status.setText("Open a model and validation data.")
            self._busy(False)
            return
        before, after = s.before, s.counts_after()
        self._row(
            "Params",
            human(before.params),
            human(after.params),
            _shrink(before.params, after.params),
        )
        self._row("MACs", human(before.macs), human(after.macs), _shrink(before.macs, after.macs))
        total, n = s.unit_totals()
        self._row("Units", str(total), str(total - n), f"−{n}" if n else "")
        score = s.score_for()
        waiting = s.previewer is not None and score is None
        self._busy(waiting)
        self._row(
            "Accuracy",
            _pct(base.accuracy) if base else "–",
            _pct(score.accuracy) if score else ("…" if waiting else "–"),
            _delta(base.accuracy, score.accuracy, pct=True) if base and score else "",
        )
        self._row(
            "Loss",
            _num(base.loss) if base else "–",
            _num(score.loss) if score else ("…" if waiting else "–"),
            _delta(base.loss, score.loss, good_up=False) if base and score else "",
        )
        if tokens:
            self._row(
                "Perplexity",
                _num(base.perplexity, 2),
                _num(score.perplexity, 2) if score else ("…" if waiting else "–"),
                _delta(base.perplexity, score.perplexity, good_up=False) if score else "",
            )
        if s.dataset is None:
            self.status.setText("Open validation data (Ctrl+D) to preview accuracy.")
        elif s.previewer is None:
            self.status.setText("Preparing the preview…")
        else:
            nsel = sum(len(v) for v in s.plan.remove.values())
            self.status.setText(
                f"{s.dataset.n:,} validation samples · {nsel} units selected directly, "
                f"{n} removed in total (coupled units included)"
            )

    def _busy(self, on: bool) -> None:
        if on != (self.progress.maximum() == 0):
            self.progress.setRange(0, 0 if on else 1)

    def _row(self, name, before, after, change) -> None:
        a, b, c = self.labels[name]
        a.setText(before)
        b.setText(after)
        c.setText(change)

    def cleanup(self) -> None:
        for sig, slot in self._conns:
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
