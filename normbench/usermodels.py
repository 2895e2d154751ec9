"""Your own model: described in YAML (`model.layers`), built by your Python function
(`model.arch: package.module:function` or `path/file.py:function`), or a saved Keras
model whose norm layers are swapped (`model.from: model.keras`). docs/own-model.md.

Every norm slot, whatever the path, is a `normbench.norms.make_norm` layer of the slot
kind its input's rank gives (conv: rank 4, sequence: rank 3, vector: rank 2), so
`model.norm` means the same axes as in the built-in models. `check` is cheap (no Keras:
`validate --no-model`); `build` raises one NormbenchError line naming the layer or file.
Keras is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from normbench import NormbenchError, one_line

SLOT_RANKS = {"conv": 4, "sequence": 3, "vector": 2}  # slot kind -> input rank (batch axis included)
# the layers model.from swaps (keras.layers class names)
NORM_CLASSES = ("BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization", "RMSNormalization")
FROM_ONLY = ("insert_after", "keep_weights", "safe_mode")  # model.* keys for model.from only


def is_user_model(m) -> bool:
    """Whether a ModelConfig describes a user's model (not a registered builder)."""
    return m.layers is not None or m.from_ is not None or (m.arch is not None and ":" in m.arch)


def _split_arch(arch: str) -> tuple[str, str]:
    target, _, fn = arch.rpartition(":")
    return target, fn


# ----------------------------------------------------------------------------- check (cheap)


def check(cfg, where) -> None:
    """model.* rules of a user model that need no Keras: files exist, keys fit the path."""
    m = cfg.model
    _refuse_builtin_options(m, where)
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
        if m.insert_after is not None and not all(isinstance(x, str) for x in m.insert_after):
            raise where.error("model.insert_after", "expected a list of layer names or class names, e.g. [conv2d, Dense]")
    else:
        target, fn = _split_arch(m.arch)
        if not target or not fn.isidentifier():
            raise where.error("model.arch", f"{m.arch!r} is not package.module:function or path/file.py:function")
        if target.endswith(".py") and not Path(target).expanduser().is_file():
            raise where.error("model.arch", f"no such file {target}; check the path before ':{fn}'")


def _refuse_builtin_options(m, where) -> None:
    """A user's model reads none of the model.* keys only some built-in models read
    (models.readers: model.unroll, model.rnn, ...): refuse each one set away from its
    default, which would otherwise be silently ignored."""
    from normbench.models import refuse_unread

    refuse_unread(m, where, (), "your own model")
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


def make_slot(cfg, kind: str, shape, name: str, what: str, old: str = ""):
    """The model.norm layer for one slot, checked against its input (rank and group
    divisibility), tagged so `slots(model)` can list it."""
    from normbench.models import slot_norm
    from normbench.norms import make_norm

    m = cfg.model
    norm = slot_norm(m, name, kind)  # model.norms: by the slot's name, else its kind, else model.norm
    if len(shape) != SLOT_RANKS[kind]:
        fits = slot_kind(shape, what)
        raise NormbenchError(f"{what}: a {kind} slot takes rank-{SLOT_RANKS[kind]} input, this one gets "
                             f"{_shape_text(shape)}; use norm {fits}")
    channels = shape[-1]
    if norm == "group" and channels is not None and channels % m.norm_groups:
        ok = [g for g in range(1, channels + 1) if channels % g == 0]
        raise NormbenchError(f"model.norm_groups: {m.norm_groups} groups do not divide the {channels} channels of slot {name} "
                             f"({what}); use one of: {', '.join(map(str, ok))}")
    layer = make_norm(norm, kind, m.norm_groups, name)
    layer._normbench_slot = (kind, _shape_text(shape), old)
    layer._normbench_slot_key = (name, kind)
    return layer


def slots(model) -> list[str]:
    """One line per norm slot of a built model: name, input shape, old layer, new layer."""
    out = []
    for layer in model._flatten_layers(include_self=False):
        tag = getattr(layer, "_normbench_slot", None)
        if tag:
            kind, shape, old = tag
            out.append(f"slot {layer.name}: {kind}, input {shape}, {old or 'norm: ' + kind} -> {_norm_text(layer)}")
    return out


def check_output(model, num_classes: int, what: str) -> None:
    """The model's output fits the labels: num_classes values, or 1 for two classes."""
    units = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if units is None or units == num_classes or (units == 1 and num_classes == 2):
        return
    raise NormbenchError(f"{what}: the model outputs {units} value{'s' * (units != 1)} per example but the data has "
                         f"{num_classes} classes; give the last layer {num_classes} units"
                         + (" (or 1 with sigmoid)" if num_classes == 2 else ""))


def loss_for(model):
    """The loss for a user model, from its output layer: 1 unit -> binary cross-entropy,
    else sparse categorical; from_logits when the last layer has no sigmoid/softmax."""
    import keras

    units = model.output_shape[-1]
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "linear")
    if units == 1:
        return keras.losses.BinaryCrossentropy(from_logits=activation != "sigmoid")
    return keras.losses.SparseCategoricalCrossentropy(from_logits=activation != "softmax")


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
    return model, info


def layer_classes() -> dict:
    """Layer class name -> class: keras.layers and normbench's own (Pixels, HoistedSimpleRNN)."""
    import keras

    from normbench import layers as nb

    out = {n: c for n, c in vars(keras.layers).items() if isinstance(c, type) and issubclass(c, keras.layers.Layer)}
    out.pop("Lambda", None)  # arbitrary code has no place in a YAML file
    out.pop("InputLayer", None)
    out.update(Pixels=nb.Pixels, HoistedSimpleRNN=nb.HoistedSimpleRNN)
    return out


def _read_layers(m):
    """(entries, how errors name an entry, source, sha256)."""
    from normbench.config import load_yaml_strict

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
    import difflib

    import keras

    entries, prefix, source, digest = _read_layers(cfg.model)
    classes = layer_classes()
    x = None
    if isinstance(entries[0], dict) and set(entries[0]) == {"Input"}:
        spec = entries[0]["Input"] or {}
        shape = tuple(spec.get("shape") or ())
        if input_shape is not None and tuple(shape) != tuple(input_shape):
            raise NormbenchError(f"{prefix}[0] (Input): shape {list(shape)} but the data's examples have shape "
                                 f"{list(input_shape)}; change the Input shape or the data")
        x = keras.Input(shape=shape, dtype=spec.get("dtype", input_dtype), name=spec.get("name"))
        entries = entries[1:]
        offset = 1
    else:
        x = keras.Input(shape=tuple(input_shape), dtype=input_dtype)
        offset = 0
    inputs, built, n_slots = x, [], 0
    for j, entry in enumerate(entries):
        i = j + offset
        if isinstance(entry, dict) and "norm" in entry:
            n_slots += 1
            extra = set(entry) - {"norm", "name"}
            kind, name = entry["norm"], entry.get("name", f"norm_{n_slots}")
            what = f"{prefix}[{i}] (norm {kind})"
            if extra or kind not in SLOT_RANKS:
                raise NormbenchError(f"{what}: a norm slot is {{norm: conv|sequence|vector}} (optionally name:); got {entry}")
            layer = make_slot(cfg, kind, tuple(x.shape), name, what)
        else:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise NormbenchError(f"{prefix}[{i}]: expected {{LayerClass: {{arguments}}}} or {{norm: conv}}, got {entry!r}")
            (cls_name, args), = entry.items()
            args = args or {}
            if not isinstance(args, dict):
                raise NormbenchError(f"{prefix}[{i}] ({cls_name}): arguments must be a mapping, got {args!r}")
            name = args.get("name", "")
            what = f"{prefix}[{i}] ({cls_name}{' ' + name if name else ''})"
            cls = classes.get(cls_name)
            if cls is None:
                near = difflib.get_close_matches(str(cls_name), classes, 3)
                raise NormbenchError(f"{what}: unknown layer class {cls_name!r}; use a keras.layers class name"
                                     + (f", e.g. {', '.join(near)}" if near else " (e.g. Conv2D, Dense)"))
            try:
                layer = cls(**args)
            except Exception as e:
                raise NormbenchError(f"{what}: bad arguments ({one_line(e, 140, kind=True)}); see keras.layers.{cls_name}") from None
        try:
            x = layer(x)
        except NormbenchError:
            raise
        except Exception as e:
            raise NormbenchError(f"{what}: does not fit its input {_shape_text(x.shape)} ({one_line(e, 140, kind=True)}); "
                                 "check its arguments and the layers before it") from None
        built.append(layer)
    stem = Path(source).stem if source != "model.layers" else "layers"
    model = keras.Sequential([keras.Input(shape=inputs.shape[1:], dtype=inputs.dtype), *built],
                             name=f"{stem}_{cfg.model.norm}")
    return model, {"source": source, "sha256": digest}


def _from_python(cfg, num_classes, input_shape, input_dtype):
    import importlib
    import importlib.util

    import keras

    arch = cfg.model.arch
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
    made = 0

    def norm(kind: str, name: str | None = None):
        """The model.norm layer for a slot of kind conv | sequence | vector."""
        nonlocal made
        made += 1
        from normbench.models import slot_norm
        from normbench.norms import make_norm

        if kind not in SLOT_RANKS:
            raise NormbenchError(f"model.arch: {arch} asked for a norm slot of kind {kind!r}; use conv, sequence or vector")
        name = name or f"norm_{made}"
        layer = make_norm(slot_norm(cfg.model, name, kind), kind, cfg.model.norm_groups, name)
        layer._normbench_slot = (kind, "?", "")
        layer._normbench_slot_key = (name, kind)
        return layer

    try:
        model = fn(norm, tuple(input_shape), num_classes)
    except NormbenchError:
        raise
    except Exception as e:
        # Keras' GroupNormalization checks its groups against the channels when the builder
        # calls it: that fix is the config's
        groups = cfg.model.norm == "group" and "groups" in str(e).lower()
        fix = "set model.norm_groups to a number that divides the channels of every norm slot" if groups else "fix the builder"
        raise NormbenchError(f"model.arch: {arch} raised {one_line(e, 160, kind=True)}; {fix}") from None
    if not isinstance(model, keras.Model):
        raise NormbenchError(f"model.arch: {arch} returned {type(model).__name__}, not a keras.Model; return the model")
    if tuple(model.input_shape[1:]) != tuple(input_shape):
        raise NormbenchError(f"model.arch: {arch} built a model for input {_shape_text(model.input_shape)}, the data's "
                             f"examples have shape {list(input_shape)}; build it for the input_shape it is given")
    for layer in model._flatten_layers(include_self=False):  # the slots' input shapes, now known
        tag = getattr(layer, "_normbench_slot", None)
        if tag:
            try:
                shape = _shape_text(layer.input.shape)
            except Exception:
                shape = "?"
            layer._normbench_slot = (tag[0], shape, "")
    digest = _sha256(path.read_bytes()) if path.is_file() else None
    return model, {"source": arch, "sha256": digest}


def _from_saved(cfg, input_shape):
    import keras
    from keras.src.models.functional import Functional

    m = cfg.model
    path = Path(m.from_).expanduser()
    safe = m.safe_mode is not False
    try:
        src = keras.saving.load_model(path, compile=False, safe_mode=safe)
    except Exception as e:
        if "safe_mode" in str(e) or "Lambda" in str(e):
            raise NormbenchError(f"model.from: {path} holds a Lambda layer, whose Python code would run when it loads, and "
                                 "normbench loads saved models with Keras' safe_mode on; if you trust the file, set "
                                 "model.safe_mode: false") from None
        raise NormbenchError(f"model.from: cannot load {path} ({one_line(e, 140, kind=True)}); pass a .keras file "
                             "saved with model.save") from None
    if not isinstance(src, (keras.Sequential, Functional)) or (
            isinstance(src, Functional) and type(src) not in (Functional, keras.Model)):
        raise NormbenchError(f"model.from: {path} is a subclassed model ({type(src).__name__}): its layers are code, not a "
                             "graph normbench can rewrite; save a Sequential or functional model, or write a Python builder "
                             "(model.arch: file.py:function)")
    if tuple(src.input_shape[1:]) != tuple(input_shape):
        raise NormbenchError(f"model.from: {path} takes input {_shape_text(src.input_shape)}, the data's examples have "
                             f"shape {list(input_shape)}; use data that fits the model")
    inserts = set(m.insert_after or ())
    known = {layer.name for layer in src.layers} | {type(layer).__name__ for layer in src.layers}
    missing = sorted(inserts - known)
    if missing:
        raise NormbenchError(f"model.insert_after: {path} has no layer or layer class {', '.join(missing)}; "
                             f"its layers: {', '.join(layer.name for layer in src.layers)}")

    def clone(layer):
        cls = type(layer).__name__
        if cls in NORM_CLASSES:
            shape = tuple(layer.input.shape)
            what = f"slot {layer.name}"
            return make_slot(cfg, slot_kind(shape, what), shape, layer.name, what, _norm_text(layer))
        new = layer.__class__.from_config(layer.get_config())
        if layer.name in inserts or cls in inserts:
            shape = tuple(layer.output.shape)
            name = f"{layer.name}_norm"
            what = f"slot {name} (after {layer.name})"
            norm = make_slot(cfg, slot_kind(shape, what), shape, name, what, "(inserted)")
            return keras.Sequential([new, norm], name=f"{layer.name}_then_norm")
        return new

    def call(layer, *args, **kwargs):  # a swapped-in norm takes no mask (BatchNormalization's call did)
        if getattr(layer, "_normbench_slot", None) or isinstance(layer, keras.Sequential):
            kwargs.pop("mask", None)
        return layer(*args, **kwargs)

    model = keras.models.clone_model(src, clone_function=clone, call_function=call)
    if m.keep_weights:
        by_name = {}
        for layer in model._flatten_layers(include_self=False):
            by_name.setdefault(layer.name, layer)
        for layer in src.layers:
            if type(layer).__name__ not in NORM_CLASSES and layer.weights and layer.name in by_name:
                by_name[layer.name].set_weights(layer.get_weights())
    return model, {"source": str(path), "sha256": _sha256(path.read_bytes())}
