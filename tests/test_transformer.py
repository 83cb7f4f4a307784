"""A ViT-style classifier from keras.layers.MultiHeadAttention: heads, FFN neurons and the
residual hidden size pruned together. The oracle is a narrower ViT built and filled by
hand here (numpy slicing by layer type), with removed heads' output rows and removed
FFN neurons' weights set to zero; it shares no code with neuronviz."""

import json

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs, run_cli_parallel
from engine_models import randomize

import neuronviz.api as nv

L = keras.layers
BLOCKS, HEADS = 2, 4


def vit(dim=16, heads=HEADS, ffn=24, classes=5):
    x = keras.Input((16, 16, 3))
    h = L.Conv2D(dim, 4, strides=4, name="patch")(x)
    h = L.Reshape((16, dim), name="tokens")(h)
    for b in range(BLOCKS):
        a = L.LayerNormalization(name=f"ln_a{b}")(h)
        a = L.MultiHeadAttention(heads, 4, name=f"mha_{b}")(a, a)
        h = L.Add(name=f"res_a{b}")([h, a])
        f = L.LayerNormalization(name=f"ln_f{b}")(h)
        f = L.Dense(ffn, activation="gelu", name=f"ffn_{b}")(f)
        h = L.Add(name=f"res_f{b}")([h, L.Dense(dim, name=f"ffn_out_{b}")(f)])
    h = L.GlobalAveragePooling1D(name="pool")(L.LayerNormalization(name="ln")(h))
    return keras.Model(x, L.Dense(classes, name="head")(h))


def oracle(model, hidden, heads, neurons):
    """A ViT without the `hidden` residual dims; removed heads and FFN neurons zeroed."""
    dim = model.get_layer("patch").filters
    keep = np.setdiff1d(np.arange(dim), hidden)
    small = vit(dim=len(keep))
    for layer in model.layers:
        w = [np.array(v) for v in layer.get_weights()]
        if not w:
            continue
        name, kind = layer.name, type(layer).__name__
        if kind == "Conv2D":
            w = [w[0][..., keep], w[1][keep]]
        elif kind == "LayerNormalization":
            w = [v[keep] for v in w]
        elif kind == "MultiHeadAttention":  # q, k, v kernels and biases, then the output
            w = [v[keep] if v.ndim == 3 else v for v in w[:6]] + [w[6][..., keep], w[7][keep]]
            w[6][heads.get(name, [])] = 0
        elif name.startswith("ffn_out"):
            w = [w[0][:, keep], w[1][keep]]
        elif name.startswith("ffn"):
            w = [w[0][keep], w[1]]
            w[0][:, neurons.get(name, [])] = 0
            w[1][neurons.get(name, [])] = 0
        elif name == "head":
            w = [w[0][keep], w[1]]
        small.get_layer(name).set_weights(w)
    return small


PLAN = {
    "mha_0": [1],
    "mha_1": [0, 3],
    "ffn_0": [0, 5, 6, 23],
    "ffn_1": list(range(12)),
    "patch": [2, 7, 11],
}


@pytest.fixture(scope="module")
def model():
    return randomize(vit(), seed=3)


def _x(n=4):
    return np.random.default_rng(0).standard_normal((n, 16, 16, 3)).astype("float32")


def test_units_and_groups_of_a_vit(model):
    tr = nv.analyze(model)
    residual = tr.group_of("patch")
    assert all(tr.group_of(n) == residual for n in ("res_a0", "res_f1", "ffn_out_0", "ln_a1"))
    assert len({tr.group_of(f"mha_{b}") for b in range(BLOCKS)} | {residual}) == BLOCKS + 1
    kinds = {n: tr.unit_kind(n) for n in ("mha_0", "ffn_0", "ffn_out_1", "patch", "ln_f0")}
    assert kinds == {
        "mha_0": "head",
        "ffn_0": "neuron",
        "ffn_out_1": "unit",
        "patch": "unit",
        "ln_f0": "unit",
    }


def test_heads_neurons_and_hidden_size_pruned_together(model, tmp_path):
    plan = nv.Plan(PLAN)
    x = _x()
    tr = nv.analyze(model)
    result = nv.prune(model, plan, tr)
    heads = {k: v for k, v in PLAN.items() if k.startswith("mha")}
    neurons = {k: v for k, v in PLAN.items() if k.startswith("ffn")}
    want = oracle(model, PLAN["patch"], heads, neurons).predict(x, verbose=0)
    assert not np.allclose(want, model.predict(x, verbose=0), atol=1e-3)
    got = result.model.predict(x, verbose=0)
    assert_same_outputs(want, got)
    assert_same_outputs(nv.masked_predict(model, plan, x, tr=tr), got)
    new = result.model
    assert [new.get_layer(f"mha_{b}").num_heads for b in range(BLOCKS)] == [3, 2]
    assert tuple(new.get_layer("mha_1").output_dense.kernel.shape) == (2, 4, 13)
    assert [new.get_layer(f"ffn_{b}").units for b in range(BLOCKS)] == [20, 12]
    assert new.get_layer("patch").filters == 13
    assert result.after.macs < 0.8 * result.before.macs
    path = nv.save_pruned(result, tmp_path / "vit.keras", model, plan)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert_same_outputs(got, reloaded.predict(x, verbose=0))


def test_masked_model_scores_heads(model):
    """The masked Keras model (what the preview scores) equals the hand-zeroed oracle."""
    plan = nv.Plan({"mha_1": [2]})
    masked = nv.masked_model(model, plan)
    want = oracle(model, [], {"mha_1": [2]}, {}).predict(_x(), verbose=0)
    assert_same_outputs(want, masked.predict(_x(), verbose=0))


def test_cli_inspect_and_prune_heads(model, tmp_path):
    src = tmp_path / "vit.keras"
    model.save(src)
    out = tmp_path / "small.keras"
    runs = run_cli_parallel(
        {
            "inspect": ["inspect", src, "--json"],
            "prune": ["prune", src, "-o", out, "--remove", "mha_0:0,2", "--json"],
            "bad": ["prune", src, "-o", tmp_path / "x.keras", "--remove", "mha_0:4"],
        }
    )
    assert runs["inspect"].returncode == 0, runs["inspect"].stderr
    rows = {r["name"]: r for r in json.loads(runs["inspect"].stdout)["layers"]}
    assert {r["unit_kind"] for r in rows.values()} <= {"unit", "neuron", "channel", "head"}
    assert (rows["mha_1"]["unit_kind"], rows["mha_1"]["units"]) == ("head", HEADS)
    assert (rows["ffn_0"]["unit_kind"], rows["ffn_0"]["units"]) == ("neuron", 24)
    assert rows["res_a0"]["unit_kind"] == "unit"
    assert runs["prune"].returncode == 0, runs["prune"].stderr
    assert json.loads(runs["prune"].stdout)["removed"] == {"mha_0": [0, 2]}
    assert keras.saving.load_model(out, safe_mode=True).get_layer("mha_0").num_heads == 2
    bad = runs["bad"]
    assert bad.returncode != 0 and not (tmp_path / "x.keras").exists()
    assert bad.stderr.strip().count("\n") == 0
    assert "Expected `indices` in [0, 4) for layer 'mha_0'" in bad.stderr


class ConfigOnlyBackbone(keras.Model):
    """Like a keras-hub Backbone: built functionally, but its config holds only its
    arguments, not its graph."""

    def __init__(self, hidden=12, heads=3, **kwargs):
        x = keras.Input((5, 6))
        h = L.Dense(hidden, name="embed")(x)
        a = L.MultiHeadAttention(heads, 2, name="mha")(h, h)
        h = L.Add(name="res")([h, a])
        f = L.Dense(8, activation="relu", name="ffn")(h)
        super().__init__(x, L.Dense(hidden, name="ffn_out")(f), **kwargs)
        self.hidden, self.heads = hidden, heads

    def get_config(self):
        return {"hidden": self.hidden, "heads": self.heads, "name": self.name}


def test_backbone_whose_config_has_no_graph_becomes_functional(tmp_path):
    model = randomize(ConfigOnlyBackbone())
    plan = nv.Plan({"mha": [1], "ffn": [0, 3]})
    x = np.random.default_rng(2).standard_normal((3, 5, 6)).astype("float32")
    copy = ConfigOnlyBackbone()
    copy.set_weights(model.get_weights())
    w = copy.get_layer("mha").get_weights()
    w[6][1] = 0  # the oracle: head 1's output rows and FFN units 0, 3 zeroed by hand
    copy.get_layer("mha").set_weights(w)
    k, b = copy.get_layer("ffn").get_weights()
    k[:, [0, 3]], b[[0, 3]] = 0, 0
    copy.get_layer("ffn").set_weights([k, b])
    result = nv.prune(model, plan)
    assert type(result.model) is not ConfigOnlyBackbone
    assert result.model.get_layer("mha").num_heads == 2
    assert_same_outputs(copy.predict(x, verbose=0), result.model.predict(x, verbose=0))
    path = nv.save_pruned(result, tmp_path / "backbone.keras", model, plan)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert_same_outputs(result.model.predict(x, verbose=0), reloaded.predict(x, verbose=0))
