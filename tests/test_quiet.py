"""Quiet on every machine: TensorFlow's start-up lines never reach the user's terminal.

oneDNN is forced on (TF_ENABLE_ONEDNN_OPTS=1) so that the noise some CPUs print is
present wherever the suite runs; the user's environment has no TF_CPP_MIN_LOG_LEVEL.
"""

import importlib.util
import subprocess
import sys

import pytest
from conftest import run_cli, user_env

from neuronviz.backend import backend_refusal, without_startup_noise

NOISY = user_env()


def test_refusal_is_exactly_one_line_with_onednn_on(demo_model_path, tmp_path):
    out = tmp_path / "x.keras"
    proc = run_cli("prune", demo_model_path, "-o", out, "--remove", "dense:600")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "neuronviz: error: Expected `indices` in [0, 512) for layer 'dense'. Received: indices=[600]"
    ]
    assert not out.exists()


def test_verbose_shows_tensorflow_lines(demo_model_path, tmp_path):
    env = dict(NOISY, NEURONVIZ_VERBOSE="1")
    quiet = run_cli("inspect", demo_model_path, "--json")
    loud = run_cli("inspect", demo_model_path, "--json", env=env)
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stderr == ""
    # what TensorFlow prints depends on the CPU; verbose mode must not hide anything
    # that the quiet mode dropped, and it never prints less
    assert len(loud.stderr.splitlines()) >= len(quiet.stderr.splitlines())


def test_filter_drops_only_known_startup_lines():
    text = "\n".join(
        [
            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
            "I0000 00:00:1796277876.519585    3606 port.cc:153] oneDNN custom operations are on.",
            "I0000 00:00:1796278395.685243    6899 cpu_feature_guard.cc:227] This TensorFlow binary",
            "To enable the following instructions: AVX2 AVX512F, in other operations, rebuild.",
            "W0000 00:00:1796278395.685243    6899 some.cc:1] a start-up warning",
            "E0000 00:00:1796278395.685243    6899 cuda.cc:9] a real error",
            "Traceback (most recent call last):",
            '  File "x.py", line 1',
            "RuntimeError: boom",
        ]
    )
    assert without_startup_noise(text) == [
        "E0000 00:00:1796278395.685243    6899 cuda.cc:9] a real error",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "RuntimeError: boom",
    ]


def _python(code: str, **env):
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(NOISY, **env),
        timeout=300,
    )


def test_neuronviz_puts_keras_on_tensorflow_whatever_the_environment_says():
    proc = _python(
        "import neuronviz.api, keras; print(keras.backend.backend())", KERAS_BACKEND="numpy"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tensorflow"
    assert proc.stderr == ""


def test_another_backend_is_refused_in_one_line():
    assert backend_refusal("tensorflow") is None
    line = backend_refusal("jax")
    assert line.startswith("Expected Keras on the TensorFlow backend. Received:")
    assert "'jax'" in line and "\n" not in line


@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="no second Keras backend (jax) is installed to import Keras with first",
)
def test_keras_imported_first_with_another_backend_is_one_line():
    code = (
        "import keras\n"
        "try:\n"
        "    import neuronviz.api\n"
        "except Exception as e:\n"
        "    print(type(e).__name__ + ': ' + str(e))\n"
    )
    proc = _python(code, KERAS_BACKEND="jax")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    assert lines[0].startswith("NeuronvizError: Expected Keras on the TensorFlow backend.")
    assert "'jax'" in lines[0]
