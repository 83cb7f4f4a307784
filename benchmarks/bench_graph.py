"""Graph view on deep models (keras.applications, weights=None, 64x64 inputs).

    python benchmarks/bench_graph.py [--models DenseNet201 ResNet152] [--json out.json]

Per model: tracing, the Sugiyama layout (grandalf, once per model), building the scene,
the frame time while panning and zooming (a full repaint of a 900x900 viewport per
frame, zoomed in with text and zoomed out without), and the UI-thread stall when the
plan changes: the engine resolving the plan (Session.removed, shared by every view and
cached per plan) and the graph view's update (target < 50 ms together).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def frames(view, steps: int, zoom: float, dx: float) -> list[float]:
    from PySide6.QtWidgets import QApplication

    c = view.canvas
    c.resetTransform()
    c.scale(zoom, zoom)
    c.centerOn(view.items[next(iter(view.items))])
    out = []
    for i in range(steps):
        t = time.perf_counter()
        c.horizontalScrollBar().setValue(c.horizontalScrollBar().value() + int(dx))
        c.verticalScrollBar().setValue(c.verticalScrollBar().value() + 40)
        if i % 5 == 4:
            c.scale(1.05, 1.05)
        c.viewport().repaint()
        QApplication.processEvents()
        out.append(time.perf_counter() - t)
    return out


def bench(name: str) -> dict:
    import keras
    import numpy as np

    from neuronviz.core.plan import Plan
    from neuronviz.gui.app import ensure_app
    from neuronviz.gui.state import State
    from neuronviz.gui.views.graph_view import GraphView
    from neuronviz.session import Session, analyze_parts

    app = ensure_app()
    model = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3), classes=10)
    t = time.perf_counter()
    parts = analyze_parts(model)
    analyze_s = time.perf_counter() - t
    s = Session()
    s.set_model(parts)
    t = time.perf_counter()
    view = GraphView(State(s))  # no task runner: lays out on this thread, to time it
    view.resize(900, 900)
    view.show()
    app.processEvents()
    open_s = time.perf_counter() - t
    layout_s = view.layout_seconds
    zoomed_in = frames(view, 40, 1.0, 25)
    zoomed_out = frames(view, 40, 0.15, 60)
    rng = np.random.default_rng(0)
    stalls, engine = [], []
    for layer in rng.choice(s.selectable_layers(), 10, replace=False):
        plan = s.edited(str(layer), rng.choice(s.units(str(layer)), 2, replace=False), "add")
        t = time.perf_counter()
        s.removed(plan)  # the engine resolves the plan (cached per plan)
        engine.append(time.perf_counter() - t)
        t = time.perf_counter()
        s.set_plan(plan)  # the view's part: widths, bars, highlight
        app.processEvents()
        stalls.append(time.perf_counter() - t)
    s.set_plan(Plan())
    view.cleanup()
    return {
        "model": name,
        "layers": len(s.trace.graph.layers),
        "edges": len(view.graph.edges),
        "analyze_s": round(analyze_s, 2),
        "layout_s": round(layout_s, 2),
        "open_graph_view_s": round(open_s, 2),
        "frame_ms_zoomed_in_median": round(1000 * statistics.median(zoomed_in), 1),
        "frame_ms_zoomed_in_max": round(1000 * max(zoomed_in), 1),
        "frame_ms_zoomed_out_median": round(1000 * statistics.median(zoomed_out), 1),
        "frame_ms_zoomed_out_max": round(1000 * max(zoomed_out), 1),
        "plan_resolve_ms_median": round(1000 * statistics.median(engine), 1),
        "plan_change_view_ms_median": round(1000 * statistics.median(stalls), 1),
        "plan_change_view_ms_max": round(1000 * max(stalls), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["DenseNet201", "ResNet152"])
    ap.add_argument("--json")
    args = ap.parse_args()
    results = [bench(m) for m in args.models]
    for r in results:
        print(json.dumps(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
