"""`neuronviz sparsify MODEL --amount 0.8 [--layers a,b] [--scope layer|global] -o OUT
[--tflite OUT.tflite] [--json]`

Zeroes the smallest-magnitude kernel weights (unstructured pruning). The model keeps its
shape, so dense inference is not faster, but the file compresses much better; the
summary gives raw and gzip sizes. Fine-tune afterwards with `neuronviz finetune
--keep-zeros` so the zeros stay zero.
"""

from __future__ import annotations

import json

from neuronviz.commands import add_output_arguments


def add_arguments(p) -> None:
    p.add_argument("model", help="model file (.keras or .h5)")
    p.add_argument(
        "--amount", required=True, type=float, help="fraction of kernel weights to zero, in [0, 1)"
    )
    p.add_argument(
        "--layers", help="comma-separated layer names (default: every layer with a kernel)"
    )
    p.add_argument(
        "--scope",
        choices=("layer", "global"),
        default="layer",
        help="'layer': AMOUNT of each kernel; 'global': AMOUNT of all chosen kernels together",
    )
    p.add_argument(
        "-o", "--output", required=True, help="where to save the sparse model (.keras or .h5)"
    )
    p.add_argument("--tflite", help="also export a TFLite flatbuffer here (.tflite)")
    p.add_argument(
        "--sparse-tflite",
        action="store_true",
        help="store sparse kernels compressed in the TFLite file (converter's EXPERIMENTAL_SPARSITY)",
    )
    add_output_arguments(p)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def run(args) -> int:
    from neuronviz.commands.finetune import check_output
    from neuronviz.errors import NeuronvizError

    if not 0.0 <= args.amount < 1.0:
        raise NeuronvizError(
            f"Expected --amount in [0, 1), the fraction of weights to zero. Received: {args.amount}"
        )
    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    if args.layers is not None and not layers:
        raise NeuronvizError(
            f"Expected --layers as comma-separated layer names. Received: '{args.layers}'"
        )
    out = check_output(args.output, args.model)
    tfl = check_output(args.tflite, args.model) if args.tflite else None
    if tfl is not None and tfl.suffix.lower() != ".tflite":
        raise NeuronvizError(f"Expected --tflite to name a .tflite file. Received: '{tfl.name}'")
    if tfl is not None and tfl.resolve() == out.resolve():
        raise NeuronvizError(
            "Expected different paths for -o and --tflite. Received: the same path twice."
        )

    import neuronviz.api as nv

    model = nv.load_model(args.model, unsafe=args.unsafe)
    result = nv.sparsify(model, args.amount, layers=layers, scope=args.scope)
    tflite_data = (
        nv.tflite_bytes(result.model, sparse_encoding=args.sparse_tflite)
        if tfl is not None
        else None
    )
    saved = nv.save_model(result.model, out, source=args.model)
    sizes = {"input": nv.file_size(args.model).to_dict(), "output": nv.file_size(saved).to_dict()}
    if tfl is not None:
        nv.export_tflite(
            result.model,
            tfl,
            source=args.model,
            sparse_encoding=args.sparse_tflite,
            data=tflite_data,
        )
        sizes["tflite"] = nv.file_size(tfl).to_dict()
    if args.json:
        print(
            json.dumps(
                {
                    **result.to_dict(),
                    "sizes": sizes,
                    "output": str(saved),
                    "tflite": str(tfl) if tfl is not None else None,
                }
            )
        )
        return 0
    print(f"zeroed the smallest {args.amount:.0%} of kernel weights ({args.scope} scope):")
    for layer, frac in result.layer_sparsity.items():
        print(f"  {layer:<32} {frac:6.1%}")
    print(
        f"sparsity {result.sparsity:.1%} of kernel weights ({result.zeros:,} of {result.kernel_weights:,}), "
        f"{result.model_sparsity:.1%} of all weights"
    )
    for label, key, path in (
        ("input ", "input", args.model),
        ("saved ", "output", saved),
        ("tflite", "tflite", tfl),
    ):
        if key in sizes:
            print(
                f"{label} {_mb(sizes[key]['raw']):>10} raw  {_mb(sizes[key]['gzip']):>10} gzip  {path}"
            )
    print(
        "note: zeros shrink the compressed file; dense inference is not faster "
        "(remove units with `neuronviz prune` for speed)"
    )
    return 0
