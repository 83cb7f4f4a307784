"""The public Python API. Everything here is also reachable from the CLI and the GUI.

Example::

    import neuronviz as nv

    model = nv.load_model("resources/demo/model.keras")
    plan = nv.Plan({"dense": range(100)})          # remove 100 of the 512 units
    result = nv.prune(model, plan)                  # a new model; `model` is untouched
    print(result.widths())                          # {'dense': (512, 412)}
    print(result.before.params, "->", result.after.params)
    nv.save_pruned(result, "small.keras", model, plan)   # atomic, reload-checked
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from neuronviz.backend.model.graph import flatten
from neuronviz.backend.model.io import load_model, probe_batch, save_model
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.model.trace import trace as _trace
from neuronviz.backend.surgery.counting import Counts, count
from neuronviz.backend.surgery.masking import masked_model, masked_predict
from neuronviz.backend.surgery.prune import PruneResult, keep_outputs
from neuronviz.backend.surgery.prune import prune as _prune
from neuronviz.core.plan import Plan
from neuronviz.core.units import Group
from neuronviz.errors import NeuronvizError

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
        xs = probe if probe is not None else probe_batch(original)
        xs = xs if isinstance(xs, list) else [xs]
        want = masked_predict(original, plan, xs, tr=result.trace)
        got = reloaded.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        want, got = (
            (want if isinstance(want, list) else [want]),
            (got if isinstance(got, list) else [got]),
        )
        for w, g, k in zip(want, got, keep_outputs(result, result.trace), strict=True):
            w = w[..., k]
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
