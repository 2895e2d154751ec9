"""Command line. Thin: parse, call one library function, turn NormbenchError into a
one-line click error. TensorFlow is imported only inside commands that train or build."""

from __future__ import annotations

import os
import sys

import click

from normbench import NormbenchError, __version__

# TensorFlow's C++ start-up chatter hides the progress bar; users can still raise it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _Group(click.Group):
    """Every library error becomes `Error: <one line>` and exit status 1, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NormbenchError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="normbench")
def main():
    """How does the normalization layer (batch, layer, none, ...) change how a Keras
    model trains? Run experiments from YAML configs and compare their curves."""


_set = click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
    help="Override a config value, typed like the field (repeatable): --set train.epochs=3",
)
_smoke = click.option("--smoke", is_flag=True, help="Shrink the config to a tiny subset and 1 epoch.")


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
@click.option("--threads", type=click.IntRange(1), help="TensorFlow CPU threads (default: all cores).")
def run(config, overrides, smoke, resume_dir, quiet, threads):
    """Train one experiment from CONFIG and write its run folder.

    \b
    Example:  normbench run configs/imdb_ln.yaml --set data.path=~/data/imdb.npz
    Output:   <output.dir>/<name>/<run-id>/{config.yaml, history.csv, summary.json}
    """
    from normbench import train
    from normbench.config import load_config

    if bool(config) == bool(resume_dir):
        raise click.UsageError("give either CONFIG or --resume RUN_DIR")
    if resume_dir and (overrides or smoke):
        raise click.UsageError("--resume continues a run as it was configured; drop --set/--smoke")
    verbose = 0 if quiet else "auto"
    run_dir = resume_dir
    try:
        if resume_dir:
            run_dir, summary = train.resume_run(resume_dir, verbose=verbose, threads=threads)
        else:
            cfg = load_config(config, overrides, smoke)
            run_dir, summary = train.run(cfg, verbose=verbose, threads=threads)
    except KeyboardInterrupt:
        where = f" normbench run --resume {run_dir}" if run_dir else ""
        click.echo(f"\ninterrupted; finished epochs are kept.{' Resume with:' + where if where else ''}", err=True)
        sys.exit(130)
    except NormbenchError:
        raise
    except Exception as e:
        if os.environ.get("NORMBENCH_DEBUG"):
            raise
        msg = str(e).splitlines()[0][:200] if str(e) else ""
        raise click.ClickException(
            f"training failed: {e.__class__.__name__}: {msg} (set NORMBENCH_DEBUG=1 for the traceback)"
        ) from None
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
    from normbench.config import dump_yaml, load_config
    from normbench.data import DATASETS, describe_source

    cfg = load_config(config, overrides, smoke)
    click.echo(dump_yaml(cfg), nl=False)
    click.echo(f"# data: {describe_source(cfg.data)}")
    if not no_model:
        from normbench.models import build_model

        model = build_model(cfg, DATASETS[cfg.data.name].num_classes)
        model.summary(print_fn=lambda line, **kw: click.echo(line))
    click.echo(f"{config}: OK")


if __name__ == "__main__":
    main()
