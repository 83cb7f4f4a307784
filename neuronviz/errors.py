"""The one exception type users see: a single readable line, never a traceback."""


class NeuronvizError(Exception):
    """A refusal or bad input, worded for the user (Keras style: expected, then received)."""


def close_matches(name: str, candidates, n: int = 3) -> str:
    """A ' Did you mean ...?' suffix for an unknown name, or ''."""
    import difflib

    found = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    if not found:
        return ""
    return " Did you mean " + " or ".join(repr(f) for f in found) + "?"
