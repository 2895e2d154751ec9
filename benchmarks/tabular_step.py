"""Step time of a tiny tabular run: normbench's training path against a plain Keras script.

The model is the study's MLP (configs/study/tabular_*.yaml: Dense(32) > Dense(16) >
Dense(classes), no norms) on scikit-learn's breast cancer table z-scored (364 training rows,
batch 32: 12 steps per epoch), SGD at 0.01. Variants, each in a fresh subprocess, taken in
turn R times so that a busy spell of the shared machine hits them alike:

  plain          the model written out in Keras (no normbench code), model.fit(x, y,
                 validation_split=0.2, verbose=0) with a callback that times epochs only
  normbench      normbench.training.train.run: the real fit path (EpochLog with the gradient norms,
                 TerminateOnNaN, BestWeights, BackupAndRestore), output to a temp dir
  normbench-gn   the same without the gradient-norm measure (the cost of that measure)
  normbench+spe  train.steps_per_execution: 12 (one call into the graph per epoch)

ms/step is each process's median over epochs 2..E of its training steps' time (from
on_epoch_begin to on_test_begin, the same callback in both paths: normbench's per-epoch
work, its history row and backup, falls outside) / steps, as wall time and as the
process's CPU time (less sensitive to a busy machine); the table gives the median over
the R processes of each variant, and the load average while it ran.

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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "normbench", "normbench-gn", "normbench+spe")


class _Window:
    """Times each epoch's training steps only, in both paths alike: from on_epoch_begin to
    on_test_begin (validation starts as the last step ends, before any per-epoch work such
    as normbench's history row or backup), wall and this process's CPU time."""

    def __new__(cls):
        import keras

        class Window(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.wall, self.cpu = [], []

            def on_epoch_begin(self, epoch, logs=None):
                self.t0, self.c0 = time.perf_counter(), time.process_time()

            def on_test_begin(self, logs=None):
                if hasattr(self, "t0"):
                    self.wall.append(time.perf_counter() - self.t0)
                    self.cpu.append(time.process_time() - self.c0)
                    del self.t0

        return Window()


def child(variant: str, epochs: int) -> dict:
    """One process: train the variant; its median ms/step (wall and CPU) over epochs 2.."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from normbench.schema.config import from_dict

    raw = {"name": "bench", "data": {"name": "breast_cancer", "preprocess": "zscore"},
           "model": {"arch": "mlp", "norm": "none", "params": {"hidden": [32, 16]}},
           "train": {"epochs": epochs, "batch_size": 32, "optimizer": "sgd", "learning_rate": 0.01,
                     "steps_per_execution": 12 if variant == "normbench+spe" else 1},
           "output": {"dir": tempfile.mkdtemp()}}
    cfg = from_dict(raw)
    from normbench.core.quiet import import_keras

    import_keras()
    window = _Window()
    if variant.startswith("normbench"):
        from normbench.training import train

        if variant == "normbench-gn":
            from normbench.training import callbacks

            callbacks.GradientNorms.on_train_begin = lambda self, logs=None: None  # not installed: empty columns
        with train.extra_callbacks(lambda ctx: window):
            _, summary = train.run(cfg, verbose=0)
        steps = summary["steps_per_epoch"]
    else:
        import keras
        import numpy as np

        from normbench.build.data import load_data

        data = load_data(cfg.data, 0, 0.2)  # the same arrays
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(np.asarray(data.x_train), data.y_train, epochs=epochs, batch_size=32, validation_split=0.2, verbose=0,
                  callbacks=[window])
        steps = -(-int(len(data.x_train) * 0.8) // 32)
    return {"wall": round(statistics.median(window.wall[1:]) * 1000 / steps, 3),
            "cpu": round(statistics.median(window.cpu[1:]) * 1000 / steps, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.epochs)))
        return
    times = {v: {"wall": [], "cpu": []} for v in VARIANTS}
    loads = []
    env = {**os.environ, "PYTHONPATH": str(REPO), "NORMBENCH_CACHE_DIR": "off"}
    for r in range(a.repeats):
        for v in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--child", v, "--epochs", str(a.epochs)], env=env,
                                 capture_output=True, text=True, check=True)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            for k in ("wall", "cpu"):
                times[v][k].append(got[k])
            loads.append(os.getloadavg()[0])
            print(f"repeat {r + 1} {v}: {got} ms/step (load {loads[-1]:.1f})", file=sys.stderr)
    print(f"cpu count {os.cpu_count()}, 1-minute load average after each process: median {statistics.median(loads):.1f}, "
          f"range {min(loads):.1f}-{max(loads):.1f}")
    base = {k: statistics.median(times["plain"][k]) for k in ("wall", "cpu")}
    print("| variant | wall ms/step (median of R) | vs plain | CPU ms/step (median of R) | vs plain | each process, wall / CPU |")
    print("|---|---|---|---|---|---|")
    for v in VARIANTS:
        w, c = (statistics.median(times[v][k]) for k in ("wall", "cpu"))
        each = ", ".join(f"{x:.1f}/{y:.1f}" for x, y in zip(times[v]["wall"], times[v]["cpu"]))
        print(f"| {v} | {w:.2f} | {w / base['wall']:.2f}x | {c:.2f} | {c / base['cpu']:.2f}x | {each} |")


if __name__ == "__main__":
    main()
