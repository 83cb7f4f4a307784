"""Paths of the bundled demo assets (resources/demo)."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)  # PyInstaller bundle
    base = Path(frozen) if frozen else Path(__file__).resolve().parents[1]
    return base / "resources"


def demo_model() -> Path:
    return resources_dir() / "demo" / "model.keras"


def demo_val() -> Path:
    return resources_dir() / "demo" / "val.npz"


def demo_train() -> Path:
    return resources_dir() / "demo" / "train.npz"
