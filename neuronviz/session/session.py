"""The Session: the one owner of the open model, its data, the plan, the baseline and the
current score. Headless (no Qt); views subscribe to its events and read from it.

Events (``subscribe(event, fn)``): "model", "data", "weight_stats", "act_stats",
"previewer", "plan", "score", "layer", "sweep", "latency".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuronviz.core.plan import Plan
from neuronviz.core.prunable import NO_UNITS, layer_groups, why_layer_not_prunable
from neuronviz.errors import NeuronvizError
from neuronviz.session.budget import Budgets
from neuronviz.session.criteria import Criteria
from neuronviz.session.events import Events
from neuronviz.session.heads import Heads
from neuronviz.session.jobs import Jobs, ModelParts, load_model_parts
from neuronviz.session.plans import Measured, Plans
from neuronviz.session.rows import LayerInfo, layer_rows


class Session(Events, Plans, Jobs, Criteria, Heads, Budgets):
    def __init__(self):
        Events.__init__(self)
        self._init_plans()
        self._init_budgets()
        self.model_path: Path | None = None
        self.model = self.trace = None
        self.before = None  # api.Counts of the unpruned model
        self.weight_stats: dict | None = None
        self.dataset = self.data_source = None
        self.layer: str | None = None
        self._cache: dict = {}  # per model: layer facts, sources, kernels
        self._reset_data_results()

    def _reset_data_results(self) -> None:
        """Forget everything computed from the data (one place, for model and data changes)."""
        self.act_stats: dict | None = None
        self.previewer = None
        self.baseline = None  # Score of the unmasked model
        self._score = Measured()  # the preview's Score of one plan (see `score_for`)
        self.sweep = None  # SweepResult of the last sensitivity sweep
        self.sweep_criterion: str | None = None
        self.taylor: dict | None = None  # Taylor importance per layer, once computed
        self.unit_data = None  # api.UnitData of the attention heads, once measured

    # ---- model and data ----------------------------------------------------------------
    def set_model(self, parts: ModelParts) -> None:
        self.model_path = parts.path
        self.model, self.trace, self.before = parts.model, parts.trace, parts.counts
        self.weight_stats = parts.weight_stats
        self._reset_data_results()
        self.plan = Plan()
        self._init_budgets()
        self._cache.clear()
        with self._plans_lock:
            self._plans.clear()
        units = self.selectable_layers()
        self.layer = units[0] if units else None
        self.dataset = self.dataset if self._data_fits(self.dataset) else None
        self._emit("model", "weight_stats", "plan", "score", "layer", "latency")

    def open_model(self, path, unsafe: bool = False) -> None:
        """Synchronous convenience (CLI, tests, scripts)."""
        self.set_model(load_model_parts(path, unsafe))

    def _data_fits(self, ds) -> bool:
        """`ds` fits the model's inputs (None dimensions take any size)."""
        if ds is None or self.trace is None:
            return False
        shapes = self.trace.graph.declared_shapes
        return len(ds.inputs) == len(shapes) and all(
            np.ndim(a) == len(s)
            and all(d is None or d == g for g, d in zip(np.shape(a), s, strict=True))
            for a, s in zip(ds.inputs, shapes, strict=True)
        )

    def set_data(self, dataset, source=None) -> None:
        self.dataset, self.data_source = dataset, source
        self._reset_data_results()
        self._emit("data", "act_stats", "previewer", "score", "sweep")

    def open_data(self, source) -> None:
        self.set_data(self.load_data_parts(source), source)

    # ---- results computed from the data ------------------------------------------------
    def set_act_stats(self, stats: dict | None) -> None:
        self.act_stats = stats
        self._emit("act_stats")

    def set_previewer(self, previewer, baseline=None) -> None:
        """The previewer of the current data, and its baseline score (computed here if
        not given: pass it from the worker that warmed the previewer)."""
        self.previewer = previewer
        if previewer is not None and baseline is None:
            baseline = previewer.baseline()
        self.baseline, self._score = baseline, Measured()
        self._emit("previewer", "score")

    def set_analysis(self, result) -> None:
        """Apply the result of `analysis_job`: (previewer, baseline, activation stats)."""
        previewer, baseline, stats = result
        self.set_previewer(previewer, baseline)
        self.set_act_stats(stats)

    def set_score(self, plan: Plan, score, previewer=None) -> bool:
        """Record the preview `score` of `plan` (dropped, False, when it comes from another
        previewer than the current one or the plan is no longer current)."""
        if (previewer is not None and previewer is not self.previewer) or plan != self.plan:
            return False
        self._score = Measured(plan, score)
        self._emit("score")
        return True

    def score_for(self, plan: Plan | None = None):
        """The preview score of `plan` (default: the current plan), or None if there is none yet."""
        return self._score.for_plan(self.plan if plan is None else plan)

    @property
    def score(self):
        """The latest preview Score (of `score_plan`), or None."""
        return self._score.value

    @property
    def score_plan(self) -> Plan | None:
        return self._score.plan

    def set_taylor(self, taylor: dict) -> None:
        """Taylor importance per layer (from `taylor_scores`), kept until the data changes."""
        self.taylor = taylor

    def set_sweep(self, result, criterion: str, taylor: dict | None = None) -> None:
        self.sweep, self.sweep_criterion = result, criterion
        if taylor is not None:
            self.taylor = taylor
        self._emit("sweep")

    # ---- layers ------------------------------------------------------------------------
    def layers(self) -> list[LayerInfo]:
        if self.trace is None:
            return []
        if "layers" not in self._cache:
            self._cache["layers"] = layer_rows(self.trace, self.before)
        return self._cache["layers"]

    def selectable_layers(self) -> list[str]:
        """Layers with units that can be removed: not in a blocked group. Output units are
        selectable (see `output_warning`)."""
        if self.trace is None:
            return []
        if "selectable" not in self._cache:
            self._cache["selectable"] = [
                p for p in self.trace.layer_units if self.why_not_selectable(p) is None
            ]
        return self._cache["selectable"]

    def why_not_selectable(self, path: str) -> str | None:
        """None for a layer whose units can be selected, else a one-line reason."""
        return NO_UNITS if self.trace is None else why_layer_not_prunable(self.trace, path)

    def output_warning(self, path: str) -> str | None:
        """A one-line warning when `path`'s units are the model's outputs, else None."""
        if self.trace is None or path not in self.trace.layer_units:
            return None
        if any(self.trace.units.groups[i].reaches_output for i in self._group_indices(path)):
            return (
                f"Units of '{path}' are model outputs: removing them changes the model's "
                "output shape and what each output means."
            )
        return None

    def _group_indices(self, path: str) -> list[int]:
        cache = self._cache.setdefault("group_of", {})
        if path not in cache:
            cache[path] = layer_groups(self.trace, path)
        return cache[path]

    def set_layer(self, path: str | None) -> None:
        if path is not None and (self.trace is None or path not in self.trace.layer_units):
            raise NeuronvizError(f"Expected a layer with units. Received: '{path}'")
        if path != self.layer:
            self.layer = path
            self._emit("layer")

    def units(self, path: str | None = None) -> int:
        path = path or self.layer
        return len(self.trace.layer_units[path]) if path and self.trace else 0

    def group(self, path: str):
        """The Group object of a layer with units (the first if it spans several)."""
        gs = (
            self._group_indices(path)
            if self.trace is not None and path in self.trace.layer_units
            else []
        )
        return self.trace.units.groups[gs[0]] if gs else None

    def __repr__(self) -> str:
        name = (
            self.model_path.name if self.model_path else (self.model.name if self.model else None)
        )
        return f"Session(model={name!r}, layer={self.layer!r}, plan={dict(self.plan.remove)!r})"
