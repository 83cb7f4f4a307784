"""Criterion dispatch, written once: a criterion name -> the units it picks (a Plan)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from neuronviz.core import criteria
from neuronviz.core.plan import Plan
from neuronviz.core.prunable import prunable_layers
from neuronviz.errors import NeuronvizError

CRITERIA = ("l2", "l1", "dead", "apoz", "taylor")
SCORED = ("l1", "l2", "taylor")  # ranked by an importance score, smallest first


class Criteria:
    """Session methods for selection criteria (mixed into Session)."""

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
        raise NeuronvizError(
            f"Expected an importance in {', '.join(SCORED)}. Received: '{criterion}'"
        )

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
        if criterion in SCORED:
            if criterion == "taylor" and taylor is None:
                raise NeuronvizError("Expected Taylor scores (compute them first). Received: none.")
            scores = self.criterion_scores(criterion, layers, taylor)
            return criteria.smallest(scores, fraction=fraction, n=n, scope=scope)
        if criterion not in CRITERIA:
            raise NeuronvizError(
                f"Expected a criterion in {', '.join(CRITERIA)}. Received: '{criterion}'"
            )
        if self.act_stats is None:
            raise NeuronvizError(
                "Activation statistics are not ready yet: open validation data and wait for the first pass."
            )
        allowed = self.criterion_layers(layers)
        stats = {p: self.act_stats[p] for p in allowed if p in self.act_stats}
        if criterion == "dead":
            return criteria.dead_units(stats)
        return criteria.apoz_above(stats, threshold)
