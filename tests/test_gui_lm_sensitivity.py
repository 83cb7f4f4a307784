"""The sensitivity view of a causal LM on token data, in a real window: curves and
heatmap show perplexity (next-token accuracy moves in steps of one token), with the
sweep's own figures (the sweep itself is checked against NumPy in test_causal_lm)."""

import keras
import numpy as np
import pytest

pytest.importorskip("PySide6")

import gui_helpers as testing  # noqa: E402
from engine_models import randomize  # noqa: E402

L = keras.layers
V, T, D = 23, 10, 16


def tiny_lm():
    x = keras.Input((None,), dtype="int32", name="token_ids")
    h = L.Embedding(V, D, name="embed")(x)
    a = L.MultiHeadAttention(num_heads=4, key_dim=4, name="mha")(h, h, use_causal_mask=True)
    h = L.LayerNormalization(name="ln1")(L.Add(name="res1")([h, a]))
    f = L.Dense(32, activation="relu", name="ffn")(h)
    h = L.Add(name="res2")([h, L.Dense(D, name="ffn_out")(f)])
    return keras.Model(x, L.Dense(V, name="lm_head")(h), name="tiny_lm")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    randomize(tiny_lm(), seed=3).save(d / "lm.keras")
    ids = np.random.default_rng(0).integers(0, V, (8, T))
    np.savez(d / "tokens.npz", token_ids=ids, padding_mask=np.ones_like(ids))
    return d / "lm.keras", d / "tokens.npz"


def test_sweep_of_token_data_is_shown_as_perplexity(make, qtbot, files):
    model, tokens = files
    win = make(model=model, data=tokens)
    testing.wait_ready(qtbot, win)
    s, view = win.state.session, win.sensitivity
    view.run()
    qtbot.waitUntil(lambda: s.sweep is not None, timeout=60000)
    view.ensure_drawn()
    res = s.sweep
    assert res.baseline.perplexity is not None
    assert view.plot.getPlotItem().getAxis("left").labelText == "perplexity"
    assert f"Baseline perplexity {res.baseline.perplexity:.4g}" in view.info.text()
    for c in res.curves:
        ys = view.points[c.layer].getData()[1]
        np.testing.assert_allclose(ys, c.perplexity, rtol=1e-6)

    view.heatmap_above = 0  # the heatmap of many groups
    view.redraw()
    assert view.heatmap.colorbar.axis.labelText == "perplexity rise (%)"
    want = [[100 * (p / res.baseline.perplexity - 1) for p in c.perplexity] for c in res.curves]
    np.testing.assert_allclose(view.heatmap.cells.image, want, rtol=1e-5, atol=1e-4)
