"""neuronviz: look inside Keras models and make them smaller by removing neurons."""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter would break the one-line-error promise of the CLI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
