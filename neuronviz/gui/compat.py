"""Work around a reference-counting bug in the installed Qt bindings.

PySide6 6.12.0 under Python < 3.12 drops one reference to ``None`` on every call of a
C++ method that returns void (``label.setText(...)``, ``item.setData(...)``, ...) and
one reference to ``True`` on every ``signal.emit()``. Python 3.12 made ``None``,
``True`` and ``False`` immortal, so the bug is invisible there; on 3.11 a count reaches
zero after some thousands to a few hundred thousand calls and the interpreter aborts
with "Fatal Python error: none_dealloc" (or bool_dealloc). A click in the app makes
about 1,000 such calls.

`guard()` measures the leak with a few harmless calls and, only if it is there, gives
``None``, ``True`` and ``False`` an effectively infinite reference count (what 3.12
does by design).
"""

from __future__ import annotations

import sys

_HEADROOM = 1 << 48  # ~2.8e14 leaked references before any trouble
_applied = False


def leaks_per_call(samples: int = 64) -> dict[str, float]:
    """References lost per call: to None by a void method, to True by signal.emit()
    (both 0.0 with correct bindings)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    obj = _Probe()
    obj.setObjectName("probe")
    obj.ping.emit()
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(samples):
        obj.setObjectName("probe")
        obj.ping.emit()
    return {
        "None": (none0 - sys.getrefcount(None)) / samples,
        "True": (true0 - sys.getrefcount(True)) / samples,
    }


def guard() -> bool:
    """Apply the workaround if needed (idempotent); True when it was applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if max(leaks_per_call().values()) < 0.5:
        return False
    import ctypes

    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += _HEADROOM
    _applied = True
    return True
