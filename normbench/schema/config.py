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
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from normbench.core.errors import NormbenchError, ParamError
from normbench.core.strictyaml import Refused, load_yaml_strict
from normbench.core.checks import AUTO_BOOL, at_least as _at_least, at_most as _at_most, auto_bool as _auto_bool, choice as _choice

# config.py parses; each registry checks its own rules (data.check, models.check,
# optim.check), imported inside _check so that config imports no registry at top level.
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
    # your data (data.name arrays | image_folder; docs/own-model.md); None = not used
    classes: Optional[int] = None  # number of classes; None = inferred from the labels (arrays) or folders
    image_size: Optional[list] = None  # image_folder: [height, width] every image is resized to
    # input scaling fitted on the training rows only (normbench/build/preprocess.py: none | minmax | zscore):
    # the tutorial's first step (docs/inputs.md)
    preprocess: str = "none"


# keys left out of to_dict() when None: config.yaml of a run that does not use them reads
# as it did before they existed
OPTIONAL_KEYS = {"model": ("params", "layers", "from", "insert_after", "keep_weights", "safe_mode",
                           "custom_objects", "norms"),
                 "data": ("classes", "image_size"),
                 "train": ("augment",)}


@dataclass(frozen=True)
class ModelConfig:
    # exactly one of arch, layers, from (docs/own-model.md):
    arch: Optional[str] = None  # a registered builder (imdb_rnn | cifar10_cnn), or a Python builder package.module:function / path/file.py:function
    norm: str = field(default=None, metadata={"required": True})  # batch | layer | group | rms | none
    norm_groups: int = 8  # groups for norm=group; must divide every normalized channel count
    unroll: Union[bool, str, int] = False  # unroll SimpleRNN loops; "auto" = on TensorFlow for runs of >= 1000 steps (optim.resolved_unroll); an int K >= 2 (rnn: fast) = a loop over chunks of K unrolled steps
    rnn: str = "keras"  # keras = keras.layers.SimpleRNN (the committed study's); fast = same maths and weights, x W out of the loop: a shorter step (configs/imdb_*.yaml; benchmarks/RESULTS.md)
    norm_placement: str = "between"  # between = norm slots after each RNN layer; recurrent = inside the cell (Ba et al. 2016), slots Identity
    # a registered model's own options: the dataclass given to its @models.register(params=...),
    # written `model.params: {key: value}`; None for models that declare none
    params: Optional[dict] = None  # parsed into the model's dataclass by _model_params
    layers: Optional[Union[list, str]] = None  # a list of {KerasLayerClass: {args}} and {norm: conv|sequence|vector} slots, or a YAML file of one
    from_: Optional[str] = field(default=None, metadata={"key": "from"})  # a saved .keras model whose norm layers become model.norm
    insert_after: Optional[list] = None  # model.from: also put a norm after these layers (names or class names)
    keep_weights: Optional[bool] = None  # model.from: keep the saved non-norm weights; null = re-initialized (a fair comparison)
    safe_mode: Optional[bool] = None  # model.from: Keras' safe_mode for loading; null = on (Lambda layers refused)
    # model.from: a .py file or module defining the model's custom layer classes, imported before
    # loading (a saved model with its own classes cannot load without them; docs/own-model.md)
    custom_objects: Optional[str] = None
    # a norm per slot, {slot name or slot kind: norm}, e.g. {input: batch, vector: none}: a slot's norm is
    # its name's entry, else its kind's (conv | sequence | vector), else model.norm; every model path; null = none
    norms: Optional[dict] = None

    @property
    def label(self) -> str:
        """A short name for the model, for run ids: the registered name; a Python builder's
        module and function (resnet.small_resnet); a model file's stem (their_cnn);
        "layers" for an inline layer list."""
        if self.arch and ":" in self.arch:
            module, function = self.arch.rsplit(":", 1)
            return f"{Path(module).stem if module.endswith('.py') else module.rsplit('.', 1)[-1]}.{function}"
        if self.arch:
            return self.arch
        source = self.from_ or (self.layers if isinstance(self.layers, str) else None)
        return Path(source).stem if source else "layers"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 0.001
    # optimizer options, each for the optimizers that take it (normbench.build.optim.OPTIMIZERS);
    # null = Keras' default for the chosen optimizer
    momentum: Optional[float] = None  # sgd: momentum in [0, 1); null = 0
    nesterov: Optional[bool] = None  # sgd: Nesterov momentum; null = false
    weight_decay: Optional[float] = None  # adamw, sgd: decoupled decay, w -= lr * weight_decay * w; null = 0.004 (adamw), none (sgd)
    # learning-rate schedule and budget: exact formulas in normbench/build/optim.py and docs/training.md
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
    backend: str = "tensorflow"  # Keras backend; tensorflow is the faster of the two on CPU for both models (benchmarks/RESULTS.md)
    # training steps per call into the compiled graph (Keras' compile(steps_per_execution)): tiny models are bound by
    # Keras' per-step Python overhead, which this divides; same batches and updates (benchmarks/RESULTS.md, "Tabular")
    steps_per_execution: int = 1
    augment: Optional[str] = None  # training-only augmentation (normbench.build.augment.AUGMENTS): flip_crop = pad 4, random crop, random flip (the CNN's standard recipe); null = none, as the tutorial
    eval: str = "last"  # test_accuracy from the last epoch's weights (the tutorial) or the best validation epoch's; both are recorded


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "results"  # runs go to <dir>/<name>/<run-id>/
    tensorboard: bool = False  # TensorBoard event files (per-epoch scalars, HParams) in the run folder; docs/bridges.md


@dataclass(frozen=True)
class CompareConfig:
    # The analysis a study declares before it runs (docs/compare.md): compare marks the
    # verdicts of exactly this analysis "primary" and every other one "exploratory", so a
    # reader knows which verdict answers the study's question. Not trained on: compare
    # never groups runs by these keys, and a sweep does not treat a changed block as a
    # changed member.
    primary: Optional[str] = None  # the metric whose verdict answers the question (a compare --metric choice, e.g. test_accuracy)
    margin: Optional[float] = None  # equivalence margin in that metric's units (0.01 = 1 pp): only then can a verdict read "equivalent"
    family: str = "vs-best"  # vs-best | all-pairs: the comparisons one Holm adjustment covers (results.FAMILIES)


@dataclass(frozen=True)
class Config:
    name: str
    data: DataConfig
    model: ModelConfig
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    sweep: dict = field(default_factory=dict)  # key.path -> list of values (normbench sweep)
    compare: Optional[CompareConfig] = None  # the study's declared analysis (primary metric, margin, family); None: none declared

    def to_dict(self) -> dict:
        """The resolved config as plain data (what config.yaml in a run folder holds).
        Model keys that are unset (None) are left out: config.yaml of a model that does
        not use them reads as it did before they existed."""
        out = dataclasses.asdict(self)
        out["model"]["from"] = out["model"].pop("from_")
        if out.get("compare") is None:
            out.pop("compare", None)  # config.yaml of a run without a declared analysis reads as before
        for section, keys in OPTIONAL_KEYS.items():
            for key in keys:
                if out[section].get(key) is None:
                    out[section].pop(key, None)
        # the key order of config.yaml as before these keys existed, then theirs
        out["model"] = {k: out["model"][k] for k in sorted(out["model"], key=lambda k: k in OPTIONAL_KEYS["model"])}
        return out

    def get(self, dotted: str):
        node = self
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else getattr(node, "from_" if part == "from" else part)
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
    if tp is list:
        return "a list"
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
    if tp is list:
        if not isinstance(value, list):
            raise where.error(key, f"expected a list, got {_describe(value)}")
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


@functools.cache
def _hints(cls) -> dict:
    """A dataclass's resolved field types (resolving them is slow, and they never change)."""
    return typing.get_type_hints(cls)


def _build(cls, raw: dict, prefix: str, where: _Where):
    hints = _hints(cls)
    # YAML key -> field (a field's metadata "key" spells a key that is no identifier: from)
    fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in fields:
            key = f"{prefix}.{k}" if prefix else str(k)
            raise where.error(key, f"unknown key; allowed keys here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in raw:
            kwargs[f.name] = _convert(raw[name], hints[f.name], key, where)
        elif f.metadata.get("required") or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
            if dataclasses.is_dataclass(hints[f.name]):
                kwargs[f.name] = _convert({}, hints[f.name], key, where)
            else:
                raise where.error(key, f"missing; add it ({_type_name(hints[f.name])})")
    return cls(**kwargs)


# ----------------------------------------------------------------------------- checks


NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS and Windows filesystems alike)


def path_problem(value: str) -> str | None:
    """Why `value` cannot be a path on any filesystem (a NUL byte, a component longer
    than NAME_MAX bytes), with the fix; None when it can."""
    if "\0" in value:
        return f"{value!r} contains a NUL byte, which no path can hold; remove it"
    for part in Path(value).parts:
        n = len(part.encode("utf-8", "surrogateescape"))
        if n > NAME_MAX:
            return (f"the component {part[:24]!r}... is {n} bytes, more than the {NAME_MAX} a file or folder name "
                    "may have; shorten it")
    return None


def _check_path(where, key: str, value) -> None:
    problem = path_problem(value) if isinstance(value, str) else None
    if problem:
        raise where.error(key, problem)


def _check(cfg: Config, where: _Where) -> None:
    """The config's own rules here; each registry's rules in its check()."""
    from normbench.build import augment, data, models, optim

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=-]*", cfg.name):
        raise where.error("name", f"{cfg.name!r} is not a folder-safe name; use letters, digits, _ . - =")
    _check_path(where, "name", cfg.name)
    _check_path(where, "output.dir", cfg.output.dir)
    _check_path(where, "data.path", cfg.data.path)
    _at_least(where, "seed", cfg.seed, 0)
    t = cfg.train
    data.check(cfg.data, where)
    models.check(cfg, where)
    _at_least(where, "train.epochs", t.epochs, 1)
    _at_least(where, "train.batch_size", t.batch_size, 1)
    _at_least(where, "train.steps_per_execution", t.steps_per_execution, 1)
    optim.check(t, where)
    augment.check(cfg, where)
    if not 0 < t.validation_split < 1:
        raise where.error("train.validation_split", f"must be between 0 and 1 (exclusive), got {t.validation_split}")
    _auto_bool(where, "train.jit_compile", t.jit_compile)
    _choice(where, "train.backend", t.backend, BACKENDS, "backend")
    _choice(where, "train.precision", t.precision, models.PRECISIONS, "precision")
    _choice(where, "train.eval", t.eval, EVALS, "evaluation")
    d = cfg.data
    if d.subset is not None:
        _check_split(where, "data.subset.train", d.subset.train, t.validation_split, "use more")
    if not cfg.output.dir:
        raise where.error("output.dir", "must not be empty; e.g. results")
    for key, values in cfg.sweep.items():
        if not isinstance(values, list) or not values:
            raise where.error(f"sweep.{key}", f"expected a non-empty list of values, got {_describe(values)}")
    if cfg.compare is not None:
        _check_compare(cfg.compare, where)


def _check_compare(c: CompareConfig, where: _Where) -> None:
    """compare.*: the metric and family from the metric table (normbench.core.metrics), a positive margin."""
    from normbench.core.metrics import FAMILIES, RANKED

    if c.primary is None:
        raise where.error("compare.primary", f"missing; name the metric whose verdict answers the study's question, "
                                             f"one of: {', '.join(RANKED)}")
    _choice(where, "compare.primary", c.primary, RANKED, "metric")
    _choice(where, "compare.family", c.family, FAMILIES, "family")
    if c.margin is not None and not (c.margin > 0 and math.isfinite(c.margin)):
        raise where.error("compare.margin", f"must be a positive number in {c.primary}'s units, got {c.margin}; "
                                            "e.g. 0.01 (1 pp of accuracy)")


def _check_split(where, key: str, n: int, validation_split: float, fix: str) -> None:
    """Raise, naming `key`, when Keras' split of n examples leaves no training or no
    validation example (Keras would fail only after the data loaded)."""
    from normbench.build.data import split

    n_fit, n_val = split(n, validation_split)
    if n_fit < 1 or n_val < 1:
        raise where.error(key, f"{n} examples leave no training or validation data at validation_split {validation_split} "
                               f"(Keras trains on the first floor({n} x (1 - {validation_split})) = {n_fit} and validates on "
                               f"{n_val}); {fix}, or change train.validation_split")


# ----------------------------------------------------------------------------- loading


def parse_override(text: str) -> tuple[str, Any]:
    """`key.path=value` -> (key.path, YAML-typed value): `3` is an int, `null` is None. A
    bad text is an error of `overrides` (load_config's parameter it comes from)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ParamError("overrides", text, "expected key.path=value, e.g. {overrides} train.epochs=3")
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
    except Refused as e:
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
    """Parse and validate: types, defaults, then every registry's rules."""
    where = _Where(source, overrides or {}, flag)
    cfg = _parse(raw, where)
    _check(cfg, where)
    return cfg


def parse(raw: dict, source: str = "<config>") -> Config:
    """Parse alone: keys, types and defaults, none of the registries' rules. For reading
    a finished run's config.yaml back (results), whose values a later version's rules may
    refuse but whose missing keys still get their defaults."""
    return _parse(raw, _Where(source, {}, "--set"))


def _parse(raw: dict, where: _Where) -> Config:
    return _model_params(_build(Config, raw, "", where), where)


def _model_params(cfg: Config, where: _Where) -> Config:
    """model.params parsed into the dataclass the chosen model registered (models.register)."""
    from normbench.build.models import MODELS

    spec, raw = MODELS.get(cfg.model.arch or ""), cfg.model.params
    if spec is None:
        return cfg  # models.check names the unknown model
    if spec.params is None:
        if raw:
            raise where.error("model.params", f"model {cfg.model.arch} takes no params; remove model.params")
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, params=None))
    if raw is not None and not isinstance(raw, dict):
        raise where.error("model.params", f"expected {_type_name(spec.params)}, got {_describe(raw)}")
    params = _build(spec.params, raw or {}, "model.params", where)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, params=params))


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
    name `--grid KEY=VALUE` for the keys in `flagged` (default: all), else `source`; a bad
    data.path among them is a ParamError of `grid` (the sweep's, sweep.prepare_members')."""
    raw = cfg.to_dict()
    texts = {}
    for key, value in values.items():
        if flagged is None or key in flagged:
            texts[key] = f"{key}={value}"
        _apply(raw, key, value, _Where(source, texts, "--grid"))
    cfg = from_dict(raw, source, texts, "--grid")
    _check_limits(cfg, _Where(source, texts, "--grid"))
    try:  # every member's data.path and output folder before the first member trains
        check_can_start(cfg, _Where(source, texts, "--grid"))
    except NormbenchError as e:
        if "data.path" in texts and str(e).startswith("data.path:"):  # data.py's own message: say which value
            raise ParamError("grid", texts["data.path"], "{reason}", reason=str(e)) from None
        raise
    return cfg


# ----------------------------------------------------------------------------- a run's config, read back


def load_run_yaml(text: str):
    """A run's config.yaml text -> data, with libyaml's safe loader where PyYAML has it (far
    faster than the pure-Python one); a run's config.yaml is normbench's own output, so the
    strict checks of user configs (load_yaml_strict) are moot. Raises yaml.YAMLError."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def resolve_flat(raw: dict, source: str = "<config>") -> dict:
    """A run's config.yaml mapping as compare reads it, flattened to dotted keys: keys added
    to the config since the run was made get their defaults (parse alone); a mapping this
    version cannot parse (a key or type it no longer has) is compared as written."""
    try:
        raw = parse(raw, source).to_dict()
    except NormbenchError:
        pass
    return flatten(raw)


# bump when resolve_flat would read the same config.yaml differently while every field
# below stays the same (a new conversion rule, say): it retires every run's config.json
RESOLVE_VERSION = 1


def schema_key() -> str | None:
    """What resolve_flat's answer depends on besides its input, as a short hash: RESOLVE_VERSION,
    every config dataclass's fields (names, keys, types, defaults), OPTIONAL_KEYS and the
    registered models' params dataclasses. A run's config.json (runfolder) holds the key it
    was resolved under and is used only while this version's key is the same. None when a
    default has no stable text (its repr is an address): then no config.json is written or read."""
    from normbench.build.models import MODELS

    return _schema_key(tuple((name, spec.params) for name, spec in MODELS.items()))


@functools.lru_cache(maxsize=8)
def _schema_key(models: tuple) -> str | None:
    import hashlib

    def fields(cls, seen: dict) -> None:
        if cls in seen or not dataclasses.is_dataclass(cls):
            return
        seen[cls] = rows = []
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING:
                default = repr(f.default_factory())
            else:
                default = "<required>" if f.default is dataclasses.MISSING else repr(f.default)
            rows.append((f.name, sorted(f.metadata.items()), repr(hints[f.name]), default))
            stack = [hints[f.name]]
            while stack:  # dataclasses inside Optional[...], list[...], ...
                tp = stack.pop()
                fields(tp, seen)
                stack += typing.get_args(tp)

    seen: dict = {}
    fields(Config, seen)
    parts = [RESOLVE_VERSION, [(c.__qualname__, rows) for c, rows in seen.items()], sorted(OPTIONAL_KEYS.items())]
    for name, params in models:
        per: dict = {}
        fields(params, per)
        parts.append((name, [(c.__qualname__, rows) for c, rows in per.items()]))
    text = repr(parts)
    if " at 0x" in text:  # a default shown by its address, which differs per process: no key, no index
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
MAX_BATCH_SIZE = 8_192


def _check_limits(cfg: Config, where: _Where) -> None:
    """Upper bounds: values that would exhaust memory or fail only after data loading."""
    from normbench.build import data

    _at_most(where, "seed", cfg.seed, MAX_SEED, "Keras seeds NumPy, which takes 0 to 2**32-1")
    data.check_limits(cfg.data, where)
    _at_most(where, "train.batch_size", cfg.train.batch_size, MAX_BATCH_SIZE, "use a smaller batch")


def check_can_start(cfg: Config, where: _Where) -> None:
    """What `validate` can know about the machine without loading data: the output
    folder can be created, and a subset fits the local data file (its arrays' headers
    are read, not the arrays)."""
    import os

    from normbench.build.data import OWN_DATA, local_sizes, train_size

    out = Path(cfg.output.dir).expanduser() / cfg.name
    q = out
    while not q.exists() and q != q.parent:
        q = q.parent
    if q.exists() and not q.is_dir():
        raise where.error("output.dir", f"{q} is a file, not a folder; choose another output.dir or move the file")
    if q.is_dir() and not os.access(q, os.W_OK | os.X_OK):
        raise where.error("output.dir", f"{q} is not writable; choose a folder you can write to")
    if cfg.output.tensorboard:
        from normbench.core import checks

        if not checks.installed("tensorboard"):
            raise where.error("output.tensorboard", "tensorboard is not installed; install it with "
                                                    "`pip install 'normbench[tensorboard]'` or set output.tensorboard: false")
    sizes = local_sizes(cfg.data)
    if sizes is None and cfg.data.subset is None and cfg.data.name not in OWN_DATA:  # a whole download or
        # synthetic set trains: its known size must split (a user's image folder's size is its own)

        d = cfg.data
        n = train_size(d.name)
        _check_split(where, "train.validation_split", n, cfg.train.validation_split, f"the {d.name} training set has {n}")
    if sizes and cfg.data.subset is None:  # the whole file trains: its size must split
        file, available = sizes
        _check_split(where, "data.path", available["train"], cfg.train.validation_split,
                     f"{file} holds only {available['train']} training examples; use a larger file")
    if sizes and cfg.data.subset is not None:
        file, available = sizes
        for split in ("train", "test"):
            n = getattr(cfg.data.subset, split)
            if n > available[split]:
                raise where.error(
                    f"data.subset.{split}",
                    f"{n} is more than the {available[split]} {split} examples in {file}; use at most {available[split]}",
                )
