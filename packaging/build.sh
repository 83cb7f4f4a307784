#!/usr/bin/env bash
# Build a standalone neuronviz into dist/neuronviz/ with PyInstaller (not part of CI).
#
#     packaging/build.sh            # uses .venv (create it with the README's Quick start)
#     PYTHON=/path/to/python packaging/build.sh
#
# PyInstaller is a build-time tool, installed into the same environment; it is not a
# runtime dependency of neuronviz. Output: dist/neuronviz/neuronviz (+ _internal/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -c "import keras, tensorflow, PySide6, pyqtgraph" || {
    echo "build.sh: $PY lacks neuronviz's dependencies; run: $PY -m pip install -e '.[cpu,gui]'" >&2
    exit 1
}
"$PY" -m pip install -q "pyinstaller>=6.10"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/neuronviz.spec
echo "built dist/neuronviz in $(( $(date +%s) - start )) s, $(du -sh dist/neuronviz | cut -f1)"
echo "try: dist/neuronviz/neuronviz --demo"
