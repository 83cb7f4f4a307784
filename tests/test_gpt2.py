"""keras-hub GPT2Backbone (the optional `transformers` extra; skipped without keras-hub):
its TransformerDecoder builds a causal mask from the sequence length, so it is captured at
concrete sizes with that mask rebuilt from the input. Heads and FFN neurons pruned against
a hand-zeroed copy of the backbone at two sequence lengths with padding; the saved file
reloads in safe mode in a fresh process without neuronviz, at any length."""

import subprocess
import sys

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from hub_models import gpt2  # noqa: E402

import neuronviz.api as nv  # noqa: E402

HEADS = "transformer_layer_1/self_attention"
FFN = "transformer_layer_0/feedforward_intermediate_dense"
REMOVED_FFN = [1, 5, 7]


def tokens(rng, length):
    pad = np.ones((3, length), "int32")
    pad[1, length - 3 :] = 0
    pad[2, 2:] = 0
    return {"token_ids": rng.integers(0, 50, (3, length)).astype("int32"), "padding_mask": pad}


@pytest.fixture(scope="module")
def pruned():
    model = gpt2(seed=0)
    tr = nv.analyze(model)
    plan = nv.Plan({HEADS: [0], FFN: REMOVED_FFN})
    return model, tr, plan, nv.prune(model, plan, tr), oracle_of(model)


def oracle_of(model):
    """The backbone with head 0's output-projection rows and three FFN columns zeroed."""
    oracle = gpt2()
    oracle.set_weights(model.get_weights())
    mha = oracle.get_layer("transformer_layer_1")._self_attention_layer
    w = mha.get_weights()
    w[6][0] = 0  # output kernel (heads, head_dim, hidden): head 0's rows
    mha.set_weights(w)
    ffn = oracle.get_layer("transformer_layer_0")._feedforward_intermediate_dense
    k, b = ffn.get_weights()
    k[:, REMOVED_FFN], b[REMOVED_FFN] = 0, 0
    ffn.set_weights([k, b])
    return oracle


def test_decoder_captured_with_heads_and_neurons(pruned):
    _, tr, _, _, _ = pruned
    assert not any(p.startswith("transformer_layer") for p in tr.graph.refused)
    assert tr.unit_kind(HEADS) == "head" and len(tr.layer_units[HEADS]) == 2
    assert tr.unit_kind(FFN) == "neuron" and len(tr.layer_units[FFN]) == 16


@pytest.mark.parametrize("length", [12, 7])
def test_gpt2_heads_and_ffn_match_oracle(pruned, length):
    model, tr, plan, result, oracle = pruned
    x = tokens(np.random.default_rng(length), length)
    want = oracle.predict(x, verbose=0)
    got = result.model.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert not np.allclose(want, model.predict(x, verbose=0), atol=1e-3)
    masked = nv.masked_predict(model, plan, [x[n] for n in tr.graph.input_names], tr=tr)
    np.testing.assert_allclose(masked, want, atol=1e-4)
    assert result.after.params < result.before.params


def test_gpt2_saved_reloads_without_neuronviz(pruned, tmp_path):
    model, _, plan, result, _ = pruned
    notes = result.capture_summary()
    assert any("transformer_layer_0" in n and "intermediate_dim=13" in n for n in notes)
    path = nv.save_pruned(result, tmp_path / "gpt2.keras", model, plan)
    rng = np.random.default_rng(3)
    for length in (5, 16):
        x = tokens(rng, length)
        np.savez(tmp_path / f"x{length}.npz", **x)
        np.save(tmp_path / f"y{length}.npy", result.model.predict(x, verbose=0))
    script = (
        "import sys, keras, keras_hub, numpy as np\n"
        f"m = keras.saving.load_model({str(path)!r}, safe_mode=True)\n"
        "for n in (5, 16):\n"
        f"    x = dict(np.load({str(tmp_path)!r} + f'/x{{n}}.npz'))\n"
        f"    y = np.load({str(tmp_path)!r} + f'/y{{n}}.npy')\n"
        "    np.testing.assert_allclose(m.predict(x, verbose=0), y, atol=1e-5)\n"
        "assert 'neuronviz' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
