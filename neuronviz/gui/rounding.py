"""Channel rounding as an app setting (persisted; default the CLI's budget rounding), and
the "Round Selection to Multiples of N" action for hand-made selections (one undo step)."""

from __future__ import annotations

from neuronviz.errors import NeuronvizError

ROUND_TO_KEY = "pruning/round_to"
CHOICES = (1, 4, 8, 16, 32)  # 1 = off


def default_round_to() -> int:
    import neuronviz.api as api

    return int(api.DEFAULT_ROUND_TO)


def round_to(settings) -> int:
    """The rounding the app uses (budget plans, the Round Selection action)."""
    try:
        n = int(settings.value(ROUND_TO_KEY, default_round_to()))
    except (TypeError, ValueError):
        n = default_round_to()
    return max(1, n)


def set_round_to(settings, n: int) -> None:
    settings.setValue(ROUND_TO_KEY, max(1, int(n)))
    settings.sync()


def round_selection(bench) -> bool:
    """Adjust the selection so that every group it touches keeps a multiple of the app's
    rounding (fewer removed, or a few more of the smallest L2 norm). Undoable; a refusal
    is one line and changes nothing."""
    s, n = bench.session, round_to(bench.settings)
    if s.model is None:
        return False
    if n <= 1:
        bench.state.info("Channel rounding is off: choose a multiple in Edit ▸ Channel Rounding.")
        return False
    if not s.plan:
        bench.status("Nothing selected to round.", 6000)
        return False
    try:
        plan = s.rounded(n)
    except NeuronvizError as e:
        bench.state.error(str(e))
        return False
    if plan == s.plan:
        bench.status(f"Every selected group already keeps a multiple of {n} units.", 6000)
        return True
    ok = bench.editor.apply(plan, f"Round selection to multiples of {n}")
    if ok:
        bench.status(f"Rounded: every selected group keeps a multiple of {n} units.", 6000)
    return ok
