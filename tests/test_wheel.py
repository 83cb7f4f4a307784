"""The built wheel is complete: installed without -e into a clean venv, it runs the CLI on
the bundled demo and starts the app offscreen, from a folder outside the checkout."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import user_env

ROOT = Path(__file__).resolve().parents[1]
DEMO_FILES = {"model.keras", "val.npz", "train.npz", "README.md"}

pytestmark = pytest.mark.slow


def _clean_env() -> dict:
    """A user's environment with nothing of the checkout on the path."""
    env = user_env()
    env.pop("PYTHONPATH", None)
    return env


def _run(cmd, cwd, env=None):
    # cwd outside the checkout: `python -m` puts cwd on sys.path, and the checkout's
    # egg-info would make pip believe neuronviz is installed already
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, cwd=cwd, env=env or _clean_env()
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    r = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], out
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (path,) = out.glob("neuronviz-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel):
    """A new venv with the wheel installed (no -e). Its dependencies are this
    interpreter's site-packages, added as plain path entries: their .pth files (and so
    an editable neuronviz) stay inactive, and nothing is unpacked again (TensorFlow
    alone took ~100 s of CI time). `pip check` finds the wheel's declared requirements met."""
    env_dir = tmp_path_factory.mktemp("clean") / "venv"
    assert _run([sys.executable, "-m", "venv", str(env_dir)], env_dir.parent).returncode == 0
    python = str(env_dir / "bin" / "python")
    r = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env_dir)
    deps = [p for p in sys.path if p.endswith("-packages") and Path(p).is_dir()]
    (Path(r.stdout.strip()) / "neuronviz_test_deps.pth").write_text("\n".join(deps) + "\n")
    r = _run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], env_dir.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run([python, "-m", "pip", "check"], env_dir.parent)  # keras-hub's own is known
    assert not [line for line in r.stdout.splitlines() if line.startswith("neuronviz ")]
    return env_dir


def test_wheel_ships_the_demo(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"neuronviz/demo/{n}" for n in DEMO_FILES} <= names


def test_installed_wheel_runs_the_demo_outside_the_checkout(venv, tmp_path):
    bin_dir = venv / "bin"
    env = _clean_env()
    r = _run(
        [str(bin_dir / "python"), "-c",
         "import neuronviz, neuronviz.resources as r; print(neuronviz.__file__); print(r.demo_model())"],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    package, demo = (Path(line) for line in r.stdout.splitlines())
    assert venv in package.parents and venv in demo.parents and demo.is_file()

    r = _run([str(bin_dir / "neuronviz"), "prune", "--help"], cwd=tmp_path, env=env)
    assert r.returncode == 0 and "usage: neuronviz prune" in r.stdout, r.stderr

    r = _run(
        [str(bin_dir / "neuronviz"), "evaluate", str(demo), "--data", "demo", "--json"],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    result = json.loads(r.stdout)
    assert result["n"] == 1000 and result["accuracy"] > 0.95

    app_env = dict(env, QT_QPA_PLATFORM="offscreen", NEURONVIZ_REPORT_FIRST_PAINT="quit")
    app_env["NEURONVIZ_SETTINGS"] = str(tmp_path / "settings.ini")
    r = _run([str(bin_dir / "neuronviz"), "--demo"], cwd=tmp_path, env=app_env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "first-paint-seconds" in r.stdout and "Traceback" not in r.stderr
    assert not list(Path(tmp_path).glob("*.keras"))  # nothing written where it ran
    assert os.listdir(tmp_path) in ([], ["settings.ini"])
