"""Edit ▸ Refine Selection on the Data: the selection's units chosen again by exact loss
on the open data, as many per layer (`nv.refine_plan`), in the background with progress
and cancel; applied as one undo step if the selection did not change meanwhile."""

from __future__ import annotations

from neuronviz.errors import NeuronvizError
from neuronviz.gui.workers import report

TASK = "refine"


def refine_selection(bench) -> bool:
    """Start the job; False (with one line said) when it cannot start."""
    s = bench.session
    if s.model is None:
        return False
    try:
        job = s.refine_job("l2", report=report)
    except NeuronvizError as e:
        bench.state.info(str(e))
        return False

    def done(result) -> None:
        before, plan = result
        if s.plan != before:
            bench.status("The selection changed while refining: nothing applied.", 8000)
        elif plan == before:
            bench.status("Refining found no lower loss: the selection is unchanged.", 8000)
        elif bench.editor.apply(plan, "Refine selection on the data"):
            bench.status(
                "Refined: the same widths, units chosen by exact loss (Ctrl+Z undoes).", 8000
            )

    bench.tasks.submit(TASK, job, done, lambda msg: bench.state.error(f"Refining failed: {msg}"))
    return True
