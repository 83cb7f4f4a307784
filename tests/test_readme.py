"""The README's promises: its Quick start is two commands, the second one is what CI runs,
and its prune/inspect/evaluate examples work as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHECKED = ("prune", "inspect", "evaluate")
SHELLS = ("sh", "bash", "shell", "console")


def _section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def _blocks(text: str, langs=SHELLS) -> list[list[str]]:
    """The lines of each fenced code block whose language is one of `langs`."""
    out = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```\s*$", text, re.M | re.S):
        if lang in langs:
            out.append(body.splitlines())
    return out


def _commands(lines: list[str]) -> list[str]:
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _ci_command() -> str:
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    cmds = [ln for ln in lines if ln.startswith("python3 -m venv")]
    assert len(cmds) == 1, ".ci/run should run exactly one install-and-test command"
    return cmds[0]


def test_quick_start_is_exactly_two_commands():
    section = _section(README.read_text(), "Quick start")
    assert not _blocks(section, langs=("", "text")), "Quick start should hold shell commands only"
    cmds = [c for block in _blocks(section) for c in _commands(block)]
    assert len(cmds) == 2, (
        f"Quick start should have exactly two commands, found {len(cmds)}: {cmds}"
    )
    assert cmds[0].startswith("python3 -m venv .venv && ") and cmds[0].endswith("neuronviz --demo")


def test_second_quick_start_command_is_what_ci_runs():
    section = _section(README.read_text(), "Quick start")
    cmds = [c for block in _blocks(section) for c in _commands(block)]
    assert cmds[1] == _ci_command()


def _examples() -> list[list[str]]:
    """Every shell line that runs `neuronviz prune|inspect|evaluate` or writes a file with
    `echo '...' > FILE`, in README order (later examples use earlier outputs)."""
    steps = []
    for block in _blocks(README.read_text()):
        for line in _commands(block):
            words = shlex.split(line)
            if (
                words[0] in ("neuronviz", ".venv/bin/neuronviz")
                and len(words) > 1
                and words[1] in CHECKED
            ):
                steps.append(words)
            elif words[0] == "echo" and len(words) == 4 and words[2] == ">":
                steps.append(words)
    return steps


def test_readme_has_examples_of_every_checked_subcommand():
    used = {w[1] for w in _examples() if w[0] != "echo"}
    assert used == set(CHECKED)


def test_readme_cli_examples_run(tmp_path, monkeypatch, capsys):
    """In one process (each example's own process start is test_cli_*'s business)."""
    from neuronviz.cli import main

    monkeypatch.chdir(tmp_path)
    failures = []
    for words in _examples():
        if words[0] == "echo":
            (tmp_path / words[3]).write_text(words[1] + "\n")
            continue
        args = [str(ROOT / w) if w.startswith("neuronviz/demo/") else w for w in words[1:]]
        try:
            rc = main(args)
        except SystemExit as e:
            rc = e.code
        out = capsys.readouterr()
        if rc != 0:
            failures.append(f"{shlex.join(words)} -> exit {rc}: {(out.out + out.err)[-500:]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "name", ["neuronviz.desktop", "neuronviz.spec", "build.sh", "icon.png", "icon.svg"]
)
def test_packaging_files_exist(name):
    assert (ROOT / "packaging" / name).is_file()


def test_readme_python_example_runs(tmp_path):
    blocks = _blocks(_section(README.read_text(), "Python API"), langs=("python",))
    assert len(blocks) == 1
    code = "\n".join(blocks[0]).replace('"neuronviz/demo/', f'"{ROOT.as_posix()}/neuronviz/demo/')
    script = tmp_path / "example.py"
    script.write_text(code + "\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-1000:]
    assert "{'dense': (512, 412)}" in run.stdout
    assert (tmp_path / "small.keras").is_file()
