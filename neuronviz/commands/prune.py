"""`neuronviz prune MODEL -o OUT --remove LAYER:SPEC ... [--plan PLAN.json] [--json]`"""

from __future__ import annotations

import json
from pathlib import Path

from neuronviz.commands import add_input_shape_argument, add_output_arguments
from neuronviz.core.plan import Plan


def add_arguments(p) -> None:
    p.add_argument("model", help="model file (.keras or .h5)")
    p.add_argument(
        "-o", "--output", required=True, help="where to save the pruned model (.keras, or .h5)"
    )
    add_selection_arguments(p)
    add_input_shape_argument(p)
    add_output_arguments(p)


def add_selection_arguments(p) -> None:
    p.add_argument(
        "--remove",
        action="append",
        default=[],
        metavar="LAYER:SPEC",
        help="units to remove, e.g. dense:0-99,120 (repeatable)",
    )
    p.add_argument("--plan", help='plan JSON: {"remove": {"LAYER": [indices]}}')


def selection_plan(args, *, required: bool) -> Plan:
    from neuronviz.errors import NeuronvizError

    plan = Plan.from_specs(args.remove) if args.remove else Plan()
    if args.plan:
        plan = plan.merged(Plan.load(args.plan))
    if required and not plan:
        raise NeuronvizError(
            "Expected units to remove: give --remove LAYER:SPEC or --plan PLAN.json."
        )
    return plan


def run(args) -> int:
    import neuronviz.api as nv
    from neuronviz.errors import NeuronvizError

    plan = selection_plan(args, required=True)
    out = Path(args.output)
    if out.exists() and out.resolve() == Path(args.model).resolve():
        raise NeuronvizError(
            f"Refusing to overwrite the input file '{out}'. Choose another output name."
        )
    model = nv.load_model(args.model, unsafe=args.unsafe)
    from neuronviz.commands import parse_input_shapes

    trace = nv.analyze(model, parse_input_shapes(args.input_shape))
    result = nv.prune(model, plan, trace)
    saved = nv.save_pruned(result, out, model, plan, source=args.model)
    if args.json:
        data = {
            "removed": result.removed,
            "params_before": result.before.params,
            "params_after": result.after.params,
            "macs_before": result.before.macs,
            "macs_after": result.after.macs,
            "output": str(saved),
        }
        if result.captured:  # path -> how a captured model or layer was saved
            data["captured"] = result.captured
        if trace.graph.example_note:
            data["example_shapes"] = trace.graph.example_note
        print(json.dumps(data))
        return 0
    if trace.graph.example_note:
        print(f"traced at example shapes: {trace.graph.example_note}")
    for line in result.capture_summary():
        print(f"captured {line}")
    for layer, (a, b) in result.widths().items():
        print(f"  {layer:<32} {a:>6} -> {b}")
    print(
        f"params {result.before.params:,} -> {result.after.params:,} ({_pct(result.before.params, result.after.params)})"
    )
    print(
        f"MACs   {result.before.macs:,} -> {result.after.macs:,} ({_pct(result.before.macs, result.after.macs)})"
    )
    print(f"saved {saved} (reloaded and checked against the masked model)")
    return 0


def _pct(a: int, b: int) -> str:
    return f"{(b - a) / a * 100:+.1f}%" if a else "n/a"
