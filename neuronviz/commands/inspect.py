"""`neuronviz inspect MODEL [--data DATA] [--json] [--unsafe]`

One row per model input and per layer: class, output shape, units, params, MACs, group,
and for layers that create units their weight norms; with --data also the baseline
score and each unit's mean activation and APoZ.
"""

from __future__ import annotations

import json
import math

from neuronviz.commands import add_output_arguments, check_data_source


def add_arguments(p) -> None:
    p.add_argument("model", help="model file (.keras or .h5)")
    p.add_argument("--data", help="validation data (.npz with x and y, an image folder, or 'demo')")
    p.add_argument(
        "--batch-size", type=int, default=256, help="samples per batch for the statistics pass"
    )
    add_output_arguments(p, json_help="print one JSON object instead of a table")


def _floats(values) -> list:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def _shape(shapes) -> list:
    return list(shapes[0]) if len(shapes) == 1 else [list(s) for s in shapes]


def report(model, trace, dataset=None, batch_size: int = 256) -> dict:
    """The inspect JSON object for `model` (see the module docstring)."""
    import neuronviz.api as nv

    fg = trace.graph
    counts = nv.counts(model)
    norms = nv.weight_stats(trace)
    out = {"model": {"name": model.name, "params": counts.params, "macs": counts.macs}}
    stats = None
    if dataset is not None:
        out["baseline"] = nv.evaluate(model, dataset, trace=trace).to_dict()
        stats = nv.activation_stats(model, trace, dataset.x, batch_size=batch_size)
    rows = []
    for t in model.inputs:
        op = getattr(t, "_keras_history", None)
        name = op.operation.name if op is not None else t.name
        rows.append(
            {
                "name": name,
                "class": "InputLayer",
                "output_shape": list(t.shape),
                "units": None,
                "params": 0,
                "macs": 0,
                "group": None,
            }
        )
    for path, layer in fg.layers.items():
        params, macs = counts.layers.get(path, (0, 0))
        row = {
            "name": path,
            "class": type(layer).__name__,
            "output_shape": _shape(fg.first_call(path).output_shapes),
            "units": None,
            "params": params,
            "macs": macs,
            "group": trace.group_of(path),
        }
        if path in trace.layer_units:
            row["units"] = len(trace.layer_units[path])
            if path in norms:
                row["norm_l1"] = _floats(norms[path].norm_l1)
                row["norm_l2"] = _floats(norms[path].norm_l2)
            if stats is not None:
                row["mean_activation"] = _floats(stats[path].mean)
                row["apoz"] = _floats(stats[path].apoz)
        rows.append(row)
    out["layers"] = rows
    return out


def run(args) -> int:
    from pathlib import Path

    from neuronviz.errors import NeuronvizError

    if args.batch_size < 1:
        raise NeuronvizError(f"Expected --batch-size >= 1. Received: {args.batch_size}")
    if not Path(args.model).exists():  # fail fast, before TensorFlow loads
        raise NeuronvizError(f"Model file not found: '{args.model}'")
    if args.data:
        check_data_source(args.data)
    import neuronviz.api as nv

    model = nv.load_model(args.model, unsafe=args.unsafe)
    tr = nv.analyze(model)
    dataset = nv.load_data(args.data, model) if args.data else None
    data = report(model, tr, dataset, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(data))
    else:
        print(_table(data))
    return 0


def _num(v: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if v >= size:
            return f"{v / size:.1f}{unit}"
    return str(v)


def _table(data: dict) -> str:
    m = data["model"]
    lines = [f"model {m['name']}: {m['params']:,} params, {m['macs']:,} MACs"]
    if "baseline" in data:
        b = data["baseline"]
        acc = "n/a" if b["accuracy"] is None else f"{b['accuracy']:.4f}"
        loss = "n/a" if b["loss"] is None else f"{b['loss']:.4f}"
        lines.append(f"baseline on {b['n']} samples: accuracy {acc}, loss {loss}")
    with_data = "baseline" in data
    head = f"{'layer':<28} {'class':<20} {'output shape':<20} {'units':>6} {'params':>8} {'MACs':>8} {'group':>6}"
    head += f" {'L2 mean':>8}" + (f" {'act mean':>9} {'APoZ':>6} {'dead':>5}" if with_data else "")
    lines += [head, "-" * len(head)]
    for r in data["layers"]:
        shape = (
            str(tuple(r["output_shape"])).replace("None", "N").replace(" ", "")
            if r["output_shape"] and not isinstance(r["output_shape"][0], list)
            else "multi"
        )
        group = (
            "-"
            if r["group"] is None
            else ",".join(map(str, r["group"]))
            if isinstance(r["group"], list)
            else str(r["group"])
        )
        line = (
            f"{r['name'][:28]:<28} {r['class'][:20]:<20} {shape[:20]:<20} {'-' if r['units'] is None else r['units']:>6} "
            f"{_num(r['params']):>8} {_num(r['macs']):>8} {group:>6}"
        )
        line += f" {_mean(r.get('norm_l2')):>8}"
        if with_data:
            apoz = r.get("apoz")
            dead = "-" if apoz is None else str(sum(1 for a in apoz if a == 1.0))
            line += f" {_mean(r.get('mean_activation')):>9} {_mean(apoz):>6} {dead:>5}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def _mean(values) -> str:
    vals = [v for v in (values or []) if v is not None]
    return f"{sum(vals) / len(vals):.3g}" if vals else "-"
