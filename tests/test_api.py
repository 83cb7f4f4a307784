"""The public API: every documented name resolves, and importing the package is cheap."""

import subprocess
import sys

import neuronviz
import neuronviz.api as api


def test_every_public_name_resolves_on_the_package():
    for name in api.__all__:
        assert getattr(neuronviz, name) is getattr(api, name)


def test_package_attributes_work_in_a_fresh_process():
    code = (
        "import neuronviz as nv; print(nv.Plan({'dense': [1]}).remove['dense'], nv.prune.__name__)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.split() == ["(1,)", "prune"]


def test_import_does_not_load_tensorflow():
    code = "import sys, neuronviz; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["False", "False"]


def test_readme_style_example_removes_100_units(demo_model):
    result = neuronviz.prune(demo_model, neuronviz.Plan({"dense": range(100)}))
    assert result.widths() == {"dense": (512, 412)}
    assert result.model.get_layer("dense_1").input.shape[-1] == 412
