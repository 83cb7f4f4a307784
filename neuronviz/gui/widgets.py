"""Small shared widgets: the message banner, the start screen, the task progress bar."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from neuronviz.gui import theme

_COLOURS = {
    "error": ("#fdecea", "#8a1c1c"),
    "warning": ("#fff4e5", "#7a4b00"),
    "info": ("#e8f4fd", "#0b4f79"),
}


class Banner(QFrame):
    """A one-line message above the workspace (never a traceback, never modal)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss (Esc)")
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.level = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        bg, fg = _COLOURS.get(level, _COLOURS["info"])
        if theme.is_dark():
            bg, fg = fg, "#ffffff"
        self.setStyleSheet(
            f"#banner {{ background: {bg}; border-radius: 4px; }} QLabel {{ color: {fg}; }}"
        )
        self.level = level
        self.label.setText(text)
        self.show()
        self._timer.start(15000 if level == "error" else 6000)

    def dismiss_errors(self) -> None:
        """Hide an error (a new attempt starts); information stays until it times out."""
        if self.level in ("error", "warning"):
            self.hide()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class StartScreen(QWidget):
    """What an empty window shows: open a model, open the demo, or a recent file."""

    openModel = Signal()
    openDemo = Signal()
    openRecent = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        title = QLabel(
            "<h1>neuronviz</h1><p>Look inside a Keras model and make it smaller by removing neurons.</p>"
        )
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.demo = QPushButton("Open the demo")
        self.demo.setToolTip("A small MNIST CNN with 1,000 validation images")
        self.open = QPushButton("Open a model…")
        for b in (self.demo, self.open):
            b.setMinimumWidth(200)
            b.setMinimumHeight(36)
        self.status = QLabel("Or drop a .keras / .h5 model file here.")
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.recent = QListWidget()
        self.recent.setMaximumWidth(520)
        self.recent.setMaximumHeight(160)
        self.recent_label = QLabel("<b>Recent</b>")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.demo)
        buttons.addWidget(self.open)
        buttons.addStretch(1)
        col = QVBoxLayout(self)
        col.addStretch(2)
        col.addWidget(title)
        col.addLayout(buttons)
        col.addWidget(self.status)
        col.addSpacing(20)
        col.addWidget(self.recent_label, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addWidget(self.recent, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addStretch(3)
        self.demo.clicked.connect(self.openDemo)
        self.open.clicked.connect(self.openModel)
        self.recent.itemActivated.connect(
            lambda it: self.openRecent.emit(it.data(Qt.ItemDataRole.UserRole))
        )

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for p in paths:
            it = QListWidgetItem(p)
            it.setData(Qt.ItemDataRole.UserRole, p)
            self.recent.addItem(it)
        self.recent.setVisible(bool(paths))
        self.recent_label.setVisible(bool(paths))

    def set_busy(self, text: str | None) -> None:
        self.status.setText(text or "Or drop a .keras / .h5 model file here.")
        self.demo.setEnabled(not text)
        self.open.setEnabled(not text)


class TaskProgress(QWidget):
    """Status-bar progress for background tasks, with a Cancel button."""

    cancel = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setMaximumWidth(180)
        self.bar.setMaximumHeight(16)
        self.button = QPushButton("Cancel")
        self.button.setToolTip("Cancel the background task (Ctrl+.)")
        self.button.clicked.connect(lambda: self.cancel.emit(self.task))
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.button)
        self.task = ""
        self.hide()

    def update_task(self, task: str, fraction: float, text: str) -> None:
        self.task = task
        self.label.setText(text or task)
        self.bar.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.show()

    def done(self, task: str) -> None:
        if task == self.task:
            self.hide()
