"""Keras-2-era .h5 files: keep what their training config still means in Keras 3.

Keras 3 compiles an .h5 model from the file's `training_config` and refuses the whole
file when that fails (Keras 2 optimizer arguments such as `lr` or `decay`, loss names
that were renamed). Architecture and weights do not depend on it, so the model is
loaded uncompiled and compiled here with what translates; the rest is named in one line.
"""

from __future__ import annotations

import inspect
import json

import keras

_LOSSES = {  # Keras 2 name -> Keras 3 name
    "cosine_proximity": "cosine_similarity",
    "kullback_leibler_divergence": "kl_divergence",
    "logcosh": "log_cosh",
    "huber_loss": "huber",
}
_COMPILE_METRICS = {"accuracy", "acc", "crossentropy", "ce"}  # strings compile() resolves


def training_config(path) -> dict | None:
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs.get("training_config")
    if raw is None:
        return None
    return json.loads(raw.decode("utf-8") if hasattr(raw, "decode") else raw)


def _optimizer(cfg, dropped: list[str]):
    if not isinstance(cfg, dict) or "class_name" not in cfg:
        return None
    name, args = cfg["class_name"], dict(cfg.get("config") or {})
    if "lr" in args:
        args.setdefault("learning_rate", args.pop("lr"))
    try:
        cls = keras.optimizers.get(name).__class__
    except (ValueError, TypeError):
        dropped.append(f"optimizer {name}")
        return None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    gone = sorted(k for k in args if k not in accepted)
    args = {k: v for k, v in args.items() if k in accepted}
    if isinstance(args.get("learning_rate"), dict):  # a schedule: keep the class defaults
        gone.append("learning_rate")
        args.pop("learning_rate")
    try:
        opt = cls(**args)
    except (ValueError, TypeError):
        dropped.append(f"optimizer {name} settings")
        return cls()
    if gone:
        dropped.append(f"optimizer settings {', '.join(gone)}")
    return opt


def _one(kind: str, ident, dropped: list[str]):
    """A loss or metric identifier Keras 3 understands, or None (noted in `dropped`)."""
    if isinstance(ident, str):
        if kind == "metric" and ident in _COMPILE_METRICS:
            return ident
        ident = _LOSSES.get(ident, ident)
    getter = keras.losses.get if kind == "loss" else keras.metrics.get
    try:
        getter(ident)
        return ident
    except (ValueError, TypeError, KeyError):
        name = ident if isinstance(ident, str) else str(ident.get("class_name", ident))
        dropped.append(f"{kind} {name}")
        return None


def _nested(kind: str, cfg, dropped: list[str]):
    if cfg is None:
        return None
    if isinstance(cfg, list):
        out = [_nested(kind, c, dropped) for c in cfg]
        return [c for c in out if c is not None] if kind == "metric" else out
    if isinstance(cfg, dict) and "class_name" not in cfg:
        return {k: _nested(kind, v, dropped) for k, v in cfg.items()}
    return _one(kind, cfg, dropped)


def compile_from_training_config(model: keras.Model, cfg: dict) -> list[str]:
    """Compile `model` with what `cfg` (a Keras 2 training config) still means; the names
    of what was dropped."""
    dropped: list[str] = []
    optimizer = _optimizer(cfg.get("optimizer_config"), dropped)
    loss = _nested("loss", cfg.get("loss"), dropped)
    if loss is not None and (loss == [] or (isinstance(loss, list) and None in loss)):
        dropped.append("loss")
        loss = None
    metrics = _nested("metric", cfg.get("metrics"), dropped)
    weighted = _nested("metric", cfg.get("weighted_metrics"), dropped)
    model.compile(
        optimizer=optimizer or "rmsprop",
        loss=loss,
        metrics=metrics or None,
        weighted_metrics=weighted or None,
        loss_weights=cfg.get("loss_weights"),
    )
    return dropped
