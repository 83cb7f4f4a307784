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
