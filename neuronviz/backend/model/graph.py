"""A Keras model as a flat list of layer calls, with nested models inlined.

Nested models (Sequential or Functional used as a layer) are walked into, so every call
is a leaf layer; shared layers appear once per call. Tensors are identified by keys;
a nested model's inputs and outputs are aliases of the outer tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
from keras import tree

Key = tuple  # (scope, id(KerasTensor))


@dataclass(eq=False)
class Call:
    """One invocation of a leaf layer."""

    index: int
    layer: keras.Layer
    path: str
    node: object  # keras Node
    inputs: list[Key]
    outputs: list[Key]
    input_shapes: list[tuple]
    output_shapes: list[tuple]

    def run(self, values: dict, layer=None, override: dict | None = None) -> None:
        """Compute this call from `values` (key -> tensor) and store its outputs there.
        `override` replaces some inputs (key -> tensor) for this call only."""
        src = values if not override else {**values, **override}
        tensors = {
            id(kt): src[k] for kt, k in zip(self.node.input_tensors, self.inputs, strict=True)
        }
        args, kwargs = self.node.arguments.fill_in(tensors)
        out = (layer or self.layer)(*args, **kwargs)
        for k, y in zip(self.outputs, tree.flatten(out), strict=True):
            values[k] = y


@dataclass
class NestedInput:
    """Where a nested model's input comes from (to update its Input shape after pruning)."""

    model_path: str
    position: int
    key: Key


@dataclass(eq=False)
class FlatGraph:
    model: keras.Model
    calls: list[Call] = field(default_factory=list)
    inputs: list[Key] = field(default_factory=list)
    outputs: list[Key] = field(default_factory=list)
    input_shapes: list[tuple] = field(default_factory=list)
    layers: dict = field(default_factory=dict)  # path -> layer, in order of first call
    nested_inputs: list[NestedInput] = field(default_factory=list)
    nested_models: dict = field(default_factory=dict)  # path -> nested model

    def first_call(self, path: str) -> Call:
        return next(c for c in self.calls if c.path == path)

    def aliases(self) -> dict[str, str]:
        """Unambiguous short names for nested layers: 'dense' for 'inner/dense'."""
        short: dict[str, list[str]] = {}
        for p in self.layers:
            short.setdefault(p.rsplit("/", 1)[-1], []).append(p)
        return {
            s: ps[0]
            for s, ps in short.items()
            if len(ps) == 1 and s != ps[0] and s not in self.layers
        }

    def producers(self) -> dict[Key, Call]:
        return {k: c for c in self.calls for k in c.outputs}

    def run(
        self, inputs, start: int = 0, values: dict | None = None, hook=None, stop: int | None = None
    ) -> dict:
        """Run calls[start:stop] eagerly. `hook(call, values)` may replace the call's work
        (return True when it stored the outputs itself)."""
        values = {} if values is None else values
        if start == 0 and inputs is not None:
            for k, x in zip(self.inputs, inputs, strict=True):
                values[k] = x
        for call in self.calls[start:stop]:
            if hook is None or not hook(call, values):
                call.run(values)
        return values


def _functional_of(model):
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model


def _is_graph_model(op) -> bool:
    return (
        isinstance(op, keras.Model)
        and _functional_of(op) is not None
        and hasattr(_functional_of(op), "_nodes_by_depth")
    )


def flatten(model: keras.Model) -> FlatGraph:
    """Inline `model` (and every nested graph model) into one list of leaf calls."""
    top = _functional_of(model)
    if top is None or not hasattr(top, "_nodes_by_depth"):
        from neuronviz.errors import NeuronvizError

        raise NeuronvizError(
            f"Expected a Functional or Sequential model with a defined input. Received: "
            f"{type(model).__name__} '{model.name}' (subclassed or unbuilt models have no graph to inspect)."
        )
    g = FlatGraph(model)
    alias: dict[Key, Key] = {}

    def canon(k: Key) -> Key:
        while k in alias:
            k = alias[k]
        return k

    counter = [0]

    def walk(fmodel, scope: tuple, prefix: str) -> None:
        for depth in sorted(fmodel._nodes_by_depth, reverse=True):
            for node in fmodel._nodes_by_depth[depth]:
                op = node.operation
                if node.is_input or op is None:
                    continue
                in_keys = [canon((scope, id(t))) for t in node.input_tensors]
                if _is_graph_model(op):
                    inner = _functional_of(op)
                    counter[0] += 1
                    sub = scope + (counter[0],)
                    path = prefix + op.name
                    g.nested_models.setdefault(path, op)
                    for i, (t, k) in enumerate(
                        zip(tree.flatten(inner.inputs), in_keys, strict=True)
                    ):
                        alias[(sub, id(t))] = k
                        g.nested_inputs.append(NestedInput(path, i, k))
                    walk(inner, sub, path + "/")
                    for t_out, t_in in zip(node.outputs, tree.flatten(inner.outputs), strict=True):
                        alias[(scope, id(t_out))] = canon((sub, id(t_in)))
                    continue
                path = prefix + op.name
                g.layers.setdefault(path, op)
                g.calls.append(
                    Call(
                        index=len(g.calls),
                        layer=op,
                        path=path,
                        node=node,
                        inputs=in_keys,
                        outputs=[(scope, id(t)) for t in node.outputs],
                        input_shapes=[tuple(t.shape) for t in node.input_tensors],
                        output_shapes=[tuple(t.shape) for t in node.outputs],
                    )
                )

    walk(top, (), "")
    g.inputs = [((), id(t)) for t in tree.flatten(top.inputs)]
    g.input_shapes = [tuple(t.shape) for t in tree.flatten(top.inputs)]
    g.outputs = [canon(((), id(t))) for t in tree.flatten(top.outputs)]
    return g
