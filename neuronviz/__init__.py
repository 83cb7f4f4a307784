"""neuronviz: look inside Keras models and make them smaller by removing neurons."""

import os
import sys

__version__ = "0.1.0"
BACKEND = "tensorflow"


def verbose() -> bool:
    """NEURONVIZ_VERBOSE=1 (the CLI's --verbose) shows TensorFlow's start-up lines."""
    return os.environ.get("NEURONVIZ_VERBOSE", "") not in ("", "0")


_QUIET_LOGS = {"TF_CPP_MIN_LOG_LEVEL": "3"}
_set_by_us: set[str] = set()


def configure_environment() -> None:
    """Before Keras is imported: run it on TensorFlow, with TensorFlow's C++ logs quiet
    (unless verbose)."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = BACKEND
    for key, value in _QUIET_LOGS.items():
        if verbose() and key in _set_by_us:
            os.environ.pop(key, None)
            _set_by_us.discard(key)
        elif not verbose() and key not in os.environ:
            os.environ[key] = value
            _set_by_us.add(key)


configure_environment()


def __getattr__(name):
    # Lazy, so that `import neuronviz` (e.g. for the CLI's --help) does not load TensorFlow.
    # The public names are listed once, in neuronviz.api.__all__.
    if not name.startswith("_"):
        import importlib

        api = importlib.import_module(
            "neuronviz.api"
        )  # not `from neuronviz import api`: that recurses
        if name in api.__all__:
            return getattr(api, name)
    raise AttributeError(f"module 'neuronviz' has no attribute '{name}'")
