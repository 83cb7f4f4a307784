"""About box (with versions) and the keyboard shortcut list."""

from __future__ import annotations

import platform

from PySide6.QtWidgets import QMessageBox


def versions() -> dict[str, str]:
    import pyqtgraph
    import PySide6
    from PySide6.QtCore import qVersion

    import neuronviz

    out = {"neuronviz": neuronviz.__version__}
    for label, dist in (("Keras", "keras"), ("TensorFlow", "tensorflow")):
        out[label] = _installed_version(dist)
    out["Qt"] = qVersion()
    out["PySide6"] = PySide6.__version__
    out["pyqtgraph"] = pyqtgraph.__version__
    out["Python"] = platform.python_version()
    return out


def _installed_version(dist: str) -> str:
    """A package's version without importing it (TensorFlow's import takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    for name in (dist, f"{dist}-cpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "not installed"


def about_text() -> str:
    rows = "".join(f"<tr><td>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in versions().items())
    return (
        "<h3>neuronviz</h3><p>Look inside Keras models and make them smaller by removing neurons.</p>"
        f"<table>{rows}</table>"
    )


def show_about(parent) -> QMessageBox:
    box = QMessageBox(parent)
    box.setWindowTitle("About neuronviz")
    box.setText(about_text())
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box


def show_shortcuts(parent, actions: dict) -> QMessageBox:
    rows = []
    for a in actions.values():
        keys = ", ".join(k.toString() for k in a.shortcuts())
        if keys:
            rows.append(
                f"<tr><td>{a.text().replace('&', '')}</td><td>&nbsp;&nbsp;<b>{keys}</b></td></tr>"
            )
    rows.append("<tr><td>Click a bar or row</td><td>&nbsp;&nbsp;<b>toggle the unit</b></td></tr>")
    rows.append(
        "<tr><td>Shift-click / Ctrl-click</td><td>&nbsp;&nbsp;<b>select a range / add</b></td></tr>"
    )
    box = QMessageBox(parent)
    box.setWindowTitle("Keyboard shortcuts")
    box.setText("<table>" + "".join(rows) + "</table>")
    box.open()
    return box
