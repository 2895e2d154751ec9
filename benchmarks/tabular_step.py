"""Step time of a tiny tabular run: normbench's training path against a plain Keras script.

The model is the study's MLP (configs/study/tabular_*.yaml: Dense(32) > Dense(16) >
Dense(classes), no norms) on scikit-learn's breast cancer table z-scored (364 training rows,
batch 32: 12 steps per epoch), SGD at 0.01. Variants, each in a fresh subprocess, taken in
turn R times so that a busy spell of the shared machine hits them alike:

  plain          the model written out in Keras (no normbench code), model.fit(x, y,
                 validation_split=0.2, verbose=0) with a callback that times epochs only
  normbench      normbench.train.run: the real fit path (EpochLog with the gradient norms,
                 TerminateOnNaN, BestWeights, BackupAndRestore), output to a temp dir
  normbench-gn   the same without the gradient-norm measure (the cost of that measure)
  normbench+spe  train.steps_per_execution: 12 (one call into the graph per epoch)

ms/step is each process's median over epochs 2..E of (epoch time - validation time) /
steps (summary.json's ms_per_step for normbench; the same for plain); the table gives the
median over the R processes of each variant, and the load average while it ran.

    python benchmarks/tabular_step.py                # R=5, 15 epochs
    python benchmarks/tabular_step.py --repeats 3 --epochs 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "normbench", "normbench-gn", "normbench+spe")


def child(variant: str, epochs: int) -> float:
    """One process: train the variant, return its ms/step."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from normbench.config import from_dict

    raw = {"name": "bench", "data": {"name": "breast_cancer", "preprocess": "zscore"},
           "model": {"arch": "mlp", "norm": "none", "params": {"hidden": [32, 16]}},
           "train": {"epochs": epochs, "batch_size": 32, "optimizer": "sgd", "learning_rate": 0.01,
                     "steps_per_execution": 12 if variant == "normbench+spe" else 1},
           "output": {"dir": tempfile.mkdtemp()}}
    cfg = from_dict(raw)
    if variant.startswith("normbench"):
        from normbench import train

        if variant == "normbench-gn":
            from normbench import callbacks

            callbacks.GradientNorms.on_train_begin = lambda self, logs=None: None  # not installed: empty columns
        _, summary = train.run(cfg, verbose=0)
        return summary["ms_per_step"]
    import time

    import keras
    import numpy as np

    from normbench.data import load_data

    data = load_data(cfg.data, 0, 0.2)  # the same arrays
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.val = time.perf_counter(), 0.0

        def on_test_begin(self, logs=None):
            self.tv = time.perf_counter()

        def on_test_end(self, logs=None):
            self.val += time.perf_counter() - self.tv

        def on_epoch_end(self, epoch, logs=None):
            self.train.append(time.perf_counter() - self.t0 - self.val)

    timer = Timer()
    model.fit(np.asarray(data.x_train), data.y_train, epochs=epochs, batch_size=32, validation_split=0.2, verbose=0,
              callbacks=[timer])
    steps = -(-int(len(data.x_train) * 0.8) // 32)
    return round(statistics.median(timer.train[1:]) * 1000 / steps, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps({"ms_per_step": child(a.child, a.epochs)}))
        return
    times = {v: [] for v in VARIANTS}
    loads = []
    env = {**os.environ, "PYTHONPATH": str(REPO), "NORMBENCH_CACHE_DIR": "off"}
    for r in range(a.repeats):
        for v in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--child", v, "--epochs", str(a.epochs)], env=env,
                                 capture_output=True, text=True, check=True)
            times[v].append(json.loads(out.stdout.strip().splitlines()[-1])["ms_per_step"])
            loads.append(os.getloadavg()[0])
            print(f"repeat {r + 1} {v}: {times[v][-1]} ms/step (load {loads[-1]:.1f})", file=sys.stderr)
    base = statistics.median(times["plain"])
    print(f"cpu count {os.cpu_count()}, 1-minute load average during the runs: median {statistics.median(loads):.1f}, "
          f"range {min(loads):.1f}-{max(loads):.1f}")
    print("| variant | ms/step, median of medians | each process | vs plain |")
    print("|---|---|---|---|")
    for v in VARIANTS:
        m = statistics.median(times[v])
        print(f"| {v} | {m:.2f} | {', '.join(f'{t:.2f}' for t in times[v])} | {m / base:.2f}x |")


if __name__ == "__main__":
    main()
