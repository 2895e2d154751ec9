"""Time and peak memory of `normbench compare` and `normbench plot` on many run folders
(issue 23, "compare and plot at scale").

The run folders are generated here through runfolder's own writers (config.yaml and its
index config.json, history.csv, summary.json), copied from one committed run of the
reference study with seed, norm and learning rate varied, so they read exactly as real runs
do: N runs are N / 30 learning rates x 3 norms x 10 seeds (groups of 10 seeds), 10 epochs of
history each. --noise SD adds seeded normal noise to each run's test_accuracy, so that
groups differ as real seeds do and most comparisons are unresolved (the verdicts that
compute seeds needed); 0 gives the noise-free runs of the first round. --without-index
deletes each config.json after writing it: run folders from before the index, read from YAML.

Each measurement is one whole process (`python -m normbench compare DIR -o FILE` or
`plot DIR -o FILE`), run from the code's own folder and timed from here; peak RSS is its
ru_maxrss from wait4. Repetitions alternate the sizes and the codes. Each row has the
sha256 of what the process wrote, so the codes' outputs can be checked byte-identical.

    git archive 51171fc | tar -x -C /tmp/nb-before     # the code before issue 23's changes
    python benchmarks/compare_scale.py --sizes 1000,10000 --reps 3 --before /tmp/nb-before \
        --out benchmarks/results/compare_scale.csv

Writes one row per process to --out and prints the medians.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness  # benchmarks/harness.py: python benchmarks/x.py puts benchmarks/ first on sys.path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from normbench.store import runfolder  # noqa: E402

TEMPLATE = REPO / "results/study/study_cifar10/cifar10_cnn-norm=batch-bs=64-seed=4"
NORMS = ("batch", "layer", "none")
SEEDS = 10


def make_runs(root: Path, n: int, noise: float = 0.0, index: bool = True) -> Path:
    """n run folders under root/scale (groups of SEEDS seeds per (learning rate, norm));
    noise: the sd of seeded normal noise on test_accuracy; index: keep config.json."""
    config = (TEMPLATE / runfolder.CONFIG).read_text(encoding="utf-8")
    history = (TEMPLATE / runfolder.HISTORY).read_text(encoding="utf-8")
    summary = json.loads((TEMPLATE / runfolder.SUMMARY).read_text(encoding="utf-8"))
    out = root / "scale"
    for i in range(n):
        seed, norm, lr_i = i % SEEDS, NORMS[(i // SEEDS) % 3], i // (SEEDS * 3)
        lr = round(0.001 * (1 + lr_i), 6)
        run_id = f"cifar10_cnn-norm={norm}-lr={lr}-seed={seed}"
        d = runfolder.run_path(out, "scale", run_id)
        d.mkdir(parents=True)
        text = (config.replace("seed: 4", f"seed: {seed}").replace("norm: batch", f"norm: {norm}")
                .replace("learning_rate: 0.001", f"learning_rate: {lr}").replace("name: study_cifar10", "name: scale"))
        runfolder.write_config(d, text)
        if not index:
            (d / runfolder.CONFIG_INDEX).unlink()
        (d / runfolder.HISTORY).write_text(history, encoding="utf-8")
        accuracy = summary["test_accuracy"] - 0.001 * seed - 0.01 * NORMS.index(norm)
        s = dict(summary, run_id=run_id, name="scale", norm=norm, seed=seed,
                 test_accuracy=accuracy + (random.Random(i).gauss(0, noise) if noise else 0.0))
        runfolder.write_summary(d, s)
    return out


def measure(cmd: list[str], code: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit status) of one whole process running `code`'s normbench."""
    env = dict(os.environ, PYTHONPATH=str(code))
    wall, rss, rc, err = harness.timed_process(cmd, cwd=code, env=env)
    if rc:
        print(f"  exit {rc}: {err.strip().splitlines()[-1:]}", file=sys.stderr)
    return wall, rss, rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated run counts")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--commands", default="compare,plot", help="compare, plot or both")
    ap.add_argument("--before", default=None, help="a checkout of other normbench code, timed alternately as 'before'")
    ap.add_argument("--out", default=None, help="CSV of one row per process")
    ap.add_argument("--noise", type=float, default=0.0, help="sd of seeded noise on each run's test_accuracy")
    ap.add_argument("--without-index", action="store_true", help="delete each run's config.json (runs from before it)")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    commands = a.commands.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="nb-scale-"))
    rows = []
    try:
        dirs = {}
        for n in sizes:
            t0 = time.perf_counter()
            dirs[n] = make_runs(tmp / str(n), n, a.noise, not a.without_index)
            print(f"made {n} run folders in {time.perf_counter() - t0:.1f} s", flush=True)
        codes = {"this": REPO, **({"before": Path(a.before).resolve()} if a.before else {})}
        for rep in range(a.reps):
            order = sizes if rep % 2 == 0 else sizes[::-1]
            for n in order:
                for what in commands:
                    for code in (list(codes) if rep % 2 == 0 else list(codes)[::-1]):
                        written = tmp / f"{what}-{code}-{n}.{'png' if what == 'plot' else 'txt'}"
                        written.unlink(missing_ok=True)
                        cmd = [sys.executable, "-m", "normbench", what, str(dirs[n]), "-o", str(written)]
                        wall, rss, rc = measure(cmd, codes[code])
                        digest = hashlib.sha256(written.read_bytes()).hexdigest()[:16] if written.exists() else ""
                        rows.append({"code": code, "command": what, "runs": n, "rep": rep, "wall_s": round(wall, 2),
                                     "peak_rss_mib": round(rss, 1), "exit": rc, "load1": round(os.getloadavg()[0], 1),
                                     "cpu": harness.cpu_name(), "cores": os.cpu_count(), "noise": a.noise,
                                     "index": not a.without_index, "output_sha256": digest})
                        print(f"{code} {what} {n}: {wall:.2f} s, {rss:.0f} MiB (exit {rc})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.out:
        harness.write_csv(a.out, rows)
    for code in codes:
        for what in commands:
            for n in sizes:
                r = [x for x in rows if x["code"] == code and x["command"] == what and x["runs"] == n]
                print(f"median {code} {what} {n}: {statistics.median(x['wall_s'] for x in r):.2f} s, "
                      f"{statistics.median(x['peak_rss_mib'] for x in r):.0f} MiB")
    for what in commands:
        for n in sizes:
            digests = {x["output_sha256"] for x in rows if x["command"] == what and x["runs"] == n}
            print(f"{what} {n}: {'the same output from every process' if len(digests) == 1 else 'OUTPUTS DIFFER'}")


if __name__ == "__main__":
    main()
