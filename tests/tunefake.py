"""A stand-in for training, for tests of `normbench tune` that need many members: each
member "completes" at once with scores that are a function of its config, so a tune's
logic (selection, seeds, resume) runs in seconds without TensorFlow.

In a test process: `FakeTrainer(...)` is an executor (pass it to run_tune). As a script,
it runs the CLI in a fresh process with the local executor replaced, and can SIGKILL
that driver at an exact point:

    python tests/tunefake.py DONE_FILE [kill-at=N] -- tune CONFIG ...

  DONE_FILE   one line appended per member trained to the end (its run id)
  kill-at=N   SIGKILL this process when the N-th member (counting from 1) is submitted,
              before it finishes
"""

from __future__ import annotations

import math
import os
import signal
import sys

# validation scores: layer is best at 0.003 and none at 0.001 (batch ties with itself
# nowhere); the test scores disagree on purpose (best where validation is worst), so a
# selection that looked at test would pick other points
VAL = {("batch", 0.001): 0.80, ("batch", 0.003): 0.78, ("batch", 0.01): 0.70,
       ("layer", 0.001): 0.74, ("layer", 0.003): 0.79, ("layer", 0.01): 0.75,
       ("none", 0.001): 0.72, ("none", 0.003): 0.71, ("none", 0.01): 0.60}


BEST_LR = {"batch": 0.001, "layer": 0.003, "none": 0.001}  # off the grid (Optuna): a smooth peak here


def scores(norm: str, lr: float, seed: int) -> dict:
    smooth = 0.8 - 0.05 * math.log10(lr / BEST_LR.get(norm, 0.001)) ** 2
    val = VAL.get((norm, lr), smooth) + 0.002 * (seed % 3)  # a little seed noise
    return {"best_val_accuracy": val, "last_val_accuracy": val - 0.01, "test_accuracy": 1.5 - val - 0.003 * (seed % 2),
            "test_loss": val, "final_train_loss": 0.3}


class FakeTrainer:
    name = "fake"

    def __init__(self, done_file=None, kill_at=None, diverge=()):
        self.done_file, self.kill_at, self.submitted = done_file, kill_at, []
        self.diverge = set(diverge)  # norms whose every run diverges (NaN loss in the first epoch)

    def submit(self, member, threads):
        from normbench.store import runfolder

        self.submitted.append(member.run_id)
        if self.kill_at is not None and len(self.submitted) == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        c = member.config
        if c.model.norm in self.diverge:
            runfolder.write_summary(member.run_dir, {"status": "diverged", "run_id": member.run_id, "norm": c.model.norm,
                                                     "seed": c.seed, "epochs": c.train.epochs, "steps_per_epoch": 5,
                                                     "epochs_completed": 1})
            return member
        runfolder.write_summary(member.run_dir, {
            "status": "completed", "run_id": member.run_id, "norm": c.model.norm, "seed": c.seed,
            "epochs": c.train.epochs, "steps_per_epoch": 5, "optimizer_steps": 5 * c.train.epochs,
            "epochs_completed": c.train.epochs, **scores(c.model.norm, c.train.learning_rate, c.seed)})
        if self.done_file:
            with open(self.done_file, "a") as f:
                f.write(member.run_id + "\n")
        return member

    def poll(self, handle):
        return True

    def result(self, member, handle):
        return None

    def cancel(self, handle):
        pass

    def wait(self, handle):
        pass


def main(argv) -> None:
    split = argv.index("--")
    done_file, hooks = argv[0], dict(h.split("=", 1) for h in argv[1:split])
    kill_at = int(hooks["kill-at"]) if "kill-at" in hooks else None
    from normbench.orchestrate.executors.base import EXECUTORS

    EXECUTORS["local"] = lambda: FakeTrainer(done_file, kill_at)  # what --executor local makes
    from normbench.cli import main as cli

    cli(argv[split + 1:], prog_name="normbench")


if __name__ == "__main__":
    main(sys.argv[1:])
