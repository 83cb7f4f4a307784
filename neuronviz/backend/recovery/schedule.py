"""Iterative pruning: remove units in n steps toward a target fraction, fine-tuning after
each step so the network can adapt before the next cut.

    sched = PruneSchedule(model, {"dense": 0.5}, steps=3, train=(x, y), val=(xv, yv))
    for step in sched.run():
        print(step.step, step.widths, step.pruned["accuracy"], step.finetuned["accuracy"])
    small = sched.result

Units are ranked by the "l2" importance (the L2 norm of their incoming weights, smallest
first; see analysis/importance.py), recomputed on the current (fine-tuned) model at every
step, unless `scores` is given. Removal is physical, through neuronviz.api.prune.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import keras
import numpy as np

from neuronviz.backend.analysis.importance import model_scores
from neuronviz.backend.recovery.finetune import FinetuneJob, Progress, evaluate
from neuronviz.errors import NeuronvizError

SCHEDULES = ("polynomial", "constant")


def schedule_fractions(
    target: float, steps: int, kind: str = "polynomial", power: int = 3
) -> list[float]:
    """Cumulative fraction removed after each step (the last one is `target`).

    polynomial: target * (1 - (1 - t/n)^power) (Zhu & Gupta, 2017): big cuts first, while
    the network has the most redundancy, then smaller ones. constant: the same number of
    units at every step (target * t/n)."""
    if not 0.0 < float(target) < 1.0:
        raise NeuronvizError(
            f"Expected a target fraction of units in (0, 1). Received: target={target}"
        )
    if int(steps) < 1:
        raise NeuronvizError(f"Expected `steps` >= 1. Received: steps={steps}")
    if kind not in SCHEDULES:
        raise NeuronvizError(
            f"Expected `schedule` to be 'polynomial' or 'constant'. Received: schedule='{kind}'"
        )
    n = int(steps)
    if kind == "constant":
        return [target * t / n for t in range(1, n + 1)]
    return [target * (1.0 - (1.0 - t / n) ** power) for t in range(1, n + 1)]


@dataclass(frozen=True)
class ScheduleStep:
    """The state after one step (step 0: the starting model, nothing removed)."""

    step: int
    steps: int
    fraction: float  # target fraction of each layer's original units removed so far
    widths: dict  # layer -> (original units, units now)
    removed: dict  # layer -> ORIGINAL indices removed at this step
    pruned: dict | None  # {"loss", "accuracy"} on val right after removal
    finetuned: (
        dict | None
    )  # {"loss", "accuracy"} on val after fine-tuning (None without train data)
    params: int
    stopped: str | None = None  # "cancelled" on the last step of a cancelled run
    extra: dict = field(default_factory=dict)


class PruneSchedule:
    """Prune -> fine-tune -> prune ... toward `targets` (layer -> fraction, or a list of
    layers that all get `target`). `scores`: a callable (model, layer) -> one score per
    current unit (lowest removed first), or a dict layer -> scores over the ORIGINAL units.
    `model` is not changed; the final model is `result`."""

    def __init__(
        self,
        model: keras.Model,
        targets,
        target: float = 0.5,
        steps: int = 3,
        schedule: str = "polynomial",
        train=None,
        val=None,
        *,
        scores: Callable | Mapping | None = None,
        epochs_per_step: int = 1,
        batch_size: int = 64,
        learning_rate: float = 1e-4,
        patience: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        seed: int = 0,
    ):
        import neuronviz.api as nv

        if val is None:
            raise NeuronvizError(
                "Expected validation data (x, y) to report accuracy after each step. Received: val=None"
            )
        self.model = model
        tr = nv.analyze(model)
        aliases = tr.graph.aliases()
        if isinstance(targets, Mapping):
            wanted = {str(k): float(v) for k, v in targets.items()}
        else:
            wanted = {
                str(k): float(target) for k in ([targets] if isinstance(targets, str) else targets)
            }
        if not wanted:
            raise NeuronvizError("Expected at least one layer to prune. Received: none")
        self.targets: dict[str, float] = {}
        for name, frac in wanted.items():
            path = tr.layer_with_units(name, aliases)
            schedule_fractions(frac, steps, schedule)  # validates
            self.targets[path] = frac
        self.original = {p: len(tr.layer_units[p]) for p in self.targets}
        self.plans = {p: schedule_fractions(f, steps, schedule) for p, f in self.targets.items()}
        self.steps, self.schedule = int(steps), schedule
        self.train, self.val = train, val
        self.scores = scores
        self.finetune_args = dict(
            epochs=epochs_per_step,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            seed=seed,
        )
        self.on_progress = on_progress
        self.alive = {
            p: np.arange(n) for p, n in self.original.items()
        }  # original ids, current order
        self.result: keras.Model | None = None
        self.history: list[ScheduleStep] = []
        self._cancel = threading.Event()
        self._job: FinetuneJob | None = None

    def cancel(self) -> None:
        """Stop at the next batch of fine-tuning, or before the next step (thread-safe)."""
        self._cancel.set()
        job = self._job
        if job is not None:
            job.cancel()

    @property
    def removed(self) -> dict[str, list[int]]:
        """Layer -> all ORIGINAL unit indices removed so far."""
        return {
            p: sorted(set(range(n)) - set(self.alive[p].tolist())) for p, n in self.original.items()
        }

    def _scores(self, model, path) -> np.ndarray:
        if self.scores is None:
            s = model_scores(model, path)
        elif isinstance(self.scores, Mapping):
            full = np.asarray(
                self.scores[path] if path in self.scores else model_scores(self.model, path),
                dtype=np.float64,
            )
            if len(full) != self.original[path]:
                raise NeuronvizError(
                    f"Expected {self.original[path]} scores for layer '{path}'. Received: {len(full)}"
                )
            s = full[self.alive[path]]
        else:
            s = np.asarray(self.scores(model, path), dtype=np.float64)
        if len(s) != len(self.alive[path]):
            raise NeuronvizError(
                f"Expected one score per unit of layer '{path}' ({len(self.alive[path])}). Received: {len(s)}"
            )
        return s

    def _step(self, step: int, model, pruned, finetuned, removed, stopped=None) -> ScheduleStep:
        out = ScheduleStep(
            step=step,
            steps=self.steps,
            fraction=max((plan[step - 1] if step else 0.0) for plan in self.plans.values()),
            widths={p: (n, len(self.alive[p])) for p, n in self.original.items()},
            removed=removed,
            pruned=pruned,
            finetuned=finetuned,
            params=int(model.count_params()),
            stopped=stopped,
        )
        self.history.append(out)
        return out

    def run(self) -> Iterator[ScheduleStep]:
        import neuronviz.api as nv

        current = self.model
        base = evaluate(current, self.val)
        yield self._step(0, current, base, base, {})
        for step in range(1, self.steps + 1):
            if self._cancel.is_set():
                break
            plan, removed = {}, {}
            for path, n in self.original.items():
                want = min(int(round(self.plans[path][step - 1] * n)), n - 1)
                extra = want - (n - len(self.alive[path]))
                if extra > 0:
                    order = np.argsort(self._scores(current, path), kind="stable")
                    plan[path] = sorted(order[:extra].tolist())
            if plan:
                res = nv.prune(current, plan)
                for path in self.original:
                    lost = res.removed.get(path, [])
                    if lost:
                        removed[path] = self.alive[path][lost].tolist()
                        self.alive[path] = np.delete(self.alive[path], lost)
                current = res.model
            pruned = evaluate(current, self.val)
            finetuned, stopped = None, None
            if self.train is not None:
                self._job = FinetuneJob(current, self.train, self.val, **self.finetune_args)
                if self._cancel.is_set():
                    self._job.cancel()
                for event in self._job.run():
                    if self.on_progress is not None:
                        self.on_progress(event)
                if self._job.result is not None:
                    current = self._job.result
                    finetuned = dict(self._job.best or {})
                    finetuned.pop("epoch", None)
                if self._job.stopped == "cancelled":
                    stopped = "cancelled"
            self.result = current
            yield self._step(step, current, pruned, finetuned, removed, stopped)
            if stopped:
                break
        self.result = current
