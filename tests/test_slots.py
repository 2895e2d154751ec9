"""model.norms, a norm per slot (by slot name or kind), in all four model paths: a
built-in model, model.layers (YAML), a Python builder and a saved model; and how run
ids, compare's labels and legends show it."""

from __future__ import annotations

import yaml

from conftest import REPO, cli, error_line, sweep_here
from normbench.schema.config import from_dict
from normbench.build.models import build_model

TAB = {"name": "s", "data": {"name": "synthetic_salary", "subset": {"train": 100, "test": 40}}}


def _kinds(model, names):
    layers = {layer.name: layer for layer in model._flatten_layers(include_self=False)}
    return [type(layers[n]).__name__ for n in names]


def test_builtin_models_take_a_norm_per_slot():
    cfg = from_dict({**TAB, "model": {"arch": "mlp", "norm": "layer", "params": {"hidden": [8, 8, 8]},
                                      "norms": {"input": "batch", "norm_2": "none"}}})
    assert _kinds(build_model(cfg, 2), ["input", "norm_1", "norm_2", "norm_3"]) == [
        "FusedBatchNormalization", "LayerNormalization", "Identity", "LayerNormalization"]
    # by kind: every conv slot layer, the vector slot keeps model.norm
    cfg = from_dict({"name": "c", "data": {"name": "synthetic_cifar10", "subset": {"train": 64, "test": 16}},
                     "model": {"arch": "cifar10_cnn", "norm": "batch", "norms": {"conv": "layer"}}})
    assert _kinds(build_model(cfg, 10), ["norm_1", "norm_2", "norm_3", "norm_4"]) == [
        "LayerNormalization"] * 3 + ["FusedBatchNormalization"]
    # a name wins over a kind; the MLP's input slot defaults to params.input_norm, not model.norm
    cfg = from_dict({**TAB, "model": {"arch": "mlp", "norm": "batch", "params": {"hidden": [8]},
                                      "norms": {"vector": "none", "norm_1": "layer"}}})
    assert _kinds(build_model(cfg, 2), ["input", "norm_1"]) == ["Identity", "LayerNormalization"]
    cfg = from_dict({**TAB, "model": {"arch": "mlp", "norm": "batch", "params": {"hidden": [8]}}})
    assert _kinds(build_model(cfg, 2), ["input", "norm_1"]) == ["Identity", "FusedBatchNormalization"]


def test_yaml_layers_take_a_norm_per_slot():
    layers = [{"norm": "vector", "name": "inputs"}, {"Dense": {"units": 8, "activation": "relu"}}, {"norm": "vector"},
              {"Dense": {"units": 2, "activation": "softmax"}}]
    cfg = from_dict({**TAB, "model": {"layers": layers, "norm": "none", "norms": {"inputs": "batch"}}})
    assert _kinds(build_model(cfg, 2), ["inputs", "norm_2"]) == ["FusedBatchNormalization", "Identity"]


def test_python_builders_take_a_norm_per_slot(tmp_path):
    (tmp_path / "b.py").write_text(
        "import keras\n"
        "def build(norm, input_shape, num_classes):\n"
        "    return keras.Sequential([keras.Input(input_shape), norm('vector', 'inp'), keras.layers.Dense(8),\n"
        "                             norm('vector', 'mid'), keras.layers.Dense(num_classes, activation='softmax')])\n")
    cfg = from_dict({**TAB, "model": {"arch": f"{tmp_path}/b.py:build", "norm": "layer", "norms": {"inp": "batch"}}})
    assert _kinds(build_model(cfg, 2), ["inp", "mid"]) == ["FusedBatchNormalization", "LayerNormalization"]


def test_saved_models_take_a_norm_per_slot(tmp_path):
    import subprocess
    import sys

    saved = tmp_path / "their.keras"
    subprocess.run([sys.executable, str(REPO / "examples/make_model.py"), str(saved)], check=True, capture_output=True)
    cfg = from_dict({"name": "f", "data": {"name": "synthetic_cifar10", "subset": {"train": 64, "test": 16}},
                     "model": {"from": str(saved), "norm": "none", "norms": {"conv": "batch", "bn_dense": "layer"}}})
    assert _kinds(build_model(cfg, 10), ["bn_1", "bn_2", "bn_dense"]) == [
        "FusedBatchNormalization", "FusedBatchNormalization", "LayerNormalization"]


def test_an_unknown_slot_or_norm_is_one_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**TAB, "model": {"arch": "mlp", "norm": "none", "params": {"hidden": [8]},
                                                  "norms": {"imput": "batch"}}}))
    assert error_line(cli("validate", p)) == ("Error: model.norms: model mlp has no slot or slot kind 'imput'; its slots: "
                                              "input (vector), norm_1 (vector)")
    p.write_text(yaml.safe_dump({**TAB, "model": {"arch": "mlp", "norm": "none", "norms": {"input": "bn"}}}))
    from normbench.build.norms import NORMS

    assert error_line(cli("validate", p)) == (f"Error: {p}: model.norms.input: unknown norm 'bn'; choose one of: "
                                              f"{', '.join(NORMS)}")


def test_run_ids_labels_and_legends_show_the_slots_compactly(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    out = tmp_path / "results"
    raw = {**TAB, "model": {"arch": "mlp", "norm": "none", "params": {"hidden": [4]}, "norms": {"input": "batch"}},
           "train": {"epochs": 1, "batch_size": 40}, "output": {"dir": str(out)}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    sweep_here(p, "model.norm=none,layer")
    assert sorted(d.name for d in (out / "s").iterdir() if d.is_dir()) == [
        f"mlp-norm={n}-norms=input.batch-bs=40-seed=0" for n in ("layer", "none")]
    sweep_here(p, "model.norms.input=batch,none")
    assert {f"mlp-norm=none-bs=40-input=batch-seed=0", "mlp-norm=none-bs=40-input=none-seed=0"} <= {
        d.name for d in (out / "s").iterdir()}
    from normbench.analysis import results
    from normbench.analysis.runs import load_runs

    comp = results.compare(load_runs([str(out)]))
    labels = sorted(r.label for r in comp.ranked)
    assert labels == ["norm=layer, input=batch", "norm=none, input=batch", "norm=none, input=none"]
