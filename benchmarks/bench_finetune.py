"""Accuracy recovery, latency and file size on the demo CNN.

    .venv/bin/python benchmarks/bench_finetune.py [--epochs 2] [--repeats 50] [--json out.json]

Reports validation accuracy before pruning, after removing 50% and 80% of the Dense(512)
units with the lowest L2 norm ||kernel[:, j]||_2, and after fine-tuning each on the
training split; then CPU latency (batch 32, median of repeats) and file sizes (.keras raw
and gzip, TFLite) of the original, the 80%-pruned and an 80%-sparsified model.
All .keras files are written the same way (model.save of a compiled model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def latencies_ms(models: dict, x, repeats: int) -> dict[str, float]:
    """Median wall time (ms) of one forward pass of each model on `x` (traced tf.functions),
    measured round-robin so that load from other processes hits every model alike."""
    import tensorflow as tf

    xt = tf.constant(x)
    fns = {name: tf.function(lambda t, m=m: m(t, training=False)) for name, m in models.items()}
    return _round_robin({name: (lambda f=f: f(xt).numpy()) for name, f in fns.items()}, repeats)


def tflite_latencies_ms(flatbuffers: dict, x, repeats: int) -> dict[str, float]:
    import warnings

    import tensorflow as tf

    calls = {}
    for name, data in flatbuffers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interp = tf.lite.Interpreter(model_content=data, num_threads=os.cpu_count())
        inp = interp.get_input_details()[0]
        interp.resize_tensor_input(inp["index"], x.shape)
        interp.allocate_tensors()

        def call(interp=interp, index=inp["index"]):
            interp.set_tensor(index, x)
            interp.invoke()

        calls[name] = call
    return _round_robin(calls, repeats)


def _round_robin(calls: dict, repeats: int) -> dict[str, float]:
    for call in calls.values():
        for _ in range(5):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args(argv)

    import gzip

    import keras
    import tensorflow as tf

    import neuronviz.api as nv
    from neuronviz.backend.recovery.finetune import FinetuneJob, evaluate
    from neuronviz.backend.recovery.schedule import l2_scores
    from neuronviz.backend.recovery.sparsity import (
        model_file_size,
        prunable_kernels,
        sparsify,
        tflite_bytes,
    )
    from neuronviz.resources import demo_model, demo_train, demo_val

    keras.utils.set_random_seed(0)
    model = nv.load_model(demo_model())
    tr, va = np.load(demo_train()), np.load(demo_val())
    train, val = (tr["x"], tr["y"]), (va["x"], va["y"])
    out: dict = {
        "cpu_threads": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }

    t0 = time.perf_counter()
    out["accuracy"] = {"original": evaluate(model, val)}
    order = np.argsort(l2_scores(model, "dense"), kind="stable")
    pruned = {}
    for frac in (0.5, 0.8):
        k = int(round(frac * 512))
        res = nv.prune(model, {"dense": order[:k].tolist()})
        pruned[frac] = res.model
        before_ft = evaluate(res.model, val)
        job = FinetuneJob(
            res.model, train, val, epochs=args.epochs, patience=args.epochs, learning_rate=1e-4
        )
        tuned = job.run_all()
        out["accuracy"][f"pruned_{int(frac * 100)}"] = before_ft
        out["accuracy"][f"pruned_{int(frac * 100)}_finetuned"] = evaluate(tuned, val)
        out["accuracy"][f"pruned_{int(frac * 100)}_params"] = int(res.model.count_params())
    sparse = {}
    for scope in ("layer", "global"):
        sparse[scope] = sparsify(model, 0.8, scope=scope)
        key = f"sparse_80_{scope}"
        out["accuracy"][key] = evaluate(sparse[scope].model, val)
        job = FinetuneJob(
            sparse[scope].model,
            train,
            val,
            epochs=args.epochs,
            patience=args.epochs,
            masks=sparse[scope].masks,
        )
        tuned = job.run_all()
        out["accuracy"][f"{key}_finetuned"] = evaluate(tuned, val)
        kernels = prunable_kernels(tuned)
        out["accuracy"][f"{key}_zeros_kept"] = all(
            bool(np.all(kernels[n].numpy()[~m] == 0)) for n, m in sparse[scope].masks.items()
        )
    out["accuracy_seconds"] = round(time.perf_counter() - t0, 1)

    # Extra, to show where the time goes: the convolutions dominate this CNN's MACs.
    conv_order = np.argsort(l2_scores(model, "conv2d_1"), kind="stable")
    both = nv.prune(
        model, {"dense": order[:410].tolist(), "conv2d_1": conv_order[:32].tolist()}
    ).model
    models = {
        "original": model,
        "pruned_80": pruned[0.8],
        "sparse_80": sparse["layer"].model,
        "pruned_80+conv50": both,
    }
    out["macs"] = {name: int(nv.counts(m).macs) for name, m in models.items()}
    out["params"] = {name: int(m.count_params()) for name, m in models.items()}
    x = va["x"][:32]
    out["latency_ms_batch32"] = latencies_ms(models, x, args.repeats)
    out["keras_file_bytes"] = {name: model_file_size(m).to_dict() for name, m in models.items()}
    flat = {name: tflite_bytes(m) for name, m in models.items()}
    flat["sparse_80_tfl_sparse"] = tflite_bytes(sparse["layer"].model, sparse_encoding=True)
    out["tflite_bytes"] = {
        name: {"raw": len(b), "gzip": len(gzip.compress(b, 6, mtime=0))} for name, b in flat.items()
    }
    out["tflite_latency_ms_batch32"] = tflite_latencies_ms(flat, x, args.repeats)

    _print(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


def _print(out: dict) -> None:
    acc = out["accuracy"]
    print(f"TensorFlow {out['tensorflow']}, Keras {out['keras']}, {out['cpu_threads']} CPU threads")
    print("\nvalidation accuracy (demo val, 1000 images)")
    rows = [
        ("original", "original"),
        ("dense -50% units", "pruned_50"),
        ("  + fine-tuned", "pruned_50_finetuned"),
        ("dense -80% units", "pruned_80"),
        ("  + fine-tuned", "pruned_80_finetuned"),
        ("80% sparse, per layer", "sparse_80_layer"),
        ("  + masked fine-tuned", "sparse_80_layer_finetuned"),
        ("80% sparse, global", "sparse_80_global"),
        ("  + masked fine-tuned", "sparse_80_global_finetuned"),
    ]
    for label, key in rows:
        print(f"  {label:<24} acc {acc[key]['accuracy']:.4f}  loss {acc[key]['loss']:.4f}")
    kept = acc["sparse_80_layer_zeros_kept"] and acc["sparse_80_global_zeros_kept"]
    print(f"  (zeros kept exactly through masked fine-tuning: {kept}; {acc_seconds(out)})")
    print("\nCPU latency, batch 32, median (ms); file sizes (MB)")
    print(
        f"  {'model':<21} {'MMACs':>6} {'keras ms':>9} {'tflite ms':>10} {'.keras raw':>11} {'.keras gz':>10} "
        f"{'tflite raw':>11} {'tflite gz':>10}"
    )

    def mb(v):
        return f"{v / 1e6:.2f}" if v is not None else "-"

    for name in ("original", "pruned_80", "sparse_80", "sparse_80_tfl_sparse", "pruned_80+conv50"):
        k = out["keras_file_bytes"].get(name, {"raw": None, "gzip": None})
        t = out["tflite_bytes"][name]
        ms = out["latency_ms_batch32"].get(name)
        macs = out["macs"].get(name)
        print(
            f"  {name:<21} {(f'{macs / 1e6:.1f}' if macs else '-'):>6} {(f'{ms:.2f}' if ms is not None else '-'):>9} "
            f"{out['tflite_latency_ms_batch32'][name]:>10.2f} {mb(k['raw']):>11} {mb(k['gzip']):>10} "
            f"{mb(t['raw']):>11} {mb(t['gzip']):>10}"
        )


def acc_seconds(out: dict) -> str:
    return f"accuracy part {out['accuracy_seconds']} s"


if __name__ == "__main__":
    sys.exit(main())
