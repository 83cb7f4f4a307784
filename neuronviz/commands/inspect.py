"""`neuronviz inspect MODEL [--data DATA] [--input-shape SHAPE] [--json] [--unsafe]`

One row per model input and per layer: class, output shape, units and what they are
("unit_kind": unit, neuron, channel or head; an attention layer's units are its query
heads), params, MACs, group,
and for layers that create units their weight norms; with --data also the baseline
score (with perplexity for a causal LM's token data) and each unit's mean activation and APoZ. Layers inside nested models and captured
custom layers are rows under their parent (`parent`; `containers` lists the parents
with their totals). `inputs` lists each input: name, declared shape, dtype and the
example shape it was traced at (None dimensions: from the data, --input-shape, or a
small default).
"""

from __future__ import annotations

import json
import math

from neuronviz.commands import add_input_shape_argument, add_output_arguments, check_data_source


def add_arguments(p) -> None:
    p.add_argument("model", help="model file (.keras or .h5)")
    p.add_argument(
        "--data",
        help="validation data (.npz with x and y, an image folder, 'demo', or for a causal LM "
        ".npz with token_ids)",
    )
    p.add_argument(
        "--batch-size", type=int, default=256, help="samples per batch for the statistics pass"
    )
    add_input_shape_argument(p)
    add_output_arguments(p, json_help="print one JSON object instead of a table")


def _floats(values) -> list:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def _shape(shapes) -> list:
    return list(shapes[0]) if len(shapes) == 1 else [list(s) for s in shapes]


def report(model, trace, dataset=None, batch_size: int = 256) -> dict:
    """The inspect JSON object for `model` (see the module docstring)."""
    import neuronviz.api as nv

    fg = trace.graph
    counts = nv.counts(model, [s[1:] for s in fg.input_shapes])
    norms = nv.weight_stats(trace)
    out = {"model": {"name": model.name, "params": counts.params, "macs": counts.macs}}
    out["inputs"] = [
        {"name": n, "shape": list(d), "dtype": t, "example_shape": list(e)}
        for n, d, t, e in zip(
            fg.input_names, fg.declared_shapes, fg.input_dtypes, fg.input_shapes, strict=True
        )
    ]
    if fg.example_note:
        out["example_shapes"] = fg.example_note
    if fg.refused:
        out["refused"] = dict(fg.refused)
    stats = None
    if dataset is not None:
        out["baseline"] = nv.evaluate(model, dataset, trace=trace).to_dict()
        stats = nv.activation_stats(model, trace, dataset.x, batch_size=batch_size)
    rows = []
    for name, shape in zip(fg.input_names, fg.declared_shapes, strict=True):
        rows.append(
            {
                "name": name,
                "class": "InputLayer",
                "output_shape": list(shape),
                "units": None,
                "unit_kind": "unit",
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
            "output_shape": _shape([tuple(t.shape) for t in fg.first_call(path).node.outputs]),
            "units": None,
            "unit_kind": trace.unit_kind(path),
            "params": params,
            "macs": macs,
            "group": trace.group_of(path),
            "parent": _parent(path, fg.nested_models),
        }
        if path in trace.layer_units:
            row["units"] = len(trace.layer_units[path])
            if path in norms:
                row["norm_l1"] = _floats(norms[path].norm_l1)
                row["norm_l2"] = _floats(norms[path].norm_l2)
            if stats is not None and path in stats:
                row["mean_activation"] = _floats(stats[path].mean)
                row["apoz"] = _floats(stats[path].apoz)
        rows.append(row)
    out["layers"] = rows
    out["containers"] = _containers(trace, rows)
    return out


def _parent(path: str, containers: dict) -> str | None:
    head = path.rsplit("/", 1)[0] if "/" in path else None
    return head if head in containers else None


def _containers(trace, rows) -> list:
    """Nested models and captured layers, with the totals of the rows inside them
    (units: those created by the layers inside)."""
    fg, out = trace.graph, []
    for path, op in fg.nested_models.items():
        inside = [r for r in rows if r["name"].startswith(path + "/")]
        out.append(
            {
                "name": path,
                "class": type(op).__name__,
                "captured": path in fg.captured,
                "parent": _parent(path, fg.nested_models),
                "params": sum(r["params"] for r in inside),
                "macs": sum(r["macs"] for r in inside),
                "units": sum(r["units"] or 0 for r in inside if trace.rule(r["name"]).has_units),
                "children": [r["name"] for r in inside if r["parent"] == path],
            }
        )
    for c in out:
        c["children"] += [d["name"] for d in out if d["parent"] == c["name"]]
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
    from neuronviz.commands import parse_input_shapes

    model = nv.load_model(args.model, unsafe=args.unsafe)
    dataset = nv.load_data(args.data, model) if args.data else None
    shapes = parse_input_shapes(args.input_shape)
    if shapes is None and dataset is not None:
        shapes = [a.shape[1:] for a in dataset.inputs]
    tr = nv.analyze(model, shapes)
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
        if "perplexity" in b:
            ppl = "n/a" if b["perplexity"] is None else f"{b['perplexity']:.4f}"
            lines.append(
                f"baseline on {b['n']} tokens (next token): accuracy {acc}, loss {loss}, perplexity {ppl}"
            )
        else:
            lines.append(f"baseline on {b['n']} samples: accuracy {acc}, loss {loss}")
    with_data = "baseline" in data
    head = f"{'layer':<28} {'class':<20} {'output shape':<20} {'units':>6} {'params':>8} {'MACs':>8} {'group':>6}"
    head += f" {'L2 mean':>8}" + (f" {'act mean':>9} {'APoZ':>6} {'dead':>5}" if with_data else "")
    if data.get("example_shapes"):
        lines.insert(1, f"traced at example shapes: {data['example_shapes']}")
    lines += [head, "-" * len(head)]
    containers = {c["name"]: c for c in data.get("containers", [])}
    shown: set = set()
    for r in data["layers"]:
        chain, p = [], r.get("parent")
        while p is not None:
            chain.insert(0, p)
            p = containers[p]["parent"]
        for depth, name in enumerate(chain):
            if name not in shown:
                shown.add(name)
                lines.append(_container_line(containers[name], depth))
        label = "  " * len(chain) + r["name"].rsplit("/", 1)[-1] if chain else r["name"]
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
            f"{label[:28]:<28} {r['class'][:20]:<20} {shape[:20]:<20} {'-' if r['units'] is None else r['units']:>6} "
            f"{_num(r['params']):>8} {_num(r['macs']):>8} {group:>6}"
        )
        line += f" {_mean(r.get('norm_l2')):>8}"
        if with_data:
            apoz = r.get("apoz")
            dead = "-" if apoz is None else str(sum(1 for a in apoz if a == 1.0))
            line += f" {_mean(r.get('mean_activation')):>9} {_mean(apoz):>6} {dead:>5}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def _container_line(c: dict, depth: int) -> str:
    label = "  " * depth + c["name"].rsplit("/", 1)[-1]
    kind = "(captured graph)" if c["captured"] else "(nested model)"
    return (
        f"{label[:28]:<28} {c['class'][:20]:<20} {kind:<20} {c['units'] or '-':>6} "
        f"{_num(c['params']):>8} {_num(c['macs']):>8} {'':>6}"
    ).rstrip()


def _mean(values) -> str:
    vals = [v for v in (values or []) if v is not None]
    return f"{sum(vals) / len(vals):.3g}" if vals else "-"
