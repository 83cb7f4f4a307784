"""Long work as pure jobs: each returns a value (or is a generator yielding progress and
returning one) and changes no session state, so it may run in a worker thread. The
matching `set_*` method of the Session applies the result on the caller's thread."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from neuronviz.errors import NeuronvizError

NOT_READY = "The preview is not ready yet: open validation data and wait for the first pass."


@dataclasses.dataclass
class ModelParts:
    path: Path | None
    model: object
    trace: object
    counts: object
    weight_stats: dict | None = None


def load_model_parts(path, unsafe: bool = False) -> ModelParts:
    """Load and analyse a model file (raises NeuronvizError)."""
    import neuronviz.api as api

    return analyze_parts(api.load_model(path, unsafe=unsafe), Path(path))


def analyze_parts(model, path=None) -> ModelParts:
    import neuronviz.api as api

    tr = api.analyze(model)
    return ModelParts(path, model, tr, api.counts(model), api.weight_stats(tr))


class Jobs:
    """Session methods that make jobs from the current state (mixed into Session)."""

    def load_data_parts(self, source):
        """Validation data for the current model (raises NeuronvizError)."""
        if self.model is None:
            raise NeuronvizError("Open a model before opening validation data.")
        import neuronviz.api as api

        return api.load_data(str(source), self.model)

    def stats_job(self, max_samples: int | None = None, batch_size: int = 256):
        """A StatsJob over the data; run `job.run()` (a generator) in a worker."""
        import neuronviz.api as api

        x = self.dataset.x if max_samples is None else self.dataset.x[:max_samples]
        return api.StatsJob(self.model, self.trace, x, batch_size)

    def make_previewer(self):
        """A new Previewer that resolves plans through this session's one plan cache
        (call its `warm(progress)` in a worker, then `set_previewer`)."""
        import neuronviz.api as api

        trace = self.trace

        def select(plan):  # a previewer outliving its model resolves on its own
            return self.check_plan(plan) if self.trace is trace else trace.select(plan)

        return api.Previewer(self.model, trace, self.dataset, select=select)

    def analysis_job(self, max_samples: int | None = None, report=None):
        """The first pass over the data: warm a new previewer (its baseline), then
        activation statistics. Yields progress; returns (previewer, baseline, stats) for
        `set_analysis`. `report(fraction, text)` reports from inside the warm-up."""
        previewer, job = self.make_previewer(), self.stats_job(max_samples)

        def work():
            yield 0.0, "Preparing the preview…"
            warm = (
                (lambda f, *_: report(0.3 * float(f), "Preparing the preview…")) if report else None
            )
            previewer.warm(progress=warm)
            baseline = previewer.baseline()
            yield 0.3, "Computing activation statistics…"
            for frac in job.run():
                yield 0.3 + 0.7 * float(frac), "Computing activation statistics…"
            return previewer, baseline, job.result

        return work

    def preview_job(self):
        """(plan, previewer, job): `job()` scores the current plan; hand its result to
        `set_score(plan, score, previewer)`, which drops it if the state moved on."""
        previewer, plan = self.previewer, self.plan
        if previewer is None:
            raise NeuronvizError(NOT_READY)
        return plan, previewer, lambda: previewer.score(plan)

    def sweep_job(self, criterion: str = "l2", fractions=None):
        """A generator job for a sensitivity sweep by `criterion` ("l2", "l1", "taylor"):
        yields progress, returns (SweepResult, taylor scores or None) for `set_sweep`."""
        import neuronviz.api as api

        if self.previewer is None:
            raise NeuronvizError(NOT_READY)
        previewer, taylor = self.previewer, self.taylor
        fractions = api.DEFAULT_FRACTIONS if fractions is None else fractions

        def job():
            nonlocal taylor
            if criterion == "taylor" and taylor is None:
                yield 0.0, "Taylor importance…"
                taylor = self.taylor_scores()
            importance = (
                None if criterion == "l2" else self.criterion_scores(criterion, taylor=taylor)
            )
            run = api.Sweep(previewer, self.trace, importance, fractions)
            for frac in run:
                yield frac, "Sensitivity sweep…"
            return run.result, taylor

        return job

    def taylor_scores(self, max_samples: int = 1000) -> dict:
        """First-order Taylor importance per layer (pure; slow: run it in a worker)."""
        import neuronviz.api as api

        if self.dataset is None:
            raise NeuronvizError("Open validation data to score units by Taylor importance.")
        n = min(self.dataset.n, max_samples)
        x = (
            self.dataset.x[:n]
            if not isinstance(self.dataset.x, list)
            else [a[:n] for a in self.dataset.x]
        )
        return api.taylor_importance(self.model, self.trace, x, self.dataset.y[:n])
