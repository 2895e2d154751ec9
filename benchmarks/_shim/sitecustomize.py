"""Benchmark shim for benchmarks/startup_memory.py, active only when $NB_FIRST_STEP_DIR is
set: once normbench.training.train is imported, every run gets one more Keras callback that writes
the time from this process's start to its first training batch into that folder, and
stops training after $NB_STOP_AFTER batches (validation and the test evaluation still run),
or, with $NB_EXIT_AT_FIRST set, exits at once with status 3.
"""

import os

if os.environ.get("NB_FIRST_STEP_DIR"):
    import importlib.abc
    import json
    import sys
    import time

    def _process_start() -> float:
        """This process's start as a Unix time, from /proc (10 ms resolution)."""
        fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime
        btime = next(int(l.split()[1]) for l in open("/proc/stat") if l.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")

    START = _process_start()

    def _patch(train):
        def _first_step(ctx):
            import keras

            class FirstStep(keras.callbacks.Callback):
                seen = 0

                def on_train_batch_begin(self, batch, logs=None):
                    if self.seen == 0:
                        now = time.time()
                        path = os.path.join(os.environ["NB_FIRST_STEP_DIR"], f"{os.getpid()}.json")
                        with open(path, "w") as f:
                            json.dump({"first_step_s": now - START,
                                       "since_t0_s": now - float(os.environ.get("NB_T0", START))}, f)
                        if os.environ.get("NB_EXIT_AT_FIRST"):
                            os._exit(3)  # time to first step only: no training
                    self.seen += 1
                    if self.seen >= int(os.environ.get("NB_STOP_AFTER", "0") or 0) > 0:
                        self.model.stop_training = True

            return FirstStep()

        if hasattr(train, "add_callbacks"):
            train.add_callbacks(_first_step)
        else:  # a --before checkout from before the hook: wrap its private builder
            orig = train._callbacks

            def _callbacks(*a, **k):
                log, best, cbs = orig(*a, **k)
                return log, best, cbs + [_first_step(None)]

            train._callbacks = _callbacks

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "normbench.training.train":
                return None
            sys.meta_path.remove(self)
            import importlib.util

            spec = importlib.util.find_spec(name)
            sys.meta_path.insert(0, self)
            exec_module = spec.loader.exec_module

            def run(module):
                exec_module(module)
                _patch(module)

            spec.loader.exec_module = run
            return spec

    sys.meta_path.insert(0, _Finder())
