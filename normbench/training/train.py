"""One training run: validated Config -> run folder. The training path is here; its Keras
callbacks (history rows, best weights, backup, TensorBoard) are in `normbench.training.callbacks`,
and `add_callbacks` adds your own.

The run folder's files and formats belong to `normbench.store.runfolder`; this module fills
them. backup/ holds Keras BackupAndRestore state (and the best validation epoch's
weights) while the run is unfinished, deleted only after summary.json is written, so
`normbench run --resume DIR` continues where it stopped (after the last epoch it only
evaluates).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

from normbench.core.errors import NormbenchError, one_line
from normbench.core.version import __version__
from normbench.build import optim
from normbench.store import runfolder
from normbench.core import metrics, signals
from normbench.schema.config import Config, dump_yaml, from_dict, load_run_yaml, read_yaml, resolve_flat
from normbench.store.identity import identity
from normbench.build.optim import resolved_unroll
from normbench.core.runlock import RunLock


# ----------------------------------------------------------------------------- host


def host_info() -> dict:
    import keras

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = []
    if keras.backend.backend() == "jax":
        import jax

        gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    else:
        import tensorflow as tf

        for dev in tf.config.list_physical_devices("GPU"):
            try:
                gpus.append(tf.config.experimental.get_device_details(dev).get("device_name", dev.name))
            except Exception:
                gpus.append(dev.name)
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "gpus": gpus, "platform": platform.platform()}


def _dist_version(*names: str) -> str | None:
    from importlib import metadata

    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return None


def versions() -> dict:
    import keras
    import numpy

    out = {
        "python": platform.python_version(),
        # from package metadata: under the JAX backend TensorFlow is never imported
        "tensorflow": _dist_version("tensorflow-cpu", "tensorflow"),
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "normbench": __version__,
        "backend": keras.backend.backend(),
    }
    if out["backend"] == "jax":
        out["jax"] = _dist_version("jax")
    return out


def _installed(module: str) -> bool:
    from normbench.core.checks import installed

    return installed(module)


def use_backend(name: str) -> None:
    """Make Keras run on backend `name` in this process. Keras reads KERAS_BACKEND once,
    at its first import, so this must come before anything imports Keras; it does in
    `normbench run` and in every sweep member (each is its own process)."""
    if name == "jax" and not _installed("jax"):
        raise NormbenchError(
            "train.backend: jax is not installed; install it with `pip install 'normbench[jax]'` "
            "or set train.backend: tensorflow"
        )
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if current != name:
            raise NormbenchError(
                f"train.backend: Keras is already running on {current} in this process and cannot switch to {name}; "
                f"run the config with `normbench run` (a fresh process) or start Python with KERAS_BACKEND={name}"
            )
        return
    os.environ["KERAS_BACKEND"] = name


def configure_threads(threads: int | None) -> None:
    """Limit TensorFlow's CPU threads (parallel sweeps divide the cores). Must run
    before TensorFlow executes anything."""
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    except RuntimeError:
        pass  # already initialised in this process: keep its settings


# ----------------------------------------------------------------------------- callbacks

# factories of extra callbacks, called for every fit in this process (add_callbacks)
_EXTRA: list = []


def add_callbacks(factory):
    """Add a callback to every run trained in this process from now on: `factory(ctx)` is
    called each time a run builds its callbacks, with a `normbench.training.callbacks.Context`
    (run_dir, cfg, epochs and normbench's own EpochLog and BestWeights), and returns a
    Keras callback, a list of them or None. They run after normbench's own callbacks
    (so after each epoch's history row, best weights and backup are written), in the
    order added. A callback with an `on_run_end(summary)` method has it called once
    summary.json is written. Returns a function that removes the factory again."""
    _EXTRA.append(factory)
    return lambda: _EXTRA.remove(factory) if factory in _EXTRA else None


@contextlib.contextmanager
def extra_callbacks(*factories):
    """add_callbacks for the duration of a block."""
    removers = [add_callbacks(f) for f in factories]
    try:
        yield
    finally:
        for remove in removers:
            remove()


def _builtin_factories(cfg: Config) -> list:
    """The extras a config asks for itself (before any added with add_callbacks)."""
    if cfg.output.tensorboard:
        from normbench.training.callbacks import tensorboard

        return [tensorboard]
    return []


def build_callbacks(run_dir: Path, epochs: int, cfg: Config | None = None):
    """normbench's callbacks for one fit, then the config's extras, then those added with
    add_callbacks: a `normbench.training.callbacks.RunCallbacks` (log, best, callbacks)."""
    from normbench.training import callbacks

    builtin = _builtin_factories(cfg) if cfg is not None else []
    return callbacks.build(run_dir, epochs, cfg, [*builtin, *_EXTRA])


def _disk_full(e: BaseException) -> bool:
    import errno

    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def _disk_full_error(run_dir: Path) -> NormbenchError:
    return NormbenchError(f"output.dir: no space left on the device of {run_dir}; free some space, then resume "
                          f"with: normbench run --resume {run_dir}")


def _op_determinism(cfg: Config):
    """Whether TensorFlow op determinism is on in this process (None on JAX)."""
    if cfg.train.backend != "tensorflow":
        return None
    try:  # TensorFlow exports only the setter; this reader is the one it uses itself
        from tensorflow.python.framework.config import is_op_determinism_enabled
    except ImportError:
        return None
    return bool(is_op_determinism_enabled())


# ----------------------------------------------------------------------------- run


def compiled_model(cfg: Config, num_classes: int, n_examples: int, input_dtype: str | None = None,
                   input_shape=None, info: dict | None = None):
    """A freshly seeded, built and compiled model for a config whose training set has
    `n_examples` examples (before the validation split; the schedule needs the steps)
    of dtype `input_dtype` (images: uint8, scaled inside the model, or float32) and
    shape `input_shape` per example (user models; `info` gets what was built)."""
    import keras

    from normbench.build.models import build_model, loss_for, metrics_for

    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg, num_classes, input_dtype, input_shape, info)
    model.compile(
        optimizer=optim.build(cfg, optim.plan(cfg, n_examples)),
        loss=loss_for(cfg, model),
        metrics=metrics_for(cfg, model),
        jit_compile=cfg.train.jit_compile,
        steps_per_execution=cfg.train.steps_per_execution,
    )
    return model


def prepare(cfg: Config, threads: int | None = None):
    """Data and compiled model for a config: everything that can fail before a run folder
    exists. Returns (data, model)."""
    use_backend(cfg.train.backend)
    if cfg.output.tensorboard and not _installed("tensorboard"):
        raise NormbenchError("output.tensorboard: tensorboard is not installed; install it with "
                             "`pip install 'normbench[tensorboard]'` or set output.tensorboard: false")
    from normbench.build.data import load_data
    from normbench.core.quiet import import_keras

    import_keras()  # before anything else loads TensorFlow: its start-up notices filtered

    if cfg.train.backend == "jax" and cfg.model.unroll is True:
        warnings.warn(
            "model.unroll: true on the jax backend trains ~7x slower per step (XLA compiles the unrolled loop "
            "poorly on CPU); use --set model.unroll=auto", stacklevel=2,
        )

    if cfg.train.backend == "tensorflow":  # TensorFlow settings; on JAX, XLA:CPU picks its own threads
        configure_threads(threads)
        if cfg.train.deterministic:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
    data = load_data(cfg.data, cfg.seed, cfg.train.validation_split)
    info = {}
    model = compiled_model(cfg, data.num_classes, len(data.x_train), data.x_train.dtype.name, data.x_train.shape[1:], info)
    model.normbench_info = info  # what a user model was built from (summary.json's model_source, model_sha256)
    return data, model


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training; `run_dir` is the folder to resume."""

    def __init__(self, run_dir):
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def run(cfg: Config, *, run_dir: Path | None = None, run_id: str | None = None, verbose="auto", threads=None, resume=False, announce=None, lock=None) -> tuple[Path, dict]:
    """Train one config. Returns (run folder, summary). With resume=True, `run_dir` is an
    existing run folder that continues from its last finished epoch. `announce(run_dir)`
    is called once the folder exists, before training. The folder's lock (runlock) is
    held until this returns; `lock` passes one the caller already holds.

    The steps: prepare (data, model), open the folder, plan, fit (with a resume whose
    backup no longer loads trained again from epoch 1), evaluate, finish (summary.json,
    the index, the backup removed). Ctrl-C and SIGTERM stop it resumable; a full disk
    keeps the backup and writes no summary."""
    started, t_start = time.time(), time.perf_counter()
    if run_dir is not None and lock is None:
        lock = RunLock(run_dir)  # a folder busy elsewhere fails before any data loads
    data, model = prepare(cfg, threads)
    run_dir, lock = _open_folder(cfg, run_dir, run_id, lock, resume)
    if announce:
        announce(run_dir)
    plan = optim.plan(cfg, len(data.x_train))  # epochs and steps under train.budget
    fitting = _Fitting(cfg, data, model, plan, run_dir, resume, verbose)
    summary = _first_summary(cfg, run_dir, data, model, plan, started)
    status, test = "failed", None
    restore_sigterm = signals.sigterm_raises()  # SIGTERM is handled like Ctrl-C: the run stops resumable
    try:
        fitting.fit()
        status = "diverged" if fitting.log.diverged else "completed"
        test = _evaluate(fitting.model, data, cfg, fitting.best)
    except KeyboardInterrupt:
        status = "interrupted"
        raise RunInterrupted(run_dir) from None
    except Exception as e:
        status = "failed"
        from normbench.core.reasons import describe

        summary["error"] = describe(e)
        if _disk_full(e):  # resumable: the backup holds the last epoch that was saved whole
            raise _disk_full_error(run_dir) from None
        raise
    finally:
        restore_sigterm()
        try:
            written = _finish_folder(run_dir, cfg, summary, fitting, status, test, t_start, plan)
        finally:
            lock.release()
    if not written:
        raise _disk_full_error(run_dir)
    return run_dir, summary


def _open_folder(cfg: Config, run_dir, run_id, lock, resume: bool) -> tuple[Path, object]:
    """The run folder (a new one, or `run_dir`) and its lock; no stale summary.json; a new
    run's config.yaml written (a full disk is the one-line disk error)."""
    if run_dir is None:
        run_dir = runfolder.new_run_dir(cfg.output.dir, cfg.name, cfg.seed, run_id)
        lock = RunLock(run_dir)
    run_dir = Path(run_dir)
    runfolder.remove_summary(run_dir)  # nothing stale looks finished
    if not resume:
        try:
            runfolder.write_config(run_dir, dump_yaml(cfg))
        except OSError as e:
            if _disk_full(e):
                raise _disk_full_error(run_dir) from None
            raise
    return run_dir, lock


def _first_summary(cfg: Config, run_dir: Path, data, model, plan, started: float) -> dict:
    """What summary.json says before training: the run, its data, its model, its plan,
    versions and host, and the run's identity (what determined its training)."""
    summary = {
        "status": "running",
        "run_id": run_dir.name,
        "name": cfg.name,
        "model": cfg.model.arch or getattr(model, "normbench_info", {}).get("source"),
        "norm": cfg.model.norm,
        "seed": cfg.seed,
        "batch_size": cfg.train.batch_size,
        "data_source": data.source,
        "data_fingerprint": data.fingerprint,
        "preprocess_fingerprint": data.preprocess_fingerprint or None,
        "eval": cfg.train.eval,
        "n_train": plan.n_fit,
        "n_val": plan.n_val,
        "n_test": len(data.x_test),
        "chance_accuracy": chance_accuracy(data.y_test),
        "params": int(model.count_params()),
        "steps_per_epoch": plan.steps_per_epoch,
        "optimizer_steps": plan.total_steps,
        "peak_learning_rate": plan.peak_learning_rate,
        "jit_compile": bool(model.jit_compile),
        "unroll": resolved_unroll(cfg),
        "precision": model.dtype_policy.name,
        "deterministic": cfg.train.deterministic,
        "op_determinism": _op_determinism(cfg),
        "started_at": _dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "versions": versions(),
        "host": host_info(),
    }
    info = getattr(model, "normbench_info", None)
    if info:  # a user's model (normbench.build.usermodels): what was built, so compare never mixes two
        from normbench.build.usermodels import slots

        summary.update(model_source=info["source"], model_sha256=info["sha256"], norm_slots=slots(model),
                       norm_slots_verified=info.get("norm_slots_verified"))
    # the same run in two folders is one run: the identity of config.yaml as compare reads it back
    summary["identity"] = identity(resolve_flat(load_run_yaml(dump_yaml(cfg))), summary)
    return summary


class _Fitting:
    """model.fit for one run, with its callbacks (log, best weights, backup). A resume
    whose backup no longer loads (written by another normbench version, say) says so and
    trains the run again from epoch 1 rather than fail forever."""

    def __init__(self, cfg: Config, data, model, plan, run_dir: Path, resume: bool, verbose):
        self.cfg, self.data, self.model, self.plan = cfg, data, model, plan
        self.run_dir, self.resume, self.verbose = run_dir, resume, verbose
        self.log, self.best, self.callbacks = _fit_callbacks(run_dir, plan.epochs, cfg)

    def fit(self) -> None:
        try:
            self._fit()
        except ValueError as e:
            backup = self.run_dir / runfolder.BACKUP
            if not (self.resume and not self.log.reconciled and backup.exists()):
                raise
            import shutil

            print(f"normbench: the backup in {backup} does not load ({one_line(e, 120)}); "
                  "training this run again from epoch 1", file=sys.stderr)
            shutil.rmtree(backup)
            runfolder.remove_history(self.run_dir)
            d = self.data  # already loaded
            self.model = compiled_model(self.cfg, d.num_classes, len(d.x_train), d.x_train.dtype.name)
            self.log, self.best, self.callbacks = _fit_callbacks(self.run_dir, self.plan.epochs, self.cfg)
            self._fit()

    def _fit(self) -> None:
        self.model.fit(self.data.x_train, self.data.y_train, epochs=self.plan.epochs, batch_size=self.cfg.train.batch_size,
                       validation_split=self.cfg.train.validation_split, callbacks=self.callbacks, verbose=self.verbose)


def _finish_folder(run_dir: Path, cfg: Config, summary: dict, fitting: _Fitting, status: str, test, t_start: float,
                   plan) -> bool:
    """summary.json with the run's outcome, the callbacks' on_run_end, the line in
    runs.csv, and, for a finished run, its backup removed. False when a full disk kept
    summary.json from being written (the run stays resumable: its backup is kept)."""
    written = False
    try:
        summary.update(_finish(run_dir, cfg, fitting.log, status, test, t_start, plan.steps_per_epoch, plan.epochs))
        runfolder.write_summary(run_dir, summary)
        written = True
        _run_end(fitting.callbacks, summary)
        if status != "interrupted":  # beside the run (output.dir may be relative to another cwd)
            runfolder.append_index(run_dir.parent.parent, summary, run_dir)
    except OSError as e:  # a full disk: no summary (not finished), the backup is kept
        if not _disk_full(e):
            raise
    if written and status in ("completed", "diverged"):  # finished: the backup is no longer needed
        import shutil

        shutil.rmtree(run_dir / runfolder.BACKUP, ignore_errors=True)
    return written


def _run_end(callbacks, summary) -> None:
    """Each callback's on_run_end: a failing one is reported, never the run's failure."""
    for cb in callbacks:
        if hasattr(cb, "on_run_end"):
            try:
                cb.on_run_end(summary)
            except Exception as e:
                print(f"normbench: {type(cb).__name__}.on_run_end: {one_line(e, 160, kind=True)}", file=sys.stderr)


def _fit_callbacks(run_dir, epochs, cfg):
    built = build_callbacks(run_dir, epochs, cfg)
    return built.log, built.best, built.callbacks


def _evaluate(model, data, cfg, best) -> dict:
    """Test metrics of the last epoch's weights and of the best validation epoch's
    (the same numbers when the last epoch is the best); `test_*` follow train.eval."""
    bs = max(cfg.train.batch_size, 256)
    last = model.evaluate(data.x_test, data.y_test, batch_size=bs, verbose=0, return_dict=True)
    out = {"last": last, "best": last}
    if best.weights is not None and best.epoch != best.last:
        model.set_weights(best.weights)  # in memory: no weight file outlives the run
        out["best"] = model.evaluate(data.x_test, data.y_test, batch_size=bs, verbose=0, return_dict=True)
    return out


def chance_accuracy(y_test) -> float | None:
    """The test set's majority-class rate: the accuracy of always predicting its most
    frequent class, the chance level compare's "did not learn" flag compares with
    (results.did_not_learn). None for an empty test set."""
    import numpy as np

    if not len(y_test):
        return None
    y = np.asarray(y_test).reshape(len(y_test), -1)
    labels = y.argmax(axis=1) if y.shape[1] > 1 else y[:, 0]  # one-hot or integer labels
    return round(float(np.unique(labels, return_counts=True)[1].max() / len(labels)), 6)


def _finite(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _finish(run_dir, cfg, log, status, test, t_start, steps, epochs) -> dict:
    rows = [r for r in runfolder.read_history(run_dir) if runfolder.well_formed(r)]
    # drop duplicate epochs defensively (keep the last), so summaries read clean data
    by_epoch = {int(r["epoch"]): r for r in rows}
    if len(by_epoch) != len(rows):
        rows = [by_epoch[e] for e in sorted(by_epoch)]
        runfolder.write_history(run_dir, rows)
    # the first epoch of a process includes tracing and compiling: never timed, so a
    # process that trains one epoch (--smoke, a resume of the last epoch) has no ms/step
    timed = log.train_seconds[1:]
    bad = [float(r["nonfinite_steps"]) for r in rows if r.get("nonfinite_steps") not in (None, "")]
    return {
        "status": status,
        "epochs_completed": len(rows),
        "epochs": epochs,  # trained (train.budget steps resolves it from train.epochs)
        "test_loss": _finite(test[cfg.train.eval]["loss"]) if test else None,
        "test_accuracy": _finite(test[cfg.train.eval]["accuracy"]) if test else None,
        "test_loss_last": _finite(test["last"]["loss"]) if test else None,
        "test_accuracy_last": _finite(test["last"]["accuracy"]) if test else None,
        "test_loss_best": _finite(test["best"]["loss"]) if test else None,
        "test_accuracy_best": _finite(test["best"]["accuracy"]) if test else None,
        **metrics.from_history(rows),  # best/last val accuracy, final train loss, epochs_to_95, grad norms...
        "first_train_loss": _finite(rows[0].get("loss")) if rows and rows[0].get("loss") else None,
        "wall_seconds": round(time.perf_counter() - t_start, 2),
        "first_epoch_seconds": float(rows[0]["epoch_seconds"]) if rows else None,
        # median train-only time per epoch (validation excluded) over the steps per epoch
        "ms_per_step": round(statistics.median(timed) * 1000 / steps, 3) if timed else None,
        "nonfinite_steps": int(sum(bad)) if bad else None,
        "finished_at": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def resume_run(run_dir: str | Path, **kwargs) -> tuple[Path, dict]:
    """Continue an unfinished run folder from its last finished epoch."""
    # resolved: `--resume .` (the run folder as the working directory) must still give the
    # folder's name as run_id and put runs.csv beside the run, at <run>/../../runs.csv
    run_dir = Path(run_dir).expanduser().resolve()
    cfg_path = run_dir / runfolder.CONFIG
    if not cfg_path.exists():
        raise NormbenchError(f"{run_dir}: not a run folder (no config.yaml); pass a folder that normbench run created")
    lock = RunLock(run_dir)  # the status is read under the lock: another owner may just have finished
    if runfolder.status(run_dir) == "completed":
        lock.release()
        return run_dir, runfolder.read_summary(run_dir)
    cfg = from_dict(read_yaml(cfg_path), str(cfg_path))
    return run(cfg, run_dir=run_dir, resume=True, lock=lock, **kwargs)
