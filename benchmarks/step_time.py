"""Step time: normbench's training path against the tutorial's plain Keras script.

For each model x norm it times, alternately and each in a fresh subprocess,
  plain      the tutorial's script: a keras.Sequential built inline, compile("adam"),
             model.fit(x, y, validation_split=0.2, verbose=0) on NumPy arrays;
  normbench  normbench.train.run(cfg, verbose=0): the real fit path with its callbacks
             (EpochLog, divergence detection, BackupAndRestore), output to a temp dir;
on the same synthetic arrays (normbench's synthetic_imdb / synthetic_cifar10: IMDB-shaped
int token ids, 200 tokens, vocabulary 10,000, 2 classes; CIFAR-shaped 32x32x3 float32 in
[0, 1], 10 classes), the same seed and batch size 64.

ms/step is the median over epochs 2..E of (epoch time - validation time) / steps, the
first (tracing/compile) epoch excluded: exactly normbench's summary `ms_per_step`, and
for the plain script a callback that does the same with no per-batch work.

Speed options are variants too: normbench+unroll (model.unroll: true), normbench+jit
(train.jit_compile: true), plain+tfdata (an explicit tf.data pipeline), plain+jax and
normbench+jax (KERAS_BACKEND=jax; needs jax importable, e.g. via --jax-path).

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

HERE = Path(__file__).resolve()
MODELS = ("imdb_rnn", "cifar10_cnn")
NORMS = ("batch", "layer")
BASES = ("plain", "normbench")
OPTIONS = ("unroll", "jit", "tfdata", "jax")
VALIDATION_SPLIT = 0.2
# what a real run looks like, for the end-to-end estimate: (epochs, fit steps, val steps)
REALISTIC = {
    "imdb_rnn": (5, math.ceil(20000 / 64), math.ceil(5000 / 64)),  # tutorial: 25,000 train, 5 epochs
    "cifar10_cnn": (10, math.ceil(40000 / 64), math.ceil(10000 / 64)),  # tutorial: 50,000 train, 10 epochs
}


# ============================================================================ child side


def _data(spec):
    """The synthetic arrays the plain script trains on: normbench's generator with the
    config the normbench variant uses, so both see identical data."""
    from normbench.config import DataConfig, Subset
    from normbench.data import load_data

    name = "synthetic_imdb" if spec["model"] == "imdb_rnn" else "synthetic_cifar10"
    cfg = DataConfig(name=name, subset=Subset(spec["n_train"], spec["n_test"]))
    return load_data(cfg, spec["seed"])


def _plain_model(model, norm, unroll=False):
    """The tutorial's models, written out as a user would (no normbench code)."""
    import keras
    from keras import layers

    def nrm(where):
        if norm == "batch":
            return layers.BatchNormalization()
        if norm == "layer":
            return layers.LayerNormalization(axis=[1, 2, 3] if where == "conv" else -1)
        return layers.Identity()

    if model == "imdb_rnn":
        return keras.Sequential(
            [
                keras.Input(shape=(200,), dtype="int32"),
                layers.Embedding(10000, 128),
                layers.SimpleRNN(32, return_sequences=True, unroll=unroll),
                nrm("sequence"),
                layers.SimpleRNN(32, unroll=unroll),
                nrm("vector"),
                layers.Dense(1, activation="sigmoid"),
            ]
        )
    blocks = []
    for filters in (32, 64, 128):
        blocks += [layers.Conv2D(filters, (3, 3), activation="relu"), nrm("conv"), layers.MaxPooling2D((2, 2))]
    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            *blocks,
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            nrm("vector"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _child_plain(spec, spawn_t):
    opts = spec["options"]
    data = _data(spec)
    if spec["threads"]:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, spec["threads"])))
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Epoch time minus validation time; epoch/test hooks only, no per-batch work."""

        def __init__(self):
            super().__init__()
            self.epoch_s, self.train_s, self.first_end = [], [], None

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

    keras.utils.set_random_seed(spec["seed"])
    model = _plain_model(spec["model"], spec["norm"], unroll="unroll" in opts)
    loss = "binary_crossentropy" if spec["model"] == "imdb_rnn" else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"], jit_compile=True if "jit" in opts else "auto")
    timer = StepTimer()
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
    timed = timer.train_s[1:] or timer.train_s
    steps = spec["steps"]
    val_s = [e - t for e, t in zip(timer.epoch_s, timer.train_s)]
    return {
        "ms_per_step": statistics.median(timed) * 1000 / steps,
        "first_epoch_s": timer.epoch_s[0],
        "val_s": statistics.median(val_s[1:] or val_s),
        "to_first_epoch_end_s": timer.first_end,
        "final_loss": timer.logs.get("loss"),
        "val_accuracy": timer.logs.get("val_accuracy"),
        "test_accuracy": test["accuracy"],
        "status": "completed",
    }


def _child_normbench(spec, spawn_t):
    import threading

    from normbench.config import from_dict
    from normbench.train import run

    opts = spec["options"]
    name = "synthetic_imdb" if spec["model"] == "imdb_rnn" else "synthetic_cifar10"
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
                },
                "output": {"dir": tmp},
            },
            "<benchmark>",
        )
        # time to the first epoch's end: the moment history.csv gets its first row
        # (a stat every 10 ms during epoch 1 only; epoch 1 is not in ms/step)
        history = Path(tmp) / "bench" / "bench" / "history.csv"
        header = len(",".join(["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"])) + 1
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
        import csv as _csv

        with open(run_dir / "history.csv", newline="") as f:
            rows = list(_csv.DictReader(f))
    epoch_s = [float(r["epoch_seconds"]) for r in rows]
    train_s = s["ms_per_step"] * spec["steps"] / 1000  # median train time of epochs 2..E
    val_s = statistics.median(epoch_s[1:] or epoch_s) - train_s  # exact for E = 3 (median of 2 = mean)
    return {
        "ms_per_step": s["ms_per_step"],
        "first_epoch_s": s["first_epoch_seconds"],
        "val_s": max(val_s, 0.0),
        "to_first_epoch_end_s": first_end.get("t"),
        "final_loss": s["final_train_loss"],
        "val_accuracy": s["last_val_accuracy"],
        "test_accuracy": s["test_accuracy"],
        "status": s["status"],
        "wall_seconds_summary": s["wall_seconds"],
        "backend": s["versions"]["backend"],
    }


def child_main(spec_json):
    spawn_t = float(os.environ.get("NB_BENCH_SPAWN_T", time.time()))
    spec = json.loads(spec_json)
    fn = _child_plain if spec["base"] == "plain" else _child_normbench
    out = fn(spec, spawn_t)
    out["wall_s"] = time.time() - spawn_t
    out["peak_rss_mb"] = _peak_rss_mb()
    import keras

    out["backend"] = keras.backend.backend()
    print("RESULT " + json.dumps(out), flush=True)


# ============================================================================ parent side


def parse_variant(text):
    base, *opts = text.strip().split("+")
    if base not in BASES or any(o not in OPTIONS for o in opts):
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: expected plain or normbench, optionally +{'/+'.join(OPTIONS)} (e.g. normbench+unroll)"
        )
    return base, tuple(opts)


def run_child(spec, args):
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
    p = subprocess.run(
        [sys.executable, str(HERE), "--child", json.dumps(spec)],
        env=env, capture_output=True, text=True, timeout=args.child_timeout,
    )
    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"status": "error", "error": " | ".join(tail)[-400:], "wall_s": time.time() - t0}
    return json.loads(lines[-1][len("RESULT "):])


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every variant (default 3)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: imdb_rnn,cifar10_cnn")
    ap.add_argument("--norms", default=",".join(NORMS), help="comma-separated: batch,layer (none works too)")
    ap.add_argument("--variants", default="plain,normbench",
                    help="comma-separated; plain|normbench, optionally +unroll +jit +tfdata +jax (default plain,normbench)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run; epoch 1 (compile) is not timed (default 3)")
    ap.add_argument("--steps", type=int, default=50, help="training steps per epoch (default 50)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--test", type=int, default=256, help="test examples (for the accuracy check)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads for both variants (default: TF's)")
    ap.add_argument("--startup-reps", type=int, default=5, help="`normbench --help` timings (0: skip)")
    ap.add_argument("--quick", action="store_true", help="1 rep, 2 epochs of at most 8 steps, at most 2 start-up timings")
    ap.add_argument("--jax-path", default=None, help="a folder with jax installed, prepended to PYTHONPATH for +jax")
    ap.add_argument("--child-timeout", type=int, default=900)
    ap.add_argument("--out", default="benchmarks/step_time.csv", help="summary CSV (per-run rows go to *_runs.csv)")
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
    for rep in range(args.reps):
        for model in models:
            for norm in norms:
                order = variants if rep % 2 == 0 else variants[::-1]  # alternate, and flip order each rep
                for base, opts in order:
                    if "unroll" in opts and model != "imdb_rnn":
                        continue  # nothing to unroll in the CNN
                    spec = {
                        "base": base, "options": list(opts), "model": model, "norm": norm, "seed": args.seed,
                        "epochs": args.epochs, "steps": steps, "val_steps": val_steps, "batch_size": args.batch_size,
                        "n_train": n_train, "n_test": args.test, "threads": args.threads,
                    }
                    r = run_child(spec, args)
                    r.update(rep=rep, model=model, norm=norm, variant="+".join((base, *opts)),
                             steps=steps, val_steps=val_steps)
                    rows.append(r)
                    if r["status"] == "error":
                        print(f"  rep {rep} {model:11s} {norm:5s} {r['variant']:16s} ERROR {r['error']}", flush=True)
                    else:
                        print(f"  rep {rep} {model:11s} {norm:5s} {r['variant']:16s} {r['ms_per_step']:7.1f} ms/step, "
                              f"first epoch {r['first_epoch_s']:5.1f} s, {fmt(r['peak_rss_mb'], '.0f')} MB, "
                              f"test acc {fmt(r['test_accuracy'], '.3f')}", flush=True)

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
                    "realistic_e2e_s": statistics.median([e for e in e2e if e is not None]) if any(e is not None for e in e2e) else None,
                }
                base_ms[name] = s["ms_per_step"]
                summary.append(s)
            for s in [s for s in summary if (s["model"], s["norm"]) == (model, norm)]:
                ref = base_ms.get("plain")
                s["ratio_vs_plain"] = s["ms_per_step"] / ref if ref and s["ms_per_step"] else None
                ref = base_ms.get("normbench")
                s["ratio_vs_normbench"] = s["ms_per_step"] / ref if ref and s["ms_per_step"] else None

    print()
    have_ab = any(v == ("plain", ()) for v in variants) and any(v == ("normbench", ()) for v in variants)
    if have_ab:
        print("model        norm   (a) plain ms/step  (b) normbench ms/step  b/a    peak RSS a / b (MB)")
        for model in models:
            for norm in norms:
                a = next(s for s in summary if (s["model"], s["norm"], s["variant"]) == (model, norm, "plain"))
                b = next(s for s in summary if (s["model"], s["norm"], s["variant"]) == (model, norm, "normbench"))
                print(f"{model:12s} {norm:6s} {fmt(a['ms_per_step']):>17s}  {fmt(b['ms_per_step']):>21s}  "
                      f"{fmt(b['ratio_vs_plain'], '.3f'):5s}  {fmt(a['peak_rss_mb'], '.0f')} / {fmt(b['peak_rss_mb'], '.0f')}")
        print()
    print("model        norm   variant           ms/step (min-max)      vs normbench  first epoch s  "
          "to 1st epoch end s  est. realistic run s  peak RSS MB  test acc")
    for s in summary:
        rng = f"{fmt(s['ms_per_step'])} ({fmt(s['ms_per_step_min'])}-{fmt(s['ms_per_step_max'])})"
        print(f"{s['model']:12s} {s['norm']:6s} {s['variant']:17s} {rng:22s} {fmt(s['ratio_vs_normbench'], '.3f'):>12s}  "
              f"{fmt(s['first_epoch_s']):>13s}  {fmt(s['to_first_epoch_end_s']):>18s}  "
              f"{fmt(s['realistic_e2e_s'], '.0f'):>20s}  {fmt(s['peak_rss_mb'], '.0f'):>11s}  {fmt(s['test_accuracy'], '.3f')}")

    if args.startup_reps:
        st = startup_times(args.startup_reps)
        print(f"\nnormbench --help: median {statistics.median(st) * 1000:.0f} ms over {len(st)} "
              f"(min {min(st) * 1000:.0f}, max {max(st) * 1000:.0f})")
        summary.append({"model": "-", "norm": "-", "variant": "normbench --help", "runs": len(st),
                        "startup_help_s": statistics.median(st)})

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for s in summary for k in s))
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, keys, lineterminator="\n")
        w.writeheader()
        w.writerows(summary)
    runs_path = out.with_name(out.stem + "_runs.csv")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(runs_path, "w", newline="") as f:
        w = csv.DictWriter(f, keys, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {out} and {runs_path} ({time.time() - t_all:.0f} s)")
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
