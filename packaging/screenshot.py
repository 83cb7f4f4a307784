"""Make docs/screenshot.png: open the demo (as `neuronviz --demo` does), select the 25%
smallest-norm units of "dense", wait for the live preview, and save a 1280x800 grab.

    python packaging/screenshot.py [--out docs/screenshot.png] [--info info.json]

Run it on a display (or under Xvfb: `xvfb-run python packaging/screenshot.py`); without
one Qt's offscreen platform is used. --info writes where the main widgets lie (the GUI
tests use it to check nothing is clipped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    p.add_argument("--info", help="write widget geometry and timings as JSON here")
    p.add_argument("--root", help="also capture the whole X screen here (`import -window root`)")
    p.add_argument("--views", help="also save a grab of each overview (graph, widths, ...) here")
    p.add_argument("--timeout", type=float, default=180.0)
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("NEURONVIZ_SETTINGS", str(Path(tempfile.mkdtemp()) / "settings.ini"))
    t0 = time.monotonic()

    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QApplication

    from neuronviz.gui.app import create_main_window, ensure_app

    app = ensure_app()
    win = create_main_window(demo=True)
    win.resize(1280, 800)
    win.show()
    s, st = win.state.session, win.state

    def wait(cond, what):
        end = time.monotonic() + args.timeout
        while not cond():
            app.processEvents()
            time.sleep(0.01)
            if time.monotonic() > end:
                raise SystemExit(f"screenshot: timed out waiting for {what}")

    wait(
        lambda: s.previewer is not None and s.act_stats is not None and st.baseline is not None,
        "the demo",
    )
    ready = time.monotonic() - t0
    plan = s.criterion_plan("l2", fraction=0.25, layers=["dense"])
    win.selection.apply(plan, "Select the smallest 25% of dense")
    win.norms.sorted.setChecked(True)
    wait(lambda: st.score is not None and st.score_plan == s.plan, "the preview")
    act = s.act("dense")
    live = [u for u in plan.remove["dense"] if not act.dead[u]]
    unit = int(live[-1] if live else plan.remove["dense"][-1])
    st.set_focus("dense", unit)
    wait(lambda: win.unit.saliency_for == ("dense", unit), "the saliency map")
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)
    shot = win.grab()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not shot.save(str(out)):
        raise SystemExit(f"screenshot: could not write {out}")
    if args.root:
        import subprocess

        subprocess.run(["import", "-window", "root", args.root], check=True, timeout=60)
    frame = QRect(0, 0, win.width(), win.height())

    def geo(w):
        r = QRect(w.mapTo(win, w.rect().topLeft()), w.size())
        return {
            "x": r.x(),
            "y": r.y(),
            "w": r.width(),
            "h": r.height(),
            "inside": frame.contains(r),
            "visible": w.isVisible(),
        }

    views = {}
    if args.views:  # the graph dock as it is, then each overview tab in turn
        folder = Path(args.views)
        folder.mkdir(parents=True, exist_ok=True)
        wait(lambda: bool(win.graph.items), "the graph layout")
        views["graph"] = win.graph
        for name in ("widths", "importance"):
            views[name] = getattr(win, name)
        for name, w in list(views.items()):
            if name != "graph":
                win.tabs.setCurrentWidget(w)
            for _ in range(20):
                app.processEvents()
                time.sleep(0.01)
            if not w.grab().save(str(folder / f"{name}.png")):
                raise SystemExit(f"screenshot: could not write {name}.png")
            views[name] = geo(w)
        win.tabs.setCurrentWidget(win.norms)
    if args.info:
        widgets = {
            "navigator": win.navigator,
            "norms": win.norms.plot,
            "preview": win.preview,
            "unit": win.unit,
            "tabs": win.tabs,
            "accuracy": win.preview.labels["Accuracy"][1],
        }
        info = {
            "window": [win.width(), win.height()],
            "image": [shot.width(), shot.height()],
            "platform": QApplication.platformName(),
            "ready_seconds": ready,
            "widgets": {**{k: geo(w) for k, w in widgets.items()}, **views},
            "accuracy_text": win.preview.labels["Accuracy"][1].text(),
            "selected": len(plan.remove["dense"]),
        }
        Path(args.info).write_text(json.dumps(info, indent=2))
    print(f"wrote {out} ({shot.width()}x{shot.height()}, demo ready in {ready:.1f} s)")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
