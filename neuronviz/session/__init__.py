"""The headless session (no Qt): one owner of model, data, plan, baseline and score.

- session.py: the Session and its lifecycle (model and data, reset in one place), the
  preview score (which plan it is for), layers;
- plans.py: the current plan through one cache of resolved plans, plan editing, per-unit data;
- jobs.py: long work as pure jobs for worker threads (load, analysis, preview, sweep);
- criteria.py: criterion dispatch (a name -> a Plan);
- heads.py: attention layers and their heads' importance;
- budget.py: budget plans, the prune -> fine-tune schedule, rounding, measured latency;
- events.py: the event bus; rows.py: the navigator's layer rows.
"""

from neuronviz.session.events import EVENTS
from neuronviz.session.jobs import ModelParts, analyze_parts, load_model_parts
from neuronviz.session.rows import LayerInfo, layer_rows
from neuronviz.session.session import Session

__all__ = [
    "EVENTS",
    "LayerInfo",
    "ModelParts",
    "Session",
    "analyze_parts",
    "layer_rows",
    "load_model_parts",
]
