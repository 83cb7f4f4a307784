"""Layer rows: one per layer of the flat graph (the navigator's table)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class LayerInfo:
    """One row of the layer navigator."""

    path: str
    type: str
    output_shape: tuple
    units: int | None  # None: the layer has no units of its own to select
    params: int
    macs: int
    group: int | list | None


def layer_rows(trace, counts) -> list[LayerInfo]:
    """A LayerInfo per layer of `trace`, in graph order (`counts`: api.Counts)."""
    fg, lu = trace.graph, trace.layer_units
    out = []
    for path, layer in fg.layers.items():
        call = fg.first_call(path)
        shapes = call.output_shapes
        shape = shapes[0] if len(shapes) == 1 else tuple(shapes)
        params, macs = counts.layers.get(path, (0, 0))
        units = len(lu[path]) if path in lu else None
        group = trace.group_of(path)
        out.append(LayerInfo(path, type(layer).__name__, tuple(shape), units, params, macs, group))
    return out
