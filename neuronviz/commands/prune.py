"""`neuronviz prune MODEL -o OUT (--remove LAYER:SPEC ... | --plan PLAN.json | --target macs=0.5)
[--criterion l2] [--scope global|layer] [--round-to N] [--refine] [--save-plan PLAN.json] [--data DATA] [--json]`"""

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
    add_budget_arguments(p)
    add_input_shape_argument(p)
    add_output_arguments(p)


def add_budget_arguments(p) -> None:
    b = p.add_argument_group("budget plans and rounding")
    b.add_argument(
        "--target",
        metavar="KIND=VALUE",
        help="plan to a budget instead of --remove/--plan: macs=0.5 or params=0.5 (fraction "
        "of the original, or a count), size=5 (MB of float32 weights), latency=20 (ms per "
        "batch of --latency-batch, measured)",
    )
    b.add_argument("--criterion", default="l2", help="importance that ranks units (default l2)")
    b.add_argument(
        "--scope",
        default="auto",
        choices=("auto", "global", "layer"),
        help="global: rank units across groups; layer: the same share of every group; "
        "auto (default): global, or with --data the better-scoring of both",
    )
    b.add_argument(
        "--round-to",
        type=int,
        default=None,
        metavar="N",
        help="every group that loses units keeps a multiple of N, and one at least 16N wide "
        "a multiple of 2N (budget plans: 8 by default, 1 turns it off; other plans: off by "
        "default)",
    )
    b.add_argument(
        "--refine",
        action="store_true",
        help="with --target and --data: keep the widths found and choose each layer's units "
        "again by exact loss on the data (block-greedy in 4 rounds over the criterion's "
        "3k+8 least important candidates; slower: a few hundred previews per layer)",
    )
    b.add_argument("--save-plan", metavar="PLAN.json", help="write the plan used (replayable)")
    b.add_argument("--data", help="score the plan on this data (exact, from the masked model)")
    b.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="with --target: reach the budget's widths in N prune -> fine-tune steps "
        "(needs --finetune-data and --data)",
    )
    b.add_argument("--finetune-data", metavar="TRAIN", help="training data for --steps")
    b.add_argument(
        "--latency-batch",
        type=int,
        default=32,
        metavar="N",
        help="batch size for measured latency (default 32)",
    )


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
    from neuronviz.commands import check_data_source
    from neuronviz.errors import NeuronvizError

    target = None
    if args.target:
        if args.remove or args.plan:
            raise NeuronvizError("Expected either --target or --remove/--plan. Received: both.")
        target = _parse_target(args)
    else:
        plan = selection_plan(args, required=True)
    if args.steps is not None and (
        args.steps < 1 or not args.target or not args.finetune_data or not args.data
    ):
        raise NeuronvizError(
            "Expected --steps N >= 1 with --target, --finetune-data TRAIN and --data VAL. "
            f"Received: --steps {args.steps}"
        )
    if args.refine and (not args.target or not args.data):
        raise NeuronvizError(
            "Expected --refine with --target and --data (it chooses units by their loss on "
            f"the data). Received: --target {args.target or 'none'}, --data {args.data or 'none'}"
        )
    if args.round_to is not None and args.round_to < 1:
        raise NeuronvizError(f"Expected --round-to >= 1. Received: {args.round_to}")
    if args.data:
        check_data_source(args.data)
    import neuronviz.api as nv

    out = Path(args.output)
    if out.exists() and out.resolve() == Path(args.model).resolve():
        raise NeuronvizError(
            f"Refusing to overwrite the input file '{out}'. Choose another output name."
        )
    model = nv.load_model(args.model, unsafe=args.unsafe)
    from neuronviz.commands import parse_input_shapes

    trace = nv.analyze(model, parse_input_shapes(args.input_shape))
    budget = None
    if target is not None:
        budget = nv.plan_to_budget(
            model,
            target,
            criterion=args.criterion,
            scope=args.scope,
            round_to=nv.DEFAULT_ROUND_TO if args.round_to is None else args.round_to,
            data=args.data,
            batch_size=args.latency_batch,
            trace=trace,
            refine=args.refine,
            progress=_progress("refining with data") if args.refine and not args.json else None,
        )
        plan = budget.plan
        if not plan:
            raise NeuronvizError(f"The model already meets {target}: nothing to remove.")
        if args.steps:
            return _run_schedule(args, nv, model, trace, budget, out)
    elif args.round_to not in (None, 1):
        plan = nv.round_plan(model, plan, args.round_to, args.criterion, trace=trace)
    predicted = nv.evaluate(model, args.data, plan, trace=trace) if args.data else None
    result = nv.prune(model, plan, trace)
    if args.save_plan:
        plan.save(args.save_plan)
    saved = nv.save_pruned(result, out, model, plan, source=args.model)
    latency = nv.compare_latency(model, result, args.latency_batch, trace=trace)
    macs_ratio = result.after.macs / result.before.macs if result.before.macs else None
    if args.json:
        data = {
            "removed": result.removed,
            "params_before": result.before.params,
            "params_after": result.after.params,
            "macs_before": result.before.macs,
            "macs_after": result.after.macs,
            "macs_ratio": macs_ratio,
            **latency.to_dict(),
            "output": str(saved),
        }
        if budget is not None:
            data["target"] = str(budget.target)
            data["round_to"] = budget.round_to
            data["scope"] = budget.scope
            data["refined"] = budget.refined
        if predicted is not None:
            data["predicted"] = predicted.to_dict()
        if args.save_plan:
            data["plan"] = str(args.save_plan)
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
    print(
        f"latency {latency.original_ms:.2f} -> {latency.pruned_ms:.2f} ms per batch of "
        f"{latency.batch_size} (x{latency.ratio:.3f}; MACs x{macs_ratio:.3f})"
    )
    if budget is not None:
        print(
            f"target {budget.target} met (criterion {budget.criterion}, scope {budget.scope}, "
            f"round_to {budget.round_to}{_refined(args, budget)})"
        )
    if predicted is not None:
        ppl, what = "", "samples"
        if predicted.perplexity is not None:  # a causal LM's token data
            ppl, what = f", perplexity {predicted.perplexity:.4f}", "tokens"
        print(
            f"predicted on {args.data}: accuracy {predicted.accuracy:.4f}, loss {predicted.loss:.4f}"
            f"{ppl} ({predicted.n} {what}, exact: the masked model)"
        )
    if args.save_plan:
        print(f"plan written to {args.save_plan}")
    print(f"saved {saved} (reloaded and checked against the masked model)")
    return 0


def _run_schedule(args, nv, model, trace, budget, out) -> int:
    """The budget plan's widths reached in `--steps` prune -> fine-tune steps."""
    from neuronviz.commands.finetune import load_split

    train, val = load_split(args.finetune_data, model), load_split(args.data, model)
    sched = nv.budget_schedule(model, budget, train, val, steps=args.steps, trace=trace)
    steps = []
    for step in sched.run():
        steps.append(step)
        if not args.json and step.step:
            print(
                f"step {step.step}/{step.steps}: params {step.params:,}, accuracy "
                f"{step.pruned['accuracy']:.4f} pruned -> {step.finetuned['accuracy']:.4f} fine-tuned"
            )
    if args.save_plan:
        budget.plan.save(args.save_plan)
    saved = nv.save_model(sched.result, out, source=args.model)
    after = nv.counts(sched.result)
    if args.json:
        print(
            json.dumps(
                {
                    "target": str(budget.target),
                    "steps": [
                        {
                            "step": s.step,
                            "params": s.params,
                            "pruned": s.pruned,
                            "finetuned": s.finetuned,
                        }
                        for s in steps
                    ],
                    "widths": {k: list(v) for k, v in steps[-1].widths.items()},
                    "params_before": budget.before.params,
                    "params_after": after.params,
                    "macs_before": budget.before.macs,
                    "macs_after": after.macs,
                    "output": str(saved),
                }
            )
        )
        return 0
    print(
        f"target {budget.target}: MACs {budget.before.macs:,} -> {after.macs:,} in {args.steps} steps"
    )
    print(f"saved {saved}")
    return 0


def _parse_target(args):
    from neuronviz.errors import NeuronvizError

    kind, sep, value = args.target.partition("=")
    kinds = ("macs", "params", "size", "latency")
    if not sep or kind.strip().lower() not in kinds:
        raise NeuronvizError(
            f"Expected --target KIND=VALUE with KIND in {', '.join(kinds)}. Received: '{args.target}'"
        )
    try:
        v = float(value)
    except ValueError:
        v = -1.0
    if not v > 0 or v == float("inf"):
        raise NeuronvizError(f"Expected a positive number in --target. Received: '{args.target}'")
    if args.latency_batch < 1:
        raise NeuronvizError(f"Expected --latency-batch >= 1. Received: {args.latency_batch}")
    return f"{kind.strip().lower()}={v:g}"


def _refined(args, budget) -> str:
    if not args.refine:
        return ""
    return ", units refined with data" if budget.refined else ", refining found no lower loss"


def _progress(label: str):
    """Percent done on stderr, in place, when it is a terminal."""
    import sys

    if not sys.stderr.isatty():
        return None

    def report(fraction: float) -> None:
        end = "\n" if fraction >= 1.0 else ""
        sys.stderr.write(f"\r{label}… {100 * fraction:3.0f}%{end}")
        sys.stderr.flush()

    return report


def _pct(a: int, b: int) -> str:
    return f"{(b - a) / a * 100:+.1f}%" if a else "n/a"
