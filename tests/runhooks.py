"""Run `normbench` in a fresh process with test hooks installed at exact points of
training, so that tests put a signal or a fault where they mean to every time instead
of racing a timer. Used by tests/test_resume.py:

    python tests/runhooks.py HOOK[=ARG] ... -- run CONFIG --set ...

Hooks (each patches normbench or Keras in this process only):
  kill-after-epoch=N     SIGKILL once epoch N's history row, best weights and backup are
                         all written (the hook runs after the backup callback)
  term-in-backup-save    SIGTERM inside the first backup save, after the model's weights
                         and before the optimizer's variables are written
  term-in-evaluate       SIGTERM after the first batch of the final test evaluation
  disk-full-after-epoch=N  from the end of epoch N on the disk is "full": files opened for
                         writing by normbench.store.runfolder or .atomic fail with ENOSPC on write (appends
                         still fit), numpy.savez writes half a file then fails, and
                         shutil.disk_usage reports 0 bytes free
  probe=FILE             at the start of training write JSON to FILE: op determinism and
                         TensorFlow's thread settings as this process runs with them
  count=FILE             at exit write JSON to FILE: training batches and epochs run and
                         final evaluations started in this process
  tables-barrier=DIR     (no Keras) when MLflow starts creating a fresh store's tables, wait
                         up to 5 s for a second process to get there too (a file per
                         process in DIR), so two exports create them at the same moment
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import signal
import sys


def _install(hooks: dict) -> None:
    import keras

    from normbench.store import runfolder
    from normbench.training import train

    extra = []  # callbacks appended after normbench's own (so after the backup's save)
    counts = {"train_batches": 0, "epochs": 0, "evaluations": 0}
    full = {"on": False}

    if "kill-after-epoch" in hooks:
        n = int(hooks["kill-after-epoch"])

        class Kill(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 == n:
                    os.kill(os.getpid(), signal.SIGKILL)

        extra.append(Kill)

    if "term-in-backup-save" in hooks:
        from keras.src.saving import saving_lib

        save_state, sent = saving_lib._save_state, []

        def _save_state(trackable, *args, **kwargs):
            # called recursively for the model, its layers, then the optimizer
            if isinstance(trackable, keras.optimizers.Optimizer) and not sent:
                sent.append(1)
                os.kill(os.getpid(), signal.SIGTERM)
            return save_state(trackable, *args, **kwargs)

        saving_lib._save_state = _save_state

    if "term-in-evaluate" in hooks:
        evaluate, final = keras.Model.evaluate, []

        class Term(keras.callbacks.Callback):
            def on_test_batch_end(self, batch, logs=None):
                os.kill(os.getpid(), signal.SIGTERM)

        def patched(self, *args, **kwargs):
            if final:  # the final test evaluation, not fit's validation
                kwargs["callbacks"] = [*kwargs.get("callbacks", []), Term()]
            return evaluate(self, *args, **kwargs)

        keras.Model.evaluate = patched
        real_evaluate = train._evaluate

        def _evaluate(*args, **kwargs):
            final.append(1)
            return real_evaluate(*args, **kwargs)

        train._evaluate = _evaluate

    if "disk-full-after-epoch" in hooks:
        import builtins
        import shutil

        import numpy as np

        n = int(hooks["disk-full-after-epoch"])

        class Fill(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 == n:
                    full["on"] = True

        extra.append(Fill)

        def enospc():
            return OSError(errno.ENOSPC, "No space left on device")

        class FullFile:
            def __init__(self, f):
                self._f = f

            def write(self, data):
                raise enospc()

            def __getattr__(self, name):
                return getattr(self._f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._f.close()

        def full_open(file, mode="r", *args, **kwargs):
            f = builtins.open(file, mode, *args, **kwargs)
            return FullFile(f) if full["on"] and any(c in mode for c in "wx+") else f

        from normbench.core import atomic

        runfolder.open = atomic.open = full_open  # shadows the builtin inside these two modules only
        savez, disk_usage = np.savez, shutil.disk_usage

        def full_savez(file, *args, **kwargs):
            if not full["on"]:
                return savez(file, *args, **kwargs)
            if isinstance(file, (str, os.PathLike)):
                with builtins.open(file, "wb") as f:
                    f.write(b"PK\x03\x04 half a zip")
            else:  # an open file (normbench.core.atomic's temp file)
                getattr(file, "_f", file).write(b"PK\x03\x04 half a zip")
            raise enospc()

        def full_disk_usage(path):
            usage = disk_usage(path)
            return usage._replace(free=0) if full["on"] else usage

        np.savez, shutil.disk_usage = full_savez, full_disk_usage

    if "probe" in hooks:
        path = hooks["probe"]

        class Probe(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                import tensorflow as tf
                from tensorflow.python.framework.config import is_op_determinism_enabled

                with open(path, "w") as f:
                    json.dump({
                        "op_determinism": bool(is_op_determinism_enabled()),
                        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                    }, f)

        extra.append(Probe)

    if "count" in hooks:
        path = hooks["count"]

        class Count(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                counts["train_batches"] += 1

            def on_epoch_begin(self, epoch, logs=None):
                counts["epochs"] += 1

        extra.append(Count)
        counted_evaluate = train._evaluate

        def _evaluate(*args, **kwargs):
            counts["evaluations"] += 1
            return counted_evaluate(*args, **kwargs)

        train._evaluate = _evaluate

        @atexit.register
        def _write():
            with open(path, "w") as f:
                json.dump(counts, f)

    train.add_callbacks(lambda ctx: [cls() for cls in extra])


def _tables_barrier(folder: str) -> None:
    import time
    from pathlib import Path

    import mlflow.store.db.utils as db_utils

    create = db_utils._initialize_tables

    def barrier(engine):
        Path(folder, str(os.getpid())).touch()
        end = time.monotonic() + 5
        while len(list(Path(folder).iterdir())) < 2 and time.monotonic() < end:
            time.sleep(0.01)
        return create(engine)

    db_utils._initialize_tables = barrier


def main(argv) -> None:
    split = argv.index("--")
    hooks = dict((h.split("=", 1) + [""])[:2] for h in argv[:split])
    unknown = set(hooks) - {"kill-after-epoch", "term-in-backup-save", "term-in-evaluate",
                            "disk-full-after-epoch", "probe", "count", "tables-barrier"}
    if unknown:
        raise SystemExit(f"runhooks: unknown hook(s) {sorted(unknown)}")
    if "tables-barrier" in hooks:
        _tables_barrier(hooks.pop("tables-barrier"))
    if hooks:
        _install(hooks)
    from normbench.cli import main as cli

    cli(argv[split + 1:], prog_name="normbench")


if __name__ == "__main__":
    main(sys.argv[1:])
