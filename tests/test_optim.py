"""Optimizers, learning-rate schedules, lr_scaling and the steps budget: history.csv's
learning rate per epoch matches the formulas in normbench/build/optim.py (written out again
here, independently), the budget trains the right epochs and steps, bad values give
one line, and SGD with momentum learns."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from conftest import REPO, assert_one_line_error, cli, history_rows, start_run, wait_rows, write_config
from normbench.build.optim import BUDGETS, LR_SCALINGS, SCHEDULES

# 160 examples, validation_split 0.2 -> n = 128 training examples; batch 32 -> S = 4 steps per epoch
N_FIT, BATCH, S = 128, 32, 4
BASE = ["data.subset={train: 160, test: 64}", f"train.batch_size={BATCH}", "train.epochs=4",
        "train.optimizer=sgd", "train.learning_rate=0.01"]


def _run(out, *sets, config="configs/smoke/imdb_none.yaml"):
    args = sum((["--set", s] for s in (*BASE, *sets)), [])
    r = cli("run", REPO / config, "-q", "--set", f"output.dir={out}", *args)
    assert r.exit_code == 0, r.output
    run_dir = r.output.strip().splitlines()[-1].rsplit(" -> ", 1)[1]
    from pathlib import Path

    run_dir = Path(run_dir)
    return pd.read_csv(run_dir / "history.csv"), json.loads((run_dir / "summary.json").read_text())


def _cos(i, w, t):
    return 0.5 * (1 + math.cos(math.pi * max(0, i - w) / max(1, t - w)))


# case -> (extra --set values, expected learning rate of epoch k = 1..E, i.e. of step i = k*S - 1)
PEAK = 0.01
T = 4 * S
SCHEDULE_CASES = {
    "constant": ([], lambda i: PEAK),
    "cosine": (["train.schedule=cosine"], lambda i: PEAK * _cos(i, 0, T)),
    # warm-up over 1.5 epochs = 6 steps: (i+1)/6 until step 5, then cosine over the other 10
    "cosine-warmup": (["train.schedule=cosine", "train.warmup_epochs=1.5"],
                      lambda i: PEAK * min(1, (i + 1) / 6) * _cos(i, 6, T)),
    "constant-warmup": (["train.warmup_epochs=2.5"], lambda i: PEAK * min(1, (i + 1) / 10)),
    # epochs 1-2 at the peak, 3-4 at half of it
    "step": (["train.schedule=step", "train.step_epochs=2", "train.step_factor=0.5"],
             lambda i: PEAK * 0.5 ** ((i // S) // 2)),
    "step-default-factor": (["train.schedule=step", "train.step_epochs=3"], lambda i: PEAK * 0.1 ** ((i // S) // 3)),
    "linear-scaling": (["train.lr_scaling=linear", "train.base_batch_size=128"], lambda i: PEAK * BATCH / 128),
    "sqrt-scaling": (["train.lr_scaling=sqrt", "train.base_batch_size=8", "train.schedule=cosine"],
                     lambda i: PEAK * math.sqrt(BATCH / 8) * _cos(i, 0, T)),
}


@pytest.mark.parametrize("case", list(SCHEDULE_CASES))
def test_history_learning_rate_follows_the_schedule(out, case):
    sets, rate = SCHEDULE_CASES[case]
    h, s = _run(out, *sets)
    expected = [rate(k * S - 1) for k in range(1, 5)]
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert list(h["learning_rate"]) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert s["steps_per_epoch"] == S and s["optimizer_steps"] == 4 * S


@pytest.mark.skipif(not __import__("importlib").util.find_spec("jax"), reason="jax not installed (pip install '.[jax]')")
def test_schedule_on_jax(tmp_path):
    """The same schedule object on the JAX backend (its own process, as `normbench run`)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "r"
    sets, rate = SCHEDULE_CASES["cosine-warmup"]
    args = sum((["--set", s] for s in (*BASE, *sets, "train.backend=jax", f"output.dir={out}")), [])
    r = subprocess.run([sys.executable, "-m", "normbench", "run", str(REPO / "configs/smoke/imdb_none.yaml"), "-q", *args],
                       capture_output=True, text=True, env=dict(os.environ, KERAS_BACKEND="tensorflow"), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (history,) = out.glob("*/*/history.csv")
    h = pd.read_csv(history)
    assert list(h["learning_rate"]) == pytest.approx([rate(k * S - 1) for k in range(1, 5)], rel=1e-5, abs=1e-9)


def test_sqrt_and_linear_peaks():
    """The peak itself, without training: linear b/B, sqrt of it, none 1."""
    from normbench.build import optim
    from normbench.schema.config import from_dict

    raw = {"name": "x", "data": {"name": "synthetic_imdb", "subset": {"train": 160, "test": 64}},
           "model": {"arch": "imdb_rnn", "norm": "none"},
           "train": {"batch_size": 32, "learning_rate": 0.1}}
    p = optim.plan(from_dict(raw), 160)
    assert (p.n_fit, p.steps_per_epoch, p.epochs, p.total_steps, p.peak_learning_rate) == (128, 4, 5, 20, 0.1)
    for scaling, factor in (("linear", 0.25), ("sqrt", 0.5)):
        raw["train"].update(lr_scaling=scaling, base_batch_size=128)
        assert optim.plan(from_dict(raw), 160).peak_learning_rate == pytest.approx(0.1 * factor)


@pytest.mark.parametrize("base,epochs", [(16, 6), (24, 5), (48, 2), (2048, 1)])
def test_steps_budget_trains_the_steps_of_the_base_batch_size(out, base, epochs):
    """train.epochs 3 at base batch B take 3 * ceil(128 / B) steps; at batch 32 (4 steps an
    epoch) that is E = floor(3 * ceil(128 / B) / 4 + 1/2) whole epochs, at least 1:
    B 16 -> 24 steps = 6 epochs; B 24 -> 18 steps -> 4.5 -> 5 epochs (half rounds up);
    B 48 -> 9 steps -> 2.25 -> 2 epochs; B 2048 -> 3 steps -> 0.75 -> 1 epoch.
    The cosine schedule spans E epochs: its logged rate at each epoch's last step shows
    that Keras took exactly S steps an epoch (the rate is read from the step counter)."""
    h, s = _run(out, "train.epochs=3", "train.budget=steps", f"train.base_batch_size={base}", "train.schedule=cosine")
    assert list(h["epoch"]) == list(range(1, epochs + 1))
    assert s["epochs"] == s["epochs_completed"] == epochs
    assert s["optimizer_steps"] == epochs * S
    t = epochs * S
    assert list(h["learning_rate"]) == pytest.approx([PEAK * _cos(k * S - 1, 0, t) for k in range(1, epochs + 1)],
                                                     rel=1e-5, abs=1e-9)


def test_samples_budget_ignores_the_batch_size(out):
    h, s = _run(out, "train.epochs=2", "train.batch_size=16")
    assert list(h["epoch"]) == [1, 2] and s["optimizer_steps"] == 2 * 8 and s["epochs"] == 2


def test_sgd_with_momentum_learns(out):
    """The CIFAR-10 CNN smoke config without norm (chance 0.1) trained with SGD + Nesterov
    momentum 0.9 at 0.01 instead of Adam, 2 epochs on 640 images: well above chance on
    the test split (measured 1.00; at learning rate 1e-5 it stays near chance)."""
    r = cli("run", REPO / "configs/smoke/cifar10_none.yaml", "-q", "--set", f"output.dir={out}",
            "--set", "train.optimizer=sgd", "--set", "train.momentum=0.9", "--set", "train.nesterov=true",
            "--set", "train.learning_rate=0.01", "--set", "train.epochs=2", "--set", "data.subset={train: 800, test: 200}")
    assert r.exit_code == 0, r.output
    from pathlib import Path

    run_dir = Path(r.output.strip().splitlines()[-1].rsplit(" -> ", 1)[1])
    s = json.loads((run_dir / "summary.json").read_text())
    h = pd.read_csv(run_dir / "history.csv")
    assert s["test_accuracy"] > 0.6
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]


def test_optimizer_options_reach_keras():
    """momentum/nesterov/weight_decay end up on the Keras optimizer; null = Keras' default."""
    from normbench.build import optim
    from normbench.schema.config import from_dict

    def built(**train):
        raw = {"name": "x", "data": {"name": "synthetic_imdb"}, "model": {"arch": "imdb_rnn", "norm": "none"},
               "train": train}
        cfg = from_dict(raw)
        return optim.build(cfg, optim.plan(cfg, 160))

    o = built(optimizer="sgd", momentum=0.9, nesterov=True)
    assert (type(o).__name__, o.momentum, o.nesterov) == ("SGD", pytest.approx(0.9), True)
    o = built(optimizer="sgd")
    assert (o.momentum, o.nesterov) == (0.0, False)
    assert built(optimizer="adamw", weight_decay=0.01).weight_decay == pytest.approx(0.01)
    assert built(optimizer="adamw").weight_decay == pytest.approx(0.004)
    assert built(optimizer="adam").weight_decay is None
    assert built(optimizer="sgd").weight_decay is None  # SGD decays only when asked (Keras' default)
    assert built(optimizer="sgd", momentum=0.9, weight_decay=5e-4).weight_decay == pytest.approx(5e-4)


# (case id, --set values on the IMDB smoke config (Adam), expected text after the `--set ...: `)
ERRORS = [
    ("momentum-on-adam", ["train.momentum=0.9"],
     "train.momentum: applies only to optimizer sgd, not adam; remove it or set train.optimizer: sgd"),
    ("nesterov-on-rmsprop", ["train.optimizer=rmsprop", "train.nesterov=true"],
     "train.nesterov: applies only to optimizer sgd, not rmsprop; remove it or set train.optimizer: sgd"),
    ("weight-decay-on-rmsprop", ["train.optimizer=rmsprop", "train.weight_decay=0.01"],
     "train.weight_decay: applies only to optimizer adamw, sgd, not rmsprop; remove it or set train.optimizer: adamw"),
    ("momentum-too-big", ["train.optimizer=sgd", "train.momentum=1.0"],
     "train.momentum: must be >= 0 and < 1, got 1.0; e.g. 0.9"),
    ("nesterov-without-momentum", ["train.optimizer=sgd", "train.nesterov=true"],
     "train.nesterov: true needs train.momentum > 0 (with momentum 0 it is plain SGD); set train.momentum, e.g. 0.9"),
    ("negative-weight-decay", ["train.optimizer=adamw", "train.weight_decay=-0.1"],
     "train.weight_decay: must be >= 0, got -0.1"),
    ("unknown-schedule", ["train.schedule=linear"],
     f"train.schedule: unknown schedule 'linear'; choose one of: {', '.join(SCHEDULES)}"),
    ("step-epochs-on-cosine", ["train.schedule=cosine", "train.step_epochs=2"],
     "train.step_epochs: applies only to schedule step, not cosine; remove it or set train.schedule: step"),
    ("step-factor-on-constant", ["train.step_factor=0.5"],
     "train.step_factor: applies only to schedule step, not constant; remove it or set train.schedule: step"),
    ("step-without-epochs", ["train.schedule=step"],
     "train.step_epochs: missing; schedule step needs it (decay every this many epochs), e.g. 10"),
    ("step-epochs-zero", ["train.schedule=step", "train.step_epochs=0"], "train.step_epochs: must be >= 1, got 0"),
    ("step-factor-one", ["train.schedule=step", "train.step_epochs=1", "train.step_factor=1"],
     "train.step_factor: must be > 0 and < 1, got 1.0; e.g. 0.1"),
    ("warmup-too-long", ["train.warmup_epochs=3"],
     "train.warmup_epochs: must be >= 0 and < train.epochs (3), got 3.0"),
    ("warmup-negative", ["train.warmup_epochs=-1"],
     "train.warmup_epochs: must be >= 0 and < train.epochs (3), got -1.0"),
    ("unknown-scaling", ["train.lr_scaling=square"],
     f"train.lr_scaling: unknown learning-rate scaling 'square'; choose one of: {', '.join(LR_SCALINGS)}"),
    ("unknown-budget", ["train.budget=epochs"],
     f"train.budget: unknown budget 'epochs'; choose one of: {', '.join(BUDGETS)}"),
    ("scaling-without-base", ["train.lr_scaling=linear"],
     "train.base_batch_size: missing; train.lr_scaling linear needs the batch size that train.learning_rate "
     "and train.epochs refer to, e.g. 64"),
    ("budget-without-base", ["train.budget=steps"],
     "train.base_batch_size: missing; train.budget steps needs the batch size"),
    ("base-without-use", ["train.base_batch_size=64"],
     "train.base_batch_size: has no effect with train.lr_scaling none and train.budget samples; "
     "remove it, or set train.lr_scaling (linear, sqrt) or train.budget: steps"),
    ("base-zero", ["train.budget=steps", "train.base_batch_size=0"], "train.base_batch_size: must be >= 1, got 0"),
]


@pytest.mark.parametrize("case,sets,expected", ERRORS, ids=[c[0] for c in ERRORS])
def test_bad_values_give_one_line(out, case, sets, expected):
    args = sum((["--set", s] for s in sets), [])
    r = cli("run", REPO / "configs/smoke/imdb_none.yaml", "--set", f"output.dir={out}", *args)
    assert_one_line_error(r, expected, out)
    assert not out.exists()  # checked before any folder is made


def test_bad_value_in_a_file_names_the_file(tmp_path, out):
    path = write_config(tmp_path / "bad.yaml", train__optimizer="adam", train__momentum=0.9)
    r = cli("run", path, "--set", f"output.dir={out}")
    assert_one_line_error(r, f"{path}: train.momentum: applies only to optimizer sgd, not adam", out)


def test_resumed_run_continues_the_schedule(tmp_path):
    """SIGTERM after epoch 2 (so epoch 1's backup exists), then --resume: the backup
    restores the optimizer's step counter, so the later epochs continue the cosine
    schedule instead of restarting it (1,600 examples at batch 64: S = 25, T = 125)."""
    import signal

    out = tmp_path / "r"
    proc = start_run(REPO / "configs/smoke/imdb_none.yaml", out, "--set", "train.epochs=5",
                  "--set", "train.schedule=cosine", "--set", "train.optimizer=sgd", "--set", "train.learning_rate=0.01")
    run_dir = wait_rows(out, 2, proc)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert (run_dir / "backup" / "latest.weights.h5").exists() and len(history_rows(run_dir)) < 5
    r = cli("run", "--resume", run_dir, "-q")
    assert r.exit_code == 0, r.output
    rates = [float(row["learning_rate"]) for row in history_rows(run_dir)]
    assert rates == pytest.approx([0.01 * _cos(k * 25 - 1, 0, 125) for k in range(1, 6)], rel=1e-5, abs=1e-9)


def test_lr_tolerance_study_lists_its_45_members(tmp_path):
    """configs/study/cifar10_lr_tolerance.yaml: 5 rates x 3 norms x 3 seeds, SGD + momentum 0.9."""
    import itertools
    import re

    # data.path=null: the lossless subset lives outside the repository (validate checks it exists)
    r = cli("sweep", REPO / "configs/study/cifar10_lr_tolerance.yaml", "--dry-run", "--output", tmp_path / "r",
            "--set", "data.path=null")
    assert r.exit_code == 0, r.output
    ids = re.findall(r"todo\s+\S+/(cifar10_cnn-\S+)", r.output)
    expected = {f"cifar10_cnn-norm={n}-bs=64-learning_rate={lr}-seed={s}"
                for s, lr, n in itertools.product([0, 1, 2], [0.003, 0.01, 0.03, 0.1, 0.3], ["batch", "layer", "none"])}
    assert len(ids) == 45 and set(ids) == expected
    from normbench.schema.config import load_config

    t = load_config(REPO / "configs/study/cifar10_lr_tolerance.yaml", ["data.path=null"]).train
    assert (t.optimizer, t.momentum, t.nesterov, t.schedule, t.budget) == ("sgd", 0.9, False, "constant", "samples")


def test_smoke_keeps_the_warmup_share(tmp_path):
    """--smoke trains 1 epoch: a 2-of-10-epoch warm-up becomes 0.2 of it (not an error)."""
    import yaml

    cfg = write_config(tmp_path / "c.yaml", train__epochs=10, train__warmup_epochs=2)
    r = cli("validate", cfg, "--smoke", "--no-model")
    assert r.exit_code == 0, r.output
    train = yaml.safe_load(r.output.split("# data:")[0])["train"]
    assert (train["epochs"], train["warmup_epochs"]) == (1, 0.2)
