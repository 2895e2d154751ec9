"""compare's verdict categories, families, declared primary analysis, did-not-learn flag
and P(A better than B) across sections, through the command line on hand-written run
folders (nothing trains); sweep --seeds-until resolved on hand-written members. The
statistics themselves are checked against scipy/statsmodels in test_stats_equivalence.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import ACC3, cli, compare_csv, parse_table, write_config, write_run
from normbench.analysis import stats as S
from normbench.core.metrics import FAMILIES

EQUAL = {"batch": [0.781, 0.779, 0.784, 0.776, 0.780], "layer": [0.778, 0.783, 0.779, 0.781, 0.777]}


@pytest.fixture
def equal(tmp_path):
    root = tmp_path / "eq"
    for norm, accs in EQUAL.items():
        for seed, acc in enumerate(accs):
            write_run(root, seed=seed, norm=norm, test_accuracy=acc)
    return root


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_without_a_margin_equal_groups_are_not_resolved_and_never_no_difference(equal):
    r = cli("compare", equal)
    assert r.exit_code == 0, r.output
    text = _flat(r.stdout)
    assert "batch vs layer:" in text and "not resolved" in text
    assert "no difference" not in text and "equivalent" not in text
    assert ("verdicts: higher, lower or not resolved; without an equivalence margin (--margin) an interval that "
            "includes 0 is not resolved, which does not show that the groups are alike") in text


def test_margin_turns_equal_groups_into_equivalent_with_tost(equal):
    r = cli("compare", equal, "--margin", "0.01")
    assert r.exit_code == 0, r.output
    text = _flat(r.stdout)
    d = S.welch_diff(EQUAL["batch"], EQUAL["layer"])
    assert "equivalent within ±1.00 pp: the 90 % interval" in text
    assert "verdicts: higher, lower, equivalent within ±1 pp or not resolved" in text
    js = json.loads(cli("compare", equal, "--margin", "0.01", "--format", "json").stdout)
    (pair,) = js["pairs"]
    assert (pair["a"], pair["b"], pair["call"], js["margin"]) == ("batch", "layer", "equivalent", 0.01)
    assert pair["p_tost"] == pytest.approx(S.tost_p(d, 0.01), rel=1e-12)
    layer = next(g for g in js["groups"] if g["model.norm"] == "layer")
    assert layer["test_accuracy_call"] == "equivalent" and layer["test_accuracy_p_tost"] == pair["p_tost"]
    # a margin too narrow for these spreads: neither shown
    text = _flat(cli("compare", equal, "--margin", "0.001").stdout)
    assert "not resolved (nor equivalent within ±0.10 pp: TOST p = " in text


def test_a_resolved_difference_stays_higher_with_a_margin_and_the_calls_are_family_tests(two_groups, three):
    # batch - layer: +10 pp, resolved, and far inside ±50 pp: it reads "higher", not "equivalent"
    js = json.loads(cli("compare", two_groups, "--margin", "0.5", "--format", "json").stdout)
    assert [p["call"] for p in js["pairs"]] == ["higher"]
    # three groups: neither difference survives Holm; both lie inside ±50 pp
    js = json.loads(cli("compare", three, "--margin", "0.5", "--format", "json").stdout)
    want = [t.call for t in S.family_tests([ACC3["batch"], ACC3["layer"], ACC3["none"]], "vs-best", 0.5)]
    assert [p["call"] for p in js["pairs"]] == want == ["equivalent", "equivalent"]


@pytest.mark.parametrize("value", ["0", "-0.01", "nan", "inf"])
def test_a_bad_margin_is_one_line(three, value):
    r = cli("compare", three, "--margin", value)
    assert r.exit_code != 0
    assert r.output.strip().splitlines()[-1] == (
        f"Error: --margin {float(value)}: must be a positive number in the metric's units, e.g. 0.01 (1 pp of accuracy)")


def test_all_pairs_family_on_the_command_line(three):
    r = cli("compare", three, "--family", "all-pairs")
    assert r.exit_code == 0, r.output
    text = _flat(r.stdout)
    assert "Holm p: p adjusted over the section's family (all-pairs: every pair of groups in the section)" in text
    assert "verdicts (95% intervals, every pair of groups in the section):" in text
    for pair in ("batch vs layer:", "batch vs none:", "layer vs none:"):
        assert pair in text
    # the table's Holm p is the all-pairs one: Holm over three Welch p-values
    ps = {(a, b): S.welch_diff(ACC3[a], ACC3[b]).p for a, b in (("batch", "layer"), ("batch", "none"), ("layer", "none"))}
    adj = dict(zip(ps, S.holm(list(ps.values()))))
    rows = {row["model.norm"]: row for row in parse_table(r.stdout)}
    assert rows["layer"]["Holm p"] == f"{adj[('batch', 'layer')]:.4f}"
    assert rows["none"]["Holm p"] == f"{adj[('batch', 'none')]:.4f}"
    js = json.loads(cli("compare", three, "--family", "all-pairs", "--format", "json").stdout)
    assert js["family"] == "all-pairs" and len(js["pairs"]) == 3
    assert [p["p_holm"] for p in js["pairs"]] == pytest.approx(list(adj.values()), rel=1e-12)
    # the default: each group against the best, two verdicts
    js = json.loads(cli("compare", three, "--format", "json").stdout)
    assert js["family"] == "vs-best" and [(p["a"], p["b"]) for p in js["pairs"]] == [("batch", "layer"), ("batch", "none")]
    r = cli("compare", three, "--family", "pairs")
    assert r.exit_code == 2 and "Invalid value for '--family'" in r.output


def test_accuracy_intervals_stay_inside_0_1(tmp_path):
    root = tmp_path / "r"
    for seed, acc in enumerate([1.0, 1.0, 0.996]):
        write_run(root, seed=seed, norm="batch", test_accuracy=acc)
    for seed, acc in enumerate([0.95, 0.10]):
        write_run(root, seed=seed, norm="layer", test_accuracy=acc)
    df = compare_csv(root).set_index("model.norm")
    assert S.mean_ci([1.0, 1.0, 0.996]).high > 1  # what compare printed before
    for g in ("batch", "layer"):
        assert 0 <= df.loc[g, "test_accuracy_ci_low"] <= df.loc[g, "test_accuracy_ci_high"] <= 1
    assert -1 <= df.loc["layer", "test_accuracy_diff_low"] and df.loc["layer", "test_accuracy_diff_high"] <= 1
    text = _flat(cli("compare", root).stdout)
    assert "95% CI: t-interval of the mean on the logit scale of [0, 1], the range of test_accuracy" in text
    # an unbounded metric keeps its t interval
    df = compare_csv(root, "--metric", "test_loss").set_index("model.norm")
    assert df.loc["batch", "test_accuracy_mean"] == pytest.approx(np.mean([1.0, 1.0, 0.996]))


# ----------------------------------------------------------------------------- declared analysis


def _declared_runs(root, block, norms=("batch", "layer")):
    for norm in norms:
        for seed, acc in enumerate(ACC3[norm][:3]):
            d = write_run(root, seed=seed, norm=norm, test_accuracy=acc)
            if block is not None:
                import yaml

                cfg = yaml.safe_load((d / "config.yaml").read_text())
                cfg["compare"] = block
                (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
                (d / "config.json").unlink(missing_ok=True)


def test_declared_primary_analysis_marks_verdicts_primary(tmp_path):
    root = tmp_path / "r"
    _declared_runs(root, {"primary": "test_accuracy", "margin": 0.02, "family": "all-pairs"})
    r = cli("compare", root)
    assert r.exit_code == 0, r.output
    text = _flat(r.stdout)
    assert ("primary analysis, as the study declares it (test_accuracy, margin 0.02, family all-pairs): "
            "verdicts marked primary") in text
    assert "primary: batch vs layer:" in text
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    assert js["primary"] is True and js["margin"] == 0.02 and js["family"] == "all-pairs"
    assert js["declared"] == {"primary": "test_accuracy", "margin": 0.02, "family": "all-pairs"}
    assert {p["role"] for p in js["pairs"]} == {"primary"}
    # any other analysis of the same runs is exploratory
    for args in (["--metric", "test_loss"], ["--margin", "0.05"], ["--family", "vs-best"]):
        text = _flat(cli("compare", root, *args).stdout)
        assert "this one differs, so every verdict below is exploratory" in text, args
        assert "exploratory: batch vs layer:" in text and "primary: batch" not in text, args
    # a different metric does not inherit the declared margin (it is in test_accuracy's units)
    assert json.loads(cli("compare", root, "--metric", "test_loss", "--format", "json").stdout)["margin"] is None


def test_no_declaration_says_every_verdict_is_exploratory(three):
    text = _flat(cli("compare", three).stdout)
    assert ("no primary analysis declared (a study config's compare: block declares one): every verdict below is "
            "exploratory") in text
    assert "primary:" not in text and "\n  exploratory:" not in cli("compare", three).stdout


def test_a_study_config_declares_the_analysis_for_runs_without_one(tmp_path):
    root = tmp_path / "r"
    _declared_runs(root, None)
    study = write_config(tmp_path / "study.yaml", compare={"primary": "test_accuracy", "family": "all-pairs"})
    js = json.loads(cli("compare", root, "--study", study, "--format", "json").stdout)
    assert js["primary"] is True and js["family"] == "all-pairs" and js["margin"] is None
    assert json.loads(cli("compare", root, "--format", "json").stdout)["primary"] is None
    bare = write_config(tmp_path / "bare.yaml")
    r = cli("compare", root, "--study", bare)
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == (
        f"Error: --study {bare}: no compare: block; declare the primary analysis there (compare: {{primary: "
        "test_accuracy, margin: 0.01, family: vs-best}, docs/compare.md)")


def test_runs_that_declare_different_analyses_use_none(tmp_path):
    root = tmp_path / "r"
    _declared_runs(root / "a", {"primary": "test_accuracy"}, norms=("batch",))
    _declared_runs(root / "b", {"primary": "test_loss"}, norms=("layer",))
    r = cli("compare", root)
    assert r.exit_code == 0, r.output
    text = _flat(r.stdout)
    assert "the runs declare 2 different primary analyses (compare: blocks of their configs); none is used" in text
    assert "no primary analysis declared" in text


def test_the_compare_block_is_parsed_and_checked(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", compare={"primary": "test_accuracy", "margin": 0.01, "family": "all-pairs"})
    r = cli("validate", cfg)
    assert r.exit_code == 0, r.output
    bad = write_config(tmp_path / "b.yaml", compare={"margin": 0.01})
    r = cli("validate", bad)
    assert r.output.strip().splitlines()[-1].startswith(
        f"Error: {bad}: compare.primary: missing; name the metric whose verdict answers the study's question, one of: "
        "test_accuracy, ")
    bad = write_config(tmp_path / "f.yaml", compare={"primary": "test_accuracy", "family": "pairs"})
    assert cli("validate", bad).output.strip().splitlines()[-1] == (
        f"Error: {bad}: compare.family: unknown family 'pairs'; choose one of: {', '.join(FAMILIES)}")


# ----------------------------------------------------------------------------- did not learn


def test_a_group_at_chance_is_flagged_never_best_and_its_verdicts_marked(tmp_path):
    """MobileNetV2's case (issue 28): every norm at chance, and compare named a best."""
    root = tmp_path / "r"
    for seed, acc in enumerate([0.10, 0.10, 0.10]):  # synthetic_cifar10: 10 classes, chance 1/10
        write_run(root, seed=seed, norm="none", test_accuracy=acc)
    for seed, acc in enumerate([0.08, 0.09, 0.07]):
        write_run(root, seed=seed, norm="batch", test_accuracy=acc, extra={"chance_accuracy": 0.1, "n_test": 10000})
    for seed, acc in enumerate([0.06, 0.05, 0.07]):
        write_run(root, seed=seed, norm="layer", test_accuracy=acc)
    r = cli("compare", root)
    assert r.exit_code == 0, r.output
    rows = {row["model.norm"]: row for row in parse_table(r.stdout)}
    assert rows["none"]["vs best [95% CI]"] == "top (did not learn)"
    assert all(row["learned"] == "no" for row in rows.values())
    assert "best" not in [row["vs best [95% CI]"] for row in rows.values()]
    text = _flat(r.stdout)
    assert ("did not learn: synthetic_cifar10-free, norm=none" not in text)  # the section is named as compare names it
    assert ("norm=none: test_accuracy 0.1000 is not above chance 0.1000 (1/10 classes: the run predates "
            "chance_accuracy)") in text
    assert ("norm=batch: test_accuracy 0.0800 is not above chance 0.1000 + 0.0060 (two binomial standard errors) "
            "(the test set's majority-class rate)") in text
    assert "[did not learn: none, batch] none vs batch:" in text


def test_a_group_that_learned_is_ranked_above_one_that_did_not(tmp_path):
    root = tmp_path / "r"
    for seed, acc in enumerate([0.60, 0.62, 0.61]):
        write_run(root, seed=seed, norm="layer", test_accuracy=acc)
    # higher accuracy, but its train loss never fell from the first epoch
    for seed, acc in enumerate([0.70, 0.72, 0.71]):
        write_run(root, seed=seed, norm="batch", test_accuracy=acc, extra={"first_train_loss": 0.5})
    r = cli("compare", root)
    rows = {row["model.norm"]: row for row in parse_table(r.stdout)}
    assert rows["layer"]["#"] == "1" and rows["layer"]["vs best [95% CI]"] == "best"
    assert rows["batch"]["#"] == "2" and rows["batch"]["learned"] == "no"
    text = _flat(r.stdout)
    assert "its final train loss 0.6667 has not fallen from the first epoch's 0.5" in text
    assert "[did not learn: batch] layer vs batch:" in text
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    flags = {g["model.norm"]: g["did_not_learn"] for g in js["groups"]}
    assert flags["layer"] is None and "has not fallen" in flags["batch"]


def test_groups_that_learned_carry_no_flag(three):
    r = cli("compare", three)
    assert "did not learn" not in r.stdout and "learned" not in parse_table(r.stdout)[0]


def test_chance_accuracy_is_the_majority_class_rate():
    from normbench.training.train import chance_accuracy

    assert chance_accuracy(np.array([0, 1, 1, 1])) == 0.75
    assert chance_accuracy(np.array([[1, 0], [0, 1], [0, 1]])) == pytest.approx(2 / 3, abs=1e-6)  # one-hot
    assert chance_accuracy(np.array([], dtype=int)) is None


# ----------------------------------------------------------------------------- across sections


def test_probability_of_improvement_across_sections(tmp_path):
    root = tmp_path / "r"
    vals = {("cifar10_cnn", "batch"): [0.80, 0.82, 0.85], ("cifar10_cnn", "layer"): [0.70, 0.74, 0.71],
            ("imdb_rnn", "batch"): [0.78, 0.77, 0.80], ("imdb_rnn", "layer"): [0.79, 0.76, 0.75]}
    for (arch, norm), accs in vals.items():
        for seed, acc in enumerate(accs):
            write_run(root, seed=seed, norm=norm, arch=arch, test_accuracy=acc, name=f"{arch}_{norm}")
    p, low, high = S.improvement_interval([vals[("cifar10_cnn", "batch")], vals[("imdb_rnn", "batch")]],
                                          [vals[("cifar10_cnn", "layer")], vals[("imdb_rnn", "layer")]])
    r = cli("compare", root)
    assert r.exit_code == 0, r.output
    text = _flat(r.stdout)
    assert "across sections: P(A better than B)" in text
    assert f"batch better than layer: P = {p:.2f} [{low:.2f}, {high:.2f}] (2 sections; 6 and 6 runs)" in text
    js = json.loads(cli("compare", root, "--format", "json").stdout)
    (a,) = js["across"]
    assert (a["a"], a["b"], a["sections"]) == ("batch", "layer", 2)
    assert (a["p_a_better"], a["low"], a["high"]) == pytest.approx((p, low, high), rel=1e-12)
    md = cli("compare", root, "--format", "markdown").stdout
    assert "| A | B | P(A better than B) | 95% CI | sections | runs A / B |" in md
    assert f"| batch | layer | {p:.2f} | [{low:.2f}, {high:.2f}] | 2 | 6 / 6 |" in md
    # one section: nothing across
    assert json.loads(cli("compare", root / "cifar10_cnn_batch", root / "cifar10_cnn_layer",
                          "--format", "json").stdout)["across"] == []


# ----------------------------------------------------------------------------- sweep --seeds-until resolved


def _members_with_values(tmp_path, values: dict, max_seeds: int, **changes):
    """A sweep's members (norm x seed) with summary.json written by hand: the metric each
    seed's run gave, so --seeds-until's --dry-run reads the rounds without training."""
    from normbench.store import runfolder
    from normbench.orchestrate import sweep as sw

    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = write_config(tmp_path / "c.yaml", **changes)
    plan = sw.plan_seeds(str(cfg), max_seeds, (), (f"model.norm={','.join(values)}",), False, str(tmp_path / "r"))
    for m in plan.members(max_seeds):
        norm, seed = m.config.model.norm, m.config.seed
        if seed < len(values[norm]):
            runfolder.write_summary(m.run_dir, {"status": "completed", "test_accuracy": values[norm][seed]})
    return cfg


def test_seeds_until_resolved_stops_when_every_comparison_is_resolved_or_equivalent(tmp_path):
    values = {"batch": [0.80, 0.79, 0.80, 0.81], "layer": [0.60, 0.64, 0.61, 0.62]}
    cfg = _members_with_values(tmp_path, values, 4)
    r = cli("sweep", cfg, "--grid", "model.norm=batch,layer", "--output", tmp_path / "r", "--seeds-until", "resolved",
            "--max-seeds", "4", "--dry-run")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("seeds-until resolved on test_accuracy, at most 4 seeds, 2 groups")
    # alpha / 3 rounds (2, 3, 4 seeds): at 2 seeds not resolved, at 3 it is
    d2 = S.welch_diff(values["batch"][:2], values["layer"][:2], 1 - 0.05 / 3)
    d3 = S.welch_diff(values["batch"][:3], values["layer"][:3], 1 - 0.05 / 3)
    assert S.call(d2) == "not resolved" and S.call(d3) == "higher"
    assert lines[-1] == ("stops at 3 seeds: every comparison (vs-best) resolved, each look at alpha 0.05/3")
    # the same groups, equal: resolved only with a margin, as equivalent
    values = {"batch": [0.781, 0.779, 0.784, 0.776], "layer": [0.778, 0.783, 0.779, 0.781]}
    cfg = _members_with_values(tmp_path / "eq", values, 4)
    args = ["sweep", cfg, "--grid", "model.norm=batch,layer", "--output", tmp_path / "eq" / "r", "--seeds-until",
            "resolved", "--max-seeds", "4", "--dry-run"]
    assert cli(*args).output.splitlines()[-1] == "stops at 4 seeds: --max-seeds reached"
    out = cli(*args, "--margin", "0.02").output.splitlines()
    assert out[-1].startswith("stops at ") and "or equivalent within ±0.02" in out[-1]
    r = cli("sweep", cfg, "--seeds-until", "0.01", "--max-seeds", "3", "--margin", "0.02", "--dry-run")
    assert r.exit_code == 2 and "--margin and --family apply to --seeds-until resolved" in r.output


def test_a_study_configs_compare_block_reaches_its_members_and_compare(tmp_path):
    values = {"batch": [0.80, 0.79, 0.80], "layer": [0.60, 0.64, 0.61]}
    # members made before the block existed ...
    _members_with_values(tmp_path, values, 3)
    # ... are not "made with a different config" once the study declares its analysis
    block = {"primary": "test_accuracy", "margin": 0.02, "family": "all-pairs"}
    _members_with_values(tmp_path / "decl", values, 3, compare=block)
    from normbench.orchestrate import sweep as sw

    cfg = write_config(tmp_path / "again.yaml", compare=block)
    plan = sw.plan_seeds(str(cfg), 3, (), ("model.norm=batch,layer",), False, str(tmp_path / "r"))
    assert len(plan.members(3, create=False)) == 6
    # new members carry it in their config.yaml, and compare reads it from there
    member = next((tmp_path / "decl" / "r").rglob("config.yaml"))
    assert "compare:" in member.read_text() and "family: all-pairs" in member.read_text()
    js = json.loads(cli("compare", tmp_path / "decl" / "r", "--format", "json").stdout)
    assert js["declared"] == block and js["primary"] is True and js["margin"] == 0.02
    # and the sweep's --seeds-until resolved takes its margin and family from it
    r = cli("sweep", tmp_path / "decl" / "c.yaml", "--grid", "model.norm=batch,layer", "--output",
            tmp_path / "decl" / "r", "--seeds-until", "resolved", "--max-seeds", "3", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "every comparison (all-pairs) resolved or equivalent within ±0.02" in r.output
