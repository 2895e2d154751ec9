"""imdb_transformer: pre and post norm placement build the documented graphs (checked on
the built model's connections), its params are checked with one-line errors, and it
learns the synthetic IMDB rule well above chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, cli
from normbench import NormbenchError
from normbench.schema.config import from_dict
from normbench.build.models import TRANSFORMER_PLACEMENTS, build_model


def _model(norm="layer", **params):
    cfg = from_dict({"name": "t", "data": {"name": "synthetic_imdb"},
                     "model": {"arch": "imdb_transformer", "norm": norm, "params": params}})
    return build_model(cfg, 2)


def _source(tensor) -> str:
    """The name of the layer that produced a Keras tensor."""
    return tensor._keras_history.operation.name


def _inputs(model, name) -> list[str]:
    """The layers feeding layer `name` (its call's tensor arguments, in order)."""
    node = model.get_layer(name)._inbound_nodes[0]
    return [_source(t) for t in node.input_tensors]


def test_post_placement_normalizes_each_residual_sum():
    """post (Vaswani et al.): x = norm_1(x + attn(x)); x = norm_2(x + ff(x)); no final norm."""
    m = _model(norm_placement="post", blocks=2)
    for b, x_in in ((1, "position"), (2, "block1_norm_2")):
        assert _inputs(m, f"block{b}_attention") == [x_in, x_in]  # self-attention on the stream
        assert _inputs(m, f"block{b}_add_1") == [x_in, f"block{b}_dropout_1"]
        assert _inputs(m, f"block{b}_norm_1") == [f"block{b}_add_1"]
        assert _inputs(m, f"block{b}_ff") == [f"block{b}_norm_1"]
        assert _inputs(m, f"block{b}_add_2") == [f"block{b}_norm_1", f"block{b}_dropout_2"]
        assert _inputs(m, f"block{b}_norm_2") == [f"block{b}_add_2"]
    assert _inputs(m, "pool") == ["block2_norm_2"]
    assert "final_norm" not in [layer.name for layer in m.layers]


def test_pre_placement_normalizes_each_branch_and_the_output():
    """pre (Xiong et al. 2020): x = x + attn(norm_1(x)); x = x + ff(norm_2(x)); final norm."""
    m = _model(norm_placement="pre", blocks=2)
    for b, x_in in ((1, "position"), (2, "block1_add_2")):
        assert _inputs(m, f"block{b}_norm_1") == [x_in]
        assert _inputs(m, f"block{b}_attention") == [f"block{b}_norm_1", f"block{b}_norm_1"]
        assert _inputs(m, f"block{b}_add_1") == [x_in, f"block{b}_dropout_1"]  # the residual skips the norm
        assert _inputs(m, f"block{b}_norm_2") == [f"block{b}_add_1"]
        assert _inputs(m, f"block{b}_ff") == [f"block{b}_norm_2"]
        assert _inputs(m, f"block{b}_add_2") == [f"block{b}_add_1", f"block{b}_dropout_2"]
    assert _inputs(m, "final_norm") == ["block2_add_2"]
    assert _inputs(m, "pool") == ["final_norm"]


def test_norm_slots_are_the_chosen_norm_per_token():
    """Each slot is model.norm on the (N, T, embed_dim) stream; final_norm can be switched."""
    import keras

    m = _model("layer", norm_placement="pre", embed_dim=16, heads=4, ff_dim=24)
    norms = [layer for layer in m.layers if "norm" in layer.name]
    assert [n.name for n in norms] == ["block1_norm_1", "block1_norm_2", "final_norm"]
    assert all(isinstance(n, keras.layers.LayerNormalization) and list(n.axis) == [-1] for n in norms)
    assert all(tuple(n.input.shape) == (None, 200, 16) for n in norms)
    assert m.get_layer("block1_attention")._num_heads == 4 and m.get_layer("block1_attention")._key_dim == 4
    assert [n.name for n in m.layers if "norm" in n.name] == ["block1_norm_1", "block1_norm_2", "final_norm"]
    post_final = _model("dyt", norm_placement="post", final_norm=True)
    assert _inputs(post_final, "final_norm") == ["block1_norm_2"]
    assert type(post_final.get_layer("final_norm")).__name__ == "DyT"
    pre_without = _model("none", norm_placement="pre", final_norm=False)
    assert "final_norm" not in [layer.name for layer in pre_without.layers]
    assert type(pre_without.get_layer("block1_norm_1")).__name__ == "Identity"


@pytest.mark.parametrize("params, message", [
    ({"norm_placement": "between"}, f"model.params.norm_placement: unknown norm placement 'between'; choose one of: {', '.join(TRANSFORMER_PLACEMENTS)}"),
    ({"embed_dim": 30, "heads": 4}, "model.params.heads: 4 heads do not divide embed_dim 30; choose heads that divide it, e.g. 2"),
    ({"dropout": 1.0}, "model.params.dropout: must be >= 0 and < 1, got 1.0; e.g. 0.1"),
])
def test_params_errors_are_one_line(params, message):
    with pytest.raises(NormbenchError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        _model(**params)


def test_a_flat_norm_placement_points_to_params():
    with pytest.raises(NormbenchError, match=r"model\.norm_placement: imdb_transformer reads its placement from "
                                             r"model\.params\.norm_placement; move it there"):
        from_dict({"name": "t", "data": {"name": "synthetic_imdb"},
                   "model": {"arch": "imdb_transformer", "norm": "layer", "norm_placement": "pre"}})


def test_group_norm_checks_the_width():
    with pytest.raises(NormbenchError, match="model.norm_groups: 3 groups do not divide the 32 channels that "
                                             "imdb_transformer normalizes; use one of: 1, 2, 4, 8, 16, 32"):
        from_dict({"name": "t", "data": {"name": "synthetic_imdb"},
                   "model": {"arch": "imdb_transformer", "norm": "group", "norm_groups": 3}})


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_transformer_learns_the_synthetic_rule(out, placement):
    """The synthetic IMDB label is which of two marker-word sets occurs more: the smoke
    config (2,000 reviews, 3 epochs) reaches test accuracy well above chance (0.5)."""
    r = cli("run", REPO / f"configs/smoke/imdb_transformer_{placement}.yaml", "-q", "--set", f"output.dir={out}")
    assert r.exit_code == 0, r.output
    run_dir = Path(r.output.strip().rsplit(" -> ", 1)[1])
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "completed" and s["model"] == "imdb_transformer"
    assert s["test_accuracy"] > 0.8, s
