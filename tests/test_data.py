"""Data: local files give exactly what Keras' loaders give; subsets are balanced and
deterministic; synthetic sets are learnable-shaped and seeded. Real-data checks skip
when ../shared/data is absent."""

from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest

from conftest import shared_file
from normbench import NormbenchError
from normbench.schema.config import from_dict
from normbench.build.data import DATASETS, _cifar_from_batches, balanced_subset, input_spec, load_data


def _data_cfg(**data):
    from normbench.build.data import DATASETS

    arch = {"image": "cifar10_cnn", "tabular": "mlp"}.get(DATASETS[data["name"]].kind, "imdb_rnn")
    return from_dict({"name": "t", "data": data, "model": {"arch": arch, "norm": "none"}}).data


def _keras_format_imdb(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = np.empty(n, dtype=object)
    for i in range(n):
        x[i] = [int(w) for w in rng.integers(1, 120, rng.integers(3, 40))]
    y = np.array([0, 1] * (n // 2))
    np.savez(path, x_train=x, y_train=y, x_test=x[::-1].copy(), y_test=y[::-1].copy())
    return path


def test_local_imdb_equals_keras_load_data(tmp_path, monkeypatch):
    """Same file through Keras' own loader and through normbench's: identical arrays."""
    import keras
    import keras.src.datasets.imdb as kimdb

    path = _keras_format_imdb(tmp_path / "imdb.npz")
    monkeypatch.setattr(kimdb, "get_file", lambda *a, **k: str(path))
    (kx, ky), (kxt, kyt) = keras.datasets.imdb.load_data(num_words=50)
    ours = load_data(_data_cfg(name="imdb", path=str(path), num_words=50, maxlen=30))
    pad = keras.utils.pad_sequences
    assert np.array_equal(ours.x_train, pad(kx, maxlen=30)) and np.array_equal(ours.y_train, ky)
    assert np.array_equal(ours.x_test, pad(kxt, maxlen=30)) and np.array_equal(ours.y_test, kyt)
    assert ours.x_train.max() < 50 and (ours.x_train == 2).any()  # oov applied
    assert ours.source == str(path)


def test_keras_download_path_is_used_when_no_local_copy(monkeypatch):
    import keras

    calls = []

    def fake_load_data(num_words=None):
        calls.append(num_words)
        x = np.array([[1, 5, 9], [1, 7]] * 2, dtype=object)
        return (x, np.array([0, 1, 0, 1])), (x, np.array([0, 1, 0, 1]))

    monkeypatch.delenv("NORMBENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(keras.datasets.imdb, "load_data", fake_load_data)
    d = load_data(_data_cfg(name="imdb", num_words=123, maxlen=4))
    assert calls == [123] and d.source == "keras.datasets.imdb"
    assert d.x_train.tolist()[0] == [0, 1, 5, 9]  # pre-padded, as the tutorial's pad_sequences


def test_data_dir_env_var(tmp_path, monkeypatch):
    _keras_format_imdb(tmp_path / "imdb.npz")
    monkeypatch.setenv("NORMBENCH_DATA_DIR", str(tmp_path))
    d = load_data(_data_cfg(name="imdb", num_words=50, maxlen=10))
    assert d.source == str(tmp_path / "imdb.npz") and d.x_train.shape == (40, 10)


def test_plain_npz_imdb_sequences_map_out_of_vocabulary_ids_to_2_as_keras(tmp_path, monkeypatch):
    """Already-encoded sequences (ids 3..82, vocabulary 50): every id >= num_words becomes
    the out-of-vocabulary id 2 and every other id stays. Checked against Keras' own
    loader given the same ids as word ranks (it adds index_from=3, then maps ids >=
    num_words to its oov_char, 2)."""
    import keras
    import keras.src.datasets.imdb as kimdb

    x = np.arange(3, 83).reshape(8, 10)
    y = np.array([0, 1] * 4)
    np.savez(tmp_path / "plain.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    d = load_data(_data_cfg(name="imdb", path=str(tmp_path / "plain.npz"), num_words=50, maxlen=10))
    expected = np.where(x >= 50, 2, x)
    assert np.array_equal(d.x_train, expected)
    assert (d.x_train == 2).sum() == 33 and d.x_train[x < 50].tolist() == x[x < 50].tolist()  # ids 50..82 only

    ranks = np.empty(len(x), dtype=object)
    ranks[:] = [[int(i) - 3 for i in row] for row in x]
    np.savez(tmp_path / "ranks.npz", x_train=ranks, y_train=y, x_test=ranks, y_test=y)
    monkeypatch.setattr(kimdb, "get_file", lambda *a, **k: str(tmp_path / "ranks.npz"))
    (kx, _), _ = keras.datasets.imdb.load_data(num_words=50)
    # Keras shuffles the reviews and puts its start id 1 first: compare the rows as a set
    assert sorted(tuple(seq[1:]) for seq in kx) == sorted(tuple(row) for row in expected.tolist())


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [int(v) for v in rng.integers(0, 10, n)]}


def _write_cifar_dir(root, n=20):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        (d / name).write_bytes(pickle.dumps(_cifar_batch(n, i)))
    return d


def test_cifar_batches_match_keras_load_batch(tmp_path):
    from keras.src.datasets.cifar import load_batch

    d = _write_cifar_dir(tmp_path)
    xtr, ytr, xte, yte = _cifar_from_batches(lambda n: (d / n).read_bytes())
    kx, ky = load_batch(str(d / "data_batch_2"))  # Keras' reader: (n, 3, 32, 32)
    assert np.array_equal(xtr[20:40], kx.transpose(0, 2, 3, 1)) and np.array_equal(ytr[20:40], ky)
    assert xtr.shape == (100, 32, 32, 3) and xte.shape == (20, 32, 32, 3)


def test_cifar_folder_tarball_and_npz_agree(tmp_path):
    d = _write_cifar_dir(tmp_path / "extracted")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(d, arcname="cifar-10-batches-py")
    a = load_data(_data_cfg(name="cifar10", path=str(d)))
    b = load_data(_data_cfg(name="cifar10", path=str(tmp_path / "cifar-10-python.tar.gz")))
    np.savez(tmp_path / "c.npz", x_train=a.x_train, y_train=a.y_train, x_test=a.x_test, y_test=a.y_test)
    c = load_data(_data_cfg(name="cifar10", path=str(tmp_path / "c.npz")))
    for other in (b, c):
        assert np.array_equal(a.x_train, other.x_train) and np.array_equal(a.y_test, other.y_test)
    assert a.x_train.dtype == np.uint8  # pixels stay uint8: the model scales each batch to [0, 1]


def test_cifar_npz_with_wrong_shape(tmp_path):
    np.savez(tmp_path / "c.npz", x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.zeros(4), x_test=np.zeros((4, 28, 28), np.uint8), y_test=np.zeros(4))
    with pytest.raises(NormbenchError, match=r"x_train has shape \(4, 28, 28\), expected \(N, 32, 32, 3\)"):
        load_data(_data_cfg(name="cifar10", path=str(tmp_path / "c.npz")))


def test_balanced_subset_is_deterministic_and_balanced():
    y = np.repeat(np.arange(10), 100)
    a, b = balanced_subset(y, 95, "k"), balanced_subset(y, 95, "k")
    assert np.array_equal(a, b) and len(set(a)) == 95
    counts = np.bincount(y[a], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert not np.array_equal(np.sort(a), a)  # shuffled: validation_split sees every class
    with pytest.raises(NormbenchError, match="k=2000 is larger than the 1000 examples available; use at most 1000"):
        balanced_subset(y, 2000, "k")


def test_subset_applies_to_train_and_test(tmp_path):
    _keras_format_imdb(tmp_path / "imdb.npz")
    d = load_data(_data_cfg(name="imdb", path=str(tmp_path), num_words=50, maxlen=10, subset={"train": 10, "test": 6}))
    assert d.x_train.shape == (10, 10) and d.x_test.shape == (6, 10)
    assert np.bincount(d.y_train).tolist() == [5, 5]


@pytest.mark.parametrize("name", [n for n, e in DATASETS.items() if e.generated])
def test_synthetic_sets_have_real_shapes_and_follow_the_seed(name):
    cfg = _data_cfg(name=name, subset={"train": 300, "test": 50})
    shape, _, classes = input_spec(cfg)  # the shape and classes its DATASETS entry states
    a, b, c = load_data(cfg, seed=1), load_data(cfg, seed=1), load_data(cfg, seed=2)
    assert a.x_train.shape == (300, *shape) and a.x_test.shape == (50, *shape)
    assert np.array_equal(a.x_train, b.x_train) and not np.array_equal(a.x_train, c.x_train)
    assert set(np.unique(a.y_train)) == set(range(classes))


def test_synthetic_imdb_rule_is_in_the_inputs():
    """The hidden rule: label 1 iff markers 10-19 outnumber markers 20-29."""
    d = load_data(_data_cfg(name="synthetic_imdb", subset={"train": 500, "test": 10}))
    pos = ((d.x_train >= 10) & (d.x_train < 20)).sum(1)
    neg = ((d.x_train >= 20) & (d.x_train < 30)).sum(1)
    assert np.array_equal(d.y_train, (pos > neg).astype(int))


# ----------------------------------------------------------------------------- real data


def test_real_imdb_matches_keras_statistics():
    path = shared_file("imdb.npz")
    d = load_data(_data_cfg(name="imdb", path=str(path), num_words=10000, maxlen=200))
    assert d.x_train.shape == (25000, 200) and d.x_test.shape == (25000, 200)
    assert np.bincount(d.y_train).tolist() == [12500, 12500]
    assert d.x_train.max() == 9999 and d.x_train.min() == 0
    # every review starts with the start character 1 after its padding
    first = np.array([row[row > 0][0] if (row > 0).any() else 1 for row in d.x_train[:500]])
    short = (d.x_train[:500] == 0).any(axis=1)
    assert (first[short] == 1).all()


def test_real_cifar10_shapes_and_balance():
    path = shared_file("cifar10_jpeg.npz")
    d = load_data(_data_cfg(name="cifar10", path=str(path), subset={"train": 1000, "test": 200}))
    assert d.x_train.shape == (1000, 32, 32, 3) and d.x_train.dtype == np.uint8
    assert np.bincount(d.y_train).tolist() == [100] * 10


# ----------------------------------------------------------------------------- image folders (issue 28)


def _image_folder(root, fault=None, ext="png"):
    """train/ and test/ with classes cat and dog of 12x10 images, one fault put in."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype="uint8")).save(root / split / c / f"{i}.{ext}")
    bad = root / "train" / "dog" / f"3.{ext}"
    whole = bad.read_bytes()
    if fault == "hidden":
        for split in ("train", "test"):
            (root / split / ".ipynb_checkpoints").mkdir()
    elif fault == "empty":
        bad.write_bytes(b"")
    elif fault == "not-an-image":
        bad.write_bytes(b"<html>403 Forbidden</html>")
    elif fault == "truncated":
        bad.write_bytes(whole[: len(whole) // 2])
    elif fault == "damaged":  # whole length and end marker, scrambled pixel data: only decoding finds it
        b = bytearray(whole)
        start = b.index(b"IDAT") + 8
        b[start:start + 40] = bytes(v ^ 0x5A for v in b[start:start + 40])
        bad.write_bytes(bytes(b))
    return bad


def _image_cfg(tmp_path, root, units=2):
    import yaml

    raw = {"name": "img", "data": {"name": "image_folder", "path": str(root), "image_size": [8, 8]},
           "model": {"layers": [{"Rescaling": {"scale": 0.00392}}, {"Flatten": {}}, {"Dense": {"units": 4}}, {"norm": "vector"},
                                {"Dense": {"units": units, "activation": "softmax"}}], "norm": "layer"},
           "train": {"epochs": 1, "batch_size": 4}, "output": {"dir": str(tmp_path / "results")}}
    p = tmp_path / "img.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_image_folder_skips_hidden_folders_as_keras_does(tmp_path):
    """.ipynb_checkpoints beside the class folders is no class: Keras' reader skips it,
    so the class count does too (before: 3 classes, and validate refused the 2-unit model)."""
    from conftest import cli

    _image_folder(tmp_path / "img", "hidden")
    cfg = _image_cfg(tmp_path, tmp_path / "img")
    r = cli("validate", cfg)
    assert r.exit_code == 0, r.output
    data = {"name": "image_folder", "path": str(tmp_path / "img"), "image_size": [8, 8]}
    assert load_data(from_dict({"name": "t", "data": data, "model": {"layers": [{"Flatten": {}}], "norm": "none"}}).data).num_classes == 2


IMAGE_FAULTS = [
    ("empty", "is empty (0 bytes)", True),
    ("not-an-image", "is not an image (not JPEG, PNG, GIF, BMP or WebP data)", True),
    ("truncated", "is cut short (Invalid PNG data, size 220)", True),
    ("damaged", "cannot be decoded (Invalid PNG data, size 440)", False),
]


@pytest.mark.parametrize("fault,problem,by_validate", IMAGE_FAULTS, ids=[f[0] for f in IMAGE_FAULTS])
def test_a_bad_image_is_named_before_training(tmp_path, fault, problem, by_validate):
    """A bad image file is named in one line, by validate (from each file's first and
    last bytes) and by run before any run folder exists (before: validate said OK and run
    ended "training failed: InvalidArgumentError: ... Unknown image file format", naming
    no file). A file damaged inside, whole at both ends, is found by run's decoding only."""
    from conftest import assert_one_line_error, cli, error_line

    bad = _image_folder(tmp_path / "img", fault)
    cfg = _image_cfg(tmp_path, tmp_path / "img")
    expected = f"Error: data.path: {bad} {problem}; replace the file or delete it"
    r = cli("validate", cfg)
    if by_validate:
        assert error_line(r) == expected
        assert error_line(cli("validate", "--no-model", cfg)) == expected
    else:
        assert r.exit_code == 0, r.output
    r = cli("run", cfg, "-q")
    assert_one_line_error(r, expected, tmp_path / "results")
    assert error_line(r) == expected


def test_a_truncated_jpeg_is_named(tmp_path):
    from conftest import cli, error_line

    bad = _image_folder(tmp_path / "img", "truncated", ext="jpg")
    r = cli("validate", "--no-model", _image_cfg(tmp_path, tmp_path / "img"))
    assert error_line(r) == (f"Error: data.path: {bad} is cut short (jpeg::Uncompress failed. Invalid JPEG data or crop "
                             "window.); replace the file or delete it")


def test_validate_reads_your_arrays_labels_only(tmp_path, monkeypatch):
    """What a model is built for comes from x_train's .npy header: a .npz is never
    memory-mapped, so reading f["x_train"] read the whole array into memory during
    validate (docs/reliability.md, "a 1.2 GB arrays .npz")."""
    from numpy.lib import npyio

    from normbench.build.data import input_spec

    f = tmp_path / "d.npz"
    np.savez(f, x_train=np.zeros((30, 5, 4), "float32"), y_train=np.arange(30) % 3, x_test=np.zeros((9, 5, 4), "float32"),
             y_test=np.arange(9) % 3)
    read = []
    getitem = npyio.NpzFile.__getitem__
    monkeypatch.setattr(npyio.NpzFile, "__getitem__", lambda self, key: read.append(key) or getitem(self, key))
    cfg = from_dict({"name": "t", "data": {"name": "arrays", "path": str(f)},
                     "model": {"layers": [{"Flatten": {}}], "norm": "none"}}).data
    assert input_spec(cfg) == ((5, 4), "float32", 3)
    assert sorted(read) == ["y_test", "y_train"]


# ----------------------------------------------------------------------------- example shapes (DATASETS entries)


def test_every_built_in_set_owns_its_example_shape_and_dtype():
    """input_spec reads each DATASETS entry: a fixed shape, or a function of the config
    (the token sets follow data.maxlen); your data reads its own file or folder."""
    from normbench.build.data import DATASETS, OWN_DATA, input_spec

    for name, entry in DATASETS.items():
        if name in OWN_DATA:
            assert entry.example is not None, name
            continue
        assert entry.shape and entry.dtype, f"{name}: no example shape or dtype in its DATASETS entry"
        arch = {"sequence": "imdb_rnn", "image": "cifar10_cnn", "tabular": "mlp"}[entry.kind]
        cfg = from_dict({"name": "t", "data": {"name": name, "maxlen": 37}, "model": {"arch": arch, "norm": "none"}}).data
        shape, dtype, classes = input_spec(cfg)
        assert shape == ((37,) if entry.kind == "sequence" else entry.shape) and dtype == entry.dtype
        assert classes == entry.num_classes
        if entry.generated:  # a generated set's arrays have exactly the shape and dtype the entry states
            d = load_data(from_dict({"name": "t", "data": {"name": name, "maxlen": 37, "subset": {"train": 20, "test": 4}},
                                     "model": {"arch": arch, "norm": "none"}}).data)
            assert d.x_train.shape[1:] == shape and d.x_train.dtype == dtype, name


def test_cifar10_cnn_refuses_images_of_another_shape(tmp_path):
    """cifar10_cnn is built for 32x32x3 (its registered input_shape): validate refuses an
    image folder read at 64x64, naming the file, the shapes and the key that fixes it
    (before, kind "image" passed and the model was built for 32x32x3 whatever the data)."""
    import yaml

    from conftest import cli, error_line

    _image_folder(tmp_path / "img")
    raw = {"name": "img", "data": {"name": "image_folder", "path": str(tmp_path / "img"), "image_size": [64, 64]},
           "model": {"arch": "cifar10_cnn", "norm": "batch"}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    assert error_line(cli("validate", p, "--no-model")) == (
        f"Error: {p}: data.image_size: model cifar10_cnn takes examples of shape 32x32x3, image_folder's are 64x64x3; "
        "set data.image_size: [32, 32]")
    raw["data"]["image_size"] = [32, 32]
    p.write_text(yaml.safe_dump(raw))
    r = cli("validate", p)
    assert r.exit_code == 0, r.output


def test_cifar10_cnn_refuses_arrays_of_another_shape(tmp_path):
    import yaml

    from conftest import cli, error_line

    rng = np.random.default_rng(0)
    f = tmp_path / "gray.npz"
    np.savez(f, x_train=rng.integers(0, 255, (20, 28, 28, 1), dtype="uint8"), y_train=np.arange(20) % 10,
             x_test=rng.integers(0, 255, (10, 28, 28, 1), dtype="uint8"), y_test=np.arange(10))
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"name": "g", "data": {"name": "arrays", "path": str(f)},
                                 "model": {"arch": "cifar10_cnn", "norm": "batch"}}))
    assert error_line(cli("validate", p)) == (
        f"Error: {p}: data.path: model cifar10_cnn takes examples of shape 32x32x3, arrays's are 28x28x1; "
        "give x arrays of shape (N, 32, 32, 3)")


def test_build_model_refuses_a_shape_its_model_is_not_made_for():
    """The library path (build_model with the arrays' shape, as training calls it) checks too."""
    from normbench.build.models import build_model

    cfg = from_dict({"name": "t", "data": {"name": "synthetic_cifar10"}, "model": {"arch": "cifar10_cnn", "norm": "none"}})
    with pytest.raises(NormbenchError) as info:
        build_model(cfg, 10, "uint8", (28, 28, 1))
    assert str(info.value) == ("model cifar10_cnn takes examples of shape 32x32x3, the data's are 28x28x1; "
                               "use data of that shape, or another model")
    assert build_model(cfg, 10, "uint8", (32, 32, 3)).input_shape == (None, 32, 32, 3)
