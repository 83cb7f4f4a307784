"""The app in a real X window (Xvfb): `neuronviz --demo` paints, and a 1280x800
screenshot of the demo with a selection, and of each overview (graph, widths,
importance), is neither blank nor clipped."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def xcb_missing() -> list[str]:
    """System libraries Qt's xcb platform plugin cannot find (ldd, plus libxcb-cursor, which
    Qt >= 6.5 opens at run time)."""
    import ctypes.util

    import PySide6

    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.exists():
        return [f"{plugin} (not in this PySide6 build)"]
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    missing = sorted({ln.split()[0] for ln in out.splitlines() if "not found" in ln})
    if ctypes.util.find_library("xcb-cursor") is None:
        missing.append("libxcb-cursor.so.0")
    return missing


@pytest.fixture(scope="module")
def xdisplay(tmp_path_factory):
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed (apt-get install xvfb) — no real X window to test")
    missing = xcb_missing()
    if missing:
        pytest.skip(
            "Qt's xcb plugin cannot load, missing system libraries: "
            + ", ".join(missing)
            + " (bash .ci/system-deps installs them on Debian/Ubuntu)"
        )
    n = next(
        i
        for i in range(91, 200)
        if not Path(f"/tmp/.X{i}-lock").exists() and not Path(f"/tmp/.X11-unix/X{i}").exists()
    )
    log = open(tmp_path_factory.mktemp("xvfb") / "xvfb.log", "w")
    proc = subprocess.Popen(
        ["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip(f"Xvfb :{n} did not start")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _env(display, tmp_path):
    env = dict(os.environ)
    env.update(
        DISPLAY=display, QT_QPA_PLATFORM="xcb", NEURONVIZ_SETTINGS=str(tmp_path / "settings.ini")
    )
    return env


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def test_cli_demo_paints_a_window(xdisplay, tmp_path):
    env = _env(xdisplay, tmp_path)
    env.update(NEURONVIZ_REPORT_FIRST_PAINT="quit", NEURONVIZ_T0=str(time.time()))
    r = subprocess.run(
        [sys.executable, "-m", "neuronviz.cli", "--demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "first-paint-seconds" in r.stdout
    assert "Traceback" not in r.stderr


def test_screenshot_is_not_blank_or_clipped(xdisplay, tmp_path):
    pytest.importorskip("PIL")
    shot, info_path = tmp_path / "shot.png", tmp_path / "info.json"
    cmd = [
        sys.executable,
        str(ROOT / "packaging" / "screenshot.py"),
        "--out",
        str(shot),
        "--info",
        str(info_path),
    ]
    views = tmp_path / "views"
    cmd += ["--views", str(views)]
    root = tmp_path / "root.png"
    if shutil.which("import"):
        cmd += ["--root", str(root)]
    r = subprocess.run(
        cmd, env=_env(xdisplay, tmp_path), capture_output=True, text=True, timeout=400
    )
    assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-2000:]
    info = json.loads(info_path.read_text())
    assert info["platform"] == "xcb"
    assert info["image"] == [1280, 800] == info["window"]
    for name, g in info["widgets"].items():
        assert g["visible"] and g["w"] > 20 and g["h"] > 10 and g["inside"], (name, g)
    assert info["widgets"]["norms"]["w"] > 400 and info["widgets"]["norms"]["h"] > 400
    assert info["accuracy_text"].endswith("%")
    px = _pixels(shot)
    assert px.shape == (800, 1280, 3)
    assert px.std() > 20  # not blank
    assert len(np.unique(px.reshape(-1, 3)[::37], axis=0)) > 50  # plots, text, colours
    # the norm plot region is drawn (selected bars in the selection colour are present)
    g = info["widgets"]["norms"]
    plot = px[g["y"] : g["y"] + g["h"], g["x"] : g["x"] + g["w"]]
    orange = (np.abs(plot - np.array([228, 87, 46])).sum(axis=-1) < 30).mean()
    assert orange > 0.02
    for name in ("graph", "widths", "importance"):  # the overviews: drawn, not clipped
        g = info["widgets"][name]
        assert g["visible"] and g["inside"] and g["w"] > 200 and g["h"] > 200, (name, g)
        view = _pixels(views / f"{name}.png")
        assert view.std() > 20 and len(np.unique(view.reshape(-1, 3)[::7], axis=0)) > 20, name
    if root.exists():
        screen = _pixels(root)
        assert screen.shape == (800, 1280, 3) and screen.std() > 20  # painted on the X server
