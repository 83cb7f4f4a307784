"""The public Python API. Everything here is also reachable from the CLI and the GUI.

Example::

    import neuronviz as nv

    model = nv.load_model("neuronviz/demo/model.keras")
    plan = nv.Plan({"dense": range(100)})          # remove 100 of the 512 units
    result = nv.prune(model, plan)                  # a new model; `model` is untouched
    print(result.widths())                          # {'dense': (512, 412)}
    print(result.before.params, "->", result.after.params)
    nv.save_pruned(result, "small.keras", model, plan)   # atomic, reload-checked
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.io import load_model, save_model
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.model.trace import trace as _trace
from neuronviz.backend.surgery.counting import Counts, count
from neuronviz.backend.surgery.masking import masked_model, masked_predict
from neuronviz.backend.surgery.prune import PruneResult, save_pruned
from neuronviz.backend.surgery.prune import prune as _prune
from neuronviz.core.plan import Plan
from neuronviz.core.units import Group
from neuronviz.errors import NeuronvizError

if TYPE_CHECKING:
    import keras

__all__ = [
    "Plan", "NeuronvizError", "PruneResult", "Counts", "Trace", "Group",
    "load_model", "save_model", "save_pruned", "analyze", "groups", "prune",
    "masked_model", "masked_predict", "counts",
]  # fmt: skip


def analyze(model: keras.Model) -> Trace:
    """Units, groups and channel maps of `model` (reusable across calls)."""
    return _trace(flatten(model))


def groups(model: keras.Model) -> list[Group]:
    """The coupled unit groups: each lists its member layers and unit count."""
    return analyze(model).units.groups


def counts(model: keras.Model) -> Counts:
    """Parameters and MACs per layer and in total."""
    return count(flatten(model))


def prune(model: keras.Model, plan: Plan | dict, trace: Trace | None = None) -> PruneResult:
    """A physically smaller copy of `model` without the plan's units (over whole groups)."""
    plan = plan if isinstance(plan, Plan) else Plan(plan)
    return _prune(model, plan, trace)
