"""compare: what a group is and how it is labelled. Runs differing only in seed form
a group (a seed run twice counts once), never across data sets, models or config keys
that differ; sections, --within, the runs listed apart and not averaged, and old run
folders' defaults. Run folders are hand-written (conftest.write_run); nothing trains."""

from __future__ import annotations

import io
import json
import statistics

import pytest
import yaml

from conftest import ACC3, FP, cli, compare_csv, parse_table, write_run, cells
from normbench.store import runfolder


# ----------------------------------------------------------------------------- a group: seeds, data, sections


def test_repeated_seeds_are_collapsed_to_the_earliest_finished(three):
    import pandas as pd

    late = write_run(three, seed=1, norm="batch", test_accuracy=0.99, run_id="rerun-late",
                     finished_at="2026-02-01T00:00:00")
    early = write_run(three, seed=2, norm="batch", test_accuracy=0.60, run_id="rerun-early",
                      finished_at="2025-12-01T00:00:00")
    js = json.loads(cli("compare", three, "--format", "json").stdout)
    batch = next(g for g in js["groups"] if g["model.norm"] == "batch")
    kept = [ACC3["batch"][0], ACC3["batch"][1], 0.60, ACC3["batch"][3]]  # seed 2: the rerun finished first
    assert batch["n"] == 4 and sorted(batch["seeds"]) == [0, 1, 2, 3]
    assert batch["test_accuracy_mean"] == pytest.approx(statistics.mean(kept))
    assert batch["test_accuracy_std"] == pytest.approx(statistics.stdev(kept))
    assert str(late) not in batch["runs"] and str(early) in batch["runs"]
    assert {c["path"]: c["seed"] for c in js["collapsed"]} == {str(late): 1, str(next(
        p.parent for p in three.rglob("summary.json") if "seed2" in p.parent.name and "exp_batch" in str(p))): 2}
    assert any("2 repeated runs of a seed collapsed" in n for n in js["notes"])
    table = cli("compare", three).stdout
    assert "2 repeated runs of a seed collapsed" in table and f"collapsed: {late}" in table
    r = cli("compare", three, "--format", "csv")
    assert pd.read_csv(io.StringIO(r.stdout)).set_index("model.norm").loc["batch", "n"] == 4
    assert f"note: collapsed: {late}" in r.stderr


def test_different_data_never_share_a_group(tmp_path):
    """The same config on two copies of CIFAR-10 (another NORMBENCH_DATA_DIR): two groups."""
    root = tmp_path / "r"
    other = "sha256:" + "cd" * 32
    for seed in (0, 1):
        write_run(root, seed=seed, test_accuracy=0.8 + seed / 100, data="cifar10")
        write_run(root, seed=seed, test_accuracy=0.6 + seed / 100, fingerprint=other, run_id=f"other-{seed}", data="cifar10")
    write_run(root, seed=2, test_accuracy=0.7, fingerprint=None, run_id="old", data="cifar10")  # data unknown
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    got = sorted((g["data_fingerprint"], g["n"], round(g["test_accuracy_mean"], 4)) for g in js["groups"]
                 if g["data_fingerprint"])
    assert got == [(FP, 2, 0.805), (other, 2, 0.605)]
    unknown = [g for g in js["groups"] if g["data_fingerprint"] is None]
    assert len(unknown) == 1 and unknown[0]["n"] == 1
    assert any("1 config ran on different data" in n for n in js["notes"])
    assert any("1 run predate data fingerprints and share a config that ran on several data sets" in n
               for n in js["notes"])
    rows = parse_table(cli("compare", root).stdout)
    assert sorted(row["data"] for row in rows) == sorted(["abababab", "cdcdcdcd", "unknown"])


def test_synthetic_data_differs_per_seed_by_design_and_is_not_split(tmp_path):
    """synthetic_* sets are generated from the run's seed: every seed has its own
    fingerprint, and the seeds still form one group (a real training showed this)."""
    root = tmp_path / "r"
    for seed in (0, 1, 2):
        write_run(root, seed=seed, fingerprint=f"sha256:{seed:064d}")
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    assert [g["n"] for g in js["groups"]] == [3] and js["notes"] == []


def test_runs_without_a_fingerprint_join_with_a_note(tmp_path):
    root = tmp_path / "r"
    write_run(root, seed=0, test_accuracy=0.80, data="cifar10")
    write_run(root, seed=1, test_accuracy=0.82, fingerprint=None, data="cifar10")
    write_run(root, seed=2, test_accuracy=0.84, fingerprint=None, data="cifar10")
    r = cli("compare", root)
    assert "2 runs predate data fingerprints; grouped by config alone" in r.stdout
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    assert [g["n"] for g in js["groups"]] == [3] and js["groups"][0]["data_fingerprint"] == FP
    assert "data" not in parse_table(r.stdout)[0]  # no data column when no config was split


def test_models_and_data_sets_are_ranked_in_their_own_sections(tmp_path):
    root = tmp_path / "r"
    for arch, base in (("cifar10_cnn", 0.60), ("imdb_rnn", 0.85)):
        for norm, shift in (("batch", 0.02), ("layer", 0.0)):
            for seed in (0, 1, 2):
                write_run(root, seed=seed, norm=norm, arch=arch, name=f"{arch}_{norm}",
                          test_accuracy=base + shift + seed / 100)
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    assert js["sections"] == ["cifar10_cnn on synthetic_cifar10", "imdb_rnn on synthetic_imdb"]
    got = [(g["section"], g["rank"], g["model.norm"]) for g in js["groups"]]
    assert got == [("cifar10_cnn on synthetic_cifar10", 1, "batch"), ("cifar10_cnn on synthetic_cifar10", 2, "layer"),
                   ("imdb_rnn on synthetic_imdb", 1, "batch"), ("imdb_rnn on synthetic_imdb", 2, "layer")]
    # each difference is within its section: -0.02, never imdb against cifar (-0.25 or more)
    diffs = [g["test_accuracy_diff"] for g in js["groups"] if g["rank"] == 2]
    assert diffs == pytest.approx([-0.02, -0.02])
    table = cli("compare", root).stdout
    assert "== cifar10_cnn on synthetic_cifar10: 6 runs in 2 groups" in table
    assert "== imdb_rnn on synthetic_imdb: 6 runs in 2 groups" in table
    assert [row["#"] for row in parse_table(table, 1)] == ["1", "2"]
    assert table.count("batch vs layer:") == 2
    md = cli("compare", root, "--format", "markdown").stdout
    assert "### cifar10_cnn on synthetic_cifar10" in md and "### imdb_rnn on synthetic_imdb" in md
    assert list(compare_csv(root)["section"]) == [g[0] for g in got]


def test_compare_groups_ignore_seed_name_output_sweep(tmp_path):
    root = tmp_path / "r"
    # same training config under different names, output dirs and sweep recipes: one group
    write_run(root, seed=1, name="a", out="x", test_accuracy=0.5)
    write_run(root, seed=2, name="b", out="y", test_accuracy=0.6, sweep={"train.batch_size": [64, 128]})
    write_run(root, seed=1, name="c", batch_size=128, test_accuracy=0.7)
    write_run(root, seed=2, name="c", batch_size=128, test_accuracy=0.9)
    import pandas as pd

    r = cli("compare", root, "--format", "csv")
    df = pd.read_csv(io.StringIO(r.stdout))
    assert list(df["train.batch_size"]) == [128, 64]
    assert list(df["n"]) == [2, 2]
    assert list(df["label"]) == ["batch_size=128", "batch_size=64"]
    assert df["test_accuracy_mean"].tolist() == pytest.approx([0.8, 0.55])
    table = cli("compare", root).stdout
    assert "train.batch_size" in table and "model.norm" in table


def test_compare_accepts_run_folders_and_dedupes(two_groups):
    dirs = sorted(p.parent for p in two_groups.rglob("summary.json"))
    r = cli("compare", dirs[0], dirs[1], dirs[0] / "summary.json", two_groups / "exp_batch", "--format", "csv")
    import pandas as pd

    df = pd.read_csv(io.StringIO(r.stdout))
    assert df["n"].tolist() == [3]


def test_eval_setting_does_not_split_groups_for_last_and_best_metrics(tmp_path):
    import yaml

    root = tmp_path / "r"
    for seed in range(4):
        d = write_run(root, seed=seed, norm="batch", test_accuracy=0.6 + seed / 100)
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["train"]["eval"] = "last" if seed < 2 else "best"
        (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # test_accuracy follows train.eval, so the two settings are two groups ...
    assert sorted(compare_csv(root)["n"]) == [2, 2]
    # ... but the last-epoch and best-epoch figures are the same quantity under either setting
    for metric in ("test_accuracy_last", "test_accuracy_best"):
        rows = compare_csv(root, "--metric", metric)
        assert list(rows["n"]) == [4]
        assert rows[f"{metric}_mean"][0] == pytest.approx(0.615)


# ----------------------------------------------------------------------------- --within


def test_within_ranks_each_value_of_a_key_on_its_own(tmp_path):
    root = tmp_path / "r"
    for bs, (bn, ln) in {2: (0.30, 0.60), 16: (0.70, 0.62), 64: (0.75, 0.61)}.items():
        for seed in (0, 1, 2):
            write_run(root, seed=seed, norm="batch", batch_size=bs, test_accuracy=bn + seed / 100)
            write_run(root, seed=seed, norm="layer", batch_size=bs, test_accuracy=ln + seed / 100)
    rows = compare_csv(root, "--within", "train.batch_size").to_dict("records")
    # numeric order of the sections (2, 16, 64, not "16", "2", "64"), two groups ranked in each
    assert [r["section"] for r in rows] == [f"cifar10_cnn on synthetic_cifar10, train.batch_size={bs}"
                                            for bs in (2, 2, 16, 16, 64, 64)]
    assert [(r["model.norm"], r["rank"]) for r in rows] == [("layer", 1), ("batch", 2), ("batch", 1),
                                                            ("layer", 2), ("batch", 1), ("layer", 2)]
    # each difference is against its own section's best: batch - layer at batch size 2 is -30 pp
    assert float(rows[1]["test_accuracy_diff"]) == pytest.approx(-0.30)
    text = cli("compare", root, "--within", "train.batch_size").stdout
    assert "within each of 3 sections (model.arch on data.name, train.batch_size)" in text.replace("\n  ", " ")
    # without --within: one section, six groups ranked together
    assert compare_csv(root)["section"].nunique() == 1


# ----------------------------------------------------------------------------- runs not averaged


def test_compare_excludes_unfinished_runs(two_groups):
    before = cli("compare", two_groups, "--format", "csv").stdout
    diverged = write_run(two_groups, seed=4, norm="batch", status="diverged")
    interrupted = write_run(two_groups, seed=5, norm="layer", status="interrupted")
    unfinished = write_run(two_groups, seed=6, norm="layer", summary=False)  # running, or killed
    queued = write_run(two_groups, seed=7, norm="layer", summary=False)  # a sweep member not started yet
    (queued / "history.csv").unlink()
    r = cli("compare", two_groups, "--format", "csv")
    assert r.stdout == before  # never averaged in
    assert str(diverged) in r.stderr and "diverged" in r.stderr
    table = cli("compare", two_groups).stdout
    assert "not averaged: 4 runs" in table
    for d, status, epochs in ((diverged, "diverged", "1/3"), (interrupted, "interrupted", "1/3"),
                              (unfinished, "unfinished", "3/3"), (queued, "not started", "0/3")):
        line = next(l for l in table.splitlines() if str(d) in l)
        assert line.startswith(status) and f" {epochs} " in line
    assert "normbench run --resume" in table
    js = json.loads(cli("compare", two_groups, "--format", "json").stdout)
    assert sorted(x["status"] for x in js["excluded"]) == ["diverged", "interrupted", "not started", "unfinished"]
    assert [g["n"] for g in js["groups"]] == [3, 3]


def test_runs_not_averaged_are_listed_with_the_keys_that_vary(tmp_path):
    root = tmp_path / "r"
    for bs in (16, 64):
        for seed in (0, 1):
            write_run(root, seed=seed, norm="batch", batch_size=bs)
    d = write_run(root, seed=2, norm="batch", batch_size=16, status="diverged")
    table = cli("compare", root).stdout
    header = next(l for l in table.splitlines() if l.startswith("status"))
    assert header.split()[:4] == ["status", "model.norm", "train.batch_size", "seed"]
    line = next(l for l in table.splitlines() if str(d) in l)
    assert line.split()[:4] == ["diverged", "batch", "16", "2"]


# ----------------------------------------------------------------------------- old run folders


def test_runs_from_before_a_config_key_existed_group_with_its_default(tmp_path):
    """A run folder written before `train.backend` existed compares as the default
    (tensorflow), in one group with new runs; a jax run is a group of its own."""
    from normbench.analysis import results
    from normbench.analysis.runs import load_runs

    root = tmp_path / "results"
    write_run(root, seed=1, test_accuracy=0.80)  # config.yaml without train.backend
    for seed, backend in ((2, "tensorflow"), (3, "jax")):
        d = write_run(root, seed=seed, test_accuracy=0.82, name=f"exp_{backend}")
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["train"]["backend"] = backend
        (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmp = results.compare(load_runs([root]))
    assert cmp.varying == ["train.backend"]
    sizes = {row["train.backend"]: row["n"] for _, row in cmp.groups.iterrows()}
    assert sizes == {"tensorflow": 2, "jax": 1}


def test_an_old_config_that_no_longer_validates_still_gets_its_defaults(tmp_path):
    """results fills keys added since a run was made by parsing alone: a config that a
    later rule refuses (3 groups do not divide the CNN's 32 channels) still gets them."""
    from normbench.analysis.runs import load_run

    d = write_run(tmp_path, seed=0, norm="group")
    raw = yaml.safe_load((d / runfolder.CONFIG).read_text())
    raw["model"]["norm_groups"] = 3
    assert "eval" not in raw["train"]
    runfolder.write_config(d, yaml.safe_dump(raw, sort_keys=False))
    run = load_run(d)
    assert run.config["train.eval"] == "last" and run.config["train.schedule"] == "constant"
    assert run.config["model.norm_groups"] == 3  # as written


def test_one_config_with_two_model_files_is_told_apart(tmp_path):
    """A user's model file changed under one config (model_sha256 differs): two groups per
    norm, and the table, verdicts, CSV and plots name each by its file's sha, not a
    repeated 'batch' that a reader cannot tell apart."""
    root = tmp_path / "r"
    for sha, acc in (("sha256:" + "aa" * 32, 0.5), ("sha256:" + "bb" * 32, 0.6)):
        for norm in ("batch", "layer"):
            for seed in (0, 1, 2):
                write_run(root, seed=seed, norm=norm, test_accuracy=acc + seed / 100, run_id=f"{norm}-{sha[7:9]}-{seed}",
                          extra={"model_sha256": sha, "model_source": "mine.keras"})
    r = cli("compare", root)
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.stdout.splitlines() if line[:2] in ("1 ", "2 ", "3 ", "4 ")][:4]
    assert [row[1:4] for row in rows] == [["batch", "bbbbbbbb", "3"], ["layer", "bbbbbbbb", "3"],
                                          ["batch", "aaaaaaaa", "3"], ["layer", "aaaaaaaa", "3"]]
    assert "batch (model bbbbbbbb) vs batch (model aaaaaaaa): +10.0 pp" in " ".join(r.stdout.split())
    assert "2 configs ran with different model files (summary.json's model_sha256 differs)" in " ".join(r.output.split())
    import pandas as pd

    df = pd.read_csv(io.StringIO(cli("compare", root, "--format", "csv").stdout))
    assert sorted(df["label"]) == ["norm=batch, model=aaaaaaaa", "norm=batch, model=bbbbbbbb",
                                   "norm=layer, model=aaaaaaaa", "norm=layer, model=bbbbbbbb"]
    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    res = plots.plot_vs(load_runs([root]), "model.norm", tmp_path / "v.png")
    assert res.lines == 4  # one line per norm and model file
    one = cli("compare", *sorted((root / "exp_batch").glob("*-aa-*")), *sorted((root / "exp_layer").glob("*-aa-*")),
              "--format", "csv")
    assert "model_file" not in one.stdout.splitlines()[0]  # one model file: no column, labels as before


def test_the_same_seeds_under_two_normbench_versions_are_two_groups(tmp_path):
    """A config rerun under another normbench version (0.2.0's fused batch norm changes
    what `batch` trains): compare kept the first run of each seed and dropped the others
    as repeats, so the new runs vanished from a comparison made to test them. Now each
    version is a group, named in a normbench column, labels and verdict, paired by seed;
    runs of one version show no column."""
    root = tmp_path / "r"
    for version, acc, name in (("0.1.0", 0.60, "old"), ("0.2.0", 0.65, "new")):
        for seed in (0, 1, 2):
            write_run(root, seed=seed, name=name, test_accuracy=acc + seed / 100, run_id=f"{name}-{seed}",
                      extra={"versions": {"normbench": version, "backend": "tensorflow"}})
    r = cli("compare", root)
    assert r.exit_code == 0, r.output
    rows = [cells(line) for line in r.stdout.splitlines() if line[:2] in ("1 ", "2 ")][:2]
    assert [row[1:4] for row in rows] == [["batch", "0.2.0", "3"], ["batch", "0.1.0", "3"]]
    out = " ".join(r.stdout.split())
    assert "batch (normbench 0.2.0) vs batch (normbench 0.1.0): +5.0 pp" in out and "Paired by seed (n = 3)" in out
    assert "1 config ran under different normbench versions (summary.json's versions.normbench differs" in out
    assert "collapsed" not in r.output
    import pandas as pd

    df = pd.read_csv(io.StringIO(cli("compare", root, "--format", "csv").stdout))
    assert list(df["normbench"]) == ["0.2.0", "0.1.0"] and list(df["n"]) == [3, 3]
    one = cli("compare", root / "new", "--format", "csv")
    assert "normbench" not in one.stdout.splitlines()[0]  # one version: no column, labels as before


# ----------------------------------------------------------------------------- the same run in two folders


def test_the_same_run_in_two_folders_is_counted_once_and_paired(tmp_path):
    """A tune's confirmation runs that a fixed-rate study already made (issue 29): folder
    fixed/ holds seeds 0-4; folder tuned/ holds bit-identical copies of seeds 2-4 (marked
    confirmation runs, so they form a group of their own) and fresh seeds 1, 5, 6. Seed 1
    of fixed/ predates data fingerprints (no identity), so seeds 1-4 are shared, 3 of them
    the same run. compare counts those 3 once and compares the groups paired over the
    shared seeds, not with Welch's test, which would count them twice."""
    import shutil

    from scipy import stats as sps

    fixed, tuned = tmp_path / "fixed", tmp_path / "tuned"
    acc_fixed = {0: 0.70, 1: 0.71, 2: 0.74, 3: 0.69, 4: 0.73}
    runs = {s: write_run(fixed, seed=s, norm="layer", test_accuracy=a, run_id=f"seed{s}",
                         fingerprint=None if s == 1 else FP) for s, a in acc_fixed.items()}
    acc_tuned = {1: 0.76, 5: 0.78, 6: 0.75}
    for s in (2, 3, 4):
        shutil.copytree(runs[s], tuned / "exp_layer" / f"seed{s}")  # the same files in another folder
    for s, a in acc_tuned.items():
        write_run(tuned, seed=s, norm="layer", test_accuracy=a, run_id=f"seed{s}")
    for d in (tuned / "exp_layer").iterdir():
        runfolder.write_role(d, "confirmation")
    acc_tuned |= {s: acc_fixed[s] for s in (2, 3, 4)}

    js = json.loads(cli("compare", fixed, tuned, "--format", "json").stdout)
    assert sorted(g["n"] for g in js["groups"]) == [5, 6]
    assert sorted((p["path"].split("/")[-3], p["same_as"].split("/")[-3]) for p in js["same_runs"]) == \
        [("tuned", "fixed")] * 3
    assert {g["same_runs"] for g in js["groups"]} == {0, 3}
    shared = [1, 2, 3, 4]
    a, b = [acc_tuned[s] for s in shared], [acc_fixed[s] for s in shared]
    p = sps.ttest_rel(a, b).pvalue
    other = next(g for g in js["groups"] if g["verdict"])
    best_is_tuned = other["role"] == "null"  # the other group is the fixed one
    diff = (sum(a) - sum(b)) / 4 * (1 if best_is_tuned else -1)
    assert best_is_tuned  # the tuned group's mean is higher
    assert f"3 of 5 runs are the same run" in other["verdict"]
    assert f"paired over the 4 shared seeds: {diff * 100:+.1f} pp" in other["verdict"]
    assert f"p = {p:.2f}" in other["verdict"] and "(n = 4 pairs)" in other["verdict"]
    assert other["test_accuracy_p_holm"] == pytest.approx(p)
    text = cli("compare", fixed, tuned).stdout
    assert text.startswith("11 completed runs (8 distinct: 3 are the same run in two groups) in 2 groups")
    assert "3 runs found in two groups as the same run" in text


def test_a_run_copied_within_one_group_counts_once(tmp_path):
    """The same run copied into a second folder without a role joins its own group: one seed, n once."""
    import shutil

    fixed = tmp_path / "fixed"
    runs = [write_run(fixed, seed=s, test_accuracy=0.7 + s / 100, run_id=f"seed{s}") for s in range(3)]
    shutil.copytree(runs[0], tmp_path / "copy" / "exp_batch" / "seed0")
    js = json.loads(cli("compare", fixed, tmp_path / "copy", "--format", "json").stdout)
    assert [g["n"] for g in js["groups"]] == [3] and len(js["collapsed"]) == 1 and js["same_runs"] == []


def test_identity_leaves_out_what_does_not_train_and_old_runs_get_one(tmp_path):
    """identity: name, output, sweep, role and data.path do not change it; the seed, the
    data, the normbench version and any trained key do. Run folders from before the
    summary.json key get theirs computed from config.yaml and summary.json."""
    from normbench.store import identity
    from normbench.analysis.runs import load_run

    base = load_run(write_run(tmp_path / "a", seed=0, run_id="x"))
    assert base.summary["identity"] is None and base.identity == identity.identity(base.config, base.summary)
    same = load_run(write_run(tmp_path / "b", seed=0, run_id="x", name="other", out="elsewhere",
                              sweep={"seed": [0, 1]}))
    assert same.identity == base.identity
    for changed in (dict(seed=1), dict(seed=0, fingerprint="sha256:" + "cd" * 32), dict(seed=0, batch_size=32),
                    dict(seed=0, extra={"versions": {"normbench": "9.9"}})):
        other = load_run(write_run(tmp_path / f"c{len(list(tmp_path.iterdir()))}", run_id="x", **changed))
        assert other.identity != base.identity, changed
    assert load_run(write_run(tmp_path / "d", seed=0, run_id="x", fingerprint=None)).identity is None
    recorded = load_run(write_run(tmp_path / "e", seed=0, run_id="x", extra={"identity": "sha256:given"}))
    assert recorded.identity == "sha256:given"


def test_shared_runs_with_different_results_are_named_and_still_paired(tmp_path):
    """One identity (same config, seed, data, version), other numbers: a rerun that did not
    reproduce bit for bit. Still one training setting per seed: paired, and named."""
    a, b = tmp_path / "a", tmp_path / "b"
    for s, (x, y) in enumerate([(0.70, 0.72), (0.74, 0.75), (0.69, 0.73)]):
        write_run(a, seed=s, test_accuracy=x, run_id=f"s{s}")
        runfolder.write_role(write_run(b, seed=s, test_accuracy=y, run_id=f"s{s}"), "confirmation")
    v = next(g["verdict"] for g in json.loads(cli("compare", a, b, "--format", "json").stdout)["groups"] if g["verdict"])
    assert "3 of 3 runs are the same run" in v and "3 of them gave different results" in v
    assert "paired over the 3 shared seeds: +2.3 pp" in v
