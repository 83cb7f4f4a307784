"""One layer object called from two models (a keras-hub token embedding: forward in the
backbone, `reverse=True` in the task model) stays one layer in the pruned model.

A model config cannot say that a nested model's layer is also called outside it, so the
model rebuilt from configs holds two copies. Where that happens, the pruned model is
re-wired as one Functional model with its nested models inlined: the calls of the two
copies go to one layer (one set of weights, tying kept), which its config can say.
"""

from __future__ import annotations

import keras
from keras import tree

from neuronviz.backend.model.capture import called_nodes, has_graph
from neuronviz.backend.model.graph import FlatGraph, graph_model, input_names


def _leaf_nodes(fmodel, prefix: str = ""):
    """(path, node) of every call in `fmodel`, nested graph models walked into."""
    for node in called_nodes(fmodel):
        op = node.operation
        if has_graph(op):
            yield from _leaf_nodes(graph_model(op), prefix + op.name + "/")
        else:
            yield prefix + op.name, node


def unshared(new: keras.Model, fg: FlatGraph) -> tuple[keras.Model, dict]:
    """`new` (rebuilt from configs, whose shared layers may have become copies) with one
    layer per layer of the original, and a note per copy merged; `new` itself if none."""
    ops = {path: node.operation for path, node in _leaf_nodes(graph_model(new))}
    canonical: dict[str, object] = {}  # path -> the one layer its calls go to
    notes = {}
    for path in set(fg.same_as.values()):
        paths = fg.paths_of(path)
        found = [p for p in paths if p in ops]
        for p in found:
            canonical[p] = ops[found[0]]
            if ops[p] is not ops[found[0]]:
                notes[p] = f"{type(ops[p]).__name__} shared with '{found[0]}': kept as one layer"
    if not notes:
        return new, {}
    parts = [p.split("/") for p in ops]
    for path in {"/".join(ps[:i]) for ps in parts for i in range(1, len(ps))}:
        what = type(fg.nested_models.get(path, ops.get(path))).__name__
        notes[path] = f"{what} inlined into the pruned Functional model (a layer in it is shared)"
    return _rewired(new, canonical), notes


def _rewired(new: keras.Model, canonical: dict) -> keras.Model:
    """One Functional model running `new`'s calls, nested models inlined, each path's
    calls going to `canonical.get(path, its own layer)`."""
    fmodel = graph_model(new)
    inputs = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype, sparse=t.sparse, name=name)
        for t, name in zip(tree.flatten(fmodel.inputs), input_names(fmodel), strict=True)
    ]
    names = {x.name: x for x in inputs}
    for op in fmodel.operations:  # the outer model's own layers keep their names
        if not has_graph(op):
            names.setdefault(op.name, canonical.get(op.name, op))
    outputs = _replay(fmodel, inputs, "", canonical, names)
    return keras.Model(
        tree.pack_sequence_as(fmodel._inputs_struct, inputs),
        tree.pack_sequence_as(fmodel._outputs_struct, outputs),
        name=new.name,
    )


def _replay(fmodel, xs: list, prefix: str, canonical: dict, names: dict) -> list:
    """`fmodel`'s outputs, its calls made again on `xs` (nested graph models inlined).
    `names`: name -> the layer holding it in the new model, so far."""
    values = {id(t): x for t, x in zip(tree.flatten(fmodel.inputs), xs, strict=True)}
    for node in called_nodes(fmodel):
        op = node.operation
        if has_graph(op):
            ins = [values[id(t)] for t in node.input_tensors]
            outs = _replay(graph_model(op), ins, prefix + op.name + "/", canonical, names)
        else:
            layer = canonical.get(prefix + op.name, op)
            if names.get(layer.name, layer) is not layer:  # two inlined models' names
                layer.name = _unique((prefix + op.name).replace("/", "_"), names)
            names[layer.name] = layer
            fill = {id(t): values[id(t)] for t in node.input_tensors}
            args, kwargs = node.arguments.fill_in(fill)
            outs = tree.flatten(layer(*args, **kwargs))
        for t, y in zip(node.outputs, outs, strict=True):
            values[id(t)] = y
    return [values[id(t)] for t in tree.flatten(fmodel.outputs)]


def _unique(name: str, names: dict) -> str:
    n, out = 0, name
    while out in names:
        n += 1
        out = f"{name}_{n}"
    return out
