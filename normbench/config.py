"""YAML config -> frozen dataclasses, validated. Raw dicts stop here.

A config file has the sections `data`, `model`, `train`, `output` (and optional
`sweep`), plus `name` and `seed`. Every problem raises one NormbenchError naming the
file (or the `--set` that caused it), the key path, and what to write instead.
"""

from __future__ import annotations

import copy
import math
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from normbench import NormbenchError
from normbench.data import DATASETS
from normbench.models import MODELS, PRECISIONS
from normbench.norms import NORMS
from normbench.optim import BUDGETS, LR_SCALINGS, OPTIMIZER_OPTIONS, OPTIMIZERS, SCHEDULE_OPTIONS, SCHEDULES, takers
AUTO_BOOL = ("auto", True, False)  # train.jit_compile, model.unroll
RNNS = ("keras", "fast")  # model.rnn: keras.layers.SimpleRNN, or normbench.layers.HoistedSimpleRNN
PLACEMENTS = ("between", "recurrent")  # model.norm_placement
RECURRENT_NORMS = ("layer", "rms", "none")  # norms that norm_placement: recurrent implements
BACKENDS = ("tensorflow", "jax")
EVALS = ("last", "best")  # train.eval: which weights the headline test figures use
SMOKE_SUBSET = {"train": 512, "test": 256}  # what --smoke shrinks any data set to


@dataclass(frozen=True)
class Subset:
    train: int  # training examples (validation_split is taken from these)
    test: int  # test examples


@dataclass(frozen=True)
class DataConfig:
    name: str  # imdb | cifar10 | synthetic_imdb | synthetic_cifar10
    path: Optional[str] = None  # local file/folder; None = Keras download (or $NORMBENCH_DATA_DIR)
    subset: Optional[Subset] = None  # class-balanced subset; None = everything
    num_words: int = 10000  # IMDB vocabulary (Embedding input size)
    maxlen: int = 200  # IMDB reviews padded/truncated to this many tokens


@dataclass(frozen=True)
class ModelConfig:
    arch: str  # a registered builder: imdb_rnn | cifar10_cnn
    norm: str  # batch | layer | group | rms | none
    norm_groups: int = 8  # groups for norm=group; must divide every normalized channel count
    unroll: Union[bool, str] = False  # unroll SimpleRNN loops; "auto" = on TensorFlow for runs of >= 1000 steps (models.resolved_unroll)
    rnn: str = "keras"  # keras = keras.layers.SimpleRNN (the committed study's); fast = same maths and weights, x W out of the loop: 0.8x the step (configs/imdb_*.yaml)
    norm_placement: str = "between"  # between = norm slots after each RNN layer; recurrent = inside the cell (Ba et al. 2016), slots Identity


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 0.001
    # optimizer options, each for the optimizers that take it (normbench.optim.OPTIMIZERS);
    # null = Keras' default for the chosen optimizer
    momentum: Optional[float] = None  # sgd: momentum in [0, 1); null = 0
    nesterov: Optional[bool] = None  # sgd: Nesterov momentum; null = false
    weight_decay: Optional[float] = None  # adamw: decoupled decay, w -= lr * weight_decay * w; null = 0.004
    # learning-rate schedule and budget: exact formulas in normbench/optim.py and the README
    schedule: str = "constant"  # constant | cosine | step, per optimizer step
    warmup_epochs: float = 0.0  # linear warm-up over this many epochs' steps (0 = none)
    step_epochs: Optional[int] = None  # schedule step: decay every this many epochs (required there)
    step_factor: Optional[float] = None  # schedule step: multiply the rate by this; null = 0.1
    lr_scaling: str = "none"  # none | linear | sqrt: learning_rate scaled by batch_size / base_batch_size
    base_batch_size: Optional[int] = None  # the batch size learning_rate and epochs refer to
    budget: str = "samples"  # samples: epochs epochs at any batch size; steps: the steps of epochs epochs at base_batch_size
    validation_split: float = 0.2
    jit_compile: Union[bool, str] = "auto"  # XLA: "auto" lets Keras decide (off on CPU)
    deterministic: bool = False  # TensorFlow op determinism: identical reruns, slower
    precision: str = "float32"  # float32 | mixed_bfloat16: Keras dtype policy of the layers (models.PRECISIONS); output layer and loss stay float32
    backend: str = "tensorflow"  # Keras backend; on CPU jax runs the IMDB RNN ~1.8x faster per step, the CNN 1.5-2x slower
    eval: str = "last"  # test_accuracy from the last epoch's weights (the tutorial) or the best validation epoch's; both are recorded


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "results"  # runs go to <dir>/<name>/<run-id>/
    tensorboard: bool = False  # TensorBoard event files (per-epoch scalars, HParams) in the run folder; docs/bridges.md


@dataclass(frozen=True)
class Config:
    name: str
    data: DataConfig
    model: ModelConfig
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    sweep: dict = field(default_factory=dict)  # key.path -> list of values (normbench sweep)

    def to_dict(self) -> dict:
        """The resolved config as plain data (what config.yaml in a run folder holds)."""
        return dataclasses.asdict(self)

    def get(self, dotted: str):
        node = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node


# ----------------------------------------------------------------------------- errors


class _Where:
    """Names the source of a key: the file, or the --set that overrode it."""

    def __init__(self, file: str, overrides: dict[str, str], flag: str = "--set"):
        self.file = file
        self.overrides = overrides
        self.flag = flag

    def __call__(self, key: str) -> str:
        for k, text in self.overrides.items():
            if key == k or key.startswith(k + "."):
                return f"{self.flag} {text}"
        return self.file

    def error(self, key: str, problem: str) -> NormbenchError:
        return NormbenchError(f"{self(key)}: {key}: {problem}")


# ----------------------------------------------------------------------------- typing


def _type_name(tp) -> str:
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    if tp is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _convert(value, tp, key: str, where: _Where):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, where)
            except NormbenchError:
                continue
        names = " or ".join("null" if a is type(None) else _type_name(a) for a in args)
        raise where.error(key, f"expected {names}, got {_describe(value)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise where.error(key, f"expected {_type_name(tp)}, got {_describe(value)}")
        return _build(tp, value, key, where)
    if tp is dict:
        if not isinstance(value, dict):
            raise where.error(key, f"expected a mapping, got {_describe(value)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # PyYAML reads 1e-3 (no dot) as a string; users mean a number
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise where.error(key, f"expected {_type_name(tp)}, got {_describe(value)}")


def _build(cls, raw: dict, prefix: str, where: _Where):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in fields:
            key = f"{prefix}.{k}" if prefix else str(k)
            raise where.error(key, f"unknown key; allowed keys here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in raw:
            kwargs[name] = _convert(raw[name], hints[name], key, where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if dataclasses.is_dataclass(hints[name]):
                kwargs[name] = _convert({}, hints[name], key, where)
            else:
                raise where.error(key, f"missing; add it ({_type_name(hints[name])})")
    return cls(**kwargs)


# ----------------------------------------------------------------------------- checks


def _choice(where, key, value, choices, what):
    if value not in choices:
        names = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
        raise where.error(key, f"unknown {what} {value!r}; choose one of: {names}")


def _auto_bool(where, key, value):
    """A setting that is true, false or "auto"."""
    if value not in AUTO_BOOL or (isinstance(value, str) and value != "auto"):
        raise where.error(key, f"unknown setting {value!r}; choose one of: auto, true, false")


def _at_least(where, key, value, low):
    if value < low:
        raise where.error(key, f"must be >= {low}, got {value}")


def _check(cfg: Config, where: _Where) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=-]*", cfg.name):
        raise where.error("name", f"{cfg.name!r} is not a folder-safe name; use letters, digits, _ . - =")
    _at_least(where, "seed", cfg.seed, 0)
    d, m, t = cfg.data, cfg.model, cfg.train
    _choice(where, "data.name", d.name, DATASETS, "dataset")
    _at_least(where, "data.num_words", d.num_words, 4)  # 0 pad, 1 start, 2 oov, 3 unused
    _at_least(where, "data.maxlen", d.maxlen, 1)
    if d.subset is not None:
        _at_least(where, "data.subset.train", d.subset.train, 2)
        _at_least(where, "data.subset.test", d.subset.test, 1)
    _choice(where, "model.arch", m.arch, MODELS, "model")
    _choice(where, "model.norm", m.norm, NORMS, "norm")
    spec, kind = MODELS[m.arch], DATASETS[d.name].kind
    if spec.data_kind != kind:
        fits = ", ".join(n for n, s in DATASETS.items() if s.kind == spec.data_kind)
        raise where.error("data.name", f"model {m.arch} needs {spec.data_kind} data, {d.name!r} is {kind} data; use one of: {fits}")
    _at_least(where, "model.norm_groups", m.norm_groups, 1)
    if m.norm == "group":
        bad = sorted({c for c in spec.norm_channels if c % m.norm_groups})
        if bad:
            ok = [g for g in range(1, max(spec.norm_channels) + 1) if all(c % g == 0 for c in spec.norm_channels)]
            raise where.error(
                "model.norm_groups",
                f"{m.norm_groups} groups do not divide the {'/'.join(map(str, bad))} channels that {m.arch} normalizes; "
                f"use one of: {', '.join(map(str, ok))}",
            )
    _at_least(where, "train.epochs", t.epochs, 1)
    _at_least(where, "train.batch_size", t.batch_size, 1)
    _choice(where, "train.optimizer", t.optimizer, OPTIMIZERS, "optimizer")
    if not t.learning_rate > 0:
        raise where.error("train.learning_rate", f"must be > 0, got {t.learning_rate}")
    _check_optim(t, where)
    if not 0 < t.validation_split < 1:
        raise where.error("train.validation_split", f"must be between 0 and 1 (exclusive), got {t.validation_split}")
    _auto_bool(where, "model.unroll", m.unroll)
    _choice(where, "model.rnn", m.rnn, RNNS, "rnn implementation")
    _choice(where, "model.norm_placement", m.norm_placement, PLACEMENTS, "norm placement")
    if m.norm_placement == "recurrent" and m.norm_placement not in spec.placements:
        fits = ", ".join(n for n, s in MODELS.items() if "recurrent" in s.placements)
        raise where.error("model.norm_placement", f"model {m.arch} has no recurrence to normalize; use between, or a model with one: {fits}")
    if m.norm_placement == "recurrent" and m.norm == "batch":
        raise where.error("model.norm_placement", "recurrent cannot use norm 'batch': batch norm inside the recurrence needs "
                          "per-time-step batch statistics (Cooijmans et al. 2016), which are not implemented; "
                          "use norm layer, rms or none, or norm_placement: between")
    if m.norm_placement == "recurrent" and m.norm not in RECURRENT_NORMS:
        raise where.error("model.norm_placement", f"recurrent cannot use norm {m.norm!r}: not implemented inside the recurrence; "
                          f"use norm {', '.join(RECURRENT_NORMS)}, or norm_placement: between")
    _auto_bool(where, "train.jit_compile", t.jit_compile)
    _choice(where, "train.backend", t.backend, BACKENDS, "backend")
    _choice(where, "train.precision", t.precision, PRECISIONS, "precision")
    _choice(where, "train.eval", t.eval, EVALS, "evaluation")
    if d.subset is not None:
        n_train = math.ceil(d.subset.train * (1 - t.validation_split))  # Keras' split
        if n_train < 1 or d.subset.train - n_train < 1:
            raise where.error("data.subset.train", f"{d.subset.train} examples leave no training or validation data at validation_split {t.validation_split}; use more")
    if not cfg.output.dir:
        raise where.error("output.dir", "must not be empty; e.g. results")
    for key, values in cfg.sweep.items():
        if not isinstance(values, list) or not values:
            raise where.error(f"sweep.{key}", f"expected a non-empty list of values, got {_describe(values)}")


def _check_optim(t: TrainConfig, where: _Where) -> None:
    """Optimizer options, schedule, lr_scaling and budget (normbench.optim)."""
    for option in OPTIMIZER_OPTIONS:
        if getattr(t, option) is not None and option not in OPTIMIZERS[t.optimizer].options:
            raise where.error(f"train.{option}", f"applies only to optimizer {', '.join(takers(option))}, not {t.optimizer}; "
                                                 f"remove it or set train.optimizer: {takers(option)[0]}")
    if t.momentum is not None and not 0 <= t.momentum < 1:
        raise where.error("train.momentum", f"must be >= 0 and < 1, got {t.momentum}; e.g. 0.9")
    if t.nesterov and not t.momentum:
        raise where.error("train.nesterov", "true needs train.momentum > 0 (with momentum 0 it is plain SGD); set train.momentum, e.g. 0.9")
    if t.weight_decay is not None and not t.weight_decay >= 0:
        raise where.error("train.weight_decay", f"must be >= 0, got {t.weight_decay}")
    _choice(where, "train.schedule", t.schedule, SCHEDULES, "schedule")
    for option, schedule in SCHEDULE_OPTIONS.items():
        if getattr(t, option) is not None and t.schedule != schedule:
            raise where.error(f"train.{option}", f"applies only to schedule {schedule}, not {t.schedule}; "
                                                 f"remove it or set train.schedule: {schedule}")
    if t.schedule == "step":
        if t.step_epochs is None:
            raise where.error("train.step_epochs", "missing; schedule step needs it (decay every this many epochs), e.g. 10")
        _at_least(where, "train.step_epochs", t.step_epochs, 1)
        if t.step_factor is not None and not 0 < t.step_factor < 1:
            raise where.error("train.step_factor", f"must be > 0 and < 1, got {t.step_factor}; e.g. 0.1")
    if not 0 <= t.warmup_epochs < t.epochs:
        raise where.error("train.warmup_epochs", f"must be >= 0 and < train.epochs ({t.epochs}), got {t.warmup_epochs}")
    _choice(where, "train.lr_scaling", t.lr_scaling, LR_SCALINGS, "learning-rate scaling")
    _choice(where, "train.budget", t.budget, BUDGETS, "budget")
    uses = [f"train.lr_scaling {t.lr_scaling}"] * (t.lr_scaling != "none") + [f"train.budget {t.budget}"] * (t.budget != "samples")
    if t.base_batch_size is None and uses:
        raise where.error("train.base_batch_size", f"missing; {uses[0]} needs the batch size that train.learning_rate "
                                                   "and train.epochs refer to, e.g. 64")
    if t.base_batch_size is not None:
        if not uses:
            raise where.error("train.base_batch_size", "has no effect with train.lr_scaling none and train.budget samples; "
                                                       "remove it, or set train.lr_scaling (linear, sqrt) or train.budget: steps")
        _at_least(where, "train.base_batch_size", t.base_batch_size, 1)


# ----------------------------------------------------------------------------- loading


def parse_override(text: str) -> tuple[str, Any]:
    """`key.path=value` -> (key.path, YAML-typed value): `3` is an int, `null` is None."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise NormbenchError(f"--set {text}: expected key.path=value, e.g. --set train.epochs=3")
    try:
        parsed = load_yaml_strict(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def _apply(raw: dict, key: str, value, where: _Where) -> None:
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise where.error(".".join(parts[: i + 1]), f"is {_describe(nxt)}, not a section; cannot set {key}")
        node = nxt
    node[parts[-1]] = value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise NormbenchError(f"{path}: no such config file; check the path (configs live in configs/)")
    if path.is_dir():
        raise NormbenchError(f"{path}: is a folder, not a config file; pass a .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise NormbenchError(f"{path}: cannot read ({e.__class__.__name__}); pass a readable UTF-8 YAML file") from None
    try:
        raw = load_yaml_strict(text)
    except _Refused as e:
        raise NormbenchError(f"{path}: line {e.line}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise NormbenchError(f"{path}: malformed YAML{at}: {problem}; fix the syntax") from None
    if raw is None:
        raise NormbenchError(f"{path}: the file is empty; see configs/imdb_ln.yaml for an example")
    if not isinstance(raw, dict):
        raise NormbenchError(f"{path}: expected a mapping of sections (name, data, model, ...), got {type(raw).__name__}")
    return raw


def from_dict(raw: dict, source: str = "<config>", overrides: dict[str, str] | None = None, flag: str = "--set") -> Config:
    where = _Where(source, overrides or {}, flag)
    cfg = _build(Config, raw, "", where)
    _check(cfg, where)
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (), smoke: bool = False) -> Config:
    """Read, override (`key.path=value` strings), shrink for --smoke, and validate."""
    raw = copy.deepcopy(read_yaml(path))
    texts = {}
    for text in overrides:
        key, value = parse_override(text)
        texts[key] = text
        _apply(raw, key, value, _Where(str(path), texts))
    if smoke:
        raw = smoke_dict(raw)
    cfg = from_dict(raw, str(path), texts)
    _check_limits(cfg, _Where(str(path), texts))  # new configs only: old run folders still read
    check_can_start(cfg, _Where(str(path), texts))
    return cfg


def smoke_dict(raw: dict) -> dict:
    """Shrink any raw config to a tiny subset and one epoch (the --smoke switch)."""
    raw = copy.deepcopy(raw)
    raw.setdefault("train", {})
    raw.setdefault("data", {})
    if isinstance(raw["train"], dict):
        epochs, warmup = raw["train"].get("epochs", TrainConfig.epochs), raw["train"].get("warmup_epochs")
        if isinstance(warmup, (int, float)) and isinstance(epochs, int) and epochs > 0:
            raw["train"]["warmup_epochs"] = warmup / epochs  # the same share of the one epoch
        raw["train"]["epochs"] = 1
    if isinstance(raw["data"], dict):
        subset = raw["data"].get("subset")
        if isinstance(subset, dict):
            raw["data"]["subset"] = {k: min(v, SMOKE_SUBSET[k]) if isinstance(v, int) else v for k, v in subset.items()}
        else:
            raw["data"]["subset"] = dict(SMOKE_SUBSET)
    if isinstance(raw.get("name"), str) and not raw["name"].endswith("-smoke"):
        raw["name"] = raw["name"] + "-smoke"
    return raw


def with_values(cfg: Config, values: dict[str, Any], source: str = "<sweep>", flagged=None) -> Config:
    """A copy of cfg with dotted keys replaced, validated again (used by sweeps). Errors
    name `--grid KEY=VALUE` for the keys in `flagged` (default: all), else `source`."""
    raw = cfg.to_dict()
    texts = {}
    for key, value in values.items():
        if flagged is None or key in flagged:
            texts[key] = f"{key}={value}"
        _apply(raw, key, value, _Where(source, texts, "--grid"))
    cfg = from_dict(raw, source, texts, "--grid")
    _check_limits(cfg, _Where(source, texts, "--grid"))
    return cfg


def flatten(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; empty mappings stay as values."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------- hostile inputs
# A few hundred bytes of YAML must not take the machine down, and a config that passes
# `validate` must start: what can be bounded is bounded here, before any data loads.

MAX_SEED = 2**32 - 1  # keras.utils.set_random_seed (NumPy's legacy seed) takes 0..2**32-1
MAX_NUM_WORDS = 100_000  # IMDB has 88,584 distinct words: more only enlarges the Embedding
MAX_MAXLEN = 2_500  # the longest IMDB review has 2,494 tokens: longer only adds padding
MAX_BATCH_SIZE = 8_192


class _Refused(yaml.YAMLError):
    """YAML that safe_load would accept but normbench refuses (aliases, duplicate keys)."""

    def __init__(self, mark, problem: str):
        super().__init__(problem)
        self.line = mark.line + 1
        self.problem = problem


class _StrictLoader(yaml.SafeLoader):
    """safe_load without aliases (a 465-byte "billion laughs" of nested aliases expands
    exponentially wherever the values are copied or printed) and without duplicate
    keys (PyYAML lets the last one win silently)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(event.start_mark, f"YAML aliases (*{event.anchor}) are not supported; write the value out in full")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # PyYAML reports unhashable keys itself
                key = self.construct_object(key_node)
                if key in seen:
                    raise _Refused(
                        key_node.start_mark,
                        f"duplicate key {key!r} (first at line {seen[key]}); keep only one",
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml_strict(text: str):
    """yaml.safe_load, refusing aliases and duplicate keys (raises _Refused)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def _at_most(where, key, value, high, why):
    if value > high:
        raise where.error(key, f"must be <= {high}, got {value}; {why}")


def _check_limits(cfg: Config, where: _Where) -> None:
    """Upper bounds: values that would exhaust memory or fail only after data loading."""
    d = cfg.data
    _at_most(where, "seed", cfg.seed, MAX_SEED, "Keras seeds NumPy, which takes 0 to 2**32-1")
    _at_most(where, "data.num_words", d.num_words, MAX_NUM_WORDS,
             f"IMDB has 88,584 distinct words, so {MAX_NUM_WORDS} already keeps every one")
    _at_most(where, "data.maxlen", d.maxlen, MAX_MAXLEN,
             f"the longest IMDB review has 2,494 tokens, so {MAX_MAXLEN} already keeps every one")
    _at_most(where, "train.batch_size", cfg.train.batch_size, MAX_BATCH_SIZE, "use a smaller batch")
    if d.subset is not None:
        size = dict(zip(("train", "test"), DATASETS[d.name].size))
        for split in ("train", "test"):
            n = getattr(d.subset, split)
            if n > size[split]:
                made = "generates at most" if d.name.startswith("synthetic_") else "has"
                raise where.error(
                    f"data.subset.{split}",
                    f"{n} is more than the {size[split]} {split} examples {d.name} {made}; use at most {size[split]}",
                )


def check_can_start(cfg: Config, where: _Where) -> None:
    """What `validate` can know about the machine without loading data: the output
    folder can be created, and a subset fits the local data file (its arrays' headers
    are read, not the arrays)."""
    import os

    from normbench.data import local_sizes

    out = Path(cfg.output.dir).expanduser() / cfg.name
    q = out
    while not q.exists() and q != q.parent:
        q = q.parent
    if q.exists() and not q.is_dir():
        raise where.error("output.dir", f"{q} is a file, not a folder; choose another output.dir or move the file")
    if q.is_dir() and not os.access(q, os.W_OK | os.X_OK):
        raise where.error("output.dir", f"{q} is not writable; choose a folder you can write to")
    sizes = local_sizes(cfg.data)
    if sizes and cfg.data.subset is not None:
        file, available = sizes
        for split in ("train", "test"):
            n = getattr(cfg.data.subset, split)
            if n > available[split]:
                raise where.error(
                    f"data.subset.{split}",
                    f"{n} is more than the {available[split]} {split} examples in {file}; use at most {available[split]}",
                )
