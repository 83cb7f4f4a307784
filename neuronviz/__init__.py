"""neuronviz: look inside Keras models and make them smaller by removing neurons."""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter would break the one-line-error promise of the CLI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_API = {
    "Plan",
    "NeuronvizError",
    "PruneResult",
    "Counts",
    "Trace",
    "load_model",
    "save_model",
    "save_pruned",
    "analyze",
    "groups",
    "prune",
    "masked_model",
    "masked_predict",
    "counts",
}


def __getattr__(name):
    # Lazy, so that `import neuronviz` (e.g. for the CLI's --help) does not load TensorFlow.
    if name in _API:
        from neuronviz import api

        return getattr(api, name)
    raise AttributeError(f"module 'neuronviz' has no attribute '{name}'")


__all__ = sorted(_API)
