"""Per-op profile of the CIFAR-10 CNN's training step (issue 23): where a step's time goes.

normbench's own model (`normbench.training.train.compiled_model`, as `normbench run` builds it, from
--config, default configs/cifar10_bn.yaml) fits --warmup steps (tracing, not profiled),
then --steps steps under TensorFlow's profiler (`tf.profiler.experimental`); the trace is
read back with TensorFlow's own converter (the "framework_op_stats" tool that
TensorBoard's profile plugin shows) and summed per (group, op type): self time per step
(summed over threads, so it can exceed the step's wall time; the profiler's IDLE left
out), its share, the profiler's FLOP rate and memory bandwidth. The groups are the
issue's: convolutions forward, their input and filter gradients, the norm forward and
backward, pooling, dense matmuls, element-wise work of the layers, the optimizer's
update (Adam), the input pipeline, and the rest (group_of).

Data: random uint8 images of CIFAR-10's shape and random labels (the time of a step does
not depend on the pixel values), batch from the config.

    python benchmarks/cnn_profile.py --steps 100 --out benchmarks/results/cnn_profile.csv
    python benchmarks/cnn_profile.py --steps 3 --warmup 2 --quick   # a smoke run

Writes one row per op type to --out (sorted by time) and prints the groups' table.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# A group from the op's type and its name scope (Keras 3 names each op after its layer and
# the optimizer: .../conv_2_1/..., .../norm_1_1/moments/..., .../adam/Mul_3, gradient_tape/...).
# Keras 3's BatchNormalization on TensorFlow is plain ops (moments, Tile, Sub, Mul), not
# TensorFlow's FusedBatchNorm, so the norm is found by its layer's name, not its op type.
LAYER = re.compile(r"/(conv|norm|pool|dense|head|pixels|flatten)_\d+(?:_\d+)?/")


def group_of(op_type: str, name: str) -> str | None:
    """The issue's groups; None for the profiler's IDLE (a thread waiting)."""
    if op_type == "IDLE":
        return None
    backward = "gradient_tape/" in name
    layer = LAYER.search(name)
    kind = layer.group(1) if layer else None
    if "Conv2DBackpropInput" in op_type:
        return "conv input gradient"
    if "Conv2DBackpropFilter" in op_type:
        return "conv filter gradient (+ bias gradient)"
    if "Conv2D" in op_type:
        return "conv forward (+ bias + relu, fused)"
    if kind == "norm":
        return "norm backward" if backward else "norm forward"
    if "MaxPool" in op_type:
        return "pooling (forward and gradient)"
    if "MatMul" in op_type:
        return "dense matmuls (forward and gradients)"
    if "/adam/" in name or op_type.startswith(("Assign", "ResourceApply")):
        return "optimizer update (Adam)"
    if kind in ("conv", "dense", "head"):
        return "layers' element-wise (relu/bias grads, softmax)"
    if op_type == "Dataset" or name.startswith("Iterator::"):
        return "input pipeline"
    return "other (loss, gradient sums, metrics, casts)"


def profile(config: str, steps: int, warmup: int) -> tuple[list[dict], dict]:
    import numpy as np

    from normbench.core.quiet import import_keras

    import_keras()
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    from normbench.schema.config import load_config
    from normbench.training.train import compiled_model

    cfg = load_config(config)
    batch = cfg.train.batch_size
    model = compiled_model(cfg, 10, 40000)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(batch * max(steps, warmup), 32, 32, 3), dtype="uint8")
    y = rng.integers(0, 10, size=(len(x),))
    model.fit(x[: batch * warmup], y[: batch * warmup], batch_size=batch, epochs=1, verbose=0)
    logdir = tempfile.mkdtemp(prefix="nb-profile-")
    tf.profiler.experimental.start(logdir)
    t0 = time.perf_counter()
    model.fit(x[: batch * steps], y[: batch * steps], batch_size=batch, epochs=1, verbose=0)
    wall = time.perf_counter() - t0
    tf.profiler.experimental.stop()
    planes = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    data, ok = plugin.xspace_to_tools_data(planes, "framework_op_stats", {})
    if not ok:
        raise SystemExit("TensorFlow's profiler converter returned no op statistics")
    table = json.loads(data)[0]
    cols = [c["id"] for c in table["cols"]]
    rows = [dict(zip(cols, (cell.get("v") if cell else None for cell in r["c"]))) for r in table["rows"]]
    by_type: dict[str, dict] = {}
    for r in rows:
        t, group = r["type"], group_of(r["type"], r["operation"] or "")
        if group is None:
            continue
        e = by_type.setdefault((group, t), {"op_type": t, "group": group, "occurrences": 0, "self_us": 0.0,
                                            "flop_rate": 0.0, "memory_bw": 0.0})
        e["occurrences"] += int(r["occurrences"] or 0)
        e["self_us"] += float(r["total_self_time"] or 0)
        # time-weighted FLOP rate and bandwidth over the op type's ops
        e["flop_rate"] += float(r.get("measured_flop_rate") or 0) * float(r["total_self_time"] or 0)
        e["memory_bw"] += float(r.get("measured_memory_bw") or 0) * float(r["total_self_time"] or 0)
    total = sum(e["self_us"] for e in by_type.values())
    out = []
    for e in sorted(by_type.values(), key=lambda e: -e["self_us"]):
        out.append({"op_type": e["op_type"], "group": e["group"], "per_step": round(e["occurrences"] / steps, 2),
                    "ms_per_step": round(e["self_us"] / 1000 / steps, 4),
                    "share": round(e["self_us"] / total, 4) if total else 0.0,
                    "gflop_s": round(e["flop_rate"] / e["self_us"] / 1e9, 2) if e["self_us"] else 0.0,
                    "gb_s": round(e["memory_bw"] / e["self_us"], 2) if e["self_us"] else 0.0})
    info = {"config": config, "steps": steps, "batch": batch, "fit_ms_per_step": round(1000 * wall / steps, 2),
            "op_ms_per_step": round(total / 1000 / steps, 2), "cores": os.cpu_count(),
            "load1": round(os.getloadavg()[0], 1), "cpu": platform.processor() or platform.machine()}
    return out, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs/cifar10_bn.yaml"))
    ap.add_argument("--steps", type=int, default=100, help="profiled training steps")
    ap.add_argument("--warmup", type=int, default=20, help="steps fitted first (tracing), not profiled")
    ap.add_argument("--quick", action="store_true", help="a smoke run: print the table, nothing else")
    ap.add_argument("--out", default=None, help="CSV, one row per op type")
    a = ap.parse_args()
    rows, info = profile(a.config, a.steps, a.warmup)
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[*rows[0], *info])
            w.writeheader()
            w.writerows({**r, **info} for r in rows)
    groups: dict[str, list] = {}
    for r in rows:
        g = groups.setdefault(r["group"], [0.0, 0.0, []])
        g[0] += r["ms_per_step"]
        g[1] += r["share"]
        g[2].append(r["op_type"])
    print(f"{info['config']}: batch {info['batch']}, {info['steps']} steps, fit {info['fit_ms_per_step']} ms/step, "
          f"ops {info['op_ms_per_step']} ms/step (load {info['load1']} on {info['cores']} cores)")
    print(f"{'group':24} {'ms/step':>8} {'share':>6}  op types")
    for name, (ms, share, types) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(f"{name:24} {ms:8.3f} {100 * share:5.1f}%  {', '.join(types[:6])}{' ...' if len(types) > 6 else ''}")


if __name__ == "__main__":
    main()
