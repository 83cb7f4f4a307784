"""The masked model: the same graph, with removed units' outputs multiplied by 0.

Channels of a removed unit may still be computed inside its group (BatchNorm, ReLU,
Add, ...), but every layer that mixes channels sees them as zero, and so do the model's
outputs. Layers that normalise over channels (softmax, LayerNormalization), recurrent
layers that lose units of their own (a zeroed output would still feed the recurrence),
and attention layers that lose heads are evaluated on the kept channels and heads only
(local surgery). Together this
makes masked(x) == pruned(x).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from neuronviz.backend.model.graph import Call, flatten
from neuronviz.backend.model.trace import Trace, trace
from neuronviz.backend.surgery.registry import weights_of
from neuronviz.backend.surgery.rules import with_width
from neuronviz.core.plan import Plan
from neuronviz.core.units import Selection


def pruned_layer(rule, layer, in_keeps, out_keeps, input_shapes, in_axes=None):
    """A stand-alone copy of `layer` with the rule's slicing applied (local surgery).
    `in_axes`: the inputs' channel axes (default: the last)."""
    changes, weights = rule.prune(layer, weights_of(layer), in_keeps, out_keeps)
    clone = rule.rebuilt(layer, changes)
    in_axes = in_axes or [len(s) - 1 for s in input_shapes]
    shapes = [
        with_width(s, a, k.sum()) for s, k, a in zip(input_shapes, in_keeps, in_axes, strict=True)
    ]
    rule.build_copy(clone, shapes)
    clone.set_weights(weights)
    return clone


def local_copy(tr: Trace, call: Call, in_keeps: list, out_keeps: list):
    """`pruned_layer` for a traced call (a `mask=` argument is passed as it is)."""
    n = len(call.data_inputs)
    in_axes = [a for _, a in tr.views[call.index]]
    return pruned_layer(
        tr.rule(call.path), call.layer, in_keeps[:n], out_keeps, call.input_shapes[:n], in_axes[:n]
    )


class Masker:
    """Applies a selection while a FlatGraph runs (pass `hook` to FlatGraph.run)."""

    def __init__(self, tr: Trace, selection: Selection):
        self.trace = tr
        self.selection = selection
        self.input_masks: dict[int, dict] = {}  # call index -> {key: float mask}
        self.local: dict[int, tuple] = {}  # call index -> (keeps, takes, scatters)
        self._clones: dict[int, keras.Layer] = {}  # call index -> its local copy, once run
        if not selection:
            self.output_masks = [None] * len(tr.graph.outputs)
            return
        for call in tr.graph.calls:
            rule = tr.rule(call.path)
            views = tr.views[call.index]
            in_keeps, out_keeps = tr.keeps(selection, call)
            outputs_cut = not all(k.all() for k in out_keeps)
            if not any(k.any() for k in out_keeps):  # a dropped branch: zeroed downstream
                continue
            renorm = rule.mix == "renorm" or call.path in tr.renorm_sources
            if (
                (renorm and (outputs_cut or not all(k.all() for k in in_keeps)))
                or (rule.mix == "recurrent" and outputs_cut)
                or (rule.inner_units and not out_keeps[-1].all())
            ):
                in_axes = [a for _, a in views]
                takes = [
                    None if k.all() else (np.flatnonzero(k), a)
                    for k, a in zip(in_keeps, in_axes, strict=True)
                ]
                scatters = [
                    None if k.all() else (_scatter_index(k), tr.axis(o))
                    for k, o in zip(out_keeps, call.outputs, strict=False)
                ]
                self.local[call.index] = ((in_keeps, out_keeps), takes, scatters)
            elif rule.mix in ("linear", "recurrent"):
                masks = {
                    k: channel_mask(keep, axis, len(shape))
                    for k, keep, (_, axis), shape in zip(
                        call.inputs, in_keeps, views, call.input_shapes, strict=True
                    )
                    if not keep.all()
                }
                if masks:
                    self.input_masks[call.index] = masks
        self.output_masks = []
        for k in tr.graph.outputs:
            keep = selection.keep(tr.map(k))
            mask = None if keep.all() else channel_mask(keep, tr.axis(k), len(tr.shape(k)))
            self.output_masks.append(mask)

    def build_copies(self) -> None:
        """Build every local copy now (before tracing: no variables are made later)."""
        for index, (keeps, _, _) in self.local.items():
            if index not in self._clones:
                self._clones[index] = local_copy(self.trace, self.trace.graph.calls[index], *keeps)

    def first_affected(self) -> int:
        """Index of the first call whose result changes; len(calls) if only outputs change."""
        touched = list(self.input_masks) + list(self.local)
        return min(touched) if touched else len(self.trace.graph.calls)

    def hook(self, call: Call, values: dict) -> bool:
        masks = self.input_masks.get(call.index)
        if masks is not None:
            call.run(values, override={k: values[k] * m for k, m in masks.items()})
            return True
        local = self.local.get(call.index)
        if local is not None:
            keeps, takes, scatters = local
            if call.index not in self._clones:  # built on first use: a preview may skip it
                self._clones[call.index] = local_copy(self.trace, call, *keeps)
            clone = self._clones[call.index]
            override = {
                k: ops.take(values[k], take[0], axis=take[1])
                for k, take in zip(call.inputs, takes, strict=True)
                if take is not None
            }
            call.run(values, layer=clone, override=override)
            for k, scattered in zip(call.outputs, scatters, strict=True):
                if scattered is not None:
                    scatter, axis = scattered
                    y = values[k]
                    zeros = ops.zeros_like(ops.take(y, np.zeros(1, np.int64), axis=axis))
                    values[k] = ops.take(ops.concatenate([y, zeros], axis=axis), scatter, axis=axis)
            return True
        return False

    def outputs(self, values: dict) -> list:
        outs = []
        for k, m in zip(self.trace.graph.outputs, self.output_masks, strict=True):
            outs.append(values[k] if m is None else values[k] * m)
        return outs


def channel_mask(keep: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """`keep` as a float mask that broadcasts along `axis` of a tensor of `rank`."""
    mask = keep.astype(np.float32)
    return mask if axis >= rank - 1 else mask.reshape((-1,) + (1,) * (rank - 1 - axis))


def _scatter_index(keep: np.ndarray) -> np.ndarray:
    """Positions into [kept..., zero]: kept channel i -> its rank, removed -> the zero column."""
    idx = np.full(len(keep), int(keep.sum()), dtype=np.int64)
    idx[keep] = np.arange(int(keep.sum()))
    return idx


def run_masked(
    tr: Trace, masker: Masker, inputs, start: int = 0, values: dict | None = None
) -> list:
    values = tr.graph.run(inputs, start=start, values=values, hook=masker.hook)
    return masker.outputs(values)


def masked_predict(
    model: keras.Model, plan: Plan, x, batch_size: int = 256, tr: Trace | None = None
) -> np.ndarray | list:
    """Outputs of `model` with the plan's units zeroed (the model itself is untouched)."""
    tr = tr or trace(flatten(model))
    masker = Masker(tr, tr.select(plan))
    if isinstance(x, dict):
        x = [x[name] for name in tr.graph.input_names]
    xs = x if isinstance(x, (list, tuple)) else [x]
    n = len(xs[0])
    chunks = []
    for s in range(0, n, batch_size):
        outs = run_masked(tr, masker, [ops.convert_to_tensor(a[s : s + batch_size]) for a in xs])
        chunks.append([ops.convert_to_numpy(o) for o in outs])
    outs = [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
    return outs[0] if len(outs) == 1 else outs


class MaskedModel(keras.Model):
    """A Keras model computing masked(x). It runs on its own copy of the weights."""

    def __init__(self, model: keras.Model, plan: Plan, **kwargs):
        super().__init__(name=f"{model.name}_masked", **kwargs)
        self.source = keras.models.clone_model(model)
        self.source.set_weights(model.get_weights())
        self._trace = trace(flatten(self.source))
        self.selection = self._trace.select(plan)
        self._masker = Masker(self._trace, self.selection)
        self._masker.build_copies()
        self._single = len(self._trace.graph.outputs) == 1

    def call(self, inputs):
        if isinstance(inputs, dict):
            inputs = [inputs[name] for name in self._trace.graph.input_names]
        xs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        outs = run_masked(self._trace, self._masker, list(xs))
        return outs[0] if self._single else outs


def masked_model(model: keras.Model, plan: Plan) -> MaskedModel:
    """The masked model as a Keras model (predict/evaluate work on it)."""
    m = MaskedModel(model, plan)
    g = m._trace.graph
    x = [
        np.zeros((1,) + tuple(s[1:]), dtype=d)
        for s, d in zip(g.input_shapes, g.input_dtypes, strict=True)
    ]
    m(x if len(x) > 1 else x[0])
    return m
