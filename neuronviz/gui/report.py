"""Markdown reports: of an export, with its key plots as PNG files, and of the current
plan (text only: layers, widths, params, MACs, scores before and after)."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401 - registers ImageExporter

from neuronviz.core.plan import format_spec
from neuronviz.gui import theme
from neuronviz.gui.navigator import human


def _export(plot: pg.PlotWidget, path: Path, width: int = 900, height: int = 380) -> Path:
    plot.resize(width, height)
    plot.getPlotItem().resize(width, height)
    ex = pg.exporters.ImageExporter(plot.getPlotItem())
    ex.parameters()["width"] = width
    ex.export(str(path))
    return path


def _plot(title: str) -> pg.PlotWidget:
    w = pg.PlotWidget(title=title)
    w.setBackground("w")
    for ax in ("left", "bottom"):
        w.getPlotItem().getAxis(ax).setPen("k")
        w.getPlotItem().getAxis(ax).setTextPen("k")
    return w


def widths_plot(session, result, path: Path) -> Path:
    layers = [
        p for p in session.selectable_layers() if p in session.weight_stats or p in result.removed
    ]
    before = np.array([session.units(p) for p in layers], float)
    after = np.array(
        [before[i] - len(result.removed.get(p, ())) for i, p in enumerate(layers)], float
    )
    w = _plot("Units per layer: before (grey) and after (blue)")
    x = np.arange(len(layers))
    w.addItem(pg.BarGraphItem(x=x - 0.2, height=before, width=0.4, brush=(180, 180, 180)))
    w.addItem(pg.BarGraphItem(x=x + 0.2, height=after, width=0.4, brush=theme.UNIT))
    w.getPlotItem().getAxis("bottom").setTicks([[(i, p) for i, p in enumerate(layers)]])
    return _export(w, path)


def norms_plot(session, layer: str, path: Path) -> Path | None:
    values = session.norms(layer)
    if values is None:
        return None
    sel = session.selected_mask(layer)
    order = np.argsort(values, kind="stable")
    w = _plot(f"'{layer}': L2 norm of each unit, sorted (removed units in red)")
    brushes = theme.unit_brushes(len(values), sel, session.direct_mask(layer) | sel)
    w.addItem(
        pg.BarGraphItem(
            x=np.arange(len(values)),
            height=values[order],
            width=1.0,
            brushes=[brushes[i] for i in order],
            pen=pg.mkPen(None),
        )
    )
    return _export(w, path)


def sweep_plot(session, path: Path) -> Path | None:
    res = session.sweep
    if res is None:
        return None
    w = _plot("Sensitivity: accuracy vs fraction of the layer's units removed")
    w.addLegend()
    for i, c in enumerate(res.curves):
        w.plot(
            c.fractions,
            np.nan_to_num(np.array(c.accuracy, float)),
            pen=pg.mkPen(theme.CURVES[i % 10], width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush=theme.CURVES[i % 10],
            name=c.layer,
        )
    return _export(w, path)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _source(session) -> str:
    return session.model_path.name if session.model_path else session.model.name


def _header(session) -> list[str]:
    return [
        f"Made by neuronviz on {datetime.datetime.now():%Y-%m-%d %H:%M} from `{_source(session)}`"
        + (f" with validation data `{session.data_source}`" if session.data_source else "")
        + ".",
        "",
    ]


def _change(a: float, b: float) -> str:
    return f"{100 * (a - b) / max(b, 1):+.1f}%"


def _totals(b, a, baseline=None, score=None) -> list[str]:
    """Params, MACs (Counts before and after) and, when known, accuracy and loss."""
    lines = [
        "| | before | after | change |",
        "| --- | ---: | ---: | ---: |",
        f"| parameters | {b.params:,} | {a.params:,} | {_change(a.params, b.params)} |",
        f"| MACs | {human(b.macs)} | {human(a.macs)} | {_change(a.macs, b.macs)} |",
    ]
    if baseline is not None and score is not None:
        unit = "tokens" if baseline.perplexity is not None else "samples"
        lines.append(
            f"| accuracy ({baseline.n:,} {unit}) | {_pct(baseline.accuracy)} | {_pct(score.accuracy)} | "
            f"{100 * (score.accuracy - baseline.accuracy):+.2f} pt |"
        )
        lines.append(
            f"| loss | {baseline.loss:.4f} | {score.loss:.4f} | {score.loss - baseline.loss:+.4f} |"
        )
        if baseline.perplexity is not None and score.perplexity is not None:
            b, p = baseline.perplexity, score.perplexity
            lines.append(f"| perplexity | {b:.2f} | {p:.2f} | {p - b:+.2f} |")
    return lines


def plan_report(session) -> str:
    """Markdown of the current plan, before any export: totals, the scores the preview
    has (or says they are pending), and every layer whose width, params or MACs change."""
    s = session
    before, after = s.before, s.counts_after()
    score = s.score_for() if s.baseline is not None else None
    removed = s.removed()
    total, n = s.unit_totals()
    lines = [f"# Pruning plan: {_source(s)}", "", *_header(s)]
    lines += [f"Removes {n:,} of {total:,} removable units.", ""]
    lines += _totals(before, after, s.baseline, score)
    if s.baseline is None:
        lines += ["", "Scores: open validation data to score the plan."]
    elif score is None:
        lines += ["", "Scores: the preview is still scoring this plan."]
    lines += [
        "",
        "## Layers that change",
        "",
        "| layer | units before | units after | params before | params after | MACs before | MACs after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path in s.trace.graph.layers:
        p0, m0 = before.layers.get(path, (0, 0))
        p1, m1 = after.layers.get(path, (0, 0))
        k = len(removed.get(path, ()))
        if k or (p0, m0) != (p1, m1):
            w0 = s.units(path) if path in s.trace.layer_units else ""
            w1 = w0 - k if w0 != "" else ""
            lines.append(
                f"| `{path}` | {w0} | {w1} | {p0:,} | {p1:,} | {human(m0)} | {human(m1)} |"
            )
    lines += ["", "## The plan", "", "```json", s.plan.to_json(), "```"]
    return "\n".join(lines) + "\n"


def write_plan_report(session, path) -> Path:
    path = Path(path)
    path.write_text(plan_report(session))
    return path


def write_report(
    session, model_path: Path, result, baseline=None, score=None, plan_path: Path | None = None
) -> Path:
    """Write `<stem>-report/report.md` with PNG plots; returns the Markdown path."""
    model_path = Path(model_path)
    folder = model_path.parent / f"{model_path.stem}-report"
    folder.mkdir(parents=True, exist_ok=True)
    images = [widths_plot(session, result, folder / "units.png")]
    for layer in [p for p in result.removed if p in (session.weight_stats or {})][:6]:
        images.append(norms_plot(session, layer, folder / f"norms-{layer.replace('/', '_')}.png"))
    images.append(sweep_plot(session, folder / "sensitivity.png"))
    src = _source(session)
    lines = [f"# Pruning report: {model_path.name}", "", *_header(session)]
    lines += _totals(result.before, result.after, baseline, score)
    lines += [
        "",
        "## What was removed",
        "",
        "| layer | units before | units after | removed indices |",
        "| --- | ---: | ---: | --- |",
    ]
    for layer, (n0, n1) in result.widths().items():
        spec = format_spec(result.removed[layer])
        lines.append(
            f"| `{layer}` | {n0} | {n1} | {spec if len(spec) < 120 else spec[:117] + '...'} |"
        )
    if plan_path is not None:
        lines += [
            "",
            f"The selection is saved as a plan: `{plan_path.name}` "
            f"(replay it with `neuronviz prune {src} --plan {plan_path.name}`).",
        ]
    lines += ["", "## Plots", ""]
    for img in images:
        if img is not None:
            lines.append(f"![{img.stem}]({img.name})")
            lines.append("")
    out = folder / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def ask_plan_report(session, parent, state) -> Path | None:
    """Ask where to write the plan's Markdown report; report the outcome through `state`."""
    from PySide6.QtWidgets import QFileDialog

    default = f"{Path(_source(session)).stem}-plan.md"
    fn, _ = QFileDialog.getSaveFileName(parent, "Save the plan report", default, "Markdown (*.md)")
    if not fn:
        return None
    out = write_plan_report(session, fn)
    state.info(f"Wrote the plan report {out.name}.")
    return out
