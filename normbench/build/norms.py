"""Normalization layers by name: one table, no `if norm:` anywhere in model code.

Every norm slot in a model calls `make_norm(name, where, groups)`, where `where` says
what the slot normalizes:

- "conv":     a feature map (batch, height, width, channels)
- "sequence": a sequence-returning RNN's output (batch, time, units)
- "vector":   a flat feature vector (batch, units)

What each norm normalizes in each kind of slot, its formula and why it is built so are
its `NORMS` entry (a `Norm`); docs/norms.md is rendered from them (`python -m
normbench.build.norms > docs/norms.md`; tests/test_docs.py checks the committed page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from normbench.core.errors import NormbenchError

SLOTS = ("conv", "sequence", "vector")


def _batch(where, groups, **kw):
    from normbench.build.layers import FusedBatchNormalization  # Keras' layer, one fused kernel on TensorFlow

    return FusedBatchNormalization(**kw)


def _layer(where, groups, **kw):
    from keras import layers

    return layers.LayerNormalization(axis=[1, 2, 3] if where == "conv" else -1, **kw)


def _group(where, groups, **kw):
    from keras import layers

    return layers.GroupNormalization(groups=groups, axis=-1, **kw)


def _rms(where, groups, **kw):
    from keras import layers

    return layers.RMSNormalization(axis=[1, 2, 3] if where == "conv" else -1, **kw)


def _instance(where, groups, **kw):
    from keras import layers

    if where == "vector":  # as PyTorch's InstanceNorm1d refuses (N, C): each group would hold one value
        raise NormbenchError("norm 'instance' has nothing to normalize in a vector slot (one value per channel and "
                             "sample, so it would output beta whatever the input); use a model whose slots are "
                             "conv or sequence maps, or another norm")
    return layers.GroupNormalization(groups=-1, axis=-1, **kw)  # groups=-1: one group per channel


def _dyt(where, groups, **kw):
    from normbench.build.layers import DyT  # Dynamic Tanh (Zhu et al. 2025)

    return DyT(**kw)


def _none(where, groups, **kw):
    from keras import layers

    return layers.Identity(**kw)


@dataclass(frozen=True)
class Norm:
    """One norm: how it is built, and what docs/norms.md says of it (rendered from here)."""

    build: Callable  # (where, groups, **layer_kwargs) -> a Keras layer; where: one of SLOTS
    layer: str  # the Keras layer it is (docs/norms.md's "layer" column)
    conv: str  # what it normalizes on a conv map (N, H, W, C)
    sequence: str  # ... after SimpleRNN(return_sequences) (N, T, U)
    vector: str  # ... on a vector (N, U)
    notes: str = ""  # its paragraph in docs/norms.md: formula, defaults, why (Markdown)


# name -> Norm; the order is the order of the choices in errors and in docs/norms.md
NORMS = {
    "batch": Norm(
        _batch,
        layer="`BatchNormalization()`, fused (below)",
        conv="per channel, over N, H, W",
        sequence="per unit, over N and T",
        vector="per unit, over N",
        notes="""\
`batch` is `normbench.build.layers.FusedBatchNormalization`: Keras 3's `BatchNormalization`
(same weights, names and initializers, so backups and `set_weights` move between the
two) whose training call on TensorFlow runs one fused kernel (`FusedBatchNormV3`,
oneDNN's on a CPU) forward and one back, as tf.keras 2's layer did by default; Keras 3
runs it as several plain ops. The mathematics is Keras 3's: normalize with the batch's
mean and population variance, and move the moving statistics towards the batch's mean
and **population** variance (the kernel returns the variance with Bessel's correction;
it is taken back). Only rounding differs; inference, masks, renorm, another axis or
another backend are Keras' own call. Runs from normbench 0.2.0 on (`versions.normbench`
in summary.json) train with it; the studies committed before that used Keras' layer.
Why and what it buys: [benchmarks/RESULTS.md](../benchmarks/RESULTS.md) ("The CNN's
training step, per op"); tests/test_fused_norm.py checks it against Keras' layer and
NumPy.
""",
    ),
    "layer": Norm(
        _layer,
        layer="`LayerNormalization`",
        conv="per sample over H, W, C: `axis=[1, 2, 3]`",
        sequence="per sample and time step, over U",
        vector="per sample, over U",
        notes="""\
`layer` on a conv map normalizes each sample over all of its features, as Ba et al.
define layer normalization and as the tutorial describes it; Keras' default `axis=-1`
would normalize each pixel over its channels only. Its gain and bias are per (h, w, c)
unit.
""",
    ),
    "group": Norm(
        _group,
        layer="`GroupNormalization(model.norm_groups)`",
        conv="per sample and channel group, over H, W",
        sequence="per sample and group, over T",
        vector="per sample and group",
        notes="""\
`group` checks that `model.norm_groups` (default 8) divides every normalized
channel count (Keras' default of 32 groups would silently be instance norm on a
32-channel conv).
""",
    ),
    "rms": Norm(
        _rms,
        layer="`RMSNormalization`",
        conv="like `layer`, no centering: `axis=[1, 2, 3]`",
        sequence="like `layer`",
        vector="like `layer`",
        notes="""\
`rms` is `keras.layers.RMSNormalization`, not
`LayerNormalization(rms_scaling=True)`, which Keras itself warns scales wrongly.
""",
    ),
    "instance": Norm(
        _instance,
        layer="`GroupNormalization(groups=-1)`: one group per channel",
        conv="per sample and channel, over H, W",
        sequence="per sample and unit, over T",
        vector="refused (one value per group: the output would be `beta` whatever the input)",
        notes="""\
**`instance`** (Ulyanov et al. 2016) normalizes each sample's channel over the remaining
axes, exactly `y = (x - mean) / sqrt(var + 1e-3) * gamma + beta` with mean and
(population) variance over H, W (conv) or T (sequence) per sample and channel, `gamma`
(init 1) and `beta` (init 0) per channel; 1e-3 is Keras' `GroupNormalization` default.
A vector slot (the CNN's and the RNN's last norm) has a single value per channel, so
the norm is refused there, not silently replaced (as PyTorch's `InstanceNorm1d` refuses
an (N, C) input): `validate` and `run` stop before any compute with `model.norm: instance
has nothing to normalize in cifar10_cnn's vector norm slot (one value per channel); ...`
(each registered model lists its slot kinds: `@register(slots=...)`); the `imdb_transformer`'s slots are all
sequence slots.
""",
    ),
    "dyt": Norm(
        _dyt,
        layer="`normbench.build.layers.DyT` (Dynamic Tanh)",
        conv="elementwise, no statistics",
        sequence="elementwise",
        vector="elementwise",
        notes="""\
**`dyt`**, Dynamic Tanh (Zhu, Chen, He, LeCun and Liu, CVPR 2025, "Transformers without
Normalization"), replaces the norm by a squashing function with no statistics:
`y = gamma * tanh(alpha * x) + beta`, elementwise, where `alpha` is **one** learnable
scalar per layer initialised at 0.5 (the paper's default), and `gamma` (init 1) and
`beta` (init 0) have one value per channel (the last axis) in every slot kind. It
behaves the same in training and inference and across the batch (no batch statistics).
Weights `alpha`, `gamma`, `beta`: 2C + 1 parameters. tests/test_norms.py checks both
norms against NumPy in each slot kind, and that a saved model (a resume backup) loads
them back.
""",
    ),
    "none": Norm(
        _none,
        layer="`Identity()`",
        conv="–",
        sequence="–",
        vector="–",
    ),
}


# the norms that can also normalize inside an RNN's recurrence (model.norm_placement:
# recurrent, layers.HoistedSimpleRNN's `norm`); "none" there is the plain cell
CELL_NORMS = ("layer", "rms")
RECURRENT_NORMS = (*CELL_NORMS, "none")  # the model.norm values norm_placement: recurrent accepts


def make_norm(name: str, where: str, groups: int = 8, layer_name: str | None = None):
    """Build the norm layer `name` for a slot of kind `where` (see the module docstring).
    `layer_name` names the Keras layer (stable names keep resume backups loadable)."""
    if name not in NORMS:
        raise NormbenchError(f"unknown norm {name!r}; choose one of: {', '.join(NORMS)}")
    if where not in SLOTS:
        raise ValueError(f"unknown norm slot {where!r}; one of {SLOTS}")
    return NORMS[name].build(where, groups, **({"name": layer_name} if layer_name else {}))


def slot_norm(m, name: str, kind: str, default: str | None = None) -> str:
    """The norm of one slot (model.norms): its name's entry, else its kind's, else `default`
    (the slot's own, e.g. the MLP's input slot: params.input_norm), else model.norm."""
    norms = m.norms or {}
    return norms.get(name, norms.get(kind, default if default is not None else m.norm))


DOC_COMMAND = "python -m normbench.build.norms > docs/norms.md"

_DOC_INTRO = """\
`model.norm` is looked up in one table (`normbench/build/norms.py`); `none` is an `Identity`
layer, so the model code has no `if norm:` branch. Unknown names list the choices.
"""

# where the norm slots sit in the built-in models (each model's own code: models.py)
_DOC_MODELS = """\
Both models are the tutorial's, layer for layer (see `normbench/build/models.py`; a new
model is a function registered with `@register("name", ...)`):

- `imdb_rnn`: Embedding(10000, 128) → SimpleRNN(32, return_sequences) → norm →
  SimpleRNN(32) → norm → Dense(1, sigmoid); binary cross-entropy.
- `cifar10_cnn`: 3 × [Conv2D(32/64/128, 3×3, relu) → norm → MaxPool] → Flatten →
  Dense(128, relu) → norm → Dense(10, softmax); sparse categorical cross-entropy.

- `imdb_transformer` (not the tutorial's; configs/imdb_transformer_{pre,post}.yaml): the
  IMDB token ids exactly as `imdb_rnn` reads them (10,000 words, 200 tokens, no mask) →
  Embedding(10000, d) + a learned position embedding (`normbench.build.layers.PositionEmbedding`)
  → `blocks` × [MultiHeadAttention(`heads`, key_dim d/`heads`) self-attention and a
  feed-forward Dense(`ff_dim`, relu) → Dense(d), each sublayer's output through
  Dropout(`dropout`) into a residual sum] → (final norm) → mean over the 200 steps →
  Dense(1, sigmoid); binary cross-entropy. Its options are its `model.params`
  (`TransformerParams` in normbench/build/models.py; defaults d = `embed_dim` 32, 2 heads,
  1 block, `ff_dim` 64, `dropout` 0.1, near keras.io's text Transformer). Every norm slot
  is a sequence slot (N, 200, d), so `layer` normalizes each token over its d units and
  `batch` each unit over the batch and the 200 steps. `model.params.norm_placement`
  places them:

  ```
  post (Vaswani et al. 2017, the original):  x = norm_1(x + drop(attn(x, x)))
                                             x = norm_2(x + drop(ff(x)))
  pre  (Xiong et al. 2020, "pre-LN"):        x = x + drop(attn(h, h)), h = norm_1(x)
                                             x = x + drop(ff(norm_2(x)))
                                             ... after the last block: x = final_norm(x)
  ```

  `model.params.final_norm` (null = on for pre, off for post) adds or drops the final
  slot. Layer names are fixed (`block{b}_norm_{1,2}`, `final_norm`, `block{b}_attention`,
  `block{b}_ff`, `block{b}_add_{1,2}`), and tests/test_transformer.py checks each
  placement's connections on the built model.

All configs train with Adam (learning rate 0.001), `validation_split: 0.2` (Keras takes
the last 20 % of the training arrays), and seed everything with
`keras.utils.set_random_seed`.
"""

# imdb_rnn's recurrent options: the norm inside the recurrence (layers.HoistedSimpleRNN)
_DOC_RECURRENT = """\
## The IMDB model's recurrent layers: `model.rnn`, `model.norm_placement`, `model.unroll`

Only `imdb_rnn` reads these keys (its `@register(options=...)` in `normbench/build/models.py`);
any other model, built-in or your own, refuses each one set away from its default instead
of ignoring it.

| key | values | what it does |
|---|---|---|
| `model.rnn` | `keras` (code default) / `fast` (`configs/imdb_*.yaml`) | `keras.layers.SimpleRNN`, or normbench's `HoistedSimpleRNN` (`normbench/build/layers.py`): the same `h_t = tanh(x_t W + b + h_{t-1} U)`, but `x W + b` is one matrix product over all 200 time steps before the loop, which then carries only `tanh(xw_t + h U)`. Same weights (`kernel`, `recurrent_kernel`, `bias`: names, shapes, order, initializers, 5,152 + 2,080 parameters for the two layers), same outputs to float tolerance, and the same initial weights after the same seed (tests check all three); masks are refused (the model has none). |
| `model.norm_placement` | `between` (default) / `recurrent` | `between`: the norm slots after each RNN layer, as the tutorial. `recurrent`: layer normalization inside the recurrence, as Ba et al. (2016, §3.1) define it; see below. |
| `model.unroll` | `false` (code default) / `true` / `auto` (`configs/imdb_*.yaml`) / an integer K ≥ 2 | `true` unrolls either implementation (`keras`: `SimpleRNN(unroll=True)`; `fast`: a Python loop over the steps instead of `keras.ops.scan`). `auto`: unrolled on TensorFlow, except with a normalized recurrent cell; never on JAX. K (`rnn: fast` or the recurrent cell only): a scan over chunks of K unrolled steps, bit-identical to the scan; on this CPU it keeps only half of unrolling's per-step gain and saves ~1 s of tracing, so `auto` never picks it ([RESULTS](../benchmarks/RESULTS.md#partially-unrolled-loop-modelunroll-k-issue-23-measured-and-not-taken)). |

**`norm_placement: recurrent`** (`norm: layer`, `rms` or `none`). Each RNN layer becomes
`HoistedSimpleRNN(norm=...)`, whatever `model.rnn` says (Keras has no such layer), and
computes at every time step, per sample:

```
a_t = x_t W + h_{t-1} U                       (no bias: beta replaces it; for layer, centering would cancel one)
layer: h_t = tanh(gamma * (a_t - mean(a_t)) / sqrt(var(a_t) + 1e-3) + beta)
rms:   h_t = tanh(gamma * a_t / sqrt(mean(a_t^2) + 1e-6) + beta)
```

mean and (population) variance over the 32 units of that sample at that step; `gamma`
(init 1) and `beta` (init 0) have one value per unit, shared over time, as Ba et al.'s
gain and bias; epsilon is Keras' own default for `LayerNormalization` / `RMSNormalization`.
`rms` keeps `beta` so the cell still has a bias. The two slots between the layers become
`Identity`: Ba et al. normalize inside the recurrence only, and `between` against
`recurrent` then differs in placement, not in the number of normalizations. Parameters:
1,287,329 (against 1,287,393 with `between`: two RNN biases and two LayerNormalization
slots out, a gamma and beta per cell in). `norm: none` with `recurrent` is the plain
cell, the control. `norm: batch` is refused (`recurrent cannot use norm 'batch': batch
norm inside the recurrence needs per-time-step batch statistics (Cooijmans et al.
2016), which are not implemented; ...`), as is `group`. `unroll: auto` keeps the
normalized cell rolled on TensorFlow: unrolled, its graph took ~5× longer to trace (125 s
against 24 s on a loaded machine) for 27 % less per step, which pays off only after
~3,700 steps (a tutorial run has 1,565; estimated from those two figures, not timed end to
end); `--set model.unroll=true` still unrolls it. The normalized cell costs 1.25× the plain
hoisted cell's step rolled on TensorFlow and 1.3× on JAX (benchmarks/RESULTS.md,
"Recurrent layers").
"""


def _cell(text: str) -> str:
    return text.replace("|", chr(92) + "|")


def describe_markdown() -> str:
    """docs/norms.md: every norm's row and paragraph from NORMS, then where the models put
    their slots and imdb_rnn's recurrent options (so the page cannot drift from the table)."""
    header = ("| `model.norm` | layer | on a conv map (N, H, W, C) | after `SimpleRNN(return_sequences)` (N, T, U) "
              "| on a vector (N, U) |")
    rows = [header, "|---|---|---|---|---|"]
    rows += [f"| `{name}` | {' | '.join(_cell(c) for c in (n.layer, n.conv, n.sequence, n.vector))} |"
             for name, n in NORMS.items()]
    parts = [
        "# Norms, and exactly what they normalize\n",
        f"*Generated by `{DOC_COMMAND}` from the `NORMS` table in `normbench/build/norms.py` (each norm's "
        "entry holds its row and its paragraph); edit that, then rerun the command. `tests/test_docs.py` fails "
        "when this file differs from what it renders.*\n",
        _DOC_INTRO,
        "\n".join(rows) + "\n",
        *(n.notes for n in NORMS.values() if n.notes),
        _DOC_MODELS,
        _DOC_RECURRENT,
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    import sys

    sys.stdout.write(describe_markdown())
