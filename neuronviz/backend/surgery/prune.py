"""Physical removal of units: a new, smaller model with no mask left in it.

The new model is rebuilt from the original's config with the widths changed, then
every layer gets its weights, sliced where units went and copied bit for bit
elsewhere. Nested models and shared layers keep their structure, except that a nested
model sharing a layer with its caller is inlined (sharing.py): the layer stays one.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras.src.models.functional import Functional

from neuronviz.backend.model.compiling import compile_like
from neuronviz.backend.model.graph import flatten, pack_inputs
from neuronviz.backend.model.io import probe_batch, save_model
from neuronviz.backend.model.trace import Trace, trace
from neuronviz.backend.surgery import captured
from neuronviz.backend.surgery.attention import repeated_kv
from neuronviz.backend.surgery.branches import dead_layers, drop_from_config
from neuronviz.backend.surgery.counting import Counts, count
from neuronviz.backend.surgery.masking import masked_predict
from neuronviz.backend.surgery.registry import is_layer, weights_of
from neuronviz.backend.surgery.rules import Rule, with_width
from neuronviz.backend.surgery.sharing import unshared
from neuronviz.core.plan import Plan
from neuronviz.core.units import Selection
from neuronviz.errors import NeuronvizError


@dataclass
class PruneResult:
    model: keras.Model
    selection: Selection
    before: Counts
    after: Counts
    trace: Trace  # of the original model
    captured: dict = field(default_factory=dict)  # path -> how a captured graph was saved

    def capture_summary(self) -> list[str]:
        """One line per captured model or layer: what the pruned model holds in its place."""
        return [f"{'model' if not p else repr(p)}: {how}" for p, how in self.captured.items()]

    @property
    def removed(self) -> dict[str, list[int]]:
        return self.selection.removed_by_layer()

    def widths(self) -> dict[str, tuple[int, int]]:
        """Layer -> (units before, units after), for layers that lost units."""
        lu = self.selection.layer_units
        return {k: (len(lu[k]), len(lu[k]) - len(v)) for k, v in self.removed.items()}


def _layer_configs(cfg: dict, prefix: str = "", out: dict | None = None) -> dict:
    """Map nested layer paths to their config dicts inside a model config."""
    out = {} if out is None else out
    for entry in cfg.get("layers", []):
        entry.pop("build_config", None)
        lc = entry["config"]
        name = lc.get("name", entry.get("name"))
        if isinstance(lc.get("layers"), list):
            out[prefix + name + "/"] = lc
            _layer_configs(lc, prefix + name + "/", out)
        else:
            out[prefix + name] = lc
    return out


def _set_input_width(model_cfg: dict, position: int, width: int, axis: int) -> None:
    """Change the channel width (along `axis`) of a nested model's `position`-th Input."""
    layers = model_cfg["layers"]
    if "input_layers" in model_cfg:  # Functional
        names = model_cfg["input_layers"]
        names = [names] if names and isinstance(names[0], str) else names
        name = names[position][0]
        entry = next(e for e in layers if e["config"].get("name") == name)
    else:  # Sequential
        entry = layers[0] if layers and layers[0]["class_name"] == "InputLayer" else None
        if "build_input_shape" in model_cfg and model_cfg["build_input_shape"]:
            model_cfg["build_input_shape"] = list(
                with_width(model_cfg["build_input_shape"], axis, width)
            )
    if entry is not None:
        shape = entry["config"]["batch_shape"]
        entry["config"]["batch_shape"] = list(with_width(shape, axis, width))


def prune(
    model: keras.Model, plan: Plan, tr: Trace | None = None, *, safe_mode: bool = True
) -> PruneResult:
    """A new model without the plan's units (over whole groups). `model` is not changed."""
    tr = tr or trace(flatten(model))
    sel = tr.select(plan)
    if sel.touches_output():
        warnings.warn(
            "The selection removes output units: the pruned model's outputs change shape.",
            stacklevel=2,
        )
    for note in repeated_kv(tr, sel):
        warnings.warn(note, stacklevel=2)
    fg = tr.graph
    dead = dead_layers(tr, sel)  # whole branches that only fed a Concatenate
    if dead and fg.captured:
        raise NeuronvizError(
            "Removing a whole branch is supported in Functional and Sequential models only. "
            f"Received: a captured model losing layers {', '.join(sorted(dead)[:4])}."
        )
    changes: dict[str, dict] = {}
    weights: dict[str, list] = {}
    for path, layer in fg.layers.items():
        if path in dead:
            continue
        in_keeps, out_keeps = tr.keeps(sel, fg.first_call(path))
        w = weights_of(layer)
        if all(k.all() for k in in_keeps + out_keeps):
            weights[path] = w
            continue
        changes[path], weights[path] = tr.rule(path).prune(layer, w, in_keeps, out_keeps)
    kept = _classes_kept(model, fg, tr, sel, changes, weights, safe_mode)
    notes = {  # captured objects that changed (the others are kept as they were, silently)
        p: captured.class_note(fg.nested_models.get(p, model), *kept[p])
        for p in kept
        if any(captured.under(c, p) for c in changes)
    }
    if "" in kept:
        new = _rebuilt_model(model, kept[""][1], fg, safe_mode)
    else:
        new, functional = _rebuilt_graph(model, fg, sel, tr, changes, kept, safe_mode, dead)
        notes.update(functional)
    new_graph = flatten(new, [s[1:] for s in fg.input_shapes])
    for path, w in weights.items():
        if not any(captured.under(path, k) for k in kept):
            layer = new_graph.layers.get(path)
            if is_layer(layer):
                layer.set_weights(w)
    for k in kept:
        captured.assign_by_position(
            captured.calls_under(fg, k), captured.calls_under(new_graph, k), weights
        )
    new, merged = unshared(new, fg)
    if merged:
        notes.update(merged)
        new_graph = flatten(new, [s[1:] for s in fg.input_shapes])
    compile_like(new, model)
    order = sorted(notes, key=lambda p: (p.count("/") if p else -1, p))
    return PruneResult(
        new, sel, count(tr.graph), count(new_graph), tr, {p: notes[p] for p in order}
    )


def _classes_kept(model, fg, tr, sel, changes, weights, safe_mode) -> dict:
    """Captured path -> (old config, new config) for classes rebuilt with new widths."""
    kept: dict = {}
    for path in sorted(fg.captured, key=lambda p: (p.count("/") if p else -1, p)):
        if any(captured.under(path, k) and path != k for k in kept):
            continue  # rebuilt as part of a kept ancestor
        obj = model if path == "" else fg.nested_models[path]
        changed = [p for p in changes if captured.under(p, path)]
        if not changed and path:  # nothing inside changes: its own config still holds it
            cfg = _own_config(obj, safe_mode)
            if cfg is not None:
                kept[path] = (cfg, cfg)
                continue
        if any(_swapped(fg.layers[p], tr.rule(p), changes[p]) for p in changed):
            continue  # an inner layer becomes another class: this one's config cannot say so
        specs = _input_specs(fg, path, sel, tr)
        with _safe(safe_mode):
            cfg = captured.rebuilt_config(obj, path, fg, changes, weights, specs)
        if cfg is not None:
            kept[path] = (obj.get_config(), cfg)
    return kept


def _own_config(layer, safe_mode) -> dict | None:
    """`layer`'s config if its class takes it back (some keras-hub configs do not)."""
    try:
        cfg = layer.get_config()
        with _safe(safe_mode):
            type(layer).from_config(copy.deepcopy(cfg))
    except Exception:
        return None
    return cfg


def _input_specs(fg, path: str, sel, tr) -> list[tuple]:
    """(pruned batch shape, dtype) of each input of the captured object at `path`."""
    if path == "":
        keys = fg.inputs
    else:
        keys = [
            ni.key
            for ni in sorted(fg.nested_inputs, key=lambda n: n.position)
            if ni.model_path == path
        ]
    tensors = keras.tree.flatten(fg.captured[path].inputs)
    keeps = [sel.keep(tr.map(k)) for k in keys]
    return [  # an unchanged input keeps its declared shape (a None length stays None)
        (
            tuple(t.shape) if keep.all() else with_width(tuple(t.shape), tr.axis(k), keep.sum()),
            t.dtype,
        )
        for t, k, keep in zip(tensors, keys, keeps, strict=True)
    ]


def _rebuilt_model(model, cfg, fg, safe_mode):
    """A subclassed model rebuilt from its own class, built at the example shapes."""
    with _safe(safe_mode):
        new = type(model).from_config(cfg)
    xs = [
        np.zeros((1,) + tuple(s[1:]), dtype=d)
        for s, d in zip(fg.input_shapes, fg.input_dtypes, strict=True)
    ]
    new(xs if len(xs) > 1 else xs[0])
    return new


def _graph_config(source) -> tuple[type, dict]:
    """(class, config) to rebuild `source` from: its own, or, for a Functional subclass
    whose config holds no graph (a keras-hub Backbone: vocabulary size, widths, ...), the
    plain Functional model of its layers."""
    cfg = source.get_config()
    if "layers" in cfg or not isinstance(source, Functional):
        return type(source), copy.deepcopy(cfg)
    plain = keras.Model(source.input, source.output, name=source.name)  # same layers and graph
    return keras.Model, copy.deepcopy(plain.get_config())


def _plain_nested(cfg: dict, fg, changes: dict) -> dict:
    """Nested graph models whose config holds no graph (a keras-hub Backbone inside a
    task model) and whose layers change become plain Functional models of their layers."""
    notes = {}
    for path in sorted(fg.nested_models, key=lambda p: p.count("/")):
        obj = fg.nested_models[path]
        if path in fg.captured or not any(captured.under(c, path) for c in changes):
            continue
        if not isinstance(obj, Functional) or "layers" in obj.get_config():
            continue
        plain = keras.Model(obj.input, obj.output, name=obj.name)  # same layers and graph
        entry = captured.find_entry(cfg, path)
        serialized = keras.saving.serialize_keras_object(plain)
        for key in ("module", "class_name", "registered_name", "config"):
            entry[key] = copy.deepcopy(serialized.get(key))
        notes[path] = captured.functional_note(obj)
    return notes


def _rebuilt_graph(model, fg, sel, tr, changes, kept, safe_mode, dead=frozenset()):
    """The graph model rebuilt from its config with new widths; captured layers whose class
    is not kept become Functional models of their inner layers and ops."""
    source = fg.source if fg.source is not None else model
    cls, cfg = _graph_config(source)
    notes = _plain_nested(cfg, fg, changes)
    notes.update(captured.inline_functional(cfg, fg, skip=kept))
    if "" in fg.captured or cls is not type(source):
        notes[""] = captured.functional_note(model)
    drop_from_config(cfg, dead)
    for path, (_, new_cfg) in kept.items():
        if not any(captured.under(c, path) for c in changes):
            continue  # nothing inside changed: its entry already holds it (or its parent does)
        entry = captured.find_entry(cfg, path)
        entry["config"] = copy.deepcopy(new_cfg)
        entry.pop("build_config", None)
    configs = _layer_configs(cfg)
    for path, ch in changes.items():
        if not any(captured.under(path, k) for k in kept):
            for p in fg.paths_of(path):  # a shared layer's other entries (it is merged later)
                if p in configs:
                    configs[p].update(ch)
                    _swap_class(cfg, p, fg.layers[path], tr.rule(path), ch)
    for ni in fg.nested_inputs:
        keep = sel.keep(tr.map(ni.key))
        if not keep.all() and not any(
            captured.under(ni.model_path, k) or ni.model_path == k for k in kept
        ):  # (an unchanged input keeps its declared shape, None dimensions included)
            _set_input_width(
                configs[ni.model_path + "/"], ni.position, int(keep.sum()), tr.axis(ni.key)
            )
    try:
        with _safe(safe_mode):
            new = cls.from_config(cfg)
    except Exception as e:  # pragma: no cover - reported, never silent
        raise NeuronvizError(
            f"Could not rebuild the pruned model: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from e
    return new, notes


def _swapped(layer, rule, changes: dict):
    """The pruned layer where its rule rebuilds it as another class (a LlamaAttention as
    the CachedMistralAttention it equals), else None."""
    if type(rule).rebuilt is Rule.rebuilt:
        return None
    new = rule.rebuilt(layer, changes)
    return new if type(new) is not type(layer) else None


def _swap_class(cfg: dict, path: str, layer, rule, changes: dict) -> None:
    """A pruned layer rebuilt as another class replaces the layer's entry in `cfg`."""
    new = _swapped(layer, rule, changes)
    if new is not None:
        entry = captured.find_entry(cfg, path)
        serialized = keras.saving.serialize_keras_object(new)
        for key in ("module", "class_name", "registered_name", "config"):
            entry[key] = serialized.get(key)


class _safe:
    """Keras safe mode for deserialisation, unless the user opted out."""

    def __init__(self, safe: bool):
        self.safe = safe

    def __enter__(self):
        from keras.src.saving import serialization_lib

        self._scope = serialization_lib.SafeModeScope(self.safe)
        self._scope.__enter__()

    def __exit__(self, *exc):
        self._scope.__exit__(*exc)


def keep_outputs(result: PruneResult, tr: Trace) -> list[np.ndarray]:
    """For each model output, the positions the pruned model still has."""
    return [result.selection.keep(tr.map(k)) for k in tr.graph.outputs]


def save_pruned(
    result: PruneResult,
    path,
    original: keras.Model,
    plan: Plan,
    *,
    source=None,
    probe=None,
    atol: float = 1e-4,
) -> Path:
    """Save `result.model` atomically, reload it and check it equals the masked model on a
    probe batch before reporting success. On mismatch the file is removed and an error raised."""
    path = save_model(result.model, path, source=source)
    try:
        reloaded = keras.saving.load_model(path, safe_mode=True, compile=False)
        xs = probe if probe is not None else probe_batch(result.trace.graph)
        xs = xs if isinstance(xs, list) else [xs]
        want = masked_predict(original, plan, xs, tr=result.trace)
        got = reloaded.predict(pack_inputs(reloaded, xs), verbose=0)
        want = want if isinstance(want, list) else [want]
        got = keras.tree.flatten(got)  # a dict of outputs in the graph's (sorted) order
        axes = [result.trace.axis(k) for k in result.trace.graph.outputs]
        for w, g, k, a in zip(want, got, keep_outputs(result, result.trace), axes, strict=True):
            w = np.compress(k, w, axis=a) if w.ndim > 1 else w
            scale = max(1.0, float(np.abs(w).max()))
            if w.shape != g.shape or not np.allclose(w, g, atol=atol * scale, rtol=1e-4):
                raise NeuronvizError(
                    f"The saved model does not match the masked model on a probe batch "
                    f"(max difference {float(np.abs(w - g).max()) if w.shape == g.shape else 'shape'}); nothing was saved."
                )
    except Exception:
        path.unlink(missing_ok=True)
        raise
    return path
