"""Step time: normbench's training path against the tutorial's plain Keras script.

For each model x norm it times, alternately and each in a fresh subprocess,
  plain      the tutorial's script: a keras.Sequential built inline, compile("adam"),
             model.fit(x, y, validation_split=0.2, verbose=0) on NumPy arrays;
  normbench  normbench.training.train.run(cfg, verbose=0): the real fit path with its callbacks
             (EpochLog, TerminateOnNaN, BackupAndRestore), output to a temp dir;
on the same synthetic arrays (normbench's synthetic_imdb / synthetic_cifar10: IMDB-shaped
int token ids, 200 tokens, vocabulary 10,000, 2 classes; CIFAR-shaped 32x32x3 uint8
images, 10 classes, which the plain script scales to float32 [0, 1] up front as the
tutorial does, and normbench per batch in its model's first layer, to the same values),
the same seed and batch size 64.

ms/step is the best (minimum) over epochs 2..E of (epoch time - validation time) / steps,
the first (tracing/compile) epoch excluded. For normbench the per-epoch times are its own
EpochLog's (the figures behind summary.json's `ms_per_step`, which is their median); for
the plain script a callback that does the same with no per-batch work. The best epoch,
not the median: on this shared VM single epochs sporadically take twice as long (another
tenant, not the code: it hits both paths alike), and with 3 timed epochs one such epoch
moves a median by up to 50 %. The medians are in the CSV too (ms_per_step_median).

Also printed: peak RSS of each child, time from process start to the end of epoch 1,
an estimate of a realistic run's time to the end of training (REALISTIC below) from the
measured setup, compile overhead, ms/step and validation ms/step, `normbench --help`
start-up, and the cost of normbench's callbacks measured directly (per batch and per
epoch, including the BackupAndRestore save, which falls outside ms/step's window).

Speed options are variants too: normbench+unroll (model.unroll: true), normbench+jit
(train.jit_compile: true), plain+tfdata (an explicit tf.data pipeline), plain+jax and
normbench+jax (train.backend: jax; plain+jax sets KERAS_BACKEND=jax; both need
jax: pip install ".[jax]", or a folder given with --jax-path).

    python benchmarks/step_time.py                       # the default comparison
    python benchmarks/step_time.py --quick               # a fast, noisy check
    python benchmarks/step_time.py --models imdb_rnn --variants normbench,normbench+unroll
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness  # benchmarks/harness.py: python benchmarks/x.py puts benchmarks/ first on sys.path
from plain_models import tutorial_model  # benchmarks/plain_models.py

HERE = Path(__file__).resolve()
MODELS = ("imdb_rnn", "cifar10_cnn", "imdb_transformer")
TEXT = ("imdb_rnn", "imdb_transformer")  # the models that read IMDB token ids
NORMS = ("batch", "layer")
BASES = ("plain", "normbench")
OPTIONS = ("unroll", "jit", "tfdata", "jax")
VALIDATION_SPLIT = 0.2
# what a real run looks like, for the end-to-end estimate: (epochs, fit steps, val steps)
REALISTIC = {
    "imdb_rnn": (5, math.ceil(20000 / 64), math.ceil(5000 / 64)),  # tutorial: 25,000 train, 5 epochs
    "cifar10_cnn": (10, math.ceil(40000 / 64), math.ceil(10000 / 64)),  # tutorial: 50,000 train, 10 epochs
    "imdb_transformer": (3, math.ceil(20000 / 64), math.ceil(5000 / 64)),  # configs/imdb_transformer_*.yaml: 3 epochs
}


# ============================================================================ child side


def _data(spec):
    """The synthetic arrays the plain script trains on: normbench's generator with the
    config the normbench variant uses, so both see identical data."""
    from normbench.schema.config import DataConfig, Subset
    from normbench.build.data import load_data

    name = "synthetic_imdb" if spec["model"] in TEXT else "synthetic_cifar10"
    cfg = DataConfig(name=name, subset=Subset(spec["n_train"], spec["n_test"]))
    data = load_data(cfg, spec["seed"])
    if data.x_train.dtype == "uint8":  # the tutorial's scaling: x_train / 255.0 (normbench's stay uint8)
        data.x_train, data.x_test = data.x_train.astype("float32") / 255.0, data.x_test.astype("float32") / 255.0
    return data


def _step_timer(spawn_t):
    """The plain script's timing callback: epoch time minus validation time, from
    epoch/test hooks only (no per-batch work, so Keras' batch dispatch is untouched)."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch_s, self.train_s, self.first_end, self.logs = [], [], None, {}

        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.val = time.perf_counter(), 0.0

        def _sync(self):
            # JAX dispatches steps asynchronously: wait for the last step's weights, or
            # its compute would be counted as validation time (a no-op wait under TF)
            keras.ops.convert_to_numpy(self.model.trainable_variables[-1])

        def on_test_begin(self, logs=None):
            self._sync()
            self.tv = time.perf_counter()

        def on_test_end(self, logs=None):
            self.val += time.perf_counter() - self.tv

        def on_epoch_end(self, epoch, logs=None):
            self._sync()
            s = time.perf_counter() - self.t0
            self.epoch_s.append(s)
            self.train_s.append(s - self.val)
            if self.first_end is None:
                self.first_end = time.time() - spawn_t
            self.logs = dict(logs or {})

    return StepTimer()


def _timings(epoch_s, train_s, steps):
    """The per-run figures, computed alike for both paths from per-epoch seconds (whole
    epoch, and epoch minus validation); epoch 1 (tracing) is not timed."""
    timed = train_s[1:] or train_s
    val_s = [e - t for e, t in zip(epoch_s, train_s)]
    return {
        "ms_per_step": min(timed) * 1000 / steps,
        "ms_per_step_median": statistics.median(timed) * 1000 / steps,
        "first_epoch_s": epoch_s[0],
        "val_s": max(statistics.median(val_s[1:] or val_s), 0.0),  # history.csv rounds to ms
        "epoch_train_s": ";".join(f"{x:.3f}" for x in train_s),
    }


def _child_plain(spec, spawn_t):
    opts = spec["options"]
    data = _data(spec)
    if spec["threads"]:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, spec["threads"])))
        except RuntimeError:
            pass  # already set in this process (--isolation pair): the same settings stand
    import keras

    keras.utils.set_random_seed(spec["seed"])
    model = tutorial_model(spec["model"], spec["norm"], unroll="unroll" in opts)
    loss = "binary_crossentropy" if spec["model"] in TEXT else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"], jit_compile=True if "jit" in opts else "auto")
    timer = _step_timer(spawn_t)
    bs = spec["batch_size"]
    if "tfdata" in opts:
        import tensorflow as tf

        n_fit = math.ceil(len(data.x_train) * (1 - VALIDATION_SPLIT))  # Keras' split: the last 20%
        opt = tf.data.Options()
        opt.threading.private_threadpool_size = spec["threads"] or 0
        train = (
            tf.data.Dataset.from_tensor_slices((data.x_train[:n_fit], data.y_train[:n_fit]))
            .shuffle(n_fit, seed=spec["seed"], reshuffle_each_iteration=True)
            .batch(bs)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(opt)
        )
        val = tf.data.Dataset.from_tensor_slices((data.x_train[n_fit:], data.y_train[n_fit:])).batch(bs).prefetch(tf.data.AUTOTUNE)
        model.fit(train, epochs=spec["epochs"], validation_data=val, verbose=0, callbacks=[timer])
    else:
        model.fit(
            data.x_train, data.y_train, epochs=spec["epochs"], batch_size=bs,
            validation_split=VALIDATION_SPLIT, verbose=0, callbacks=[timer],
        )
    test = model.evaluate(data.x_test, data.y_test, batch_size=max(bs, 256), verbose=0, return_dict=True)
    return {
        **_timings(timer.epoch_s, timer.train_s, spec["steps"]),
        "to_first_epoch_end_s": timer.first_end,
        "final_loss": timer.logs.get("loss"),
        "val_accuracy": timer.logs.get("val_accuracy"),
        "test_accuracy": test["accuracy"],
        "status": "completed",
    }


def _child_normbench(spec, spawn_t):
    import threading

    from normbench.training import train
    from normbench.schema.config import from_dict
    from normbench.store.runfolder import HISTORY_COLUMNS
    from normbench.training.train import run

    # keep a handle on the run's EpochLog for its per-epoch training times (the numbers
    # behind summary.json's median ms_per_step); the callbacks themselves are unchanged
    logs = []
    remove_spy = train.add_callbacks(lambda ctx: logs.append(ctx.log))  # adds no callback
    opts = spec["options"]
    name = "synthetic_imdb" if spec["model"] in TEXT else "synthetic_cifar10"
    with tempfile.TemporaryDirectory(prefix="normbench-bench-") as tmp:
        cfg = from_dict(
            {
                "name": "bench",
                "seed": spec["seed"],
                "data": {"name": name, "subset": {"train": spec["n_train"], "test": spec["n_test"]}},
                "model": {"arch": spec["model"], "norm": spec["norm"], "unroll": "unroll" in opts},
                "train": {
                    "epochs": spec["epochs"],
                    "batch_size": spec["batch_size"],
                    "optimizer": "adam",
                    "learning_rate": 0.001,
                    "validation_split": VALIDATION_SPLIT,
                    "jit_compile": True if "jit" in opts else "auto",
                    "backend": "jax" if "jax" in opts else "tensorflow",
                },
                "output": {"dir": tmp},
            },
            "<benchmark>",
        )
        # time to the first epoch's end: the moment history.csv gets its first row
        # (a stat every 10 ms during epoch 1 only; epoch 1 is not in ms/step)
        history = Path(tmp) / "bench" / "bench" / "history.csv"
        header = len(",".join(HISTORY_COLUMNS)) + 1
        first_end = {}

        def watch():
            while "t" not in first_end and not first_end.get("stop"):
                try:
                    if history.stat().st_size > header:
                        first_end["t"] = time.time() - spawn_t
                        return
                except OSError:
                    pass
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            run_dir, s = run(cfg, run_id="bench", verbose=0, threads=spec["threads"])
        finally:
            first_end["stop"] = True
            remove_spy()
        with open(run_dir / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    epoch_s = [float(r["epoch_seconds"]) for r in rows]
    return {
        **_timings(epoch_s, logs[-1].train_seconds, spec["steps"]),
        "to_first_epoch_end_s": first_end.get("t"),
        "epoch_total_s": ";".join(f"{x:.3f}" for x in epoch_s),
        "final_loss": s["final_train_loss"],
        "val_accuracy": s["last_val_accuracy"],
        "test_accuracy": s["test_accuracy"],
        "status": s["status"],
        "wall_seconds_summary": s["wall_seconds"],
        "backend": s["versions"]["backend"],
    }


TRAINING_CHILDREN = {"plain": _child_plain, "normbench": _child_normbench}


def _child_overhead(spec, spawn_t):
    """What normbench's callbacks cost, measured directly: Keras' per-batch callback
    dispatch with normbench's callback list against the plain script's (its timer only),
    fed real-looking step logs (eager tensors, as the TF trainer passes them), and the
    per-epoch work (history row, learning-rate read, BackupAndRestore save) that happens
    outside the timed window."""
    import keras
    import tensorflow as tf

    from normbench.training import train
    from normbench.schema.config import from_dict

    out = {}
    n = spec["calls"]
    for model in spec["models"]:
        name = "synthetic_imdb" if model in TEXT else "synthetic_cifar10"
        with tempfile.TemporaryDirectory(prefix="normbench-bench-") as tmp:
            cfg = from_dict(
                {"name": "overhead", "seed": spec["seed"], "data": {"name": name, "subset": {"train": 160, "test": 64}},
                 "model": {"arch": model, "norm": "batch"}, "train": {"epochs": 1}, "output": {"dir": tmp}},
                "<benchmark>",
            )
            data, m = train.prepare(cfg)
            m.fit(data.x_train[:128], data.y_train[:128], batch_size=64, epochs=1, verbose=0)  # optimizer state exists: full-size backups
            logs = {"accuracy": tf.constant(0.5), "loss": tf.constant(0.5)}
            epoch_logs = {"loss": 0.5, "accuracy": 0.5, "val_loss": 0.5, "val_accuracy": 0.5}
            run_dir = Path(tmp) / "run"
            run_dir.mkdir()
            nb_callbacks = train.build_callbacks(run_dir, 1).callbacks
            res = {}
            for label, cbs in (("plain", [_step_timer(spawn_t)]), ("normbench", nb_callbacks)):
                cl = keras.callbacks.CallbackList(cbs, add_history=True, add_progbar=False, model=m, verbose=0, epochs=1, steps=n)
                cl.on_train_begin()
                cl.on_epoch_begin(0)
                batch = []
                for _ in range(5):
                    t = time.perf_counter()
                    for i in range(n):
                        cl.on_train_batch_begin(i)
                        cl.on_train_batch_end(i, logs)
                    batch.append((time.perf_counter() - t) / n)
                epoch = []
                for e in range(5):
                    t = time.perf_counter()
                    cl.on_epoch_end(e, epoch_logs)
                    cl.on_epoch_begin(e + 1)
                    epoch.append(time.perf_counter() - t)
                size = sum(f.stat().st_size for f in (run_dir / "backup").rglob("*") if f.is_file()) if label == "normbench" else 0
                parts = {}
                for cb in cbs:  # each callback's own end-of-epoch time
                    t = time.perf_counter()
                    for e in range(3):
                        cb.on_epoch_end(5 + e, epoch_logs)
                    parts[type(cb).__name__] = round((time.perf_counter() - t) / 3 * 1000, 2)
                cl.on_train_end()
                res[label] = {"batch_us": min(batch) * 1e6, "epoch_ms": statistics.median(epoch) * 1000, "backup_mb": size / 1e6,
                              "async_dispatch": bool(cl._async_train), "epoch_ms_by_callback": parts}
            out[model] = res
    return {"overhead": out, "status": "completed"}


def _child_group(spec, spawn_t):
    """--isolation pair: every variant of one model x norm in this one process, in rounds;
    round 0 is a warm-up (not reported), and the order rotates every round. Variants that
    share a process share its thread pools and memory state, and each round gives a
    paired ratio from runs made seconds apart, so slow phases of the host mostly cancel."""
    import gc

    import keras

    runs = []
    variants = spec["variants"]
    for rnd in range(spec["warmup"] + spec["reps"]):
        k = rnd % len(variants)
        for base, opts in variants[k:] + variants[:k]:
            keras.backend.clear_session()  # both paths start from the same empty graph state
            gc.collect()
            one = dict(spec, base=base, options=opts)
            r = TRAINING_CHILDREN[base](one, spawn_t)
            r["to_first_epoch_end_s"] = None  # only meaningful in a fresh process
            r.update(variant="+".join((base, *opts)), round=rnd, warmup=rnd < spec["warmup"])
            runs.append(r)
    return {"runs": runs, "status": "completed"}


def child_main(spec_json):
    spawn_t = float(os.environ.get("NB_BENCH_SPAWN_T", time.time()))
    spec = json.loads(spec_json)
    fn = {**TRAINING_CHILDREN, "overhead": _child_overhead, "group": _child_group}[spec["base"]]
    out = fn(spec, spawn_t)
    out["wall_s"] = time.time() - spawn_t
    out["peak_rss_mb"] = harness.peak_rss_mb()
    import keras

    out["backend"] = keras.backend.backend()
    harness.print_result(out)


# ============================================================================ parent side


def parse_variant(text):
    base, *opts = text.strip().split("+")
    if base not in BASES or any(o not in OPTIONS for o in opts):
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: expected plain or normbench, optionally +{'/+'.join(OPTIONS)} (e.g. normbench+unroll)"
        )
    return base, tuple(opts)


def run_child(spec, args, timeout=None):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["NB_BENCH_SPAWN_T"] = repr(time.time())
    if "jax" in spec["options"]:
        env["KERAS_BACKEND"] = "jax"
        if args.jax_path:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (args.jax_path, env.get("PYTHONPATH")) if p)
    else:
        env["KERAS_BACKEND"] = "tensorflow"
    t0 = time.time()
    res, err = harness.run_child([sys.executable, str(HERE), "--child", json.dumps(spec)], env,
                                 timeout or args.child_timeout, tail_chars=400)
    if err is not None:
        return {"status": "error", "error": err, "wall_s": time.time() - t0}
    return res


def startup_times(reps):
    """`normbench --help` wall time, in a fresh process each time."""
    exe = Path(sys.executable).with_name("normbench")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "normbench"]
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd + ["--help"], capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def estimate_e2e(model, r):
    """Seconds for a realistic run: process start to the end of training (no data loading
    of the real files, no test evaluation), from the measured parts of this short run."""
    if r.get("ms_per_step") is None or r.get("to_first_epoch_end_s") is None:
        return None
    epochs, steps, val_steps = REALISTIC[model]
    val_ms = r["val_s"] * 1000 / r["val_steps"]
    compile_extra = r["first_epoch_s"] - r["steps"] * r["ms_per_step"] / 1000 - r["val_steps"] * val_ms / 1000
    setup = r["to_first_epoch_end_s"] - r["first_epoch_s"]
    return setup + compile_extra + epochs * (steps * r["ms_per_step"] + val_steps * val_ms) / 1000


def gmean_ci(ratios):
    """Geometric mean of paired ratios and its 95 % confidence interval (t on the logs)."""
    if not ratios:
        return None, ""
    logs = [math.log(r) for r in ratios]
    m = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(m), ""
    from scipy.stats import t

    half = t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(m), f"{math.exp(m - half):.3f}-{math.exp(m + half):.3f}"


def _ms(rows, model, norm, variant, rep):
    for r in rows:
        if (r["model"], r["norm"], r["variant"], r["rep"]) == (model, norm, variant, rep) and r["status"] != "error":
            return r["ms_per_step"]
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every variant (default 3)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: imdb_rnn,cifar10_cnn,imdb_transformer")
    ap.add_argument("--norms", default=",".join(NORMS), help="comma-separated: batch,layer (none works too)")
    ap.add_argument("--variants", default="plain,normbench",
                    help="comma-separated; plain|normbench, optionally +unroll +jit +tfdata +jax (default plain,normbench); "
                    "empty: only the start-up and callback-cost measurements")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run; epoch 1 (compile) is not timed (default 4)")
    ap.add_argument("--steps", type=int, default=50, help="training steps per epoch (default 50)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--test", type=int, default=256, help="test examples (for the accuracy check)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads for both variants (default: TF's)")
    ap.add_argument("--startup-reps", type=int, default=5, help="`normbench --help` timings (0: skip)")
    ap.add_argument("--quick", action="store_true", help="1 rep, 2 epochs of at most 8 steps, at most 2 start-up timings")
    ap.add_argument("--jax-path", default=None, help="a folder with jax installed, prepended to PYTHONPATH for +jax")
    ap.add_argument("--no-overhead", dest="overhead", action="store_false",
                    help="skip the direct measurement of normbench's callback cost")
    ap.add_argument("--isolation", choices=("pair", "process"), default="pair",
                    help="pair (default): all variants of a model x norm alternate inside one process, after a "
                    "warm-up round, so they share that process's speed; process: every run in a fresh process "
                    "(needed for time to first epoch and the end-to-end estimate)")
    ap.add_argument("--child-timeout", type=int, default=900, help="seconds per run")
    ap.add_argument("--out", default="benchmarks/results/step_time.csv", help="summary CSV (per-run rows go to *_runs.csv)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.quick:
        args.reps, args.epochs, args.steps, args.test = 1, 2, min(args.steps, 8), 64
        args.startup_reps = min(args.startup_reps, 2)
    if args.epochs < 2 or args.steps < 1 or args.reps < 1:
        ap.error("need --epochs >= 2, --steps >= 1, --reps >= 1")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    norms = [n.strip() for n in args.norms.split(",") if n.strip()]
    if any(m not in MODELS for m in models):
        ap.error(f"--models: choose from {', '.join(MODELS)}")
    try:
        variants = [parse_variant(v) for v in args.variants.split(",") if v.strip()]
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))

    n_fit = args.steps * args.batch_size
    n_train = math.ceil(n_fit / (1 - VALIDATION_SPLIT))
    while math.ceil(n_train * (1 - VALIDATION_SPLIT)) > n_fit:  # Keras' ceil split: exactly `steps` batches
        n_train -= 1
    steps = math.ceil(math.ceil(n_train * (1 - VALIDATION_SPLIT)) / args.batch_size)
    val_steps = math.ceil((n_train - math.ceil(n_train * (1 - VALIDATION_SPLIT))) / args.batch_size)
    print(f"# {len(models) * len(norms) * len(variants) * args.reps} runs: {args.reps} reps x {len(models)} models x "
          f"{len(norms)} norms x {len(variants)} variants; {args.epochs} epochs of {steps} steps "
          f"(batch {args.batch_size}, {n_train} examples, {val_steps} validation steps), epoch 1 untimed", flush=True)

    rows = []
    t_all = time.time()

    def common(model, norm):
        return {"model": model, "norm": norm, "seed": args.seed, "epochs": args.epochs, "steps": steps,
                "val_steps": val_steps, "batch_size": args.batch_size, "n_train": n_train, "n_test": args.test,
                "threads": args.threads}

    def report(r):
        rows.append(r)
        if r["status"] == "error":
            print(f"  rep {r['rep']} {r['model']:11s} {r['norm']:5s} {r['variant']:16s} ERROR {r['error']}", flush=True)
        else:
            print(f"  rep {r['rep']} {r['model']:11s} {r['norm']:5s} {r['variant']:16s} {r['ms_per_step']:7.1f} ms/step, "
                  f"first epoch {r['first_epoch_s']:5.1f} s, {fmt(r['peak_rss_mb'], '.0f')} MB, "
                  f"test acc {fmt(r['test_accuracy'], '.3f')}", flush=True)

    def applicable(model, opts):
        return not ("unroll" in opts and model != "imdb_rnn")  # nothing to unroll in the CNN

    if args.isolation == "pair":
        # one process per model x norm (and backend): all its variants, round after round
        for model in models:
            for norm in norms:
                vs = [v for v in variants if applicable(model, v[1])]
                for backend in ("tensorflow", "jax"):
                    group = [[b, list(o)] for b, o in vs if ("jax" in o) == (backend == "jax")]
                    if not group:
                        continue
                    spec = dict(common(model, norm), base="group", variants=group, reps=args.reps, warmup=1,
                                options=["jax"] if backend == "jax" else [])
                    g = run_child(spec, args, timeout=args.child_timeout * len(group) * (args.reps + 1))
                    label = dict(rep="-", model=model, norm=norm, steps=steps, val_steps=val_steps)
                    if g["status"] == "error":
                        for b, o in group:
                            report(dict(g, **label, variant="+".join((b, *o))))
                        continue
                    for r in g["runs"]:
                        r.update(label, rep=r["round"] - 1, peak_rss_mb=g["peak_rss_mb"])
                        if not r.pop("warmup"):
                            report(r)
    else:
        for rep in range(args.reps):
            for model in models:
                for norm in norms:
                    order = variants if rep % 2 == 0 else variants[::-1]  # alternate, and flip order each rep
                    for base, opts in order:
                        if not applicable(model, opts):
                            continue
                        spec = dict(common(model, norm), base=base, options=list(opts))
                        r = run_child(spec, args)
                        r.update(rep=rep, model=model, norm=norm, variant="+".join((base, *opts)),
                                 steps=steps, val_steps=val_steps)
                        report(r)

    # ------------------------------------------------------------------ summary
    summary = []
    for model in models:
        for norm in norms:
            base_ms = {}
            for base, opts in variants:
                name = "+".join((base, *opts))
                if "unroll" in opts and model != "imdb_rnn":
                    continue
                rs = [r for r in rows if r["model"] == model and r["norm"] == norm and r["variant"] == name and r["status"] != "error"]
                e2e = [estimate_e2e(model, r) for r in rs]
                s = {
                    "model": model, "norm": norm, "variant": name, "runs": len(rs),
                    "ms_per_step": med(rs, "ms_per_step"),
                    "ms_per_step_min": min((r["ms_per_step"] for r in rs), default=None),
                    "ms_per_step_max": max((r["ms_per_step"] for r in rs), default=None),
                    "first_epoch_s": med(rs, "first_epoch_s"),
                    "to_first_epoch_end_s": med(rs, "to_first_epoch_end_s"),
                    "peak_rss_mb": med(rs, "peak_rss_mb"),
                    "val_accuracy": med(rs, "val_accuracy"),
                    "test_accuracy": med(rs, "test_accuracy"),
                    "wall_s": med(rs, "wall_s") if args.isolation == "process" else None,
                    "realistic_e2e_s": statistics.median([e for e in e2e if e is not None]) if any(e is not None for e in e2e) else None,
                }
                base_ms[name] = s["ms_per_step"]
                summary.append(s)
            for s in [s for s in summary if (s["model"], s["norm"]) == (model, norm)]:
                for ref_name in ("plain", "normbench"):
                    ref = base_ms.get(ref_name)
                    s[f"ratio_vs_{ref_name}"] = s["ms_per_step"] / ref if ref and s["ms_per_step"] else None
                    # the same ratio within each repetition (the two ran minutes apart at most),
                    # then the median over repetitions: less exposed to slow phases of the host
                    paired = [_ms(rows, model, norm, s["variant"], rep) / _ms(rows, model, norm, ref_name, rep)
                              for rep in range(args.reps)
                              if _ms(rows, model, norm, s["variant"], rep) and _ms(rows, model, norm, ref_name, rep)]
                    s[f"paired_ratios_vs_{ref_name}"] = ";".join(f"{x:.3f}" for x in paired)
                    s[f"paired_ratio_vs_{ref_name}"] = statistics.median(paired) if paired else None
                    s[f"paired_gmean_vs_{ref_name}"], s[f"paired_ci95_vs_{ref_name}"] = gmean_ci(paired)

    if summary:
        print()
    have_ab = any(v == ("plain", ()) for v in variants) and any(v == ("normbench", ()) for v in variants)
    if have_ab:
        print("model        norm   (a) plain ms/step  (b) normbench ms/step  b/a    b/a per rep (median)     "
              "b/a geo-mean [95% CI]   peak RSS a / b (MB)")
        for model in models:
            for norm in norms:
                a = next(s for s in summary if (s["model"], s["norm"], s["variant"]) == (model, norm, "plain"))
                b = next(s for s in summary if (s["model"], s["norm"], s["variant"]) == (model, norm, "normbench"))
                per_rep = f"{b['paired_ratios_vs_plain'].replace(';', ' ')} ({fmt(b['paired_ratio_vs_plain'], '.3f')})"
                print(f"{model:12s} {norm:6s} {fmt(a['ms_per_step']):>17s}  {fmt(b['ms_per_step']):>21s}  "
                      f"{fmt(b['ratio_vs_plain'], '.3f'):5s}  {per_rep:23s}  "
                      f"{fmt(b['paired_gmean_vs_plain'], '.3f')} [{b['paired_ci95_vs_plain'] or 'n/a'}]   "
                      f"{fmt(a['peak_rss_mb'], '.0f')} / {fmt(b['peak_rss_mb'], '.0f')}")
        print()
    if summary:
        print("model        norm   variant           ms/step (min-max)      vs normbench  first epoch s  "
              "to 1st epoch end s  est. realistic run s  wall s  peak RSS MB  test acc")
    for s in summary:
        rng = f"{fmt(s['ms_per_step'])} ({fmt(s['ms_per_step_min'])}-{fmt(s['ms_per_step_max'])})"
        print(f"{s['model']:12s} {s['norm']:6s} {s['variant']:17s} {rng:22s} {fmt(s['ratio_vs_normbench'], '.3f'):>12s}  "
              f"{fmt(s['first_epoch_s']):>13s}  {fmt(s['to_first_epoch_end_s']):>18s}  "
              f"{fmt(s['realistic_e2e_s'], '.0f'):>20s}  {fmt(s['wall_s'], '.0f'):>6s}  {fmt(s['peak_rss_mb'], '.0f'):>11s}  "
              f"{fmt(s['test_accuracy'], '.3f')}")

    if args.startup_reps:
        st = startup_times(args.startup_reps)
        print(f"\nnormbench --help: median {statistics.median(st) * 1000:.0f} ms over {len(st)} "
              f"(min {min(st) * 1000:.0f}, max {max(st) * 1000:.0f})")
        summary.append({"model": "-", "norm": "-", "variant": "normbench --help", "runs": len(st),
                        "startup_help_s": statistics.median(st)})

    if args.overhead:
        o = run_child({"base": "overhead", "options": [], "models": models, "seed": args.seed, "calls": 2000}, args)
        if o["status"] == "error":
            print(f"\ncallback overhead: ERROR {o['error']}")
        else:
            print("\ncallback cost, measured directly (per batch: Keras' dispatch to the callback list; "
                  "per epoch: end-of-epoch work incl. the backup save, outside ms/step)")
            print("model        per batch plain / normbench (us)  extra per step  per epoch plain / normbench (ms)  "
                  "backup MB  extra per realistic epoch")
            for model, res in o["overhead"].items():
                pl, nb = res["plain"], res["normbench"]
                b = [s for s in summary if s["model"] == model and s["variant"] == "normbench" and s.get("ms_per_step")]
                step_ms = statistics.median(s["ms_per_step"] for s in b) if b else None
                extra_step = (nb["batch_us"] - pl["batch_us"]) / 1000 / step_ms if step_ms else None
                epoch_s = REALISTIC[model][1] * step_ms / 1000 if step_ms else None
                extra_epoch = (nb["epoch_ms"] - pl["epoch_ms"]) / 1000 / epoch_s if epoch_s else None
                pct = lambda x, f: "n/a" if x is None else format(x * 100, f) + " %"  # noqa: E731
                print(f"{model:12s} {pl['batch_us']:14.1f} / {nb['batch_us']:<14.1f}  {pct(extra_step, '.3f'):>14s}  "
                      f"{pl['epoch_ms']:17.1f} / {nb['epoch_ms']:<12.1f}  {nb['backup_mb']:9.1f}  "
                      f"{pct(extra_epoch, '.2f'):>24s}")
                print(f"{'':12s} per epoch, by callback (ms): {nb['epoch_ms_by_callback']}")
                summary.append({"model": model, "norm": "batch", "variant": "callback cost", "runs": 1,
                                "batch_us_plain": pl["batch_us"], "batch_us_normbench": nb["batch_us"],
                                "epoch_ms_plain": pl["epoch_ms"], "epoch_ms_normbench": nb["epoch_ms"],
                                "backup_mb": nb["backup_mb"], "extra_per_step_pct": extra_step and extra_step * 100,
                                "extra_per_realistic_epoch_pct": extra_epoch and extra_epoch * 100})

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    harness.write_csv(out, summary, lineterminator="\n")
    runs_path = out.with_name(out.stem + "_runs.csv")
    if rows:
        harness.write_csv(runs_path, rows, lineterminator="\n")
    print(f"\nwrote {out}{f' and {runs_path}' if rows else ''} ({time.time() - t_all:.0f} s)")
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
