"""Plans: which units of which layers to remove. Immutable and JSON-serialisable."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from neuronviz.errors import NeuronvizError

_ITEM = re.compile(r"^(-?\d+)(?:-(-?\d+))?$")


def parse_spec(spec: str) -> tuple[int, ...]:
    """Parse '0-99,120' into sorted unique indices (ranges are inclusive)."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = _ITEM.match(part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise NeuronvizError(f"Expected unit indices like '0-99,120'. Received: '{spec}'")
        lo = int(m.group(1))
        hi = lo if m.group(2) is None else int(m.group(2))
        out.update(range(lo, hi + 1))
    if not out:
        raise NeuronvizError(f"Expected at least one unit index. Received: '{spec}'")
    return tuple(sorted(out))


def format_spec(indices: Iterable[int]) -> str:
    """The inverse of parse_spec: compact ranges, e.g. '0-99,120'."""
    idx = sorted(set(int(i) for i in indices))
    parts, i = [], 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        parts.append(str(idx[i]) if i == j else f"{idx[i]}-{idx[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True)
class Plan:
    """Units to remove, by layer name (or nested path) -> sorted unit indices."""

    remove: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self):
        clean = {}
        for layer, idx in self.remove.items():
            idx = tuple(sorted(set(int(i) for i in idx)))
            if idx:
                clean[str(layer)] = idx
        object.__setattr__(self, "remove", MappingProxyType(clean))

    def __bool__(self) -> bool:
        return bool(self.remove)

    def __eq__(self, other) -> bool:
        return isinstance(other, Plan) and dict(self.remove) == dict(other.remove)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.remove.items())))

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> Plan:
        """Build from CLI strings 'LAYER:SPEC'."""
        remove: dict[str, set[int]] = {}
        for s in specs:
            layer, sep, spec = s.rpartition(":")
            if not sep or not layer:
                raise NeuronvizError(
                    f"Expected --remove LAYER:SPEC, e.g. dense:0-99. Received: '{s}'"
                )
            remove.setdefault(layer, set()).update(parse_spec(spec))
        return cls({k: tuple(v) for k, v in remove.items()})

    def merged(self, other: Plan) -> Plan:
        """The union of two plans."""
        out = {k: set(v) for k, v in self.remove.items()}
        for k, v in other.remove.items():
            out.setdefault(k, set()).update(v)
        return Plan({k: tuple(v) for k, v in out.items()})

    def to_dict(self) -> dict:
        return {"remove": {k: list(v) for k, v in self.remove.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data) -> Plan:
        if not isinstance(data, dict) or not isinstance(data.get("remove"), dict):
            raise NeuronvizError(
                'Expected a plan like {"remove": {"LAYER": [indices]}}. '
                f"Received: {str(data)[:80]}"
            )
        remove = {}
        for layer, idx in data["remove"].items():
            if not isinstance(idx, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in idx
            ):
                raise NeuronvizError(
                    f"Expected a list of integer unit indices for layer '{layer}' in the plan. "
                    f"Received: {str(idx)[:80]}"
                )
            remove[layer] = tuple(idx)
        return cls(remove)

    @classmethod
    def load(cls, path) -> Plan:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NeuronvizError(f"Plan file not found: '{path}'") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise NeuronvizError(f"Could not read plan '{path}' as JSON: {e}") from None
        return cls.from_dict(data)

    def save(self, path) -> None:
        from neuronviz.core.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_json() + "\n")
