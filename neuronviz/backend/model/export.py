"""Files of a model: their raw and gzip sizes, and TFLite export (dense or sparse encoding)."""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras

from neuronviz.core.atomic import atomic_path
from neuronviz.errors import NeuronvizError


@dataclass(frozen=True)
class FileSize:
    raw: int  # bytes on disk
    gzip: int  # bytes after gzip at its default level 6 (what a download or an archive costs)

    def to_dict(self) -> dict:
        return {"raw": self.raw, "gzip": self.gzip}


def file_size(path) -> FileSize:
    data = Path(path).read_bytes()
    return FileSize(len(data), len(gzip.compress(data, compresslevel=6, mtime=0)))


def model_file_size(model: keras.Model) -> FileSize:
    """Size of `model` saved as .keras (to a temporary file), raw and gzip-compressed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(path)
        return file_size(path)


@contextlib.contextmanager
def _quiet_fds():
    """Silence stdout/stderr at the file-descriptor level (the TFLite converter prints from
    both C++ and Python, which would break the CLI's --json output)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def tflite_bytes(model: keras.Model, *, sparse_encoding: bool = False) -> bytes:
    """The model as a TFLite flatbuffer (float32). `sparse_encoding` asks the converter to
    store sparse kernels in a compressed format (EXPERIMENTAL_SPARSITY)."""
    try:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if sparse_encoding:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        with _quiet_fds(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return converter.convert()
    except Exception as e:
        raise NeuronvizError(
            f"The TFLite converter could not convert model '{model.name}': {_converter_reason(e)}"
        ) from None


def _converter_reason(e: Exception) -> str:
    """One line out of the converter's multi-page MLIR error."""
    import re

    msg = str(e)
    ops_needed = re.search(r"TF Select ops: ([^\n]+)", msg)
    if ops_needed:
        return (
            f"it uses TensorFlow ops without a TFLite builtin kernel ({ops_needed.group(1).strip()[:120]}); "
            "they would need the TF Select (flex) runtime."
        )
    line = msg.strip().splitlines()[0] if msg.strip() else ""
    return f"{type(e).__name__}: {line[:160]}"


def export_tflite(
    model: keras.Model,
    path,
    *,
    source=None,
    sparse_encoding: bool = False,
    data: bytes | None = None,
) -> Path:
    """Write the TFLite flatbuffer atomically (`data`: already converted bytes); refuses to
    overwrite `source`."""
    path = Path(path)
    if path.suffix.lower() != ".tflite":
        raise NeuronvizError(
            f"Expected a TFLite file name ending in .tflite. Received: '{path.name}'"
        )
    if source is not None and path.exists() and path.resolve() == Path(source).resolve():
        raise NeuronvizError(
            f"Refusing to overwrite the input file '{path}'. Choose another output name."
        )
    data = tflite_bytes(model, sparse_encoding=sparse_encoding) if data is None else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
