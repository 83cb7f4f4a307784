"""Surgery time against the Keras rebuild floor, and the pruned model's CPU latency
against its MACs ratio. ResNet50 (weights=None, 224x224), 30% of every prunable group.

Run: .venv/bin/python benchmarks/bench_surgery.py [--size 224] [--fraction 0.3] [--round-to 1,8,16]
Prints ratios measured in this one run (machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import neuronviz.api as nv  # noqa: E402


def lowest_norm_plan(tr, fraction: float) -> nv.Plan:
    """The given share of every removable group, smallest L2 kernel norm first."""
    remove = {}
    for g in tr.units.groups:
        if g.blocked or g.reaches_output:
            continue
        layer = tr.graph.layers[g.sources[0]]
        kernel = layer.get_weights()[0]
        norms = np.sqrt((kernel.reshape(-1, kernel.shape[-1]) ** 2).sum(0))
        k = min(int(round(g.size * fraction)), g.size - 1)
        if k:
            remove[g.sources[0]] = np.argsort(norms)[:k].tolist()
    return nv.Plan(remove)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--round-to",
        default=f"1,{nv.DEFAULT_ROUND_TO},16",
        help="roundings to time, comma-separated (1 = none)",
    )
    a = ap.parse_args()
    model = keras.applications.ResNet50(weights=None, input_shape=(a.size, a.size, 3), classes=1000)
    tr = nv.analyze(model)
    plan = lowest_norm_plan(tr, a.fraction)

    def floor():
        clone = keras.Model.from_config(model.get_config())
        clone.set_weights(model.get_weights())

    t_floor = best_of(floor, 3)
    t_prune = best_of(lambda: nv.prune(model, plan), 3)
    t_trace = best_of(lambda: nv.analyze(model), 3)
    result = nv.prune(model, plan, tr)
    print(f"ResNet50 {a.size}x{a.size}, {a.fraction:.0%} of {len(plan.remove)} groups removed")
    print(
        f"  params {result.before.params:,} -> {result.after.params:,}; MACs {result.before.macs:,} -> {result.after.macs:,}"
    )
    print(
        f"surgery  {t_prune:.2f} s (trace {t_trace:.2f} s); floor from_config+set_weights {t_floor:.2f} s"
    )
    print(f"  surgery / floor = {t_prune / t_floor:.2f}x   (target <= 3x)")

    # latency against MACs, per rounding (original and pruned timed interleaved, both warm)
    for n in [int(v) for v in a.round_to.split(",")]:
        p = plan if n <= 1 else nv.round_plan(model, plan, n, trace=tr)
        r = result if n <= 1 else nv.prune(model, p, tr)
        lat = nv.compare_latency(model, r, a.batch, runs=a.repeats, trace=tr)
        macs_ratio = r.after.macs / r.before.macs
        print(
            f"round_to {n:>2}: latency batch {a.batch}: original {lat.original_ms:.0f} ms, "
            f"pruned {lat.pruned_ms:.0f} ms; latency ratio {lat.ratio:.3f}, MACs ratio "
            f"{macs_ratio:.3f}, latency/MACs = {lat.ratio / macs_ratio:.2f}x   (target <= 1.1x)"
        )


if __name__ == "__main__":
    main()
