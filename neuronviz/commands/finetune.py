"""`neuronviz finetune MODEL --data TRAIN --val VAL -o OUT [--epochs N] [--json]`

Fine-tunes a copy of MODEL (typically a pruned one) with early stopping on the
validation loss and saves the best weights. TRAIN and VAL: an .npz file (x, y), an
image folder, 'demo' (the bundled validation split) or 'demo-train' (the bundled
training split). Kernels of MODEL that are sparse (made by `neuronviz sparsify`) keep
their zeros exactly zero by default; --release-zeros lets them move, --keep-zeros keeps
every zero weight of every kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

from neuronviz.commands import add_output_arguments, check_data_source

DEMO_SOURCES = {"demo": "val", "demo-val": "val", "demo-train": "train"}


def add_arguments(p) -> None:
    p.add_argument("model", help="model file (.keras or .h5)")
    p.add_argument(
        "--data",
        required=True,
        help="training data: .npz (x, y), image folder, 'demo-train' or 'demo'",
    )
    p.add_argument(
        "--val",
        required=True,
        help="validation data for early stopping: .npz, image folder or 'demo'",
    )
    p.add_argument(
        "-o", "--output", required=True, help="where to save the fine-tuned model (.keras or .h5)"
    )
    p.add_argument(
        "--epochs", type=int, default=3, help="at most this many passes over TRAIN (default 3)"
    )
    p.add_argument(
        "--batch-size", type=int, default=64, help="samples per training step (default 64)"
    )
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    p.add_argument(
        "--patience",
        type=int,
        default=2,
        help="stop after this many epochs without a better validation loss",
    )
    zeros = p.add_mutually_exclusive_group()
    zeros.add_argument(
        "--release-zeros",
        action="store_true",
        help="let the zero weights of sparse kernels move (by default they stay zero)",
    )
    zeros.add_argument(
        "--keep-zeros",
        action="store_true",
        help="keep every zero weight of every kernel at zero, sparse or not",
    )
    add_output_arguments(p)


def load_split(source: str, model):
    """A Dataset from a path, 'demo' / 'demo-val' or 'demo-train'."""
    import neuronviz.api as nv
    from neuronviz.resources import demo_train, demo_val

    split = DEMO_SOURCES.get(str(source))
    if split is not None:
        return nv.load_data(demo_train() if split == "train" else demo_val(), model)
    return nv.load_data(source, model)


def check_output(output, *inputs) -> Path:
    """Refuse (before any work) an output path that is one of the inputs."""
    from neuronviz.errors import NeuronvizError

    out = Path(output)
    for src in inputs:
        if src and out.exists() and Path(src).exists() and out.resolve() == Path(src).resolve():
            raise NeuronvizError(
                f"Refusing to overwrite the input file '{out}'. Choose another output name."
            )
    return out


def run(args) -> int:
    import sys

    from neuronviz.errors import NeuronvizError

    out = check_output(args.output, args.model)
    for name, value in (
        ("epochs", args.epochs),
        ("batch-size", args.batch_size),
        ("patience", args.patience),
    ):
        if value < 1:
            raise NeuronvizError(f"Expected --{name} >= 1. Received: {value}")
    if not args.lr > 0:
        raise NeuronvizError(f"Expected --lr > 0. Received: {args.lr}")
    for source in (args.data, args.val):
        if source not in DEMO_SOURCES:
            check_data_source(source)

    import neuronviz.api as nv

    model = nv.load_model(args.model, unsafe=args.unsafe)
    train, val = load_split(args.data, model), load_split(args.val, model)
    if args.release_zeros:
        masks = None
    else:
        masks = nv.masks_from_zeros(model) if args.keep_zeros else nv.sparse_masks(model)
        if masks and not args.json:
            print(
                f"keeping {nv.describe_masks(masks)} at zero (--release-zeros lets them move)",
                file=sys.stderr,
            )
    job = nv.finetune(
        model,
        train,
        val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        masks=masks,
    )
    for event in job.run():
        if args.json or event.kind not in ("start", "epoch"):
            continue
        if event.kind == "start":
            print(
                f"before      val_loss {event.val_loss:.4f}  val_acc {event.val_accuracy:.4f}",
                file=sys.stderr,
            )
        else:
            print(
                f"epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  acc {event.accuracy:.4f}  "
                f"val_loss {event.val_loss:.4f}  val_acc {event.val_accuracy:.4f}",
                file=sys.stderr,
            )
    saved = nv.save_model(job.result, out, source=args.model)
    before, best = job.initial, job.best
    if args.json:
        print(
            json.dumps(
                {
                    "before": {"loss": before["loss"], "accuracy": before["accuracy"]},
                    "after": {"loss": best["loss"], "accuracy": best["accuracy"]},
                    "best_epoch": best["epoch"],
                    "epochs_run": len(job.history) - 1,
                    "stopped": job.stopped,
                    "train_samples": train.n,
                    "val_samples": val.n,
                    "kept_zeros": bool(masks),
                    "zero_weights_kept": sum(m.size - int(m.sum()) for m in (masks or {}).values()),
                    "output": str(saved),
                }
            )
        )
        return 0
    print(
        f"val accuracy {before['accuracy']:.4f} -> {best['accuracy']:.4f}, "
        f"val loss {before['loss']:.4f} -> {best['loss']:.4f} (best epoch {best['epoch']}, {job.stopped})"
    )
    print(f"saved {saved}")
    return 0
