"""normbench tune: selection on validation only, fresh confirmation seeds, equal budget,
resume after SIGKILL of the driver, bad input, compare --role and plot --vs of a tune.

Most tests stand a fake trainer in for training (tests/tunefake.py: members complete at
once with scores that are a function of their config, test disagreeing with validation);
one tiny end-to-end test trains for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY, cli, write_config
from normbench import NormbenchError
from normbench.build.norms import NORMS
from normbench.store import runfolder
from normbench.orchestrate import sweep as sw
from normbench.orchestrate import tune
from tunefake import FakeTrainer, scores

HERE = Path(__file__).resolve().parent
PER, GRID = "model.norm=batch,layer,none", "train.learning_rate=0.001,0.003,0.01"


def _spec(tmp_path, **kw):
    cfg = write_config(tmp_path / "c.yaml")
    kw.setdefault("target", 1e-9)
    kw.setdefault("max_seeds", 3)
    kw.setdefault("select", "best_val_accuracy")  # the fake summaries' validation figure (tunefake.scores)
    return tune.load_spec(str(cfg), PER, [GRID], output=str(tmp_path / "r"), **kw)


def _tuned(tmp_path, **kw):
    """A whole tune with the fake trainer: (spec, result, echoed lines)."""
    spec, lines = _spec(tmp_path, **kw), []
    res = tune.run_tune(spec, executor=FakeTrainer(), jobs=4, echo=lines.append)
    assert res.failures == []
    return spec, res, lines


def _folders(out: Path):
    """(role, config, summary) of every run folder under out, read back from disk."""
    from normbench.schema.config import flatten, read_yaml

    for d in sorted(p.parent for p in out.rglob(runfolder.CONFIG)):
        yield (runfolder.read_role(d) or {}).get("role"), flatten(read_yaml(d / runfolder.CONFIG)), runfolder.read_summary(d)


def _chosen(sel):
    return {ch.per: ch.cell.point["train.learning_rate"] for ch in sel.choices}


# ----------------------------------------------------------------------------- selection


def test_selection_picks_the_validation_winner_where_test_disagrees(tmp_path):
    spec = _spec(tmp_path)
    fake = FakeTrainer()
    for m in spec.tuning_members():
        fake.submit(m, 1)
    sel = tune.selection_of(spec)
    assert _chosen(sel) == {"batch": 0.001, "layer": 0.003, "none": 0.001}
    # the test figures in the same folders favour other points: a look at test would show
    by_test = {norm: max((0.001, 0.003, 0.01), key=lambda lr: scores(norm, lr, 0)["test_accuracy"])
               for norm in ("batch", "layer", "none")}
    assert all(by_test[n] != lr for n, lr in _chosen(sel).items())
    records = tune.read_records([m.run_dir for m in spec.tuning_members(create=False)])
    assert records and not [k for r in records for k in r.view if k.startswith("test")]


def test_selection_never_falls_back_to_a_test_metric(tmp_path):
    spec = _spec(tmp_path)
    for m in spec.tuning_members():  # summaries with test figures only
        runfolder.write_summary(m.run_dir, {"status": "completed", "test_accuracy": 0.9, "test_loss": 0.1,
                                            "epochs": 1, "steps_per_epoch": 2})
    sel = tune.selection_of(spec)
    assert [ch.cell for ch in sel.choices] == [None, None, None]
    with pytest.raises(NormbenchError, match=r"^model.norm=batch, model.norm=layer, model.norm=none: no grid point "
                                             r"where every tuning seed completed"):
        tune.confirm_plan(sel)


def _write(spec, val):
    """Tuning summaries with best_val_accuracy val[(norm, lr)] (a status string: that status)."""
    for m in spec.tuning_members():
        v = val[(m.config.model.norm, m.config.train.learning_rate)]
        summary = {"status": v, "epochs": 1, "steps_per_epoch": 2} if isinstance(v, str) else \
            {"status": "completed", "best_val_accuracy": v, "epochs": 1, "steps_per_epoch": 2}
        if isinstance(v, tuple):  # (seed that diverged, value of the others)
            summary = {"status": "diverged", "epochs": 1, "steps_per_epoch": 2} if m.config.seed == v[0] else \
                {"status": "completed", "best_val_accuracy": v[1], "epochs": 1, "steps_per_epoch": 2}
        runfolder.write_summary(m.run_dir, summary)


def test_ties_and_edges_are_reported(tmp_path):
    spec = _spec(tmp_path)
    _write(spec, {("batch", 0.001): 0.7, ("batch", 0.003): 0.8, ("batch", 0.01): 0.8,
                  ("layer", 0.001): 0.9, ("layer", 0.003): 0.8, ("layer", 0.01): 0.7,
                  ("none", 0.001): 0.6, ("none", 0.003): 0.8, ("none", 0.01): 0.7})
    sel = tune.selection_of(spec)
    assert _chosen(sel) == {"batch": 0.003, "layer": 0.001, "none": 0.003}
    lines = tune.format_selection(sel)
    assert ("  model.norm=batch: learning_rate=0.003 (best_val_accuracy 0.8000); tie with learning_rate=0.01 (same "
            "mean): the first in grid order is kept") in lines
    assert ("  model.norm=layer: learning_rate=0.001 (best_val_accuracy 0.9000); at the grid's edge: the smallest "
            "train.learning_rate tried (0.001), so the best may lie beyond it: widen the grid") in lines
    assert "  model.norm=none: learning_rate=0.003 (best_val_accuracy 0.8000)" in lines
    assert "budget: every norm got 6 tuning runs (3 points x 2 seeds), 12 optimizer steps in all" in lines
    table = lines[lines.index(next(ln for ln in lines if "grid point" in ln)):][:5]
    assert table[2].split() == ["learning_rate=0.001", "0.7000", "0.9000", "*", "0.6000"]
    assert table[3].split() == ["learning_rate=0.003", "0.8000", "*", "0.8000", "0.8000", "*"]


def test_a_point_where_a_tuning_seed_diverged_is_not_selected(tmp_path):
    spec = _spec(tmp_path)
    val = {(n, lr): 0.5 for n in ("batch", "layer", "none") for lr in (0.001, 0.003, 0.01)}
    val[("batch", 0.01)] = (1, 0.99)  # seed 1 diverged; seed 0 scored best of all
    val[("batch", 0.003)] = 0.6
    _write(spec, val)
    sel = tune.selection_of(spec)
    assert _chosen(sel)["batch"] == 0.003
    assert any(ln.split()[:2] == ["learning_rate=0.01", "diverged"] for ln in tune.format_selection(sel))
    budget = sel.budget()
    assert len(set(budget.values())) == 1  # the diverged run used its budget too


# ----------------------------------------------------------------------------- a whole tune


def test_a_norm_that_diverges_at_every_point_is_named_and_the_others_are_confirmed(tmp_path):
    """One norm with no point where every tuning seed completed does not stop the tune:
    the others are confirmed and compared, and the missing one is named above and under
    the table (before, the whole confirmation was refused)."""
    spec, lines = _spec(tmp_path), []
    res = tune.run_tune(spec, executor=FakeTrainer(diverge={"none"}), jobs=4, echo=lines.append)
    assert res.failures == []
    norms = {m.config.model.norm for m in res.confirmation}
    assert norms == {"batch", "layer"} and len(res.confirmation) >= 4
    note = ("not confirmed, so not compared: model.norm=none: no grid point where every tuning seed completed (the "
            "others diverged or failed); widen the grid toward safer values, or delete the failed folders to retrain them")
    assert lines.count(note) == 2 and lines[-1] == note
    assert set(res.comparison.groups["model.norm"]) == {"batch", "layer"}
    assert note in tune.dry_run(spec)


def test_a_tune_confirms_on_fresh_seeds_with_an_equal_budget_per_norm(tmp_path):
    spec, res, lines = _tuned(tmp_path)
    found = list(_folders(tmp_path / "r"))
    tuning = [(c, s) for role, c, s in found if role == "tuning"]
    confirmation = [(c, s) for role, c, s in found if role == "confirmation"]
    assert len(tuning) + len(confirmation) == len(found)  # every folder has a role
    # seeds: the tuning seeds, and confirmation seeds disjoint from them
    assert {c["seed"] for c, _ in tuning} == {0, 1}
    assert {c["seed"] for c, _ in confirmation} == {2, 3, 4}
    # equal budget, from the run folders: per norm the same runs, points, seeds and steps
    budget = {}
    for c, s in tuning:
        runs, steps, points = budget.get(c["model.norm"], (0, 0, set()))
        budget[c["model.norm"]] = (runs + 1, steps + s["epochs"] * s["steps_per_epoch"],
                                   points | {(c["train.learning_rate"], c["seed"])})
    assert len(budget) == 3 and len({(r, st, frozenset(p)) for r, st, p in budget.values()}) == 1
    assert budget["batch"][0] == 6
    # confirmation runs only at each norm's selected point (the validation winners)
    assert {(c["model.norm"], c["train.learning_rate"]) for c, _ in confirmation} == {
        ("batch", 0.001), ("layer", 0.003), ("none", 0.001)}
    # the comparison averages the confirmation runs only
    comp = res.comparison
    assert sorted(str(r.path) for r in comp.runs) == sorted(str(m.run_dir) for m in res.confirmation)
    assert all(r.config["role"] == "confirmation" for r in comp.runs) and len(comp.runs) == 9
    text = "\n".join(lines)
    assert "seeds-until: --max-seeds 3 reached" in text
    assert text.index("== selection") < text.index("== confirmation") < text.index("== comparison")
    assert "round: 2 seeds per group (2, 3), 3 groups" in text


def test_a_changed_seed_split_is_refused_in_one_line(tmp_path):
    _tuned(tmp_path)
    cfg = tmp_path / "c.yaml"
    # seed 2 confirmed batch at 0.001: as a tuning seed now, that folder would change phase
    first = tmp_path / "r/smoke_imdb_ln/imdb_rnn-norm=batch-bs=64-learning_rate=0.001-seed=2"
    assert runfolder.read_role(first)["role"] == "confirmation"
    before = sorted(p.name for p in (tmp_path / "r/smoke_imdb_ln").iterdir())
    r = cli("tune", cfg, "--per", PER, "--grid", GRID, "--output", tmp_path / "r", "--tune-seeds", "0,1,2")
    assert r.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "r/smoke_imdb_ln").iterdir()) == before  # refused before creating any
    assert r.output.strip() == (f"Error: {first}: an earlier tune made it as a confirmation run, this one "
                                "wants it as a tuning run (seed 2 changed phase); keep that tune's seeds or tune "
                                "into another --output")


def _fake_cli(done: Path, *args, kill_at=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")])}
    hooks = [f"kill-at={kill_at}"] if kill_at else []
    return subprocess.run([sys.executable, str(HERE / "tunefake.py"), str(done), *hooks, "--", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


# 18 tuning members (3 norms x 3 points x 2 seeds), then 6 confirmation members in the
# first round (seeds 2, 3) and 3 in the second (seed 4): killed as the confirmation
# starts (the selection is made again from the folders) and in its second round
@pytest.mark.parametrize("kill_at", [19, 25], ids=["first-confirmation", "second-round"])
def test_sigkill_of_the_driver_then_a_rerun_trains_nothing_twice(tmp_path, kill_at):
    cfg, out, done = write_config(tmp_path / "c.yaml"), tmp_path / "r", tmp_path / "done.txt"
    args = ["tune", cfg, "--per", PER, "--grid", GRID, "--output", out, "--seeds-until", "1e-9", "--max-seeds", "3",
            "--jobs", "9"]  # the fake trains a member at once: 9 at a time keeps the driver's polling short
    first = _fake_cli(done, *args, kill_at=kill_at)
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    trained = done.read_text().split()
    assert len(trained) == kill_at - 1
    again = _fake_cli(done, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    trained = done.read_text().split()
    assert len(trained) == len(set(trained)) == 27  # every member trained once, over both drivers
    assert "sweep: 18 members, 18 already completed, 0 to run" in again.stdout  # (a kill in tuning: the real test)
    assert again.stdout.count("\n== comparison") == 1 and "seeds-until: --max-seeds 3 reached" in again.stdout


# ----------------------------------------------------------------------------- bad input, one line each


@pytest.mark.parametrize("extra, message", [
    (["--per", "model.norm=batch,none", "--grid", "model.norm=batch,layer"],
     "--per model.norm: --grid also varies model.norm; a key is compared (--per) or tuned (--grid), not both; "
     "drop it from one"),
    (["--per", PER, "--grid", GRID, "--select", "test_accuracy"],
     "--select test_accuracy: a test metric; choosing each norm's point on the test set leaks it into the choice and "
     "makes the tuned comparison optimistic; select on a validation metric: best_val_accuracy, last_val_accuracy"),
    (["--per", PER, "--grid", GRID, "--select", "test_accuracy_best"],
     "--select test_accuracy_best: a test metric; choosing each norm's point on the test set leaks it into the choice "
     "and makes the tuned comparison optimistic; select on a validation metric: best_val_accuracy, last_val_accuracy"),
    (["--per", PER, "--grid", GRID, "--tune-seeds", "0,1", "--confirm-seeds", "1,2,3"],
     "--confirm-seeds 1,2,3: seed 1 is also a tuning seed (--tune-seeds 0,1); their scores chose the point and are "
     "biased upward, so confirmation needs fresh seeds; pick seeds not in --tune-seeds"),
    (["--per", PER, "--grid", "train.learning_rate=0.001"],
     "--grid train.learning_rate=0.001: one grid point; tuning needs at least two to choose between; add values, "
     "e.g. --grid train.learning_rate=0.0003,0.001,0.003"),
    (["--per", PER, "--grid", GRID, "--select", "final_train_loss"],
     "--select final_train_loss: not a validation metric; select on one of: best_val_accuracy, last_val_accuracy"),
    (["--per", "model.norm=batch", "--grid", GRID],
     "--per model.norm=batch: one value; a tune compares at least two, e.g. --per model.norm=batch,layer"),
    (["--per", "model.norm=batch,bogus", "--grid", GRID],
     f"--per model.norm=bogus: model.norm: unknown norm 'bogus'; choose one of: {', '.join(NORMS)}"),
    (["--per", PER, "--grid", "seed=0,1"],
     "--grid seed: seeds are set by --tune-seeds (tuning) and --confirm-seeds (confirmation), not the grid; "
     "drop it from --grid"),
    (["--per", PER], "--grid: nothing to tune; add e.g. --grid train.learning_rate=0.0003,0.001,0.003,0.01"),
    (["--per", PER, "--grid", GRID, "--tune-seeds", "a"], "--tune-seeds a: expected seeds as integers >= 0, e.g. --tune-seeds 0,1"),
    (["--per", PER, "--range", "train.learning_rate=0.0001:0.1:log"],
     "--range train.learning_rate=0.0001:0.1:log: a range is searched by --optuna N; add it, or list values with --grid"),
    (["--per", PER, "--optuna", "4", "--range", "train.learning_rate=0.1:0.01"],
     "--range train.learning_rate=0.1:0.01: needs LOW < HIGH"),
])
def test_bad_input_is_one_line_and_creates_nothing(tmp_path, extra, message):
    cfg = write_config(tmp_path / "c.yaml")
    r = cli("tune", cfg, *extra, "--output", tmp_path / "r")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.strip() == f"Error: {message}"
    assert not (tmp_path / "r").exists()


def test_a_config_with_a_sweep_section_is_refused(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", sweep={"seed": [0, 1]})
    r = cli("tune", cfg, "--per", PER, "--grid", GRID, "--output", tmp_path / "r")
    assert r.output.strip() == (f"Error: {cfg}: has a sweep: section (seed); tune makes its own grid from --per, "
                                "--grid and the seeds; remove the section")


@pytest.mark.parametrize("kw, message", [
    (dict(per="model.norm=batch", grid_items=[GRID]),
     "per model.norm=batch: one value; a tune compares at least two, e.g. per model.norm=batch,layer"),
    (dict(grid_items=[]), "grid_items: nothing to tune; add e.g. grid_items train.learning_rate=0.0003,0.001,0.003,0.01"),
    (dict(grid_items=["seed=0,1"]), "grid_items seed: seeds are set by tune_seeds (tuning) and confirm_seeds "
                                    "(confirmation), not the grid; drop it from grid_items"),
    (dict(select="final_train_loss"),
     "select final_train_loss: not a validation metric; select on one of: best_val_accuracy, last_val_accuracy"),
    (dict(tune_seeds="0,1", confirm_seeds="1,2,3"),
     "confirm_seeds 1,2,3: seed 1 is also a tuning seed (tune_seeds 0,1); their scores chose the point and are "
     "biased upward, so confirmation needs fresh seeds; pick seeds not in tune_seeds"),
    (dict(ranges=["train.learning_rate=0.0001:0.1:log"]),
     "ranges train.learning_rate=0.0001:0.1:log: a range is searched by trials N; add it, or list values with grid_items"),
])
def test_load_spec_errors_name_its_own_parameters(tmp_path, kw, message):
    """The library names load_spec's parameters; the CLI's text for the same input is in
    test_bad_input_is_one_line_and_creates_nothing."""
    cfg = write_config(tmp_path / "c.yaml")
    args = {"per": PER, "grid_items": [GRID], **kw}
    with pytest.raises(NormbenchError) as e:
        tune.load_spec(str(cfg), args.pop("per"), args.pop("grid_items"), output=str(tmp_path / "r"), **args)
    assert str(e.value) == message


def test_a_bad_per_value_found_by_the_sweep_s_check_names_per(tmp_path):
    """A bad data.path among the --per values: config raises it as a ParamError of the
    sweep's `grid`; tune re-raises it as one of its own `per`, which the CLI renders as
    --per (not --grid, the option the user never typed)."""
    import numpy as np

    good, missing = tmp_path / "imdb.npz", tmp_path / "missing.npz"
    x = np.arange(160).reshape(16, 10) % 40 + 1
    np.savez(good, x_train=x, y_train=np.arange(16) % 2, x_test=x, y_test=np.arange(16) % 2)
    cfg = write_config(tmp_path / "c.yaml", data__name="imdb", data__path=str(good), data__subset=None)
    reason = f"data.path: no such file {missing}; point it at a local imdb.npz, or set it to null to download"
    with pytest.raises(NormbenchError) as e:
        tune.load_spec(str(cfg), f"data.path={good},{missing}", [GRID], output=str(tmp_path / "r"))
    assert str(e.value) == f"per data.path={missing}: {reason}"
    r = cli("tune", cfg, "--per", f"data.path={good},{missing}", "--grid", GRID, "--output", tmp_path / "r", "--dry-run")
    assert r.exit_code == 1 and r.output.strip() == f"Error: --per data.path={missing}: {reason}"
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- dry run, compare, plot


def test_dry_run_creates_nothing_then_shows_the_selection(tmp_path):
    cfg, out = write_config(tmp_path / "c.yaml"), tmp_path / "r"
    args = ["tune", cfg, "--per", PER, "--grid", GRID, "--output", out, "--dry-run"]
    r = cli(*args)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == "selection and confirmation: after the tuning runs (0 of 18 finished)"
    assert r.output.count(" todo  tuning ") == 18 and not out.exists()
    spec = tune.load_spec(str(cfg), PER, [GRID], output=str(out))
    fake = FakeTrainer()
    for m in spec.tuning_members():
        fake.submit(m, 1)
    r = cli(*args)
    # no --select: the validation counterpart of the verdict's test_accuracy (the last epoch's weights)
    assert "  model.norm=layer: learning_rate=0.003 (last_val_accuracy 0.7810)" in r.output
    assert r.output.count(" todo  confirmation ") == 9  # 3 norms x the default 3 fresh seeds
    assert r.output.count(f"{out}/smoke_imdb_ln/imdb_rnn-norm=layer-bs=64-learning_rate=0.003-seed=") == 2 + 3
    assert not list(out.rglob("*seed=2"))


def test_dry_run_of_a_finished_tune_shows_its_confirmation_rounds(tmp_path):
    _tuned(tmp_path)
    r = cli("tune", tmp_path / "c.yaml", "--per", PER, "--grid", GRID, "--output", tmp_path / "r",
            "--seeds-until", "1e-9", "--max-seeds", "3", "--dry-run")
    assert r.exit_code == 0, r.output
    assert ("seeds-until 1e-09 on test_accuracy, at most 3 seeds, 3 groups: 3 seeds finished in every group "
            "(2, 3, 4)") in r.output
    assert r.output.count(" completed  tuning ") == 18
    assert r.output.splitlines()[-1] == "stops at 3 seeds: --max-seeds reached"


def test_compare_tells_the_roles_apart(tmp_path):
    from normbench.analysis import results
    from normbench.analysis.runs import load_runs

    _tuned(tmp_path)
    runs = load_runs(tmp_path / "r")
    comp = results.compare(runs)
    assert "role" in comp.varying  # tuning and confirmation runs at one point never share a group
    for _, g in comp.groups.iterrows():
        roles = {next(r for r in runs if str(r.path) == p).config["role"] for p in g["runs"]}
        assert len(roles) == 1
    r = cli("compare", tmp_path / "r", "--role", "confirmation", "--format", "json")
    assert r.exit_code == 0, r.output
    groups = json.loads(r.output)["groups"]
    assert sorted((g["model.norm"], g["train.learning_rate"], g["n"]) for g in groups) == [
        ("batch", "0.001", 3), ("layer", "0.003", 3), ("none", "0.001", 3)]
    plain = tmp_path / "plain"
    (m,) = sw.load_sweep(str(tmp_path / "c.yaml"), grid_items=["seed=0"], output=str(plain))
    runfolder.write_summary(m.run_dir, {"status": "completed", "test_accuracy": 0.5})
    r = cli("compare", plain, "--role", "tuning")
    assert r.output.strip() == ("Error: --role tuning: no tuning runs in these folders; these runs have no role "
                                "(normbench tune records one)")


def test_plot_vs_stars_each_norms_selected_point(tmp_path):
    from normbench.present import plots
    from normbench.analysis.runs import load_runs

    _tuned(tmp_path)
    res = plots.plot_vs(load_runs(tmp_path / "r"), "train.learning_rate", tmp_path / "lr.png")
    assert (res.lines, res.runs, res.selected, res.confirmed) == (3, 18, 3, 3)  # tuning curves; marks
    assert (tmp_path / "lr.png").stat().st_size > 0
    r = cli("plot", tmp_path / "r", "--vs", "train.learning_rate", "-o", tmp_path / "b.png")
    assert r.output.strip() == (f"wrote {tmp_path / 'b.png'} (3 lines, 3 selected points starred, "
                                "3 confirmation points, 18 runs)")


# ----------------------------------------------------------------------------- real training


class InProcess(FakeTrainer):
    """Trains each member for real, in this process (no per-member TensorFlow start-up):
    the path `normbench run --resume` takes, through real run folders."""

    def submit(self, member, threads):
        from normbench.training import train

        self.submitted.append(member.run_id)
        train.resume_run(member.run_dir, verbose=0, threads=threads)
        return member


def test_a_real_tiny_tune_trains_once_and_a_rerun_trains_nothing(tmp_path):
    """Two norms x two rates on one tuning seed, one confirmation seed, trained for real;
    then the same tune again (SIGKILL of a driver: the fake-trainer tests above)."""
    cfg = write_config(tmp_path / "c.yaml", data__subset={"train": 160, "test": 64}, data__num_words=500, data__maxlen=20,
                       train__epochs=1)  # a tiny vocabulary and short reviews: a second per run
    spec = tune.load_spec(str(cfg), "model.norm=batch,none", ["train.learning_rate=0.001,0.01"], tune_seeds="0",
                          confirm_seeds="1", output=str(tmp_path / "r"))
    first, lines = InProcess(), []
    res = tune.run_tune(spec, executor=first, echo=lines.append)
    assert res.failures == [] and len(first.submitted) == 6
    found = list(_folders(tmp_path / "r"))
    assert sorted(role for role, _, _ in found) == ["confirmation"] * 2 + ["tuning"] * 4
    assert all(s["status"] == "completed" and isinstance(s["best_val_accuracy"], float) for _, _, s in found)
    # the points confirmed are the ones the real validation scores chose
    sel = tune.selection_of(spec)
    assert {(c["model.norm"], c["train.learning_rate"]) for role, c, _ in found if role == "confirmation"} == {
        (ch.per, ch.cell.point["train.learning_rate"]) for ch in sel.choices}
    assert len(res.comparison.runs) == 2
    again = InProcess()
    lines = []
    tune.run_tune(spec, executor=again, echo=lines.append)
    assert again.submitted == []
    assert "sweep: 4 members, 4 already completed, 0 to run, 1 at a time (2 threads each, fake)" in lines or \
        any(ln.startswith("sweep: 4 members, 4 already completed, 0 to run") for ln in lines)
    assert any(ln.startswith("sweep: 2 members, 2 already completed, 0 to run") for ln in lines)


# ----------------------------------------------------------------------------- Optuna


RANGE, PER2 = "train.learning_rate=0.0001:0.1:log", "model.norm=batch,none"


def _optuna_spec(tmp_path, out="r", trials=3):
    pytest.importorskip("optuna")
    cfg = write_config(tmp_path / "c.yaml")
    return tune.load_spec(str(cfg), PER2, [], output=str(tmp_path / out), trials=trials, ranges=[RANGE])


def test_optuna_gives_every_norm_the_same_trials_and_selects_on_validation(tmp_path):
    import optuna

    spec = _optuna_spec(tmp_path)
    res = tune.run_tune(spec, executor=FakeTrainer(), jobs=6, echo=lambda s: None)
    assert res.failures == []
    storage = f"sqlite:///{tmp_path / 'r/smoke_imdb_ln/optuna.db'}"
    for norm in ("batch", "none"):
        study = optuna.load_study(study_name=f"model.norm={norm}", storage=storage)
        assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    found = list(_folders(tmp_path / "r"))
    tuning = [(c, s) for role, c, s in found if role == "tuning"]
    per_norm = {}
    for c, s in tuning:
        per_norm.setdefault(c["model.norm"], []).append((c["train.learning_rate"], c["seed"], s["best_val_accuracy"]))
    assert {n: len(v) for n, v in per_norm.items()} == {"batch": 6, "none": 6}  # 3 trials x 2 seeds each
    for norm, rows in per_norm.items():  # the selected point: the best validation mean among its trials
        means = {lr: sum(v for x, _, v in rows if x == lr) / 2 for lr, _, _ in rows}
        confirmed = {c["train.learning_rate"] for role, c, _ in found if role == "confirmation" and c["model.norm"] == norm}
        assert confirmed == {max(means, key=means.get)}
    assert {c["seed"] for role, c, _ in found if role == "confirmation"} == {2, 3, 4}


def test_optuna_search_resumes_after_sigkill_as_if_never_stopped(tmp_path):
    pytest.importorskip("optuna")
    cfg, done = write_config(tmp_path / "c.yaml"), tmp_path / "done.txt"
    args = ["tune", cfg, "--per", PER2, "--optuna", "3", "--range", RANGE, "--output", tmp_path / "r", "--jobs", "6"]
    # trial 1 is 4 members (2 norms x 2 seeds); killed at the 6th: trial 2 asked, half-trained
    first = _fake_cli(done, *args, kill_at=6)
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    again = _fake_cli(done, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    trained = done.read_text().split()
    assert len(trained) == len(set(trained)) == 2 * 3 * 2 + 2 * 3  # the search, then 3 confirmation seeds
    # the same trials as a search that was never stopped
    whole = _optuna_spec(tmp_path, "whole")
    tune.run_tune(whole, executor=FakeTrainer(), jobs=6, echo=lambda s: None)
    resumed = _optuna_spec(tmp_path, "r")
    assert tune.search_pairs(resumed) == tune.search_pairs(whole)
    assert len(tune.search_pairs(whole)) == 6


def test_a_grid_over_several_keys_tunes_their_product(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    spec = tune.load_spec(str(cfg), "model.norm=batch,none", ["train.learning_rate=0.001,0.01",
                                                             "train.optimizer=adam,rmsprop"],
                          output=str(tmp_path / "r"), confirm_seeds="2")
    lines = []
    res = tune.run_tune(spec, executor=FakeTrainer(), jobs=8, echo=lines.append)
    assert res.failures == [] and len(spec.tuning_members(create=False)) == 2 * 4 * 2
    # the fake's scores ignore the optimizer: a tie, kept in grid order, and no edge for a name
    assert ("  model.norm=batch: learning_rate=0.001, optimizer=adam (last_val_accuracy 0.7910); tie with "
            "learning_rate=0.001, optimizer=rmsprop (same mean): the first in grid order is kept; at the grid's edge: "
            "the smallest train.learning_rate tried (0.001), so the best may lie beyond it: widen the grid") in lines
    assert sorted(m.run_id for m in res.confirmation) == [
        "imdb_rnn-norm=batch-bs=64-learning_rate=0.001-optimizer=adam-seed=2",
        "imdb_rnn-norm=none-bs=64-learning_rate=0.001-optimizer=adam-seed=2"]


def test_confirmation_runs_of_an_earlier_selection_are_named_not_compared(tmp_path):
    _tuned(tmp_path)
    # widen the grid: a new point beats the old choices, so the confirmation moves
    cfg = tmp_path / "c.yaml"
    spec = tune.load_spec(str(cfg), PER, ["train.learning_rate=0.001,0.002,0.003,0.01"], output=str(tmp_path / "r"),
                          target=1e-9, max_seeds=3)
    import tunefake

    lines = []
    old = dict(tunefake.VAL)
    tunefake.VAL[("layer", 0.002)] = 0.95
    try:
        res = tune.run_tune(spec, executor=FakeTrainer(), jobs=9, echo=lines.append)
    finally:
        tunefake.VAL.clear()
        tunefake.VAL.update(old)
    # layer and none (the fake's smooth score off the old grid) move to 0.002, batch stays at 0.001
    assert {(m.config.model.norm, m.config.train.learning_rate) for m in res.confirmation} == {
        ("batch", 0.001), ("layer", 0.002), ("none", 0.002)}
    assert {(r.config["model.norm"], r.config["train.learning_rate"]) for r in res.comparison.runs} == {
        ("batch", 0.001), ("layer", 0.002), ("none", 0.002)}
    note = next(ln for ln in lines if ln.startswith("note: "))
    assert note.startswith(f"note: 6 confirmation runs in {tmp_path / 'r/smoke_imdb_ln'} at points an earlier selection")


# ----------------------------------------------------------------------------- one endpoint, fresh seeds (issue 29)


@pytest.mark.parametrize("metric, eval_, select", [
    ("test_accuracy", "last", "last_val_accuracy"), ("test_accuracy", "best", "best_val_accuracy"),
    ("test_accuracy_last", "best", "last_val_accuracy"), ("test_accuracy_best", "last", "best_val_accuracy"),
    ("test_loss_best", "last", "best_val_accuracy"), ("ms_per_step", "last", "last_val_accuracy")])
def test_select_defaults_to_the_validation_counterpart_of_the_metric(tmp_path, metric, eval_, select):
    cfg = write_config(tmp_path / "c.yaml")
    spec = tune.load_spec(str(cfg), PER, [GRID], ["train.eval=" + eval_], output=str(tmp_path / "r"), metric=metric)
    assert spec.select == select
    assert f"selected on {select};" in tune.describe(spec)


def test_a_selection_on_another_endpoint_than_the_verdict_is_named(tmp_path):
    spec = _spec(tmp_path)  # --select best_val_accuracy, the verdict test_accuracy of the last epoch's weights
    for m in spec.tuning_members():
        FakeTrainer().submit(m, 1)
    lines = tune.format_selection(tune.selection_of(spec))
    assert ("  note: endpoints differ: selected on best_val_accuracy (the best epoch) while the verdict reads "
            "test_accuracy (the last epoch's weights); a point chosen on one endpoint need not be best on the other: "
            "--select last_val_accuracy matches --metric") in lines
    (tmp_path / "b").mkdir()
    same = _spec(tmp_path / "b", select="last_val_accuracy")
    for m in same.tuning_members():
        FakeTrainer().submit(m, 1)
    assert not [ln for ln in tune.format_selection(tune.selection_of(same)) if "endpoints differ" in ln]


def test_confirmation_seeds_are_fresh_against_every_run_of_the_point_it_is_shown(tmp_path):
    """A fixed-rate study already ran layer at 0.003 (a point the tune selects) on seeds
    0-3, in another folder: the confirmation skips seeds 2 and 3 for every norm (so
    they still pair by seed), and says so; given in --confirm-seeds, they are refused."""
    from normbench.schema.config import dump_yaml

    fixed = tmp_path / "fixed"
    (tmp_path / "probe").mkdir()
    probe = _spec(tmp_path / "probe", select="last_val_accuracy")
    for seed in range(4):  # layer at 0.003 as the tune's members train it, under another name and folder
        m, = probe.members_at([("layer", {"train.learning_rate": 0.003})], create=False, seeds=[seed])
        d = runfolder.run_path(fixed, "fixed_study", f"seed{seed}")
        d.mkdir(parents=True)
        runfolder.write_config(d, dump_yaml(m.config).replace(f"name: {m.config.name}", "name: fixed_study"))
    spec, res, lines = _tuned(tmp_path, select="last_val_accuracy", against=[str(fixed)])
    assert spec.confirm_seeds == [4, 5, 6]
    assert sorted({m.config.seed for m in res.confirmation}) == [4, 5, 6]
    assert any(ln.startswith("confirmation seeds: 4, 5, 6; seeds 2, 3 skipped: already run at a selected point (e.g. "
                             f"{fixed / 'fixed_study' / 'seed2'})") for ln in lines), lines
    # without --against the fixed study is not shown: the first fresh seeds are 2-4
    (tmp_path / "alone").mkdir()
    spec2, _, _ = _tuned(tmp_path / "alone", select="last_val_accuracy")
    assert spec2.confirm_seeds == [2, 3, 4]
    # seeds given with --confirm-seeds that ran already are refused, naming the run
    (tmp_path / "given").mkdir()
    spec3 = _spec(tmp_path / "given", select="last_val_accuracy", confirm_seeds="3,4", against=[str(fixed)])
    for m in spec3.tuning_members():
        FakeTrainer().submit(m, 1)
    with pytest.raises(NormbenchError, match=r"^confirm_seeds: seed 3 already ran at a selected point \("
                                             + str(fixed / "fixed_study" / "seed3").replace(".", r"\.") + r"\); that "
                                             r"run is not a fresh draw"):
        tune.confirm_plan(tune.selection_of(spec3))


def test_against_a_missing_folder_is_one_line(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    r = cli("tune", cfg, "--per", PER, "--grid", GRID, "--output", tmp_path / "r", "--against", tmp_path / "nope",
            "--dry-run")
    assert r.exit_code == 1 and r.output == (f"Error: --against {tmp_path / 'nope'}: no such folder; pass a folder of "
                                             f"runs the confirmation seeds must be fresh against, e.g. --against results/\n")
    assert not (tmp_path / "r").exists()
