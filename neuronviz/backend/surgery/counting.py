"""Parameters and multiply-accumulates, per layer and in total."""

from __future__ import annotations

from dataclasses import dataclass, field

from neuronviz.backend.model.graph import FlatGraph
from neuronviz.backend.surgery.rules import count_params, rule_for


@dataclass
class Counts:
    params: int
    macs: int
    layers: dict = field(default_factory=dict)  # path -> (params, macs)


def count(fg: FlatGraph) -> Counts:
    per: dict[str, list[int]] = {}
    for call in fg.calls:
        entry = per.setdefault(call.path, [count_params(call.layer), 0])
        rank = len(call.input_shapes[0]) if call.input_shapes else 0
        entry[1] += rule_for(call.layer, rank).macs(call)
    layers = {k: (p, m) for k, (p, m) in per.items()}
    return Counts(int(fg.model.count_params()), sum(m for _, m in layers.values()), layers)
