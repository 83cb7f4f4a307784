"""An oracle that shares no code with neuronviz: the same model, built again by the test's
own builder, with `x * mask` inserted where the builder calls `tap`.

A builder is `build(tap) -> keras.Model` and calls `t = tap("name", t, axis)` at the
tensors whose channels a plan removes (the last tensor of a group, where the next
layer reads it). In the original model `tap` returns `t`; in the oracle it multiplies
the channels along `axis` by a constant 0/1 mask (a Keras op, no Lambda layer).
"""

import keras
import numpy as np
from conftest import assert_same_outputs

import neuronviz.api as nv


class Tap:
    def __init__(self, removed: dict | None = None):
        self.removed = removed or {}

    def __call__(self, name, t, axis=-1):
        if name not in self.removed:
            return t
        rank = len(t.shape)
        axis = axis % rank
        mask = np.ones(int(t.shape[axis]), np.float32)
        mask[list(self.removed[name])] = 0.0
        shape = [1] * (rank - 1)
        shape[axis - 1] = len(mask)
        return keras.ops.multiply(t, mask.reshape(shape))


def randomize(model, seed: int = 0):
    """Random weights of scale 0.5 (variances positive, so BatchNorm stays finite)."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            (np.abs(v) + 0.5 if "variance" in w.name else v).astype(w.dtype)
            for w, v in ((w, rng.normal(0, 0.5, w.shape)) for w in model.weights)
        ]
    )
    return model


def build_pair(build, removed: dict, seed: int = 0):
    """(model, oracle): the oracle has the model's weights and the channels in
    `removed` (tap name -> indices) multiplied by 0."""
    keras.utils.set_random_seed(seed)
    model = build(Tap())
    randomize(model, seed)
    oracle = build(Tap(removed))
    weighted = [layer for layer in model.layers if layer.weights]
    twins = [layer for layer in oracle.layers if layer.weights]
    assert [type(a) for a in weighted] == [type(b) for b in twins]
    for a, b in zip(weighted, twins, strict=True):
        b.set_weights(a.get_weights())
    return model, oracle


def inputs(model, n=4, seed=1):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(n,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    return xs[0] if len(xs) == 1 else xs


def check_against_oracle(build, plan: dict, removed: dict, seed: int = 0):
    """Prune `plan` from the model; the pruned model and neuronviz's masked model must
    both equal the oracle. Returns (model, pruned model)."""
    model, oracle = build_pair(build, removed, seed)
    x = inputs(model)
    want = oracle.predict(x, verbose=0)
    assert np.isfinite(want).all()
    tr = nv.analyze(model)
    assert not np.allclose(want, nv.masked_predict(model, nv.Plan(), x, tr=tr)), "no change"
    result = nv.prune(model, nv.Plan(plan), tr)
    assert result.after.params < result.before.params
    assert_same_outputs(want, result.model.predict(x, verbose=0))
    assert_same_outputs(want, nv.masked_predict(model, nv.Plan(plan), x, tr=tr))
    return model, result.model
