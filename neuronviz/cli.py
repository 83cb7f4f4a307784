"""Command line: `neuronviz prune|inspect|evaluate|finetune|sparsify ...`, or
`neuronviz [MODEL] [--data DATA] [--demo]` to open the desktop app.

Every refusal is one line on stderr and a non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

# subcommand -> module in neuronviz.commands with add_arguments(parser) and run(args) -> int
COMMANDS = {
    "prune": "Remove units and save a physically smaller model.",
    "inspect": "Per-layer units, groups, params, MACs and unit statistics.",
    "evaluate": "Accuracy and loss of the model with units masked.",
    "finetune": "Fine-tune a (pruned) model to recover accuracy.",
    "sparsify": "Zero the smallest weights (unstructured magnitude pruning).",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"neuronviz: error: {message}\n")


def _gui_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="neuronviz",
        description="Look inside Keras models and make them smaller by removing neurons. "
        "Subcommands: " + ", ".join(COMMANDS) + " (neuronviz SUBCOMMAND --help).",
    )
    p.add_argument("model", nargs="?", help="model file to open (.keras or .h5)")
    p.add_argument("--data", help="validation data (.npz with x and y, or an image folder)")
    p.add_argument("--demo", action="store_true", help="open the bundled demo model and data")
    p.add_argument(
        "--unsafe",
        action="store_true",
        help="allow code (Lambda layers) stored in the model file to run",
    )
    p.add_argument("--version", action="version", version=_version())
    from neuronviz.commands import add_verbose_argument

    add_verbose_argument(p)
    return p


def _version() -> str:
    from neuronviz import __version__

    return f"neuronviz {__version__}"


def _run(fn, args) -> int:
    from neuronviz.errors import NeuronvizError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            code = fn(args)
        for w in caught:
            if w.category is UserWarning and "neuronviz" in str(w.filename):
                print(f"neuronviz: warning: {w.message}", file=sys.stderr)
        return code or 0
    except NeuronvizError as e:
        print(f"neuronviz: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuronviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `neuronviz inspect ... | head`: the reader left
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:  # no tracebacks for users
        line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"neuronviz: internal error: {type(e).__name__}: {line[:200]}", file=sys.stderr)
        return 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--verbose" in argv:  # before anything imports TensorFlow
        import os

        import neuronviz

        os.environ["NEURONVIZ_VERBOSE"] = "1"
        neuronviz.configure_environment()
    if argv and argv[0] in COMMANDS:
        name = argv[0]
        module = importlib.import_module(f"neuronviz.commands.{name}")
        p = _Parser(prog=f"neuronviz {name}", description=COMMANDS[name])
        module.add_arguments(p)
        args = p.parse_args(argv[1:])
        return _run(module.run, args)
    args = _gui_parser().parse_args(argv)

    def launch(a):
        try:
            from neuronviz.gui.app import run_app
        except ImportError as e:
            from neuronviz.errors import NeuronvizError

            raise NeuronvizError(
                f"The desktop app needs PySide6 and pyqtgraph: pip install 'neuronviz[gui]' ({e})"
            ) from None
        return run_app(model=a.model, data=a.data, demo=a.demo, unsafe=a.unsafe)

    return _run(launch, args)


if __name__ == "__main__":
    sys.exit(main())
