"""Validation data: an .npz file, a folder of images, or the bundled demo set.

- ``.npz``: arrays ``x`` and ``y`` (a model with several inputs: ``x0``, ``x1``, ... or
  the inputs' names, e.g. ``token_ids`` and ``padding_mask`` for named dict inputs).
  Dimensions the model leaves undefined (None) take any size: variable-length sequences
  come padded to one length, with the model's own mask input where it has one. ``y`` holds integer class labels (N,) or one-hot rows (N, C).
  ``x`` may leave out a trailing channel axis of size 1.
- ``.npz`` for a causal LM: ``token_ids`` (N, seq) and optional ``padding_mask``, no
  ``y``: next-token scores (tokens.py).
- image folder: one subfolder per class; sorted subfolder names are the class ids.
  Images are converted to the model's channels (L or RGB), resized to its input height
  and width (64x64 where the model takes any size), and scaled to [0, 1].
- ``"demo"``: the bundled validation split of the demo model.

Every problem is reported as one NeuronvizError line.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuronviz.errors import NeuronvizError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(eq=False)
class Dataset:
    """Samples `x` (one array, or a list for several inputs) and integer labels `y` (N,).
    `task`: "classify", or "next_token" for a causal LM's token data (`y`: the shifted
    tokens, `IGNORE` where nothing is scored)."""

    x: np.ndarray | list[np.ndarray]
    y: np.ndarray
    num_classes: int
    source: str = ""
    task: str = "classify"

    @property
    def n(self) -> int:
        return int(len(self.y))

    @property
    def inputs(self) -> list[np.ndarray]:
        """`x` as a list with one array per model input."""
        return list(self.x) if isinstance(self.x, (list, tuple)) else [self.x]


def iter_batches(dataset: Dataset, batch_size: int) -> Iterator[tuple]:
    """(x, y) slices of at most `batch_size` samples; x is a list for several inputs."""
    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1. Received: {batch_size}")
    multi = isinstance(dataset.x, (list, tuple))
    for lo in range(0, dataset.n, batch_size):
        xs = [a[lo : lo + batch_size] for a in dataset.inputs]
        yield (xs if multi else xs[0]), dataset.y[lo : lo + batch_size]


def load_data(source, model) -> Dataset:
    """Load and check validation data for `model` (see the module docstring)."""
    if str(source) == "demo":
        from neuronviz.resources import demo_val

        path = demo_val()
    else:
        path = Path(source)
    if not path.exists():
        raise NeuronvizError(f"Data file not found: '{path}'")
    from neuronviz.backend.model.graph import graph_model

    model = graph_model(model)
    if path.is_dir():
        return _load_image_folder(path, model)
    if path.suffix.lower() != ".npz":
        raise NeuronvizError(
            "Expected validation data as a .npz file (arrays x and y), an image folder or 'demo'. "
            f"Received: '{path.name}'"
        )
    from neuronviz.backend.scoring.output import data_task, next_token_shape

    if data_task(model, _npz_keys(path), path.name) == "next_token":
        from neuronviz.backend.model.tokens import next_token_data

        arrays = _read_npz_arrays(path, ("token_ids", "padding_mask"))
        return next_token_data(model, arrays["token_ids"], arrays.get("padding_mask"), path.name)
    xs, y, keys = _read_npz(path, _input_names(model), next_token_shape(model))
    return _checked(xs, y, model, path.name, keys)


# ---- model facts ----------------------------------------------------------------------
def _input_specs(model) -> list[tuple[tuple, str]]:
    """(shape without batch, dtype) of each model input."""
    return [(tuple(t.shape[1:]), str(t.dtype)) for t in model.inputs]


def _input_names(model) -> list[str]:
    from neuronviz.backend.model.graph import input_names

    return input_names(model)


def _output_width(model) -> int:
    shape = tuple(model.outputs[0].shape)
    return int(shape[-1]) if len(shape) > 1 else 1


def _label_positions(model) -> tuple:
    """Per-sample label shape: () for one label per sample, (T,) for outputs (N, T, C), ..."""
    return tuple(model.outputs[0].shape[1:-1])


def _label_limit(width: int) -> int:
    return 2 if width == 1 else width


def _outputs_phrase(width: int) -> str:
    return (
        "the model's single (binary) output unit"
        if width == 1
        else f"the model's {width} output units"
    )


# ---- .npz -----------------------------------------------------------------------------
def _npz_keys(path: Path) -> list[str]:
    return list(_read_npz_arrays(path, ()))


def _read_npz_arrays(path: Path, names) -> dict:
    """{key: None for every key, array for those in `names`} of an .npz file."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] if k in names else None for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise _unreadable(path, e) from None


def _unreadable(path: Path, e: Exception) -> NeuronvizError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return NeuronvizError(f"Could not read '{path.name}' as a NumPy .npz archive: {first[:120]}")


def _read_npz(
    path: Path, input_names: list[str], tokens_too: bool = False
) -> tuple[list[np.ndarray], np.ndarray, list]:
    """The model's input arrays and `y` (`tokens_too`: the refusal also offers `token_ids`)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            if len(input_names) == 1:
                x_keys = ["x"]
            elif all(f"x{i}" in keys for i in range(len(input_names))):
                x_keys = [f"x{i}" for i in range(len(input_names))]
            else:
                x_keys = list(input_names)
            missing = [k for k in x_keys + ["y"] if k not in keys]
            if missing:
                alt = " (or 'token_ids' for next-token scores)" if tokens_too else ""
                raise NeuronvizError(
                    f"Expected arrays {', '.join(repr(k) for k in x_keys + ['y'])}{alt} in '{path.name}'. "
                    f"Received: keys {keys[:8]} (missing {', '.join(repr(k) for k in missing)})"
                )
            return [archive[k] for k in x_keys], archive["y"], x_keys
    except NeuronvizError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise _unreadable(path, e) from None


def _checked(xs: list[np.ndarray], y: np.ndarray, model, label: str, keys: list) -> Dataset:
    """Check `xs` and `y` against the model and return a Dataset."""
    specs = _input_specs(model)
    xs = [
        _checked_x(x, shape, dtype, label, name)
        for x, (shape, dtype), name in zip(xs, specs, keys, strict=True)
    ]
    n = len(xs[0])
    for x, key in zip(xs[1:], keys[1:], strict=True):
        if len(x) != n:
            raise NeuronvizError(
                f"Expected the same number of samples in every input. Received: {n} in {keys[0]} and {len(x)} in {key} in '{label}'"
            )
    width = _output_width(model)
    labels = _checked_y(np.asarray(y), n, width, label, _label_positions(model))
    return Dataset(xs[0] if len(xs) == 1 else xs, labels, _label_limit(width), label)


def _checked_x(x: np.ndarray, shape: tuple, dtype: str, label: str, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise NeuronvizError(
            f"Expected numbers in `{name}`. Received: dtype {x.dtype} in '{label}'"
        )
    want = (None,) + tuple(shape)
    got = tuple(x.shape)
    if len(got) == len(want) - 1 and shape and shape[-1] == 1 and _fits(got[1:], shape[:-1]):
        x = x[..., None]  # a missing channel axis of size 1
        got = tuple(x.shape)
    if len(got) != len(want) or not _fits(got[1:], shape):
        expected = "(N, " + ", ".join(str(d) for d in shape) + ")"
        raise NeuronvizError(
            f"Expected `{name}` of shape {expected} to match the model input. Received: {name}.shape={got} in '{label}'"
        )
    if len(x) == 0:
        raise NeuronvizError(
            f"Expected at least one sample. Received: an empty `{name}` in '{label}'"
        )
    if "int" in dtype:
        return x.astype(dtype, copy=False)
    x = x.astype(np.float32, copy=False)
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise NeuronvizError(
            f"Expected finite values in `{name}`. Received: {bad} NaN or inf values in '{label}'"
        )
    return x


def _fits(got: tuple, shape: tuple) -> bool:
    """`got` matches the model's `shape`, where None takes any size."""
    return len(got) == len(shape) and all(
        d is None or d == g for g, d in zip(got, shape, strict=True)
    )


def _checked_y(y: np.ndarray, n: int, width: int, label: str, positions: tuple = ()) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise NeuronvizError(
            f"Expected integer class labels in `y`. Received: dtype {y.dtype} in '{label}'"
        )
    if positions:  # one label per output position, e.g. per time step
        if _fits(tuple(y.shape[1:]), positions + (width,)) and width > 1:
            y = np.argmax(y, axis=-1)
        if not _fits(tuple(y.shape[1:]), positions):
            shape = "(N, " + ", ".join(str(d) for d in positions) + ")"
            raise NeuronvizError(
                f"Expected labels of shape {shape} for the model output {(None, *positions, width)}. "
                f"Received: y.shape={tuple(y.shape)} in '{label}'"
            )
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2:
        if y.shape[1] != width:
            raise NeuronvizError(
                f"Expected one-hot labels with {width} columns for {_outputs_phrase(width)}. "
                f"Received: y.shape={tuple(y.shape)} in '{label}'"
            )
        y = np.argmax(y, axis=1)
    if y.ndim != 1 + len(positions):
        raise NeuronvizError(
            f"Expected labels of shape (N,) or one-hot (N, C). Received: y.shape={tuple(y.shape)} in '{label}'"
        )
    if len(y) != n:
        raise NeuronvizError(
            f"Expected one label per sample ({n} in `x`). Received: {len(y)} labels in '{label}'"
        )
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            raise NeuronvizError(
                f"Expected integer class labels in `y`. Received: {y[~whole][0]!r} in '{label}'"
            )
    y = y.astype(np.int64)
    limit = _label_limit(width)
    bad = y[(y < 0) | (y >= limit)]
    if len(bad):
        raise NeuronvizError(
            f"Expected labels in [0, {limit}) for {_outputs_phrase(width)}. Received: label {int(bad[0])} in '{label}'"
        )
    return y


# ---- image folders --------------------------------------------------------------------
def _load_image_folder(path: Path, model) -> Dataset:
    specs = _input_specs(model)
    shape = specs[0][0]
    if len(specs) != 1 or len(shape) != 3 or shape[-1] not in (1, 3):
        raise NeuronvizError(
            "Expected a model with one image input (H, W, 1 or 3 channels) for an image folder. "
            f"Received: input shapes {[s for s, _ in specs]}"
        )
    classes = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise NeuronvizError(
            f"Expected an image folder with one subfolder per class. Received: '{path}' (no subfolders)"
        )
    width = _output_width(model)
    if len(classes) > _label_limit(width):
        raise NeuronvizError(
            f"Expected labels in [0, {_label_limit(width)}) for {_outputs_phrase(width)}. "
            f"Received: {len(classes)} class subfolders in '{path.name}'"
        )
    files = [
        (f, cid)
        for cid, d in enumerate(classes)
        for f in sorted(d.iterdir())
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    ]
    if not files:
        raise NeuronvizError(
            f"Expected images ({', '.join(IMAGE_SUFFIXES)}) in the class subfolders. Received: none in '{path}'"
        )
    height, wide, channels = (64 if d is None else int(d) for d in shape)  # 64: any size
    x = np.empty((len(files), height, wide, channels), dtype=np.float32)
    for i, (f, _) in enumerate(files):
        x[i] = _read_image(f, path, (height, wide), channels)
    y = np.array([cid for _, cid in files], dtype=np.int64)
    return Dataset(x, y, _label_limit(width), path.name)


def _read_image(f: Path, root: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(img, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NeuronvizError(
            f"Could not read image '{f.relative_to(root)}': {first[:120]}"
        ) from None
    return a[..., None] if channels == 1 else a
