"""Heads and FFN neurons of a BERT-like classifier: preview, surgery, latency.

    .venv/bin/python benchmarks/bench_transformer.py [--repeats 3] [--pools cls,mean] [--json out.json]

The model: token and position embeddings, 4 post-LayerNorm encoder blocks of
keras.layers.MultiHeadAttention (hidden 256, 4 heads) and a GELU FFN (1024), then, as
BERT's classifier does, the first ([CLS]) token through a tanh pooler Dense, 2 classes;
random weights and 1,000 random sequences of 64 tokens. `--pools cls,mean` also
measures the same model with mean pooling over the tokens instead (the preview then
recomputes the last block for every token).
Figures: the preview of removing one head of the last block against `model.evaluate`
(medians, measured alternately; the preview is warmed first, as the app does), per
pooling; the surgery time of removing 50% of every block's FFN neurons and 25% of its heads (lowest
L2 norm), and CPU latency (batch 32, traced tf.function, median) before and after,
against the MACs ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from bench_finetune import _round_robin  # noqa: E402

import neuronviz.api as nv  # noqa: E402
from neuronviz.backend.model.data import Dataset  # noqa: E402
from neuronviz.backend.scoring.preview import Previewer  # noqa: E402

BLOCKS, HIDDEN, HEADS, FFN, TOKENS, VOCAB, N = 4, 256, 4, 1024, 64, 1000, 1000
L = keras.layers


def bert_like(pool: str = "cls") -> keras.Model:
    ids = keras.Input((TOKENS,), dtype="int32", name="token_ids")
    pos = keras.Input((TOKENS,), dtype="int32", name="positions")
    h = L.Add(name="embeddings")(
        [L.Embedding(VOCAB, HIDDEN, name="tok")(ids), L.Embedding(TOKENS, HIDDEN, name="pos")(pos)]
    )
    h = L.LayerNormalization(name="emb_ln")(h)
    for b in range(BLOCKS):
        a = L.MultiHeadAttention(HEADS, HIDDEN // HEADS, name=f"mha_{b}")(h, h)
        h = L.LayerNormalization(name=f"ln_a{b}")(L.Add(name=f"res_a{b}")([h, a]))
        f = L.Dense(FFN, activation="gelu", name=f"ffn_{b}")(h)
        f = L.Dense(HIDDEN, name=f"ffn_out_{b}")(f)
        h = L.LayerNormalization(name=f"ln_f{b}")(L.Add(name=f"res_f{b}")([h, f]))
    if pool == "cls":  # BERT: the [CLS] token through a tanh "pooler" Dense
        pooled = L.Dense(HIDDEN, activation="tanh", name="pooler")(h[:, 0, :])
    else:
        pooled = L.GlobalAveragePooling1D(name="pool")(h)
    out = L.Dense(2, name="classifier")(pooled)
    model = keras.Model([ids, pos], out, name=f"bert_like_{pool}")
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


def latencies_ms(models: dict, xs: list, repeats: int) -> dict[str, float]:
    """Median ms of one forward pass of each model on the inputs `xs` (traced tf.function)."""
    import tensorflow as tf

    ts = [tf.constant(a) for a in xs]
    fns = {n: tf.function(lambda a, b, m=m: m([a, b], training=False)) for n, m in models.items()}
    return _round_robin({n: (lambda f=f: f(*ts).numpy()) for n, f in fns.items()}, repeats)


def lowest_l2(layer, fraction: float, axis_units) -> list[int]:
    """The `fraction` of units with the lowest L2 norm of their weights (axis_units: the
    unit axis of the kernel)."""
    k = np.moveaxis(layer.get_weights()[0], axis_units, 0)
    norms = np.linalg.norm(k.reshape(len(k), -1), axis=1)
    return np.argsort(norms)[: int(len(norms) * fraction)].tolist()


def preview_vs_evaluate(model, data: Dataset, repeats: int) -> dict:
    """Median ms of previewing one head of the last block, and of `model.evaluate`."""
    tr = nv.analyze(model)
    pv = Previewer(model, tr, data, batch_size=256)
    t = time.perf_counter()
    pv.warm()
    out = {"preview_warm_s": round(time.perf_counter() - t, 2)}
    last = f"mha_{BLOCKS - 1}"
    model.evaluate(data.x, data.y, batch_size=256, verbose=0)  # trace once
    previews, evaluations = [], []
    for i in range(repeats):
        t = time.perf_counter()
        model.evaluate(data.x, data.y, batch_size=256, verbose=0)
        evaluations.append(time.perf_counter() - t)
        t = time.perf_counter()
        pv.score(nv.Plan({last: [i % HEADS]}))
        previews.append(time.perf_counter() - t)
    out["preview_one_head_ms"] = round(statistics.median(previews) * 1e3, 1)
    out["evaluate_ms"] = round(statistics.median(evaluations) * 1e3, 1)
    out["preview_speedup"] = round(out["evaluate_ms"] / out["preview_one_head_ms"], 1)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pools", default="cls", help="poolings to preview: cls, mean or cls,mean")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, (N, TOKENS)).astype("int32")
    pos = np.tile(np.arange(TOKENS, dtype="int32"), (N, 1))
    data = Dataset([ids, pos], rng.integers(0, 2, N), 2, "random")
    out = {"cpu_threads": os.cpu_count(), "samples": N, "tokens": TOKENS, "preview": {}}
    for pool in args.pools.split(","):
        keras.utils.set_random_seed(0)
        out["preview"][pool] = preview_vs_evaluate(bert_like(pool), data, args.repeats)
        print(pool, json.dumps(out["preview"][pool]), flush=True)

    keras.utils.set_random_seed(0)
    model = bert_like("cls")
    tr = nv.analyze(model)
    plan = {}
    for b in range(BLOCKS):
        plan[f"ffn_{b}"] = lowest_l2(model.get_layer(f"ffn_{b}"), 0.5, -1)
        mha = model.get_layer(f"mha_{b}")
        plan[f"mha_{b}"] = lowest_l2(mha._output_dense, 0.25, 0)  # rows of the output: heads
    t = time.perf_counter()
    result = nv.prune(model, nv.Plan(plan), tr)
    out["surgery_s"] = round(time.perf_counter() - t, 2)
    out["macs"] = {"before": result.before.macs, "after": result.after.macs}
    out["params"] = {"before": result.before.params, "after": result.after.params}
    x = [ids[:32], pos[:32]]
    lat = latencies_ms({"original": model, "pruned": result.model}, x, max(20, args.repeats * 10))
    out["latency_ms_batch32"] = {k: round(v, 2) for k, v in lat.items()}
    out["macs_ratio"] = round(result.after.macs / result.before.macs, 3)
    out["latency_ratio"] = round(lat["pruned"] / lat["original"], 3)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
