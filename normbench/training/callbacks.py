"""The Keras callbacks of a normbench run, and the context extra callbacks are built from.

Importing this module imports Keras, so `normbench.training.train` imports it only once the
backend is chosen (`train.prepare`). Extra callbacks (TensorBoard, a test's fault
injection, a benchmark's timer) are registered with `normbench.training.train.add_callbacks`,
which stays importable without Keras; they run after normbench's own, so after the
epoch's history row, best weights and backup are written.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from normbench.build import optim
from normbench.store import runfolder
from normbench.core.atomic import atomic_file
from normbench.core.signals import signals_deferred


class EpochLog(keras.callbacks.Callback):
    """history.csv with CSVLogger's semantics (append + flush each epoch) but fixed
    columns, epochs from 1, learning rate and epoch time; per batch only a clock read (the
    step within the epoch goes to .progress once a second). On a
    resumed run it first drops rows past the epoch Keras restored, so every epoch
    appears exactly once (the row is written before the backup, so a crash between
    them leaves one extra row, never a missing one). Rows that do not parse (a line
    cut short by a crash or a full disk) are dropped too, never the backup."""

    def __init__(self, run_dir: Path, epochs: int, grads: GradientNorms | None = None):
        super().__init__()
        self.run_dir, self.epochs = Path(run_dir), epochs
        self.grads = grads  # the epoch's gradient-norm columns come from it
        self.reconciled = False
        self.train_seconds = []  # epoch time minus validation time, this process only
        self.diverged = False

    def _reconcile(self, upto):
        self.reconciled = True
        if not (self.run_dir / runfolder.HISTORY).exists():
            runfolder.write_history(self.run_dir, [])
            return
        bad = runfolder.reconcile_history(self.run_dir, upto)
        if bad:
            print(f"normbench: {self.run_dir / runfolder.HISTORY}: dropped {bad} unreadable row(s); "
                  f"continuing from the backup's epoch {upto}", file=sys.stderr)

    def on_epoch_begin(self, epoch, logs=None):
        if not self.reconciled:
            self._reconcile(epoch)
        self.t0 = time.perf_counter()
        self.val_seconds = 0.0
        self.epoch, self._progress_at = epoch + 1, 0.0

    def on_train_batch_begin(self, batch, logs=None):
        # the step within the epoch for a sweep's status line, at most once a second; a batch
        # *begin* hook: Keras calls it anyway, with no logs to fetch from the device
        now = time.monotonic()
        if now - self._progress_at >= 1.0:
            self._progress_at = now
            runfolder.write_progress(self.run_dir, self.epoch, int(batch), self.params.get("steps"))

    def on_test_begin(self, logs=None):
        self.t_val = time.perf_counter()

    def on_test_end(self, logs=None):
        if hasattr(self, "t0"):
            self.val_seconds += time.perf_counter() - self.t_val

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self.t0
        self.train_seconds.append(seconds - self.val_seconds)
        row = {
            "epoch": epoch + 1,
            "loss": logs.get("loss"),
            "accuracy": logs.get("accuracy"),
            "val_loss": logs.get("val_loss"),
            "val_accuracy": logs.get("val_accuracy"),
            "learning_rate": optim.last_learning_rate(self.model.optimizer),  # the epoch's last step's
            "epoch_seconds": round(seconds, 3),
            **(self.grads.epoch_values() if self.grads else {}),
        }
        if row["loss"] is None or not math.isfinite(float(row["loss"])):
            self.diverged = True
        runfolder.append_history(self.run_dir, row)

    def on_train_end(self, logs=None):
        if not self.reconciled:  # a resume after the last epoch: no epoch began
            self._reconcile(self.epochs)
        runfolder.remove_progress(self.run_dir)


class GradientNorms(keras.callbacks.Callback):
    """The global gradient norm (the L2 norm of all gradients together, before the
    optimizer's update) of every training step, summed, maxed and counted per epoch in
    variables that the step itself updates, so nothing crosses to Python per step: the
    optimizer's apply_gradients is wrapped once per optimizer (TensorFlow backend; on JAX,
    whose trainer applies gradients statelessly, the columns stay empty). Steps whose norm
    is NaN or inf (a non-finite loss gives non-finite gradients) are counted apart and left
    out of the mean and max. Its cost is in benchmarks/RESULTS.md ("Gradient norms")."""

    def __init__(self):
        super().__init__()
        self.installed = False
        self.total = self.top = self.steps = self.bad = None

    def on_train_begin(self, logs=None):
        opt = getattr(self.model, "optimizer", None)
        if keras.backend.backend() != "tensorflow" or opt is None or getattr(opt, "_normbench_grad_norms", None):
            self.installed = bool(opt is not None and getattr(opt, "_normbench_grad_norms", None) is self)
            return
        self.total, self.top, self.steps, self.bad = (
            keras.Variable(0.0, dtype="float32", trainable=False, name=f"grad_norm_{k}") for k in ("sum", "max", "n", "bad"))
        original, ops = opt.apply_gradients, keras.ops

        def apply_gradients(grads_and_vars, *args, **kwargs):
            pairs = list(grads_and_vars)
            squares = [ops.sum(ops.square(ops.cast(g, "float32"))) for g, _ in pairs if g is not None]
            norm = ops.sqrt(ops.sum(ops.stack(squares))) if squares else ops.convert_to_tensor(0.0)
            finite = ops.isfinite(norm)
            kept = ops.where(finite, norm, 0.0)
            self.total.assign_add(kept)
            self.top.assign(ops.maximum(self.top, kept))
            self.steps.assign_add(ops.where(finite, 1.0, 0.0))
            self.bad.assign_add(ops.where(finite, 0.0, 1.0))
            return original(pairs, *args, **kwargs)

        object.__setattr__(opt, "apply_gradients", apply_gradients)  # not tracked: backups stay as they were
        object.__setattr__(opt, "_normbench_grad_norms", self)
        self.installed = True

    def on_epoch_begin(self, epoch, logs=None):
        if self.installed:
            for v in (self.total, self.top, self.steps, self.bad):
                v.assign(0.0)

    def epoch_values(self) -> dict:
        """This epoch's grad_norm_mean, grad_norm_max, nonfinite_steps (None when not measured)."""
        if not self.installed:
            return {"grad_norm_mean": None, "grad_norm_max": None, "nonfinite_steps": None}
        n, bad = float(self.steps.numpy()), int(self.bad.numpy())
        return {"grad_norm_mean": float(self.total.numpy()) / n if n else None,
                "grad_norm_max": float(self.top.numpy()) if n else None, "nonfinite_steps": bad}


class Backup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose save is never cut short by Ctrl-C or SIGTERM: an
    interrupted save left an h5 file with the weights but no optimizer variables,
    which Keras then loads with only a warning (Adam's moments silently reset)."""

    def _save_model(self):
        # the save rewrites latest.weights.h5 and first copies the old one to the
        # previous file: what those two files grow by must be free
        size = weights_bytes(self.model)
        files = [Path(self._weights_path)]
        if self.double_checkpoint and files[0].exists():
            files.append(Path(self._prev_weights_path))
        check_space(Path(self.backup_dir), sum(max(0, size - _size(f)) for f in files))
        with signals_deferred():
            super()._save_model()


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the highest validation accuracy (the
    earliest on ties, as summary.json's best_epoch) in memory for `train.eval: best`,
    mirrored to backup/best.npz so a resumed run still knows them."""

    def __init__(self, run_dir: Path, epochs: int):
        super().__init__()
        self.path = Path(run_dir) / runfolder.BACKUP / "best.npz"
        self.epochs = epochs
        self.epoch, self.val_accuracy, self.weights = None, -math.inf, None
        self.last = None  # the last epoch finished in this process
        self.reconciled = False

    def _load(self, upto):
        """Once per process, as EpochLog reconciles the history: the best epoch so far
        from backup/best.npz, if the restored backup has finished it."""
        import numpy as np

        self.reconciled = True
        try:
            with np.load(self.path) as f:
                epoch, acc = int(f["epoch"]), float(f["val_accuracy"])
                weights = [f[f"w{i}"] for i in range(int(f["count"]))]
        except (OSError, KeyError, ValueError):
            return
        if epoch <= upto:  # an epoch that the restored backup has finished
            self.epoch, self.val_accuracy, self.weights = epoch, acc, weights

    def on_epoch_begin(self, epoch, logs=None):
        if not self.reconciled:
            self._load(epoch)

    def on_train_end(self, logs=None):
        if not self.reconciled:  # a resume after the last epoch: no epoch began
            self._load(self.epochs)

    def on_epoch_end(self, epoch, logs=None):
        self.last = epoch + 1
        acc = (logs or {}).get("val_accuracy")
        if acc is None or not math.isfinite(float(acc)) or float(acc) <= self.val_accuracy:
            return
        import numpy as np

        self.epoch, self.val_accuracy, self.weights = epoch + 1, float(acc), self.model.get_weights()
        self.path.parent.mkdir(exist_ok=True)
        with signals_deferred(), atomic_file(self.path, "wb") as f:  # a full disk leaves no temp file
            np.savez(f, epoch=self.epoch, val_accuracy=self.val_accuracy, count=len(self.weights),
                     **{f"w{i}": w for i, w in enumerate(self.weights)})


def weights_bytes(model) -> int:
    """Bytes of the model's and its optimizer's variables: about what a backup holds."""
    variables = list(model.weights) + (list(model.optimizer.variables) if model.optimizer else [])
    return sum(int(math.prod(v.shape)) * 4 for v in variables)  # float32 (ints are 4-8 bytes, few)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def check_space(folder: Path, need: int) -> None:
    """Raise ENOSPC before writing `need` bytes into `folder` on a filesystem without them
    (plus 1 MiB to spare): HDF5, which Keras' backup writes through, prints tracebacks and
    leaves a half-written file when the disk fills in the middle of a save."""
    import errno
    import shutil

    free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    if free < need + 2**20:
        raise OSError(errno.ENOSPC, f"No space left on device (the backup needs ~{need // 2**20 + 1} MiB, "
                      f"{free // 2**20} MiB free)", str(folder))


class TensorBoardLog(keras.callbacks.TensorBoard):
    """`output.tensorboard: true`: Keras' TensorBoard callback writing per-epoch scalars
    (train/ and validation/ under the run folder, step = the epoch from 1 as in
    history.csv; no per-batch logging, no graph, no profile), plus, once per run folder, an HParams summary of the run's flattened config
    so TensorBoard's HParams dashboard lists every run with its settings, and the test
    metrics once the run has finished (`on_run_end`).

    The writers are flushed at each epoch's end, so a killed run keeps its finished
    epochs. It runs after the backup is saved: a run killed before the backup keeps no
    event of the epoch it retrains on resume, so no epoch is written twice (a kill in the
    moment between the backup and this write loses that epoch's events, never history.csv's
    row). Validation's per-iteration duplicates of the epoch scalars are not written."""

    HPARAMS_SKIPPED = ("output.", "sweep.")  # where results go, the sweep recipe: not settings of the run

    def __init__(self, run_dir: Path, cfg):
        super().__init__(log_dir=str(run_dir), write_graph=False, update_freq="epoch", profile_batch=0)
        self.run_dir, self.cfg = Path(run_dir), cfg

    def hparams(self) -> dict:
        """The flattened resolved config as HParams values (bool, int, float or str)."""
        from normbench.schema.config import flatten

        out = {}
        for key, value in flatten(self.cfg.to_dict()).items():
            if key.startswith(self.HPARAMS_SKIPPED) or key == "sweep":  # an empty sweep: section flattens to "{}"
                continue
            out[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
        return out

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.cfg is not None and not any(self.run_dir.glob("events.out.tfevents.*")):  # once: not again on resume
            from tensorboard.plugins.hparams import api as hp

            with self._root_writer() as writer, writer.as_default():
                hp.hparams(self.hparams(), trial_id=self.run_dir.name)

    def _root_writer(self):
        import contextlib

        writer = self.summary.create_file_writer(str(self.run_dir))
        return contextlib.closing(writer)

    def on_test_end(self, logs=None):
        self._pop_writer()  # Keras also writes evaluation_*_vs_iterations: the epoch scalars again

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)  # the step is the epoch as history.csv counts it, from 1
        for writer in self._writers.values():
            writer.flush()

    def on_run_end(self, summary: dict):
        """Once summary.json is written: its test metrics, at the last epoch's step."""
        values = {k: summary.get(k) for k in ("test_accuracy", "test_loss")}
        values = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
        if not values:
            return
        step = int(summary.get("epochs_completed") or 0)
        with self._root_writer() as writer, writer.as_default():
            for name, value in values.items():
                self.summary.scalar(name, value, step=step)
        write_hparams_config(self.run_dir.parent)


# TensorBoard's HParams table, headline first: these metric columns in this order (tag,
# the sub-folder it is logged under, the column's title)
HPARAMS_METRICS = (
    ("test_accuracy", "", "test accuracy"),
    ("epoch_accuracy", "validation", "validation accuracy"),
    ("test_loss", "", "test loss"),
    ("epoch_loss", "validation", "validation loss"),
    ("epoch_accuracy", "train", "train accuracy"),
    ("epoch_loss", "train", "train loss"),
)
HPARAMS_CONFIG = "events.out.tfevents.0.normbench-hparams"  # sorts first; replaced whole on each write


def write_hparams_config(folder) -> Path | None:
    """The HParams experiment config of the runs in `folder` (a sweep's or tune's folder,
    <output.dir>/<name>/): the metric columns HPARAMS_METRICS, test accuracy first, and
    only the config keys that vary between the runs (seed included; model.norm when
    nothing varies), so TensorBoard's HParams table opens on the comparison rather than
    on 35 settings of which most are constants. Every run folder that has a config.yaml
    counts (a sweep creates them all before training), so each run's end writes the same
    config; the file is replaced atomically. Written with tensorboard's record writer,
    without TensorFlow. None when no run folder is there."""
    import time

    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import api as hp
    from tensorboard.summary.writer.record_writer import RecordWriter

    from normbench.core.errors import NormbenchError
    from normbench.analysis.results import canonical, value_order, varying_keys
    from normbench.analysis.runs import load_runs

    folder = Path(folder)
    try:
        runs = [r for r in load_runs([folder]) if r.config]
    except NormbenchError:
        return None
    if not runs:
        return None
    keys = [k for k in varying_keys(runs) if k != "role"]
    seeds = {canonical(r.config.get("seed")) for r in runs}
    keys = (keys or ["model.norm"]) + (["seed"] if len(seeds) > 1 else [])
    params = []
    for k in keys:
        values = sorted({canonical(r.config.get(k)): r.config.get(k) for r in runs}.values(), key=value_order)
        kinds = {type(v) for v in values}
        if kinds <= {int, float} and int in kinds and float in kinds:
            values = [float(v) for v in values]
        elif not (len(kinds) == 1 and kinds <= {int, float, str, bool}):
            values = [str(v) for v in values]
        params.append(hp.HParam(k, hp.Discrete(values)))
    metrics = [hp.Metric(tag, group=group or None, display_name=title) for tag, group, title in HPARAMS_METRICS]
    pb = hp.hparams_config_pb(hparams=params, metrics=metrics, time_created_secs=time.time())
    path = folder / HPARAMS_CONFIG
    with atomic_file(path, "wb") as f:
        writer = RecordWriter(f)
        writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        writer.write(event_pb2.Event(wall_time=time.time(), step=0, summary=pb).SerializeToString())
    return path


def tensorboard(ctx: "Context"):
    """The factory train uses for `output.tensorboard: true`."""
    return TensorBoardLog(ctx.run_dir, ctx.cfg)


@dataclass
class Context:
    """What an extra callback's factory is given: the run being trained and normbench's
    own callbacks (`log.train_seconds`, `best.epoch` ...)."""

    run_dir: Path
    cfg: object  # normbench.schema.config.Config (None when built outside a run)
    epochs: int
    log: EpochLog
    best: BestWeights


@dataclass
class RunCallbacks:
    """The callback list of one fit, in order, and the two callbacks run() reads after."""

    log: EpochLog
    best: BestWeights
    callbacks: list


def build(run_dir: Path, epochs: int, cfg=None, extra=()) -> RunCallbacks:
    """normbench's callbacks for one fit of `epochs` epochs into `run_dir`, then what each
    factory in `extra` returns for them (a callback, a list of them, or None)."""
    run_dir = Path(run_dir)
    grads = GradientNorms()
    log, best = EpochLog(run_dir, epochs, grads), BestWeights(run_dir, epochs)
    # the backup is deleted by train.run() once summary.json is written, not when fit
    # ends, so an interrupt during the test evaluation keeps every finished epoch
    backup = Backup(str(run_dir / runfolder.BACKUP), double_checkpoint=True, delete_checkpoint=False)
    # order matters: the history row and best weights are written before the backup is saved
    callbacks = [grads, log, keras.callbacks.TerminateOnNaN(), best, backup]
    ctx = Context(run_dir, cfg, epochs, log, best)
    for factory in extra:
        made = factory(ctx)
        if made is None:
            continue
        callbacks.extend(made if isinstance(made, (list, tuple)) else [made])
    return RunCallbacks(log, best, callbacks)
