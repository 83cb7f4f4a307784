"""Token data for causal LMs: `token_ids` (N, seq) and an optional `padding_mask`.

The labels are the shifted tokens: position t is scored on predicting token t + 1, so the
last position and every position whose target is padding get the label `IGNORE` and are
not counted. `token_ids` feed the model's only input, or its input named "token_ids";
an input named "padding_mask" gets the mask (all ones when none is given). Which data is
token data is decided by `scoring.output.data_task`.
"""

from __future__ import annotations

import numpy as np

from neuronviz.core.metrics import IGNORE
from neuronviz.errors import NeuronvizError


def next_token_data(model, token_ids, padding_mask=None, label: str = "arrays"):
    """A Dataset scoring next-token prediction on `token_ids` (see the module docstring);
    every problem is one NeuronvizError line."""
    from neuronviz.backend.model.data import Dataset, _checked_x, _input_specs
    from neuronviz.backend.model.graph import graph_model, input_names
    from neuronviz.backend.scoring.output import next_token_shape

    model = graph_model(model)
    out_shape = tuple(model.outputs[0].shape)
    if not next_token_shape(model):
        raise NeuronvizError(
            "Expected a causal LM whose output is next-token scores (batch, seq, vocab) for "
            f"`token_ids` in '{label}'. Received: output shape {out_shape}"
        )
    vocab = int(out_shape[-1])
    ids = _checked_ids(np.asarray(token_ids), vocab, label)
    mask = _checked_mask(padding_mask, ids.shape, label)
    if out_shape[1] is not None and out_shape[1] != ids.shape[1]:
        raise NeuronvizError(
            f"Expected `token_ids` of {out_shape[1]} tokens per sequence, as the model's output "
            f"{out_shape}. Received: token_ids.shape={ids.shape} in '{label}'"
        )
    names = input_names(model)
    arrays = {"token_ids": ids, "padding_mask": mask.astype(np.int32)}
    if len(names) == 1:
        arrays = {names[0]: ids}
    unfed = [n for n in names if n not in arrays]
    if unfed:
        raise NeuronvizError(
            "Expected a model with one input, or inputs named 'token_ids' and 'padding_mask', "
            f"for token data in '{label}'. Received: inputs {names} (no array for {unfed})"
        )
    xs = [
        _checked_x(arrays[name], shape, dtype, label, name)
        for name, (shape, dtype) in zip(names, _input_specs(model), strict=True)
    ]
    y = np.full(ids.shape, IGNORE, dtype=np.int64)
    y[:, :-1] = np.where(mask[:, 1:], ids[:, 1:], IGNORE)
    if not (y != IGNORE).any():
        raise NeuronvizError(
            "Expected at least one token whose next token is not padding. "
            f"Received: none in `padding_mask` of '{label}'"
        )
    return Dataset(xs[0] if len(xs) == 1 else xs, y, vocab, label, task="next_token")


def _checked_ids(ids: np.ndarray, vocab: int, label: str) -> np.ndarray:
    if ids.ndim != 2:
        raise NeuronvizError(
            "Expected `token_ids` of shape (N, seq) for a causal LM. "
            f"Received: token_ids.shape={ids.shape} in '{label}'"
        )
    if ids.shape[0] == 0 or ids.shape[1] < 2:
        raise NeuronvizError(
            "Expected at least one sequence of 2 or more tokens to predict next tokens. "
            f"Received: token_ids.shape={ids.shape} in '{label}'"
        )
    if ids.dtype.kind not in "iuf" or (
        ids.dtype.kind == "f" and not (np.isfinite(ids) & (ids == np.round(ids))).all()
    ):
        raise NeuronvizError(
            f"Expected integer token ids in `token_ids`. Received: dtype {ids.dtype} in '{label}'"
        )
    ids = ids.astype(np.int64)
    bad = ids[(ids < 0) | (ids >= vocab)]
    if len(bad):
        raise NeuronvizError(
            f"Expected token ids in [0, {vocab}) for the model's vocabulary of {vocab} "
            f"(its output's last axis). Received: token id {int(bad[0])} in '{label}'"
        )
    return ids


def _checked_mask(mask, shape: tuple, label: str) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != shape or mask.dtype.kind not in "biuf":
        raise NeuronvizError(
            f"Expected `padding_mask` of shape {shape} (1 for tokens, 0 for padding), like "
            f"`token_ids`. Received: padding_mask.shape={mask.shape}, dtype {mask.dtype} in '{label}'"
        )
    return mask != 0
