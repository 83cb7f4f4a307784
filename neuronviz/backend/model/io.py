"""Loading models safely and saving them atomically, with one-line errors."""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np

from neuronviz.core.atomic import atomic_path
from neuronviz.errors import NeuronvizError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(path, *, unsafe: bool = False, compile: bool = True) -> keras.Model:
    """Load a .keras or .h5 model in Keras safe mode.

    Code stored in the file (Lambda layers) runs only with ``unsafe=True``: pass it
    only for files you trust.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            raise NeuronvizError(
                f"'{path}' is a TensorFlow SavedModel directory, which Keras 3 cannot load for editing. "
                "Convert it where it was made (TF <= 2.15): "
                f"tf.keras.models.load_model('{path}').save('model.keras'), then open the .keras file."
            )
        raise NeuronvizError(f"Expected a .keras or .h5 model file. Received: directory '{path}'")
    if not path.exists():
        raise NeuronvizError(f"Model file not found: '{path}'")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise NeuronvizError(f"Expected a .keras or .h5 model file. Received: '{path.name}'")
    try:
        model = _load(path, compile, unsafe)
    except NeuronvizError:
        raise
    except Exception as e:
        if not (compile and path.suffix.lower() in (".h5", ".hdf5")):
            raise NeuronvizError(_explain_load_error(path, e)) from None
        model = _load_keras2_h5(path, unsafe, e)
    if not isinstance(model, keras.Model):
        raise NeuronvizError(
            f"Expected a Keras model in '{path.name}'. Received: {type(model).__name__}"
        )
    check_input_shape(model, path.name)
    return model


def _load(path: Path, compile: bool, unsafe: bool) -> keras.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keras.saving.load_model(path, compile=compile, safe_mode=not unsafe)


def _load_keras2_h5(path: Path, unsafe: bool, first_error: Exception) -> keras.Model:
    """An .h5 file whose training config Keras 3 rejects: architecture and weights, compiled
    with what translates. One warning names what was dropped."""
    from neuronviz.backend.model.legacy_h5 import compile_from_training_config, training_config

    try:
        model = _load(path, False, unsafe)
        cfg = training_config(path)
    except Exception:
        raise NeuronvizError(_explain_load_error(path, first_error)) from None
    try:
        dropped = compile_from_training_config(model, cfg) if cfg else []
    except Exception as e:
        dropped = [f"the whole training config ({type(e).__name__})"]
    if dropped:
        warnings.warn(
            f"'{path.name}' has a Keras 2 training config; ignored: {'; '.join(dropped)}.",
            UserWarning,
            stacklevel=3,
        )
    return model


def check_input_shape(model: keras.Model, label: str) -> None:
    """Refuse a model whose inputs are unknown. None dimensions are fine (they are traced at
    example shapes); a subclassed model needs a recorded build shape (its graph is captured)."""
    from neuronviz.backend.model.capture import has_graph

    try:
        known = bool(model.inputs) if has_graph(model) else bool(model._build_shapes_dict)
    except (AttributeError, ValueError):
        known = False
    if not known:
        raise NeuronvizError(
            f"Model '{label}' has an undefined input shape. Rebuild it with keras.Input(shape=...) "
            "(or model.build(...)) and save it again."
        )


def _explain_load_error(path: Path, e: Exception) -> str:
    msg = str(e)
    first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
    if "safe_mode" in msg or "Lambda" in msg and "deserializ" in msg:
        return (
            f"'{path.name}' contains Python code (a Lambda layer); neuronviz does not run code from "
            "model files unless you opt in with --unsafe (only for files you trust)."
        )
    m = re.search(
        r"(?:Could not locate (?:class|function) |Unknown (?:layer|object|class)[^']*)'([^']+)'",
        msg,
    )
    if m:
        return (
            f"'{path.name}' uses the custom class '{m.group(1)}', which is not registered. "
            "Register it with @keras.saving.register_keras_serializable in code you import first."
        )
    if (
        isinstance(e, (zipfile.BadZipFile, OSError, EOFError))
        or "zip" in msg.lower()
        or "signature" in msg.lower()
    ):
        return f"Could not read '{path.name}' as a Keras model: the file is corrupt or not a model ({first[:120]})."
    return f"Could not load '{path.name}' as a Keras model: {type(e).__name__}: {first[:160]}"


def save_model(model: keras.Model, path, *, source=None) -> Path:
    """Save atomically (temp file, then rename). `.keras` unless the name ends in .h5.
    Refuses to overwrite `source` (the file the model came from)."""
    path = Path(path)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        path = (
            path.with_suffix(path.suffix + ".keras") if path.suffix else path.with_suffix(".keras")
        )
    if (
        source is not None
        and Path(source).exists()
        and path.exists()
        and path.resolve() == Path(source).resolve()
    ):
        raise NeuronvizError(
            f"Refusing to overwrite the input file '{path}'. Choose another output name."
        )
    if path.is_dir():
        raise NeuronvizError(f"Expected an output file name. Received: directory '{path}'")
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(tmp)
    return path


def probe_batch(graph, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """A small random batch that fits a FlatGraph's inputs at its example shapes."""
    rng = np.random.default_rng(seed)
    out = []
    for shape, dtype in zip(graph.input_shapes, graph.input_dtypes, strict=True):
        shape = (n,) + tuple(shape[1:])
        if "int" in dtype:
            out.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            out.append(rng.standard_normal(shape).astype("float32"))
    return out
