"""What `output.tensorboard: true` costs per epoch (issue 22).

Two measurements, both on the CIFAR-10 smoke model (synthetic data, no download):

1. direct: the TensorBoard callback's own per-epoch work (normbench.training.callbacks.TensorBoardLog
   .on_epoch_end: the epoch's scalars written and both writers flushed), timed over
   --calls epochs with realistic logs, after one warm-up epoch; plus its one-time start
   (the HParams summary and the writers' creation);
2. end to end: --reps tiny runs (--epochs epochs each) with tensorboard off and on,
   alternated, and the median epoch_seconds of history.csv (epoch 1, which compiles, left out).

    python benchmarks/tensorboard_cost.py --out benchmarks/results/tensorboard_cost.csv

Results: benchmarks/RESULTS.md, "TensorBoard's cost per epoch".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness  # benchmarks/harness.py: python benchmarks/x.py puts benchmarks/ first on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _cfg(tmp, tensorboard, epochs, seed=0):
    from normbench.schema.config import from_dict

    return from_dict({
        "name": "tbcost", "seed": seed,
        "data": {"name": "synthetic_cifar10", "subset": {"train": 640, "test": 64}},
        "model": {"arch": "cifar10_cnn", "norm": "batch"},
        "train": {"epochs": epochs, "batch_size": 32},
        "output": {"dir": str(tmp), "tensorboard": tensorboard},
    }, "<benchmark>")


def direct(calls: int) -> dict:
    from normbench.training import train
    from normbench.training.callbacks import TensorBoardLog

    with tempfile.TemporaryDirectory(prefix="normbench-tbcost-") as tmp:
        cfg = _cfg(tmp, True, 1)
        data, model = train.prepare(cfg)
        model.fit(data.x_train[:64], data.y_train[:64], batch_size=32, epochs=1, verbose=0)
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        cb = TensorBoardLog(run_dir, cfg)
        cb.set_model(model)
        logs = {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.45}
        t = time.perf_counter()
        cb.on_train_begin()
        cb.on_epoch_end(0, logs)  # warm-up: creates the writers
        start = time.perf_counter() - t
        times = []
        for epoch in range(1, calls + 1):
            t = time.perf_counter()
            cb.on_epoch_end(epoch, logs)
            times.append(time.perf_counter() - t)
        cb.on_train_end()
    return {"start_ms": round(start * 1000, 2), "per_epoch_ms_median": round(statistics.median(times) * 1000, 3),
            "per_epoch_ms_p90": round(sorted(times)[int(0.9 * len(times))] * 1000, 3)}


def end_to_end(reps: int, epochs: int) -> list[dict]:
    from normbench.store import runfolder
    from normbench.training import train

    rows = []
    for rep in range(reps):
        for tb in (False, True):
            with tempfile.TemporaryDirectory(prefix="normbench-tbcost-") as tmp:
                run_dir, s = train.run(_cfg(tmp, tb, epochs), verbose=0)
                secs = [float(r["epoch_seconds"]) for r in runfolder.read_history(run_dir)][1:]
                rows.append({"rep": rep, "tensorboard": tb, "median_epoch_s": round(statistics.median(secs), 4),
                             "wall_s": s["wall_seconds"]})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    d = direct(a.calls)
    print(f"direct: start {d['start_ms']} ms once; on_epoch_end median {d['per_epoch_ms_median']} ms, "
          f"p90 {d['per_epoch_ms_p90']} ms over {a.calls} epochs")
    rows = end_to_end(a.reps, a.epochs) if a.reps else []
    for tb in (False, True):
        med = [r["median_epoch_s"] for r in rows if r["tensorboard"] is tb]
        if med:
            print(f"end to end, tensorboard {str(tb).lower():5}: median epoch {statistics.median(med):.4f} s "
                  f"(reps: {', '.join(f'{m:.4f}' for m in med)})")
    if a.out:
        harness.write_csv(a.out, [{"kind": "direct", **d}, *({"kind": "end_to_end", **r} for r in rows)],
                          ["kind", "rep", "tensorboard", "median_epoch_s", "wall_s", "start_ms",
                           "per_epoch_ms_median", "per_epoch_ms_p90"])


if __name__ == "__main__":
    main()
