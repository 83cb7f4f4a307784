"""Accuracy and crossentropy in NumPy, checked against Keras's own losses."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuronviz.core.metrics import Score, crossentropy, predict_classes, score


def _keras_loss(loss, y, outputs):
    return float(keras.ops.convert_to_numpy(loss(y, outputs)))


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(0, 3, (64, 5)).astype(np.float32), rng.integers(0, 5, 64)


def test_logits_crossentropy_matches_keras(logits):
    z, y = logits
    want = _keras_loss(keras.losses.SparseCategoricalCrossentropy(from_logits=True), y, z)
    got = score(z, y, "logits")
    assert got.loss == pytest.approx(want, rel=1e-5)
    assert got.accuracy == pytest.approx(np.mean(np.argmax(z, 1) == y))
    assert got.n == 64


def test_probability_crossentropy_matches_keras(logits):
    z, y = logits
    p = keras.ops.convert_to_numpy(keras.activations.softmax(keras.ops.convert_to_tensor(z)))
    want = _keras_loss(keras.losses.SparseCategoricalCrossentropy(), y, p)
    assert score(p, y, "softmax").loss == pytest.approx(want, rel=1e-4)
    # softmax of logits scores the same as the logits themselves
    assert score(p, y, "softmax").loss == pytest.approx(score(z, y, "logits").loss, rel=1e-4)


@pytest.mark.parametrize("from_logits", [True, False])
def test_binary_crossentropy_matches_keras(from_logits):
    rng = np.random.default_rng(1)
    out = rng.normal(0, 2, (50, 1)).astype(np.float32)
    if not from_logits:
        out = 1 / (1 + np.exp(-out))
    y = rng.integers(0, 2, 50)
    want = _keras_loss(
        keras.losses.BinaryCrossentropy(from_logits=from_logits), y[:, None].astype("float32"), out
    )
    got = score(out, y, "logits" if from_logits else "sigmoid")
    assert got.loss == pytest.approx(want, rel=1e-4)


def test_single_unit_thresholds():
    y = np.array([0, 1, 1, 0])
    assert predict_classes(np.array([[0.4], [0.6], [0.51], [0.49]]), "sigmoid").tolist() == [
        0,
        1,
        1,
        0,
    ]
    assert predict_classes(np.array([[-0.1], [0.1], [3.0], [-2.0]]), "logits").tolist() == [
        0,
        1,
        1,
        0,
    ]
    assert score(np.array([[0.4], [0.6], [0.51], [0.49]]), y, "sigmoid").accuracy == 1.0
    # 0.3 is a positive logit but a negative probability decision
    assert score(np.array([[0.3]]), np.array([1]), "logits").accuracy == 1.0
    assert score(np.array([[0.3]]), np.array([1]), "sigmoid").accuracy == 0.0


def test_huge_logits_stay_finite():
    z = np.array([[1e4, -1e4, 0.0], [-5e3, 5e3, 1.0]], dtype=np.float32)
    s = score(z, np.array([1, 1]), "logits")
    assert np.isfinite(s.loss)
    assert s.loss == pytest.approx(1e4, rel=1e-6)  # first row: wrong by 2e4 / 2 rows ~ 1e4
    assert s.accuracy == 0.5


def test_removed_output_unit_is_never_predicted():
    # column 2 holds the largest value but has been removed (masked outputs keep a 0 there
    # only for logits; here it is deliberately large to prove it is ignored)
    out = np.array([[1.0, 2.0, 9.0], [3.0, 1.0, 9.0], [0.0, 1.0, 9.0]], dtype=np.float32)
    keep = np.array([True, True, False])
    y = np.array([1, 0, 2])
    s = score(out, y, "logits", keep=keep)
    assert s.accuracy == pytest.approx(2 / 3)  # the label of the removed class counts as wrong
    assert s.n == 3
    # the loss is over the two samples whose class still exists, on the kept columns
    assert s.loss == pytest.approx(np.mean(crossentropy(out[:2, :2], y[:2], from_logits=True)))
    # outputs already without the removed column (a pruned model) score the same
    assert score(out[:, keep], y, "logits", keep=keep) == s


def test_all_labels_removed_gives_nan_loss_and_null_json():
    out = np.zeros((2, 3), np.float32)
    s = score(out, np.array([2, 2]), "logits", keep=np.array([True, True, False]))
    assert s.accuracy == 0.0 and np.isnan(s.loss)
    assert json.loads(json.dumps(s.to_dict())) == {"accuracy": 0.0, "loss": None, "n": 2}


def test_custom_loss_fn_receives_kept_rows():
    seen = {}

    def loss_fn(labels, outputs):
        seen["shapes"] = (labels.shape, outputs.shape)
        return np.full(len(labels), 0.25)

    out = np.ones((4, 3), np.float32)
    s = score(
        out, np.array([0, 1, 2, 2]), "softmax", loss_fn=loss_fn, keep=np.array([True, True, False])
    )
    assert seen["shapes"] == ((2,), (2, 2))
    assert s.loss == 0.25


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="kind"):
        score(np.zeros((2, 3)), np.array([0, 1]), "probabilities")
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        score(np.zeros((2, 3)), np.array([0, 3]), "logits")
    with pytest.raises(ValueError, match="shape"):
        score(np.zeros((2, 3)), np.array([0, 1, 2]), "logits")


def test_score_to_dict():
    assert Score(0.5, 0.25, 8).to_dict() == {"accuracy": 0.5, "loss": 0.25, "n": 8}


def test_metrics_module_does_not_import_tensorflow():
    code = "import sys, neuronviz.core.metrics; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64, st.tuples(st.integers(1, 20), st.integers(2, 6)), elements=st.floats(-50, 50)
    ),
    st.data(),
)
def test_logits_loss_properties(z, data):
    y = np.array(
        data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=len(z), max_size=len(z)))
    )
    s = score(z, y, "logits")
    assert 0.0 <= s.accuracy <= 1.0
    assert s.loss >= -1e-9
    # log-softmax is shift-invariant per row
    assert score(z + 7.0, y, "logits").loss == pytest.approx(s.loss, rel=1e-9, abs=1e-9)
    # keeping every column changes nothing
    assert score(z, y, "logits", keep=np.ones(z.shape[1], bool)) == s


def test_wide_outputs_are_scored_in_blocks_of_rows(logits, monkeypatch):
    import neuronviz.core.metrics as metrics

    z, y = logits
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(y, z)
    monkeypatch.setattr(metrics, "_BLOCK", 12)  # 2 rows of 5 classes per block
    got = crossentropy(z, y, from_logits=True)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(want), rtol=1e-5)
    assert crossentropy(z[:0], y[:0], from_logits=True).shape == (0,)
