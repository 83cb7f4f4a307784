"""The one layer-name resolver: a layer name, nested path or short alias -> its path."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from neuronviz.errors import NeuronvizError, close_matches


def resolve_layer(
    name: str,
    layers: Collection[str],
    aliases: Mapping[str, str] | None = None,
    expected: str = "a layer with units",
) -> str:
    """The path of `name` among `layers` (a path, or a short alias of a nested one).
    Unknown names raise one line ``Expected <expected>. Received: unknown layer 'x'.``
    with "did you mean" suggestions."""
    aliases = aliases or {}
    path = aliases.get(name, name)
    if path in layers:
        return path
    raise NeuronvizError(
        f"Expected {expected}. Received: unknown layer '{name}'."
        + close_matches(name, list(layers) + list(aliases))
    )
