"""CLI subcommands: one module each, with add_arguments(parser) and run(args) -> int."""


def add_output_arguments(p, json_help: str = "print one JSON object instead of a summary") -> None:
    """The options every subcommand shares: --json and --unsafe."""
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument(
        "--unsafe",
        action="store_true",
        help="allow code (Lambda layers) stored in the model file to run",
    )
