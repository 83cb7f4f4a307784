"""Loading in safe mode, one-line load errors, atomic saving with a reload check."""

import os

import keras
import numpy as np
import pytest
from engine_models import BUILDERS, randomize

import neuronviz.api as nv
from neuronviz.backend.model.io import check_input_shape
from neuronviz.errors import NeuronvizError


def test_loads_keras_and_h5(tmp_path):
    model = randomize(BUILDERS["conv_bn"]())
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    for name in ("m.keras", "m.h5"):
        loaded = nv.load_model(tmp_path / name)
        x = np.ones((2, 8, 8, 3), "float32")
        np.testing.assert_allclose(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
        )


def test_lambda_code_never_runs_without_opt_in(tmp_path):
    marker = tmp_path / "ran"
    x = keras.Input((3,))
    y = keras.layers.Lambda(lambda t: t + 1.0, name="lam")(x)
    keras.Model(x, y).save(tmp_path / "lam.keras")
    with pytest.raises(NeuronvizError, match="Lambda.*--unsafe"):
        nv.load_model(tmp_path / "lam.keras")
    assert not marker.exists()
    model = nv.load_model(tmp_path / "lam.keras", unsafe=True)
    np.testing.assert_allclose(model.predict(np.zeros((1, 3)), verbose=0), 1.0)


def test_saved_model_directory_explains_conversion(tmp_path):
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"x")
    with pytest.raises(NeuronvizError, match="SavedModel directory.*save\\('model.keras'\\)"):
        nv.load_model(tmp_path / "sm")


def test_corrupt_file(tmp_path):
    (tmp_path / "bad.keras").write_bytes(os.urandom(300))
    with pytest.raises(NeuronvizError, match="corrupt or not a model"):
        nv.load_model(tmp_path / "bad.keras")
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(NeuronvizError, match="bad.h5"):
        nv.load_model(tmp_path / "bad.h5")


def test_wrong_suffix_and_missing(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(NeuronvizError, match="Expected a .keras or .h5"):
        nv.load_model(tmp_path / "x.txt")
    with pytest.raises(NeuronvizError, match="not found"):
        nv.load_model(tmp_path / "nope.keras")


def test_missing_custom_object_names_the_class(tmp_path):
    @keras.saving.register_keras_serializable(package="nvtest")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    x = keras.Input((3,))
    keras.Model(x, Doubler(name="dbl")(x)).save(tmp_path / "c.keras")
    del keras.saving.get_custom_objects()["nvtest>Doubler"]
    with pytest.raises(NeuronvizError, match="custom class 'Doubler'"):
        nv.load_model(tmp_path / "c.keras")


def test_undefined_input_shape(tmp_path):
    # None dimensions load (they are traced at example shapes); unknown inputs do not
    x = keras.Input((None, 3))
    keras.Model(x, keras.layers.Dense(2)(x)).save(tmp_path / "u.keras")
    model = nv.load_model(tmp_path / "u.keras")
    assert nv.analyze(model).graph.input_shapes == [(None, 16, 3)]

    class Unbuilt(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(NeuronvizError, match="undefined input shape"):
        check_input_shape(Unbuilt(), "unbuilt.keras")


def test_save_is_atomic_and_never_overwrites_the_input(tmp_path, demo_model):
    src = tmp_path / "in.keras"
    demo_model.save(src)
    stamp = src.read_bytes()
    plan = nv.Plan({"dense": range(10)})
    result = nv.prune(demo_model, plan)
    with pytest.raises(NeuronvizError, match="Refusing to overwrite"):
        nv.save_pruned(result, src, demo_model, plan, source=src)
    assert src.read_bytes() == stamp
    out = nv.save_pruned(result, tmp_path / "out.keras", demo_model, plan, source=src)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    assert nv.load_model(out).get_layer("dense").units == 502
    out_h5 = nv.save_pruned(result, tmp_path / "out.h5", demo_model, plan)
    assert out_h5.suffix == ".h5" and nv.load_model(out_h5).get_layer("dense").units == 502


def test_reload_check_catches_a_wrong_model(tmp_path, demo_model):
    plan = nv.Plan({"dense": range(10)})
    result = nv.prune(demo_model, plan)
    w = result.model.get_layer("dense_1").get_weights()
    result.model.get_layer("dense_1").set_weights([w[0] * 1.5, w[1]])  # sabotage
    with pytest.raises(NeuronvizError, match="does not match the masked model"):
        nv.save_pruned(result, tmp_path / "bad.keras", demo_model, plan)
    assert not (tmp_path / "bad.keras").exists()


def _keras2_h5(tmp_path, loss="categorical_crossentropy", metrics=("acc",)):
    """A Keras 3 .h5 file whose training config is rewritten the way Keras 2 wrote it."""
    import json

    import h5py

    model = randomize(BUILDERS["mlp"]())
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / "old.h5"
    model.save(path)
    cfg = {
        "optimizer_config": {
            "class_name": "Adam",
            "config": {"lr": 0.0001, "decay": 1e-6, "beta_1": 0.9, "epsilon": 1e-7},
        },
        "loss": loss,
        "metrics": list(metrics),
        "weighted_metrics": None,
        "loss_weights": None,
        "sample_weight_mode": None,
    }
    with h5py.File(path, "r+") as f:
        f.attrs["training_config"] = json.dumps(cfg).encode("utf-8")
    return model, path


def test_keras2_h5_opens_with_weights_and_one_line_note(tmp_path):
    model, path = _keras2_h5(tmp_path)
    with pytest.raises(Exception, match="lr"):  # what Keras 3 alone does with such a file
        keras.saving.load_model(path)
    with pytest.warns(UserWarning) as caught:
        loaded = nv.load_model(path)
    (w,) = [w for w in caught if "Keras 2" in str(w.message)]
    assert "\n" not in str(w.message) and "decay" in str(w.message)
    x = np.random.default_rng(0).standard_normal((5, 12)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.loss == "categorical_crossentropy"
    assert float(keras.ops.convert_to_numpy(loaded.optimizer.learning_rate)) == pytest.approx(1e-4)
    y = np.eye(3, dtype="float32")[np.arange(5) % 3]
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "acc"} or set(logs) == {"loss", "accuracy"}


def test_keras2_h5_translates_or_drops_loss_names(tmp_path):
    _, path = _keras2_h5(tmp_path, loss="logcosh", metrics=("mae", "cosine_proximity", "nope"))
    with pytest.warns(UserWarning, match="Keras 2") as caught:
        loaded = nv.load_model(path)
    note = [str(w.message) for w in caught if "Keras 2" in str(w.message)][0]
    assert "metric nope" in note and "loss" not in note and "cosine" not in note
    assert loaded.loss == "log_cosh"
    x = np.zeros((2, 12), "float32")
    logs = loaded.evaluate(x, np.zeros((2, 3), "float32"), verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae", "cosine_similarity"}
    _, path = _keras2_h5(tmp_path, loss="no_such_loss")
    with pytest.warns(UserWarning, match="loss no_such_loss"):
        loaded = nv.load_model(path)
    assert loaded.loss is None
