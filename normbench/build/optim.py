"""Optimizer, learning-rate schedule and training budget from a validated Config.

Everything here is a pure function of the config and the number of training examples,
so a resumed run rebuilds exactly the same optimizer (the step counter comes back from
the backup). Keras is imported inside functions only.

Notation: b = train.batch_size, B = train.base_batch_size, n = training examples left
after train.validation_split (Keras' split, `split` below: the first
floor(examples * (1 - validation_split)) examples train, the rest validate),
S = ceil(n / b) optimizer steps per epoch.

Budget (`train.budget`):
  samples  E = train.epochs epochs, whatever b (every run sees the same samples).
  steps    E = max(1, floor(train.epochs * ceil(n / B) / S + 1/2)) whole epochs: the
           number of optimizer steps train.epochs epochs at batch size B take, rounded
           to whole epochs at batch size b (half rounds up). Training always ends on an
           epoch boundary, so the steps taken, E * S, differ from the target by at most
           S / 2, except that E >= 1 (a batch much smaller than B can take more).
  T = E * S optimizer steps in all; summary.json records E (`epochs`) and T
  (`optimizer_steps`).

Peak learning rate (`train.lr_scaling`, Goyal et al. 2017):
  none     peak = train.learning_rate
  linear   peak = train.learning_rate * b / B
  sqrt     peak = train.learning_rate * sqrt(b / B)

Schedule, per optimizer step. Step i = 0, 1, ..., T - 1 (the i-th update of the run,
counted from 0 across epochs; epoch k = 1..E holds steps (k-1)*S ... k*S - 1) uses
    lr_i = peak * warm_i * decay_i
  warm_i  = min(1, (i + 1) / W) with W = min(round(train.warmup_epochs * S), T) warm-up
            steps (linear from peak/W up to peak at step W-1); warm_i = 1 when W = 0.
  decay_i:
    constant  1
    cosine    (1 + cos(pi * max(0, i - W) / max(1, T - W))) / 2: 1 during warm-up, then
              down to (almost) 0 at the last step (it would reach 0 at step T).
    step      train.step_factor ** floor(floor(i / S) / train.step_epochs): multiplied by
              step_factor at the start of epochs step_epochs+1, 2*step_epochs+1, ...
              (epochs counted from the start of training, warm-up included).

history.csv's `learning_rate` for epoch k is lr_i of that epoch's last step, i = k*S - 1
(for constant and step schedules without warm-up, the rate of every step of the epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

@dataclass(frozen=True)
class OptimizerSpec:
    keras_class: str  # the keras.optimizers class
    options: tuple = ()  # the train.* options it takes (any other optimizer option is an error)
    # its own defaults where they differ from OPTION_DEFAULTS; None = not passed (Keras' default)
    defaults: tuple = ()


OPTIMIZERS = {
    "adam": OptimizerSpec("Adam"),
    "adamw": OptimizerSpec("AdamW", ("weight_decay",)),
    # weight_decay on SGD: Keras' decoupled decay, w -= lr * weight_decay * w before each
    # update (the CNN's standard recipe); off unless set, as Keras' SGD
    "sgd": OptimizerSpec("SGD", ("momentum", "nesterov", "weight_decay"), (("weight_decay", None),)),
    "rmsprop": OptimizerSpec("RMSprop"),
}
OPTIMIZER_OPTIONS = ("momentum", "nesterov", "weight_decay")
# defaults when an optimizer takes an option the config leaves out (Keras' defaults)
OPTION_DEFAULTS = {"momentum": 0.0, "nesterov": False, "weight_decay": 0.004}

SCHEDULES = ("constant", "cosine", "step")
SCHEDULE_OPTIONS = {"step_epochs": "step", "step_factor": "step"}  # option -> the schedule that takes it
STEP_FACTOR_DEFAULT = 0.1
LR_SCALINGS = ("none", "linear", "sqrt")
BUDGETS = ("samples", "steps")


def check(t, where) -> None:
    """train.optimizer, learning_rate, optimizer options, schedule, lr_scaling and budget
    (a TrainConfig); `where.error(key, problem)` names the file (config._Where)."""
    from normbench.core.checks import at_least, choice

    choice(where, "train.optimizer", t.optimizer, OPTIMIZERS, "optimizer")
    if not t.learning_rate > 0:
        raise where.error("train.learning_rate", f"must be > 0, got {t.learning_rate}")
    if not math.isfinite(t.learning_rate):
        raise where.error("train.learning_rate", f"must be a finite number, got {t.learning_rate}; e.g. 0.001")
    for option in OPTIMIZER_OPTIONS:
        if getattr(t, option) is not None and option not in OPTIMIZERS[t.optimizer].options:
            raise where.error(f"train.{option}", f"applies only to optimizer {', '.join(takers(option))}, not {t.optimizer}; "
                                                 f"remove it or set train.optimizer: {takers(option)[0]}")
    if t.momentum is not None and not 0 <= t.momentum < 1:
        raise where.error("train.momentum", f"must be >= 0 and < 1, got {t.momentum}; e.g. 0.9")
    if t.nesterov and not t.momentum:
        raise where.error("train.nesterov", "true needs train.momentum > 0 (with momentum 0 it is plain SGD); set train.momentum, e.g. 0.9")
    if t.weight_decay is not None and not t.weight_decay >= 0:
        raise where.error("train.weight_decay", f"must be >= 0, got {t.weight_decay}")
    if t.weight_decay is not None and not math.isfinite(t.weight_decay):
        raise where.error("train.weight_decay", f"must be a finite number, got {t.weight_decay}; e.g. 0.004")
    choice(where, "train.schedule", t.schedule, SCHEDULES, "schedule")
    for option, schedule in SCHEDULE_OPTIONS.items():
        if getattr(t, option) is not None and t.schedule != schedule:
            raise where.error(f"train.{option}", f"applies only to schedule {schedule}, not {t.schedule}; "
                                                 f"remove it or set train.schedule: {schedule}")
    if t.schedule == "step":
        if t.step_epochs is None:
            raise where.error("train.step_epochs", "missing; schedule step needs it (decay every this many epochs), e.g. 10")
        at_least(where, "train.step_epochs", t.step_epochs, 1)
        if t.step_factor is not None and not 0 < t.step_factor < 1:
            raise where.error("train.step_factor", f"must be > 0 and < 1, got {t.step_factor}; e.g. 0.1")
    if not 0 <= t.warmup_epochs < t.epochs:
        raise where.error("train.warmup_epochs", f"must be >= 0 and < train.epochs ({t.epochs}), got {t.warmup_epochs}")
    choice(where, "train.lr_scaling", t.lr_scaling, LR_SCALINGS, "learning-rate scaling")
    choice(where, "train.budget", t.budget, BUDGETS, "budget")
    uses = [f"train.lr_scaling {t.lr_scaling}"] * (t.lr_scaling != "none") + [f"train.budget {t.budget}"] * (t.budget != "samples")
    if t.base_batch_size is None and uses:
        raise where.error("train.base_batch_size", f"missing; {uses[0]} needs the batch size that train.learning_rate "
                                                   "and train.epochs refer to, e.g. 64")
    if t.base_batch_size is not None:
        if not uses:
            raise where.error("train.base_batch_size", "has no effect with train.lr_scaling none and train.budget samples; "
                                                       "remove it, or set train.lr_scaling (linear, sqrt) or train.budget: steps")
        at_least(where, "train.base_batch_size", t.base_batch_size, 1)
        peak = peak_rate(t)
        if not math.isfinite(peak):
            raise where.error("train.learning_rate", f"{t.learning_rate} x the {t.lr_scaling} lr_scaling of batch "
                                                     f"{t.batch_size} / {t.base_batch_size} overflows to {peak}; use a smaller rate")


def takers(option: str) -> list[str]:
    """The optimizers that take a train.* option."""
    return [name for name, spec in OPTIMIZERS.items() if option in spec.options]


@dataclass(frozen=True)
class Plan:
    """How a config trains on n examples: the numbers in the module docstring."""

    n_fit: int  # n: training examples after the validation split
    steps_per_epoch: int  # S
    epochs: int  # E
    total_steps: int  # T = E * S
    warmup_steps: int  # W
    peak_learning_rate: float  # after train.lr_scaling
    n_val: int  # validation examples


def plan(cfg: "Config", n_examples: int) -> Plan:
    """The training plan for `n_examples` training examples (before the validation split)."""
    from normbench.build.data import split  # Keras' validation split is a fact about the data

    t = cfg.train
    n_fit, n_val = split(n_examples, t.validation_split)
    steps = math.ceil(n_fit / t.batch_size)
    if t.budget == "steps":
        base_steps = math.ceil(n_fit / t.base_batch_size)
        epochs = max(1, math.floor(t.epochs * base_steps / steps + 0.5))
    else:
        epochs = t.epochs
    total = epochs * steps
    warmup = min(round(t.warmup_epochs * steps), total)
    return Plan(n_fit, steps, epochs, total, warmup, peak_rate(t), n_val)


def peak_rate(t) -> float:
    """The peak learning rate of a TrainConfig: train.learning_rate after train.lr_scaling."""
    ratio = t.batch_size / t.base_batch_size if t.lr_scaling != "none" else 1.0
    scale = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[t.lr_scaling]
    return t.learning_rate * scale


def _schedule(cfg: "Config", p: Plan):
    """A keras LearningRateSchedule computing lr_i (module docstring), or the plain peak
    rate when it is constant (no schedule object: the same optimizer as before schedules
    existed, so older backups still load)."""
    t = cfg.train
    if t.schedule == "constant" and p.warmup_steps == 0:
        return p.peak_learning_rate
    import keras
    from keras import ops

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, peak, steps_per_epoch, total_steps, warmup_steps, kind, step_epochs, step_factor):
            self.peak, self.steps_per_epoch, self.total_steps = peak, steps_per_epoch, total_steps
            self.warmup_steps, self.kind = warmup_steps, kind
            self.step_epochs, self.step_factor = step_epochs, step_factor

        def __call__(self, step):
            i = ops.cast(step, "float32")
            lr = ops.convert_to_tensor(self.peak, "float32")
            if self.warmup_steps > 0:
                lr = lr * ops.minimum(1.0, (i + 1.0) / self.warmup_steps)
            if self.kind == "cosine":
                span = max(1, self.total_steps - self.warmup_steps)
                progress = ops.maximum(0.0, i - self.warmup_steps) / span
                lr = lr * 0.5 * (1.0 + ops.cos(math.pi * progress))
            elif self.kind == "step":
                epoch = ops.floor_divide(ops.cast(step, "int32"), self.steps_per_epoch)
                k = ops.cast(ops.floor_divide(epoch, self.step_epochs), "float32")
                lr = lr * ops.power(ops.convert_to_tensor(self.step_factor, "float32"), k)
            return lr

        def get_config(self):
            return dict(peak=self.peak, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
                        warmup_steps=self.warmup_steps, kind=self.kind, step_epochs=self.step_epochs,
                        step_factor=self.step_factor)

    factor = t.step_factor if t.step_factor is not None else STEP_FACTOR_DEFAULT
    return Schedule(p.peak_learning_rate, p.steps_per_epoch, p.total_steps, p.warmup_steps,
                    t.schedule, t.step_epochs, factor)


def optimizer_options(cfg: "Config") -> dict:
    """The keyword arguments the chosen optimizer gets besides the learning rate."""
    t = cfg.train
    out = {}
    spec = OPTIMIZERS[t.optimizer]
    defaults = {**OPTION_DEFAULTS, **dict(spec.defaults)}
    for option in spec.options:
        value = getattr(t, option)
        value = defaults[option] if value is None else value
        if value is not None:
            out[option] = value
    return out


def build(cfg: "Config", p: Plan):
    """The Keras optimizer for a config and its training plan."""
    import keras

    cls = getattr(keras.optimizers, OPTIMIZERS[cfg.train.optimizer].keras_class)
    return cls(learning_rate=_schedule(cfg, p), **optimizer_options(cfg))


def last_learning_rate(optimizer) -> float:
    """The learning rate of the optimizer's most recent step (history.csv's column).
    Keras evaluates a schedule at `optimizer.iterations` before incrementing it, so
    `optimizer.learning_rate` after an epoch is already the next epoch's first rate."""
    import keras

    schedule = optimizer._learning_rate
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        step = max(int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1, 0)
        value = schedule(step)
    else:
        value = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(value))


# `model.unroll: auto` unrolls on TensorFlow only for runs of at least this many training
# steps (epochs x steps per epoch). Unrolling the 200-step SimpleRNN shortens every
# training step but adds a fixed cost of tracing and compiling (train and test
# functions), so it pays off only past some number of steps; this threshold sits above
# the break-even measured on the 2-core CPU (figures: docs/performance.md and
# benchmarks/RESULTS.md), so the tutorial's run unrolls and smoke runs do not.
UNROLL_AUTO_MIN_STEPS = 1000


def planned_steps(config) -> int:
    """Training steps a config asks for (epochs x steps per epoch, after train.budget),
    from the config alone: data.subset.train, else the data set's size (a local file may
    hold fewer examples)."""
    from normbench.build.data import train_size  # lazily: data is not needed for the plan's maths

    n = config.data.subset.train if config.data.subset else train_size(config.data.name)
    return plan(config, n).total_steps  # train.budget included


def resolved_unroll(config) -> bool | int:
    """model.unroll with "auto" decided. Unrolled RNN loops are faster per step on
    TensorFlow's CPU kernels and much slower under JAX/XLA, but unrolling adds compile
    time, which a short run never earns back (benchmarks/RESULTS.md). So "auto" unrolls
    on TensorFlow only, and there only for runs of at least UNROLL_AUTO_MIN_STEPS (1000)
    training steps: the tutorial's IMDB run (5 x 313 steps) unrolls, the smoke configs and
    --smoke runs do not. Never with a normalized recurrent cell (norm_placement: recurrent,
    norm layer/rms): its unrolled graph's extra compile time outweighs the shorter step
    for runs of the tutorial's length (benchmarks/RESULTS.md, "Recurrent layers").
    true/false apply to keras.layers.SimpleRNN and HoistedSimpleRNN alike."""
    if config.model.unroll == "auto":
        m = config.model
        normalized_cell = m.norm_placement == "recurrent" and m.norm != "none"
        return (config.train.backend == "tensorflow" and not normalized_cell
                and planned_steps(config) >= UNROLL_AUTO_MIN_STEPS)
    u = config.model.unroll
    return u if isinstance(u, int) and not isinstance(u, bool) else bool(u)
