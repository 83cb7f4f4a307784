"""keras-hub backbones (the optional `transformers` extra; skipped without keras-hub):
heads and FFN neurons of a tiny random BertBackbone pruned through graph capture, against
a hand-zeroed copy of the backbone; the saved file reloads in safe mode."""

import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from hub_models import bert  # noqa: E402

import neuronviz.api as nv  # noqa: E402

HEADS = "transformer_layer_1/self_attention_layer"
FFN = "transformer_layer_0/feedforward_intermediate_dense"


def test_bert_backbone_heads_and_ffn_neurons(tmp_path):
    model = bert(seed=0)
    rng = np.random.default_rng(0)
    tr = nv.analyze(model)
    assert tr.unit_kind(HEADS) == "head" and len(tr.layer_units[HEADS]) == 2
    assert tr.unit_kind(FFN) == "neuron" and len(tr.layer_units[FFN]) == 16
    plan = nv.Plan({HEADS: [0], FFN: [1, 5, 7]})
    result = nv.prune(model, plan, tr)
    oracle = bert()  # the same backbone with head 0's output rows and 3 FFN columns zeroed
    oracle.set_weights(model.get_weights())
    mha = oracle.get_layer("transformer_layer_1")._self_attention_layer
    w = mha.get_weights()
    w[6][0] = 0
    mha.set_weights(w)
    ffn = oracle.get_layer("transformer_layer_0")._feedforward_intermediate_dense
    k, b = ffn.get_weights()
    k[:, [1, 5, 7]], b[[1, 5, 7]] = 0, 0
    ffn.set_weights([k, b])
    x = {
        "token_ids": rng.integers(0, 50, (3, 12)).astype("int32"),
        "segment_ids": rng.integers(0, 2, (3, 12)).astype("int32"),
        "padding_mask": np.array([[1] * 12, [1] * 9 + [0] * 3, [1] * 5 + [0] * 7], "int32"),
    }
    want, got = oracle.predict(x, verbose=0), result.model.predict(x, verbose=0)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(got[key], want[key], atol=1e-4)
    assert not np.allclose(want["pooled_output"], model.predict(x, verbose=0)["pooled_output"])
    assert result.after.params < result.before.params
    path = nv.save_pruned(result, tmp_path / "bert.keras", model, plan)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0)["pooled_output"], got["pooled_output"], atol=1e-5
    )
