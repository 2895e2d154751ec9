"""Your own model, right or refused (issue 28, the model side): accuracy that follows the
output (logits), norms in nested models swapped, the swap verified, axes kept, no norm
after the output layer, builder slot ranks, models without a slot, one-class data, outputs
a classification loss cannot take, variable-length inputs, custom objects, and what
validate shows. Each case either works or fails before training in one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import cli, error_line
from normbench.schema.config import from_dict
from normbench.build.models import build_model


def _npz(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def _arrays(path, shape=(6,), classes=2, n_train=64, n_test=32, seed=0, y=None):
    rng = np.random.default_rng(seed)
    xtr = rng.uniform(-1, 1, (n_train, *shape)).astype("float32")
    xte = rng.uniform(-1, 1, (n_test, *shape)).astype("float32")
    ytr = np.arange(n_train) % classes if y is None else np.full(n_train, y)
    yte = np.arange(n_test) % classes if y is None else np.full(n_test, y)
    return _npz(path, xtr, ytr, xte, yte)


def _cfg(tmp_path, model, data, **train):
    raw = {"name": "t", "data": data, "model": model, "output": {"dir": str(tmp_path / "results")},
           "train": {"epochs": 1, "batch_size": 16, **train}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def _save(path, code: str, fresh: bool = False):
    """Build a model with `code` (keras, np, layers available; `model` assigned) and save it.
    fresh=True (a model with a custom class): in a fresh process, so that this process never
    registers the class and normbench must find it through model.custom_objects. Built-in
    layers only: here, after clear_session, so layers get the names a fresh process gives
    them (dense, dense_1 ...), without a process start and a TensorFlow import per model."""
    if fresh:
        script = f"import keras, numpy as np\nfrom keras import layers\n{code}\nmodel.save({str(path)!r})\n"
        subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
        return path
    import keras
    from keras import layers

    keras.backend.clear_session()
    scope = {"keras": keras, "np": np, "layers": layers}
    exec(code, scope)
    scope["model"].save(str(path))
    return path


def _no_run_folder(tmp_path):
    return not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("summary.json"))


# ----------------------------------------------------------------------------- logits


@pytest.mark.parametrize("units", [1, 3])
def test_a_logit_output_that_is_right_everywhere_scores_one(tmp_path, units):
    """A saved model whose output layer has no activation (logits), already right on
    every example (its weights kept, a learning rate too small to move them): its train,
    validation and test accuracy are 1.0. Before, the 1-unit logit was thresholded at 0.5
    (as if a probability) and scored 0.5. Three logits: argmax, right either way."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (192, 4)).astype("float32")
    if units == 1:
        y = (x[:, 0] > 0).astype("int64")
        w = np.zeros((4, 1), "float32")
        w[0, 0] = 0.1  # logits in [-0.1, 0.1]: every one below 0.5
    else:
        y = np.argmax(x[:, :3], axis=1)
        w = np.zeros((4, 3), "float32")
        w[:3, :3] = 0.1 * np.eye(3)
    f = _npz(tmp_path / "d.npz", x[:128], y[:128], x[128:], y[128:])
    saved = _save(tmp_path / "logits.keras", f"""
inp = keras.Input((4,))
h = layers.BatchNormalization(name="bn")(inp)
out = layers.Dense({units}, name="head")(h)
model = keras.Model(inp, out)
model.get_layer("head").set_weights([np.array({w.tolist()}, "float32"), np.zeros({units}, "float32")])""")
    model = {"from": str(saved), "norm": "none", "keep_weights": True}
    r = cli("run", _cfg(tmp_path, model, {"name": "arrays", "path": str(f)}, learning_rate=1e-9, optimizer="sgd"),
            "--quiet")
    assert r.exit_code == 0, r.output
    from normbench.analysis.runs import load_runs
    from normbench.store import runfolder

    (run,) = load_runs([str(tmp_path / "results")])
    assert run.summary["test_accuracy"] == pytest.approx(1.0)
    assert run.summary["best_val_accuracy"] == pytest.approx(1.0)  # tune selects on this
    (row,) = runfolder.read_history(run.path)
    assert float(row["accuracy"]) == pytest.approx(1.0)
    assert run.summary["norm_slots_verified"] == 1


# ----------------------------------------------------------------------------- nested models


def _nested_code(kind):
    inner = ("inner = keras.Sequential([keras.Input((8,)), layers.Dense(8, name='d_in'), "
             "layers.BatchNormalization(name='bn_in')], name='block')" if kind == "sequential" else
             "i = keras.Input((8,)); inner = keras.Model(i, layers.BatchNormalization(name='bn_in')(layers.Dense(8, name='d_in')(i)), name='block')")
    return f"""
{inner}
inp = keras.Input((6,))
h = layers.Dense(8, name="d0")(inp)
h = layers.BatchNormalization(name="bn_out")(h)
h = inner(h)
model = keras.Model(inp, layers.Dense(2, activation="softmax", name="head")(h))"""


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_norms_inside_a_nested_model_are_swapped_and_listed(tmp_path, kind):
    saved = _save(tmp_path / "nested.keras", _nested_code(kind))
    f = _arrays(tmp_path / "d.npz")
    for norm, cls in (("none", "Identity"), ("layer", "LayerNormalization")):
        cfg = from_dict({"name": "t", "data": {"name": "arrays", "path": str(f)}, "model": {"from": str(saved), "norm": norm}})
        built = build_model(cfg, 2)
        layers = {layer.name: type(layer).__name__ for layer in built._flatten_layers(include_self=False)}
        assert layers["bn_in"] == cls and layers["bn_out"] == cls
        assert "BatchNormalization" not in layers.values()
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "layer"}, {"name": "arrays", "path": str(f)}))
    assert r.exit_code == 0, r.output
    assert [line for line in r.output.splitlines() if line.startswith("# slot")] == [
        "# slot bn_out: vector, input (None, 8), BatchNormalization(axis=-1) -> LayerNormalization(axis=[-1])",
        "# slot bn_in: vector, input (None, 8), BatchNormalization(axis=-1) -> LayerNormalization(axis=[-1])",
    ]


# ----------------------------------------------------------------------------- the swap verified


def _builder(tmp_path, body: str):
    p = tmp_path / "b.py"
    p.write_text("import keras\nfrom keras import layers\n\ndef build(norm, input_shape, num_classes):\n"
                 "    x = inp = keras.Input(input_shape)\n" + body +
                 "    return keras.Model(inp, layers.Dense(num_classes, activation='softmax', name='head')(x))\n")
    return p


@pytest.mark.parametrize("case", ["builder", "layers", "custom-code", "no-slot-builder", "no-slot-layers",
                                  "no-slot-saved"])
def test_a_norm_outside_a_slot_or_no_slot_is_refused_before_training(tmp_path, case):
    f = _arrays(tmp_path / "d.npz")
    data = {"name": "arrays", "path": str(f)}
    if case == "builder":
        b = _builder(tmp_path, "    x = norm('vector')(layers.Dense(8)(x))\n"
                               "    x = layers.BatchNormalization(name='own_bn')(layers.Dense(8)(x))\n")
        model = {"arch": f"{b}:build"}
        expected = ("Error: model.arch: layer own_bn (BatchNormalization) is a norm outside a norm slot: it would stay "
                    "BatchNormalization whatever model.norm says; create each norm with the builder's "
                    "norm('conv'|'sequence'|'vector')")
    elif case == "layers":
        model = {"layers": [{"Dense": {"units": 8}}, {"norm": "vector"}, {"Dense": {"units": 8}},
                            {"LayerNormalization": {"name": "ln"}}, {"Dense": {"units": 2, "activation": "softmax"}}]}
        expected = ("Error: model.layers: layer ln (LayerNormalization) is a norm outside a norm slot: it would stay "
                    "LayerNormalization whatever model.norm says; mark each norm's place with {norm: conv|sequence|vector}")
    elif case == "custom-code":  # keras.io's TransformerBlock: its norms are attributes, used in its call
        b = tmp_path / "b.py"
        b.write_text("""import keras
from keras import layers

class Block(layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.dense = layers.Dense(8)
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6, name='layernorm1')

    def call(self, x):
        return self.layernorm1(x + self.dense(x))

def build(norm, input_shape, num_classes):
    x = inp = keras.Input(input_shape)
    x = norm('vector')(layers.Dense(8)(x))
    x = Block(name='transformer_block')(x)
    return keras.Model(inp, layers.Dense(num_classes, activation='softmax')(x))
""")
        model = {"arch": f"{b}:build"}
        expected = ("Error: model.arch: layer transformer_block (Block) holds layernorm1 (LayerNormalization) "
                    "inside its own Python code, where normbench cannot swap it; expose its norms: write a builder "
                    "(model.arch: file.py:function) that creates them with norm('sequence'|'conv'|'vector') "
                    "(docs/own-model.md)")
    elif case == "no-slot-builder":
        b = _builder(tmp_path, "    x = layers.Dense(8)(x)\n")
        model = {"arch": f"{b}:build"}
        expected = ("Error: model.arch: the model has no norm slot, so every model.norm would train the same model; "
                    "create each norm with the builder's norm('conv'|'sequence'|'vector')")
    elif case == "no-slot-layers":
        model = {"layers": [{"Dense": {"units": 8}}, {"Dense": {"units": 2, "activation": "softmax"}}]}
        expected = ("Error: model.layers: the model has no norm slot, so every model.norm would train the same model; "
                    "mark each norm's place with {norm: conv|sequence|vector}")
    else:
        saved = _save(tmp_path / "plain.keras", "inp = keras.Input((6,))\n"
                      "model = keras.Model(inp, layers.Dense(2, activation='softmax')(layers.Dense(8)(inp)))")
        model = {"from": str(saved)}
        expected = ("Error: model.from: the model has no norm slot, so every model.norm would train the same model; "
                    "put its norm layers in the graph, or name layers to put a norm after with model.insert_after")
    p = _cfg(tmp_path, {**model, "norm": "batch"}, data)
    assert error_line(cli("validate", p)) == expected
    assert error_line(cli("run", p, "--quiet")) == expected
    assert _no_run_folder(tmp_path)


# ----------------------------------------------------------------------------- axes


def test_a_channels_first_norm_keeps_its_axis(tmp_path):
    """BatchNormalization(axis=1) after a channels-first Conv2D: batch and group norms keep
    axis 1 (the 8 channels), layer norm covers every feature; never the last axis (4)."""
    saved = _save(tmp_path / "cf.keras", """
inp = keras.Input((3, 6, 6))
h = layers.Conv2D(8, 3, data_format="channels_first", name="conv")(inp)
h = layers.BatchNormalization(axis=1, name="bn")(h)
model = keras.Model(inp, layers.Dense(2, activation="softmax", name="head")(layers.Flatten()(h)))""")
    f = _arrays(tmp_path / "d.npz", shape=(3, 6, 6))
    data = {"name": "arrays", "path": str(f)}
    for norm, groups, axis, weights in (("batch", 8, 1, (8,)), ("group", 4, 1, (8,)), ("layer", 8, [1, 2, 3], (8, 4, 4))):
        built = build_model(from_dict({"name": "t", "data": data,
                                       "model": {"from": str(saved), "norm": norm, "norm_groups": groups}}), 2)
        bn = built.get_layer("bn")
        assert bn.axis == axis and tuple(bn.weights[0].shape) == weights, norm
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "group", "norm_groups": 8}, data))
    assert r.exit_code == 0, r.output
    assert ("# slot bn: conv, input (None, 8, 4, 4), BatchNormalization(axis=1) -> GroupNormalization(groups=8, axis=1) "
            "(norm_groups 8 >= its 8 channels: one channel per group, so this slot is instance normalization)") in r.output


def test_a_layer_list_or_builder_slot_on_a_channels_first_map_keeps_axis_1(tmp_path):
    f = _arrays(tmp_path / "d.npz", shape=(3, 6, 6))
    data = {"name": "arrays", "path": str(f)}
    b = tmp_path / "cf.py"
    b.write_text("import keras\nfrom keras import layers\n\ndef build(norm, input_shape, num_classes):\n"
                 "    x = inp = keras.Input(input_shape)\n"
                 "    x = norm('conv', 'slot', channels_first=True)(layers.Conv2D(8, 3, data_format='channels_first')(x))\n"
                 "    return keras.Model(inp, layers.Dense(num_classes, activation='softmax')(layers.Flatten()(x)))\n")
    listed = {"layers": [{"Conv2D": {"filters": 8, "kernel_size": 3, "data_format": "channels_first"}},
                         {"norm": "conv", "name": "slot"}, {"Flatten": {}}, {"Dense": {"units": 2, "activation": "softmax"}}]}
    for model in (listed, {"arch": f"{b}:build"}):
        for norm in ("batch", "group"):
            built = build_model(from_dict({"name": "t", "data": data, "model": {**model, "norm": norm, "norm_groups": 4}}), 2)
            slot = built.get_layer("slot")
            assert slot.axis == 1 and tuple(slot.weights[0].shape) == (8,), (model, norm)


def test_a_norm_over_an_axis_normbench_cannot_keep_is_refused(tmp_path):
    saved = _save(tmp_path / "seq.keras", """
inp = keras.Input((5, 4))
h = layers.Dense(6, name="proj")(inp)
h = layers.BatchNormalization(axis=1, name="bn_time")(h)
model = keras.Model(inp, layers.Dense(2, activation="softmax", name="head")(layers.Flatten()(h)))""")
    f = _arrays(tmp_path / "d.npz", shape=(5, 4))
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "layer"}, {"name": "arrays", "path": str(f)}))
    assert error_line(r) == ("Error: slot bn_time: BatchNormalization(axis=1) normalizes axis 1 of its input (None, 5, 6); "
                             "normbench keeps the channels of channels-last maps (the last axis) and of channels-first "
                             "conv maps (axis 1) only; save the model channels-last")


# ----------------------------------------------------------------------------- insert_after


def test_insert_after_a_class_skips_the_output_layer_and_refuses_it_by_name(tmp_path):
    saved = _save(tmp_path / "mlp.keras", """
inp = keras.Input((6,))
h = layers.Dense(8, name="hidden")(inp)
h = layers.Dense(4, activation="relu", name="hidden_2")(h)
logits = layers.Dense(2, name="head")(h)
model = keras.Model(inp, layers.Activation("softmax", name="probs")(logits))""")
    f = _arrays(tmp_path / "d.npz")
    data = {"name": "arrays", "path": str(f)}
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "layer", "insert_after": ["Dense"]}, data))
    assert r.exit_code == 0, r.output
    assert [line.split(":")[0] for line in r.output.splitlines() if line.startswith("# slot")] == [
        "# slot hidden_norm", "# slot hidden_2_norm"]
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "layer", "insert_after": ["hidden", "head"]}, data))
    assert error_line(r) == ("Error: model.insert_after: head is the model's output layer (its output is what the loss "
                             "takes); a norm belongs after hidden layers only: remove it")


# ----------------------------------------------------------------------------- builder slot ranks


def test_a_builder_slot_kind_is_checked_against_its_input_rank(tmp_path):
    f = _arrays(tmp_path / "d.npz", shape=(6, 6, 3))
    b = _builder(tmp_path, "    x = norm('vector', 'nv')(layers.Conv2D(4, 3)(x))\n    x = layers.Flatten()(x)\n")
    r = cli("validate", _cfg(tmp_path, {"arch": f"{b}:build", "norm": "layer"}, {"name": "arrays", "path": str(f)}))
    assert error_line(r) == (f"Error: model.arch: {b}:build: slot nv is norm('vector'), which takes rank-2 input, but its "
                             "input is (None, 4, 4, 4); use norm('conv')")


# ----------------------------------------------------------------------------- data and outputs


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_data_is_refused(tmp_path, label):
    f = _arrays(tmp_path / "d.npz", y=label)
    model = {"layers": [{"Dense": {"units": 4}}, {"norm": "vector"}, {"Dense": {"units": 2, "activation": "softmax"}}],
             "norm": "batch"}
    p = _cfg(tmp_path, model, {"name": "arrays", "path": str(f)})
    expected = (f"Error: data.path: {f}: y_train holds one class only ({label}); a comparison needs examples of two "
                "classes or more; fix the labels")
    assert error_line(cli("validate", p)) == expected
    assert error_line(cli("run", p, "--quiet")) == expected
    assert _no_run_folder(tmp_path)


def test_one_class_image_folder_is_refused(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / "img" / split / "cat").mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(tmp_path / "img" / split / "cat" / "0.png")
    model = {"layers": [{"Flatten": {}}, {"Dense": {"units": 4}}, {"norm": "vector"}, {"Dense": {"units": 1}}],
             "norm": "batch"}
    p = _cfg(tmp_path, model, {"name": "image_folder", "path": str(tmp_path / "img"), "image_size": [8, 8]})
    assert error_line(cli("validate", p)) == ("Error: model.layers: the data has one class only; a comparison needs "
                                              "examples of two classes or more; fix the labels")


@pytest.mark.parametrize("case", ["multi-output", "sequence-output"])
def test_outputs_a_classification_loss_cannot_take_are_refused_in_validate(tmp_path, case):
    f = _arrays(tmp_path / "d.npz", shape=(5, 4), classes=3)
    if case == "multi-output":
        saved = _save(tmp_path / "m.keras", """
inp = keras.Input((5, 4))
h = layers.BatchNormalization()(layers.Flatten()(inp))
model = keras.Model(inp, [layers.Dense(3, activation="softmax")(h), layers.Dense(1)(h)])""")
        expected = ("Error: model.from: the model has 2 outputs; normbench trains one classification output (one value "
                    "per class); keep one output of 3 units")
    else:
        saved = _save(tmp_path / "m.keras", """
inp = keras.Input((5, 4))
h = layers.BatchNormalization()(layers.Dense(6)(inp))
model = keras.Model(inp, layers.Dense(3, activation="softmax")(h))""")
        expected = ("Error: model.from: the model's output has shape (None, 5, 3), a classification loss takes one vector "
                    "per example, (None, 3); end with pooling or Flatten and a Dense of 3 units")
    p = _cfg(tmp_path, {"from": str(saved), "norm": "layer"}, {"name": "arrays", "path": str(f)})
    assert error_line(cli("validate", p)) == expected
    assert error_line(cli("run", p, "--quiet")) == expected
    assert _no_run_folder(tmp_path)


# ----------------------------------------------------------------------------- variable length, InputLayer


def test_variable_length_inputs_and_input_layer_are_accepted(tmp_path):
    saved = _save(tmp_path / "varlen.keras", """
inp = keras.Input((None, 4))
h = layers.LayerNormalization(name="ln")(layers.Dense(6)(inp))
model = keras.Model(inp, layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling1D()(h)))""")
    f = _arrays(tmp_path / "d.npz", shape=(7, 4))
    data = {"name": "arrays", "path": str(f)}
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "rms"}, data))
    assert r.exit_code == 0, r.output
    assert "# slot ln: sequence, input (None, None, 6), LayerNormalization(axis=[-1]) -> RMSNormalization(axis=[-1])" in r.output
    layers = [{"InputLayer": {"shape": [None, 4]}}, {"Dense": {"units": 6}}, {"norm": "sequence"},
              {"GlobalAveragePooling1D": {}}, {"Dense": {"units": 2, "activation": "softmax"}}]
    r = cli("run", _cfg(tmp_path, {"layers": layers, "norm": "layer"}, data), "--quiet")
    assert r.exit_code == 0, r.output


# ----------------------------------------------------------------------------- custom objects

TOKEN_AND_POSITION = '''import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="{package}")
class {name}(layers.Layer):
    """keras.io's text classification with Transformer: token and position embedding."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = ops.arange(start=0, stop=ops.shape(x)[-1], step=1)
        return self.token_emb(x) + self.pos_emb(positions)

    def get_config(self):
        return {{**super().get_config(), "maxlen": self.maxlen, "vocab_size": self.vocab_size,
                 "embed_dim": self.embed_dim}}
'''


def _text_model(tmp_path, name):
    objects = tmp_path / "text_layers.py"
    objects.write_text(TOKEN_AND_POSITION.format(package=f"nb_test_{name}", name=name))
    saved = _save(tmp_path / "text.keras", f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from text_layers import {name}
inp = keras.Input((10,), dtype="int32")
h = {name}(10, 50, 8, name="embed")(inp)
h = layers.LayerNormalization(epsilon=1e-6, name="ln_1")(h)
h = layers.GlobalAveragePooling1D()(h)
h = layers.Dense(8, activation="relu", name="ffn")(h)
h = layers.LayerNormalization(epsilon=1e-6, name="ln_2")(h)
model = keras.Model(inp, layers.Dense(2, activation="softmax", name="head")(h))""", fresh=True)
    rng = np.random.default_rng(0)
    f = _npz(tmp_path / "tokens.npz", rng.integers(0, 50, (96, 10)).astype("int32"), np.arange(96) % 2,
             rng.integers(0, 50, (32, 10)).astype("int32"), np.arange(32) % 2)
    return objects, saved, {"name": "arrays", "path": str(f)}


def test_a_saved_model_with_a_custom_layer_runs_validate_sweep_compare(tmp_path):
    """keras.io's TokenAndPositionEmbedding with norm layers in the graph: with
    model.custom_objects it validates, sweeps over norms and compares."""
    objects, saved, data = _text_model(tmp_path, "TokenAndPositionEmbedding")
    p = _cfg(tmp_path, {"from": str(saved), "norm": "layer", "custom_objects": str(objects)}, data)
    r = cli("validate", p)
    assert r.exit_code == 0, r.output
    assert "# x as the model gets it: int32, shape [10] per example, values 0 to 49" in r.output
    assert [line.split(":")[0] for line in r.output.splitlines() if line.startswith("# slot")] == ["# slot ln_1", "# slot ln_2"]
    r = cli("sweep", p, "--grid", "model.norm=layer,none")
    assert r.exit_code == 0, r.output
    from normbench.analysis.runs import load_runs

    runs = load_runs([str(tmp_path / "results")])
    assert sorted(r.summary["norm"] for r in runs) == ["layer", "none"] and all(r.completed for r in runs)
    assert all(r.summary["norm_slots_verified"] == 2 for r in runs)
    r = cli("compare", str(tmp_path / "results"))
    assert r.exit_code == 0, r.output
    assert f"{saved} on arrays" in r.output


def test_a_missing_custom_class_names_the_class_and_the_fix(tmp_path):
    objects, saved, data = _text_model(tmp_path, "MissingEmbedding")
    r = cli("validate", _cfg(tmp_path, {"from": str(saved), "norm": "layer"}, data))
    assert error_line(r) == (f"Error: model.from: {saved} uses the custom class MissingEmbedding, which Keras cannot "
                             "find; give the .py file or module that defines it: model.custom_objects: layers.py")


def test_a_saved_transformer_block_with_norms_in_its_code_is_refused_naming_it(tmp_path):
    """keras.io's TransformerBlock keeps its LayerNormalization layers as attributes used
    in its call: with its class supplied the model loads, and is refused in one line
    naming the layer (never a comparison of unswapped models)."""
    objects = tmp_path / "blocks.py"
    objects.write_text("""import keras
from keras import layers


@keras.saving.register_keras_serializable(package="nb_test_blocks")
class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.ffn = layers.Dense(embed_dim)
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6, name="layernorm1")

    def call(self, x):
        return self.layernorm1(x + self.ffn(x))

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim}
""")
    saved = _save(tmp_path / "tb.keras", f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from blocks import TransformerBlock
inp = keras.Input((5, 4))
h = layers.LayerNormalization(name="ln_graph")(layers.Dense(8)(inp))
h = TransformerBlock(8, name="transformer_block")(h)
model = keras.Model(inp, layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling1D()(h)))""", fresh=True)
    f = _arrays(tmp_path / "d.npz", shape=(5, 4))
    p = _cfg(tmp_path, {"from": str(saved), "norm": "batch", "custom_objects": str(objects)},
             {"name": "arrays", "path": str(f)})
    expected = ("Error: model.from: layer transformer_block (TransformerBlock) holds layernorm1 (LayerNormalization) "
                "inside its own Python code, where normbench cannot swap it; expose its norms: write a builder "
                "(model.arch: file.py:function) that creates them with norm('sequence'|'conv'|'vector') "
                "(docs/own-model.md)")
    assert error_line(cli("validate", p)) == expected
    assert error_line(cli("run", p, "--quiet")) == expected
    assert _no_run_folder(tmp_path)


def test_a_truncated_keras_file_is_not_called_missing(tmp_path):
    saved = _save(tmp_path / "ok.keras", "inp = keras.Input((6,))\n"
                  "model = keras.Model(inp, layers.Dense(2)(layers.BatchNormalization()(inp)))")
    bad = tmp_path / "cut.keras"
    bad.write_bytes(saved.read_bytes()[:200])
    f = _arrays(tmp_path / "d.npz")
    r = cli("validate", _cfg(tmp_path, {"from": str(bad), "norm": "layer"}, {"name": "arrays", "path": str(f)}))
    assert error_line(r) == (f"Error: model.from: {bad} is not a valid .keras archive (a zip file, as model.save writes "
                             "it: truncated or corrupt?); save the model again")


# ----------------------------------------------------------------------------- what validate shows


def test_validate_shows_what_the_model_is_fed_and_hides_keys_that_do_not_apply(tmp_path):
    rng = np.random.default_rng(0)
    f = _npz(tmp_path / "px.npz", rng.integers(0, 256, (32, 6, 6, 3)).astype("uint8"), np.arange(32) % 2,
             rng.integers(0, 256, (8, 6, 6, 3)).astype("uint8"), np.arange(8) % 2)
    model = {"layers": [{"Flatten": {}}, {"Dense": {"units": 4}}, {"norm": "vector"}, {"Dense": {"units": 2}}],
             "norm": "layer"}
    r = cli("validate", _cfg(tmp_path, model, {"name": "arrays", "path": str(f)}))
    assert r.exit_code == 0, r.output
    (fed,) = [line for line in r.output.splitlines() if line.startswith("# x ")]
    lo, hi = int(min(np.load(f)["x_train"].min(), np.load(f)["x_test"].min())), int(
        max(np.load(f)["x_train"].max(), np.load(f)["x_test"].max()))
    assert fed == (f"# x as the model gets it: uint8, shape [6, 6, 3] per example, values {lo} to {hi} (not rescaled: if "
                   "your model expects [0, 1] or [-1, 1], scale inside it, e.g. a Rescaling layer)")
    shown = yaml.safe_load(r.output.split("# data:")[0])
    assert "num_words" not in shown["data"] and "maxlen" not in shown["data"]
    assert not {"unroll", "rnn", "norm_placement"} & set(shown["model"])
    assert ("# not read by this model and data (not shown): model.unroll, model.rnn, model.norm_placement, "
            "data.num_words, data.maxlen") in r.output
