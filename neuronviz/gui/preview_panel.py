"""Live preview: accuracy and loss (and perplexity, for a causal LM's token data) of the
masked model against the baseline, and the params and MACs before -> after, for the
current selection. "Measure speed" builds the pruned model in a worker and times it
against the original (the Latency row, shown next to the MACs ratio; it is the Session's
figure for the current plan, so it clears as soon as the selection changes)."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from neuronviz.gui import theme
from neuronviz.gui.navigator import human
from neuronviz.gui.state import State
from neuronviz.gui.workers import Tasks, report

SPEED_TASK = "speed"
SPEED_BATCH, SPEED_RUNS = 32, 7


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
    def __init__(self, state: State, tasks: Tasks | None = None, parent=None):
        super().__init__(parent)
        self.state = state
        self.tasks = tasks if tasks is not None else Tasks(self)
        self._measuring = False
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
        rows = ["Accuracy", "Loss", "Perplexity", "Params", "MACs", "Units", "Latency"]
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
        self.speed_button = QPushButton("Measure speed")
        self.speed_button.setToolTip(
            f"Build the pruned model and time it against the original on this CPU (median "
            f"of {SPEED_RUNS} runs at batch {SPEED_BATCH}, both warm, runs interleaved)"
        )
        self.speed_button.clicked.connect(self._on_speed_button)
        self.speed_status = QLabel("")
        self.speed_status.setWordWrap(True)
        speed = QHBoxLayout()
        speed.addWidget(self.speed_button)
        speed.addWidget(self.speed_status, 1)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(title)
        lay.addLayout(grid)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addLayout(speed)
        lay.addWidget(line)
        self._conns = [
            (state.planChanged, self.refresh),
            (state.modelChanged, self.refresh),
            (state.scoreChanged, self.refresh),
            (state.previewerChanged, self.refresh),
            (state.dataChanged, self.refresh),
            (state.latencyChanged, self.refresh),
            (state.planChanged, self._drop_stale_speed),
            (state.modelChanged, self._drop_stale_speed),
            (self.tasks.finished, self._on_task_finished),
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
        self.speed_button.setEnabled(s.model is not None)
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
        self._latency_row(before.macs, after.macs)
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

    # ---- measured speed ---------------------------------------------------------------
    def _latency_row(self, macs_before: int, macs_after: int) -> None:
        lat = self.session.latency_for()
        if lat is None:
            self._row("Latency", "–", "…" if self.measuring else "–", "")
            return
        macs = f" (MACs ×{macs_after / macs_before:.2f})" if macs_before else ""
        self._row(
            "Latency",
            f"{lat.original_ms:.2f} ms",
            f"{lat.pruned_ms:.2f} ms",
            f"×{lat.ratio:.2f}{macs}",
        )

    @property
    def measuring(self) -> bool:
        return self._measuring

    def measure(self) -> None:
        """Time the current selection's pruned model against the original, in a worker."""
        s = self.session
        if s.model is None or self.measuring:
            return
        job = s.latency_job(SPEED_BATCH, SPEED_RUNS, report)
        self.tasks.submit(SPEED_TASK, job, self._on_speed, self._on_speed_error, self._on_speed_p)
        self._speed_running(True, "Building the pruned model…")

    def cancel_measure(self) -> None:
        if self.measuring:
            self.tasks.cancel(SPEED_TASK)
            self._speed_running(False, "Speed measurement cancelled.")

    def _on_speed_button(self) -> None:
        self.cancel_measure() if self.measuring else self.measure()

    def _on_speed(self, result) -> None:
        plan, lat = result
        self._speed_running(False, "")
        if self.session.set_latency(plan, lat):
            self.speed_status.setText(
                f"Median of {lat.runs} runs at batch {lat.batch_size}, this CPU."
            )

    def _on_speed_error(self, msg: str) -> None:
        self._speed_running(False, f"Could not measure: {msg}")

    def _on_speed_p(self, frac: float, text: str) -> None:
        self.speed_status.setText(f"{text} {100 * frac:.0f}%" if text else "")

    def _on_task_finished(self, name: str, outcome: str) -> None:
        if name == SPEED_TASK and outcome == "cancelled" and self.measuring:
            self._speed_running(False, "Speed measurement cancelled.")  # e.g. from Ctrl+.

    def _drop_stale_speed(self) -> None:
        """The selection or model changed: a running measurement is for the old one."""
        if self.measuring:
            self.tasks.cancel(SPEED_TASK)
            self._speed_running(False, "")
        elif self.session.latency_for() is None:
            self.speed_status.setText("")

    def _speed_running(self, on: bool, text: str) -> None:
        self._measuring = on
        self.speed_button.setText("Cancel" if on else "Measure speed")
        self.speed_status.setText(text)
        self.refresh()

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
