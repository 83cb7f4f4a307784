"""The authoritative state of one neuronviz session, headless (no Qt).

A Session holds the open model and everything derived from it (trace, counts, data,
weight and activation statistics, the previewer) plus the current selection as a Plan.
Views never keep their own copy: they subscribe to events and read from here.

Long computations are split in two: a pure part that returns a value (safe to run in a
worker thread: `load_model_parts`, `load_data_parts`, `stats_job`, `preview_job`) and an
apply part (`set_model`, `set_data`, ...) that mutates state and notifies listeners. The
GUI runs the first in a worker and calls the second on the UI thread.

Events (``subscribe(event, fn)``): "model", "data", "weight_stats", "act_stats",
"previewer", "plan", "layer", "sweep".
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from neuronviz.core import criteria, editing
from neuronviz.core.plan import Plan
from neuronviz.core.prunable import (
    NO_UNITS,
    layer_groups,
    prunable_layers,
    why_layer_not_prunable,
)
from neuronviz.errors import NeuronvizError

EVENTS = ("model", "data", "weight_stats", "act_stats", "previewer", "plan", "layer", "sweep")


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


@dataclasses.dataclass
class ModelParts:
    path: Path | None
    model: object
    trace: object
    counts: object
    weight_stats: dict | None = None


class Session:
    def __init__(self):
        self._listeners: dict[str, list[Callable]] = {e: [] for e in EVENTS}
        self.model_path: Path | None = None
        self.model = None
        self.trace = None
        self.before = None  # api.Counts of the unpruned model
        self.dataset = None
        self.data_source = None
        self.weight_stats: dict | None = None
        self.act_stats: dict | None = None
        self.previewer = None
        self.sweep = None  # SweepResult of the last sensitivity sweep
        self.sweep_criterion: str | None = None
        self.taylor: dict | None = None  # Taylor importance per layer, once computed
        self.plan = Plan()
        self.layer: str | None = None
        self._cache: dict = {}  # per model: layer facts, sources, kernels
        self._plans: OrderedDict = OrderedDict()  # (what, plan) -> value, most recent last

    # ---- events -----------------------------------------------------------------------
    def subscribe(self, event: str, fn: Callable) -> None:
        self._listeners[event].append(fn)

    def unsubscribe(self, event: str, fn: Callable) -> None:
        if fn in self._listeners[event]:
            self._listeners[event].remove(fn)

    def _emit(self, event: str) -> None:
        for fn in list(self._listeners[event]):
            fn()

    # ---- model ------------------------------------------------------------------------
    @staticmethod
    def load_model_parts(path, unsafe: bool = False) -> ModelParts:
        """Load and analyse a model file (pure; raises NeuronvizError)."""
        import neuronviz.api as api

        model = api.load_model(path, unsafe=unsafe)
        return Session.analyze_parts(model, Path(path))

    @staticmethod
    def analyze_parts(model, path=None) -> ModelParts:
        import neuronviz.api as api

        tr = api.analyze(model)
        return ModelParts(path, model, tr, api.counts(model), api.weight_stats(tr))

    def set_model(self, parts: ModelParts) -> None:
        self.model_path = parts.path
        self.model, self.trace, self.before = parts.model, parts.trace, parts.counts
        self.weight_stats = parts.weight_stats
        self.act_stats = None
        self.previewer = None
        self.sweep = self.taylor = None
        self.plan = Plan()
        self._cache.clear()
        self._plans.clear()
        units = self.selectable_layers()
        self.layer = units[0] if units else None
        self.dataset = self.dataset if self._data_fits(self.dataset) else None
        self._emit("model")
        self._emit("weight_stats")
        self._emit("plan")
        self._emit("layer")

    def open_model(self, path, unsafe: bool = False) -> None:
        """Synchronous convenience (CLI, tests, scripts)."""
        self.set_model(self.load_model_parts(path, unsafe))

    def _data_fits(self, ds) -> bool:
        if ds is None or self.model is None:
            return False
        want = tuple(self.model.inputs[0].shape[1:])
        return tuple(np.shape(ds.x)[1:]) == want

    # ---- data -------------------------------------------------------------------------
    def load_data_parts(self, source):
        """Load validation data for the current model (pure; raises NeuronvizError)."""
        if self.model is None:
            raise NeuronvizError("Open a model before opening validation data.")
        from neuronviz.backend.model.data import load_data

        return load_data(str(source), self.model)

    def set_data(self, dataset, source=None) -> None:
        self.dataset, self.data_source = dataset, source
        self.act_stats = None
        self.previewer = None
        self.sweep = self.taylor = None
        self._emit("data")
        self._emit("act_stats")
        self._emit("previewer")
        self._emit("sweep")

    def open_data(self, source) -> None:
        self.set_data(self.load_data_parts(source), source)

    # ---- statistics and preview -------------------------------------------------------
    def stats_job(self, max_samples: int | None = None, batch_size: int = 256):
        """A StatsJob over the data; run `job.run()` (a generator) in a worker."""
        from neuronviz.backend.analysis.stats import StatsJob

        x = self.dataset.x if max_samples is None else self.dataset.x[:max_samples]
        return StatsJob(self.model, self.trace, x, batch_size)

    def set_act_stats(self, stats: dict | None) -> None:
        self.act_stats = stats
        self._emit("act_stats")

    def make_previewer(self):
        """A new Previewer (call its `warm(progress)` in a worker, then `set_previewer`)."""
        from neuronviz.backend.scoring.preview import Previewer

        return Previewer(self.model, self.trace, self.dataset)

    def set_previewer(self, previewer) -> None:
        self.previewer = previewer
        self._emit("previewer")

    def sweep_job(self, criterion: str = "l2", fractions=None):
        """A generator job for a sensitivity sweep by `criterion` ("l2", "l1", "taylor"):
        yields progress, returns (SweepResult, taylor scores or None). Pure."""
        from neuronviz.backend.analysis.sensitivity import DEFAULT_FRACTIONS, sweep

        if self.previewer is None:
            raise NeuronvizError(
                "The preview is not ready yet: open validation data and wait for the first pass."
            )
        previewer, taylor = self.previewer, self.taylor
        fractions = DEFAULT_FRACTIONS if fractions is None else fractions

        def job():
            nonlocal taylor
            if criterion == "taylor" and taylor is None:
                yield 0.0, "Taylor importance…"
                taylor = self.taylor_scores()
            importance = (
                None if criterion == "l2" else self.criterion_scores(criterion, taylor=taylor)
            )
            run = sweep(previewer, self.trace, importance, fractions)
            for frac in run:
                yield frac, "Sensitivity sweep…"
            return run.result, taylor

        return job

    def set_sweep(self, result, criterion: str, taylor: dict | None = None) -> None:
        self.sweep, self.sweep_criterion = result, criterion
        if taylor is not None:
            self.taylor = taylor
        self._emit("sweep")

    # ---- layers -----------------------------------------------------------------------
    def layers(self) -> list[LayerInfo]:
        if self.trace is None:
            return []
        if "layers" not in self._cache:
            fg, lu = self.trace.graph, self.trace.layer_units
            out = []
            for path, layer in fg.layers.items():
                call = fg.first_call(path)
                shape = (
                    call.output_shapes[0]
                    if len(call.output_shapes) == 1
                    else tuple(call.output_shapes)
                )
                p, m = self.before.layers.get(path, (0, 0))
                out.append(
                    LayerInfo(
                        path,
                        type(layer).__name__,
                        tuple(shape),
                        len(lu[path]) if path in lu else None,
                        p,
                        m,
                        self.trace.group_of(path),
                    )
                )
            self._cache["layers"] = out
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
        if self.trace is None:
            return NO_UNITS
        return why_layer_not_prunable(self.trace, path)

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

    # ---- selection --------------------------------------------------------------------
    def _per_plan(self, what: str, plan: Plan, make: Callable):
        """A cached value per plan (the most recent few hundred plans are kept)."""
        key = (what, plan)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        value = make()
        self._plans[key] = value
        while len(self._plans) > 300:
            self._plans.popitem(last=False)
        return value

    def check_plan(self, plan: Plan):
        """The resolved Selection of `plan` (raises NeuronvizError for a bad one)."""
        return self._per_plan("sel", plan, lambda: self.trace.select(plan))

    def set_plan(self, plan: Plan) -> None:
        if self.trace is None:
            raise NeuronvizError("Open a model first.")
        self.check_plan(plan)
        if plan != self.plan:
            self.plan = plan
            self._emit("plan")

    def removed(self, plan: Plan | None = None) -> dict[str, np.ndarray]:
        """Layer -> indices it loses under `plan` (coupled units over whole groups)."""
        plan = self.plan if plan is None else plan
        return self._per_plan(
            "removed",
            plan,
            lambda: {
                k: np.asarray(v, np.int64)
                for k, v in self.check_plan(plan).removed_by_layer().items()
            },
        )

    def selected_mask(self, path: str | None = None, plan: Plan | None = None) -> np.ndarray:
        path = path or self.layer
        mask = np.zeros(self.units(path), bool)
        mask[self.removed(plan).get(path, [])] = True
        return mask

    def unit_totals(self, plan: Plan | None = None) -> tuple[int, int]:
        """(removable units, units removed by `plan`), counting each coupled unit once."""
        if "total_units" not in self._cache:
            groups = {self.group(p).index: self.group(p).size for p in self.selectable_layers()}
            self._cache["total_units"] = sum(groups.values())
        return self._cache["total_units"], int(
            len(self.check_plan(self.plan if plan is None else plan).removed)
        )

    def direct_mask(self, path: str | None = None) -> np.ndarray:
        """Units of `path` named in the plan itself (the others in selected_mask are
        removed because a coupled layer's units are selected)."""
        path = path or self.layer
        mask = np.zeros(self.units(path), bool)
        aliases = self.trace.graph.aliases()
        for layer, idx in self.plan.remove.items():
            if aliases.get(layer, layer) == path:
                mask[list(idx)] = True
        return mask

    # ---- per-unit data, mapped onto any member layer of a group -----------------------
    def source_of(self, path: str) -> tuple[str, np.ndarray] | None:
        """(unit-creating layer, index into its units per unit of `path`) for a layer
        whose units another layer creates (BatchNorm, pooling ...); None if unknown."""
        key = ("source", path)
        if key not in self._cache:
            self._cache[key] = None
            ws = self.weight_stats or {}
            roots = editing.unit_roots(self.trace, path, range(self.units(path)))
            for src in ws:
                if src == path:
                    self._cache[key] = (src, np.arange(len(roots)))
                    break
                pos = {
                    int(r): i
                    for i, r in enumerate(
                        editing.unit_roots(self.trace, src, range(self.units(src)))
                    )
                }
                if all(int(r) in pos for r in roots):
                    self._cache[key] = (src, np.array([pos[int(r)] for r in roots]))
                    break
        return self._cache[key]

    def norms(self, path: str | None = None, kind: str = "l2") -> np.ndarray | None:
        """Per-unit norm of the incoming weights of `path`'s units (via their source)."""
        path = path or self.layer
        src = self.source_of(path) if path else None
        if src is None:
            return None
        ws = self.weight_stats[src[0]]
        return np.asarray(ws.norm_l1 if kind == "l1" else ws.norm_l2)[src[1]]

    def act(self, path: str | None = None):
        """The layer's UnitStats (activation statistics), or None before they exist."""
        path = path or self.layer
        return None if self.act_stats is None else self.act_stats.get(path)

    def kernel(self, path: str | None = None):
        """(source layer, its incoming weights as (..., units), index into them per unit
        of `path`), or None for a layer without a known source."""
        path = path or self.layer
        src = self.source_of(path) if path else None
        if src is None:
            return None
        key = ("kernel", src[0])
        if key not in self._cache:
            self._cache[key] = self.trace.rule(src[0]).unit_kernel(self.trace.graph.layers[src[0]])
        return src[0], self._cache[key], src[1]

    def edited(self, path: str, indices: Iterable[int], op: str = "toggle") -> Plan:
        """The current plan edited at `path` (op: add, remove, toggle, set). Pure."""
        selected = self.selected_mask(path) if op == "toggle" else None
        return editing.edited(self.trace, self.plan, path, indices, op, selected)

    def inverted(self, path: str | None = None) -> Plan:
        path = path or self.layer
        return self.edited(path, np.flatnonzero(~self.selected_mask(path)), "set")

    def cleared(self, path: str | None = None) -> Plan:
        """Without any selection (or without the selection in `path`)."""
        return Plan() if path is None else self.edited(path, [], "set")

    # ---- criteria ---------------------------------------------------------------------
    def criterion_layers(self, layers: Iterable[str] | None = None) -> list[str]:
        """Layers a criterion may select from (one per group, removable, not outputs)."""
        return prunable_layers(self.trace, None if layers is None else list(layers))

    def criterion_scores(
        self, criterion: str, layers: Iterable[str] | None = None, taylor: dict | None = None
    ) -> dict[str, np.ndarray]:
        """Layer -> importance per unit ("l1", "l2" or "taylor") of the criterion layers."""
        allowed = self.criterion_layers(layers)
        if criterion in ("l1", "l2"):
            norms = {p: self.norms(p, criterion) for p in allowed}
            return {p: v for p, v in norms.items() if v is not None}
        if criterion == "taylor":
            taylor = self.taylor if taylor is None else taylor
            if taylor is None:
                raise NeuronvizError("Expected Taylor scores (compute them first). Received: none.")
            return {p: taylor[p] for p in allowed if p in taylor}
        raise NeuronvizError(f"Expected an importance in l1, l2, taylor. Received: '{criterion}'")

    def taylor_scores(self, max_samples: int = 1000) -> dict:
        """First-order Taylor importance per layer (pure; slow: run it in a worker)."""
        from neuronviz.backend.analysis.gradients import taylor_importance

        if self.dataset is None:
            raise NeuronvizError("Open validation data to score units by Taylor importance.")
        n = min(self.dataset.n, max_samples)
        x = (
            self.dataset.x[:n]
            if not isinstance(self.dataset.x, list)
            else [a[:n] for a in self.dataset.x]
        )
        return taylor_importance(self.model, self.trace, x, self.dataset.y[:n])

    def criterion_plan(
        self,
        criterion: str,
        *,
        fraction: float | None = None,
        n: int | None = None,
        scope: str = "layer",
        threshold: float = 0.9,
        layers: Iterable[str] | None = None,
        taylor: dict | None = None,
    ) -> Plan:
        """The units a criterion picks ("l2", "l1", "dead", "apoz", "taylor"); not applied."""
        if criterion in ("l1", "l2", "taylor"):
            if criterion == "taylor" and taylor is None:
                raise NeuronvizError("Expected Taylor scores (compute them first). Received: none.")
            scores = self.criterion_scores(criterion, layers, taylor)
            return criteria.smallest(scores, fraction=fraction, n=n, scope=scope)
        allowed = self.criterion_layers(layers)
        if self.act_stats is None:
            raise NeuronvizError(
                "Activation statistics are not ready yet: open validation data and wait for the first pass."
            )
        stats = {p: self.act_stats[p] for p in allowed if p in self.act_stats}
        if criterion == "dead":
            return criteria.dead_units(stats)
        if criterion == "apoz":
            return criteria.apoz_above(stats, threshold)
        raise NeuronvizError(
            f"Expected a criterion in l1, l2, dead, apoz, taylor. Received: '{criterion}'"
        )

    # ---- counts -----------------------------------------------------------------------
    def counts_after(self, plan: Plan | None = None):
        """Params and MACs of the pruned model, derived from the selection without
        rebuilding it (exact: the same slicing rules as the surgery)."""
        from neuronviz.backend.surgery.counting import count_after

        plan = self.plan if plan is None else plan
        return self._per_plan(
            "counts", plan, lambda: count_after(self.trace, self.before, self.check_plan(plan))
        )

    def __repr__(self) -> str:
        name = (
            self.model_path.name if self.model_path else (self.model.name if self.model else None)
        )
        return f"Session(model={name!r}, layer={self.layer!r}, plan={dict(self.plan.remove)!r})"
