"""Compiling a new model like an existing one."""

from __future__ import annotations

import keras


def compile_like(model: keras.Model, source: keras.Model) -> bool:
    """Compile `model` with `source`'s loss, metrics and (fresh) optimizer, if `source` is
    compiled. Unlike `compile_from_config`, optimizer slots are not built: they would be
    saved as weight-sized blocks of zeros and triple the file size. Returns whether it did."""
    config = source.get_compile_config() if getattr(source, "compiled", False) else None
    if not config:
        return False
    model.compile(**keras.saving.deserialize_keras_object(config))
    return True
