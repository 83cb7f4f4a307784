"""The dependency direction of docs/architecture.md, read off the imports of every module.

core imports neither Keras/TensorFlow nor Qt nor any other room of neuronviz; only
backend imports Keras/TensorFlow; only gui imports PySide6/pyqtgraph; the CLI's
subcommands reach the engine through neuronviz.api only. Imports under
`if TYPE_CHECKING:` are for type checkers and do not count.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "neuronviz"
ENGINE = ("keras", "tensorflow")
QT = ("PySide6", "pyqtgraph")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield ".".join(rel.parts), _imports(path)


MODULES = dict(_modules())


def _top(name: str) -> str:
    return name.split(".")[0]


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else parts[-1]


def test_the_rooms_are_found():
    rooms = {_room(m) for m in MODULES}
    assert {"core", "backend", "gui", "commands", "api"} <= rooms


# room -> (neuronviz modules it must not import, why)
FORBIDDEN = {
    "core": (("neuronviz.backend", "neuronviz.session", "neuronviz.gui", "neuronviz.commands", "neuronviz.api"), "core depends on nothing but core"),
    "commands": (("neuronviz.backend", "neuronviz.gui", "neuronviz.session"), "subcommands go through neuronviz.api"),
    "session": (("neuronviz.backend", "neuronviz.gui", "neuronviz.commands"), "the session reaches the engine through neuronviz.api"),
    "gui": (("neuronviz.backend",), "the GUI goes through neuronviz.api"),
    "backend": (("neuronviz.gui", "neuronviz.session", "neuronviz.commands"), "the engine knows nothing of its users"),
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dependency_direction(module):
    room = _room(module)
    imports = MODULES[module]
    engine = [i for i in imports if _top(i) in ENGINE]
    qt = [i for i in imports if _top(i) in QT]
    if room != "backend":
        assert not engine, f"{module} imports {engine}: only neuronviz.backend may"
    if room != "gui":
        assert not qt, f"{module} imports {qt}: only neuronviz.gui may"
    forbidden, why = FORBIDDEN.get(room, ((), ""))
    inner = [i for i in imports if i.startswith(forbidden)] if forbidden else []
    assert not inner, f"{module} imports {inner}: {why}"
