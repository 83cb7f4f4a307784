"""Time and peak memory of the activation-statistics pass (neuronviz.backend.analysis.stats).

    .venv/bin/python benchmarks/bench_stats.py [--samples 1000] [--batch-size 256] [--json OUT]

Cases: keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10) on
random samples, and the bundled demo CNN on its 1,000 validation images. Each case runs
in a fresh process so that peak-RSS figures are its own. Memory is reported as
Wall time depends on other load on the machine; cpu_seconds (all threads) less so.
- ratio_to_predict: the pass's wall time over model.predict's on the same data and batch
  size, both warm, measured in the same process right after it,
- rss_peak_delta_mb: peak resident memory during the pass minus the resident memory just
  before it (sampled every 5 ms from /proc/self/statm; TensorFlow's allocations included),
- tracemalloc_peak_mb: peak of Python/NumPy allocations during the pass,
- per_sample_mb: the (N, units) float32 matrices the result keeps by design,
- all_activations_mb: what holding every layer-with-units output of the whole set
  would take (what the batched pass avoids).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

MB = 1 << 20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakRSS:
    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, _rss(), threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _case(name: str, samples: int, batch_size: int) -> dict:
    import gc

    import keras
    import numpy as np

    from neuronviz.backend.analysis.stats import StatsJob
    from neuronviz.backend.model.graph import flatten
    from neuronviz.backend.model.trace import trace

    if name == "resnet50":
        model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
        x = np.random.default_rng(0).random((samples, 64, 64, 3), dtype=np.float32)
    else:
        from neuronviz.resources import demo_model, demo_val

        model = keras.saving.load_model(demo_model())
        x = np.load(demo_val())["x"][:samples]
    tr = trace(flatten(model))
    job = StatsJob(model, tr, x[:2], batch_size=2)  # warm-up: first-call graph building
    job.run_all()
    job = StatsJob(model, tr, x, batch_size=batch_size)
    gc.collect()
    before = _rss()
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    with _PeakRSS() as peak:
        stats = job.run_all()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    model.predict(x[:2], batch_size=2, verbose=0)  # warm-up, as for the pass
    t0 = time.perf_counter()
    model.predict(x, batch_size=batch_size, verbose=0)
    predict_seconds = time.perf_counter() - t0
    units = sum(len(s.mean) for s in stats.values())
    all_acts = (
        sum(int(np.prod(tr.graph.first_call(p).output_shapes[0][1:])) for p in stats) * len(x) * 4
    )
    return {
        "case": name,
        "samples": len(x),
        "batch_size": batch_size,
        "layers_with_units": len(stats),
        "units": units,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 1),
        "predict_seconds": round(predict_seconds, 2),
        "ratio_to_predict": round(seconds / predict_seconds, 2),
        "samples_per_s": round(len(x) / seconds, 1),
        "rss_before_mb": round(before / MB, 1),
        "rss_peak_delta_mb": round((peak.peak - before) / MB, 1),
        "tracemalloc_peak_mb": round(traced_peak / MB, 1),
        "per_sample_mb": round(sum(s.per_sample.nbytes for s in stats.values()) / MB, 1),
        "all_activations_mb": round(all_acts / MB, 1),
        "peak_live_tensors": job.peak_live,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--cases", default="resnet50,demo")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(_case(a.child, a.samples, a.batch_size)))
        return
    results = []
    for case in a.cases.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            case,
            "--samples",
            str(a.samples),
            "--batch-size",
            str(a.batch_size),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"{r['case']:<9} {r['samples']} samples, batch {r['batch_size']}: {r['seconds']} s "
            f"({r['samples_per_s']}/s, {r['cpu_seconds']} s CPU; predict {r['predict_seconds']} s, "
            f"ratio {r['ratio_to_predict']}x), {r['layers_with_units']} layers / {r['units']} units; "
            f"peak RSS +{r['rss_peak_delta_mb']} MB, tracemalloc peak {r['tracemalloc_peak_mb']} MB "
            f"(per_sample {r['per_sample_mb']} MB; all activations would be {r['all_activations_mb']} MB)"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
