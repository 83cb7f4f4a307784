"""Budget plans: the demo at --target macs=0.5 against uniform smallest-L2 pruning at the
same MACs (with the budget's rounding, and without rounding on either side or only on the
uniform side), the same with --refine (units re-chosen by exact loss on the data), all
also scored on the training split the plans never saw, and the planning time on ResNet50 (224x224, random weights, no statistics).

Run: .venv/bin/python benchmarks/bench_budget.py [--target macs=0.5] [--criterion l2]
Prints figures measured in this one run (machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import neuronviz.api as nv  # noqa: E402
from neuronviz.resources import demo_model, demo_train  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="macs=0.5")
    ap.add_argument("--criterion", default="l2")
    ap.add_argument("--skip-resnet", action="store_true")
    a = ap.parse_args()

    model = nv.load_model(demo_model())
    tr = nv.analyze(model)
    data = nv.load_data("demo", model)
    base = nv.evaluate(model, data, trace=tr)
    bp = nv.plan_to_budget(model, a.target, criterion=a.criterion, data=data, trace=tr)
    ratio = bp.after.macs / bp.before.macs
    acc = nv.evaluate(model, data, bp.plan, trace=tr).accuracy
    # uniform: the same share of every group, smallest L2 first, without rounding and with
    # the budget's rounding, at the budget plan's MACs or fewer
    uni = nv.plan_to_budget(model, f"macs={ratio}", scope="layer", round_to=1, trace=tr)
    uni_acc = nv.evaluate(model, data, uni.plan, trace=tr).accuracy
    same = nv.plan_to_budget(model, a.target, scope="layer", round_to=bp.round_to, trace=tr)
    same_acc = nv.evaluate(model, data, same.plan, trace=tr).accuracy
    fine = nv.plan_to_budget(
        model, a.target, criterion=a.criterion, data=data, round_to=1, trace=tr
    )
    fine_ratio = fine.after.macs / fine.before.macs
    fine_acc = nv.evaluate(model, data, fine.plan, trace=tr).accuracy
    fine_uni = nv.plan_to_budget(model, f"macs={fine_ratio}", scope="layer", round_to=1, trace=tr)
    fine_uni_acc = nv.evaluate(model, data, fine_uni.plan, trace=tr).accuracy
    t0 = time.perf_counter()
    ref = nv.plan_to_budget(
        model, a.target, criterion=a.criterion, data=data, trace=tr, refine=True
    )
    ref_s = time.perf_counter() - t0
    ref_score = nv.evaluate(model, data, ref.plan, trace=tr)
    held = nv.load_data(demo_train(), model)  # data the plans never saw
    print(f"demo: baseline accuracy {base.accuracy:.4f} on {data.n} samples")
    print(
        f"  budget {a.target} ({a.criterion}, scope {bp.scope}, round_to {bp.round_to}): MACs ratio "
        f"{ratio:.4f}, accuracy {acc:.4f}; widths {_widths(model, bp.plan, tr)}"
    )
    print(
        f"  uniform smallest-L2, round_to {bp.round_to}, at MACs ratio "
        f"{same.after.macs / same.before.macs:.4f}: accuracy {same_acc:.4f}; widths "
        f"{_widths(model, same.plan, tr)}"
    )
    print(
        f"  uniform smallest-L2, no rounding, at MACs ratio {uni.after.macs / uni.before.macs:.4f}: "
        f"accuracy {uni_acc:.4f}; widths {_widths(model, uni.plan, tr)}"
    )
    print(f"  budget - uniform at the same rounding: {acc - same_acc:+.4f}   (target >= 0)")
    print(f"  budget - uniform without rounding:     {acc - uni_acc:+.4f}")
    print(
        f"  without rounding on both sides: budget (scope {fine.scope}) at MACs {fine_ratio:.4f}: "
        f"{fine_acc:.4f}, uniform at MACs {fine_uni.after.macs / fine_uni.before.macs:.4f}: "
        f"{fine_uni_acc:.4f}, difference {fine_acc - fine_uni_acc:+.4f}   (target >= 0)"
    )
    print(
        f"  budget {a.target} with --refine ({ref_s:.1f} s): MACs ratio "
        f"{ref.after.macs / ref.before.macs:.4f}, accuracy {ref_score.accuracy:.4f}, loss "
        f"{ref_score.loss:.4f}; widths {_widths(model, ref.plan, tr)}; refined {ref.refined}"
    )
    print(f"  refined budget - uniform without rounding: {ref_score.accuracy - uni_acc:+.4f}")
    print(f"  on the {held.n} training samples (not used to plan):")
    for name, plan in (("budget", bp.plan), ("refined", ref.plan), ("uniform", uni.plan)):
        h = nv.evaluate(model, held, plan, trace=tr)
        print(f"    {name:<8} accuracy {h.accuracy:.4f}, loss {h.loss:.4f}")
    if a.skip_resnet:
        return
    resnet = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=1000)
    t0 = time.perf_counter()
    rt = nv.analyze(resnet)
    t1 = time.perf_counter()
    rbp = nv.plan_to_budget(resnet, a.target, trace=rt)
    t2 = time.perf_counter()
    print(
        f"ResNet50 224x224: plan to {a.target} in {t2 - t1:.2f} s (trace {t1 - t0:.2f} s; "
        f"no statistics needed for l2), MACs ratio {rbp.after.macs / rbp.before.macs:.4f}   "
        "(target < 10 s)"
    )


def _widths(model, plan, tr) -> str:
    r = nv.prune(model, plan, tr)
    return ", ".join(f"{k} {b}" for k, (_, b) in r.widths().items() if "pool" not in k)


if __name__ == "__main__":
    main()
