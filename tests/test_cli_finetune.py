"""`neuronviz sparsify` and `neuronviz finetune`: the CLI contract (real subprocesses)."""

import json

import numpy as np
import pytest
from conftest import run_cli

import neuronviz.api as nv
from neuronviz.backend.recovery.sparsity import prunable_kernels

cli = run_cli


@pytest.fixture(scope="module")
def small_cnn_path(tmp_path_factory):
    """A small compiled CNN for MNIST-shaped inputs (quicker to load, save and convert than the demo)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(inp)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu", name="dense")(h)
    model = keras.Model(inp, keras.layers.Dense(10, name="logits")(h))
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    path = tmp_path_factory.mktemp("cnn") / "cnn.keras"
    model.save(path)
    return path


def one_line_error(r, needle):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neuronviz: error: "), r.stderr
    assert needle in lines[0], lines[0]


def test_sparsify_json_with_tflite(tmp_path, small_cnn_path):
    out, tfl = tmp_path / "sparse.keras", tmp_path / "sparse.tflite"
    r = cli(
        "sparsify",
        small_cnn_path,
        "--amount",
        "0.8",
        "--layers",
        "dense,conv",
        "--scope",
        "global",
        "-o",
        out,
        "--tflite",
        tfl,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ""  # the converter's chatter stays out of sight
    data = json.loads(r.stdout)
    assert data["scope"] == "global" and data["sparsity"] == pytest.approx(0.8, abs=1e-4)
    assert set(data["layers"]) == {"dense", "conv"}
    assert data["sizes"]["output"]["gzip"] < 0.5 * data["sizes"]["input"]["gzip"]
    assert data["sizes"]["tflite"]["raw"] == tfl.stat().st_size
    assert data["sizes"]["tflite"]["gzip"] < 0.5 * data["sizes"]["tflite"]["raw"]
    model = nv.load_model(data["output"])
    kernels = prunable_kernels(model)
    zeros = sum(int((kernels[k].numpy() == 0).sum()) for k in ("dense/kernel", "conv/kernel"))
    total = sum(kernels[k].numpy().size for k in ("dense/kernel", "conv/kernel"))
    assert zeros / total == pytest.approx(0.8, abs=1e-4)
    assert (
        np.count_nonzero(kernels["logits/kernel"].numpy()) == kernels["logits/kernel"].numpy().size
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--amount", "1.0"], "Expected --amount in [0, 1)"),
        (["--amount", "-0.2"], "Expected --amount in [0, 1)"),
        (["--amount", "0.5", "--layers", ","], "comma-separated"),
        (["--amount", "0.5", "--tflite", "x.lite"], ".tflite"),
    ],
)
def test_sparsify_refusals_before_loading(tmp_path, demo_model_path, args, needle):
    r = cli("sparsify", demo_model_path, "-o", tmp_path / "o.keras", *args)
    one_line_error(r, needle)
    assert list(tmp_path.iterdir()) == []


def test_sparsify_refuses_overwriting_its_input(tmp_path, demo_model_path):
    src = tmp_path / "m.keras"
    src.write_bytes(demo_model_path.read_bytes())
    r = cli("sparsify", src, "--amount", "0.5", "-o", src)
    one_line_error(r, "Refusing to overwrite the input file")
    assert src.read_bytes() == demo_model_path.read_bytes()


def test_sparsify_unknown_layer_suggests_close_names(tmp_path, demo_model_path, capsys):
    from neuronviz.cli import main  # in-process: the same code path, without another TF start-up

    code = main(
        [
            "sparsify",
            str(demo_model_path),
            "--amount",
            "0.5",
            "--layers",
            "dense,conv2d_2",
            "-o",
            str(tmp_path / "o.keras"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "unknown layer 'conv2d_2'. Did you mean 'conv2d_1'" in err
    assert not (tmp_path / "o.keras").exists()


def test_sparsify_summary(tmp_path, demo_model_path, capsys):
    from neuronviz.cli import main

    assert (
        main(
            [
                "sparsify",
                str(demo_model_path),
                "--amount",
                "0.5",
                "--layers",
                "dense",
                "-o",
                str(tmp_path / "o.keras"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "dense" in out and "50.0%" in out and "gzip" in out and "not faster" in out


def test_finetune_keep_zeros_json(tmp_path, small_cnn_path, demo_val):
    from neuronviz.backend.recovery.sparsity import sparsify
    from neuronviz.resources import demo_train

    sparse = sparsify(nv.load_model(small_cnn_path), 0.8, layers=["dense"])
    src = nv.save_model(sparse.model, tmp_path / "sparse.keras")
    tr = np.load(demo_train())
    np.savez(tmp_path / "train.npz", x=tr["x"][:256], y=tr["y"][:256])
    np.savez(tmp_path / "val.npz", x=demo_val[0][:200], y=demo_val[1][:200])
    out = tmp_path / "tuned.keras"
    r = cli(
        "finetune",
        src,
        "--data",
        tmp_path / "train.npz",
        "--val",
        tmp_path / "val.npz",
        "-o",
        out,
        "--epochs",
        "2",
        "--lr",
        "1e-3",
        "--keep-zeros",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert (
        data["train_samples"] == 256 and data["val_samples"] == 200 and data["kept_zeros"] is True
    )
    assert data["epochs_run"] == 2 and data["stopped"] == "completed" and data["best_epoch"] == 2
    assert data["after"]["loss"] < data["before"]["loss"]  # an untrained model learns quickly
    tuned = prunable_kernels(nv.load_model(out))["dense/kernel"].numpy()
    keep = sparse.masks["dense/kernel"]
    assert np.all(tuned[~keep] == 0)
    assert not np.array_equal(tuned[keep], sparse.model.get_layer("dense").kernel.numpy()[keep])


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--data", "missing.npz", "--val", "demo"], "Data file not found: 'missing.npz'"),
        (["--data", "demo", "--val", "demo", "--epochs", "0"], "--epochs >= 1"),
        (["--data", "demo", "--val", "demo", "--lr", "0"], "--lr > 0"),
    ],
)
def test_finetune_refusals(tmp_path, demo_model_path, args, needle):
    r = cli("finetune", demo_model_path, "-o", tmp_path / "o.keras", *args)
    one_line_error(r, needle)
    assert list(tmp_path.iterdir()) == []


def test_finetune_refuses_overwriting_its_input(tmp_path, demo_model_path):
    src = tmp_path / "m.keras"
    src.write_bytes(demo_model_path.read_bytes())
    r = cli("finetune", src, "--data", "demo-train", "--val", "demo", "-o", src)
    one_line_error(r, "Refusing to overwrite the input file")


def test_demo_sources(demo_model):
    from neuronviz.commands.finetune import load_split

    train, val = load_split("demo-train", demo_model), load_split("demo", demo_model)
    assert (train.n, val.n) == (4000, 1000)
    assert not np.array_equal(train.x[:5], val.x[:5])


@pytest.fixture(scope="module")
def sparse_setup(tmp_path_factory, small_cnn_path, demo_val):
    """A model made by `neuronviz sparsify` (80% of dense zeroed) and small data splits."""
    from neuronviz.resources import demo_train

    tmp = tmp_path_factory.mktemp("sparse")
    src = tmp / "sparse.keras"
    r = cli("sparsify", small_cnn_path, "--amount", "0.8", "--layers", "dense", "-o", src)
    assert r.returncode == 0, r.stderr
    tr = np.load(demo_train())
    np.savez(tmp / "train.npz", x=tr["x"][:256], y=tr["y"][:256])
    np.savez(tmp / "val.npz", x=demo_val[0][:200], y=demo_val[1][:200])
    return tmp, src


def _finetune(tmp, src, out, *flags):
    return cli(
        "finetune", src, "--data", tmp / "train.npz", "--val", tmp / "val.npz", "-o", out,
        "--epochs", "2", "--lr", "1e-3", *flags,
    )  # fmt: skip


def test_sparsify_then_finetune_keeps_every_zero_with_no_flag(sparse_setup):
    tmp, src = sparse_setup
    zeros = prunable_kernels(nv.load_model(src))["dense/kernel"].numpy() == 0
    assert zeros.mean() == pytest.approx(0.8, abs=0.01)
    out = tmp / "tuned.keras"
    r = _finetune(tmp, src, out)
    assert r.returncode == 0, r.stderr
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("keeping ")]
    assert said == [
        f"keeping {int(zeros.sum()):,} zero weights in 1 sparse kernel at zero "
        "(--release-zeros lets them move)"
    ]
    tuned = nv.load_model(out)
    kernels = prunable_kernels(tuned)
    assert np.all(kernels["dense/kernel"].numpy()[zeros] == 0)
    # the dense kernels without zeros were trained freely
    before = prunable_kernels(nv.load_model(src))
    assert not np.array_equal(kernels["conv/kernel"].numpy(), before["conv/kernel"].numpy())


def test_release_zeros_lets_them_move(sparse_setup):
    tmp, src = sparse_setup
    zeros = prunable_kernels(nv.load_model(src))["dense/kernel"].numpy() == 0
    out = tmp / "released.keras"
    r = _finetune(tmp, src, out, "--release-zeros", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["kept_zeros"] is False and data["zero_weights_kept"] == 0
    tuned = prunable_kernels(nv.load_model(out))["dense/kernel"].numpy()
    assert (tuned[zeros] != 0).mean() > 0.5


def test_release_and_keep_zeros_conflict(sparse_setup):
    tmp, src = sparse_setup
    r = _finetune(tmp, src, tmp / "x.keras", "--release-zeros", "--keep-zeros")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "not allowed with argument" in r.stderr
    assert not (tmp / "x.keras").exists()
