"""Preview latency against `model.evaluate` on the same data, and a full sensitivity sweep.

    .venv/bin/python benchmarks/bench_preview.py [--skip-resnet] [--repeats 5]
    .venv/bin/python benchmarks/bench_preview.py --sweep-groups 6

`--sweep-groups N` runs only a sensitivity sweep of N ResNet50 groups (evenly spread,
the sweep's nine fractions, 500 samples), eagerly and then compiled (`Previewer.compile_min_macs`),
each from a fresh preview, against `model.evaluate` timed before, between and after.

Every figure comes from this one run: the preview is warmed first (as the app does in
the background), then each selection is a new plan, so a figure includes resolving the
plan and building its masks. `model.evaluate` runs once untimed (tracing) and is then
timed with the same batch size, alternating with the previews (medians of both).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from neuronviz.backend.analysis.sensitivity import sweep  # noqa: E402
from neuronviz.backend.model.data import Dataset, load_data  # noqa: E402
from neuronviz.backend.model.graph import flatten  # noqa: E402
from neuronviz.backend.model.trace import trace  # noqa: E402
from neuronviz.backend.scoring.preview import Previewer  # noqa: E402
from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.resources import demo_model  # noqa: E402

BATCH = 512


def _plans(pv: Previewer, layer: str, count: int) -> list[Plan]:
    """`count` different selections of a quarter of the layer's units."""
    n = len(pv.trace.layer_units[layer])
    rng = np.random.default_rng(0)
    return [Plan({layer: rng.choice(n, max(1, n // 4), replace=False)}) for _ in range(count)]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _timed_both(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def _paired(model, data: Dataset, pv: Previewer, layer: str, repeats: int, clicks: int = 1):
    """Median (wall, CPU) of a preview and of evaluate, measured alternately so that both
    see the same machine load."""
    plans = _plans(pv, layer, repeats * clicks + 1)
    pv.score(plans.pop())  # the frontier of this layer's first affected call, if warm() left it out
    model.evaluate(data.x, data.y, batch_size=BATCH, verbose=0)  # trace once
    previews, evaluations = [], []
    for i in range(repeats):
        evaluations.append(
            _timed_both(lambda: model.evaluate(data.x, data.y, batch_size=BATCH, verbose=0))
        )
        for plan in plans[i * clicks : (i + 1) * clicks]:
            previews.append(_timed_both(lambda plan=plan: pv.score(plan)))
    med = statistics.median
    return (med(p[0] for p in previews), med(p[1] for p in previews)), (
        med(e[0] for e in evaluations),
        med(e[1] for e in evaluations),
    )


def _row(label: str, n: int, preview: tuple, evaluate: tuple) -> None:
    (pw, pc), (ew, ec) = preview, evaluate
    print(
        f"{label:<40} {n:>6} {pw * 1e3:>10.2f} {ew * 1e3:>10.1f} {ew / pw:>7.1f}x "
        f"{pc * 1e3:>10.2f} {ec * 1e3:>10.1f} {ec / max(pc, 1e-9):>7.1f}x"
    )


def bench_demo(repeats: int) -> None:
    model = keras.saving.load_model(demo_model())
    tr = trace(flatten(model))
    val = load_data("demo", model)
    big = Dataset(np.tile(val.x, (10, 1, 1, 1)), np.tile(val.y, 10), val.num_classes, "demo x10")
    pv = Previewer(model, tr, big, batch_size=BATCH)
    t = time.perf_counter()
    pv.warm()
    warm = time.perf_counter() - t
    dense, evaluate = _paired(model, big, pv, "dense", repeats, clicks=4)
    _row("demo CNN, Dense(512) 'dense'", big.n, dense, evaluate)
    conv, evaluate = _paired(model, big, pv, "conv2d", repeats)
    _row("demo CNN, first conv 'conv2d'", big.n, conv, evaluate)
    print(
        f"  (warm-up of the demo preview on {big.n} samples: {warm:.2f} s; evaluate {evaluate[0]:.2f} s; "
        f"cache {pv.cached_bytes / 2**20:.0f} MiB)"
    )
    small = Previewer(model, tr, val, batch_size=BATCH)
    t = time.perf_counter()
    small.warm()
    warm_small = time.perf_counter() - t
    click = statistics.median(
        _timed(lambda p=p: small.score(p)) for p in _plans(small, "dense", 40)
    )
    t = time.perf_counter()
    result = sweep(small, tr).run()
    took = time.perf_counter() - t
    points = sum(len(c.fractions) for c in result.curves)
    print(f"demo CNN, one click in 'dense' on {val.n} samples: {click * 1e3:.2f} ms")
    print(
        f"demo CNN, full sensitivity sweep on {val.n} samples ({len(result.curves)} groups, {points} points): "
        f"{took:.2f} s (+ {warm_small:.2f} s warm-up)"
    )


def bench_sweep(count: int) -> None:
    """Seconds per sweep score, eager and compiled, against `model.evaluate`."""
    model, data, tr = _resnet(500)
    model.evaluate(data.x, data.y, batch_size=BATCH, verbose=0)  # trace once
    probe = Previewer(model, tr, data, batch_size=BATCH)
    names = [c.name for c in sweep(probe, tr, fractions=(0.0,)).run().curves]
    names = names[:: max(1, len(names) // count)][:count]
    evaluate, runs = [], {}

    def timed_evaluate():
        evaluate.append(_timed(lambda: model.evaluate(data.x, data.y, batch_size=BATCH, verbose=0)))

    timed_evaluate()
    for mode in ("eager", "compiled"):
        pv = Previewer(model, tr, data, batch_size=BATCH)
        if mode == "eager":
            pv.compile_min_macs = float("inf")
        pv.baseline()
        t = time.perf_counter()
        runs[mode] = sweep(pv, tr, groups=names).run()
        took = time.perf_counter() - t
        traced = f", {pv._segments.traced} segments traced" if pv._segments else ""
        points = sum(1 for c in runs[mode].curves for k in c.removed if k > 0)
        timed_evaluate()
        ev = statistics.median(evaluate)
        print(
            f"ResNet50 64x64 sweep, {mode:<8} {len(names)} groups, {points} scores on {data.n} samples: "
            f"{took:.1f} s, {took / points:.2f} s per score = {took / points / ev:.2f}x evaluate "
            f"({ev:.2f} s){traced}"
        )
    loss = [
        np.subtract(a.loss, b.loss) for a, b in zip(*(r.curves for r in runs.values()), strict=True)
    ]
    print(f"  (largest loss difference, compiled - eager: {np.abs(loss).max():.1e})")


def _resnet(n: int):
    """ResNet50 at 64x64 with 10 classes, compiled, on `n` random samples; its trace."""
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    data = Dataset(
        rng.random((n, 64, 64, 3), dtype=np.float32), rng.integers(0, 10, n), 10, "random"
    )
    return model, data, trace(flatten(model))


def bench_resnet(repeats: int) -> None:
    model, data, tr = _resnet(1000)
    pv = Previewer(model, tr, data, batch_size=BATCH)
    t = time.perf_counter()
    pv.warm()
    warm = time.perf_counter() - t
    preview, evaluate = _paired(
        model, data, pv, "conv5_block1_1_conv", max(1, repeats // 2), clicks=2
    )
    _row("ResNet50 64x64, 'conv5_block1_1_conv'", data.n, preview, evaluate)
    print(
        f"  (warm-up of the ResNet50 preview: {warm:.2f} s; evaluate {evaluate[0]:.2f} s; "
        f"cache {pv.cached_bytes / 2**20:.0f} MiB)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-resnet", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sweep-groups", type=int, default=0)
    args = p.parse_args()
    if args.sweep_groups:
        bench_sweep(args.sweep_groups)
        return
    print(
        f"{'':<47} {'---------- wall clock ----------':>30} {'---- CPU time (all threads) ----':>30}"
    )
    print(
        f"{'selection':<40} {'n':>6} {'preview ms':>10} {'evaluate':>10} {'ratio':>8} "
        f"{'preview ms':>10} {'evaluate':>10} {'ratio':>8}"
    )
    bench_demo(args.repeats)
    if not args.skip_resnet:
        bench_resnet(args.repeats)


if __name__ == "__main__":
    main()
