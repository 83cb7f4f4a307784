"""Graph capture: a Functional graph for a model or layer that has none.

Keras records a graph whenever layers and `keras.ops` are called on symbolic
KerasTensors. So a subclassed model, or a custom layer whose `call()` is made of
Keras layers and ops, gets a graph by running its `call()` on `keras.Input`s of the
right specs. The captured graph shares the original's layer objects (and weights).
A call() that needs the size of a None dimension (keras-hub decoders build a causal mask
from `ops.shape(x)[1]`) is captured at two concrete sizes and replayed on the declared
shapes; the causal mask of the traced length is rebuilt from the input with Keras ops, so
the graph (and a pruned model saved from it) holds at every length.
What cannot run symbolically (Python branches on tensor values, raw `tf.*` ops, own
variables used directly, other constants built from the input's size) raises
CaptureError, in one line naming the layer.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import tree

from neuronviz.errors import NeuronvizError


class CaptureError(NeuronvizError):
    """call() could not run symbolically; the layer stays opaque."""


def has_graph(model) -> bool:
    """True for a Functional model or a built Sequential (they have a node graph)."""
    fn = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    return isinstance(model, keras.Model) and fn is not None and hasattr(fn, "_nodes_by_depth")


def called_nodes(graph):
    """The nodes of a Functional graph that call an operation, in call order."""
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if not node.is_input and node.operation is not None:
                yield node


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
    for node in called_nodes(graph):
        op = node.operation
        if isinstance(op, keras.Layer):
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


def capture_call(op, node, label: str, size: int = 16) -> keras.Model:
    """The graph of `op.call` as invoked by `node` (a custom layer inside a graph).

    A call() that needs the sizes of None dimensions (a causal mask built from the
    sequence length) is captured at concrete sizes instead (see `_capture_sized`)."""
    shapes = [tuple(t.shape) for t in node.input_tensors]
    try:
        return _capture_node(op, node, label, shapes)
    except CaptureError:
        if not any(d is None for s in shapes for d in s):
            raise
    return _capture_sized(op, node, label, shapes, size)


def _capture_node(op, node, label: str, shapes) -> keras.Model:
    fresh = [
        keras.Input(batch_shape=s, dtype=t.dtype, sparse=t.sparse)
        for s, t in zip(shapes, node.input_tensors, strict=True)
    ]
    args, kwargs = node.arguments.fill_in(
        {id(t): f for t, f in zip(node.input_tensors, fresh, strict=True)}
    )
    return _run_call(op, label, args, kwargs, fresh if len(fresh) > 1 else fresh[0])


def _capture_sized(op, node, label: str, shapes, size: int) -> keras.Model:
    """Capture at two concrete sizes (batch 1 and length `size`; batch 2 and another
    length) and replay the first graph on the declared None shapes. The constants the two
    captures disagree on depend on the sizes: a causal mask of the traced length is
    rebuilt from the input (so the graph holds for any length); any other such constant
    is refused."""
    other = size - 1 if size > 2 else size + 1
    sized = [
        [(b,) + tuple(n if d is None else d for d in s[1:]) for s in shapes]
        for b, n in ((1, size), (2, other))
    ]
    first, second = (_capture_node(op, node, label, s) for s in sized)
    nodes_a, nodes_b = list(called_nodes(first)), list(called_nodes(second))
    if [type(n.operation) for n in nodes_a] != [type(n.operation) for n in nodes_b]:
        raise CaptureError(
            f"Could not capture a graph of {label}: its call() builds a different graph "
            "for each input size. It stays opaque."
        )
    lengths = [(i, s) for i, s in enumerate(shapes) if len(s) > 1 and s[1] is None]
    source = min(lengths, key=lambda p: len(p[1]))[0] if lengths else None
    replace: dict[int, str] = {}
    for a, b in zip(nodes_a, nodes_b, strict=True):
        for x, y in zip(_constants(a), _constants(b), strict=True):
            if _same(x, y):
                continue
            kind_a = _causal_kind(x, 1, size) if source is not None else None
            kind = _causal_kind(y, 2, other)
            if kind_a is None or kind is None or (kind == "none") != (kind_a == "none"):
                raise CaptureError(
                    f"Could not capture a graph of {label}: its call() builds a constant from "
                    f"the input's size (an argument of '{a.operation.name}'), which would "
                    "not hold for other sizes. It stays opaque."
                )
            replace[id(x)] = kind
    return _replay(first, op, label, shapes, source, replace)


def _constants(node) -> list:
    """The arguments of a node that are not symbolic tensors, in order."""
    leaves = tree.flatten((node.arguments.args, node.arguments.kwargs))
    return [v for v in leaves if not isinstance(v, keras.KerasTensor)]


def _array(v):
    if isinstance(v, (bool, int, float, str, type(None))) or not hasattr(v, "shape"):
        return None
    return keras.ops.convert_to_numpy(v)


def _same(x, y) -> bool:
    if x is y:
        return True
    ax, ay = _array(x), _array(y)
    if ax is None or ay is None:
        return ax is None and ay is None and type(x) is type(y) and x == y
    return ax.shape == ay.shape and ax.dtype == ay.dtype and bool(np.all(ax == ay))


def _causal_kind(v, batch: int, length: int) -> str | None:
    """'batch', 'one' or 'none' when `v` is a causal mask (i >= j) of `length` with a
    batch axis of `batch`, of 1, or without one; else None."""
    a = _array(v)
    tril = np.tril(np.ones((length, length), bool))
    if a is None or a.shape[-2:] != (length, length) or a.ndim not in (2, 3):
        return None
    if not np.array_equal(a.astype(bool), np.broadcast_to(tril, a.shape)):
        return None
    if not np.isin(a, (0, 1)).all():
        return None
    if a.ndim == 2:
        return "none"
    return "one" if a.shape[0] == 1 and batch != 1 else "batch" if a.shape[0] == batch else None


def _causal_mask(source, kind: str, dtype):
    """A causal mask (i >= j) with the length of `source`'s axis 1, made of Keras ops."""
    from keras import ops

    ones = ops.ones_like(source, dtype="float32")
    if len(source.shape) > 2:
        ones = ops.mean(ones, axis=tuple(range(2, len(source.shape))))
    pos = ops.cumsum(ones, axis=1)
    mask = ops.greater_equal(ops.expand_dims(pos, 2), ops.expand_dims(pos, 1))
    if kind != "batch":
        mask = ops.take(mask, 0 if kind == "none" else [0], axis=0)
    return mask if str(dtype) == "bool" else ops.cast(mask, dtype)


def _replay(graph, op, label: str, shapes, source, replace: dict) -> keras.Model:
    """`graph` rerun on inputs of the declared `shapes`, with the constants in `replace`
    (id -> causal mask kind) rebuilt from input `source`."""
    old = tree.flatten(graph.inputs)
    fresh = [
        keras.Input(batch_shape=s, dtype=t.dtype, sparse=t.sparse)
        for s, t in zip(shapes, old, strict=True)
    ]
    values = {id(t): f for t, f in zip(old, fresh, strict=True)}
    masks: dict = {}

    def swap(v):
        if id(v) not in replace:
            return v
        key = (replace[id(v)], str(v.dtype))
        if key not in masks:
            masks[key] = _causal_mask(fresh[source], replace[id(v)], v.dtype)
        return masks[key]

    try:
        for node in called_nodes(graph):
            args, kwargs = node.arguments.fill_in(values)
            args, kwargs = tree.map_structure(swap, (args, kwargs))
            out = node.operation(*args, **kwargs)
            for t, y in zip(node.outputs, tree.flatten(out), strict=True):
                values[id(t)] = y
        outputs = tree.map_structure(lambda t: values[id(t)], graph._outputs_struct)
        replayed = keras.Model(fresh if len(fresh) > 1 else fresh[0], outputs, name=op.name)
    except Exception as e:
        raise CaptureError(
            f"Could not capture a graph of {label} for any input size: {_first_line(e)}. "
            "It stays opaque."
        ) from None
    _check_own_variables(op, replayed, label)
    _name_ops(replayed)
    return replayed


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
