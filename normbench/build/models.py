"""Model builders, registered by name. Keras is imported inside the builders only.

Each builder reproduces one of the tutorial's architectures; every norm slot is a
`make_norm(...)` call, so `model.norm: none` gives an Identity layer, not a branch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional

from normbench.core.errors import NormbenchError
from normbench.build.norms import RECURRENT_NORMS, make_norm, slot_norm


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable  # (model_config, data_config, num_classes, input_dtype, input_shape) -> keras.Model
    data_kind: str  # "sequence" (token ids) or "image"
    loss: str
    norm_channels: tuple[int, ...]  # channel count at each norm slot, for group checks
    description: str
    placements: tuple[str, ...] = ("between",)  # model.norm_placement values it implements
    # the model.* keys beyond norm and norm_groups that its builder reads (any other model,
    # a user's included, refuses them when set: refuse_unread)
    options: tuple[str, ...] = ()
    # the model's own options: a frozen dataclass (typed fields with defaults) that config
    # parses `model.params: {...}` into (model.params in the builder); None = none
    params: type | None = None
    check: Callable | None = None  # (model_config, where) -> None: rules on its params
    slots: tuple[str, ...] = ()  # the norm slot kinds it builds (norms.SLOTS), for norms refused in some
    # the one example shape it is built for (cifar10_cnn: 32x32x3); None = any, read from the
    # data (data.DATASETS' entry); check refuses data of another shape, naming the key to fix
    input_shape: tuple | None = None


MODELS: dict[str, ModelSpec] = {}


def register(name, *, data_kind, loss, norm_channels, description, placements=("between",), options=(), params=None,
             check=None, slots=(), input_shape=None):
    """Register a builder `fn(model_config, data_config, num_classes, input_dtype, input_shape)`
    (input_shape: one example's, from the data's DATASETS entry or its file; a builder that
    needs one shape passes `input_shape=` here, and check refuses other data).
    A model with options of its own passes `params=` a frozen dataclass (each field typed,
    with a default: users write `model.params: {field: value}`, `--set model.params.field=v`)
    and, for rules beyond the types, `check=` a function (model_config, where) raising
    `where.error("model.params.field", "what; fix")`. `options=` names the flat model.*
    keys (ModelConfig fields, e.g. unroll) the builder reads beyond norm and norm_groups."""
    def wrap(fn):
        MODELS[name] = ModelSpec(name, fn, data_kind, loss, tuple(norm_channels), description, tuple(placements),
                                 tuple(options), params, check, tuple(slots),
                                 None if input_shape is None else tuple(input_shape))
        return fn

    return wrap


def make_slot(m, kind: str, name: str, default: str | None = None):
    """The norm layer of a built-in model's slot `name` (kind conv | sequence | vector), as
    model.norms and model.norm say; tagged so build_model can check model.norms' keys."""
    layer = make_norm(slot_norm(m, name, kind, default), kind, m.norm_groups, name)
    layer._normbench_slot_key = (name, kind)
    return layer


def check_slot_keys(m, model, who: str) -> None:
    """Every model.norms key names a slot or a slot kind of the built model (a typo would
    otherwise leave that slot at model.norm silently)."""
    if not m.norms:
        return
    slots = []
    for layer in model._flatten_layers(include_self=False):
        key = getattr(layer, "_normbench_slot_key", None)
        if key:
            slots.append(key)
    names, kinds = {n for n, _ in slots}, {k for _, k in slots}
    unknown = [k for k in m.norms if k not in names and k not in kinds]
    if unknown:
        listed = ", ".join(f"{n} ({k})" for n, k in slots) or "none"
        raise NormbenchError(f"model.norms: {who} has no slot or slot kind {unknown[0]!r}; its slots: {listed}")


# Layers carry fixed names: Keras' default names count up per process (embedding_10 ...),
# and a resume backup must load into a model built in another process.
# Every model's output layer ("head") computes in float32 whatever train.precision says:
# a bfloat16 softmax/sigmoid keeps ~3 significant digits, which the float32 loss would
# then take the log of (Keras' mixed-precision guide does the same).

# train.precision -> Keras dtype policy the model's layers are built under (weights stay
# float32 in every policy; "mixed" layers compute in the lower precision).
PRECISIONS = {
    "float32": "everything in float32 (the tutorial's, and the default)",
    "mixed_bfloat16": "layers compute in bfloat16 with float32 weights; the output layer and the loss in float32 "
                      "(faster on a CPU with AVX512_BF16/AMX; benchmarks/cnn_limit.py)",
}


@register(
    "imdb_rnn",
    data_kind="sequence",
    loss="binary_crossentropy",
    norm_channels=(32, 32),
    description="Embedding(10000,128) > SimpleRNN(32, seq) > norm > SimpleRNN(32) > norm > Dense(1, sigmoid)",
    placements=("between", "recurrent"),
    options=("unroll", "rnn", "norm_placement"),
    slots=("sequence", "vector"),
)
def imdb_rnn(model, data, num_classes, input_dtype=None, input_shape=None):  # token ids: always int32
    import keras
    from keras import layers

    # norm_placement: recurrent (Ba et al. 2016) normalizes inside each RNN layer's time loop
    # and leaves the two slots between the layers as Identity, so layer norm sits in the
    # recurrence only, as in the paper (and `between` vs `recurrent` differ in placement,
    # not in the number of normalizations).
    recurrent = model.norm_placement == "recurrent"
    norm = lambda where, name: (make_norm("none", where, model.norm_groups, name) if recurrent  # noqa: E731
                                else make_slot(model, where, name))
    return keras.Sequential(
        [
            keras.Input(shape=input_shape or (data.maxlen,), dtype="int32"),
            layers.Embedding(data.num_words, 128, name="embedding"),
            simple_rnn(model, 32, return_sequences=True, name="rnn_1"),
            norm("sequence", "norm_1"),
            simple_rnn(model, 32, return_sequences=False, name="rnn_2"),
            norm("vector", "norm_2"),
            layers.Dense(1, activation="sigmoid", dtype="float32", name="head"),
        ],
        name=f"imdb_rnn_{model.norm}" + ("_recurrent" if recurrent else ""),
    )


def simple_rnn(model, units, return_sequences, name):
    """A SimpleRNN layer as the model config asks: keras.layers.SimpleRNN (model.rnn: keras),
    normbench's HoistedSimpleRNN (fast: same weights and outputs, input projection out of
    the loop), or with norm_placement: recurrent and norm layer/rms, HoistedSimpleRNN with
    that norm inside the loop (whatever model.rnn says: Keras has no such layer).
    model.unroll (already resolved: true/false unrolls either implementation; an int K,
    HoistedSimpleRNN only, loops over chunks of K unrolled steps)."""
    from keras import layers

    cell_norm = model.norm if model.norm_placement == "recurrent" and model.norm != "none" else None
    if model.rnn == "keras" and cell_norm is None:
        return layers.SimpleRNN(units, return_sequences=return_sequences, unroll=model.unroll, name=name)
    from normbench.build.layers import HoistedSimpleRNN

    return HoistedSimpleRNN(units, return_sequences=return_sequences, unroll=model.unroll, norm=cell_norm, name=name)


@register(
    "cifar10_cnn",
    data_kind="image",
    loss="sparse_categorical_crossentropy",
    norm_channels=(32, 64, 128, 128),
    description="Pixels (uint8 to float32 / 255) > 3 x [Conv2D(32/64/128, 3x3, relu) > norm > MaxPool] > Flatten > Dense(128, relu) > norm > Dense(10, softmax)",
    slots=("conv", "vector"),
    input_shape=(32, 32, 3),  # its three conv/pool blocks are sized for CIFAR-10's images
)
def cifar10_cnn(model, data, num_classes, input_dtype=None, input_shape=None):
    """input_dtype: the images' dtype, uint8 (0-255, the default: what every CIFAR-10
    source gives) or float32 (already in [0, 1]); the first layer, Pixels, scales uint8
    to float32 x / 255 per batch, exactly as NumPy would, so images stay uint8 in memory."""
    import keras
    from keras import layers

    from normbench.build.layers import Pixels

    norm = lambda where, name: make_slot(model, where, name)  # noqa: E731
    blocks = []
    for i, filters in enumerate((32, 64, 128), start=1):
        blocks += [
            layers.Conv2D(filters, (3, 3), activation="relu", name=f"conv_{i}"),
            norm("conv", f"norm_{i}"),
            layers.MaxPooling2D((2, 2), name=f"pool_{i}"),
        ]
    return keras.Sequential(
        [
            keras.Input(shape=MODELS["cifar10_cnn"].input_shape, dtype=input_dtype or "uint8"),
            Pixels(name="pixels"),
            *blocks,
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            norm("vector", "norm_4"),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="head"),
        ],
        name=f"cifar10_cnn_{model.norm}",
    )


@dataclass(frozen=True)
class MLPParams:
    hidden: list = field(default_factory=lambda: [64, 32])  # units of each hidden Dense layer, a norm slot after each
    input_norm: str = "none"  # the norm of the slot on the inputs, named "input" (model.norms can set it too)
    activation: str = "relu"  # of the hidden layers (a keras activation name)


def _check_mlp(m, where) -> None:
    from normbench.core.checks import choice
    from normbench.build.norms import NORMS

    p = m.params
    if not p.hidden or not all(isinstance(u, int) and not isinstance(u, bool) and u >= 1 for u in p.hidden):
        raise where.error("model.params.hidden", f"expected a list of positive layer sizes, e.g. [64, 32], got {p.hidden!r}")
    choice(where, "model.params.input_norm", p.input_norm, NORMS, "norm")
    choice(where, "model.params.activation", p.activation, ACTIVATIONS, "activation")


ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "selu", "swish", "linear")  # model.params.activation


@register(
    "mlp",
    data_kind="tabular",
    loss="sparse_categorical_crossentropy",
    norm_channels=(),
    description="input norm (params.input_norm) > [Dense(h, relu) > norm] for h in params.hidden > Dense(classes, softmax)",
    params=MLPParams,
    check=_check_mlp,
    slots=("vector",),
)
def mlp(model, data, num_classes, input_dtype=None, input_shape=None):
    """A multilayer perceptron for feature vectors (tabular data, or arrays of shape (N, F)):
    a norm slot "input" on the inputs, then one Dense layer and a norm slot per hidden size."""
    import keras
    from keras import layers

    shape = tuple(input_shape)
    if len(shape) != 1:
        raise NormbenchError(f"model mlp: the data's examples have shape {list(shape)}; the MLP takes feature vectors "
                             "(N, features): flatten them, or use another model")
    p = model.params
    stack = [keras.Input(shape=shape, dtype="float32"), make_slot(model, "vector", "input", p.input_norm)]
    for i, units in enumerate(p.hidden, start=1):
        stack += [layers.Dense(units, activation=p.activation, name=f"dense_{i}"), make_slot(model, "vector", f"norm_{i}")]
    stack.append(layers.Dense(num_classes, activation="softmax", dtype="float32", name="head"))
    return keras.Sequential(stack, name=f"mlp_{model.norm}")


# ----------------------------------------------------------------------------- imdb_transformer

TRANSFORMER_PLACEMENTS = ("pre", "post")  # model.params.norm_placement


@dataclass(frozen=True)
class TransformerParams:
    """imdb_transformer's own options (model.params); sizes near the keras.io text Transformer's."""

    norm_placement: str = "pre"  # pre = norm before each sublayer, inside the residual branch (Xiong et al. 2020); post = after each residual sum (Vaswani et al. 2017)
    embed_dim: int = 32  # token/position embedding and model width (keras.io's text Transformer: 32)
    heads: int = 2  # attention heads; each attends in embed_dim / heads dimensions
    blocks: int = 1  # attention + feed-forward blocks
    ff_dim: int = 64  # the feed-forward layer's hidden width (relu)
    dropout: float = 0.1  # on each sublayer's output before the residual sum (keras.io's rate); 0 = none
    final_norm: Optional[bool] = None  # a norm slot after the last block; null = on for pre (Xiong et al.'s final norm), off for post (its last sum is already normalized)


def _check_transformer(m, where) -> None:
    from normbench.core.checks import at_least, choice

    p = m.params
    choice(where, "model.params.norm_placement", p.norm_placement, TRANSFORMER_PLACEMENTS, "norm placement")
    for key in ("embed_dim", "heads", "blocks", "ff_dim"):
        at_least(where, f"model.params.{key}", getattr(p, key), 1)
    if p.embed_dim % p.heads:
        raise where.error("model.params.heads", f"{p.heads} heads do not divide embed_dim {p.embed_dim}; "
                                                "choose heads that divide it, e.g. 2")
    if not 0 <= p.dropout < 1:
        raise where.error("model.params.dropout", f"must be >= 0 and < 1, got {p.dropout}; e.g. 0.1")
    if m.norm == "group" and p.embed_dim % m.norm_groups:
        ok = [g for g in range(1, p.embed_dim + 1) if p.embed_dim % g == 0]
        raise where.error("model.norm_groups", f"{m.norm_groups} groups do not divide the {p.embed_dim} channels "
                                               f"that imdb_transformer normalizes; use one of: {', '.join(map(str, ok))}")


def transformer_slots(params) -> list[str]:
    """The names of the norm slots imdb_transformer builds, in graph order."""
    final = params.norm_placement == "pre" if params.final_norm is None else params.final_norm
    names = [f"block{b}_norm_{k}" for b in range(1, params.blocks + 1) for k in (1, 2)]
    return names + ["final_norm"] * final


@register(
    "imdb_transformer",
    data_kind="sequence",
    loss="binary_crossentropy",
    norm_channels=(),  # its width is a param: _check_transformer checks norm_groups against embed_dim
    description="Embedding + position embedding > N x [multi-head self-attention, feed-forward; residual sums; "
                "norm slots pre or post] > (final norm) > mean over time > Dense(1, sigmoid)",
    params=TransformerParams,
    check=_check_transformer,
    slots=("sequence",),
)
def imdb_transformer(model, data, num_classes, input_dtype=None, input_shape=None):  # token ids: always int32
    """post (Vaswani et al. 2017): x = norm_1(x + attn(x)); x = norm_2(x + ff(x)).
    pre (Xiong et al. 2020):       x = x + attn(norm_1(x)); x = x + ff(norm_2(x)); final norm.
    attn: keras.layers.MultiHeadAttention(heads, key_dim=embed_dim/heads), self-attention,
    no mask (the padded reviews are read whole, as the RNN reads them); ff: Dense(ff_dim,
    relu) > Dense(embed_dim). Every norm slot is a "sequence" slot (N, T, embed_dim)."""
    import keras
    from keras import layers

    from normbench.build.layers import PositionEmbedding

    p = model.params if model.params is not None else TransformerParams()
    norm = lambda name: make_norm(model.norm, "sequence", model.norm_groups, name)  # noqa: E731
    drop = (lambda name: layers.Dropout(p.dropout, name=name)) if p.dropout else (lambda name: (lambda t: t))
    steps = (input_shape or (data.maxlen,))[0]
    tokens = keras.Input(shape=(steps,), dtype="int32", name="tokens")
    x = layers.Embedding(data.num_words, p.embed_dim, name="embedding")(tokens)
    x = PositionEmbedding(steps, name="position")(x)
    pre = p.norm_placement == "pre"
    for b in range(1, p.blocks + 1):
        attention = layers.MultiHeadAttention(p.heads, p.embed_dim // p.heads, name=f"block{b}_attention")
        ff = keras.Sequential([layers.Dense(p.ff_dim, activation="relu", name="hidden"),
                               layers.Dense(p.embed_dim, name="out")], name=f"block{b}_ff")
        for k, sublayer in ((1, lambda h: attention(h, h)), (2, ff)):
            slot = norm(f"block{b}_norm_{k}")
            branch = drop(f"block{b}_dropout_{k}")(sublayer(slot(x) if pre else x))
            x = layers.Add(name=f"block{b}_add_{k}")([x, branch])
            x = x if pre else slot(x)
    if transformer_slots(p)[-1] == "final_norm":
        x = norm("final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    out = layers.Dense(1, activation="sigmoid", dtype="float32", name="head")(x)
    return keras.Model(tokens, out, name=f"imdb_transformer_{model.norm}_{p.norm_placement}")


def readers() -> dict[str, list[str]]:
    """model.* key -> the registered models that read it, for the keys only some read
    (each model's `options`; model.params has its own checks)."""
    keys: dict[str, list[str]] = {}
    for name, spec in MODELS.items():
        for key in spec.options:
            keys.setdefault(key, []).append(name)
    return keys


def refuse_unread(m, where, reads: tuple[str, ...], who: str) -> None:
    """Refuse each model.* key of `readers()` that this model does not read (`reads`: its
    spec's options; a user's model reads none) when set away from its default, which
    would otherwise be silently ignored. `who` names the model in the error."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(m)}
    for key, models in readers().items():
        if key in reads:
            continue
        value, default = getattr(m, key), defaults[key]
        if value != default or type(value) is not type(default):
            raise where.error(f"model.{key}", f"{who} does not read it, only the built-in {' and '.join(models)} "
                                              "does; remove it")


def unused_keys(config) -> list[str]:
    """The config keys this model and data never read (validate does not show them): the
    model.* keys of readers() the model does not read (a user's model reads none), and the
    sequence data's data.num_words and data.maxlen on other data."""
    from normbench.build import usermodels
    from normbench.build.data import DATASETS

    spec = None if usermodels.is_user_model(config.model) else MODELS.get(config.model.arch)
    reads = spec.options if spec else ()
    out = [f"model.{key}" for key in readers() if key not in reads]
    if DATASETS[config.data.name].kind != "sequence":
        out += ["data.num_words", "data.maxlen"]
    return out


def shown_yaml(config) -> str:
    """The resolved config as validate shows it: without unused_keys(), named in a comment."""
    import yaml

    hidden, shown = unused_keys(config), config.to_dict()
    for key in hidden:
        section, name = key.split(".")
        shown[section].pop(name, None)
    note = f"# not read by this model and data (not shown): {', '.join(hidden)}\n" if hidden else ""
    return yaml.safe_dump(shown, sort_keys=False) + note


RNNS = ("keras", "fast")  # model.rnn: keras.layers.SimpleRNN, or normbench.build.layers.HoistedSimpleRNN
PLACEMENTS = ("between", "recurrent")  # model.norm_placement


def check(cfg, where) -> None:
    """model.* rules of a Config (the data kind and group divisibility need cfg.data);
    `where.error(key, problem)` names the file (config._Where). The steps run in this
    order, so a config with several faults gets the same first error as always."""
    m = cfg.model
    _check_source(m, where)
    _check_norms(m, where)
    from normbench.build import usermodels

    if usermodels.is_user_model(m):  # it reads none of the built-in models' own options
        refuse_unread(m, where, (), "your own model")
        usermodels.check(cfg, where)
        return
    from normbench.core.checks import choice

    choice(where, "model.arch", m.arch, MODELS, "model")
    spec = MODELS[m.arch]
    _check_data(spec, cfg.data, where)
    _check_slots(spec, m, where)
    _check_recurrence(spec, m, where)
    if spec.check is not None:
        spec.check(m, where)


def _check_source(m, where) -> None:
    """Exactly one of model.arch, model.layers, model.from."""
    given = [k for k, v in (("model.arch", m.arch), ("model.layers", m.layers), ("model.from", m.from_)) if v is not None]
    if not given:
        raise where.error("model.arch", f"missing; name a model ({', '.join(MODELS)}), or give your own with "
                                        "model.layers, model.from or model.arch: file.py:function (docs/own-model.md)")
    if len(given) > 1:
        raise where.error(given[1], f"give one of model.arch, model.layers, model.from, not {' and '.join(given)}")


def _check_norms(m, where) -> None:
    """model.norm, model.norm_groups and model.norms name known norms (any model)."""
    from normbench.core.checks import at_least, choice
    from normbench.build.norms import NORMS

    choice(where, "model.norm", m.norm, NORMS, "norm")
    at_least(where, "model.norm_groups", m.norm_groups, 1)
    for slot, norm in (m.norms or {}).items():
        if not isinstance(slot, str) or not slot:
            raise where.error("model.norms", f"keys are slot names or kinds (e.g. input, norm_1, vector), got {slot!r}")
        choice(where, f"model.norms.{slot}", norm, NORMS, "norm")
    if m.norms and m.norm_placement == "recurrent":
        raise where.error("model.norms", "norm_placement recurrent has no norm slots between layers to set; remove one of them")


def _may_fit(spec: ModelSpec, entry) -> bool:
    """Whether a data set's examples can have the shape the model is built for: any shape
    when it takes any, else a fixed shape equal to it, or one set in the config or the file."""
    return spec.input_shape is None or not entry.shape or callable(entry.shape) or tuple(entry.shape) == spec.input_shape


def _check_data(spec: ModelSpec, d, where) -> None:
    """The data is of the kind the model reads, and of its example shape if it needs one."""
    from normbench.build.data import DATASETS

    kind = DATASETS[d.name].kind
    if spec.data_kind != kind and kind != "any":  # "any": arrays of any shape (checked on building)
        fits = ", ".join(n for n, s in DATASETS.items() if s.kind == spec.data_kind and _may_fit(spec, s))
        raise where.error("data.name", f"model {spec.name} needs {spec.data_kind} data, {d.name!r} is {kind} data; "
                                       f"use one of: {fits}")
    check_input_shape(spec, d, where)


def _check_slots(spec: ModelSpec, m, where) -> None:
    """model.norm fits the model's norm slots: instance has no vector slot, groups divide the channels."""
    from normbench.core.checks import at_least

    at_least(where, "model.norm_groups", m.norm_groups, 1)
    if m.norm == "instance" and "vector" in spec.slots:  # norms.py: one value per group there
        fits = ", ".join(n for n, s in MODELS.items() if s.slots and "vector" not in s.slots)
        raise where.error("model.norm", f"instance has nothing to normalize in {m.arch}'s vector norm slot (one value "
                                        f"per channel); use another norm, or a model without vector slots: {fits}")
    if m.norm == "group":
        bad = sorted({c for c in spec.norm_channels if c % m.norm_groups})
        if bad:
            ok = [g for g in range(1, max(spec.norm_channels) + 1) if all(c % g == 0 for c in spec.norm_channels)]
            raise where.error(
                "model.norm_groups",
                f"{m.norm_groups} groups do not divide the {'/'.join(map(str, bad))} channels that {m.arch} normalizes; "
                f"use one of: {', '.join(map(str, ok))}",
            )


def _check_recurrence(spec: ModelSpec, m, where) -> None:
    """model.rnn, model.norm_placement and model.unroll (imdb_rnn's options; other models
    refuse them set, refuse_unread)."""
    from normbench.core.checks import auto_bool, choice

    choice(where, "model.rnn", m.rnn, RNNS, "rnn implementation")
    if m.norm_placement != "between" and spec.params is not None and "norm_placement" in {
            f.name for f in dataclasses.fields(spec.params)}:  # its own placements are a param (issue 30)
        raise where.error("model.norm_placement", f"{m.arch} reads its placement from model.params.norm_placement; "
                                                  f"move it there (model: {{params: {{norm_placement: ...}}}})")
    choice(where, "model.norm_placement", m.norm_placement, PLACEMENTS, "norm placement")
    if m.norm_placement == "recurrent" and m.norm_placement not in spec.placements:
        fits = ", ".join(n for n, s in MODELS.items() if "recurrent" in s.placements)
        raise where.error("model.norm_placement", f"model {m.arch} has no recurrence to normalize; use between, or a model with one: {fits}")
    refuse_unread(m, where, spec.options, m.arch)  # after the placement's own message above
    if isinstance(m.unroll, int) and not isinstance(m.unroll, bool):
        if m.unroll < 2:
            raise where.error("model.unroll", f"a chunk size must be >= 2, got {m.unroll}; or use true, false or auto")
        if m.rnn != "fast" and m.norm_placement != "recurrent":
            raise where.error("model.unroll", f"a chunk size ({m.unroll}) needs model.rnn: fast (keras.layers.SimpleRNN "
                                              "unrolls all steps or none); set model.rnn: fast or unroll true/false")
    else:
        auto_bool(where, "model.unroll", m.unroll)
    if m.norm_placement == "recurrent" and m.norm == "batch":
        raise where.error("model.norm_placement", "recurrent cannot use norm 'batch': batch norm inside the recurrence needs "
                          "per-time-step batch statistics (Cooijmans et al. 2016), which are not implemented; "
                          "use norm layer, rms or none, or norm_placement: between")
    if m.norm_placement == "recurrent" and m.norm not in RECURRENT_NORMS:
        raise where.error("model.norm_placement", f"recurrent cannot use norm {m.norm!r}: not implemented inside the recurrence; "
                          f"use norm {', '.join(RECURRENT_NORMS)}, or norm_placement: between")


def _shape_text(shape) -> str:
    return "x".join(map(str, shape))


def check_input_shape(spec: ModelSpec, d, where) -> None:
    """A model built for one example shape (spec.input_shape) refuses data of another, naming
    the key that sets the data's shape (its DATASETS entry's shape_key) and the fix."""
    from normbench.build.data import DATASETS, input_spec

    if spec.input_shape is None:
        return
    have, need = tuple(input_spec(d)[0]), spec.input_shape
    if have == need:
        return
    entry = DATASETS[d.name]
    fix = entry.shape_fix(need) if entry.shape_fix else None
    fits = ", ".join(n for n, e in DATASETS.items() if not callable(e.shape) and tuple(e.shape) == need)
    raise where.error(entry.shape_key, f"model {spec.name} takes examples of shape {_shape_text(need)}, "
                                       f"{d.name}'s are {_shape_text(have)}; {fix or 'use one of: ' + fits}")


def build_model(config, num_classes: int, input_dtype: str | None = None, input_shape=None, info: dict | None = None):
    """The Keras model for a validated Config (not compiled). input_dtype: the dtype of
    the data's x arrays (image models: uint8 or float32; None = uint8). Every model is built
    for `input_shape` (one example's; None = the data config's, read cheaply: data.input_spec);
    a user's model (normbench.build.usermodels) fills `info` with what was built (source, sha256)."""
    from normbench.build import usermodels

    if usermodels.is_user_model(config.model):
        if input_shape is None:
            from normbench.build.data import input_spec

            input_shape, dtype, _ = input_spec(config.data)
            input_dtype = input_dtype or dtype
        with dtype_policy(config.train.precision):
            model, built = usermodels.build(config, num_classes, input_shape, input_dtype)
        check_slot_keys(config.model, model, "your model")
        with dtype_policy(config.train.precision):
            model = _augmented(model, config)
        if info is not None:
            info.update(built)
        return model
    spec = MODELS.get(config.model.arch)
    if spec is None:
        raise NormbenchError(f"unknown model {config.model.arch!r}; choose one of: {', '.join(MODELS)}")
    from normbench.build.optim import resolved_unroll  # a training-plan question (steps, backend)

    if input_shape is None:
        from normbench.build.data import input_spec

        input_shape = input_spec(config.data)[0]
    if spec.input_shape is not None and tuple(input_shape) != spec.input_shape:  # check_input_shape, for data
        raise NormbenchError(f"model {spec.name} takes examples of shape {_shape_text(spec.input_shape)}, "
                             f"the data's are {_shape_text(input_shape)}; use data of that shape, or another model")
    model = dataclasses.replace(config.model, unroll=resolved_unroll(config))
    with dtype_policy(config.train.precision):
        built = spec.build(model, config.data, num_classes, input_dtype, tuple(input_shape))
    check_slot_keys(model, built, f"model {config.model.arch}")
    with dtype_policy(config.train.precision):
        return _augmented(built, config)


def _augmented(model, config):
    """The model with train.augment's layer first (training steps only), if set."""
    if config.train.augment is None:
        return model
    from normbench.build import augment

    return augment.apply(model, config.train.augment, config.seed)


def loss_for(config, model):
    """The loss a model trains with: the registered model's, else from its output layer."""
    from normbench.build import usermodels

    if usermodels.is_user_model(config.model):
        return usermodels.loss_for(model)
    return MODELS[config.model.arch].loss


def metrics_for(config, model) -> list:
    """The metrics a model trains with ("accuracy" in history and summary): the registered
    models' outputs are probabilities; a user's model's accuracy follows its output layer
    (a logit is thresholded at 0, not 0.5: usermodels.metrics_for)."""
    from normbench.build import usermodels

    if usermodels.is_user_model(config.model):
        return usermodels.metrics_for(model)
    return ["accuracy"]


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Build layers under Keras' dtype policy `precision` (train.precision), then put the
    process's global policy back: layers keep the policy they were created with, and
    nothing built later (another run in this process, a test) inherits it."""
    import keras

    if precision not in PRECISIONS:
        raise NormbenchError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)
