"""Loading validation data: .npz, image folders, the demo set, and every refusal."""

import keras
import numpy as np
import pytest
from PIL import Image

from neuronviz.backend.model.data import Dataset, iter_batches, load_data
from neuronviz.errors import NeuronvizError


@pytest.fixture(scope="module")
def rgb_model():
    """A 3-class model on 8x8 RGB images."""
    inp = keras.Input((8, 8, 3))
    out = keras.layers.Dense(3)(keras.layers.Flatten()(inp))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def binary_model():
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(inp))


def _npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _error(source, model) -> str:
    with pytest.raises(NeuronvizError) as e:
        load_data(source, model)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_demo_source(demo_model, demo_val):
    ds = load_data("demo", demo_model)
    x, y = demo_val
    assert ds.n == 1000 and ds.num_classes == 10
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, y)


def test_npz_one_hot_labels_and_missing_channel_axis(tmp_path, demo_model, demo_val):
    x, y = demo_val
    path = _npz(tmp_path, x=(x[:20, ..., 0] * 255).astype(np.uint8), y=np.eye(10)[y[:20]])
    ds = load_data(str(path), demo_model)
    assert ds.x.shape == (20, 28, 28, 1) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.y, y[:20])
    assert ds.y.dtype == np.int64


def test_npz_float_and_column_labels(tmp_path, binary_model):
    path = _npz(tmp_path, x=np.ones((3, 4)), y=np.array([[1.0], [0.0], [1.0]]))
    ds = load_data(path, binary_model)
    assert ds.y.tolist() == [1, 0, 1]
    assert ds.num_classes == 2  # one sigmoid unit: binary labels


def test_iter_batches_covers_everything_in_order(demo_model):
    ds = load_data("demo", demo_model)
    batches = list(iter_batches(ds, 300))
    assert [len(b[1]) for b in batches] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), ds.x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), ds.y)


def test_iter_batches_multi_input():
    ds = Dataset([np.zeros((5, 2)), np.ones((5, 3))], np.arange(5), 5)
    (xb, yb), *_ = iter_batches(ds, 2)
    assert (
        isinstance(xb, list) and [a.shape for a in xb] == [(2, 2), (2, 3)] and yb.tolist() == [0, 1]
    )


def test_multi_input_npz(tmp_path):
    a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    model = keras.Model([a, b], keras.layers.Dense(4)(keras.layers.Concatenate()([a, b])))
    path = _npz(tmp_path, x0=np.zeros((6, 2)), x1=np.ones((6, 3)), y=np.arange(6) % 4)
    ds = load_data(path, model)
    assert [x.shape for x in ds.inputs] == [(6, 2), (6, 3)] and ds.n == 6


# ---- refusals -------------------------------------------------------------------------
def test_missing_file(tmp_path, demo_model):
    msg = _error(tmp_path / "nope.npz", demo_model)
    assert msg.startswith("Data file not found") and "nope.npz" in msg


def test_unreadable_file(tmp_path, demo_model):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"this is not a zip archive")
    msg = _error(path, demo_model)
    assert "Could not read 'broken.npz'" in msg


def test_wrong_suffix(tmp_path, demo_model):
    path = tmp_path / "data.csv"
    path.write_text("1,2,3\n")
    assert "Expected validation data as a .npz file" in _error(path, demo_model)


def test_missing_keys(tmp_path, demo_model):
    path = _npz(tmp_path, images=np.zeros((2, 28, 28, 1)), y=np.zeros(2))
    msg = _error(path, demo_model)
    assert "Expected arrays 'x', 'y'" in msg and "missing 'x'" in msg and "images" in msg


def test_x_shape_mismatch_names_both_shapes(tmp_path, demo_model):
    path = _npz(tmp_path, x=np.zeros((5, 32, 32, 3), np.float32), y=np.zeros(5, np.int64))
    msg = _error(path, demo_model)
    assert "(N, 28, 28, 1)" in msg and "x.shape=(5, 32, 32, 3)" in msg


def test_label_count_mismatch(tmp_path, demo_model):
    path = _npz(tmp_path, x=np.zeros((5, 28, 28, 1), np.float32), y=np.zeros(4, np.int64))
    msg = _error(path, demo_model)
    assert "one label per sample (5 in `x`)" in msg and "Received: 4 labels" in msg


def test_label_out_of_range(tmp_path, demo_model):
    path = _npz(tmp_path, x=np.zeros((3, 28, 28, 1), np.float32), y=np.array([0, 10, 2]))
    msg = _error(path, demo_model)
    assert "labels in [0, 10)" in msg and "label 10" in msg
    path = _npz(tmp_path, "neg.npz", x=np.zeros((2, 28, 28, 1), np.float32), y=np.array([-1, 0]))
    assert "label -1" in _error(path, demo_model)


def test_non_integer_labels(tmp_path, demo_model):
    path = _npz(tmp_path, x=np.zeros((2, 28, 28, 1), np.float32), y=np.array([0.5, 1.0]))
    assert "Expected integer class labels" in _error(path, demo_model)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(tmp_path, demo_model, bad):
    x = np.zeros((4, 28, 28, 1), np.float32)
    x[1, 3, 3, 0] = bad
    x[2, 0, 0, 0] = bad
    path = _npz(tmp_path, x=x, y=np.zeros(4, np.int64))
    msg = _error(path, demo_model)
    assert "Expected finite values in `x`" in msg and "2 NaN or inf" in msg


def test_empty_x(tmp_path, demo_model):
    path = _npz(tmp_path, x=np.zeros((0, 28, 28, 1), np.float32), y=np.zeros(0, np.int64))
    assert "at least one sample" in _error(path, demo_model)


def test_one_hot_width_mismatch(tmp_path, demo_model):
    path = _npz(tmp_path, x=np.zeros((2, 28, 28, 1), np.float32), y=np.eye(3)[[0, 1]])
    assert "one-hot labels with 10 columns" in _error(path, demo_model)


# ---- image folders --------------------------------------------------------------------
def _image_folder(root, classes: dict):
    for name, images in classes.items():
        (root / name).mkdir(parents=True)
        for i, (size, mode, value) in enumerate(images):
            Image.new(mode, size, value).save(root / name / f"{i}.png")
    return root


def test_image_folder_rgb(tmp_path, rgb_model):
    root = _image_folder(
        tmp_path / "imgs",
        {
            "b_dog": [((8, 8), "RGB", (255, 0, 0))],
            "a_cat": [((16, 12), "RGB", (0, 255, 0)), ((8, 8), "L", 128)],
        },
    )
    (root / "a_cat" / "notes.txt").write_text("ignored")
    ds = load_data(root, rgb_model)
    assert ds.x.shape == (3, 8, 8, 3) and ds.x.dtype == np.float32
    assert ds.y.tolist() == [0, 0, 1]  # sorted names: a_cat = 0, b_dog = 1
    np.testing.assert_allclose(ds.x[0], np.broadcast_to([0, 1, 0], (8, 8, 3)))  # resized, scaled
    np.testing.assert_allclose(ds.x[1], 128 / 255)  # grey converted to RGB
    np.testing.assert_allclose(ds.x[2, ..., 0], 1.0)
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0


def test_image_folder_grayscale_for_demo(tmp_path, demo_model):
    root = _image_folder(
        tmp_path / "digits", {"0": [((40, 40), "RGB", (255, 255, 255))], "1": [((28, 28), "L", 0)]}
    )
    ds = load_data(root, demo_model)
    assert ds.x.shape == (2, 28, 28, 1)
    assert ds.x[0].min() == pytest.approx(1.0) and ds.x[1].max() == 0.0


def test_image_folder_refusals(tmp_path, rgb_model, binary_model):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "one subfolder per class" in _error(empty, rgb_model)
    many = _image_folder(tmp_path / "many", {c: [((8, 8), "RGB", 0)] for c in "abcd"})
    assert "labels in [0, 3)" in _error(many, rgb_model) and "4 class subfolders" in _error(
        many, rgb_model
    )
    broken = _image_folder(tmp_path / "broken", {"a": [((8, 8), "RGB", 0)]})
    (broken / "a" / "bad.png").write_bytes(b"not a png")
    assert "Could not read image 'a/bad.png'" in _error(broken, rgb_model)
    assert "one image input" in _error(many, binary_model)
    no_images = tmp_path / "no_images"
    (no_images / "a").mkdir(parents=True)
    assert "Expected images" in _error(no_images, rgb_model)


def test_labels_per_position_for_sequence_outputs(tmp_path):
    inp = keras.Input((5, 3))
    model = keras.Model(inp, keras.layers.Dense(4)(inp))  # output (N, 5, 4)
    y = np.arange(10).reshape(2, 5) % 4
    ds = load_data(_npz(tmp_path, x=np.zeros((2, 5, 3)), y=y), model)
    np.testing.assert_array_equal(ds.y, y)
    ds = load_data(_npz(tmp_path, "onehot.npz", x=np.zeros((2, 5, 3)), y=np.eye(4)[y]), model)
    np.testing.assert_array_equal(ds.y, y)
    msg = _error(_npz(tmp_path, "flat.npz", x=np.zeros((2, 5, 3)), y=np.zeros(2)), model)
    assert "Expected labels of shape (N, 5) for the model output (None, 5, 4)" in msg
