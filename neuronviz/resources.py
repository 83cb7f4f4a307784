"""Paths of the bundled demo assets: package data in neuronviz/demo, found with
importlib.resources (also inside a wheel install or a PyInstaller bundle)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def demo_dir() -> Path:
    return Path(str(files("neuronviz") / "demo"))


def demo_model() -> Path:
    return demo_dir() / "model.keras"


def demo_val() -> Path:
    return demo_dir() / "val.npz"


def demo_train() -> Path:
    return demo_dir() / "train.npz"
