"""Whole branches: a selection may remove every unit of a branch whose output only feeds
a Concatenate along the channel axis. The Concatenate then drops that input, and every
layer that only served the branch goes with it (keras-surgeon's behaviour).

Liveness runs backwards from the model's outputs: a call is live when something live
(or an output) reads one of its outputs; a channel Concatenate does not read an input
whose channels are all removed. Dropping such a branch changes no number the model
computes: its channels were removed units, which the masked model already zeroes.
"""

from __future__ import annotations


def _drops_empty_inputs(tr, call) -> bool:
    """A Concatenate that lays its inputs' channels side by side."""
    if type(call.layer).__name__ != "Concatenate" or len(call.inputs) < 2:
        return False
    width = len(tr.map(call.outputs[0]))
    return width == sum(len(m) for m in tr.input_maps(call))


def dead_layers(tr, selection) -> set[str]:
    """Top-level layers that no longer reach an output once `selection` is removed."""
    fg = tr.graph
    needed = set(fg.outputs)
    live: set[str] = set()
    dead: set[str] = set()
    for call in reversed(fg.calls):
        if not any(k in needed for k in call.outputs):
            dead.add(call.path)
            continue
        live.add(call.path)
        drops = _drops_empty_inputs(tr, call)
        for k, m in zip(call.inputs, tr.input_maps(call), strict=True):
            if not (drops and not selection.keep(m).any()):
                needed.add(k)
    return {p for p in dead - live if "/" not in p}


def _refers_to(obj, dead: set[str]) -> bool:
    return (
        isinstance(obj, dict)
        and obj.get("class_name") == "__keras_tensor__"
        and obj["config"]["keras_history"][0] in dead
    )


def _without(obj, dead: set[str]):
    """A serialised call argument with the tensors of `dead` layers left out of lists."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(_without(o, dead) for o in obj if not _refers_to(o, dead))
    if isinstance(obj, dict) and not _refers_to(obj, dead):
        return {k: _without(v, dead) for k, v in obj.items()}
    return obj


def drop_from_config(cfg: dict, dead: set[str]) -> None:
    """Remove `dead` layers from a Functional model config, and their tensors from the
    argument lists of the layers that read them (the Concatenates)."""
    if not dead:
        return
    cfg["layers"] = [e for e in cfg["layers"] if e["config"].get("name", e.get("name")) not in dead]
    for entry in cfg["layers"]:
        entry["inbound_nodes"] = _without(entry.get("inbound_nodes", []), dead)
