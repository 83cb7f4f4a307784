"""`neuronviz evaluate MODEL --data DATA [--remove LAYER:SPEC ...] [--plan PLAN.json] [--json]`"""

from __future__ import annotations

import json
import math
import warnings

from neuronviz.commands import add_output_arguments, check_data_source
from neuronviz.commands.prune import add_selection_arguments, selection_plan


def add_arguments(p) -> None:
    p.add_argument("model", help="model file (.keras or .h5)")
    p.add_argument(
        "--data",
        required=True,
        help="validation data: .npz with x and y, an image folder (one subfolder per class), "
        "'demo', or for a causal LM .npz with token_ids (and padding_mask)",
    )
    add_selection_arguments(p)
    p.add_argument("--batch-size", type=int, default=256, help="samples per batch (default 256)")
    add_output_arguments(
        p,
        json_help='print one JSON object {"accuracy", "loss", "n"} (and "perplexity" for a '
        "causal LM's token data)",
    )


def run(args) -> int:
    from neuronviz.errors import NeuronvizError

    plan = selection_plan(args, required=False)
    if args.batch_size < 1:
        raise NeuronvizError(f"Expected --batch-size >= 1. Received: {args.batch_size}")
    check_data_source(args.data)  # before the slow model load

    import neuronviz.api as nv

    model = nv.load_model(args.model, unsafe=args.unsafe)
    trace = nv.analyze(model)
    selection = trace.select(plan)
    data = nv.load_data(args.data, model)
    if selection.touches_output():
        warnings.warn(
            "The selection removes output units: samples of removed classes count as wrong "
            "and are left out of the loss.",
            stacklevel=1,
        )
    # one pass per score and nothing kept: a one-off evaluation gains nothing from caching
    previewer = nv.Previewer(model, trace, data, budget_bytes=0, batch_size=args.batch_size)
    score = previewer.score(plan)
    if args.json:
        print(json.dumps(score.to_dict()))
        return 0
    count = "tokens  " if score.perplexity is not None else "samples "
    if not plan:
        print(f"accuracy {score.accuracy:.4f}")
        print(f"loss     {_num(score.loss)}")
        if score.perplexity is not None:
            print(f"perplexity {_num(score.perplexity)}")
        print(f"{count} {score.n}")
        return 0
    base = previewer.baseline()
    for layer, lost in selection.removed_by_layer().items():
        if not trace.rule(layer).has_units:
            continue  # pass-through members (pooling, activations) lose the same units
        print(f"  {layer:<32} {len(lost):>6} of {len(trace.layer_units[layer])} units masked")
    print(
        f"accuracy {score.accuracy:.4f} (unmasked {base.accuracy:.4f}, {100 * (score.accuracy - base.accuracy):+.2f} points)"
    )
    print(f"loss     {_num(score.loss)} (unmasked {_num(base.loss)})")
    if score.perplexity is not None:
        print(f"perplexity {_num(score.perplexity)} (unmasked {_num(base.perplexity)})")
    print(f"{count} {score.n}")
    return 0


def _num(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else "n/a"
