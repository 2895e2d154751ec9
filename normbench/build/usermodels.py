"""Your own model: described in YAML (`model.layers`), built by your Python function
(`model.arch: package.module:function` or `path/file.py:function`), or a saved Keras
model whose norm layers are swapped (`model.from: model.keras`). docs/own-model.md.

Every norm slot, whatever the path, is a `normbench.build.norms.make_norm` layer of the slot
kind its input's rank gives (conv: rank 4, sequence: rank 3, vector: rank 2), so
`model.norm` means the same axes as in the built-in models (a channels-first conv map's
batch and group norms keep axis 1). `check` is cheap (no Keras: `validate --no-model`);
`build` raises one NormbenchError line naming the layer or file, and `verify`s the built
model (nested models included): every slot holds model.norm, no norm layer is left
outside a slot, and there is at least one slot. A user model's loss and accuracy follow
its output layer (`loss_for`, `metrics_for`: a logit is class 1 above 0). A saved model's
custom classes come from `model.custom_objects`. Keras is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from normbench.core.errors import NormbenchError, one_line

SLOT_RANKS = {"conv": 4, "sequence": 3, "vector": 2}  # slot kind -> input rank (batch axis included)
# the layers model.from swaps (keras.layers class names)
NORM_CLASSES = ("BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization", "RMSNormalization")
FROM_ONLY = ("insert_after", "keep_weights", "safe_mode", "custom_objects")  # model.* keys for model.from only


def is_user_model(m) -> bool:
    """Whether a ModelConfig describes a user's model (not a registered builder)."""
    return m.layers is not None or m.from_ is not None or (m.arch is not None and ":" in m.arch)


def _split_arch(arch: str) -> tuple[str, str]:
    target, _, fn = arch.rpartition(":")
    return target, fn


# ----------------------------------------------------------------------------- check (cheap)


def check(cfg, where) -> None:
    """model.* rules of a user model that need no Keras: files exist, keys fit the path.
    (models.check refuses the built-in models' options first: that table is models'.)"""
    m = cfg.model
    _refuse_params(m, where)
    if m.from_ is None:
        for key in FROM_ONLY:
            if getattr(m, key) is not None:
                raise where.error(f"model.{key}", "applies to model.from (a saved model) only; remove it")
    if m.layers is not None:
        if isinstance(m.layers, str):
            p = Path(m.layers).expanduser()
            if not p.is_file():
                raise where.error("model.layers", f"no such file {p}; give a YAML file holding a layer list, or the list itself")
        elif not m.layers:
            raise where.error("model.layers", "is empty; list the layers, e.g. [{Dense: {units: 10}}]")
    elif m.from_ is not None:
        p = Path(m.from_).expanduser()
        if not p.is_file():
            raise where.error("model.from", f"no such file {p}; save your model with model.save('model.keras') and point here")
        if p.suffix != ".keras":
            raise where.error("model.from", f"{p} is not a .keras file; save the model with model.save('model.keras')")
        co = m.custom_objects
        if co is not None and co.endswith(".py") and not Path(co).expanduser().is_file():
            raise where.error("model.custom_objects", f"no such file {co}; give the .py file (or module name) that defines "
                              "the model's custom layer classes")
        if m.insert_after is not None and not all(isinstance(x, str) for x in m.insert_after):
            raise where.error("model.insert_after", "expected a list of layer names or class names, e.g. [conv2d, Dense]")
    else:
        target, fn = _split_arch(m.arch)
        if not target or not fn.isidentifier():
            raise where.error("model.arch", f"{m.arch!r} is not package.module:function or path/file.py:function")
        if target.endswith(".py") and not Path(target).expanduser().is_file():
            raise where.error("model.arch", f"no such file {target}; check the path before ':{fn}'")


def _refuse_params(m, where) -> None:
    """A user's model reads no model.params: refuse them rather than ignore them."""
    if m.params is not None:  # a builder's own options belong in its own file
        key = f"model.params.{next(iter(m.params))}" if isinstance(m.params, dict) and m.params else "model.params"
        raise where.error(key, "your own model reads no model.params (they are a built-in model's options); remove it")


# ----------------------------------------------------------------------------- norm slots


def _norm_text(layer) -> str:
    """A norm layer with the settings that say what it normalizes."""
    name = type(layer).__name__
    if name == "GroupNormalization":
        return f"{name}(groups={layer.groups}, axis={layer.axis})"
    if name in ("BatchNormalization", "LayerNormalization", "RMSNormalization", "UnitNormalization"):
        return f"{name}(axis={layer.axis})"
    return name


def _shape_text(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def slot_kind(shape, what: str) -> str:
    """The slot kind of a norm whose input has `shape` (batch axis included)."""
    for kind, rank in SLOT_RANKS.items():
        if len(shape) == rank:
            return kind
    raise NormbenchError(f"{what}: its input {_shape_text(shape)} has rank {len(shape)}; the norm table has slots for "
                         "rank 4 (conv), 3 (sequence) and 2 (vector) only; use another layer or slot")


def _fits(model_shape, data_shape) -> bool:
    """Whether examples of `data_shape` fit a model input of `model_shape` (None: any length)."""
    return len(model_shape) == len(data_shape) and all(m is None or m == d for m, d in zip(model_shape, data_shape))


def norm_classes() -> tuple:
    """The keras.layers norm classes (and their subclasses) a slot replaces."""
    import keras

    return tuple(c for c in (getattr(keras.layers, n, None) for n in NORM_CLASSES) if c is not None)


def _feature_axis(layer, shape, what: str) -> int:
    """The axis a saved norm layer's features lie on (-1: the last, channels-last; 1: a
    channels-first conv map's channels). A norm over every feature axis (LayerNormalization
    over [1, 2, 3]) has none to keep: -1. Anything else is refused, naming the layer."""
    rank = len(shape)
    axis = getattr(layer, "axis", -1)
    axes = sorted({int(a) % rank for a in ([axis] if isinstance(axis, int) else list(axis))})
    if axes == list(range(1, rank)) and type(layer).__name__ != "BatchNormalization":
        return -1
    if axes == [rank - 1]:
        return -1
    if axes == [1] and rank == 4:
        return 1
    raise NormbenchError(f"{what}: {_norm_text(layer)} normalizes axis {', '.join(map(str, axes))} of its input "
                         f"{_shape_text(shape)}; normbench keeps the channels of channels-last maps (the last axis) and of "
                         "channels-first conv maps (axis 1) only; save the model channels-last")


def make_slot(cfg, kind: str, shape, name: str, what: str, old: str = "", axis: int = -1):
    """The model.norm layer for one slot, checked against its input (rank and group
    divisibility), tagged so `slots(model)` can list it. `axis`: where the features lie
    (-1, or 1 for a channels-first conv map: batch and group norms then keep axis 1; layer,
    rms and none do not depend on it)."""
    from normbench.build.norms import slot_norm

    m = cfg.model
    norm = slot_norm(m, name, kind)  # model.norms: by the slot's name, else its kind, else model.norm
    if len(shape) != SLOT_RANKS[kind]:
        fits = slot_kind(shape, what)
        raise NormbenchError(f"{what}: a {kind} slot takes rank-{SLOT_RANKS[kind]} input, this one gets "
                             f"{_shape_text(shape)}; use norm {fits}")
    channels = shape[axis]
    if norm == "group" and channels is not None and channels % m.norm_groups:
        ok = [g for g in range(1, channels + 1) if channels % g == 0]
        raise NormbenchError(f"model.norm_groups: {m.norm_groups} groups do not divide the {channels} channels of slot {name} "
                             f"({what}); use one of: {', '.join(map(str, ok))}")
    layer = _norm_layer(cfg, kind, name, axis % len(shape) != len(shape) - 1)
    layer._normbench_slot = (kind, _shape_text(shape), old)
    layer._normbench_slot_key = (name, kind)
    return layer


def _norm_layer(cfg, kind: str, name: str, channels_first: bool = False):
    """The slot's norm layer (model.norms, else model.norm); on a channels-first conv map batch and group norm
    keep axis 1 (the same per-channel statistics); layer, rms and none cover every
    feature whatever the layout."""
    from normbench.build.norms import make_norm, slot_norm

    m = cfg.model
    norm = slot_norm(m, name, kind)  # model.norms: by the slot's name, else its kind, else model.norm
    if not channels_first or norm not in ("batch", "group"):
        return make_norm(norm, kind, m.norm_groups, name)
    if norm == "batch":
        from normbench.build.layers import FusedBatchNormalization

        return FusedBatchNormalization(axis=1, name=name)
    import keras

    return keras.layers.GroupNormalization(groups=m.norm_groups, axis=1, name=name)


def _instance_note(layer) -> str:
    """' (instance normalization ...)' for a group norm with one channel per group."""
    if type(layer).__name__ != "GroupNormalization":
        return ""
    try:
        channels = layer.input.shape[layer.axis]
    except Exception:
        return ""
    if channels is not None and layer.groups >= channels:
        return (f" (norm_groups {layer.groups} >= its {channels} channels: one channel per group, "
                "so this slot is instance normalization)")
    return ""


def slots(model) -> list[str]:
    """One line per norm slot of a built model: name, input shape, old layer, new layer."""
    out = []
    for layer in model._flatten_layers(include_self=False):
        tag = getattr(layer, "_normbench_slot", None)
        if tag:
            kind, shape, old = tag
            out.append(f"slot {layer.name}: {kind}, input {shape}, {old or 'norm: ' + kind} -> {_norm_text(layer)}"
                       + _instance_note(layer))
    return out


# how each path marks a norm slot (the fix of a model without one, or with a norm outside one)
MARK_SLOT = {
    "model.layers": "mark each norm's place with {norm: conv|sequence|vector}",
    "model.from": "put its norm layers in the graph, or name layers to put a norm after with model.insert_after",
    "model.arch": "create each norm with the builder's norm('conv'|'sequence'|'vector')",
}


def verify(model, cfg, what: str) -> int:
    """Walk the built model, nested models included: every slot holds its norm's layer (model.norms, else model.norm)
    and no norm layer is left outside a slot (under `none`, no norm at all). Returns the
    number of slots; one NormbenchError line naming the layer otherwise, and for a model
    with no slot at all (a norm comparison would compare identical models)."""
    import keras

    from normbench.build.norms import make_norm, slot_norm

    norms = norm_classes()
    count = 0

    def wanted(layer):
        """The slot's norm (model.norms, else model.norm) and its layer class."""
        name, kind = getattr(layer, "_normbench_slot_key", (layer.name, layer._normbench_slot[0]))
        norm = slot_norm(cfg.model, name, kind)
        return norm, type(make_norm(norm, kind, cfg.model.norm_groups))

    def walk(layers):
        nonlocal count
        for layer in layers:
            cls = type(layer).__name__
            if getattr(layer, "_normbench_slot", None):
                norm, want = wanted(layer)
                if type(layer) is not want:
                    raise NormbenchError(f"{what}: slot {layer.name} holds {cls}, not its norm {norm} "
                                         f"({want.__name__}); report this: normbench built it wrong")
                count += 1
            elif isinstance(layer, (keras.Sequential, _functional())):
                walk(layer.layers)
            elif isinstance(layer, norms):
                raise NormbenchError(f"{what}: layer {layer.name} ({cls}) is a norm outside a norm slot: it would stay "
                                     f"{cls} whatever model.norm says; {MARK_SLOT[what]}")
            else:
                inner = [x for x in layer._flatten_layers(include_self=False) if isinstance(x, norms)]
                if inner:
                    raise NormbenchError(
                        f"{what}: layer {layer.name} ({cls}) holds {inner[0].name} ({type(inner[0]).__name__}) inside its "
                        "own Python code, where normbench cannot swap it; expose its norms: write a builder "
                        "(model.arch: file.py:function) that creates them with norm('sequence'|'conv'|'vector') "
                        "(docs/own-model.md)")

    walk(model.layers)
    if not count:
        raise NormbenchError(f"{what}: the model has no norm slot, so every model.norm would train the same model; "
                             f"{MARK_SLOT[what]}")
    return count


def _functional():
    from keras.src.models.functional import Functional

    return Functional


def check_output(model, num_classes: int, what: str) -> None:
    """The model's output fits the labels: one output of num_classes values, or 1 for two
    classes; data of two classes at least."""
    if num_classes < 2:
        raise NormbenchError(f"{what}: the data has one class only; a comparison needs examples of two classes or more; "
                             "fix the labels")
    outputs = model.outputs
    if len(outputs) != 1:
        raise NormbenchError(f"{what}: the model has {len(outputs)} outputs; normbench trains one classification output "
                             f"(one value per class); keep one output of {num_classes} units")
    shape = tuple(outputs[0].shape)
    if len(shape) != 2:
        raise NormbenchError(f"{what}: the model's output has shape {_shape_text(shape)}, a classification loss takes one "
                             f"vector per example, (None, {num_classes}); end with pooling or Flatten and a Dense of "
                             f"{num_classes} units")
    units = shape[-1]
    if units is None or units == num_classes or (units == 1 and num_classes == 2):
        return
    raise NormbenchError(f"{what}: the model outputs {units} value{'s' * (units != 1)} per example but the data has "
                         f"{num_classes} classes; give the last layer {num_classes} units"
                         + (" (or 1 with sigmoid)" if num_classes == 2 else ""))


def _output_layer(model):
    """The layer that computes the model's output (inside a nested model: its own)."""
    import keras

    layer = model
    while isinstance(layer, (keras.Sequential, _functional())):
        layer = layer.outputs[0]._keras_history.operation if not isinstance(layer, keras.Sequential) else layer.layers[-1]
    return layer


def output_activation(model) -> str:
    """The output layer's activation: sigmoid, softmax, or linear (logits)."""
    layer = _output_layer(model)
    if type(layer).__name__ == "Softmax":
        return "softmax"
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def loss_for(model):
    """The loss for a user model, from its output layer: 1 unit -> binary cross-entropy,
    else sparse categorical; from_logits when the output layer has no sigmoid/softmax."""
    import keras

    units, activation = model.output_shape[-1], output_activation(model)
    if units == 1:
        return keras.losses.BinaryCrossentropy(from_logits=activation != "sigmoid")
    return keras.losses.SparseCategoricalCrossentropy(from_logits=activation != "softmax")


def metrics_for(model) -> list:
    """The accuracy of a user model, following its output as loss_for does: 1 unit -> the
    sign of a logit (threshold 0) or a sigmoid's probability at 0.5; several -> the argmax
    (the same for logits and probabilities). Named "accuracy" (history.csv, summary.json)."""
    import keras

    if model.output_shape[-1] == 1:
        threshold = 0.5 if output_activation(model) == "sigmoid" else 0.0
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=threshold)]
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


SCALING = ("Rescaling", "Normalization", "Pixels")  # layers that put raw values in range inside the model


def input_text(cfg, model=None) -> str:
    """validate's line on what the model is fed: x's dtype, shape and value range, as the
    model's input gets them (images: the pixels as stored, 0-255 uint8; arrays: as in the file);
    a note when a user's `model` has no scaling layer (SCALING) and values go past 1."""
    import numpy as np

    from normbench.build.data import _find_local, input_spec

    shape, dtype, _ = input_spec(cfg.data)
    name, hi = cfg.data.name, None
    if name in ("imdb", "synthetic_imdb"):
        values = f"token ids 0 to {cfg.data.num_words - 1}"
    elif name != "arrays":
        values, hi = "pixels 0 to 255", 255
    else:
        with np.load(_find_local(cfg.data, ()), mmap_mode="r") as f:
            lo = min(float(np.min(f[k])) for k in ("x_train", "x_test"))
            hi = max(float(np.max(f[k])) for k in ("x_train", "x_test"))
        values = f"values {lo:g} to {hi:g}"
    text = f"x as the model gets it: {dtype}, shape {list(shape)} per example, {values}"
    scaled = model is not None and any(type(x).__name__ in SCALING for x in model._flatten_layers(include_self=False))
    if is_user_model(cfg.model) and hi is not None and hi > 1.5 and not scaled:
        text += " (not rescaled: if your model expects [0, 1] or [-1, 1], scale inside it, e.g. a Rescaling layer)"
    return text


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- build


def build(cfg, num_classes: int, input_shape, input_dtype):
    """(keras model, info) for a user model; info: source, sha256 (what was built)."""
    m = cfg.model
    if m.layers is not None:
        model, info = _from_layers(cfg, num_classes, input_shape, input_dtype)
        what = "model.layers"
    elif m.from_ is not None:
        model, info = _from_saved(cfg, input_shape)
        what = "model.from"
    else:
        model, info = _from_python(cfg, num_classes, input_shape, input_dtype)
        what = "model.arch"
    check_output(model, num_classes, what)
    info["norm_slots_verified"] = verify(model, cfg, what)
    return model, info


def layer_classes() -> dict:
    """Layer class name -> class: keras.layers and normbench's own (Pixels, HoistedSimpleRNN)."""
    import keras

    from normbench.build import layers as nb

    out = {n: c for n, c in vars(keras.layers).items() if isinstance(c, type) and issubclass(c, keras.layers.Layer)}
    out.pop("Lambda", None)  # arbitrary code has no place in a YAML file
    out.pop("InputLayer", None)
    out.update(Pixels=nb.Pixels, HoistedSimpleRNN=nb.HoistedSimpleRNN)
    return out


def _read_layers(m):
    """(entries, how errors name an entry, source, sha256)."""
    from normbench.core.strictyaml import load_yaml_strict

    if isinstance(m.layers, str):
        p = Path(m.layers).expanduser()
        text = p.read_bytes()
        try:
            raw = load_yaml_strict(text.decode("utf-8"))
        except Exception as e:
            raise NormbenchError(f"model.layers: {p}: not a YAML layer list ({one_line(e, 100)}); fix the file") from None
        if isinstance(raw, dict) and "layers" in raw:
            raw = raw["layers"]
        if not isinstance(raw, list) or not raw:
            raise NormbenchError(f"model.layers: {p}: expected a list of layers (or a mapping with a layers list)")
        return raw, f"{p}: layers", str(p), _sha256(text)
    return m.layers, "model.layers", "model.layers", _sha256(json.dumps(m.layers, sort_keys=True).encode())


def _from_layers(cfg, num_classes, input_shape, input_dtype):
    import keras

    entries, prefix, source, digest = _read_layers(cfg.model)
    classes = layer_classes()
    x, entries, offset = _first_input(entries, prefix, input_shape, input_dtype)
    inputs, built, n_slots = x, [], 0
    for j, entry in enumerate(entries):
        i = j + offset
        if isinstance(entry, dict) and "norm" in entry:
            n_slots += 1
            layer, what = _norm_entry(cfg, entry, f"{prefix}[{i}]", n_slots, x, built)
        else:
            layer, what = _class_entry(entry, f"{prefix}[{i}]", classes)
        x = _apply(layer, x, what)
        built.append(layer)
    stem = Path(source).stem if source != "model.layers" else "layers"
    model = keras.Sequential([keras.Input(shape=inputs.shape[1:], dtype=inputs.dtype), *built],
                             name=f"{stem}_{cfg.model.norm}")
    return model, {"source": source, "sha256": digest}


def _first_input(entries, prefix, input_shape, input_dtype):
    """(the model's input, the entries after it, the index of the first of them): the list's
    own Input (or InputLayer) entry, checked against the data's shape, else the data's."""
    import keras

    if isinstance(entries[0], dict) and len(entries[0]) == 1 and next(iter(entries[0])) in ("Input", "InputLayer"):
        (cls_name, spec), = entries[0].items()
        spec = spec or {}
        # InputLayer (a model's own layer list, as model.get_config() writes it) is Input
        shape = tuple(spec.get("shape") or tuple(spec.get("batch_shape") or (None,))[1:])
        if input_shape is not None and not _fits(shape, tuple(input_shape)):
            raise NormbenchError(f"{prefix}[0] ({cls_name}): shape {list(shape)} but the data's examples have shape "
                                 f"{list(input_shape)}; change the {cls_name} shape or the data")
        return keras.Input(shape=shape, dtype=spec.get("dtype", input_dtype), name=spec.get("name")), entries[1:], 1
    return keras.Input(shape=tuple(input_shape), dtype=input_dtype), entries, 0


def _norm_entry(cfg, entry, at: str, n_slots: int, x, built):
    """(the norm layer, how errors name it) of a {norm: kind} entry at `at` (prefix[i])."""
    extra = set(entry) - {"norm", "name"}
    kind, name = entry["norm"], entry.get("name", f"norm_{n_slots}")
    what = f"{at} (norm {kind})"
    if extra or kind not in SLOT_RANKS:
        raise NormbenchError(f"{what}: a norm slot is {{norm: conv|sequence|vector}} (optionally name:); got {entry}")
    # a conv slot after a channels-first layer normalizes its channels, axis 1
    first = next((b.data_format for b in reversed(built) if getattr(b, "data_format", None)), None)
    axis = 1 if kind == "conv" and first == "channels_first" else -1
    return make_slot(cfg, kind, tuple(x.shape), name, what, axis=axis), what


def _class_entry(entry, at: str, classes: dict):
    """(the layer, how errors name it) of a {LayerClass: {arguments}} entry at `at`."""
    import difflib

    if not isinstance(entry, dict) or len(entry) != 1:
        raise NormbenchError(f"{at}: expected {{LayerClass: {{arguments}}}} or {{norm: conv}}, got {entry!r}")
    (cls_name, args), = entry.items()
    args = args or {}
    if not isinstance(args, dict):
        raise NormbenchError(f"{at} ({cls_name}): arguments must be a mapping, got {args!r}")
    name = args.get("name", "")
    what = f"{at} ({cls_name}{' ' + name if name else ''})"
    cls = classes.get(cls_name)
    if cls is None:
        near = difflib.get_close_matches(str(cls_name), classes, 3)
        raise NormbenchError(f"{what}: unknown layer class {cls_name!r}; use a keras.layers class name"
                             + (f", e.g. {', '.join(near)}" if near else " (e.g. Conv2D, Dense)"))
    try:
        return cls(**args), what
    except Exception as e:
        raise NormbenchError(f"{what}: bad arguments ({one_line(e, 140, kind=True)}); see keras.layers.{cls_name}") from None


def _apply(layer, x, what: str):
    """layer(x), a shape mismatch as one line naming the entry."""
    try:
        return layer(x)
    except NormbenchError:
        raise
    except Exception as e:
        raise NormbenchError(f"{what}: does not fit its input {_shape_text(x.shape)} ({one_line(e, 140, kind=True)}); "
                             "check its arguments and the layers before it") from None


def _from_python(cfg, num_classes, input_shape, input_dtype):
    arch = cfg.model.arch
    fn, path = _import_builder(arch)
    model = _call_builder(fn, _norm_factory(cfg, arch), cfg, input_shape, num_classes)
    _check_built(model, arch, input_shape)
    digest = _sha256(path.read_bytes()) if path.is_file() else None
    return model, {"source": arch, "sha256": digest}


def _import_builder(arch: str):
    """(the builder function, its module's file) of model.arch file.py:function or module:function."""
    import importlib
    import importlib.util

    target, fn_name = _split_arch(arch)
    try:
        if target.endswith(".py"):
            path = Path(target).expanduser()
            spec = importlib.util.spec_from_file_location(f"normbench_user_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
            path = Path(getattr(module, "__file__", "") or "")
    except ModuleNotFoundError as e:
        raise NormbenchError(f"model.arch: no module named {e.name!r} ({arch}); check the name and that it is importable "
                             "(run from its folder or set PYTHONPATH)") from None
    except Exception as e:
        raise NormbenchError(f"model.arch: importing {target} failed ({one_line(e, 140, kind=True)}); fix the module") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise NormbenchError(f"model.arch: {target} has no function {fn_name!r}; define it or fix the name after ':'")
    return fn, path


def _norm_factory(cfg, arch: str):
    """The `norm` function a Python builder is handed: each call is one tagged norm slot."""
    made = 0

    def norm(kind: str, name: str | None = None, channels_first: bool = False):
        """The model.norm layer for a slot of kind conv | sequence | vector
        (channels_first: a conv map laid out (batch, channels, height, width))."""
        nonlocal made
        made += 1
        if kind not in SLOT_RANKS:
            raise NormbenchError(f"model.arch: {arch} asked for a norm slot of kind {kind!r}; use conv, sequence or vector")
        if channels_first and kind != "conv":
            raise NormbenchError(f"model.arch: {arch} asked for a channels_first {kind} slot; only conv maps have a "
                                 "channels-first layout: drop channels_first")
        name = name or f"norm_{made}"
        layer = _norm_layer(cfg, kind, name, channels_first)
        layer._normbench_slot = (kind, "?", "")
        layer._normbench_slot_key = (name, kind)
        return layer

    return norm


def _call_builder(fn, norm, cfg, input_shape, num_classes):
    """fn(norm, input_shape, num_classes); what it raises as one line with the fix."""
    arch = cfg.model.arch
    try:
        return fn(norm, tuple(input_shape), num_classes)
    except NormbenchError:
        raise
    except Exception as e:
        # Keras' GroupNormalization checks its groups against the channels when the builder
        # calls it: that fix is the config's
        groups = cfg.model.norm == "group" and "groups" in str(e).lower()
        fix = "set model.norm_groups to a number that divides the channels of every norm slot" if groups else "fix the builder"
        raise NormbenchError(f"model.arch: {arch} raised {one_line(e, 160, kind=True)}; {fix}") from None


def _check_built(model, arch: str, input_shape) -> None:
    """A builder's result is a keras.Model for the data's shape, each norm slot of the rank
    its kind takes (the slots' input shapes are recorded in their tags)."""
    import keras

    if not isinstance(model, keras.Model):
        raise NormbenchError(f"model.arch: {arch} returned {type(model).__name__}, not a keras.Model; return the model")
    if not isinstance(model.input_shape, tuple) or not _fits(tuple(model.input_shape[1:]), tuple(input_shape)):
        raise NormbenchError(f"model.arch: {arch} built a model for input {_shape_text(model.input_shape)}, the data's "
                             f"examples have shape {list(input_shape)}; build it for the input_shape it is given")
    for layer in model._flatten_layers(include_self=False):  # the slots' input shapes, now known
        tag = getattr(layer, "_normbench_slot", None)
        if tag:
            try:
                shape = tuple(layer.input.shape)
            except Exception:
                shape = None
            if shape is not None and len(shape) != SLOT_RANKS[tag[0]]:  # norm("vector") on a conv map is another norm
                raise NormbenchError(f"model.arch: {arch}: slot {layer.name} is norm({tag[0]!r}), which takes rank-"
                                     f"{SLOT_RANKS[tag[0]]} input, but its input is {_shape_text(shape)}; use "
                                     f"norm({slot_kind(shape, f'model.arch: {arch}: slot {layer.name}')!r})")
            layer._normbench_slot = (tag[0], "?" if shape is None else _shape_text(shape), "")


_IMPORTED: dict = {}  # custom objects file or module -> its classes (imported once per process)


def _custom_objects(m) -> dict:
    """model.custom_objects: the classes of a .py file or module, imported before loading
    (importing runs its code: name only files you trust; Keras' safe_mode still governs
    the saved file's Lambda layers). Registered classes (keras.saving.register_keras_serializable)
    register themselves on import; the others are passed by class name."""
    import importlib
    import importlib.util

    target = m.custom_objects
    if target is None:
        return {}
    key = str(Path(target).expanduser().resolve()) if target.endswith(".py") else target
    if key not in _IMPORTED:
        try:
            if target.endswith(".py"):
                path = Path(key)
                spec = importlib.util.spec_from_file_location(f"normbench_objects_{path.stem}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise NormbenchError(f"model.custom_objects: no module named {e.name!r} ({target}); check the name and that it "
                                 "is importable (run from its folder or set PYTHONPATH), or give a .py file") from None
        except Exception as e:
            raise NormbenchError(f"model.custom_objects: importing {target} failed ({one_line(e, 140, kind=True)}); "
                                 "fix the file") from None
        _IMPORTED[key] = {n: c for n, c in vars(module).items() if isinstance(c, type) and not n.startswith("_")}
    return dict(_IMPORTED[key])


def _load_saved(m, path: Path):
    import re
    import zipfile

    import keras

    if not zipfile.is_zipfile(path):  # Keras says "File not found" of a truncated or corrupt archive
        raise NormbenchError(f"model.from: {path} is not a valid .keras archive (a zip file, as model.save writes it: "
                             "truncated or corrupt?); save the model again")
    objects = _custom_objects(m)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=m.safe_mode is not False, custom_objects=objects)
    except Exception as e:
        text = str(e)
        if "safe_mode" in text or "Lambda" in text:
            raise NormbenchError(f"model.from: {path} holds a Lambda layer, whose Python code would run when it loads, and "
                                 "normbench loads saved models with Keras' safe_mode on; if you trust the file, set "
                                 "model.safe_mode: false") from None
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
        if missing:
            where = f"model.custom_objects ({m.custom_objects}) does not define it" if m.custom_objects else \
                "give the .py file or module that defines it: model.custom_objects: layers.py"
            raise NormbenchError(f"model.from: {path} uses the custom class {missing.group(1)}, which Keras cannot find; "
                                 f"{where}") from None
        if isinstance(e, zipfile.BadZipFile) or "zip" in text.lower():
            raise NormbenchError(f"model.from: {path} is not a valid .keras archive ({one_line(e, 100)}); save the model "
                                 "again") from None
        raise NormbenchError(f"model.from: cannot load {path} ({one_line(e, 140, kind=True)}); save it again with "
                             "model.save('model.keras') (its custom classes: model.custom_objects)") from None


def _head(model) -> set:
    """Names of the layers whose output the loss takes: the output layer, and the
    weightless layers (Activation, Softmax, Dropout ...) between it and the last layer
    with weights, nested models' included."""
    import keras

    names, layer = set(), model
    while True:
        if isinstance(layer, keras.Sequential):
            for inner in reversed(layer.layers):
                names.add(inner.name)
                if inner.weights:
                    break
            layer = layer.layers[-1]
            if not isinstance(layer, (keras.Sequential, _functional())):
                return names
            continue
        if isinstance(layer, _functional()):
            layer = layer.outputs[0]._keras_history.operation
        names.add(layer.name)
        if isinstance(layer, (keras.Sequential, _functional())):
            continue
        if layer.weights:
            return names
        try:
            layer = layer.input._keras_history.operation
        except Exception:
            return names
        if type(layer).__name__ == "InputLayer":
            return names


def _from_saved(cfg, input_shape):
    import keras

    m = cfg.model
    path = Path(m.from_).expanduser()
    src = _load_saved(m, path)
    _check_saved(src, path, input_shape)
    inserts = set(m.insert_after or ())
    every = list(src._flatten_layers(include_self=False))
    head = _check_inserts(inserts, every, src, path)

    def call(layer, *args, **kwargs):  # a swapped-in norm takes no mask (BatchNormalization's call did)
        if getattr(layer, "_normbench_slot", None) or isinstance(layer, keras.Sequential):
            kwargs.pop("mask", None)
        return layer(*args, **kwargs)

    # recursive: the layers of nested (functional or Sequential) models are swapped too;
    # Keras clones a Sequential model without a call function
    model = keras.models.clone_model(src, clone_function=_cloner(cfg, inserts, head), recursive=True,
                                     call_function=None if isinstance(src, keras.Sequential) else call)
    if m.keep_weights:
        _copy_weights(every, model)
    return model, {"source": str(path), "sha256": _sha256(path.read_bytes())}


def _check_saved(src, path: Path, input_shape) -> None:
    """A loaded model normbench can rewrite (Sequential or functional) for the data's shape."""
    import keras

    Functional = _functional()
    if not isinstance(src, (keras.Sequential, Functional)) or (
            isinstance(src, Functional) and type(src) not in (Functional, keras.Model)):
        raise NormbenchError(f"model.from: {path} is a subclassed model ({type(src).__name__}): its layers are code, not a "
                             "graph normbench can rewrite; save a Sequential or functional model, or write a Python builder "
                             "(model.arch: file.py:function)")
    if not isinstance(src.input_shape, tuple) or not _fits(tuple(src.input_shape[1:]), tuple(input_shape)):
        raise NormbenchError(f"model.from: {path} takes input {_shape_text(src.input_shape)}, the data's examples have "
                             f"shape {list(input_shape)}; use data that fits the model")


def _check_inserts(inserts: set, every: list, src, path: Path) -> set:
    """model.insert_after names layers (or layer classes) of the model, none of its output
    layers; returns the output layers' names (_head)."""
    known = {layer.name for layer in every} | {type(layer).__name__ for layer in every}
    missing = sorted(inserts - known)
    if missing:
        raise NormbenchError(f"model.insert_after: {path} has no layer or layer class {', '.join(missing)}; "
                             f"its layers: {', '.join(layer.name for layer in src.layers)}")
    head = _head(src)
    named = sorted(inserts & head)
    if named:  # a norm after the output layer would normalize the predictions the loss takes
        raise NormbenchError(f"model.insert_after: {named[0]} is the model's output layer (its output is what the loss "
                             "takes); a norm belongs after hidden layers only: remove it")
    return head


def _cloner(cfg, inserts: set, head: set):
    """clone_model's clone function: each norm layer becomes model.norm's slot, a layer named
    in model.insert_after gets a slot after it, every other layer is copied from its config."""
    import keras

    norms = norm_classes()

    def clone(layer):
        cls = type(layer).__name__
        if isinstance(layer, norms):
            shape = tuple(layer.input.shape)
            what = f"slot {layer.name}"
            kind = slot_kind(shape, what)
            return make_slot(cfg, kind, shape, layer.name, what, _norm_text(layer), _feature_axis(layer, shape, what))
        new = layer.__class__.from_config(layer.get_config())
        # by class name ([Dense]) never after the output layer: it feeds the loss
        if layer.name in inserts or (cls in inserts and layer.name not in head):
            shape = tuple(layer.output.shape)
            name = f"{layer.name}_norm"
            what = f"slot {name} (after {layer.name})"
            norm = make_slot(cfg, slot_kind(shape, what), shape, name, what, "(inserted)")
            return keras.Sequential([new, norm], name=f"{layer.name}_then_norm")
        return new

    return clone


def _copy_weights(every: list, model) -> None:
    """model.keep_weights: the saved model's trained weights into the clone's layers of the
    same name (norm layers and nested models excluded: the norms are new)."""
    import keras

    norms, Functional = norm_classes(), _functional()
    by_name = {}
    for layer in model._flatten_layers(include_self=False):
        by_name.setdefault(layer.name, layer)
    for layer in every:
        if not isinstance(layer, norms) and not isinstance(layer, (keras.Sequential, Functional)) \
                and layer.weights and layer.name in by_name:
            by_name[layer.name].set_weights(layer.get_weights())
