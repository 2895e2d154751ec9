"""Time to first step and peak memory of sweep members, with and without the data cache
(issue 14, "studies that start fast and share memory"). Linux only (reads /proc).

Each measurement is one whole process started from here:
- `member`: `normbench run CONFIG` on the real data. Time to first step = from just before
  the process is started to the first training batch (a callback added by the shim
  benchmarks/_shim/sitecustomize.py, which then lets the member train `--steps` batches,
  validate and evaluate on the test set as usual, so every allocation of a run happens).
  Peak RSS = the member's ru_maxrss (exact, from wait4); peak PSS = the highest
  /proc/PID/smaps_rollup Pss seen by sampling every 0.1 s (PSS splits shared pages,
  e.g. a memory-mapped cache file, between the processes that map them).
- `jobs2`: `normbench sweep CONFIG --grid seed=0,1 --jobs 2`, each member run by the
  same shim; peak of the summed RSS and PSS of the driver and its members, sampled.

Conditions: `before` runs the code in --before (e.g. a checkout of main without the
cache, or without uint8 images); `cold` this code with an empty cache folder (the first
member fills it); `warm` this code with the cache already filled. `before` uses the same
cache folder, so code that has the cache reads it warm once a `warm` item filled it (list
`warm` first). The committed CSV's `warm-uint8` rows came from a probe in the shim, since
removed: normbench itself now keeps images uint8 into the model (its first layer scales
them). Repetitions alternate the order of the conditions.

    git archive main | tar -x -C /tmp/nb-before   # the code without the cache
    python benchmarks/startup_memory.py --before /tmp/nb-before --reps 3 \
        --out benchmarks/results/startup_memory.csv

Writes one row per process to --out (and prints medians).

    python benchmarks/startup_memory.py --quick --out /tmp/sm.csv   # a smoke check

--quick checks the harness, not the figures: the smoke configs (configs/smoke/, generated
data, shrunk as --smoke does), 2 steps, 1 repetition, conditions cold and warm; it needs
no real data and no --before (a `before` condition asked for then runs this code).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness  # benchmarks/harness.py: python benchmarks/x.py puts benchmarks/ first on sys.path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIGS = {"cifar10": "configs/cifar10_bn.yaml", "imdb": "configs/imdb_ln.yaml"}
QUICK_CONFIGS = {"cifar10": "configs/smoke/cifar10_bn.yaml", "imdb": "configs/smoke/imdb_ln.yaml"}  # generated data


def _pss_rss_kb(pid: int) -> tuple[int, int]:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    vals = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in ("Rss:", "Pss:"):
            vals[parts[0]] = int(parts[1])
    return vals.get("Pss:", 0), vals.get("Rss:", 0)


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure(cmd: list[str], env: dict, first_step_dir: Path) -> dict:
    """Run cmd; return wall seconds, exact peak RSS of the largest process (MiB), sampled
    peak summed RSS and PSS of the tree (MiB) and the first-step times the shim wrote."""
    load0 = _load()
    t0 = time.time()
    env = {**env, "NB_T0": repr(t0), "NB_FIRST_STEP_DIR": str(first_step_dir)}
    # cwd: a folder without normbench in it (`python -m` puts the cwd first on sys.path,
    # ahead of PYTHONPATH, so running from a checkout would import that checkout's code)
    proc = subprocess.Popen(cmd, env=env, cwd=first_step_dir.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_pss = peak_rss = 0
    rusage = None
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            rusage = ru
            break
        pss = rss = 0
        for p in _tree(proc.pid):
            a, b = _pss_rss_kb(p)
            pss, rss = pss + a, rss + b
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.1)
    wall = time.time() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0 and not (proc.returncode == 3 and "NB_EXIT_AT_FIRST" in env):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    firsts = sorted(json.loads(f.read_text())["first_step_s"] for f in first_step_dir.glob("*.json"))
    for f in first_step_dir.glob("*.json"):
        f.unlink()
    # wait4's ru_maxrss is the largest peak RSS of the process and of every descendant it
    # reaped (Linux: max of its own and its children's), so a sweep's largest member
    maxrss_kb = rusage.ru_maxrss
    return {
        "wall_s": round(wall, 2),
        "first_step_s": ";".join(f"{x:.2f}" for x in firsts),
        "first_step_s_max": round(max(firsts), 2) if firsts else "",
        "maxrss_mib": round(maxrss_kb / 1024),
        "peak_sum_rss_mib": round(peak_rss / 1024),
        "peak_sum_pss_mib": round(peak_pss / 1024),
        "load_before": load0,
        "load_after": _load(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="source tree of the code without the cache (PYTHONPATH); "
                                     "required by the before condition (--quick: this tree)")
    ap.add_argument("--after", default=str(REPO), help="source tree with the cache (default: this one)")
    ap.add_argument("--data", default=str(REPO.parent.parent / "shared" / "data"), help="folder of the real data (NORMBENCH_DATA_DIR)")
    ap.add_argument("--plan", default="cifar10:member,imdb:first,cifar10:jobs2",
                    help="dataset:mode items; mode member, jobs2, or first (a member that exits at its first step)")
    ap.add_argument("--jobs2-reps", type=int, default=2, help="repetitions of the jobs2 items (each is long)")
    ap.add_argument("--conditions", default=None,
                    help="before (the --before code), cold / warm cache (this code); default before,cold,warm "
                         "(--quick: cold,warm)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3; --quick: 1)")
    ap.add_argument("--steps", type=int, default=None,
                    help="training batches per member before it stops (then validation + test); default 20 (--quick: 2)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke check of the harness on generated data (configs/smoke/, shrunk as --smoke)")
    ap.add_argument("--out", default=str(HERE / "results" / "startup_memory.csv"))
    args = ap.parse_args(argv)
    quick = args.quick
    args.conditions = args.conditions or ("cold,warm" if quick else "before,cold,warm")
    args.reps = args.reps if args.reps is not None else (1 if quick else 3)
    args.steps = args.steps if args.steps is not None else (2 if quick else 20)
    if args.before is None:
        if not quick and "before" in args.conditions.split(","):
            raise SystemExit("--before: required by the before condition; give a source tree without the cache "
                             "(see this file's docstring), or leave before out of --conditions")
        args.before = args.after
    for code in (args.before, args.after):
        if not (Path(code) / "normbench" / "__init__.py").exists():
            raise SystemExit(f"{code} holds no normbench package")

    python = sys.executable
    rows = []
    with tempfile.TemporaryDirectory(prefix="nb-startup-") as tmp:
        tmp = Path(tmp)
        fs_dir = tmp / "first_step"
        fs_dir.mkdir()
        for rep in range(args.reps):
            for item in args.plan.split(","):
                dataset, mode = item.split(":")
                if mode == "jobs2" and rep >= args.jobs2_reps:
                    continue
                if True:
                    conds = args.conditions.split(",")
                    if rep % 2:
                        conds = conds[::-1]  # alternate the order between repetitions
                    for cond in conds:
                        code = args.before if cond == "before" else args.after
                        cache = tmp / f"cache-{dataset}"
                        if cond == "cold":
                            shutil.rmtree(cache, ignore_errors=True)
                        elif cond.startswith("warm") and not cache.exists():
                            # fill it once, unmeasured
                            measure(_cmd(python, "member", dataset, tmp, 1, quick),
                                    _env(code, args.data, cache, 1, quick), fs_dir)
                        env = _env(code, args.data, cache, args.steps, quick)
                        if mode == "first":
                            env["NB_EXIT_AT_FIRST"] = "1"
                        r = measure(_cmd(python, mode, dataset, tmp, args.steps, quick), env, fs_dir)
                        shutil.rmtree(tmp / "runs", ignore_errors=True)
                        row = {"rep": rep, "dataset": dataset, "mode": mode, "condition": cond, **r}
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    harness.write_csv(args.out, rows)
    print("\nmedians (first_step_s_max, maxrss, peak sum RSS, peak sum PSS):")
    keys = sorted({(r["dataset"], r["mode"], r["condition"]) for r in rows})
    for k in keys:
        rs = [r for r in rows if (r["dataset"], r["mode"], r["condition"]) == k]
        med = lambda c: statistics.median(float(r[c]) for r in rs if r[c] != "")  # noqa: E731
        print(f"{'/'.join(k):28s} n={len(rs)} first_step {med('first_step_s_max'):6.1f} s  "
              f"maxrss {med('maxrss_mib'):5.0f}  sumRSS {med('peak_sum_rss_mib'):5.0f}  sumPSS {med('peak_sum_pss_mib'):5.0f} MiB  "
              f"load {statistics.median(r['load_before'] for r in rs):.1f}")


def _env(code: str, data: str, cache: Path, steps: int, quick: bool = False) -> dict:
    env = dict(os.environ)
    # the shim's folder first, so that sweep members (python -m normbench) load it too
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "_shim"), code])
    if quick:
        env.pop("NORMBENCH_DATA_DIR", None)  # generated data: no folder to read
    else:
        env["NORMBENCH_DATA_DIR"] = data
    env["NORMBENCH_CACHE_DIR"] = str(cache)
    env["NB_STOP_AFTER"] = str(steps)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _cmd(python: str, mode: str, dataset: str, tmp: Path, steps: int, quick: bool = False) -> list[str]:
    base = ["--set", "train.epochs=1", "--set", f"output.dir={tmp / 'runs'}", *(["--smoke"] if quick else [])]
    config = str(REPO / (QUICK_CONFIGS if quick else CONFIGS)[dataset])
    if mode in ("member", "first"):
        return [python, "-m", "normbench", "run", config, "-q", *base]
    return [python, "-m", "normbench", "sweep", config, "--grid", "seed=0,1", "--jobs", "2",
            "--output", str(tmp / "runs"), *base]


if __name__ == "__main__":
    main()
