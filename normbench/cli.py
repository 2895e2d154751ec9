"""Command line. Thin: parse, call one library function, turn NormbenchError into a
one-line click error. TensorFlow is imported only inside commands that train or build."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import click

from normbench.core.errors import NormbenchError, WordedError, one_line
from normbench.core.version import __version__
from normbench.present import listing
from normbench.core.metrics import LEVEL_TEXT
from normbench.present.plots import BANDS
from normbench.analysis.results import FAMILIES, METRICS
from normbench.store.runfolder import ROLES
from normbench.orchestrate.executors.base import EXECUTORS, make_executor, options_of
from normbench.analysis.tables import FORMATS

# TensorFlow's C++ start-up chatter hides the progress bar; users can still raise it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _Group(click.Group):
    """Every library error becomes `Error: <one line>` and exit status 1, no traceback."""

    def main(self, args=None, *a, **kw):
        # the command line as typed, for the command.txt of each folder a sweep or tune creates
        from normbench.store import runfolder

        runfolder.set_command_line(sys.argv[1:] if args is None else args)
        return super().main(args, *a, **kw)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NormbenchError as e:
            raise click.ClickException(_text(e)) from None
        except Exception as e:  # MemoryError, TensorFlow's ResourceExhaustedError: one line
            from normbench.core.reasons import describe, is_resource_error

            if not is_resource_error(e) or os.environ.get("NORMBENCH_DEBUG"):
                raise
            raise click.ClickException(describe(e)) from None


# the library's parameter names whose option is spelled otherwise (default: --name-with-dashes)
_FLAGS = {"overrides": "--set", "param": "--vs", "fmt": "--format", "out": "-o", "grid_items": "--grid",
          "ranges": "--range", "trials": "--optuna", "executor_options": "--executor-option"}


def _flag(param: str) -> str:
    """The command-line option of a library parameter named in a ParamError (a WordedError)."""
    return _FLAGS.get(param, "--" + param.replace("_", "-"))


def _text(e: NormbenchError) -> str:
    """A library error as the command line says it: its parameters as the options typed."""
    return e.render(_flag) if isinstance(e, WordedError) else str(e)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="normbench")
def main():
    """How does the normalization layer (batch, layer, none, ...) change how a Keras
    model trains? Run experiments from YAML configs and compare their curves."""


def _level(command):
    """Write the confidence level (metrics.LEVEL_TEXT) for `{level}` in a command's
    docstring, before click reads it as the command's help."""
    command.__doc__ = command.__doc__.replace("{level}", LEVEL_TEXT)
    return command


_set = click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
    help="Override a config value, typed like the field (repeatable): --set train.epochs=3",
)
_smoke = click.option("--smoke", is_flag=True, help="Shrink the config to a tiny subset and 1 epoch.")


def _use_backend(cfg, config) -> None:
    """Select the config's Keras backend before Keras loads; errors name the config file."""
    from normbench.training.train import use_backend

    try:
        use_backend(cfg.train.backend)
    except NormbenchError as e:
        raise NormbenchError(f"{config}: {_text(e)}") from None
    from normbench.core.quiet import import_keras

    import_keras()  # TensorFlow's start-up notices filtered


def _summary_line(run_dir, s: dict) -> str:
    def num(k, fmt):
        return format(s[k], fmt) if s.get(k) is not None else "n/a"

    return (
        f"{s['status']}: test_accuracy {num('test_accuracy', '.4f')}, test_loss {num('test_loss', '.4f')}, "
        f"wall {num('wall_seconds', '.1f')} s, {num('ms_per_step', '.1f')} ms/step -> {run_dir}"
    )


@main.command()
@click.argument("config", required=False)
@_set
@_smoke
@click.option("--resume", "resume_dir", metavar="RUN_DIR", help="Continue an unfinished run folder from its last finished epoch.")
@click.option("--quiet", "-q", is_flag=True, help="No Keras progress bar.")
@click.option("--threads", type=click.IntRange(1), help="TensorFlow CPU threads (default: all cores; on jax, XLA picks its own).")
def run(config, overrides, smoke, resume_dir, quiet, threads):
    """Train one experiment from CONFIG and write its run folder.

    \b
    Example:  normbench run configs/imdb_ln.yaml --set data.path=~/data/imdb.npz
    Output:   <output.dir>/<name>/<run-id>/{config.yaml, history.csv, summary.json}
    """
    from normbench.training import train
    from normbench.schema.config import load_config

    if bool(config) == bool(resume_dir):
        raise click.UsageError("give either CONFIG or --resume RUN_DIR")
    if resume_dir and (overrides or smoke):
        raise click.UsageError("--resume continues a run as it was configured; drop --set/--smoke")
    # a progress bar on a terminal; one line per epoch in logs and pipes
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    run_dir = resume_dir

    def announce(d):
        if not quiet:
            click.echo(f"normbench: {'resuming' if resume_dir else 'writing'} {d}", err=True)

    try:
        if resume_dir:
            run_dir, summary = train.resume_run(resume_dir, verbose=verbose, threads=threads, announce=announce)
        else:
            cfg = load_config(config, overrides, smoke)
            _use_backend(cfg, config)
            run_dir, summary = train.run(cfg, verbose=verbose, threads=threads, announce=announce)
    except KeyboardInterrupt as e:
        run_dir = getattr(e, "run_dir", run_dir)
        where = f" normbench run --resume {run_dir}" if run_dir else ""
        click.echo(f"\ninterrupted; finished epochs are kept.{' Resume with:' + where if where else ''}", err=True)
        sys.exit(130)
    except NormbenchError as e:
        from normbench.core.runlock import BUSY_EXIT, Busy

        if isinstance(e, Busy):  # its own exit status: a sweep reads it as "running elsewhere"
            err = click.ClickException(str(e))
            err.exit_code = BUSY_EXIT
            raise err from None
        raise
    except Exception as e:
        if os.environ.get("NORMBENCH_DEBUG"):
            raise
        from normbench.core.reasons import describe

        raise click.ClickException(f"training failed: {describe(e)} (set NORMBENCH_DEBUG=1 for the traceback)") from None
    click.echo(_summary_line(run_dir, summary))
    if summary["status"] != "completed":
        sys.exit(2)


@main.command()
@click.argument("config")
@_set
@_smoke
@click.option("--no-model", is_flag=True, help="Skip building the model (no TensorFlow import).")
def validate(config, overrides, smoke, no_model):
    """Check CONFIG without training: print the resolved config and the model summary."""
    from normbench.schema.config import load_config
    from normbench.build.data import DATASETS, describe_source
    from normbench.build.models import shown_yaml

    cfg = load_config(config, overrides, smoke)
    click.echo(shown_yaml(cfg), nl=False)  # without the keys this model and data never read
    click.echo(f"# data: {describe_source(cfg.data)}")
    if not no_model:
        from normbench.build.data import input_spec
        from normbench.build.models import build_model
        from normbench.build.usermodels import input_text, slots

        _use_backend(cfg, config)
        shape, dtype, classes = input_spec(cfg.data)
        model = build_model(cfg, classes or DATASETS[cfg.data.name].num_classes, dtype, shape)
        click.echo(f"# {input_text(cfg, model)}")  # dtype and range of x as the model gets them
        model.summary(print_fn=lambda line, **kw: click.echo(line))
        for line in slots(model):  # a user's model: every norm slot and what it became
            click.echo(f"# {line}")
    click.echo(f"{config}: OK")



# ----------------------------------------------------------------------------- results
# compare / plot / explain: thin wrappers over normbench.analysis.results, .tables, .plots and
# .explain (pandas, matplotlib and Keras are imported there, inside functions).

_paths = click.argument("paths", nargs=-1, required=True, metavar="PATH...")
_METRIC_HELP = ", ".join(METRICS)


def _registry_help(table) -> str:
    """`name: first docstring line` of each entry of a name -> function registry."""
    return "; ".join(f"{name}: {one_line(f.__doc__ or '', 200)}" for name, f in table.items())


def _executor_options_help() -> str:

    return "; ".join(f"{name}: {', '.join(options_of(name)) or 'none'}" for name in EXECUTORS)


def _note_excluded(excluded, collapsed=()) -> None:
    for r in excluded:
        click.echo(f"note: not averaged: {r.status} run {r.path}" + (f" ({r.problem})" if r.problem else ""), err=True)
    for dup, kept in collapsed or ():
        click.echo(f"note: collapsed: {dup.path} repeats the seed of {kept.path} (kept, finished earlier)", err=True)


@main.command()
@_paths
@click.option("--metric", default="test_accuracy", show_default=True, help=f"Rank groups by this summary metric: {_METRIC_HELP}.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="table", show_default=True,
              help=_registry_help(FORMATS) + ".")
@click.option("--output", "-o", "output", metavar="FILE", help="Write the result to FILE instead of the terminal.")
@click.option("--plot", "plot_file", metavar="FILE", help="Also write the groups' training curves to FILE (e.g. curves.png).")
@click.option("--within", "within", metavar="KEY", multiple=True,
              help="Rank separately for each value of this config key (repeatable), e.g. --within "
                   "train.learning_rate: each rate's norms are compared with each other only.")
@click.option("--role", type=click.Choice(list(ROLES)), default=None,
              help="Only the runs `normbench tune` made for this role: " + "; ".join(f"{k}: {v}" for k, v in ROLES.items()) + ".")
@click.option("--margin", type=float, default=None, metavar="M",
              help="Equivalence margin in the metric's units (0.01 = 1 pp of accuracy): each verdict is higher, lower, "
                   "equivalent within ±M (two one-sided tests) or not resolved. Default: the runs' declared compare.margin.")
@click.option("--family", type=click.Choice(list(FAMILIES)), default=None,
              help="The comparisons one Holm adjustment covers: " + "; ".join(f"{k}: {v}" for k, v in FAMILIES.items())
                   + ". Default: the runs' declared compare.family, else vs-best.")
@click.option("--study", "study", metavar="CONFIG",
              help="Take the declared primary analysis (compare: block) from this study config instead of the runs' "
                   "(runs made before the block existed carry none).")
@_level
def compare(paths, metric, fmt, output, plot_file, within, role, margin, family, study):
    """Compare groups of runs, and say how sure the comparison is.

    PATH is a run folder, or a folder searched recursively for run folders.
    Runs whose configs differ only in seed, and that ran on the same data, form a
    group; n counts distinct seeds (a seed run twice counts once). Groups are ranked
    within each model.arch on data.name section, never across. Each group shows n,
    mean ± sample std and the {level} t-interval of the metric's mean; each group against
    its section's best: the difference with its {level} Welch interval, Hedges' g, Welch's
    p and the Holm-adjusted p, then a verdict in words (and the paired-by-seed difference
    when both ran the same seeds). test_*_last of runs older than it falls back to
    test_* only when they evaluated the last epoch; test_*_best leaves older runs out.
    Runs that did not complete (diverged, interrupted, failed, unfinished, corrupt) are
    listed apart, never averaged.

    With --within KEY, each value of KEY is a section of its own (e.g. one per learning
    rate), so the question "which norm is best at this rate?" is asked per rate.

    Each verdict is higher, lower or not resolved; with --margin M also "equivalent
    within ±M" (two one-sided tests); never "no difference" without a margin. Accuracy
    intervals stay inside [0, 1]. Groups that did not learn (accuracy not above chance,
    or train loss not falling) are flagged and never best. With several sections,
    P(A better than B) across them. A study config's compare: block (or --study) declares
    the primary analysis; other analyses are labelled exploratory (docs/compare.md).

    Runs of `normbench tune` carry a role (tuning or confirmation): runs of different
    roles never share a group, and --role confirmation keeps the tuned comparison's runs.

    \b
    Example:  normbench compare results/ --metric test_loss --format markdown
              normbench compare results/study/study_cifar10_lr_tolerance --within train.learning_rate
    """
    from normbench.analysis import results, tables
    from normbench.analysis.runs import load_runs, with_role

    results.check_metric(metric)
    runs = with_role(load_runs(paths), role)
    comp = results.compare(runs, metric, within, margin=margin, family=family,
                           study=results.study_block(study) if study else None)
    text = tables.format_comparison(comp, fmt)
    if output:
        try:
            with open(os.path.expanduser(output), "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise NormbenchError(f"--output {output}: cannot write ({e.strerror}); choose a writable path") from None
        click.echo(f"wrote {output} ({len(comp.groups)} groups, {len(comp.runs)} runs)", err=True)
    else:
        click.echo(text, nl=False)
    if fmt == "csv" or output:
        _note_excluded(comp.excluded, comp.collapsed)
        for line in comp.notes:
            click.echo(f"note: {line}", err=True)
    if plot_file:
        from normbench.present import plots

        res = plots.plot_curves(runs, plot_file)
        click.echo(f"wrote {res.path}", err=True)


@main.command()
@_paths
@click.option("--output", "-o", "output", required=True, metavar="FILE", help="Image to write: .png, .pdf or .svg.")
@click.option("--vs", "param", metavar="KEY.PATH", help="Plot a final metric against this config key, one line per norm (e.g. train.batch_size).")
@click.option("--metric", default=None, help=f"With --vs: the metric on the y axis (default test_accuracy; for a tune's runs, its --select): {_METRIC_HELP}.")
@click.option("--band", type=click.Choice(list(BANDS)), default="ci", show_default=True,
              help="Band (curves) or error bars (--vs): " + "; ".join(f"{k}: {v}" for k, v in BANDS.items()) + ".")
@click.option("--log-loss", is_flag=True, help="Curves: the loss panel on a log scale.")
@_level
def plot(paths, output, param, metric, band, log_loss):
    """Plot runs: training curves per group, or a metric against a config key.

    \b
    Without --vs: accuracy and loss per epoch, one colour per group (runs that differ
    only in seed), train dashed, validation solid, the mean with a band: the {level}
    t-interval of the mean (--band ci, default) or ± 1 sample std (--band std);
    bands are clipped to [0, 1] for accuracies and to >= 0 for losses.
    With --vs KEY: the final metric against KEY, one line per norm, the same error bars;
    points from a single seed are hollow, without a bar. KEY must vary between the runs.
    Log x axis for batch sizes or values spanning 8x or more. Diverged runs (loss
    NaN/inf) are shown in a lower panel, as each point's share of diverged seeds.
    Runs of `normbench tune`: the tuning curve per norm (y default: the tune's --select),
    each norm's selected point starred, its confirmation runs a diamond beside it.

    \b
    Examples: normbench plot results/ -o curves.png
              normbench plot results/ --vs train.batch_size -o bs.png --band std
    """
    from normbench.present import plots
    from normbench.analysis import results
    from normbench.analysis.runs import load_runs

    if metric is not None and not param:
        raise click.UsageError("--metric applies to --vs plots; add --vs KEY.PATH or drop --metric")
    if param:
        results.check_metric(metric or "test_accuracy")
    runs = load_runs(paths)
    if param:
        res = plots.plot_vs(runs, param, output, metric, band)
        what = f"{res.lines} line{'s' * (res.lines != 1)}"
        if res.single:
            what += f", {res.single} point{'s' * (res.single != 1)} with n = 1 (hollow, no error bar)"
        if res.diverged:
            what += f", {res.diverged} diverged run{'s' * (res.diverged != 1)} (lower panel)"
        if res.selected:
            what += f", {res.selected} selected point{'s' * (res.selected != 1)} starred"
        if res.confirmed:
            what += f", {res.confirmed} confirmation point{'s' * (res.confirmed != 1)}"
    else:
        res = plots.plot_curves(runs, output, band=band, log_loss=log_loss)
        what = f"{res.lines} group{'s' * (res.lines != 1)}"
    _note_excluded(res.excluded, res.collapsed)
    click.echo(f"wrote {res.path} ({what}, {res.runs} runs)")


@main.command()
@_paths
@click.option("--output", "-o", "output", required=True, metavar="FILE", help="The page to write (.html).")
@click.option("--metric", default="test_accuracy", show_default=True, help=f"Rank groups by this summary metric: {_METRIC_HELP}.")
@click.option("--within", "within", metavar="KEY", multiple=True,
              help="Rank separately for each value of this config key, as compare --within (repeatable).")
@click.option("--title", metavar="TEXT", help="The page's title (default: the study names).")
@click.option("--log-loss", is_flag=True, help="The loss panels on a log scale.")
@_level
def report(paths, output, metric, within, title, log_loss):
    """One self-contained HTML page for a study, verdict first.

    \b
    The ranked table with its {level} intervals and verdicts, then the method (what
    varied, what was held fixed, data, versions, host), the curves (mean, band and each
    seed), each seed's final metric, for a `normbench tune` folder its tuning curves and
    budget (the verdict then compares its confirmation runs), every run and the runs left
    out, and the commands that reproduce it. Figures are inline SVG and compare's JSON
    is embedded: the page requests nothing outside itself (docs/report.md).

    \b
    Example:  normbench report results/study/study_imdb -o study_imdb.html
    """
    from normbench.present.report import build_report

    res = build_report(paths, output, metric, tuple(within), title, log_loss)
    _note_excluded(res.excluded)
    click.echo(f"wrote {res.path} ({res.bytes // 1024} KB: {len(res.sections)} section"
               f"{'s' * (len(res.sections) != 1)}, {res.compared} runs compared, {res.figures} figures)")


@main.command()
@click.option("--matrix", metavar="ROWS", help='Your own small matrix: "1,2,3;4,5,6" (rows split by ";" or newlines), or a CSV file.')
def explain(matrix):
    """Show what batch and layer normalization compute, on the tutorial's 3x5 matrix.

    Rows are samples, columns are features. Batch normalization normalizes each column
    across the rows; layer normalization each row across the columns. The numbers come
    from the real Keras layers and are checked against (x - mean) / sqrt(var + epsilon).
    """
    from normbench.analysis import explain as ex

    rows = ex.parse_matrix(matrix) if matrix is not None else None
    click.echo(ex.format_explanation(ex.explain(rows)), nl=False)


class _UntilTarget(click.ParamType):
    """sweep --seeds-until: a half-width (a finite number > 0) or the word resolved."""

    name = "HALF_WIDTH|resolved"

    def convert(self, value, param, ctx):
        if value == "resolved" or not isinstance(value, str):
            return value
        return _HalfWidth(0, min_open=True).convert(value, param, ctx)


class _HalfWidth(click.FloatRange):
    """A finite number > 0 (FloatRange lets NaN through: no comparison with it is true)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value} is not a finite number; give the half-width to reach, e.g. 0.01", param, ctx)
        return rv


def _members(f):
    """Where and how a sweep's or a tune's members train (sweep and tune share them)."""
    for option in reversed((
        click.option("--output", "output", metavar="DIR", help="Results folder (overrides output.dir; shared storage for Ray)."),
        click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True,
                     help="Members trained at once, each with cores/jobs CPU threads."),
        click.option("--executor", type=click.Choice(list(EXECUTORS)), default="local", show_default=True,
                     help=_registry_help(EXECUTORS) + "."),
        click.option("--address", metavar="ADDR", help="Ray cluster address (default: start a local Ray)."),
        click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE",
                     help="An option of the --executor (repeatable): " + _executor_options_help() + "."),
        click.option("--fail-fast", is_flag=True, help="Stop at the first failing member."),
    )):
        f = option(f)
    return f


@main.command()
@click.argument("config")
@click.option("--grid", "grid", multiple=True, metavar="KEY.PATH=A,B,C",
              help="Values to sweep (repeatable; the product is run): --grid model.norm=batch,layer,none")
@_set
@_smoke
@_members
@click.option("--dry-run", is_flag=True, help="List the members and their status; train nothing, create nothing.")
@click.option("--seeds-until", "seeds_until", type=_UntilTarget(), metavar="HALF_WIDTH|resolved",
              help=f"Add one seed per group per round until every group's {LEVEL_TEXT} interval half-width of --metric is "
                   f"<= HALF_WIDTH; or, with 'resolved', until every comparison is resolved (or equivalent within "
                   f"--margin), each round tested at alpha / rounds.")
@click.option("--max-seeds", type=click.IntRange(1), metavar="N", help="With --seeds-until: stop at N seeds per group.")
@click.option("--metric", default=None, help=f"With --seeds-until: the metric (default: the config's compare.primary, "
                                             f"else test_accuracy): {_METRIC_HELP}.")
@click.option("--margin", type=float, default=None, metavar="M",
              help="With --seeds-until resolved: also stop on equivalence within ±M (the metric's units); default: "
                   "the config's compare.margin.")
@click.option("--family", type=click.Choice(list(FAMILIES)), default=None,
              help="With --seeds-until resolved: the comparisons that must be resolved; default: the config's "
                   "compare.family, else vs-best.")
def sweep(config, grid, overrides, smoke, output, jobs, executor, address, executor_options, fail_fast, dry_run, seeds_until,
          max_seeds, metric, margin, family):
    """Train the grid of CONFIG x --grid values; re-running skips finished members
    and resumes unfinished ones from their last epoch.

    \b
    Example:  normbench sweep configs/cifar10_bn.yaml --grid model.norm=batch,layer,none --grid seed=0,1,2
    Members:  <output.dir>/<name>/<arch>-norm=..-bs=..-seed=../
    Seeds:    normbench sweep configs/study/imdb.yaml --seeds-until 0.01 --max-seeds 10

    A member folder locked by another process is "running elsewhere": not trained here,
    waited for. SIGTERM is handled like Ctrl-C: members save their state; run the same
    command again to resume.
    """
    from normbench.orchestrate import sweep as sw

    _check_until_options(seeds_until, max_seeds, metric, margin, family)
    if seeds_until is not None:
        plan = sw.plan_seeds(config, max_seeds, overrides, grid, smoke, output)
        metric, seeds_until = _until_rule(plan.cfg.compare, seeds_until, max_seeds, metric, margin, family)
        if dry_run:
            for line in sw.describe_until(plan, seeds_until, metric):
                click.echo(line)
            return
    else:
        members = sw.load_sweep(config, overrides, grid, smoke, output, create=not dry_run)
        if dry_run:
            for m in members:
                click.echo(f"{m.state():>11}  {m.run_dir}")
            return
    ex = make_executor(executor, address, executor_options)

    def train(echo, status_line):
        """The members' training: (failures, the members trained)."""
        if seeds_until is None:
            return sw.run_sweep(members, jobs=jobs, executor=ex, fail_fast=fail_fast, echo=echo,
                                status_line=status_line), members
        failures, last = sw.sweep_until(plan, seeds_until, metric, jobs=jobs, executor=ex, fail_fast=fail_fast,
                                        echo=echo, status_line=status_line)
        return failures, plan.members(last.seeds)

    failures, members = _live(train)
    _sweep_report(members)
    _exit_on_failures(failures)


def _check_until_options(seeds_until, max_seeds, metric, margin, family) -> None:
    """The options that only --seeds-until (or --seeds-until resolved) reads come with it."""
    if seeds_until is None and (max_seeds is not None or metric is not None):
        raise click.UsageError("--max-seeds and --metric apply to --seeds-until; add --seeds-until HALF_WIDTH")
    if seeds_until is not None and max_seeds is None:
        raise click.UsageError("--seeds-until needs --max-seeds N (the most seeds per group)")
    if seeds_until != "resolved" and (margin is not None or family is not None):
        raise click.UsageError("--margin and --family apply to --seeds-until resolved")


def _until_rule(declared, seeds_until, max_seeds, metric, margin, family):
    """(metric, stopping rule) of --seeds-until: a half-width, or for "resolved" a
    sweep.Resolve; what is not given comes from the config's compare: block (`declared`)."""
    from normbench.analysis import results
    from normbench.orchestrate import sweep as sw

    metric = metric or (declared.primary if declared else None) or "test_accuracy"
    results.check_metric(metric)
    if seeds_until != "resolved":
        return metric, seeds_until
    if margin is None and declared and declared.primary == metric:
        margin = declared.margin
    if margin is not None:
        results.check_margin(margin)
    family = family or (declared.family if declared else None) or results.DEFAULT_FAMILY
    return metric, sw.Resolve(margin, family, max(1, max_seeds - sw.FIRST_ROUND + 1))


def _live(train):
    """`train(echo, status_line)` with a live status line (on a terminal only:
    click.get_text_stream is deprecated in Click 8.5); Ctrl-C ends it with one line."""
    from normbench.orchestrate.progress import Progress

    live = Progress(sys.stdout)
    try:
        out = train(live.line, live.update)
    except KeyboardInterrupt:
        live.close()
        click.echo("\ninterrupted; run the same command again to resume", err=True)
        sys.exit(130)
    live.close()
    return out


def _exit_on_failures(failures) -> None:
    """A sweep's or tune's failed members, one line each on stderr, then exit status 1."""
    if failures:
        click.echo(f"{len(failures)} member(s) failed:", err=True)
        for m, err in failures:
            click.echo(f"  {m.run_dir}: {err}", err=True)
        sys.exit(1)


@main.command()
@click.argument("config")
@click.option("--per", "per", required=True, metavar="KEY.PATH=A,B",
              help="What is compared, each value at its own tuned point: --per model.norm=batch,layer,none")
@click.option("--grid", "grid", multiple=True, metavar="KEY.PATH=A,B,C",
              help="What is tuned (repeatable; the product is the grid): --grid train.learning_rate=0.0003,0.001,0.003,0.01")
@click.option("--optuna", "trials", type=click.IntRange(1), metavar="N",
              help="Instead of the whole grid: an Optuna search (TPE) of N trials per --per value over --range and "
                   "--grid (as choices); its study lives in <tune folder>/optuna.db (pip install 'normbench[optuna]').")
@click.option("--range", "ranges", multiple=True, metavar="KEY.PATH=LOW:HIGH[:log]",
              help="With --optuna: a continuous range to search (repeatable): --range train.learning_rate=0.0001:0.03:log")
@click.option("--tune-seeds", metavar="SEEDS", help="Seeds of the tuning runs (default 0,1).")
@click.option("--confirm-seeds", metavar="SEEDS",
              help="Fresh seeds of the confirmation runs, none a tuning seed (default: the next seeds after them; "
                   "3 of them without --seeds-until).")
@click.option("--select", default=None,
              help="The validation metric whose mean over the tuning seeds picks each point: best_val_accuracy, "
                   "last_val_accuracy (default: --metric's counterpart, best_val_accuracy for a best-epoch --metric, "
                   "else last_val_accuracy).")
@click.option("--metric", default="test_accuracy", show_default=True,
              help=f"The confirmation comparison's metric (and --seeds-until's): {_METRIC_HELP}.")
@click.option("--seeds-until", "seeds_until", type=_HalfWidth(0, min_open=True), metavar="HALF_WIDTH",
              help=f"Confirmation: add one seed per value per round until every {LEVEL_TEXT} interval half-width of --metric is <= HALF_WIDTH.")
@click.option("--max-seeds", type=click.IntRange(1), metavar="N", help="With --seeds-until: at most N confirmation seeds per value.")
@click.option("--against", "against", multiple=True, metavar="DIR",
              help="Folders of runs (repeatable) the confirmation seeds must be fresh against, besides the output folder: "
                   "a seed any run there made at a selected point is skipped (refused if given in --confirm-seeds).")
@_set
@_smoke
@_members
@click.option("--dry-run", is_flag=True, help="Show the members, the selection so far and the next step; train nothing, create nothing.")
def tune(config, per, grid, trials, ranges, tune_seeds, confirm_seeds, select, metric, seeds_until, max_seeds, against, overrides, smoke,
         output, jobs, executor, address, executor_options, fail_fast, dry_run):
    """Compare each --per value at its own best --grid point: tune on the tuning seeds,
    select on validation, confirm on fresh seeds.

    \b
    Example:  normbench tune configs/study/cifar10_tuned.yaml --per model.norm=batch,layer,none \\
                --grid train.learning_rate=0.0003,0.001,0.003,0.01 --tune-seeds 0,1 \\
                --seeds-until 0.01 --max-seeds 10
    Members:  <output.dir>/<name>/<arch>-norm=..-bs=..-learning_rate=..-seed=../ (role.json: tuning or confirmation)

    \b
    1. tuning: every value at every grid point on the tuning seeds (the same budget each);
    2. selection: per value, the point with the best mean of --select (a validation
       metric; a test metric is refused); ties and a point at the grid's edge are reported;
    3. confirmation: fresh seeds at each value's point (until --seeds-until or --max-seeds),
       compared as `normbench compare` does, without the tuning runs.
    Run the same command again to resume: finished members are kept, the selection is
    made again from the same folders, confirmation rounds continue. With --optuna N,
    tuning is N trials per value instead of the whole grid, resumed from optuna.db.
    """
    from normbench.orchestrate import tune as tn

    if seeds_until is None and max_seeds is not None:
        raise click.UsageError("--max-seeds applies to --seeds-until; add --seeds-until HALF_WIDTH")
    if seeds_until is not None and max_seeds is None:
        raise click.UsageError("--seeds-until needs --max-seeds N (the most confirmation seeds per value)")
    spec = tn.load_spec(config, per, grid, overrides, smoke, tune_seeds=tune_seeds, confirm_seeds=confirm_seeds,
                        select=select, metric=metric, target=seeds_until, max_seeds=max_seeds, output=output,
                        trials=trials, ranges=ranges, against=against)
    if dry_run:
        for line in tn.dry_run(spec):
            click.echo(line)
        return
    ex = make_executor(executor, address, executor_options)
    try:
        res = tn.run_tune(spec, jobs=jobs, executor=ex, fail_fast=fail_fast, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("\ninterrupted; run the same command again to resume", err=True)
        sys.exit(130)
    _exit_on_failures(res.failures)


@main.command(name="ls")
@_paths
@click.option("--status", "statuses", multiple=True, type=click.Choice(list(listing.STATUSES)),
              help="Only runs with this status (repeatable).")
@click.option("--format", "fmt", type=click.Choice(list(listing.FORMATS)), default="table", show_default=True,
              help="table for reading; json (an array of records) or csv for scripts (docs/bridges.md).")
def ls_cmd(paths, statuses, fmt):
    """List run folders: id, status, norm, seed, test accuracy, epochs done/total, age.

    Age is the time since the run last wrote a file, so a run that stopped long ago
    without finishing stands out. Statuses: summary.json's (running, completed, diverged,
    interrupted, failed), "unfinished" (history.csv but no summary.json: still running
    or killed), "not started" (config.yaml only), "corrupt".

    \b
    Example:  normbench ls results/ --status unfinished --status interrupted
    """
    rows = listing.entries(paths, statuses)
    base = Path(paths[0]).expanduser() if len(paths) == 1 and Path(paths[0]).is_dir() else None
    click.echo(listing.format_entries(rows, base, fmt), nl=False)
    if not rows and fmt == "table":
        click.echo(f"no run with status {', '.join(statuses)}", err=True)


@main.group(cls=_Group)
def export():
    """Replay run folders into another tool (docs/bridges.md)."""


@export.command(name="mlflow")
@_paths
@click.option("--tracking-uri", metavar="URI", help="Any URI MLflow accepts (sqlite:///file.db, http://host:5000, ...). "
              "Default: a local SQLite store beside the results, sqlite:///<output.dir>/mlflow.db.")
@click.option("--experiment", default="normbench", show_default=True, help="MLflow experiment to export into (created if missing).")
@click.option("--force", is_flag=True, help="Export into a SQLite file that another application made (MLflow adds its tables to it); "
              "without it such a file is refused.")
def export_mlflow(paths, tracking_uri, experiment, force):
    """Export finished runs (completed, diverged, failed) into MLflow: params = the
    flattened config, per-epoch metrics (step = epoch), summary figures, the status as a
    tag, config.yaml/history.csv/summary.json as artifacts. Runs already exported are
    skipped, so exporting again adds only new runs.

    \b
    Example:  normbench export mlflow results/study
              mlflow ui --backend-store-uri sqlite:///results/study/mlflow.db
    """
    from normbench.present.export import export_mlflow as export_runs

    res = export_runs(paths, tracking_uri, experiment, force=force)
    click.echo(f"exported {len(res.added)} run(s) to {res.tracking_uri} (experiment {res.experiment}); "
               f"{len(res.present)} already there, {len(res.unfinished)} not finished")
    if res.ui_url:
        serve = "" if res.tracking_uri.startswith(("http://", "https://")) else \
            f" (after: mlflow ui --backend-store-uri {res.tracking_uri})"
        click.echo(f"runs table: {res.ui_url}{serve}")


def _sweep_report(members) -> None:
    """End a sweep with the compare table of the members it ran."""
    from normbench.analysis import results, tables
    from normbench.analysis.runs import load_runs

    try:
        comp = results.compare(load_runs([str(m.run_dir) for m in members]))
    except NormbenchError as e:
        click.echo(f"(no comparison: {_text(e)})")
        return
    click.echo(tables.format_comparison(comp, "table"), nl=False)


if __name__ == "__main__":
    main()
