"""keras.applications models (weights=None): pruned(x) == masked(x) with 30% of every group gone."""

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs
from engine_models import random_plan

import neuronviz.api as nv

A = keras.applications
MODELS = {
    "ResNet50": lambda: A.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10),
    "MobileNetV2": lambda: A.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10),
    "DenseNet121": lambda: A.DenseNet121(weights=None, input_shape=(32, 32, 3), classes=10),
    "EfficientNetB0": lambda: A.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=10),
    "ConvNeXtTiny": lambda: A.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3), classes=10),
    "InceptionV3": lambda: A.InceptionV3(weights=None, input_shape=(75, 75, 3), classes=10),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_application_prunes_exactly(name):
    model = MODELS[name]()
    tr = nv.analyze(model)
    free = [g for g in tr.units.groups if not g.blocked and not g.reaches_output]
    assert len(free) == len(tr.units.groups) - 1  # everything but the classifier head
    plan = random_plan(tr, np.random.default_rng(0), fraction=0.3)
    result = nv.prune(model, plan, tr)
    assert result.after.params < 0.9 * result.before.params
    assert result.after.macs < result.before.macs
    x = (
        np.random.default_rng(1)
        .uniform(0, 255, (2,) + tuple(model.input_shape[1:]))
        .astype("float32")
    )
    assert_same_outputs(
        nv.masked_predict(model, plan, x, tr=tr), result.model.predict(x, verbose=0)
    )
    # softmax heads squash differences: compare the features entering the head too
    head = model.layers[-1].name
    features = keras.Model(model.input, model.get_layer(head).input)
    pruned_features = keras.Model(result.model.input, result.model.get_layer(head).input)
    ftr = nv.analyze(features)
    keep = ftr.select(plan).keep(ftr.map(ftr.graph.outputs[0]))
    masked = nv.masked_predict(features, plan, x, tr=ftr)
    assert_same_outputs(masked[..., keep], pruned_features.predict(x, verbose=0))
    original = features.predict(x, verbose=0)
    assert np.abs(masked - original).max() > 1e-3 * np.abs(original).max()  # the selection matters


def test_mobilenet_round_trip_through_a_file(tmp_path):
    model = MODELS["MobileNetV2"]()
    tr = nv.analyze(model)
    plan = random_plan(tr, np.random.default_rng(3), fraction=0.5)
    result = nv.prune(model, plan, tr)
    out = nv.save_pruned(result, tmp_path / "small.keras", model, plan)
    assert nv.load_model(out).count_params() == result.after.params
