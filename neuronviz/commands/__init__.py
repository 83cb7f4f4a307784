"""CLI subcommands: one module each, with add_arguments(parser) and run(args) -> int.

Subcommands reach the engine through `neuronviz.api` only (plus the NumPy-only core and
`neuronviz.errors`); tests/test_architecture.py keeps it so.
"""

from pathlib import Path


def check_data_source(source) -> None:
    """Fail fast (before TensorFlow loads) on a data source that cannot exist."""
    from neuronviz.errors import NeuronvizError

    if str(source) != "demo" and not Path(source).exists():
        raise NeuronvizError(f"Data file not found: '{source}'")


def add_output_arguments(p, json_help: str = "print one JSON object instead of a summary") -> None:
    """The options every subcommand shares: --json, --unsafe and --verbose."""
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument(
        "--unsafe",
        action="store_true",
        help="allow code (Lambda layers) stored in the model file to run",
    )
    add_verbose_argument(p)


def add_verbose_argument(p) -> None:
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's start-up and log lines (also NEURONVIZ_VERBOSE=1)",
    )


def add_input_shape_argument(p) -> None:
    p.add_argument(
        "--input-shape",
        action="append",
        default=None,
        metavar="SHAPE",
        help="example shape without the batch axis for inputs with undefined (None) sizes, "
        "e.g. 128 or 224,224,3 (repeat per input; default: the data's, else 16 tokens, 64x64 pixels)",
    )


def parse_input_shapes(values) -> list[tuple] | None:
    """`--input-shape 224,224,3` (repeated per input) as a list of shapes."""
    if not values:
        return None
    from neuronviz.errors import NeuronvizError

    shapes = []
    for v in values:
        try:
            shape = tuple(int(d) for d in v.replace("x", ",").split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise NeuronvizError(
                f"Expected --input-shape as positive sizes like 224,224,3. Received: '{v}'"
            )
        shapes.append(shape)
    return shapes
