"""ms/step of the IMDB model's recurrent layer implementations, paired in one process.

Variants (all the imdb_rnn model of normbench.build.models: Embedding(10000, 128) > 2 x
SimpleRNN(32) with LayerNormalization, batch 64, 200 tokens, compiled as normbench's
train.compiled_model does):

  keras            model.rnn: keras, unroll false  (keras.layers.SimpleRNN, the plain script's layer)
  keras_unroll     model.rnn: keras, unroll true
  fast             model.rnn: fast,  unroll false  (HoistedSimpleRNN, keras.ops.scan)
  fast_unroll      model.rnn: fast,  unroll true   (HoistedSimpleRNN, a Python loop over the steps)
  fast_chunkK      model.rnn: fast,  unroll K      (HoistedSimpleRNN, a scan over chunks of K unrolled steps; K = 10, 25, 50)
  recurrent        norm_placement: recurrent (layer norm inside the cell), unroll false
  recurrent_unroll norm_placement: recurrent, unroll true

Each backend runs in its own child process (Keras picks its backend once per process).
The child builds every variant, runs one warm-up fit per variant (tracing/compiling; its
wall time is printed as `first fit s`, not in the CSV), then `--rounds` rounds; each round fits every
variant for `--steps` steps, in an order rotated by one each round and reversed in every
other full rotation (the CSV's `position` column; the committed CSVs were made when the
order was reversed every other round, which for their 4 and 6 variants also varied it).
ms/step is (time of the last batch end - time of the first batch end) /
(steps - 1): the first batch of each fit, the iterator set-up and fit's own overhead are
left out. Per round, every variant's ms/step is divided by the baseline's (`keras`) and
by its pair's (fast / keras, fast_unroll / keras_unroll, recurrent / fast,
recurrent_unroll / fast_unroll); the summary gives the median of those per-round ratios.
The load average before and after each round is recorded (the machine is shared).

    python benchmarks/rnn_layers.py --out benchmarks/results/rnn_layers.csv          # both backends
    python benchmarks/rnn_layers.py --backends tensorflow --rounds 3 --steps 20   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import harness  # benchmarks/harness.py: python benchmarks/x.py puts benchmarks/ first on sys.path

HERE = Path(__file__).resolve()
VARIANTS = {
    "keras": {"rnn": "keras", "unroll": False},
    "keras_unroll": {"rnn": "keras", "unroll": True},
    "fast": {"rnn": "fast", "unroll": False},
    "fast_unroll": {"rnn": "fast", "unroll": True},
    "fast_chunk10": {"rnn": "fast", "unroll": 10},  # a scan over chunks of 10 unrolled steps
    "fast_chunk25": {"rnn": "fast", "unroll": 25},
    "fast_chunk50": {"rnn": "fast", "unroll": 50},
    "recurrent": {"rnn": "fast", "unroll": False, "norm_placement": "recurrent"},
    "recurrent_unroll": {"rnn": "fast", "unroll": True, "norm_placement": "recurrent"},
}
PAIRS = {"fast": "keras", "fast_unroll": "keras_unroll", "fast_chunk10": "fast_unroll", "fast_chunk25": "fast_unroll",
         "fast_chunk50": "fast_unroll", "recurrent": "fast", "recurrent_unroll": "fast_unroll",
         "keras_unroll": "keras"}
# unrolled loops compile for minutes under XLA:CPU and run ~7x slower (RESULTS.md, Result 4)
DEFAULT_VARIANTS = {"tensorflow": list(VARIANTS), "jax": ["keras", "fast", "recurrent"]}
BATCH, MAXLEN, WORDS = 64, 200, 10000


def child(args) -> None:
    import numpy as np
    import keras

    from normbench.schema.config import from_dict
    from normbench.training.train import compiled_model

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    n = BATCH * args.steps
    x = rng.integers(1, WORDS, size=(n, MAXLEN), dtype="int32")
    y = rng.integers(0, 2, size=(n, 1)).astype("float32")

    class Times(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    models = {}
    for name in args.variants:
        model_cfg = {"arch": "imdb_rnn", "norm": args.norm, **VARIANTS[name]}
        cfg = from_dict({"name": "bench", "data": {"name": "synthetic_imdb"}, "model": model_cfg,
                         "train": {"backend": backend}})
        model = compiled_model(cfg, 2, len(x))  # constant learning rate: the count only sizes the schedule
        timer = Times()
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[timer])
        first = time.perf_counter() - t0
        models[name] = (model, timer)
        print(json.dumps({"kind": "warmup", "backend": backend, "variant": name, "first_fit_s": round(first, 3),
                          "params": model.count_params()}), flush=True)
    order = list(args.variants)
    for r in range(args.rounds):
        k = r % len(order)
        names = order[k:] + order[:k]
        if (r // len(order)) % 2:  # every other full rotation reversed (for 2 variants, rotating and
            names = names[::-1]    # reversing each round would cancel out and keep one always first)
        load0 = os.getloadavg()[0]
        ms = {}
        for name in names:
            model, timer = models[name]
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[timer])
            ms[name] = 1000 * (timer.ends[-1] - timer.ends[0]) / (len(timer.ends) - 1)
        load1 = os.getloadavg()[0]
        for i, name in enumerate(names):
            print(json.dumps({"kind": "round", "backend": backend, "round": r, "position": i, "variant": name,
                              "ms_per_step": round(ms[name], 3), "load_before": load0, "load_after": load1,
                              "vs_keras": round(ms[name] / ms["keras"], 4) if "keras" in ms else None,
                              "pair": PAIRS.get(name) if PAIRS.get(name) in ms else None,
                              "vs_pair": round(ms[name] / ms[PAIRS[name]], 4) if PAIRS.get(name) in ms else None}),
                  flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="tensorflow,jax")
    p.add_argument("--variants", default=None, help="comma list (default: all on tensorflow; keras,fast,recurrent on jax)")
    p.add_argument("--norm", default="layer")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=30, help="timed steps per fit (batch 64)")
    p.add_argument("--out", default=None, help="CSV of every round (default: print only)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.variants = args.variants.split(",")
        return child(args)

    rows, warm = [], []
    for backend in args.backends.split(","):
        variants = args.variants or ",".join(DEFAULT_VARIANTS[backend])
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [sys.executable, str(HERE), "--child", "--variants", variants, "--norm", args.norm,
               "--rounds", str(args.rounds), "--steps", str(args.steps)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{backend} child failed:\n{proc.stderr[-3000:]}")
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                (rows if rec.pop("kind") == "round" else warm).append(rec)
    if args.out:
        harness.write_csv(args.out, rows)
    first = {(r["backend"], r["variant"]): r for r in warm}
    print(f"{'backend':<11} {'variant':<17} {'params':>7} {'first fit s':>11} {'ms/step med (min-max)':>22} "
          f"{'vs keras':>9} {'vs pair':>22}   load")
    for (backend, variant), wr in first.items():
        mine = [r for r in rows if r["backend"] == backend and r["variant"] == variant]
        ms = [r["ms_per_step"] for r in mine]
        vk = [r["vs_keras"] for r in mine if r["vs_keras"] is not None]
        vp = [r["vs_pair"] for r in mine if r["vs_pair"] is not None]
        loads = [r["load_before"] for r in mine] + [r["load_after"] for r in mine]
        pair = f"{statistics.median(vp):.3f} ({mine[0]['pair']})" if vp else "-"
        print(f"{backend:<11} {variant:<17} {wr['params']:>7} {wr['first_fit_s']:>11.1f} "
              f"{statistics.median(ms):>8.1f} ({min(ms):.1f}-{max(ms):.1f})".ljust(82)
              + f" {statistics.median(vk) if vk else float('nan'):>9.3f} {pair:>22}   {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
