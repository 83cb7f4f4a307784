"""A Keras model as a flat list of layer calls, with nested models inlined.

Nested models (Sequential or Functional used as a layer) are walked into, so every call
is a leaf layer; shared layers appear once per call, under one path (the first) even
when two models call them. Tensors are identified by keys;
a nested model's inputs and outputs are aliases of the outer tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
from keras import tree

from neuronviz.backend.model import keras_fixes
from neuronviz.backend.model.capture import (
    CaptureError,
    called_nodes,
    capture_call,
    capture_model,
    has_graph,
    is_custom,
)
from neuronviz.backend.surgery.registry import hub_rule
from neuronviz.errors import NeuronvizError

keras_fixes.apply()

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
    slot_fns: tuple | None = None  # per input slot: a function applied to its tensor, or None

    @property
    def data_inputs(self) -> list[Key]:
        """Input keys except a Keras mask passed as `mask=` (it is not data)."""
        mask = self.node.arguments.kwargs.get("mask")
        masks = {id(t) for t in tree.flatten(mask)} if mask is not None else set()
        return [
            k
            for kt, k in zip(self.node.input_tensors, self.inputs, strict=True)
            if id(kt) not in masks
        ]

    def run(self, values: dict, layer=None, override: dict | None = None) -> None:
        """Compute this call from `values` (key -> tensor) and store its outputs there.
        `override` replaces some inputs (key -> tensor) for this call only."""
        src = values if not override else {**values, **override}
        if self.slot_fns is None:
            tensors = {
                id(kt): src[k] for kt, k in zip(self.node.input_tensors, self.inputs, strict=True)
            }
            args, kwargs = self.node.arguments.fill_in(tensors)
        else:  # slot by slot: one tensor may fill two slots differently (query and value)
            filled = iter(
                src[k] if fn is None else fn(src[k])
                for k, fn in zip(self.inputs, self.slot_fns, strict=True)
            )
            struct = (self.node.arguments.args, self.node.arguments.kwargs)
            flat = [
                next(filled) if isinstance(x, keras.KerasTensor) else x
                for x in tree.flatten(struct)
            ]
            args, kwargs = tree.pack_sequence_as(struct, flat)
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
    input_shapes: list[tuple] = field(default_factory=list)  # concrete example shapes
    layers: dict = field(default_factory=dict)  # path -> layer, in order of first call
    nested_inputs: list[NestedInput] = field(default_factory=list)
    nested_models: dict = field(default_factory=dict)  # path -> nested model or captured layer
    source: keras.Model | None = None  # the graph model to rebuild from (the captured one if any)
    captured: dict = field(default_factory=dict)  # path -> captured Functional ("" = the model)
    refused: dict = field(default_factory=dict)  # path -> why its graph could not be captured
    capture_nodes: dict = field(default_factory=dict)  # captured layer path -> its first call
    input_names: list[str] = field(default_factory=list)
    declared_shapes: list[tuple] = field(default_factory=list)  # with the model's None dims
    input_dtypes: list[str] = field(default_factory=list)
    example_note: str = ""  # which example shapes were used for None dims, and why
    same_as: dict = field(default_factory=dict)  # path of a layer called again from another
    # model (a keras-hub tied embedding's `reverse=True` call) -> its first path: one layer

    def paths_of(self, path: str) -> list[str]:
        """`path` and the paths other models call the same layer under."""
        return [path] + [a for a, p in self.same_as.items() if p == path]

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
    return has_graph(op)


def example_shapes(model_inputs, names, given=None) -> tuple[list[tuple], str]:
    """Concrete shapes (batch None) to trace inputs with None dimensions, and a note saying
    where they came from: `given` (the data or the user), else 16 tokens or steps, 64x64 pixels."""
    shapes, notes = [], []
    for i, (t, name) in enumerate(zip(model_inputs, names, strict=True)):
        declared = tuple(t.shape)
        if given is not None:
            shape = (None,) + tuple(int(d) for d in given[i])
            if len(shape) != len(declared) or any(
                d is not None and d != s for d, s in zip(declared[1:], shape[1:], strict=True)
            ):
                raise NeuronvizError(
                    f"Expected an input shape like {declared[1:]} for input {i} "
                    f"('{name}'). Received: {shape[1:]}"
                )
            kind = "given"
        else:
            image = len(declared) == 4 and "int" not in str(t.dtype)
            size = 64 if image else 16
            shape = (None,) + tuple(size if d is None else d for d in declared[1:])
            kind = "default: 64x64 pixels" if image else "default: 16 tokens/steps"
        shapes.append(shape)
        if any(d is None for d in declared[1:]):
            notes.append(f"input '{name}' {declared[1:]} traced at {shape[1:]} ({kind})")
    return shapes, "; ".join(notes)


def flatten(model: keras.Model, input_shapes=None) -> FlatGraph:
    """Inline `model` (and every nested graph model) into one list of leaf calls.

    A subclassed model, or a custom layer made of Keras layers and ops, is captured
    first (see capture.py). `input_shapes` (without the batch axis) are the concrete
    example shapes used for inputs with None dimensions."""
    keras_fixes.apply_hub()
    if has_graph(model):
        top, source = _functional_of(model), model
    elif isinstance(model, keras.Model):
        top = source = capture_model(model, input_shapes)
    else:
        raise NeuronvizError(
            f"Expected a Keras model. Received: {type(model).__name__} '{getattr(model, 'name', '')}'"
        )
    g = FlatGraph(model, source=source)
    if source is not model:
        g.captured[""] = top
    alias: dict[Key, Key] = {}

    def canon(k: Key) -> Key:
        while k in alias:
            k = alias[k]
        return k

    counter = [0]
    first_paths: dict[int, str] = {}  # id(layer) -> its first path

    def inline(inner, node, in_keys, scope, path) -> None:
        counter[0] += 1
        sub = scope + (counter[0],)
        for i, (t, k) in enumerate(zip(tree.flatten(inner.inputs), in_keys, strict=True)):
            alias[(sub, id(t))] = k
            g.nested_inputs.append(NestedInput(path, i, k))
        walk(inner, sub, path + "/")
        for t_out, t_in in zip(node.outputs, tree.flatten(inner.outputs), strict=True):
            alias[(scope, id(t_out))] = canon((sub, id(t_in)))

    def walk(fmodel, scope: tuple, prefix: str) -> None:
        for node in called_nodes(fmodel):
            op = node.operation
            in_keys = [canon((scope, id(t))) for t in node.input_tensors]
            path = prefix + op.name
            if _is_graph_model(op):
                g.nested_models.setdefault(path, op)
                inline(_functional_of(op), node, in_keys, scope, path)
                continue
            if is_custom(op) and path not in g.refused and hub_rule(op) is None:
                try:
                    inner = g.captured.get(path) or capture_call(
                        op, node, f"layer '{path}' ({type(op).__name__})", size
                    )
                except CaptureError as e:
                    g.refused[path] = str(e)
                else:
                    g.captured[path] = inner
                    g.capture_nodes.setdefault(path, node)
                    g.nested_models.setdefault(path, op)
                    inline(inner, node, in_keys, scope, path)
                    continue
            first = first_paths.setdefault(id(op), path)
            if first != path:  # the same layer, called from another model
                g.same_as[path], path = first, first
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

    model_inputs = tree.flatten(top.inputs)
    g.input_names = input_names(top)
    g.input_shapes, g.example_note = example_shapes(model_inputs, g.input_names, input_shapes)
    size = next(  # the example size of None dimensions, for layers captured at concrete sizes
        (
            e
            for t, s in zip(model_inputs, g.input_shapes, strict=True)
            for d, e in zip(t.shape[1:], s[1:], strict=True)
            if d is None
        ),
        16,
    )
    walk(top, (), "")
    g.inputs = [((), id(t)) for t in model_inputs]
    g.declared_shapes = [tuple(t.shape) for t in model_inputs]
    g.input_dtypes = [str(t.dtype) for t in model_inputs]
    g.outputs = [canon(((), id(t))) for t in tree.flatten(top.outputs)]
    if g.example_note or any(None in s[1:] for c in g.calls for s in c.output_shapes):
        _concretize(g)
    return g


def graph_model(model: keras.Model) -> keras.Model:
    """`model` if it has a graph, else its captured Functional graph."""
    return _functional_of(model) if has_graph(model) else capture_model(model)


def input_names(model) -> list[str]:
    """Names of a graph model's inputs in the order of `model.inputs`: the dict keys for
    named dict inputs (keras-hub's token_ids, padding_mask, ...), else the Input names."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        return [str(k) for k in sorted(struct)]
    return [_input_name(t) for t in model.inputs]


def pack_inputs(model, xs: list):
    """Arrays in `model.inputs` order, packed the way the model takes them."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        return dict(zip(sorted(struct), xs, strict=True))
    return xs if len(xs) > 1 else xs[0]


def _input_name(t) -> str:
    history = getattr(t, "_keras_history", None)
    return history.operation.name if history is not None else t.name


def _concretize(g: FlatGraph) -> None:
    """Replace None dimensions in every call's shapes by those at the example input shapes."""
    from keras.src.backend import compute_output_spec

    specs = {
        k: keras.KerasTensor(s, dtype=d)
        for k, s, d in zip(g.inputs, g.input_shapes, g.input_dtypes, strict=True)
    }
    for call in g.calls:
        tensors = {
            id(kt): specs[k] for kt, k in zip(call.node.input_tensors, call.inputs, strict=True)
        }
        args, kwargs = call.node.arguments.fill_in(tensors)
        try:
            out = compute_output_spec(call.layer, *args, **kwargs)
        except Exception as e:
            msg = str(e).strip().splitlines()
            raise NeuronvizError(
                f"Could not trace layer '{call.path}' at the example input shapes "
                f"{[s[1:] for s in g.input_shapes]}: {type(e).__name__}: {msg[0][:160] if msg else ''}"
            ) from None
        outs = tree.flatten(out)
        for k, y in zip(call.outputs, outs, strict=True):
            specs[k] = y
        call.input_shapes = [tuple(specs[k].shape) for k in call.inputs]
        call.output_shapes = [tuple(y.shape) for y in outs]
