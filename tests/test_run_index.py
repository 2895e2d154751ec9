"""A run's config.json (runfolder.CONFIG_INDEX): config.yaml resolved and flattened, kept
as JSON so that compare reads thousands of runs without parsing YAML. It must give
exactly what config.yaml gives, never a stale answer, and runs without one (every
committed run from before it) must read as before."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_run
from normbench.schema import config
from normbench.analysis import results, runs, tables
from normbench.store import runfolder

STUDY = REPO / "results" / "study" / "study_cifar10"


@pytest.fixture
def yaml_reads(monkeypatch) -> list:
    """Counts the config.yaml files parsed as YAML (runs._read_config's fallback)."""
    parsed = []
    real = config.load_run_yaml

    def counting(text):
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(config, "load_run_yaml", counting)
    return parsed


def _from_yaml(d: Path) -> dict:
    """The run's config as read without its index."""
    raw = yaml.safe_load((d / runfolder.CONFIG).read_text(encoding="utf-8"))
    return config.resolve_flat(raw, str(d / runfolder.CONFIG))


def test_the_index_is_written_with_the_config_and_read_instead_of_the_yaml(tmp_path, yaml_reads):
    d = write_run(tmp_path, seed=3, norm="layer")
    index = json.loads((d / runfolder.CONFIG_INDEX).read_text())
    assert index["schema"] == config.schema_key()
    yaml_reads.clear()
    run = runs.load_run(d)
    assert yaml_reads == []  # read from config.json
    # the same keys, values and key order (tables list varying keys in config order)
    assert list(run.config.items()) == list(_from_yaml(d).items())
    assert run.config["train.eval"] == "last"  # a default config.yaml did not spell out


def test_a_config_yaml_changed_after_its_index_is_read_from_the_yaml(tmp_path, yaml_reads):
    """Same size, mtime put back: only the content says it changed, and that is the key."""
    d = write_run(tmp_path, seed=3, norm="layer")
    cp = d / runfolder.CONFIG
    before = cp.stat()
    text = cp.read_text()
    changed = text.replace("norm: layer", "norm: group")
    assert len(changed) == len(text) and changed != text
    cp.write_text(changed)
    os.utime(cp, ns=(before.st_atime_ns, before.st_mtime_ns))
    yaml_reads.clear()
    assert runs.load_run(d).config["model.norm"] == "group"
    assert len(yaml_reads) == 1


def test_a_run_folder_without_an_index_reads_as_before(tmp_path, yaml_reads):
    """Every committed run predates config.json: the YAML is read, and writing an index for
    the same config.yaml changes nothing compare says (its CSV, to the last digit)."""
    assert not list(STUDY.rglob(runfolder.CONFIG_INDEX))
    study = tmp_path / "study_cifar10"
    shutil.copytree(STUDY, study)
    before = runs.load_runs([study])
    assert len(yaml_reads) == len(before) == 30
    csv_before = tables.format_comparison(results.compare(before), "csv")
    for r in before:
        runfolder.write_config(r.path, (r.path / runfolder.CONFIG).read_text(encoding="utf-8"))
    yaml_reads.clear()
    after = runs.load_runs([study])
    assert yaml_reads == []
    assert [list(r.config.items()) for r in after] == [list(r.config.items()) for r in before]
    assert tables.format_comparison(results.compare(after), "csv") == csv_before


@pytest.mark.parametrize("index", [
    "not json {",
    json.dumps({"config_sha256": "0" * 64, "schema": "x", "config": {"model.norm": "batch"}}),
    json.dumps(["a list"]),
])
def test_an_index_that_is_not_this_configs_is_ignored(tmp_path, yaml_reads, index):
    d = write_run(tmp_path, seed=0, norm="layer")
    (d / runfolder.CONFIG_INDEX).write_text(index)
    yaml_reads.clear()
    assert runs.load_run(d).config == _from_yaml(d)
    assert len(yaml_reads) == 1


def test_an_index_of_another_config_schema_is_ignored(tmp_path, yaml_reads):
    """A version whose config has other keys or defaults resolves config.yaml itself."""
    d = write_run(tmp_path, seed=0, norm="layer")
    ip = d / runfolder.CONFIG_INDEX
    index = json.loads(ip.read_text())
    ip.write_text(json.dumps(dict(index, schema="another version", config={**index["config"], "model.norm": "stale"})))
    yaml_reads.clear()
    assert runs.load_run(d).config["model.norm"] == "layer"
    assert len(yaml_reads) == 1


def test_the_schema_key_is_the_same_in_every_process():
    """It is written by one process and compared in another: no object addresses in it."""
    import subprocess
    import sys

    code = "from normbench.schema import config; print(config.schema_key())"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    keys = {subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert keys == {config.schema_key() + "\n"}


def test_a_config_json_cannot_hold_exactly_gets_no_index(tmp_path, yaml_reads):
    """A YAML date stays a date only in the YAML: no index is written (an old one is removed),
    and the run reads from config.yaml."""
    d = write_run(tmp_path, seed=0, norm="layer")
    text = (d / runfolder.CONFIG).read_text().replace("path: null", "path: 2024-01-01")
    runfolder.write_config(d, text)
    assert not (d / runfolder.CONFIG_INDEX).exists()
    assert str(runs.load_run(d).config["data.path"]) == "2024-01-01"


def test_result_files_copied_back_from_a_worker_bring_their_index(tmp_path, yaml_reads):
    """write_files (a run trained without shared storage) writes config.yaml through
    write_config, so the driver's copy has its index too."""
    src = write_run(tmp_path / "worker", seed=1, norm="layer")
    d = tmp_path / "driver" / "exp_layer" / src.name
    d.mkdir(parents=True)
    runfolder.write_files(d, runfolder.read_files(src))
    yaml_reads.clear()
    assert runs.load_run(d).config == runs.load_run(src).config
    assert yaml_reads == []
