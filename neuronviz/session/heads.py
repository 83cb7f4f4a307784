"""Attention heads of the open model: which layers have them, and their importance by a
head importance plug-in (measured on the data in a job, kept until the data changes)."""

from __future__ import annotations

import numpy as np

from neuronviz.errors import NeuronvizError

HEAD_IMPORTANCES = ("head_norm", "head_taylor", "l2")  # l2: the heads' weights, no data
MAX_SAMPLES = 1000


class Heads:
    """Session methods for attention heads (mixed into Session)."""

    def head_layers(self) -> dict[str, tuple[int, int]]:
        """Attention layers in model order -> (query heads, KV heads)."""
        if self.trace is None:
            return {}
        if "heads" not in self._cache:
            import neuronviz.api as api

            self._cache["heads"] = api.attention_heads(self.trace)
        return self._cache["heads"]

    def head_scores(self, name: str) -> dict[str, np.ndarray] | None:
        """Attention layer -> importance `name` per head; None until measured (see
        `head_data_job`)."""
        if name not in HEAD_IMPORTANCES:
            raise NeuronvizError(
                f"Expected a head importance in {', '.join(HEAD_IMPORTANCES)}. Received: '{name}'"
            )
        layers = list(self.head_layers())
        if name == "l2":
            return {p: self.norms(p, "l2") for p in layers}
        ud = self.unit_data
        if ud is None or (name == "head_taylor" and not ud.head_taylor):
            return None
        import neuronviz.api as api

        return api.layer_scores(self.trace, name, layers, unit_data=ud)

    def head_data_job(self, labels: bool, report=None):
        """A job measuring the heads on (at most MAX_SAMPLES of) the data, with the
        labels' loss gradients when `labels` (for head_taylor). `report(fraction)` is
        called after each batch. Hand its result to `set_unit_data(result, model, dataset)`."""
        import neuronviz.api as api

        if self.dataset is None:
            raise NeuronvizError("Open validation data to measure the attention heads.")
        model, trace, ds = self.model, self.trace, self.dataset
        n = min(ds.n, MAX_SAMPLES)
        x = [a[:n] for a in ds.x] if isinstance(ds.x, (list, tuple)) else ds.x[:n]
        y = ds.y[:n] if labels else None
        return lambda: api.unit_data(model, trace, x, y, progress=report)

    def set_unit_data(self, data, model, dataset) -> bool:
        """Keep head data measured for `model` on `dataset` (dropped, False, if the model
        or the data changed meanwhile)."""
        if model is not self.model or dataset is not self.dataset:
            return False
        self.unit_data = data
        return True
