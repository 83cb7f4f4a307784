"""The instant masked preview: the score of the model with a plan's units masked.

A selection changes nothing before the first call it affects (`Masker.first_affected`),
so only calls from there on are rerun. Their inputs, the *frontier* of that call (every
tensor made before it and used by it or later, or a model output), are computed once
without masks and kept over the whole dataset within a memory budget (frontiers.py).
A missing frontier is computed from the nearest earlier cached one, or from the inputs;
one too big for the budget is streamed batch by batch instead. Scores equal those of
the physically pruned model.

Where zeroed input channels would cost real work (a big Dense or convolution after the
removed units), that layer runs instead as a copy with those input channels sliced off,
which is what the pruned model computes. Calls run on the sequence positions the outputs
read only (positions.py: a [CLS]-pooled model's last block computes one query), and
removing heads of an attention layer subtracts their cached terms (heads.py).

`score(plan, compiled=True)` is for many plans in a row (a sweep): where the rerun is
big enough to pay for tracing, and needs neither positions, head terms nor local
copies, the calls run as compiled segments with the masks as arguments (segments.py),
and so do the frontiers they start from.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from neuronviz.backend.model.data import Dataset
from neuronviz.backend.model.graph import Key
from neuronviz.backend.model.trace import Trace
from neuronviz.backend.scoring.evaluation import scorer
from neuronviz.backend.scoring.frontiers import FrontierCache
from neuronviz.backend.scoring.heads import HeadTerms, has_heads, removed_heads
from neuronviz.backend.scoring.positions import Positions
from neuronviz.backend.scoring.segments import Segments, Uncompilable
from neuronviz.backend.surgery.masking import Masker, pruned_layer
from neuronviz.backend.surgery.sources import ConvRule, ConvTransposeRule, DenseRule, SeparableRule
from neuronviz.core.metrics import Score
from neuronviz.core.plan import Plan
from neuronviz.core.prunable import why_not_prunable
from neuronviz.core.units import Selection
from neuronviz.errors import NeuronvizError

_MASKERS_KEPT = 16
_SLICEABLE = (DenseRule, ConvRule, ConvTransposeRule, SeparableRule)


class Previewer:
    """Scores plans on `dataset` by rerunning only the calls a selection affects.

    Thread-safe: `score`, `baseline` and `warm` may be called from worker threads
    (calls are serialised). `calls_run` counts executed calls by index, per batch.
    `select(plan)` resolves plans (default: `trace.select`; a Session passes its cache).
    """

    work_bytes = 32 << 20  # a cheap tail may run in fewer, larger batches up to this size
    slice_min_macs = 2e8  # slice a layer's removed inputs off when that saves this many MACs
    compile_min_macs = 2e10  # compiled runs: only for reruns of at least this many MACs
    compiled_rows = 128  # compiled runs: rows per batch (measured faster than 512 on ResNet50)

    def __init__(
        self,
        model: keras.Model,
        trace: Trace,
        dataset: Dataset,
        budget_bytes: int = 1 << 30,
        batch_size: int = 512,
        select: Callable[[Plan], Selection] | None = None,
    ):
        if dataset is None or dataset.n == 0:
            raise NeuronvizError(
                "Expected validation data with at least one sample for the preview."
            )
        if len(dataset.inputs) != len(trace.graph.inputs):
            raise NeuronvizError(
                f"Expected data for {len(trace.graph.inputs)} model inputs. Received: {len(dataset.inputs)}"
            )
        for i, (a, shape) in enumerate(
            zip(dataset.inputs, trace.graph.declared_shapes, strict=True)
        ):
            got = tuple(a.shape[1:])
            if len(got) != len(shape) - 1 or any(
                d is not None and d != g for g, d in zip(got, shape[1:], strict=True)
            ):
                raise NeuronvizError(
                    f"Expected samples of shape {tuple(shape[1:])} for model input {i}. "
                    f"Received: {tuple(a.shape[1:])}"
                )
        self.model, self.trace, self.dataset = model, trace, dataset
        self._select = select or trace.select  # a session passes its one plan cache
        self.graph = trace.graph
        self.batch_size = int(batch_size)
        self.calls_run: Counter = Counter()
        self._score_outputs = scorer(model, self.graph, dataset.task)
        self._lock = threading.RLock()
        self._baseline: Score | None = None
        self._maskers: OrderedDict[Plan, Masker] = OrderedDict()
        self._sliced: weakref.WeakKeyDictionary = (
            weakref.WeakKeyDictionary()
        )  # masker -> {call: ...}
        inputs = dict(zip(self.graph.inputs, dataset.inputs, strict=True))
        self.cache = FrontierCache(self.graph, inputs, budget_bytes)  # also holds head terms
        self.keys_at = self.cache.keys_at  # the frontier of call t
        self._frontiers = self.cache.frontiers  # t -> keys (LRU order)
        self._heads: OrderedDict[int, HeadTerms] = self.cache.extras  # attention call -> terms
        self._segments: Segments | None = None  # compiled runs, made on first use
        self.positions = Positions.for_data(self.graph, dataset.inputs)

    # ---- public -----------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.dataset.n

    @property
    def budget_bytes(self) -> int:
        return self.cache.budget_bytes

    @property
    def cached_bytes(self) -> int:
        return self.cache.nbytes

    def baseline(self) -> Score:
        """The score of the unmasked model."""
        with self._lock:
            if self._baseline is None:
                self._baseline = self.score(Plan())
            return self._baseline

    def score(self, plan: Plan, compiled: bool = False) -> Score:
        """The score with `plan`'s units masked (raises NeuronvizError for a bad plan).
        `compiled`: more plans follow (a sweep), so run compiled where that pays."""
        with self._lock:
            masker = self.masker(plan)
            keep = (
                masker.selection.keep(self.trace.map(self.graph.outputs[0]))
                if masker.selection
                else None
            )
            y, scorer = self.dataset.y, self._score_outputs  # batch by batch: no outputs kept
            tallies = self._masked_outputs(
                masker, lambda out, lo: scorer.tally(out, y[lo : lo + len(out)], keep), compiled
            )
            return scorer.combine(tallies)

    def predict(self, plan: Plan) -> np.ndarray:
        """The masked model's first output over the whole dataset."""
        with self._lock:
            return self._masked_outputs(self.masker(plan))

    def first_affected(self, plan: Plan) -> int:
        """Index of the first call `plan` changes (len(calls) when only outputs change)."""
        return self.masker(plan).first_affected()

    def masker(self, plan: Plan) -> Masker:
        with self._lock:
            masker = self._maskers.get(plan)
            if masker is None:
                masker = Masker(self.trace, self._select(plan))
                self._maskers[plan] = masker
                while len(self._maskers) > _MASKERS_KEPT:
                    self._maskers.popitem(last=False)
            self._maskers.move_to_end(plan)
            return masker

    def warm(self, progress: Callable[[float], object] | None = None) -> None:
        """Compute the frontiers a click in any selectable layer needs, and the baseline."""
        last = len(self.graph.calls)
        for t in sorted(set(self._click_targets()) | {last}):
            with self._lock:
                self._ensure_frontier(t)
                if has_heads(self.trace, t):
                    self._head_terms(t)
            if progress is not None:  # the work so far is about the calls run so far
                progress(0.99 * t / max(last, 1))
        self.baseline()
        if progress is not None:
            progress(1.0)

    def clear(self) -> None:
        """Drop every cached frontier and score."""
        with self._lock:
            self.cache.clear()
            self._baseline = None
            self._maskers.clear()

    # ---- graph facts ------------------------------------------------------------------
    def _click_targets(self) -> list[int]:
        """First affected call of a one-unit selection in each selectable group."""
        out = []
        lu = self.trace.layer_units
        for g in self.trace.units.groups:
            if why_not_prunable(g, min_units=2):
                continue
            layer = next((s for s in g.sources + g.members if s in lu), None)
            if layer is None:
                continue
            try:
                out.append(
                    Masker(self.trace, self.trace.select(Plan({layer: [0]}))).first_affected()
                )
            except NeuronvizError:
                continue
        return out

    # ---- frontiers ---------------------------------------------------------------------
    def _ensure_frontier(self, t: int, compiled: bool = False) -> int:
        """Cache frontier `t` if the budget allows; return the frontier to start from."""
        return self.cache.ensure(
            t, lambda s, t, missing: self._compute_frontier(s, t, missing, compiled)
        )

    def _compute_frontier(self, s: int, t: int, missing: list, compiled: bool = False) -> dict:
        """Run calls s..t-1 (no masks) over all samples; the `missing` tensors' arrays."""
        rows = self._rows(s, t, self.compiled_rows if compiled else self.batch_size)
        hook = self._counting(None)
        arrays: dict[Key, np.ndarray] = {}
        for lo in range(0, self.n, rows):
            if compiled:
                values = self._compiled_run(self.cache.batch(s, lo, rows), s, t)
            else:
                values = self.graph.run(
                    None, start=s, stop=t, values=self.cache.batch(s, lo, rows), hook=hook
                )
            for k in missing:
                part = ops.convert_to_numpy(values[k])
                if k not in arrays:
                    arrays[k] = np.empty((self.n,) + part.shape[1:], dtype=part.dtype)
                arrays[k][lo : lo + len(part)] = part
        return arrays

    # ---- running ----------------------------------------------------------------------
    def _masked_outputs(self, masker: Masker, reduce=None, compiled: bool = False):
        """The masked first output over all samples; with `reduce(outputs, first_row)`,
        the list of its results per batch instead."""
        t, stop = masker.first_affected(), len(self.graph.calls)
        heads = removed_heads(self.trace, masker, t)
        if compiled and self._compiles(masker, t, heads):
            try:
                s = self._ensure_frontier(t, compiled=True)
                return self._batches(
                    s,
                    self._rows(s, stop, self.compiled_rows),
                    lambda values, lo: self._compiled_run(values, s, stop, masker),
                    masker,
                    reduce,
                )
            except Uncompilable:  # a layer that cannot run in a tf.function: stay eager
                self.compile_min_macs = float("inf")
        terms = self._head_terms(t) if heads is not None else None
        if terms is None:
            s = run_from = self._ensure_frontier(t)
        else:  # the attention output without those heads, by subtraction
            s, run_from = t + 1, t
            out = self.graph.calls[t].outputs[0]
        rows = self._rows(s, stop)
        hook = self._slicing_hook(masker)
        if self.positions:  # only the positions the outputs read
            hook = self.positions.wrap(hook, s, run_from)
        hook = self._counting(hook)

        def run(values, lo):
            if terms is not None:
                values[out] = terms.without(heads, lo, lo + rows)
            return self.graph.run(None, start=s, values=values, hook=hook)

        return self._batches(s, rows, run, masker, reduce)

    def _batches(self, s: int, rows: int, run, masker: Masker, reduce):
        """`run(frontier batch, first row)` over all samples from frontier `s`: the masked
        first output, or the list of `reduce(outputs, first_row)` per batch."""
        chunks = []
        for lo in range(0, self.n, rows):
            values = run(self.cache.batch(s, lo, rows), lo)
            part = ops.convert_to_numpy(masker.outputs(values)[0])
            chunks.append(part if reduce is None else reduce(part, lo))
        if reduce is not None:
            return chunks
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def _compiles(self, masker: Masker, t: int, heads) -> bool:
        """Whether the rerun from `t` runs compiled: masks only (no positions, head terms
        or local copies), and enough work to pay for tracing."""
        if self.positions or masker.local or heads is not None or t == len(self.graph.calls):
            return False
        macs = sum(self.trace.rule(c.path).macs(c) for c in self.graph.calls[t:])
        return macs * self.n >= self.compile_min_macs

    def _compiled_run(self, values: dict, start: int, stop: int, masker=None) -> dict:
        """Calls start..stop-1 as compiled segments (cut at the groups' first calls)."""
        if self._segments is None:
            self._segments = Segments(self.graph, self.keys_at, self._click_targets())
        for i in range(start, stop):
            self.calls_run[i] += 1
        return self._segments.run(values, start, stop, masker)

    def _head_terms(self, t: int) -> HeadTerms | None:
        """Attention call `t`'s output and per-head terms over all samples (cached), or
        None when they would take more than an eighth of the budget."""
        if self._ensure_frontier(t) != t:  # it holds the other inputs of the calls after t
            return None
        terms = self._heads.get(t)
        if terms is not None:
            self._heads.move_to_end(t)
            return terms
        call = self.graph.calls[t]
        held = self.positions.held(t) if self.positions else None
        need = HeadTerms.nbytes_for(self.trace, call, held) * self.n
        if need > self.budget_bytes // 8 or not self.cache.make_room(
            need, protect=t, keep=self.keys_at(t)
        ):
            return None
        terms = HeadTerms(self.trace, call, self.n)
        run = self.positions.call_at(t) if self.positions else call
        rows = self._rows(t, t + 1)
        for lo in range(0, self.n, rows):
            terms.add(run, self.cache.batch(t, lo, rows), lo)
            self.calls_run[t] += 1
        self._heads[t] = terms
        return terms

    def _slicing_hook(self, masker: Masker):
        """The masker's hook, with expensive masked layers run on their kept inputs only."""
        sliced = self._sliced.get(masker)
        if sliced is None:
            sliced = self._sliced[masker] = self._sliced_layers(masker)
        if not sliced:
            return masker.hook

        def hook(call, values) -> bool:
            entry = sliced.get(call.index)
            if entry is None:
                return masker.hook(call, values)
            clone, key, idx, axis = entry
            call.run(values, layer=clone, override={key: ops.take(values[key], idx, axis=axis)})
            return True

        return hook

    def _sliced_layers(self, masker: Masker) -> dict:
        """call index -> (copy without the removed input channels, input key, kept indices,
        their axis)."""
        out = {}
        for index, masks in masker.input_masks.items():
            call = self.graph.calls[index]
            rule = self.trace.rule(call.path)
            if (
                len(call.inputs) != 1
                or type(rule) not in _SLICEABLE
                or getattr(call.layer, "groups", 1) != 1
            ):
                continue
            key = call.inputs[0]
            keep = np.asarray(masks[key]).ravel() > 0
            if rule.macs(call) * (1 - keep.mean()) * self.n < self.slice_min_macs:
                continue
            axes = self.trace.input_axes(call)
            width = [np.ones(len(self.trace.map(call.outputs[0])), bool)]
            clone = pruned_layer(rule, call.layer, [keep], width, call.input_shapes, axes)
            out[index] = (clone, key, np.flatnonzero(keep), axes[0])
        return out

    def _rows(self, start: int, stop: int, least: int | None = None) -> int:
        """Rows per batch: `least` (default `batch_size`), or more while the working set
        stays small (the frontier arrays are views: calls copy the positions they read)."""
        pos = self.positions
        per_sample = sum(
            self.cache.sample_bytes[k] * (pos.read_share(k, start) if pos else 1.0)
            for k in self.keys_at(start)
        ) + sum(
            self.cache.sample_bytes[k] * (pos.share(c.index) if pos else 1.0)
            for c in self.graph.calls[start:stop]
            for k in c.outputs
        )
        least = self.batch_size if least is None else least
        return min(self.n, max(least, int(self.work_bytes // max(per_sample, 1))))

    def _counting(self, hook):
        counter = self.calls_run

        def run(call, values) -> bool:
            counter[call.index] += 1
            return bool(hook(call, values)) if hook is not None else False

        return run
