"""The CIFAR-10 CNN's training step against this CPU's limit (issue 14).

Three measurements, each in fresh child processes:

1. **The limit**: TensorFlow's achieved FLOP/s on an n x n matrix product (default
   n = 2048), float32 and bfloat16, FLOPs = 2 n^3 per product; --reps timed products of
   each dtype, interleaved, after 2 warm-up products each, in one child per round.
2. **The CNN's FLOPs per training step**: normbench's own model
   (normbench.build.models.build_model with --config, default configs/cifar10_bn.yaml), counted
   analytically from every Conv2D and Dense layer's shapes: MACs per example =
   output positions x kernel taps x input channels x output channels (Dense: inputs x
   units), forward = 2 x MACs x batch; a training step = forward + gradient with respect
   to the layer's input + gradient with respect to its weights, each as many MACs as the
   forward (every forward product appears once in each), so 3 x forward, except for a
   layer that sees the model's input with no trainable layer before it (conv_1 here):
   nothing needs the gradient of the images, and TensorFlow's graph optimizer (Grappler)
   prunes that Conv2DBackpropInput, so it counts 2 x forward. Element-wise work (bias,
   ReLU, normalization, pooling, softmax, Adam's update) is not counted in the analytic
   figure. Cross-check: TensorFlow's profiler statistics ("flops", the numbers
   tf.compat.v1.profiler reports) for every op of Keras' own train_step graph that
   survives Grappler. TF's formula for Conv2DBackpropInput/Filter counts an
   input-sized convolution, more than the real work for 'valid' padding (conv_3:
   6 x 6 input, 4 x 4 output, 2.25x), so its conv gradients are an upper bound.
3. **The CNN's training step**: ms/step of `fit` on random data of the real shapes
   (32 x 32 x 3 uint8 images, as normbench feeds them since images stay uint8 until the
   batch; the plain script's variant gets them as float32 / 255), 10 classes, the config's batch size), for each
   variant (VARIANTS below) in its own fresh process, alternated over rounds
   (limit, A, B, C, ... then again) so drift of the shared host hits all alike. Each child
   builds and compiles the model (normbench.training.train.compiled_model, as `normbench run`),
   fits --warmup steps once (tracing, not timed), then --fits timed fits of --steps steps;
   a fit's ms/step = (last batch end - first batch end) / (steps - 1), so fit's set-up
   and the first batch are left out. A round's figure is the median of its fits (best
   fit also kept). Summary: median over rounds, min over all fits, achieved GFLOP/s =
   analytic FLOPs per step / median step time, as a fraction of the float32 limit (and
   of the bfloat16 limit for mixed_bfloat16), and the median over rounds of each
   variant's ms/step over that round's float32 default (paired).

Outputs (--out X.csv): X.csv one row per variant x round (the limit's two rows per
round included), X_flops.csv the per-layer FLOP table, X_summary.csv the summary.

    python benchmarks/cnn_limit.py --out benchmarks/results/cnn_limit.csv     # the full run
    python benchmarks/cnn_limit.py --quick                            # < 1 min smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import sys
import time
from pathlib import Path

import harness  # benchmarks/harness.py: python benchmarks/x.py puts benchmarks/ first on sys.path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
IMAGE, CLASSES = (32, 32, 3), 10

# name -> what the child changes. "precision": train.precision; "intra"/"inter":
# tf.config.threading (set before TensorFlow runs anything; 0 = TensorFlow's default,
# which is one thread per core for both); "env": the child's environment (read when
# TensorFlow initialises); "set": more config overrides; "plain": the tutorial's
# keras.Sequential written out, no normbench code.
VARIANTS = {
    "float32": {"about": "normbench defaults: float32, TensorFlow's threads, oneDNN on"},
    "mixed_bfloat16": {"precision": "mixed_bfloat16", "about": "train.precision: mixed_bfloat16 (output layer and loss float32)"},
    "threads_2x1": {"intra": 2, "inter": 1, "about": "intra-op 2, inter-op 1"},
    "threads_1x1": {"intra": 1, "inter": 1, "about": "intra-op 1, inter-op 1"},
    "threads_2x2": {"intra": 2, "inter": 2, "about": "intra-op 2, inter-op 2"},
    "onednn_off": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "about": "TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels)"},
    "plain": {"plain": True, "about": "the tutorial's keras.Sequential, compile('adam'), float32"},
    "xla": {"set": ["train.jit_compile=true"], "about": "train.jit_compile: true (not in the defaults: RESULTS.md Result 4)"},
}
DEFAULT_VARIANTS = ["float32", "mixed_bfloat16", "threads_2x1", "threads_1x1", "threads_2x2", "onednn_off", "plain"]
BASELINE = "float32"
QUICK = {"rounds": 1, "steps": 8, "fits": 2, "warmup": 3, "n": 512, "reps": 3, "variants": "float32,mixed_bfloat16"}


# ============================================================================ child side


def _load_config(spec):
    from normbench.schema.config import load_config

    return load_config(spec["config"], spec["overrides"])


def _cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_limit(spec):
    """Achieved FLOP/s of an n x n matmul, float32 and bfloat16 interleaved."""
    import tensorflow as tf

    n = spec["n"]
    a = tf.random.uniform((n, n), seed=1)
    b = tf.random.uniform((n, n), seed=2)
    pairs = {dt: (tf.cast(a, dt), tf.cast(b, dt)) for dt in ("float32", "bfloat16")}
    times = {dt: [] for dt in pairs}
    cpu = {dt: 0.0 for dt in pairs}
    for rep in range(2 + spec["reps"]):  # 2 warm-ups per dtype
        for dt, (x, y) in pairs.items():
            c0, t0 = _cpu_s(), time.perf_counter()
            c = tf.linalg.matmul(x, y)
            c[0, 0].numpy()  # the product is done (eager CPU ops already are; this makes sure)
            t1, c1 = time.perf_counter(), _cpu_s()
            if rep >= 2:
                times[dt].append(t1 - t0)
                cpu[dt] += c1 - c0
    flop = 2 * n**3
    out = []
    for dt, ts in times.items():
        out.append({"variant": f"limit_{dt}", "kind": "limit", "ms_median": 1000 * statistics.median(ts),
                    "ms_min": 1000 * min(ts), "ms_max": 1000 * max(ts), "per_rep_ms": ";".join(f"{1000 * t:.2f}" for t in ts),
                    "gflop": flop / 1e9, "gflops": flop / 1e9 / statistics.median(ts),
                    "gflops_best": flop / 1e9 / min(ts), "cores_busy": cpu[dt] / sum(ts), "dtype": dt, "n": n})
    return out


def _plain_model(norm):
    """The tutorial's CNN written out as a user would (no normbench code): the same
    builder benchmarks/step_time.py times (plain_models.py), compiled as the tutorial does."""
    from plain_models import tutorial_model

    model = tutorial_model("cifar10_cnn", norm)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def child_train(spec):
    """ms/step of one variant, in this fresh process."""
    t_start = time.perf_counter()
    v = VARIANTS[spec["variant"]]
    import tensorflow as tf

    if v.get("intra") or v.get("inter"):  # before TensorFlow runs any op
        tf.config.threading.set_intra_op_parallelism_threads(v.get("intra", 0))
        tf.config.threading.set_inter_op_parallelism_threads(v.get("inter", 0))
    import keras
    import numpy as np

    cfg = _load_config(spec)
    bs = cfg.train.batch_size
    if v.get("plain"):
        keras.utils.set_random_seed(cfg.seed)
        model = _plain_model(cfg.model.norm)
    else:
        from normbench.training.train import compiled_model

        model = compiled_model(cfg, CLASSES, 50_000)  # the count only sizes the schedule (constant here)
    rng = np.random.default_rng(spec["round"])
    n = bs * spec["steps"]
    x = rng.integers(0, 256, (n, *IMAGE), dtype=np.uint8)  # normbench keeps images uint8 until the batch
    if v.get("plain"):
        x = x.astype("float32") / 255.0  # the tutorial scales the whole array up front
    y = rng.integers(0, CLASSES, size=n).astype("int32")
    loss_dtype = keras.backend.standardize_dtype(model.compute_loss(x[:2], y[:2], model(x[:2]), training=False).dtype)

    class Times(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    timer = Times()
    t0 = time.perf_counter()
    model.fit(x[: bs * spec["warmup"]], y[: bs * spec["warmup"]], batch_size=bs, epochs=1, verbose=0)
    first_fit_s = time.perf_counter() - t0
    ms, busy, hist = [], [], None
    for _ in range(spec["fits"]):
        c0, t0 = _cpu_s(), time.perf_counter()
        hist = model.fit(x, y, batch_size=bs, epochs=1, verbose=0, callbacks=[timer])
        busy.append((_cpu_s() - c0) / (time.perf_counter() - t0))
        ms.append(1000 * (timer.ends[-1] - timer.ends[0]) / (len(timer.ends) - 1))
    head = model.layers[-1]
    return [{"variant": spec["variant"], "kind": "train", "ms_median": statistics.median(ms), "ms_min": min(ms),
             "ms_max": max(ms), "per_rep_ms": ";".join(f"{m:.2f}" for m in ms), "cores_busy": statistics.median(busy),
             "first_fit_s": first_fit_s, "batch_size": bs, "steps": spec["steps"],
             "policy": model.dtype_policy.name, "conv_1_compute_dtype": model.layers[0].compute_dtype,
             "head_compute_dtype": head.compute_dtype, "loss_dtype": loss_dtype,
             "intra_threads": tf.config.threading.get_intra_op_parallelism_threads(),
             "inter_threads": tf.config.threading.get_inter_op_parallelism_threads(),
             "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
             "params": int(model.count_params()), "final_loss": float(hist.history["loss"][-1]),
             "child_s": time.perf_counter() - t_start}]


def _analytic(model, batch):
    """Per-layer multiply-adds and training-step FLOPs from the layers' shapes."""
    rows, trainable_before = [], False
    for layer in model.layers:
        kind = layer.__class__.__name__
        out_shape = tuple(layer.output.shape[1:])
        macs = 0
        if kind == "Conv2D":
            kh, kw, cin, cout = layer.kernel.shape  # cin is per group already
            if tuple(layer.dilation_rate) != (1, 1):
                raise SystemExit(f"{layer.name}: dilated convolutions are not counted by this script")
            macs = out_shape[0] * out_shape[1] * kh * kw * cin * cout
        elif kind == "Dense":
            din, units = layer.kernel.shape
            positions = 1
            for d in out_shape[:-1]:
                positions *= d
            macs = positions * din * units
        fwd = 2 * macs * batch
        input_grad = fwd if (macs and trainable_before) else 0
        rows.append({"layer": layer.name, "type": kind, "output": "x".join(map(str, out_shape)),
                     "params": int(layer.count_params()), "macs_per_example": macs, "forward_flop": fwd,
                     "input_grad_flop": input_grad, "weight_grad_flop": fwd if macs else 0,
                     "step_flop": fwd + input_grad + (fwd if macs else 0)})
        trainable_before = trainable_before or bool(layer.trainable_weights)
    return rows


def _profiler(model, batch, layer_names):
    """TensorFlow's own "flops" statistics (what tf.compat.v1.profiler sums) for the ops
    of Keras' train_step graph that survive Grappler, by layer and op type."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.grappler import tf_optimizer

    x = tf.TensorSpec((batch, *IMAGE), tf.uint8)  # normbench's CNN takes uint8 images (layers.Pixels scales them)
    y = tf.TensorSpec((batch,), tf.int32)
    graph = tf.function(model.train_step).get_concrete_function((x, y)).graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(add_shapes=True), graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    for t in graph.outputs:
        fetch.node_list.value.append(t.name)
    for op in graph.control_outputs:
        fetch.node_list.value.append(op.name)
    meta.collection_def["train_op"].CopyFrom(fetch)
    kept = {node.name for node in tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta).node}
    names = sorted(layer_names, key=len, reverse=True)  # conv_1 before conv
    by_layer, pruned = {}, []
    total = 0
    for op in graph.get_operations():
        try:
            flops = int(tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0)
        except Exception:  # ops without a registered statistic
            flops = 0
        if not flops:
            continue
        if op.name not in kept:
            pruned.append(f"{op.type} {op.name} ({flops / 1e6:.1f} MFLOP)")
            continue
        total += flops
        layer = next((n for n in names if re.search(rf"(^|/){re.escape(n)}(_\d+)?/", op.name)), "(other)")
        part = "product" if op.type in ("Conv2D", "MatMul", "Conv2DBackpropInput", "Conv2DBackpropFilter") else "elementwise"
        by_layer.setdefault(layer, {"product": 0, "elementwise": 0})[part] += flops
    return {"total": total, "by_layer": by_layer, "pruned": pruned}


def child_flops(spec):
    from normbench.build.models import build_model

    cfg = _load_config(spec)
    model = build_model(cfg, CLASSES)
    batch = cfg.train.batch_size
    rows = _analytic(model, batch)
    prof, err = None, None
    if not spec["no_profiler"]:
        from normbench.training.train import compiled_model

        try:
            prof = _profiler(compiled_model(cfg, CLASSES, 50_000), batch, [r["layer"] for r in rows])
        except Exception as e:  # private TensorFlow APIs: a cross-check, never a failure
            err = f"{type(e).__name__}: {e}"[:300]
    for r in rows:
        r["tf_profiler_product_flop"] = prof["by_layer"].get(r["layer"], {}).get("product", 0) if prof else None
        r["tf_profiler_elementwise_flop"] = prof["by_layer"].get(r["layer"], {}).get("elementwise", 0) if prof else None
    other = prof["by_layer"].get("(other)", {}) if prof else {}
    return {"rows": rows, "batch": batch, "arch": cfg.model.arch, "norm": cfg.model.norm,
            "profiler_total": prof["total"] if prof else None, "profiler_other": sum(other.values()) if prof else None,
            "profiler_pruned": prof["pruned"] if prof else [], "profiler_error": err}


def child_main(spec_json):
    spec = json.loads(spec_json)
    out = {"limit": child_limit, "train": child_train, "flops": child_flops}[spec["kind"]](spec)
    harness.print_result({"out": out, "peak_rss_mb": harness.peak_rss_mb()})


# ============================================================================ parent side


def fail(flag, problem, fix):
    print(f"Error: {flag}: {problem}; {fix}", file=sys.stderr)
    sys.exit(2)


def run_child(spec, timeout):
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(VARIANTS.get(spec.get("variant"), {}).get("env", {}))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    t0 = time.time()
    res, err = harness.run_child([sys.executable, str(HERE), "--child", json.dumps(spec)], env, timeout)
    if err is not None:
        return None, err
    res["wall_s"] = time.time() - t0
    return res, None


def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def write_csv(path, rows):
    rows = [{k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    harness.write_csv(path, rows, lineterminator="\n", atomic=True)


machine = harness.machine


def print_flops(fl):
    g = 1e9
    print(f"\nFLOPs per training step: {fl['arch']} + {fl['norm']} norm, batch {fl['batch']} "
          f"(analytic: Conv2D/Dense only; GFLOP)")
    print(f"{'layer':<9} {'type':<19} {'output':<9} {'params':>7} {'MACs/ex':>10} {'forward':>8} {'in-grad':>8} "
          f"{'w-grad':>8} {'step':>8} {'TF prof.':>9} {'TF elem.':>9}")
    for r in fl["rows"]:
        print(f"{r['layer']:<9} {r['type']:<19} {r['output']:<9} {r['params']:>7} {r['macs_per_example']:>10} "
              f"{r['forward_flop'] / g:>8.4f} {r['input_grad_flop'] / g:>8.4f} {r['weight_grad_flop'] / g:>8.4f} "
              f"{r['step_flop'] / g:>8.4f} {fmt(r['tf_profiler_product_flop'] and r['tf_profiler_product_flop'] / g, '9.4f')} "
              f"{fmt(r['tf_profiler_elementwise_flop'] and r['tf_profiler_elementwise_flop'] / g, '9.4f')}")
    tot = {k: sum(r[k] for r in fl["rows"]) for k in ("forward_flop", "input_grad_flop", "weight_grad_flop", "step_flop")}
    print(f"{'total':<9} {'':<19} {'':<9} {sum(r['params'] for r in fl['rows']):>7} "
          f"{sum(r['macs_per_example'] for r in fl['rows']):>10} {tot['forward_flop'] / g:>8.4f} "
          f"{tot['input_grad_flop'] / g:>8.4f} {tot['weight_grad_flop'] / g:>8.4f} {tot['step_flop'] / g:>8.4f} "
          + (f"{sum(r['tf_profiler_product_flop'] for r in fl['rows']) / g:>9.4f} "
             f"{sum(r['tf_profiler_elementwise_flop'] for r in fl['rows']) / g:>9.4f}" if fl["profiler_total"] is not None else ""))
    first = next((r for r in fl["rows"] if r["macs_per_example"]), None)
    if first:
        print(f"  {first['layer']} has no input gradient (nothing before it has weights; the images need none).")
    if fl["profiler_error"]:
        print(f"  TF profiler cross-check unavailable: {fl['profiler_error']}")
    elif fl["profiler_total"] is not None:
        print(f"  TF profiler, all ops kept by Grappler: {fl['profiler_total'] / g:.4f} GFLOP "
              f"(element-wise ops outside the layers, e.g. loss, metrics, Adam: {fl['profiler_other'] / g:.4f}); "
              f"its conv gradients count input-sized convolutions, an upper bound for 'valid' padding")
        for p in fl["profiler_pruned"]:
            print(f"  pruned by Grappler (not run): {p}")
    return tot["step_flop"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/cifar10_bn.yaml",
                   help="normbench config of the CNN, relative to here or to the repository (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, as normbench run --set")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma list, in this order each round (default: %(default)s; also: "
                        f"{', '.join(v for v in VARIANTS if v not in DEFAULT_VARIANTS)})")
    p.add_argument("--rounds", type=int, default=5, help="rounds of every variant in a fresh process (default: %(default)s)")
    p.add_argument("--steps", type=int, default=50, help="training steps per timed fit (default: %(default)s)")
    p.add_argument("--fits", type=int, default=3, help="timed fits per process (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=10, help="steps of the untimed first fit (tracing) (default: %(default)s)")
    p.add_argument("--n", type=int, default=2048, help="matrix size of the limit's matmul (default: %(default)s)")
    p.add_argument("--reps", type=int, default=10, help="timed matmuls per dtype per round (default: %(default)s)")
    p.add_argument("--no-profiler", action="store_true", help="skip the TF profiler cross-check of the FLOP count")
    p.add_argument("--out", default=None, help="CSV of every variant x round, plus _flops and _summary CSVs beside it "
                                               "(default: print only)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per child process (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help=f"a < 1 minute smoke check: {QUICK} (flags given override)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.quick:
        for k, v in QUICK.items():
            if getattr(args, k) == p.get_default(k):
                setattr(args, k, v)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            fail("--variants", f"unknown variant {v!r}", f"choose from {', '.join(VARIANTS)}")
    for flag in ("rounds", "fits", "n", "reps", "warmup"):
        if getattr(args, flag) < 1:
            fail(f"--{flag}", f"must be >= 1, got {getattr(args, flag)}", "use a positive number")
    if args.steps < 2:
        fail("--steps", f"must be >= 2, got {args.steps}", "a fit's ms/step needs two batch ends")
    if not Path(args.config).exists() and (REPO / args.config).exists():
        args.config = str(REPO / args.config)
    sys.path.insert(0, str(REPO))
    from normbench import NormbenchError
    from normbench.schema.config import load_config

    try:
        cfg = load_config(args.config, args.set)
    except NormbenchError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    if cfg.model.arch != "cifar10_cnn":
        fail("--config", f"model.arch is {cfg.model.arch}, this benchmark times cifar10_cnn", "pass a CIFAR-10 config")
    if "plain" in variants and cfg.model.norm not in ("batch", "layer", "none"):
        fail("--variants", f"plain writes out batch, layer and none norms only, not {cfg.model.norm}", "drop plain or change the norm")
    out = Path(args.out) if args.out else None
    if out and not out.parent.is_dir():
        fail("--out", f"folder {out.parent} does not exist", "create it or choose another path")

    t_all = time.time()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    base = {"config": args.config, "overrides": list(args.set)}
    res, err = run_child({**base, "kind": "flops", "no_profiler": args.no_profiler}, args.timeout)
    if err:
        print(f"Error: FLOP count failed: {err}", file=sys.stderr)
        sys.exit(1)
    fl = res["out"]
    step_flop = print_flops(fl)

    rows = []
    print(f"\n{args.rounds} round(s): limit, then {', '.join(variants)} each in a fresh process; "
          f"{args.fits} fit(s) x {args.steps} steps (+ {args.warmup} warm-up) per process")
    for rnd in range(args.rounds):
        order = ["limit"] + variants
        for pos, v in enumerate(order):
            spec = dict(base, round=rnd, variant=v)
            overrides = list(args.set) + VARIANTS.get(v, {}).get("set", [])
            if VARIANTS.get(v, {}).get("precision"):
                overrides.append(f"train.precision={VARIANTS[v]['precision']}")
            spec.update(overrides=overrides, kind="limit" if v == "limit" else "train", n=args.n, reps=args.reps,
                        steps=args.steps, fits=args.fits, warmup=args.warmup)
            load0 = os.getloadavg()[0]
            res, err = run_child(spec, args.timeout)
            if err:
                if rows and out:
                    part = out.with_name(out.stem + ".partial.csv")
                    write_csv(part, rows)
                    print(f"(rows so far in {part})", file=sys.stderr)
                print(f"Error: {v} (round {rnd}) failed: {err}", file=sys.stderr)
                sys.exit(1)
            for r in res["out"]:
                r = {"round": rnd, "position": pos, **r, "load_before": load0, "load_after": os.getloadavg()[0],
                     "peak_rss_mb": round(res["peak_rss_mb"]), "process_s": round(res["wall_s"], 2)}
                if r["kind"] == "train":
                    r["gflop"] = step_flop / 1e9
                    r["gflops"] = step_flop / 1e9 / (r["ms_median"] / 1000)
                rows.append(r)
                print(f"  round {rnd} {r['variant']:<16} {r['ms_median']:8.2f} ms ({r['per_rep_ms'].replace(';', ' ')})  "
                      f"{r['gflops']:6.1f} GFLOP/s  cores busy {r['cores_busy']:.2f}  load {load0:.2f}", flush=True)

    # ------------------------------------------------------------------ summary
    def of(variant):
        return [r for r in rows if r["variant"] == variant]

    limit = {dt: statistics.median(r["gflops"] for r in of(f"limit_{dt}")) for dt in ("float32", "bfloat16")}
    summary = []
    for dt in ("float32", "bfloat16"):
        rs = of(f"limit_{dt}")
        best = [2 * args.n**3 / 1e9 / (float(m) / 1000) for r in rs for m in r["per_rep_ms"].split(";")]
        summary.append({"variant": f"limit_{dt}", "rounds": len(rs), "ms_median": statistics.median(r["ms_median"] for r in rs),
                        "gflops": limit[dt], "gflops_min": min(best), "gflops_max": max(best), "n": args.n})
    base_ms = {r["round"]: r["ms_median"] for r in of(BASELINE)}
    for v in variants:
        rs = of(v)
        ms = statistics.median(r["ms_median"] for r in rs)
        paired = [r["ms_median"] / base_ms[r["round"]] for r in rs if r["round"] in base_ms]
        gflops = step_flop / 1e9 / (ms / 1000)
        summary.append({
            "variant": v, "rounds": len(rs), "ms_median": ms, "ms_min": min(r["ms_min"] for r in rs),
            "ms_max": max(r["ms_max"] for r in rs), "per_round_ms": ";".join(f"{r['ms_median']:.2f}" for r in rs),
            "gflop_per_step": step_flop / 1e9, "gflops": gflops, "of_float32_limit": gflops / limit["float32"],
            "of_bfloat16_limit": gflops / limit["bfloat16"] if VARIANTS[v].get("precision") == "mixed_bfloat16" else None,
            "vs_float32_paired_median": statistics.median(paired) if paired and v != BASELINE else None,
            "vs_float32_per_round": ";".join(f"{x:.3f}" for x in paired) if v != BASELINE else None,
            "cores_busy": statistics.median(r["cores_busy"] for r in rs),
            "first_fit_s": statistics.median(r["first_fit_s"] for r in rs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
            "policy": rs[0]["policy"], "head_compute_dtype": rs[0]["head_compute_dtype"], "loss_dtype": rs[0]["loss_dtype"],
            "about": VARIANTS[v]["about"],
        })
    print(f"\nlimit: {args.n}x{args.n} matmul, median of {args.rounds} round(s) x {args.reps} products")
    for s in summary[:2]:
        print(f"  {s['variant'][6:]:<9} {s['gflops']:7.1f} GFLOP/s (single products {s['gflops_min']:.1f}-{s['gflops_max']:.1f}), "
              f"{s['ms_median']:.1f} ms per product")
    print(f"\nCNN training step: {step_flop / 1e9:.3f} GFLOP (analytic), medians over {args.rounds} round(s)")
    print(f"{'variant':<16} {'ms/step':>8} {'min':>7} {'GFLOP/s':>8} {'of f32 limit':>12} {'of bf16 limit':>13} "
          f"{'vs float32 (paired)':>19} {'cores busy':>10} {'first fit s':>11}  policy / head / loss")
    for s in summary[2:]:
        print(f"{s['variant']:<16} {s['ms_median']:8.2f} {s['ms_min']:7.2f} {s['gflops']:8.1f} {s['of_float32_limit']:12.3f} "
              f"{fmt(s['of_bfloat16_limit'], '.3f'):>13} {fmt(s['vs_float32_paired_median'], '.3f'):>19} "
              f"{s['cores_busy']:10.2f} {s['first_fit_s']:11.1f}  {s['policy']} / {s['head_compute_dtype']} / {s['loss_dtype']}")
    print(f"  time at the float32 limit: {step_flop / 1e6 / limit['float32']:.2f} ms/step; "
          f"at the bfloat16 limit: {step_flop / 1e6 / limit['bfloat16']:.2f} ms/step")
    if out:
        write_csv(out, rows)
        write_csv(out.with_name(out.stem + "_flops.csv"), fl["rows"])
        write_csv(out.with_name(out.stem + "_summary.csv"), summary)
        print(f"\nwrote {out}, {out.stem}_flops.csv, {out.stem}_summary.csv")
    print(f"({time.time() - t_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
