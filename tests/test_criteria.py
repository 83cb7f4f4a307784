"""Selection criteria: plain numpy in, Plans out."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuronviz.core import criteria
from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError

layer_scores = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=12).map(np.array),
    min_size=1,
)


@settings(max_examples=150, deadline=None)
@given(layer_scores, st.floats(0, 1))
def test_per_layer_fraction_takes_the_smallest_and_never_a_whole_layer(scores, fraction):
    plan = criteria.smallest(scores, fraction=fraction)
    for layer, s in scores.items():
        taken = list(plan.remove.get(layer, ()))
        assert len(taken) == min(int(np.floor(fraction * len(s) + 1e-9)), len(s) - 1)
        rest = np.delete(s, taken)
        if taken:
            assert s[taken].max() <= rest.min()


@settings(max_examples=150, deadline=None)
@given(layer_scores, st.integers(0, 60))
def test_global_n_respects_budget_caps_and_normalised_order(scores, n):
    plan = criteria.smallest(scores, n=n, scope="global")
    total = sum(len(v) for v in plan.remove.values())
    capacity = sum(len(s) - 1 for s in scores.values())
    assert total == min(n, capacity)
    taken = {(k, i) for k, v in plan.remove.items() for i in v}
    norm = {k: criteria.normalised(s) for k, s in scores.items()}
    for k, s in scores.items():
        assert len(plan.remove.get(k, ())) <= len(s) - 1
    # any unit left in a layer that still had room scores at least as high as every unit taken
    worst_taken = max((norm[k][i] for k, i in taken), default=-np.inf)
    for k, s in scores.items():
        if len(plan.remove.get(k, ())) < len(s) - 1:
            left = [norm[k][i] for i in range(len(s)) if (k, i) not in taken]
            assert min(left) >= worst_taken


def test_global_scope_normalises_by_layer_mean():
    scores = {
        "big": np.array([100.0, 200.0, 300.0, 400.0]),
        "small": np.array([1.0, 2.0, 3.0, 4.0]),
    }
    assert criteria.smallest(scores, n=2, scope="layer") == Plan({"big": [0, 1], "small": [0, 1]})
    # same shape after dividing by the mean: ties broken by layer order, then index
    assert criteria.smallest(scores, n=2, scope="global") == Plan({"big": [0], "small": [0]})
    assert criteria.smallest(scores, fraction=0.5, scope="global") == Plan(
        {"big": [0, 1], "small": [0, 1]}
    )
    skewed = {"big": np.array([100.0, 101.0, 102.0]), "small": np.array([0.1, 2.0, 3.9])}
    assert criteria.smallest(skewed, n=1, scope="global") == Plan({"small": [0]})


def test_allowed_nan_and_single_unit_layers():
    scores = {
        "a": np.array([0.1, np.nan, 0.3]),
        "b": np.array([0.0, 0.0]),
        "out": np.array([0.0, 1.0]),
        "one": np.array([0.0]),
    }
    plan = criteria.smallest(scores, fraction=1.0, allowed={"a", "b", "one"})
    assert plan == Plan({"a": [0, 2], "b": [0]})  # NaN never taken; one unit always stays
    assert criteria.smallest(scores, n=5, scope="global", allowed=["a"]) == Plan({"a": [0, 2]})


def test_dead_units_and_apoz_accept_objects_or_mappings():
    class Stats:
        def __init__(self, dead, apoz):
            self.dead, self.apoz = np.array(dead), np.array(apoz)

    stats = {
        "x": Stats([False, True, True], [0.2, 1.0, 1.0]),
        "all_dead": {"dead": np.array([True, True]), "apoz": np.array([1.0, 1.0])},
        "skip": Stats([True, False], [1.0, 0.0]),
    }
    assert criteria.dead_units(stats, allowed={"x", "all_dead"}) == Plan(
        {"x": [1, 2], "all_dead": [1]}
    )
    assert criteria.apoz_above(stats, 0.5) == Plan({"x": [1, 2], "all_dead": [1], "skip": [0]})
    high = {"h": {"apoz": np.array([0.95, 0.9, 0.99])}}
    assert criteria.apoz_above(high, 0.8) == Plan({"h": [0, 2]})  # the lowest APoZ stays


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of"),
        ({"fraction": 0.5, "n": 3}, "exactly one of"),
        ({"fraction": 1.5}, r"in \[0, 1\]"),
        ({"n": -1}, ">= 0"),
        ({"n": 1, "scope": "model"}, "scope"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, match):
    with pytest.raises(NeuronvizError, match=match) as e:
        criteria.smallest({"a": np.arange(3.0)}, **kwargs)
    assert "\n" not in str(e.value)
    with pytest.raises(NeuronvizError, match="threshold"):
        criteria.apoz_above({}, 2.0)


def test_criteria_do_not_import_tensorflow():
    code = "import sys, neuronviz.core.criteria; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
