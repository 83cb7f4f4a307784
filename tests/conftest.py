"""Shared fixtures. Qt runs offscreen; TensorFlow stays quiet and single-process."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def demo_model_path():
    from neuronviz.resources import demo_model

    return demo_model()


@pytest.fixture(scope="session")
def demo_model(demo_model_path):
    """The bundled trained demo CNN. Treat as read-only: tests must not modify it."""
    import keras

    return keras.saving.load_model(demo_model_path, safe_mode=True)


@pytest.fixture(scope="session")
def demo_val():
    """The bundled validation split: (x float32 (N,28,28,1), y int64 (N,))."""
    from neuronviz.resources import demo_val

    d = np.load(demo_val())
    return d["x"], d["y"]


def assert_same_outputs(a, b, atol=1e-4):
    """Masked and pruned outputs agree within float tolerance (relative to their scale)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = float(np.abs(a).max()) or 1.0
    np.testing.assert_allclose(a, b, atol=atol * scale, rtol=1e-4)


def user_env(env=None) -> dict:
    """A user's environment for a `neuronviz` process: no TF_CPP_MIN_LOG_LEVEL, and oneDNN
    forced on, so the start-up lines some CPUs print are present on every machine."""
    out = dict(os.environ if env is None else env, TF_ENABLE_ONEDNN_OPTS="1")
    out.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return out


def run_cli(*args, cwd=None, env=None):
    """Run `neuronviz ARGS...` in a fresh process, as a user would (`env`: the user's
    environment, default this process's)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "neuronviz.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=user_env(env),
        timeout=300,
    )


def run_cli_parallel(commands: dict, env=None) -> dict:
    """Start several `neuronviz` runs together (each pays TensorFlow's import); name -> result."""
    import subprocess
    import sys

    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "neuronviz.cli", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=user_env(env),
        )
        for name, args in commands.items()
    }
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        out[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return out


@pytest.fixture
def settings(tmp_path):
    """A throw-away QSettings file, so GUI tests never touch the user's settings."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make(qtbot, settings):
    """Open real main windows (shown and exposed); cleaned up after the test."""
    from neuronviz.gui.app import create_main_window

    made = []

    def make(**kw):
        w = create_main_window(settings=settings, **kw)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        return w

    yield make
    for w in made:
        w.cleanup()
