"""Budgets, channel rounding and measured speed for the open model (mixed into Session):
pure jobs for worker threads, and the measured latency of a plan, kept until the model
changes (`latency_for(plan)` is None for any other plan, so a stale figure never shows)."""

from __future__ import annotations

from pathlib import Path

from neuronviz.core.plan import Plan
from neuronviz.errors import NeuronvizError
from neuronviz.session.plans import Measured


class Budgets:
    """Session methods for budget plans, rounding and latency (mixed into Session)."""

    def _init_budgets(self) -> None:
        self._latency = Measured()  # api.Latency of one plan (original against pruned)

    # ---- budget plans ------------------------------------------------------------------
    def budget_job(
        self,
        target: str,
        *,
        criterion: str = "l2",
        scope: str = "auto",
        round_to: int = 8,
        batch_size: int = 32,
        refine: bool = False,
        report=None,
    ):
        """A generator job: `nv.plan_to_budget` on the open model and data (the data ranks
        units for data-driven criteria, scope "auto" scores both scopes on it, and
        `refine` re-chooses the units by exact loss on it). Returns the BudgetPlan;
        applies nothing. `report(fraction, text)` reports from inside the search (and may
        raise to stop it)."""
        import neuronviz.api as api

        if self.model is None:
            raise NeuronvizError("Open a model first.")
        api.Target.parse(target, batch_size)  # a bad target is refused here, at once
        model, trace, data = self.model, self.trace, self.dataset

        if refine and data is None:
            raise NeuronvizError("Open validation data to refine the units with (Ctrl+D).")
        text = f"Planning to {target}…"

        def progress(f: float) -> None:  # the search is the first tenth of a refined plan
            report(f, text if not refine or f < 0.1 else "Refining the units on the data…")

        def job():
            yield 0.0, text
            return api.plan_to_budget(
                model,
                target,
                criterion=criterion,
                scope=scope,
                round_to=int(round_to),
                data=data,
                batch_size=int(batch_size),
                trace=trace,
                progress=progress if report is not None else None,
                refine=bool(refine),
            )

        return job

    def schedule_job(
        self, target: str, train, out, *, steps: int, epochs_per_step: int = 1, report=None, **kw
    ):
        """A generator job: the budget plan (`kw` as for `budget_job`), then its widths
        reached in `steps` prune -> fine-tune steps (`nv.budget_schedule`) on `train` (a
        data source), validated on the open data; the result is saved at `out` (never over
        the open model's file). Returns (BudgetPlan, [ScheduleStep], saved path).
        `report(fraction, text)` reports from inside fine-tuning (and may raise to stop)."""
        import neuronviz.api as api

        if self.dataset is None:
            raise NeuronvizError(
                "Expected validation data for the schedule's accuracy: open it first (Ctrl+D)."
            )
        if int(steps) < 1:
            raise NeuronvizError(f"Expected `steps` >= 1. Received: steps={steps}")
        if not str(train).strip():
            raise NeuronvizError("Expected training data for fine-tuning. Received: none")
        if not str(out).strip():
            raise NeuronvizError("Expected a file to save the scheduled model to. Received: none")
        plan_job = self.budget_job(
            target, report=(lambda f, t: report(0.05 * f, t)) if report else None, **kw
        )
        model, trace, val, source = self.model, self.trace, self.dataset, self.model_path
        steps = int(steps)

        def job():
            budget = yield from plan_job()
            if not budget.plan:
                raise NeuronvizError(f"The model already meets {target}: nothing to remove.")
            yield 0.05, "Loading the training data…"
            data = api.load_data(str(train), model)

            def progress(e):  # fine-tuning events of the current step
                if report is not None:
                    k = max(1, len(sched.history))
                    report(0.05 + 0.9 * (k - 1 + e.fraction) / steps, f"Step {k}/{steps}…")

            sched = api.budget_schedule(
                model,
                budget,
                data,
                val,
                steps=steps,
                trace=trace,
                epochs_per_step=int(epochs_per_step),
                on_progress=progress,
            )
            history = []
            for step in sched.run():
                history.append(step)
                yield 0.05 + 0.9 * step.step / steps, f"Step {step.step}/{steps} done"
            saved = api.save_model(sched.result, Path(out), source=source)
            return budget, history, saved

        return job

    # ---- rounding ----------------------------------------------------------------------
    def rounded(self, round_to: int, plan: Plan | None = None, criterion: str = "l2") -> Plan:
        """`plan` (default: the current one) with every group it touches at a multiple of
        `round_to` units (`nv.round_plan`: fewer removed, or a few more by `criterion`)."""
        import neuronviz.api as api

        plan = self.plan if plan is None else plan
        return api.round_plan(self.model, plan, int(round_to), criterion, trace=self.trace)

    # ---- refining on the data ------------------------------------------------------------
    def refine_job(self, criterion: str = "l2", report=None):
        """A generator job: the current plan with each layer's units chosen again by exact
        loss on the open data (`nv.refine_plan`; as many per layer). Returns (plan it
        refined, refined plan) for the caller to apply while the plan is unchanged."""
        import neuronviz.api as api

        if self.model is None:
            raise NeuronvizError("Open a model first.")
        if self.dataset is None:
            raise NeuronvizError("Open validation data to refine the units with (Ctrl+D).")
        if not self.plan:
            raise NeuronvizError("Select units to refine first: nothing is selected.")
        model, trace, data, plan = self.model, self.trace, self.dataset, self.plan
        text = "Refining the selection on the data…"

        def job():
            yield 0.0, text
            progress = (lambda f: report(f, text)) if report is not None else None
            return plan, api.refine_plan(model, plan, data, criterion, trace, progress)

        return job

    # ---- measured speed ----------------------------------------------------------------
    def latency_job(self, batch_size: int = 32, runs: int = 7, report=None):
        """A generator job: build the current plan's pruned model, then time it against
        the original (`nv.compare_latency`). Returns (plan, Latency) for `set_latency`."""
        import neuronviz.api as api

        if self.model is None:
            raise NeuronvizError("Open a model first.")
        model, trace, plan = self.model, self.trace, self.plan

        def job():
            yield 0.0, "Building the pruned model…"
            pruned = api.prune(model, plan, trace).model if plan else model
            yield 0.2, "Timing both models…"
            timing = (lambda f: report(0.2 + 0.8 * f, "Timing both models…")) if report else None
            lat = api.compare_latency(model, pruned, batch_size, runs, trace=trace, progress=timing)
            return plan, lat

        return job

    def set_latency(self, plan: Plan, latency) -> bool:
        """Keep the measured `latency` of `plan` (dropped, False, if the plan is no longer
        current)."""
        if plan != self.plan:
            return False
        self._latency = Measured(plan, latency)
        self._emit("latency")
        return True

    def latency_for(self, plan: Plan | None = None):
        """The measured Latency of `plan` (default: the current one), or None."""
        return self._latency.for_plan(self.plan if plan is None else plan)

    @property
    def latency(self):
        """The latest measured Latency (of any plan), or None."""
        return self._latency.value
