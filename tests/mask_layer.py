"""The oracles' `x * mask` layer (no code shared with neuronviz)."""

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
