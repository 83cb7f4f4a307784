"""The only package that imports Keras/TensorFlow: loading, tracing, evaluation, surgery.

Importing it runs Keras on TensorFlow and imports TensorFlow quietly.

TensorFlow prints start-up lines on some CPUs (absl's "All log messages before
absl::InitializeLog()" and oneDNN's "custom operations are on") that
TF_CPP_MIN_LOG_LEVEL does not silence. They would break the promise that a refusal is
one line, so TensorFlow is imported with file descriptor 2 captured and only those
known lines are dropped; anything else (a real error) is written back.
NEURONVIZ_VERBOSE=1 (or the CLI's --verbose) shows everything.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

from neuronviz import BACKEND, configure_environment, verbose

# absl's log-line prefix: severity letter, MMDD, time, thread id, file:line]
_ABSL = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s\]]+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"


def without_startup_noise(text: str) -> list[str]:
    """The lines of captured start-up output that are *not* known noise."""
    kept, in_info = [], False
    for line in text.splitlines():
        m = _ABSL.match(line)
        if m:
            in_info = m.group(1) in "IW"
            if not in_info:
                kept.append(line)
        elif line.startswith(_ABSL_PREAMBLE):
            in_info = False
        elif in_info and line.strip() and not line.startswith(("Traceback", "  File")):
            continue  # continuation of an info/warning message (e.g. the CPU-feature line)
        else:
            in_info = False
            kept.append(line)
    return kept


def import_tensorflow() -> None:
    """Import TensorFlow (and Keras) without its start-up chatter on stderr."""
    configure_environment()
    if "tensorflow" in sys.modules or verbose():
        import keras  # noqa: F401

        _check_backend()
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. a GUI bundle)
        fd = None
    if fd is None:
        import keras  # noqa: F401

        _check_backend()
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
    for line in without_startup_noise(text):
        print(line, file=sys.stderr)
    _check_backend()


def _check_backend() -> None:
    import keras

    refusal = backend_refusal(keras.backend.backend())
    if refusal:
        from neuronviz.errors import NeuronvizError

        raise NeuronvizError(refusal)


def backend_refusal(name: str) -> str | None:
    """Why Keras on backend `name` cannot run neuronviz, or None."""
    if name == BACKEND:
        return None
    return (
        f"Expected Keras on the TensorFlow backend. Received: Keras was imported with "
        f"backend '{name}' before neuronviz; import neuronviz first or set KERAS_BACKEND=tensorflow."
    )


import_tensorflow()
