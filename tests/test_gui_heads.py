"""Attention heads in the app: one bar per head in the Norms view; a click selects it."""

import numpy as np
import pytest

pytest.importorskip("PySide6")

import gui_helpers as testing  # noqa: E402
from engine_models import randomize  # noqa: E402
from test_transformer import HEADS, vit  # noqa: E402

from neuronviz.core.plan import Plan  # noqa: E402


def test_heads_are_bars_in_the_norms_view(make, qtbot, tmp_path):
    model = randomize(vit(), seed=2)
    path = tmp_path / "vit.keras"
    model.save(path)
    win = make(model=path)
    testing.wait_model(qtbot, win)
    assert not win.preview.names["Perplexity"].isVisible()  # next-token scores only
    s = win.state.session
    s.set_layer("mha_1")
    qtbot.waitUntil(lambda: len(win.norms.bars.order) == HEADS, timeout=20000)
    mha = model.get_layer("mha_1")
    wq, wv, wo = (
        np.asarray(w.numpy())
        for w in (mha.query_dense.kernel, mha.value_dense.kernel, mha.output_dense.kernel)
    )
    want = [
        np.sqrt((wq[:, h] ** 2).sum() + (wv[:, h] ** 2).sum() + (wo[h] ** 2).sum())
        for h in range(HEADS)
    ]
    np.testing.assert_allclose(np.sort(win.norms.bars.opts["height"]), np.sort(want), rtol=1e-5)
    testing.click_item(qtbot, win.norms.plot, win.norms.bars, testing.bar_center(win.norms, 2))
    assert s.plan == Plan({"mha_1": [2]})
    qtbot.waitUntil(
        lambda: win.preview.labels["Params"][1].text() != win.preview.labels["Params"][0].text(),
        timeout=20000,
    )


def test_preview_shows_perplexity_for_token_data(make, qtbot, tmp_path):
    from test_causal_lm import T, V, tiny_lm

    import neuronviz.api as nv

    model = randomize(tiny_lm(), seed=3)
    path, npz = tmp_path / "lm.keras", tmp_path / "tokens.npz"
    model.save(path)
    np.savez(npz, token_ids=np.random.default_rng(0).integers(0, V, (4, T)))
    win = make(model=path, data=npz)
    testing.wait_ready(qtbot, win)
    s = win.state.session
    s.set_plan(Plan({"mha": [1]}))
    testing.wait_score(qtbot, win)
    win.preview.refresh()
    before, after, _ = (c.text() for c in win.preview.labels["Perplexity"])
    assert win.preview.names["Perplexity"].isVisible()
    assert before == f"{nv.evaluate(model, npz).perplexity:.2f}"
    assert after == f"{nv.evaluate(model, npz, {'mha': [1]}).perplexity:.2f}"
    assert before != after
