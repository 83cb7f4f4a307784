"""Property tests: for random selections, pruned(x) == masked(x) and the bookkeeping adds up."""

import numpy as np
from conftest import assert_same_outputs
from engine_models import BUILDERS, inputs_for, randomize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuronviz.api as nv
from neuronviz.core.plan import Plan

_CACHE = {}


def _model(name):
    if name not in _CACHE:
        model = randomize(BUILDERS[name]())
        _CACHE[name] = (model, nv.analyze(model), inputs_for(model, n=3))
    return _CACHE[name]


@st.composite
def selections(draw, name):
    model, tr, x = _model(name)
    remove = {}
    for g in tr.units.groups:
        if g.blocked or g.reaches_output or g.size < 2:
            continue
        # pick any member layer with units: coupling must make the choice irrelevant
        members = [m for m in g.members if len(tr.layer_units[m]) == g.size]
        layer = draw(st.sampled_from(members))
        idx = draw(st.sets(st.integers(0, g.size - 1), max_size=g.size - 1))
        if idx:
            remove[layer] = sorted(idx)
    return Plan(remove)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    name=st.sampled_from(
        [
            "residual_merges",
            "concat_dense",
            "squeeze_excite",
            "depthwise_separable",
            "flatten_formats",
        ]
    ),
)
def test_random_selection_prunes_exactly(data, name):
    model, tr, x = _model(name)
    plan = data.draw(selections(name))
    sel = tr.select(plan)
    result = nv.prune(model, plan, tr)
    removed = sel.removed_by_layer()
    widths = result.widths()
    assert set(widths) == set(removed)
    for layer, (before, after) in widths.items():
        assert before - after == len(removed[layer])
    if not plan:
        assert result.after.params == result.before.params
    masked = nv.masked_predict(model, plan, x, tr=tr)
    pruned = result.model.predict(x, verbose=0)
    masked = masked if isinstance(masked, list) else [masked]
    pruned = pruned if isinstance(pruned, list) else [pruned]
    for m, p, k in zip(
        masked, pruned, [sel.keep(tr.map(k)) for k in tr.graph.outputs], strict=True
    ):
        assert_same_outputs(m[..., k], p)


@settings(max_examples=10, deadline=None)
@given(idx=st.lists(st.integers(0, 511), min_size=1, max_size=300, unique=True))
def test_demo_dense_selection_counts(demo_model, idx):
    tr = _CACHE.setdefault("demo", nv.analyze(demo_model))
    result = nv.prune(demo_model, Plan({"dense": idx}), tr)
    k = len(idx)
    assert result.model.get_layer("dense").units == 512 - k
    assert result.before.params - result.after.params == k * (3136 + 1 + 10)
    assert result.before.macs - result.after.macs == k * (3136 + 10)
    kernel = demo_model.get_layer("dense_1").get_weights()[0]
    keep = np.setdiff1d(np.arange(512), idx)
    np.testing.assert_array_equal(result.model.get_layer("dense_1").get_weights()[0], kernel[keep])
