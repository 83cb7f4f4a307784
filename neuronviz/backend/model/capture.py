"""Graph capture: a Functional graph for a model or layer that has none.

Keras records a graph whenever layers and `keras.ops` are called on symbolic
KerasTensors. So a subclassed model, or a custom layer whose `call()` is made of
Keras layers and ops, gets a graph by running its `call()` on `keras.Input`s of the
right specs. The captured graph shares the original's layer objects (and weights).
What cannot run symbolically (Python branches on tensor values, raw `tf.*` ops, own
variables used directly) raises CaptureError, in one line naming the layer.
"""

from __future__ import annotations

import keras
from keras import tree

from neuronviz.errors import NeuronvizError


class CaptureError(NeuronvizError):
    """call() could not run symbolically; the layer stays opaque."""


def has_graph(model) -> bool:
    """True for a Functional model or a built Sequential (they have a node graph)."""
    fn = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    return isinstance(model, keras.Model) and fn is not None and hasattr(fn, "_nodes_by_depth")


def is_custom(op) -> bool:
    """A layer class defined outside Keras (so no rule knows it)."""
    return isinstance(op, keras.Layer) and type(op).__module__.split(".")[0] != "keras"


def _first_line(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:160]}" if msg else type(e).__name__


def _run_call(op, label: str, args, kwargs, inputs) -> keras.Model:
    try:
        outputs = op.call(*args, **kwargs)
    except Exception as e:
        raise CaptureError(
            f"Could not capture a graph of {label}: its call() cannot run on symbolic tensors "
            f"({_first_line(e)}). It stays opaque."
        ) from None
    flat = tree.flatten(outputs)
    if not flat or not all(isinstance(t, keras.KerasTensor) for t in flat):
        raise CaptureError(
            f"Could not capture a graph of {label}: its call() does not return Keras tensors."
        )
    try:
        graph = keras.Model(inputs, outputs, name=op.name)
    except Exception as e:
        raise CaptureError(f"Could not capture a graph of {label}: {_first_line(e)}.") from None
    _check_own_variables(op, graph, label)
    _name_ops(graph)
    return graph


def _name_ops(graph: keras.Model) -> None:
    """Give the raw ops (x + y, ops.relu) of a captured graph names that depend on the graph
    only (relu, relu_1, ...), not on Keras's global counter: every capture of the same
    model then has the same layer paths."""
    from keras.src.utils.naming import to_snake_case

    taken = {layer.name for layer in graph.layers}
    counts: dict[str, int] = {}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            op = node.operation
            if op is None or isinstance(op, keras.Layer):
                continue
            base = to_snake_case(type(op).__name__)
            while True:
                n = counts.get(base, 0)
                counts[base] = n + 1
                name = base if n == 0 else f"{base}_{n}"
                if name not in taken:
                    break
            taken.add(name)
            op.name = name


def _check_own_variables(op, graph: keras.Model, label: str) -> None:
    """Refuse a layer whose call() uses variables that no inner layer owns."""
    inner = {id(v) for layer in graph.layers for v in layer.weights}
    own = [v for v in op.weights if id(v) not in inner]
    if own:
        names = ", ".join(f"'{v.path}'" for v in own[:3])
        raise CaptureError(
            f"Could not capture a graph of {label}: its call() uses its own variables ({names}) "
            "directly instead of through inner layers. It stays opaque."
        )


def capture_call(op, node, label: str) -> keras.Model:
    """The graph of `op.call` as invoked by `node` (a custom layer inside a graph)."""
    fresh = [
        keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, sparse=t.sparse)
        for t in node.input_tensors
    ]
    args, kwargs = node.arguments.fill_in(
        {id(t): f for t, f in zip(node.input_tensors, fresh, strict=True)}
    )
    return _run_call(op, label, args, kwargs, fresh if len(fresh) > 1 else fresh[0])


def input_specs(model, input_shapes=None, dtypes=None) -> list[tuple[tuple, str]]:
    """(shape with batch None, dtype) of each input of a model without a graph."""
    if input_shapes is None:
        shapes = list((getattr(model, "_build_shapes_dict", None) or {}).values())
        if not shapes:
            raise NeuronvizError(
                f"Expected a model with a known input shape. Received: {type(model).__name__} "
                f"'{model.name}' (subclassed, with no recorded build shape). Pass input_shape "
                "(--input-shape on the command line)."
            )
        shapes = [s for s in shapes if s is not None]
        if len(shapes) == 1 and shapes[0] and isinstance(shapes[0][0], (list, tuple)):
            shapes = list(shapes[0])
        shapes = [(None,) + tuple(s[1:]) for s in shapes]
    else:
        shapes = [(None,) + tuple(s) for s in input_shapes]
    if dtypes is None:
        first = next(iter(model._flatten_layers(include_self=False, recursive=True)), None)
        dtype = "int32" if isinstance(first, keras.layers.Embedding) else "float32"
        dtypes = [dtype] * len(shapes)
    return list(zip(shapes, dtypes, strict=True))


def capture_model(model, input_shapes=None, dtypes=None) -> keras.Model:
    """A Functional model equal to a subclassed `model`, sharing its layers."""
    specs = input_specs(model, input_shapes, dtypes)
    inputs = [keras.Input(batch_shape=s, dtype=d) for s, d in specs]
    label = f"model '{model.name}' ({type(model).__name__})"
    packed = inputs if len(inputs) > 1 else inputs[0]
    return _run_call(model, label, (packed,), {}, packed)
