"""Bad selections get one clear line and change nothing."""

import keras
import numpy as np
import pytest
from engine_models import BUILDERS, randomize

import neuronviz.api as nv
from neuronviz.core.plan import Plan, format_spec, parse_spec
from neuronviz.errors import NeuronvizError


@pytest.fixture(scope="module")
def demo_trace(demo_model):
    return nv.analyze(demo_model)


def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_removing_every_unit_is_refused(demo_trace):
    with pytest.raises(NeuronvizError) as e:
        demo_trace.select(Plan({"dense": range(512)}))
    assert "at least one unit to remain" in one_line(e)


def test_index_out_of_range_is_refused(demo_trace):
    with pytest.raises(NeuronvizError) as e:
        demo_trace.select(Plan({"dense": [3, 600]}))
    assert (
        one_line(e) == "Expected `indices` in [0, 512) for layer 'dense'. Received: indices=[600]"
    )


def test_negative_index_is_refused(demo_trace):
    with pytest.raises(NeuronvizError, match=r"\[0, 32\).*indices=\[-1\]"):
        demo_trace.select(Plan({"conv2d": [-1]}))
    # one line that names the index the user meant; SPEC and JSON plans refuse it alike
    for plan in (Plan.from_specs(["conv2d:-1"]), Plan.from_dict({"remove": {"conv2d": [-1]}})):
        with pytest.raises(NeuronvizError, match="not accepted: the last unit is 31") as e:
            demo_trace.select(plan)
        assert "\n" not in str(e.value)


def test_unknown_layer_suggests_close_matches(demo_trace):
    with pytest.raises(NeuronvizError) as e:
        demo_trace.select(Plan({"dnse": [1]}))
    assert "unknown layer 'dnse'" in one_line(e) and "'dense'" in one_line(e)


def test_layer_without_units_is_refused(demo_trace):
    with pytest.raises(NeuronvizError) as e:
        demo_trace.select(Plan({"flatten": [1]}))
    assert "layer 'flatten' (Flatten), which only moves units of 'conv2d" in one_line(e)
    assert "unknown" not in one_line(e)


def test_lambda_on_the_coupling_path_names_the_layer():
    x = keras.Input((4,))
    h = keras.layers.Dense(5, name="d1")(x)
    h = keras.layers.Lambda(lambda t: t * 2.0, name="double")(h)
    model = keras.Model(x, keras.layers.Dense(2, name="out")(h))
    tr = nv.analyze(model)
    with pytest.raises(NeuronvizError) as e:
        tr.select(Plan({"d1": [0]}))
    assert "'double' (Lambda)" in one_line(e)


def test_reshape_that_mixes_channels_is_refused():
    x = keras.Input((4, 4, 3))
    h = keras.layers.Conv2D(3, 1, name="c")(x)
    h = keras.layers.Reshape((12, 4), name="mix")(h)  # channel k of row i comes from (4i+k) % 3
    model = keras.Model(x, keras.layers.Conv1D(2, 1, name="out")(h))
    with pytest.raises(NeuronvizError, match="'mix' \\(Reshape\\).*mixes the channel axis"):
        nv.analyze(model).select(Plan({"c": [0]}))


def test_reshape_folding_positions_into_channels_is_exact():
    from conftest import assert_same_outputs

    x = keras.Input((4, 4, 4))
    h = keras.layers.Conv2D(4, 1, name="c")(x)
    h = keras.layers.Reshape((4, 2, 8), name="fold")(h)  # channel k comes from k % 4
    model = randomize(keras.Model(x, keras.layers.Conv2D(2, 1, name="out")(h)))
    plan = Plan({"c": [1]})
    result = nv.prune(model, plan)
    assert result.model.get_layer("fold").target_shape == (4, 2, 6)
    xs = np.random.default_rng(0).standard_normal((3, 4, 4, 4)).astype("float32")
    assert_same_outputs(nv.masked_predict(model, plan, xs), result.model.predict(xs, verbose=0))


def test_residual_from_model_input_pins_the_group():
    x = keras.Input((5, 5, 3))
    h = keras.layers.Conv2D(3, 3, padding="same", name="c")(x)
    model = keras.Model(x, keras.layers.Conv2D(2, 1, name="out")(keras.layers.Add()([x, h])))
    with pytest.raises(NeuronvizError, match="fixed channels"):
        nv.analyze(model).select(Plan({"c": [1]}))


def test_grouped_convolution_is_pinned():
    x = keras.Input((5, 5, 4))
    h = keras.layers.Conv2D(4, 1, name="c")(x)
    h = keras.layers.Conv2D(6, 3, groups=2, name="g")(h)
    model = keras.Model(x, keras.layers.Conv2D(2, 1, name="out")(h))
    with pytest.raises(NeuronvizError, match="grouped convolution"):
        nv.analyze(model).select(Plan({"c": [0]}))


def test_refusal_leaves_the_model_untouched():
    model = randomize(BUILDERS["conv_bn"]())
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(NeuronvizError):
        nv.prune(model, Plan({"c1": range(6)}))
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "spec,expected", [("0-3,7", (0, 1, 2, 3, 7)), ("5", (5,)), (" 2 , 1 ", (1, 2)), ("-2", (-2,))]
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected
    if min(expected) >= 0:
        assert parse_spec(format_spec(expected)) == expected


@pytest.mark.parametrize("spec", ["a", "3-1", "", "1-2-3"])
def test_bad_spec(spec):
    with pytest.raises(NeuronvizError, match="Expected"):
        parse_spec(spec)


def test_plan_json_round_trip(tmp_path):
    plan = Plan({"dense": [5, 1, 1], "conv2d": [0]})
    assert plan.remove["dense"] == (1, 5)
    plan.save(tmp_path / "p.json")
    assert Plan.load(tmp_path / "p.json") == plan
    (tmp_path / "bad.json").write_text('{"remove": {"dense": ["x"]}}')
    with pytest.raises(NeuronvizError, match="integer unit indices"):
        Plan.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(NeuronvizError, match="Could not read plan"):
        Plan.load(tmp_path / "junk.json")
