"""The oracles' `x * mask` layer (no code shared with neuronviz), and the check of a
pruned model against a copy built with it."""

import keras
import numpy as np


class Mask(keras.layers.Layer):
    """x * keep on the last axis."""

    def __init__(self, keep, **kw):
        super().__init__(**kw)
        self.supports_masking = True  # a Keras mask (padded steps) passes through
        self.keep = np.asarray(keep, "float32")

    def call(self, x):
        return x * self.keep


def keep(n, removed):
    """A 0/1 vector of length n with zeros at `removed`."""
    k = np.ones(n, "float32")
    k[list(removed)] = 0
    return k


def masked_at(t, name, masks):
    """`t` times the oracle mask named `name`, where a test's `masks` has one."""
    return Mask(masks[name])(t) if name in masks else t


def check_against_oracle(build, plan, removed, n=3, seed=4):
    """Prune `build()`'s model by `plan` and compare it with `build(masks)`, a copy with
    `x * mask` where `removed` (oracle mask name -> (width, indices)) says, and with the
    masked model. Returns (model, x, trace, pruned outputs, PruneResult)."""
    from conftest import assert_same_outputs
    from engine_models import randomize

    import neuronviz.api as nv

    model = randomize(build())
    oracle = build({name: keep(w, idx) for name, (w, idx) in removed.items()})
    oracle.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    x = xs if len(xs) > 1 else xs[0]
    tr = nv.analyze(model)
    result = nv.prune(model, plan, tr)
    pruned = result.model.predict(x, verbose=0)
    want = oracle.predict(x, verbose=0)
    assert not np.allclose(want, model.predict(x, verbose=0))
    assert_same_outputs(want, pruned)
    assert_same_outputs(nv.masked_predict(model, plan, x, tr=tr), pruned)
    return model, x, tr, pruned, result


def zero_input_rows(layer, rows, axis):
    """Zero `layer`'s kernel along its input `axis` at `rows` (the oracle's surgery)."""
    w = layer.get_weights()
    idx = [slice(None)] * w[0].ndim
    idx[axis] = list(rows)
    w[0][tuple(idx)] = 0
    layer.set_weights(w)
