"""Preview latency against `model.evaluate` on the same data, and a full sensitivity sweep.

    .venv/bin/python benchmarks/bench_preview.py [--skip-resnet] [--repeats 5]

Every figure comes from this one run: the preview is warmed first (as the app does in
the background), then each selection is a new plan, so a figure includes resolving the
plan and building its masks. `model.evaluate` runs once untimed (tracing) and is then
timed with the same batch size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from neuronviz.backend.data import Dataset, load_data  # noqa: E402
from neuronviz.backend.graph import flatten  # noqa: E402
from neuronviz.backend.preview import Previewer  # noqa: E402
from neuronviz.backend.sensitivity import sweep  # noqa: E402
from neuronviz.backend.trace import trace  # noqa: E402
from neuronviz.core.plan import Plan  # noqa: E402
from neuronviz.resources import demo_model  # noqa: E402

BATCH = 512


def _median_time(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _evaluate_time(model, data: Dataset, repeats: int) -> float:
    model.evaluate(data.x, data.y, batch_size=BATCH, verbose=0)  # trace once
    return _median_time(lambda i: model.evaluate(data.x, data.y, batch_size=BATCH, verbose=0), repeats)


def _preview_time(pv: Previewer, layer: str, repeats: int) -> float:
    n = len(pv.trace.layer_units[layer])
    rng = np.random.default_rng(0)
    plans = [Plan({layer: rng.choice(n, max(1, n // 4), replace=False)}) for _ in range(repeats + 1)]
    pv.score(plans[-1])  # the frontier of this layer's first affected call, if warm() left it out
    return _median_time(lambda i: pv.score(plans[i]), repeats)


def _row(label: str, n: int, preview: float, evaluate: float) -> None:
    print(f"{label:<44} {n:>6} {preview * 1e3:>11.2f} {evaluate * 1e3:>11.1f} {evaluate / preview:>9.1f}x")


def bench_demo(repeats: int) -> None:
    model = keras.saving.load_model(demo_model())
    tr = trace(flatten(model))
    val = load_data("demo", model)
    big = Dataset(np.tile(val.x, (10, 1, 1, 1)), np.tile(val.y, 10), val.num_classes, "demo x10")
    pv = Previewer(model, tr, big, batch_size=BATCH)
    t = time.perf_counter()
    pv.warm()
    warm = time.perf_counter() - t
    evaluate = _evaluate_time(model, big, repeats)
    _row("demo CNN, Dense(512) 'dense'", big.n, _preview_time(pv, "dense", repeats * 4), evaluate)
    _row("demo CNN, first conv 'conv2d'", big.n, _preview_time(pv, "conv2d", repeats), evaluate)
    print(f"  (warm-up of the demo preview on {big.n} samples: {warm:.2f} s; evaluate {evaluate:.2f} s; "
          f"cache {pv.cached_bytes / 2**20:.0f} MiB)")
    small = Previewer(model, tr, val, batch_size=BATCH)
    t = time.perf_counter()
    small.warm()
    warm_small = time.perf_counter() - t
    click = _preview_time(small, "dense", repeats * 4)
    t = time.perf_counter()
    result = sweep(small, tr).run()
    took = time.perf_counter() - t
    points = sum(len(c.fractions) for c in result.curves)
    print(f"demo CNN, one click in 'dense' on {val.n} samples: {click * 1e3:.2f} ms")
    print(f"demo CNN, full sensitivity sweep on {val.n} samples ({len(result.curves)} groups, {points} points): "
          f"{took:.2f} s (+ {warm_small:.2f} s warm-up)")


def bench_resnet(repeats: int) -> None:
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    data = Dataset(rng.random((1000, 64, 64, 3), dtype=np.float32), rng.integers(0, 10, 1000), 10, "random")
    tr = trace(flatten(model))
    pv = Previewer(model, tr, data, batch_size=BATCH)
    t = time.perf_counter()
    pv.warm()
    warm = time.perf_counter() - t
    evaluate = _evaluate_time(model, data, max(1, repeats // 2))
    _row("ResNet50 64x64, 'conv5_block1_1_conv'", data.n, _preview_time(pv, "conv5_block1_1_conv", repeats), evaluate)
    print(f"  (warm-up of the ResNet50 preview: {warm:.2f} s; evaluate {evaluate:.2f} s; "
          f"cache {pv.cached_bytes / 2**20:.0f} MiB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-resnet", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(f"{'selection':<44} {'n':>6} {'preview ms':>11} {'evaluate ms':>11} {'speed-up':>10}")
    bench_demo(args.repeats)
    if not args.skip_resnet:
        bench_resnet(args.repeats)


if __name__ == "__main__":
    main()
