"""Data sets: Keras' real loaders by default, local files for offline use, synthetic data.

Where the data comes from, in order:
1. `data.path` (a file, or a folder holding the file under its usual name);
2. the folder in $NORMBENCH_DATA_DIR, if set;
3. Keras' own download (`keras.datasets.imdb` / `keras.datasets.cifar10`).

Local files are read by normbench itself (Keras >= 3.6 rejects absolute paths in
`imdb.load_data(path=...)`), applying exactly Keras' steps, so both paths give the same
arrays. Accepted formats:
- imdb:    Keras' imdb.npz (object arrays of word-rank lists), or a plain .npz whose
           x_* are already int sequences;
- cifar10: cifar-10-python.tar.gz, its extracted cifar-10-batches-py folder, or a plain
           .npz with x_train (N, 32, 32, 3) uint8, y_train, x_test, y_test.

NumPy and Keras are imported inside functions so that `normbench --help` stays fast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from normbench.core.errors import NormbenchError, one_line

def split(n_examples: int, validation_split: float) -> tuple[int, int]:
    """(training, validation) examples that `fit(validation_split=...)` makes of
    `n_examples`: Keras trains on the first floor(n * (1 - split)) and validates on the
    rest, with exactly this float expression (keras/src/trainers/data_adapters/
    array_slicing.py, train_validation_split). The only place normbench computes the
    split: summary.json's n_train/n_val, the plan's steps, the schedules, `budget: steps`
    and `validate`'s check and data.preprocess's fitting rows all come from here."""
    n_fit = int(math.floor(n_examples * (1.0 - validation_split)))
    return n_fit, n_examples - n_fit


ENV_DIR = "NORMBENCH_DATA_DIR"
SUBSET_SEED = 0  # subsets do not depend on the run seed: every seed sees the same examples
IMDB_FILES = ("imdb.npz",)
CIFAR_FILES = ("cifar-10-batches-py", "cifar-10-python.tar.gz", "cifar10.npz", "cifar10_jpeg.npz")
SYNTHETIC_SIZE = {"train": 5000, "test": 1000}  # synthetic sets without data.subset


@dataclass
class Data:
    x_train: object
    y_train: object
    x_test: object
    y_test: object
    num_classes: int
    source: str  # where it came from, recorded in summary.json
    fingerprint: str = ""  # sha256 of the arrays as loaded (images: before any conversion), in summary.json
    preprocess_fingerprint: str = ""  # data.preprocess's fitted statistics (normbench.build.preprocess); "" for none


@dataclass(frozen=True)
class DatasetSpec:
    kind: str  # "sequence" (token ids), "image" or "tabular" (feature vectors)
    num_classes: int
    load: Callable  # (DataConfig, seed) -> (x_train, y_train, x_test, y_test, source)
    filenames: tuple[str, ...] = ()  # what a data folder may hold for it
    size: tuple[int, int] = (0, 0)  # (train, test) examples of the real set; the most a subset may take
    # made from the run's seed, not read from a file (the synthetic_* sets): never cached,
    # SYNTHETIC_SIZE examples without data.subset, and its fingerprint differs per seed
    generated: bool = False
    # one example's shape (input_spec, and the shape every model is built for): fixed, or a
    # function of the DataConfig (the token sets: (data.maxlen,)); your data reads its own (example)
    shape: tuple | Callable = ()
    dtype: str = ""  # one example's dtype
    # your data (arrays, image_folder): (DataConfig) -> (shape, dtype, classes), read cheaply
    # from its file or folder; None = shape, dtype and num_classes above
    example: Callable | None = None
    # the config key that sets the example shape, and (needed shape) -> the fix a model that
    # needs another shape suggests (models.check_input_shape); None = choose another data set
    shape_key: str = "data.name"
    shape_fix: Callable | None = None
    extra: str = ""  # the optional extra (pip install 'normbench[extra]') its loader needs; "" = none


def is_generated(name: str) -> bool:
    """Whether data set `name` is generated from the run's seed (DatasetSpec.generated)."""
    spec = DATASETS.get(name)
    return bool(spec and spec.generated)


def train_size(name: str) -> int:
    """Training examples of the whole data set `name` (no data.subset): a generated set's
    default size, else the real set's."""
    return SYNTHETIC_SIZE["train"] if is_generated(name) else DATASETS[name].size[0]


# ----------------------------------------------------------------------------- helpers


def _np():
    import numpy as np

    return np


def _find_local(cfg, filenames) -> Path | None:
    """The local file for this data set, or None to use Keras' download."""
    if cfg.path:
        p = Path(cfg.path).expanduser()
        if p.is_dir() and p.name not in filenames:  # a folder holding the data
            for name in filenames:
                if (p / name).exists():
                    return p / name
            raise NormbenchError(
                f"data.path: folder {p} holds none of {', '.join(filenames)}; "
                f"put the {cfg.name} data there or point data.path at the file"
            )
        if not p.exists():
            raise NormbenchError(
                f"data.path: no such file {p}; point it at a local {' or '.join(filenames)}, or set it to null to download"
            )
        return p
    env = os.environ.get(ENV_DIR)
    if env:
        p = Path(env).expanduser()
        for name in filenames:
            if (p / name).exists():
                return p / name
        raise NormbenchError(
            f"${ENV_DIR}={env} holds none of {', '.join(filenames)}; put the {cfg.name} data there or unset it to download"
        )
    return None


def _download(what: str, fn):
    """Run a keras.datasets loader, turning network failures into one clear line."""
    try:
        return fn()
    except Exception as e:  # urllib, SSL, Keras' "URL fetch failure", corrupt cache ...
        reason = one_line(e, 160)
        raise NormbenchError(
            f"could not download {what} through keras.datasets ({reason}); "
            f"without internet, set data.path (or ${ENV_DIR}) to a local copy"
        ) from None


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _check_container(path: Path) -> None:
    """A data .npz must be a zip archive: an empty file, a pickle or a lone .npy array
    is named as what it is (np.load would read the last two, or raise EOFError, which
    click turns into a bare "Aborted!")."""
    import zipfile

    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise NormbenchError(f"data.path: cannot read {path} ({e.strerror}); check its permissions") from None
    if not head:
        raise NormbenchError(f"data.path: {path} is empty (0 bytes); check the file is complete (re-download or re-copy it)")
    save = "save the arrays with numpy.savez(file, x_train=..., y_train=..., x_test=..., y_test=...)"
    if head[:1] == b"\x80":  # pickle protocol 2 and later
        raise NormbenchError(f"data.path: {path} is a Python pickle, not a .npz (normbench never unpickles data); {save}")
    if head == b"\x93NUMPY":
        raise NormbenchError(f"data.path: {path} is a single .npy array, not a .npz of four; {save}")
    if not zipfile.is_zipfile(path):
        raise NormbenchError(
            f"data.path: {path} is not a .npz file (no zip archive inside); "
            "check the file is complete (re-download or re-copy it)"
        )


def _npz_headers(path: Path, required=NPZ_KEYS) -> dict:
    """{key: (shape, dtype)} of a .npz's arrays, read from their .npy headers (no data is
    read, so a file of any size costs milliseconds); one NormbenchError naming the file
    when it is not a .npz holding `required`."""
    import zipfile

    np = _np()
    _check_container(path)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            members = {n[:-4]: n for n in z.namelist() if n.endswith(".npy")}
            missing = [k for k in required if k not in members]
            if missing:
                raise NormbenchError(
                    f"data.path: {path} lacks the arrays {', '.join(missing)}; "
                    f"a data .npz needs {', '.join(required)}"
                )
            for k in required:
                with z.open(members[k]) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in readers:
                        raise ValueError(f"{k} is a .npy of format version {version[0]}.{version[1]}")
                    shape, _, dtype = readers[version](f)
                out[k] = (tuple(shape), np.dtype(dtype))
    except NormbenchError:
        raise
    except Exception as e:  # a damaged member, a bad header
        raise _unreadable(path, e) from None
    return out


def check_npz(cfg, path: Path) -> dict:
    """A local .npz data file checked from its headers alone, before anything is built:
    the four arrays, numbers where numbers must be (arrays and CIFAR files; Keras' IMDB
    file holds object arrays of word lists), no empty split, one label per example, and
    for your arrays one example shape. The same lines load_data gives for these faults.
    Returns {"train": n, "test": m}, the number of labels of each split."""
    np = _np()
    h = _npz_headers(path)
    origin = _origin(cfg, str(path))
    own = cfg.name in OWN_DATA
    for k, (shape, dtype) in h.items():
        if dtype.hasobject and cfg.name != "imdb":
            raise NormbenchError(f"{origin}: {k} holds Python objects (dtype object), not numbers; "
                                 "store numeric arrays, e.g. numpy.asarray(x, dtype='float32')")
    for split in ("train", "test"):
        (xs, _), (ys, _) = h[f"x_{split}"], h[f"y_{split}"]
        n, labels = (xs[0] if xs else 0), int(np.prod(ys))
        if n == 0 or labels == 0:
            raise NormbenchError(f"{origin}: the {split} set is empty; fix the file" if own else
                                 f"{origin}: the {split} set is empty (x_{split} has {n} examples, y_{split} {labels} "
                                 f"labels); {_fix(str(path))}")
    for split in ("train", "test"):
        (xs, _), (ys, _) = h[f"x_{split}"], h[f"y_{split}"]
        if own and len(xs) < 2:
            raise _unreadable(path, ValueError(f"x_{split} has shape {xs}, expected (N, ...)"))
        if xs[0] != int(np.prod(ys)):
            raise NormbenchError(f"{origin}: x_{split} has {xs[0]} examples but y_{split} has {int(np.prod(ys))} labels "
                                 f"(one label per example); {'fix the file' if own else _fix(str(path))}")
    if own and h["x_train"][0][1:] != h["x_test"][0][1:]:
        raise NormbenchError(f"{origin}: x_train examples have shape {list(h['x_train'][0][1:])} but "
                             f"x_test's {list(h['x_test'][0][1:])}; store both splits with one example shape")
    return {split: int(np.prod(h[f"y_{split}"][0])) for split in ("train", "test")}


def _read_npz(path: Path, required=NPZ_KEYS, allow_pickle=False) -> dict:
    np = _np()
    _check_container(path)
    try:
        with np.load(path, allow_pickle=allow_pickle) as f:
            missing = [k for k in required if k not in f.files]
            if missing:
                raise NormbenchError(
                    f"data.path: {path} lacks the arrays {', '.join(missing)}; "
                    f"a data .npz needs {', '.join(required)}"
                )
            return {k: f[k] for k in required}
    except NormbenchError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) and not allow_pickle:
            raise _PickleNeeded() from None
        raise _unreadable(path, e) from None
    except Exception as e:
        raise _unreadable(path, e) from None


class _PickleNeeded(Exception):
    pass


def _unreadable(path, e) -> NormbenchError:
    return NormbenchError(
        f"data.path: cannot read {path} as a .npz data file ({one_line(e, 120, kind=True)}); "
        "check the file is complete (re-download or re-copy it)"
    )


def balanced_subset(y, n: int, key: str, seed: int = SUBSET_SEED):
    """Indices of n examples, as equal per class as possible, shuffled; deterministic."""
    np = _np()
    y = np.asarray(y).reshape(-1)
    if n > len(y):
        raise NormbenchError(f"{key}={n} is larger than the {len(y)} examples available; use at most {len(y)}")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    base, extra = divmod(n, len(classes))
    picks = []
    for i, c in enumerate(classes):
        want = base + (1 if i < extra else 0)
        idx = np.flatnonzero(y == c)
        if want > len(idx):
            raise NormbenchError(
                f"{key}={n} needs {want} examples of class {c}, only {len(idx)} exist; use a smaller subset"
            )
        picks.append(rng.permutation(idx)[:want])
    out = np.concatenate(picks)
    rng.shuffle(out)
    return out


# ----------------------------------------------------------------------------- IMDB


def keras_imdb_steps(x_train, y_train, x_test, y_test, num_words, seed=113, start_char=1, oov_char=2, index_from=3):
    """Exactly what keras.datasets.imdb.load_data does to its source file (maxlen=None)."""
    np = _np()
    rng = np.random.RandomState(seed)
    idx = np.arange(len(x_train))
    rng.shuffle(idx)
    x_train, y_train = x_train[idx], y_train[idx]
    idx = np.arange(len(x_test))
    rng.shuffle(idx)
    x_test, y_test = x_test[idx], y_test[idx]

    def encode(x):
        ids = [start_char] + [w + index_from for w in x]
        return [w if w < num_words else oov_char for w in ids]

    x_train = [encode(x) for x in x_train]
    x_test = [encode(x) for x in x_test]
    return x_train, np.asarray(y_train), x_test, np.asarray(y_test)


def _load_imdb(cfg, seed):
    np = _np()
    local = _find_local(cfg, IMDB_FILES)
    if local is None:
        import keras

        (xtr, ytr), (xte, yte) = _download(
            "IMDB", lambda: keras.datasets.imdb.load_data(num_words=cfg.num_words)
        )
        source = "keras.datasets.imdb"
    else:
        try:
            arrays = _read_npz(local)
            xtr, ytr, xte, yte = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
            if xtr.ndim != 2:
                raise _unreadable(local, ValueError(f"x_train has shape {xtr.shape}, expected (N, length)"))
            # plain, already-encoded sequences: clip the vocabulary as Keras would
            _check_token_ids(cfg, str(local), arrays)
            xtr = np.where(xtr >= cfg.num_words, 2, xtr)
            xte = np.where(xte >= cfg.num_words, 2, xte)
        except _PickleNeeded:
            # Keras' source format stores lists of word ranks: object arrays need pickle
            arrays = _read_npz(local, allow_pickle=True)
            _check_word_ranks(cfg, str(local), arrays)
            xtr, ytr, xte, yte = keras_imdb_steps(
                arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], cfg.num_words
            )
        source = str(local)
    from keras.utils import pad_sequences

    xtr = pad_sequences(xtr, maxlen=cfg.maxlen)
    xte = pad_sequences(xte, maxlen=cfg.maxlen)
    return xtr, np.asarray(ytr).reshape(-1), xte, np.asarray(yte).reshape(-1), source


# ----------------------------------------------------------------------------- CIFAR-10


def _cifar_from_batches(read_member):
    """Keras' cifar10 layout: data_batch_1..5 and test_batch pickles."""
    import pickle

    np = _np()

    def batch(name):
        d = pickle.loads(read_member(name), encoding="bytes")
        x = np.asarray(d[b"data"], dtype="uint8").reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(d[b"labels"], dtype="uint8")

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = batch("test_batch")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xte, yte


def _load_cifar10(cfg, seed):
    np = _np()
    local = _find_local(cfg, CIFAR_FILES)
    if local is None:
        import keras

        (xtr, ytr), (xte, yte) = _download("CIFAR-10", keras.datasets.cifar10.load_data)
        source = "keras.datasets.cifar10"
    else:
        try:
            if local.is_dir():
                xtr, ytr, xte, yte = _cifar_from_batches(lambda n: (local / n).read_bytes())
            elif local.name.endswith((".tar.gz", ".tgz")):
                import tarfile

                with tarfile.open(local, "r:gz") as tar:
                    xtr, ytr, xte, yte = _cifar_from_batches(
                        lambda n: tar.extractfile(f"cifar-10-batches-py/{n}").read()
                    )
            else:
                a = _read_npz(local)
                xtr, ytr, xte, yte = a["x_train"], a["y_train"], a["x_test"], a["y_test"]
        except (NormbenchError, _PickleNeeded) as e:
            if isinstance(e, NormbenchError):
                raise
            raise _unreadable(local, ValueError("holds object arrays; expected uint8 images")) from None
        except Exception as e:
            raise _unreadable(local, e) from None
        if xtr.ndim != 4 or xtr.shape[1:] != (32, 32, 3):
            raise _unreadable(local, ValueError(f"x_train has shape {xtr.shape}, expected (N, 32, 32, 3)"))
        source = str(local)
    # uint8 pixels here, and into the model: its first layer scales each batch to [0, 1]
    return xtr, np.asarray(ytr).reshape(-1), xte, np.asarray(yte).reshape(-1), source


# ----------------------------------------------------------------------------- synthetic


def _sizes(cfg):
    s = cfg.subset
    return (s.train, s.test) if s else (SYNTHETIC_SIZE["train"], SYNTHETIC_SIZE["test"])


def _synthetic_imdb(cfg, seed):
    """Token sequences shaped like padded IMDB reviews. Hidden rule: the label is which of
    two marker-word sets (ranks 10-19 "positive", 20-29 "negative") occurs more often."""
    np = _np()
    n_train, n_test = _sizes(cfg)
    n = n_train + n_test
    rng = np.random.default_rng(seed)
    top = max(cfg.num_words, 31)
    x = np.zeros((n, cfg.maxlen), dtype="int32")
    y = rng.integers(0, 2, n)
    vocab = np.arange(30, top)
    weights = 1.0 / (vocab - 29)  # Zipf-like word frequencies, as in real text
    weights /= weights.sum()
    for i in range(n):
        length = int(rng.integers(max(cfg.maxlen // 4, 1), cfg.maxlen + 1))
        seq = rng.choice(vocab, size=length, p=weights)
        k = max(length // 3, 2)
        own = rng.integers(10, 20, k) + (0 if y[i] else 10)
        other = rng.integers(10, 20, k // 6) + (10 if y[i] else 0)
        marks = np.concatenate([own, other])
        pos = rng.choice(length, size=min(len(marks), length), replace=False)
        seq[pos] = marks[: len(pos)]
        seq[0] = 1  # start character, as in Keras' IMDB
        x[i, cfg.maxlen - length :] = np.minimum(seq, cfg.num_words - 1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], f"synthetic_imdb(seed={seed})"


def _synthetic_cifar10(cfg, seed):
    """32x32x3 images: a per-class smooth template plus noise. Hidden rule: the label is
    the template's class."""
    np = _np()
    n_train, n_test = _sizes(cfg)
    n = n_train + n_test
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(10, 4, 4, 3))
    templates = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)  # 10 x 32 x 32 x 3
    y = rng.integers(0, 10, n)
    x = 0.5 + 0.2 * templates[y] + 0.25 * rng.normal(size=(n, 32, 32, 3))
    x = (np.clip(x, 0, 1) * 255).astype("uint8")  # stored like real images; the model scales them
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], f"synthetic_cifar10(seed={seed})"


# ----------------------------------------------------------------------------- tabular

TABULAR_TEST = 0.2  # the share of a bundled tabular set held out as its test split (fixed rows, SUBSET_SEED)
# the synthetic salary table's columns: (name, low, high), the scales of the tutorial's employee table
SALARY_COLUMNS = (
    ("age", 20, 65),  # years
    ("salary", 20_000, 200_000),  # per year
    ("years_experience", 0, 40),
    ("weekly_hours", 10, 60),
    ("commute_km", 0.5, 80),
    ("rating", 1, 5),  # performance rating
)


def _sklearn(name: str):
    """A scikit-learn bundled data set's (X, y): read from files inside the package, no download."""
    try:
        from sklearn import datasets
    except ImportError:
        raise NormbenchError(f"data.name {name} needs scikit-learn, which is not installed; install it with "
                             "`pip install 'normbench[tabular]'`") from None
    bunch = getattr(datasets, f"load_{name}")()
    return bunch.data, bunch.target


def _held_out(x, y, source):
    """A fixed train/test split of a set that ships as one table: TABULAR_TEST of the rows
    per class to test, shuffled with SUBSET_SEED (so Keras' validation tail is random rows)."""
    np = _np()
    rng = np.random.default_rng(SUBSET_SEED)
    test = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[: int(round(len(idx) * TABULAR_TEST))])
    test = np.concatenate(test)
    train = np.setdiff1d(np.arange(len(y)), test)
    train, test = rng.permutation(train), rng.permutation(test)
    x, y = np.asarray(x, dtype="float32"), np.asarray(y, dtype="int64")
    return x[train], y[train], x[test], y[test], source


def _load_breast_cancer(cfg, seed):
    """scikit-learn's Wisconsin breast cancer table: 569 tumours, 30 features from ~0.001 to ~4,000, 2 classes."""
    return _held_out(*_sklearn("breast_cancer"), "sklearn.datasets.load_breast_cancer")


def _load_wine(cfg, seed):
    """scikit-learn's wine table: 178 wines, 13 features from ~0.1 to ~1,700, 3 classes."""
    return _held_out(*_sklearn("wine"), "sklearn.datasets.load_wine")


def _synthetic_salary(cfg, seed):
    """An employee table on the tutorial's scales (SALARY_COLUMNS: age 20-65, salary
    20,000-200,000, ...). Hidden rule: the label (1 = left within a year) is whether a
    weighted sum of the standardized columns plus noise is positive, so every column
    matters on the same footing whatever its scale."""
    np = _np()
    n_train, n_test = _sizes(cfg)
    n = n_train + n_test
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 65, n)
    experience = np.minimum(rng.uniform(0, 1, n) * (age - 18), 40)
    salary = np.clip(20_000 + 3_000 * experience + rng.lognormal(10.2, 0.5, n), 20_000, 200_000)
    hours = rng.uniform(10, 60, n)
    commute = rng.uniform(0.5, 80, n)
    rating = rng.integers(1, 6, n).astype("float64")
    x = np.stack([age, salary, experience, hours, commute, rating], axis=1)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    latent = z @ np.array([-0.5, -1.5, -0.8, 1.0, 1.0, -0.7]) + 0.5 * rng.normal(size=n)
    y = (latent > 0).astype("int64")
    x = x.astype("float32")
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], f"synthetic_salary(seed={seed})"


# ----------------------------------------------------------------------------- your data


def _labels_classes(cfg, source, y_train, y_test) -> int:
    """data.classes, or max label + 1; every label an integer class (one line if not)."""
    np = _np()
    k = cfg.classes
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        top = k - 1 if k else None
        outside = f"is not a class (0-{top}, data.classes: {k})" if k else "is not a class label (integers >= 0)"
        bad = _bad_number(np.asarray(y).reshape(-1), name, "class label", 0, top, outside)
        if bad:
            raise NormbenchError(f"{_origin(cfg, source)}: {bad}; fix the labels" + (" or data.classes" if k else ""))
    present = np.unique(np.asarray(y_train).reshape(-1))
    if present.size == 1:  # one class: nothing to tell apart, every model "learns" it
        raise NormbenchError(f"{_origin(cfg, source)}: y_train holds one class only ({present[0]}); "
                             "a comparison needs examples of two classes or more; fix the labels")
    return k or int(max(np.max(y_train), np.max(y_test))) + 1


def _load_arrays(cfg, seed):
    """data.name arrays: an .npz with x_train, y_train, x_test, y_test of any shapes."""
    np = _np()
    local = _find_local(cfg, ())
    check_npz(cfg, local)  # the lines validate gives, before any array is read
    try:
        a = _read_npz(local)
    except _PickleNeeded:
        raise _unreadable(local, ValueError("holds object arrays; store numeric arrays")) from None
    for split in ("train", "test"):
        if a[f"x_{split}"].ndim < 2:
            raise _unreadable(local, ValueError(f"x_{split} has shape {a[f'x_{split}'].shape}, expected (N, ...)"))
    if a["x_train"].shape[1:] != a["x_test"].shape[1:]:
        raise NormbenchError(f"{_origin(cfg, str(local))}: x_train examples have shape {list(a['x_train'].shape[1:])} but "
                             f"x_test's {list(a['x_test'].shape[1:])}; store both splits with one example shape")
    return a["x_train"], np.asarray(a["y_train"]).reshape(-1), a["x_test"], np.asarray(a["y_test"]).reshape(-1), str(local)


IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # the extensions Keras' image_dataset_from_directory reads


def _class_folders(folder: Path) -> list[str]:
    """The class folders of an image folder split as Keras' reader sees them: sorted
    sub-folders, hidden ones (.ipynb_checkpoints, .git) left out."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """Every file Keras' reader takes from an image folder split, in its order."""
    out = []
    for c in _class_folders(folder):
        for root, _, files in sorted(os.walk(folder / c), key=lambda w: w[0]):
            out += [Path(root) / f for f in sorted(files) if f.lower().endswith(IMAGE_FORMATS)]
    return out


def _image_trouble(path: Path) -> str | None:
    """What is wrong with an image file, from its first and last bytes alone: empty, not
    an image format TensorFlow decodes, or cut short (no end marker); None if it looks
    whole. A file that only looks cut short is decoded to be sure (_decode_error)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = f.seek(0, 2)
            f.seek(max(size - 64, 0))
            tail = f.read().rstrip(b"\x00")
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not size:
        return "is empty (0 bytes)"
    if head.startswith(b"\xff\xd8\xff"):
        whole = b"\xff\xd9" in tail
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        whole = b"IEND" in tail
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        whole = tail.endswith(b";")
    elif head[:2] == b"BM":
        whole = size >= int.from_bytes(head[2:6], "little")
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        whole = size >= 8 + int.from_bytes(head[4:8], "little")
    else:
        return "is not an image (not JPEG, PNG, GIF, BMP or WebP data)"
    if whole:
        return None
    reason = _decode_error(path)
    return f"is cut short ({reason})" if reason else None


def _decode_error(path: Path) -> str | None:
    """The reason TensorFlow's decoder (the one Keras' reader uses) gives for this file,
    or None when it decodes."""
    import re
    import sys

    import tensorflow as tf

    sys.stderr.flush()
    saved = os.dup(2)  # libjpeg writes "Improper call to JPEG library ..." to fd 2 itself; the reason is in the error
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    except Exception as e:
        text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(e))  # TensorFlow's op decoration
        return one_line(re.sub(r"\s*\[Op:\w+\].*", "", text), 120)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return None


def _bad_image(path: Path, reason: str) -> NormbenchError:
    return NormbenchError(f"data.path: {path} {reason}; replace the file or delete it")


def check_images(cfg) -> None:
    """An image folder's files checked before anything trains (validate, and run before
    decoding): each file's first and last bytes; one line naming the first bad file."""
    root = Path(cfg.path).expanduser()
    for split in ("train", "test"):
        for f in _image_files(root / split):
            reason = _image_trouble(f)
            if reason:
                raise _bad_image(f, reason)


def _image_split(cfg, folder: Path, split: str):
    import keras

    np = _np()
    h, w = cfg.image_size
    try:
        ds = keras.utils.image_dataset_from_directory(folder, labels="inferred", label_mode="int", image_size=(h, w),
                                                      batch_size=256, shuffle=False, verbose=False)
    except Exception as e:
        raise NormbenchError(f"data.path: cannot read images from {folder} ({one_line(e, 120)}); "
                             "it needs one folder of images per class") from None
    xs, ys = [], []
    done = 0
    try:
        for x, y in ds:
            xs.append(np.clip(np.rint(x.numpy()), 0, 255).astype("uint8"))  # resized pixels, stored like real images
            ys.append(y.numpy())
            done += len(ys[-1])
    except Exception as e:  # a file that looked whole but does not decode: find it (its batch, file by file)
        for f in ds.file_paths[done:]:
            reason = _decode_error(Path(f))
            if reason:
                raise _bad_image(Path(f), f"cannot be decoded ({reason})") from None
        raise NormbenchError(f"data.path: cannot read images from {folder} ({one_line(e, 120)}); "
                             "check its image files") from None
    return np.concatenate(xs), np.concatenate(ys), list(ds.class_names)


def _load_image_folder(cfg, seed):
    """data.name image_folder: <path>/train/<class>/*.png|jpg... and <path>/test/<class>/..."""
    root = Path(cfg.path).expanduser()
    check_images(cfg)  # an empty, foreign or cut file named before TensorFlow decodes anything
    xtr, ytr, names = _image_split(cfg, root / "train", "train")
    xte, yte, test_names = _image_split(cfg, root / "test", "test")
    if names != test_names:
        raise NormbenchError(f"data.path: {root}/train has classes {', '.join(names)} but {root}/test "
                             f"{', '.join(test_names)}; give both the same class folders")
    return xtr, ytr, xte, yte, str(root)


def _image_folder_classes(cfg) -> int:
    train = Path(cfg.path).expanduser() / "train"
    return len(_class_folders(train)) if train.is_dir() else 0


def input_spec(cfg) -> tuple[tuple, str, int]:
    """(one example's shape, dtype, classes) of a DataConfig, read cheaply from its
    DATASETS entry: a built-in set's shape and dtype (or its function of the config), your
    data's from its file's headers (and labels) or its folder's layout."""
    spec = DATASETS[cfg.name]
    if spec.example is not None:
        return spec.example(cfg)
    shape = spec.shape(cfg) if callable(spec.shape) else spec.shape
    return tuple(shape), spec.dtype, spec.num_classes


def _tokens(cfg) -> tuple:
    """A token set's example: data.maxlen token ids (padded or cut to it)."""
    return (cfg.maxlen,)


def _image_folder_example(cfg) -> tuple[tuple, str, int]:
    return (*cfg.image_size, 3), "uint8", cfg.classes or _image_folder_classes(cfg)


def _arrays_example(cfg) -> tuple[tuple, str, int]:
    np = _np()
    local = _find_local(cfg, ())
    check_npz(cfg, local)
    x_shape, x_dtype = _npz_headers(local)["x_train"]  # a .npz is never memory-mapped: f["x_train"] reads it all
    with np.load(local) as f:
        classes = _labels_classes(cfg, str(local), f["y_train"], f["y_test"])
    return tuple(x_shape[1:]), x_dtype.name, classes


def _set_maxlen(need: tuple) -> str | None:
    return f"set data.maxlen: {need[0]}" if len(need) == 1 else None


def _set_image_size(need: tuple) -> str | None:
    return f"set data.image_size: [{need[0]}, {need[1]}]" if len(need) == 3 and need[2] == 3 else None


def _give_arrays(need: tuple) -> str:
    return f"give x arrays of shape (N, {', '.join(map(str, need))})"


CIFAR_SHAPE = (32, 32, 3)  # CIFAR-10: 32x32 RGB images, uint8 0-255
_TOKENS = dict(shape=_tokens, dtype="int32", shape_key="data.maxlen", shape_fix=_set_maxlen)
_CIFAR = dict(shape=CIFAR_SHAPE, dtype="uint8")

ANY_SIZE = (10**9, 10**9)  # your data: its own size, checked against the file (config.check_can_start)

DATASETS = {
    "imdb": DatasetSpec("sequence", 2, _load_imdb, IMDB_FILES, (25000, 25000), **_TOKENS),
    "cifar10": DatasetSpec("image", 10, _load_cifar10, CIFAR_FILES, (50000, 10000), **_CIFAR),
    # synthetic sets are generated at the subset's size: at most the real set's, so a
    # typo cannot ask for a billion examples
    "synthetic_imdb": DatasetSpec("sequence", 2, _synthetic_imdb, (), (25000, 25000), generated=True, **_TOKENS),
    "synthetic_cifar10": DatasetSpec("image", 10, _synthetic_cifar10, (), (50000, 10000), generated=True, **_CIFAR),
    # your data (docs/own-model.md): classes from data.classes or the labels / folders
    # tables of feature vectors (the MLP's): scikit-learn's bundled sets (read from files inside
    # the package, no download; held-out test rows: TABULAR_TEST) and a synthetic salary table
    "breast_cancer": DatasetSpec("tabular", 2, _load_breast_cancer, (), (456, 113), shape=(30,), dtype="float32",
                                 extra="tabular"),
    "wine": DatasetSpec("tabular", 3, _load_wine, (), (142, 36), shape=(13,), dtype="float32", extra="tabular"),
    "synthetic_salary": DatasetSpec("tabular", 2, _synthetic_salary, (), (50000, 10000), generated=True,
                                    shape=(len(SALARY_COLUMNS),), dtype="float32"),
    "arrays": DatasetSpec("any", 0, _load_arrays, (), ANY_SIZE, example=_arrays_example, shape_key="data.path",
                          shape_fix=_give_arrays),
    "image_folder": DatasetSpec("image", 0, _load_image_folder, (), ANY_SIZE, example=_image_folder_example,
                                shape_key="data.image_size", shape_fix=_set_image_size),
}
OWN_DATA = ("arrays", "image_folder")


MAX_NUM_WORDS = 100_000  # IMDB has 88,584 distinct words: more only enlarges the Embedding
MAX_MAXLEN = 2_500  # the longest IMDB review has 2,494 tokens: longer only adds padding


def check(d, where) -> None:
    """data.* rules of a DataConfig (called by config's validation)."""
    from normbench.core.checks import at_least, choice

    choice(where, "data.name", d.name, DATASETS, "dataset")
    from normbench.build import preprocess
    from normbench.core.checks import installed

    preprocess.check(d.preprocess, DATASETS[d.name].kind, where, d.name)
    if DATASETS[d.name].extra == "tabular" and not installed("sklearn"):
        raise where.error("data.name", f"{d.name} needs scikit-learn, which is not installed; install it with "
                                       "`pip install 'normbench[tabular]'`")
    at_least(where, "data.num_words", d.num_words, 4)  # 0 pad, 1 start, 2 oov, 3 unused
    at_least(where, "data.maxlen", d.maxlen, 1)
    if d.subset is not None:
        at_least(where, "data.subset.train", d.subset.train, 2)
        at_least(where, "data.subset.test", d.subset.test, 1)
    if d.classes is not None:
        at_least(where, "data.classes", d.classes, 2)
    if d.name in OWN_DATA:
        if not d.path:
            what = "an .npz with x_train, y_train, x_test, y_test" if d.name == "arrays" else "a folder with train/ and test/, one folder per class in each"
            raise where.error("data.path", f"missing; data.name {d.name} needs {what}")
        p = Path(d.path).expanduser()
        if not (p.is_file() if d.name == "arrays" else (p / "train").is_dir() and (p / "test").is_dir()):
            raise where.error("data.path", f"no such {'file' if d.name == 'arrays' else 'folder with train/ and test/'} {p}")
    if d.name == "image_folder":
        if not (isinstance(d.image_size, list) and len(d.image_size) == 2 and all(isinstance(v, int) and v > 0 for v in d.image_size)):
            raise where.error("data.image_size", f"expected [height, width] in pixels, e.g. [64, 64], got {d.image_size!r}")
    elif d.image_size is not None:
        raise where.error("data.image_size", "applies to data.name image_folder only; remove it")


def check_limits(d, where) -> None:
    """Upper bounds on data.* (new configs only: old run folders still read)."""
    from normbench.core.checks import at_most

    at_most(where, "data.num_words", d.num_words, MAX_NUM_WORDS,
            f"IMDB has 88,584 distinct words, so {MAX_NUM_WORDS} already keeps every one")
    at_most(where, "data.maxlen", d.maxlen, MAX_MAXLEN,
            f"the longest IMDB review has 2,494 tokens, so {MAX_MAXLEN} already keeps every one")
    if d.subset is not None and d.name not in OWN_DATA:
        size = dict(zip(("train", "test"), DATASETS[d.name].size))
        for split in ("train", "test"):
            n = getattr(d.subset, split)
            if n > size[split]:
                made = "generates at most" if is_generated(d.name) else "has"
                raise where.error(
                    f"data.subset.{split}",
                    f"{n} is more than the {size[split]} {split} examples {d.name} {made}; use at most {size[split]}",
                )


def load_data(cfg, seed: int = 0, validation_split: float | None = None) -> Data:
    """Load data set `cfg.name` (a DataConfig), then take `cfg.subset` if set, then apply
    `cfg.preprocess` fitted on the rows Keras trains on at `validation_split` (required
    unless preprocess is none; normbench.build.preprocess). Arrays read from a local file come
    from the data cache when it holds them (normbench/build/datacache.py): memory-mapped,
    read-only, the same arrays and fingerprints as a fresh load."""
    from normbench.build import datacache

    spec = DATASETS[cfg.name]
    loaded, extra = {}, {}
    scaled = cfg.preprocess != "none"
    if scaled and validation_split is None:
        raise ValueError("data.preprocess needs the validation split: its statistics are fitted on the training rows only")

    def build() -> dict:
        xtr, ytr, xte, yte, source = spec.load(cfg, seed)
        arrays = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}
        if cfg.name in OWN_DATA:
            check_own(cfg, source, arrays)
        else:
            check_arrays(cfg, source, arrays)
        if cfg.subset is not None and not is_generated(cfg.name):
            tr = balanced_subset(ytr, cfg.subset.train, "data.subset.train")
            te = balanced_subset(yte, cfg.subset.test, "data.subset.test")
            xtr, ytr, xte, yte = xtr[tr], ytr[tr], xte[te], yte[te]
        loaded["source"] = source
        if scaled:
            from normbench.build import preprocess

            extra["data_fingerprint"] = fingerprint(xtr, ytr, xte, yte)  # the data before preprocessing
            fitted = preprocess.fit_transform(cfg.preprocess, xtr, xte, split(len(xtr), validation_split)[0])
            xtr, xte = fitted.x_train, fitted.x_test
            extra["preprocess_fingerprint"] = fitted.fingerprint
        return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}

    entry = None
    local = None if is_generated(cfg.name) or cfg.name in OWN_DATA or spec.kind == "tabular" else _find_local(cfg, spec.filenames)
    if local is None and cfg.name == "arrays":
        local = _find_local(cfg, ())
    if local is not None and (cfg.name != "arrays" or scaled):  # Keras downloads and synthetic sets are not cached
        settings = _cache_settings(cfg, spec)
        if scaled:  # the preprocessed arrays: keyed by the method and the rows it is fitted on
            settings.update(preprocess=cfg.preprocess, validation_split=validation_split)
        entry = datacache.entry_for(cfg, local, settings)
    arrays, digest, _ = datacache.cached(entry, build, fingerprint, str(local), extra)
    xtr, ytr, xte, yte = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    if spec.kind == "image":  # uint8 (scaled to [0, 1] per batch by the model) or float32 in [0, 1]
        xtr, xte = _pixels(xtr), _pixels(xte)
    classes = spec.num_classes
    if cfg.name in OWN_DATA:
        classes = cfg.classes or int(max(ytr.max(), yte.max())) + 1
        if cfg.name == "image_folder":
            classes = cfg.classes or _image_folder_classes(cfg)
    source = loaded.get("source", str(local))
    return Data(xtr, ytr, xte, yte, classes, source, extra.get("data_fingerprint", digest),
                extra.get("preprocess_fingerprint", ""))


def check_own(cfg, source: str, arrays: dict) -> None:
    """Your data: non-empty splits, one label per example, integer labels inside the
    classes, finite numeric x."""
    np = _np()
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], np.asarray(arrays[f"y_{split}"])
        if len(x) == 0 or y.size == 0:
            raise NormbenchError(f"{_origin(cfg, source)}: the {split} set is empty; fix the file")
        if len(x) != len(y):
            raise NormbenchError(f"{_origin(cfg, source)}: x_{split} has {len(x)} examples but y_{split} has {len(y)} "
                                 "labels (one label per example); fix the file")
    _labels_classes(cfg, source, arrays["y_train"], arrays["y_test"])
    for name in ("x_train", "x_test"):
        x = np.asarray(arrays[name])
        if x.dtype.kind not in "biuf":
            raise NormbenchError(f"{_origin(cfg, source)}: {name} has dtype {x.dtype}, expected numbers; fix the file")
        if x.dtype.kind == "f" and x.size and not np.isfinite(x).all():
            bad = _bad_number(x, name, "value", -np.inf, None, "")
            raise NormbenchError(f"{_origin(cfg, source)}: {bad}; fix the file")


def _cache_settings(cfg, spec) -> dict:
    """Everything besides the source file, name and subset that changes the arrays."""
    out = {"subset_seed": SUBSET_SEED}
    if spec.kind == "sequence":
        out.update(num_words=cfg.num_words, maxlen=cfg.maxlen)
    return out


def fingerprint(*arrays) -> str:
    """sha256 over the dtype, shape and bytes of each array: equal only for equal data
    (same examples, order, preprocessing). Runs are grouped on it by `compare`."""
    import hashlib

    np = _np()
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return "sha256:" + h.hexdigest()


def describe_source(cfg) -> str:
    """Where `load_data` would read this DataConfig from; raises if a local path is wrong
    or an image folder holds a bad file (check_images). Cheap: reads no arrays (used by
    `normbench validate`)."""
    spec = DATASETS[cfg.name]
    if is_generated(cfg.name):
        return f"{cfg.name}: generated from the seed"
    if cfg.name == "image_folder":
        check_images(cfg)  # each file's first and last bytes: a bad file is named before training
    if spec.kind == "tabular":  # read from files inside an installed package
        return f"{cfg.name}: scikit-learn's bundled copy (no download)"
    if cfg.name in OWN_DATA:
        return f"{cfg.name} {Path(cfg.path).expanduser()}"
    local = _find_local(cfg, spec.filenames)
    return f"local file {local}" if local else f"download through keras.datasets.{cfg.name}"


# ----------------------------------------------------------------------------- checks
# Every array is checked before any compute: a wrong label, a NaN pixel or a token id
# outside the vocabulary otherwise trains to "completed" with a meaningless loss, or
# fails deep inside TensorFlow. Checks are vectorised and cheap: min/max first (no
# allocation; uint8 pixels need nothing), a mask only to name the first bad element.


def _origin(cfg, source: str) -> str:
    """How an error names the data: the setting and the file it came from."""
    if source.startswith("keras.datasets") or is_generated(cfg.name):
        return source
    return f"{'data.path' if cfg.path else '$' + ENV_DIR}: {source}"


def _fix(source: str) -> str:
    if source.startswith("keras.datasets"):
        return "delete Keras' cached copy in ~/.keras/datasets to download it again"
    return "fix or replace the file"


def _value(v) -> str:
    np = _np()
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return str(int(v)) if v.is_integer() else str(v)  # 3.0 -> 3; nan, inf, 0.5 as they are
    return repr(v.item() if hasattr(v, "item") else v)


def _bad_number(a, name: str, noun: str, low, high, outside: str, index=None) -> str | None:
    """The first element of `a` that is not a finite integer-valued number in
    [low, high] (high None: no upper bound; noun "pixel" also allows fractions), as
    `name[i, j] = v is ...`; None when every element is fine. `index(flat)` formats the
    index (default: the array's own [i, j])."""
    np = _np()
    if a.dtype.kind not in "biuf":
        return f"{name} has dtype {a.dtype}, expected numeric {noun}s"
    if a.size == 0:
        return None

    def first(mask) -> str:
        flat = int(np.argmax(mask.reshape(-1)))
        at = index(flat) if index else "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, a.shape)) + "]"
        return f"{name}{at} = {_value(a.reshape(-1)[flat])}"

    lo, hi = a.min(), a.max()
    if a.dtype.kind == "f":
        if not (np.isfinite(lo) and np.isfinite(hi)):  # min and max propagate NaN
            return f"{first(~np.isfinite(a))} is not a finite number"
        if noun != "pixel":
            frac = a != np.floor(a)
            if frac.any():
                return f"{first(frac)} is not an integer {noun}"
    if lo < low or (high is not None and hi > high):
        return f"{first((a < low) | (a > high) if high is not None else a < low)} {outside}"
    return None


def check_arrays(cfg, source: str, arrays: dict) -> None:
    """Raise one NormbenchError for the first problem in x_train/y_train/x_test/y_test:
    an empty set, x and y of different lengths, labels that are not integer classes,
    pixels that are neither integers 0-255 nor floats already in [0, 1], token ids
    outside the vocabulary, NaN or inf. Indices are those of the arrays as loaded: for
    local files the file's own order (Keras' IMDB format is checked before its shuffle,
    by _check_word_ranks); for token ids, the padded sequences."""
    np = _np()
    spec = DATASETS[cfg.name]
    origin, fix = _origin(cfg, source), _fix(source)

    def fail(problem, how=fix):
        raise NormbenchError(f"{origin}: {problem}; {how}")

    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], np.asarray(arrays[f"y_{split}"])
        if len(x) == 0 or y.size == 0:
            fail(f"the {split} set is empty (x_{split} has {len(x)} examples, y_{split} {y.size} labels)")
        if len(x) != len(y):
            fail(f"x_{split} has {len(x)} examples but y_{split} has {len(y)} labels (one label per example)")
    k = spec.num_classes
    for name in ("y_train", "y_test"):
        bad = _bad_number(np.asarray(arrays[name]), name, "class label", 0, k - 1, f"is not a class of {cfg.name} (0-{k - 1})")
        if bad:
            fail(bad)
    for name in ("x_train", "x_test"):
        x = np.asarray(arrays[name])
        if spec.kind == "image":
            if x.dtype == np.uint8:
                continue  # 0-255 by construction: nothing to check
            if x.dtype.kind == "f":  # already scaled: used as they are
                bad = _bad_number(x, name, "pixel", 0.0, 1.0, "is outside [0, 1], the range of float pixels")
            else:
                bad = _bad_number(x, name, "pixel", 0, 255, "is outside 0-255, the range of integer pixels")
            if bad:
                fail(bad, "store pixels as uint8 0-255 or as floats already scaled to [0, 1]" if " is outside " in bad else fix)
        elif spec.kind == "tabular":  # feature values: any finite number
            if x.dtype.kind == "f" and x.size and not np.isfinite(x).all():
                fail(f"{_bad_number(x, name, 'value', -np.inf, None, '')}")
        else:
            top = cfg.num_words - 1
            bad = _bad_number(x, name, "token id", 0, top, f"is not a token id of the {cfg.num_words}-word vocabulary (0-{top})")
            if bad:
                fail(bad)


def _check_token_ids(cfg, source: str, arrays: dict) -> None:
    """A plain .npz's token ids before Keras' clipping (ids >= num_words become the
    out-of-vocabulary 2, so only negative, fractional, NaN or inf ids are wrong)."""
    for name in ("x_train", "x_test"):
        bad = _bad_number(arrays[name], name, "token id", 0, None, "is not a token id (integers >= 0)")
        if bad:
            raise NormbenchError(f"{_origin(cfg, source)}: {bad}; {_fix(source)}")


def _check_word_ranks(cfg, source: str, arrays: dict) -> None:
    """Keras' IMDB source format, before its seed-113 shuffle so that indices are the
    file's: x_* are lists of word ranks (integers >= 0); then labels and lengths."""
    import itertools

    np = _np()
    for name in ("x_train", "x_test"):
        x = arrays[name]
        try:
            lengths = np.fromiter(map(len, x), dtype=np.int64, count=len(x))
            flat = np.fromiter(itertools.chain.from_iterable(x), dtype=np.float64, count=int(lengths.sum()))
        except (TypeError, ValueError) as e:
            raise NormbenchError(
                f"{_origin(cfg, source)}: {name} holds something other than lists of word ranks ({str(e)[:80]}); {_fix(source)}"
            ) from None
        ends = np.cumsum(lengths)

        def index(flat_i):  # flat index -> [review][position]
            r = int(np.searchsorted(ends, flat_i, side="right"))
            return f"[{r}][{flat_i - int(ends[r] - lengths[r])}]"

        bad = _bad_number(flat, name, "word rank", 0, None, "is not a word rank (integers >= 0)", index)
        if bad:
            raise NormbenchError(f"{_origin(cfg, source)}: {bad}; {_fix(source)}")
    # labels, lengths and empty sets in the file's order (the word lists stand in as ids 0)
    stand_in = {k: np.zeros((len(arrays[k]), 1), "int32") for k in ("x_train", "x_test")}
    check_arrays(cfg, source, {**arrays, **stand_in})


def _pixels(x):
    """Images as the model takes them. Integer pixels stay integers: uint8 as they are
    (for a cache hit, the memory-mapped file itself), other integer dtypes (checked to be
    0-255) as uint8; the CNN's first layer (normbench.build.layers.Pixels) turns each batch into
    float32 x / 255, the tutorial's scaling, with the same values as NumPy's, so a float32
    copy of the whole set (4x the bytes, twice over once fit copies it) never exists.
    Float pixels were checked to be in [0, 1] already: float32, not divided again."""
    if x.dtype.kind == "f":
        return x.astype("float32", copy=False)
    return x if x.dtype == "uint8" else x.astype("uint8")


def local_sizes(cfg) -> tuple[str, dict] | None:
    """(file, {"train": n, "test": m}) for a local .npz data file, read cheaply from its
    headers; None for downloads, synthetic sets and other formats (their sizes are the
    real sets', checked by the config). Raises if data.path is wrong or the file is not
    a usable .npz (check_npz), with load_data's line."""
    spec = DATASETS[cfg.name]
    if is_generated(cfg.name) or cfg.name == "image_folder" or spec.kind == "tabular":
        return None
    local = _find_local(cfg, spec.filenames)
    if local is None or local.is_dir() or not local.name.endswith(".npz"):
        return None
    return str(local), check_npz(cfg, local)
