"""What a pruned captured model or layer becomes.

Where the original class can be rebuilt with the new widths (its `get_config()` holds
them, e.g. `filters` or `hidden`), it is kept with a per-layer config: the new config
is built, captured, and accepted only if every inner layer then has exactly the pruned
weight shapes. Otherwise the captured graph is saved as an equivalent Functional model
of its inner layers and ops. Either way the file loads with `keras.saving.load_model`
in safe mode without neuronviz.
"""

from __future__ import annotations

import copy
import inspect

import keras
import numpy as np

from neuronviz.backend.model.graph import FlatGraph, flatten
from neuronviz.backend.surgery.registry import is_layer

_NOT_WIDTHS = {"name", "dtype", "trainable", "seed"}


def under(path: str, prefix: str) -> bool:
    """`path` lies inside the captured object at `prefix` ("" is the whole model)."""
    return prefix == "" or path.startswith(prefix + "/")


def calls_under(fg: FlatGraph, prefix: str) -> list:
    return [c for c in fg.calls if under(c.path, prefix)]


def inline_functional(cfg: dict, fg: FlatGraph, skip) -> dict:
    """Replace each captured custom layer's entry (outside `skip`) by its captured graph."""
    how = {}
    for path in sorted((p for p in fg.captured if p), key=lambda p: p.count("/")):
        if any(path == s or under(path, s) for s in skip):
            continue
        entry = find_entry(cfg, path)
        layer = fg.nested_models[path]
        graph = keras.saving.serialize_keras_object(fg.captured[path])
        _drop_unspecced_none(graph["config"], fg.captured[path])
        for key in ("module", "class_name", "registered_name", "config"):
            entry[key] = copy.deepcopy(graph.get(key))
        entry["config"]["name"] = entry["config"].get("name", layer.name)
        for node in entry.get("inbound_nodes", []):
            tensors = _tensors(node.get("args", [])) + _tensors(node.get("kwargs", {}))
            node["args"], node["kwargs"] = ([tensors] if len(tensors) > 1 else tensors), {}
        how[path] = functional_note(layer)
    return how


def _drop_unspecced_none(cfg: dict, graph: keras.Model) -> None:
    """Drop keyword arguments passed as None (their default) that a layer's
    compute_output_spec does not take, so the file loads without neuronviz (keras-hub's
    CachedMultiHeadAttention is called with cache=None, which its symbolic call rejects)."""
    for entry in cfg["layers"]:
        try:
            layer = graph.get_layer(entry["config"].get("name", entry.get("name")))
        except ValueError:
            continue
        spec = inspect.signature(layer.compute_output_spec).parameters
        if any(p.kind is p.VAR_KEYWORD for p in spec.values()):
            continue
        call = inspect.signature(layer.call).parameters
        for node in entry.get("inbound_nodes", []):
            kwargs = node.get("kwargs", {})
            for k in [k for k, v in kwargs.items() if v is None and k not in spec]:
                if k in call and call[k].default is None:
                    del kwargs[k]


def _tensors(value) -> list:
    """Serialised KerasTensors in `value`, in Keras's flattening order (dict keys sorted):
    the order of the captured graph's inputs."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value]
        return [t for k in sorted(value) for t in _tensors(value[k])]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def functional_note(obj) -> str:
    return (
        f"{type(obj).__name__} saved as an equivalent Functional model of its inner layers and ops"
    )


def find_entry(cfg: dict, path: str) -> dict:
    """The layer entry of `path` ('a/b/c') inside a model config."""
    entry = None
    for name in path.split("/"):
        layers = (entry["config"] if entry is not None else cfg)["layers"]
        entry = next(e for e in layers if e["config"].get("name", e.get("name")) == name)
    return entry


def _substitute(value, widths: dict, key: str = ""):
    """`value` with every int that is an old width replaced by its new width."""
    if isinstance(value, dict):
        return {k: v if k in _NOT_WIDTHS else _substitute(v, widths, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, widths, key) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return widths.get(value, value)
    return value


def rebuilt_config(obj, prefix: str, fg: FlatGraph, changes: dict, weights: dict, input_specs):
    """The config of `obj`'s class with the new widths, or None when that class cannot
    express the pruned inner layers (checked by building and capturing it)."""
    widths: dict[int, int] = {}
    inner = calls_under(fg, prefix)
    for c in inner:
        for k, v in changes.get(c.path, {}).items():
            old = getattr(c.layer, k, None)
            if isinstance(v, int) and isinstance(old, int) and old != v:
                if widths.get(old, v) != v:
                    return None  # one config value cannot hold two new widths
                widths[old] = v
    try:
        cfg = _substitute(obj.get_config(), widths)
        twin = type(obj).from_config(copy.deepcopy(cfg))
        inputs = [keras.Input(batch_shape=s, dtype=d) for s, d in input_specs]
        node = fg.capture_nodes.get(prefix)
        if node is None:  # the model itself
            out = twin(inputs if len(inputs) > 1 else inputs[0])
        else:  # called as the original was: the same positional and keyword arguments
            fill = {id(t): x for t, x in zip(node.input_tensors, inputs, strict=True)}
            args, kwargs = node.arguments.fill_in(fill)
            out = twin(*args, **kwargs)
        twin_calls = flatten(keras.Model(inputs, out)).calls
    except Exception:
        return None
    if not _same_structure(inner, twin_calls, weights):
        return None
    return cfg


def _same_structure(old_calls, new_calls, weights: dict) -> bool:
    if len(old_calls) != len(new_calls):
        return False
    for a, b in zip(old_calls, new_calls, strict=True):
        if type(a.layer) is not type(b.layer):
            return False
        if is_layer(b.layer):
            want = [np.shape(w) for w in weights[a.path]]
            if want != [tuple(v.shape) for v in b.layer.weights]:
                return False
    return True


def assign_by_position(old_calls, new_calls, weights: dict) -> None:
    """Give the rebuilt object's inner layers the pruned weights, call by call."""
    for a, b in zip(old_calls, new_calls, strict=True):
        if is_layer(b.layer):
            b.layer.set_weights(weights[a.path])


def class_note(obj, old_cfg: dict, new_cfg: dict) -> str:
    changed = [f"{k}={new_cfg[k]}" for k in new_cfg if k in old_cfg and new_cfg[k] != old_cfg[k]]
    what = ", ".join(changed) if changed else "config unchanged"
    return f"{type(obj).__name__} kept as its own class with new widths in its config ({what})"
