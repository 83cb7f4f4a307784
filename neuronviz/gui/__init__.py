"""The desktop app (PySide6 + pyqtgraph). The only package that imports Qt."""

from neuronviz.gui import compat as _compat

_compat.guard()  # before any other Qt call: see neuronviz/gui/compat.py
