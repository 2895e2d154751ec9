"""Time whole processes from outside, alternated: the harness behind
benchmarks/whole_process.sh (Python standard library only, Linux or another Unix).

    python benchmarks/alternate.py -n 3 --warmup 1 --out times.csv \\
        --cmd plain 'python benchmarks/plain_imdb.py ../shared/data/imdb.npz' \\
        --cmd normbench 'normbench run configs/imdb_ln.yaml -q --set data.path=../shared/data/imdb.npz'

Each `--cmd LABEL COMMAND` is one command; COMMAND is split like a shell would split
it (shlex) but run without a shell (write `sh -c '...'` for pipes, `&&` or `$VAR`).
The commands run one at a time, in turn (A B C A B C ...): the warm-up rounds first,
not counted, then N counted rounds, so a slow spell of the machine hits every command
alike and each round gives a paired ratio. Each run is a fresh process in its own
process group (a timeout kills the whole group; anything the command leaves running
in its group is killed before the next run starts), stdin from /dev/null, stdout and
stderr to a file (kept under --log DIR, otherwise thrown away; the last lines are
printed when the command fails).

Measured per run:
  wall_s   time.monotonic() from just before the start to just after the process is reaped
  user_s, sys_s, cpu_s
           CPU time of the process and of every descendant it waited for (os.wait4's
           rusage; a grandchild that is never waited for is not counted)
  peak_mib ru_maxrss: the peak resident set of the largest single process among those
           (not the sum of processes running at once), in MiB. It has a floor: a child
           counts the harness's own resident set (~16 MiB) until it execs, so small
           commands read as that floor (printed with the summary)
  exit_code, status
           status is ok, failed (exit code not 0; negative codes are signals) or timeout
  load1    the 1-minute load average just before the run (how busy the machine was)

--out writes one CSV row per counted run (label, rep, the figures above, command); it is
written as OUT.partial while the rounds run and renamed to OUT only when all have
finished. The printed summary gives, per command, min / median / max of wall, CPU and
peak over its successful runs, then for each command against the first (the baseline)
the per-round ratio of wall times (median, min, max over the rounds where both
succeeded) and the ratio of the medians (wall and CPU). The exit status is 1 when any
run (warm-up included) failed or timed out, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

COLUMNS = ["label", "rep", "wall_s", "user_s", "sys_s", "cpu_s", "peak_mib", "exit_code", "status",
           "load1", "command"]
GRACE_S = 5.0  # after a timeout's SIGTERM, how long the group gets before SIGKILL
LABEL_RE = re.compile(r"[A-Za-z0-9._+-]+")
# ru_maxrss is in KiB on Linux and the BSDs, in bytes on macOS
MAXRSS_TO_MIB = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10


class UsageError(Exception):
    """A mistake in the arguments: printed as one `Error:` line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message.removeprefix('argument ')}; see {self.prog} --help")


@dataclass
class Command:
    label: str
    text: str
    argv: list[str]
    runs: list["Run"] = field(default_factory=list)  # the counted ones


@dataclass
class Run:
    label: str
    rep: str  # 1..N, or w1..wW for warm-ups
    wall_s: float
    user_s: float
    sys_s: float
    peak_mib: float
    exit_code: int
    status: str
    load1: float

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[Command]]:
    p = Parser(prog="python benchmarks/alternate.py",
               description="Time whole processes from outside, alternated (A B A B ...).",
               epilog="Example: python benchmarks/alternate.py -n 3 --warmup 1 --out t.csv "
                      "--cmd fast 'sleep 0.1' --cmd slow 'sleep 0.3'")
    p.add_argument("--cmd", nargs=2, action="append", metavar=("LABEL", "COMMAND"), default=[],
                   help="a command to time, as one string split like a shell does (repeat; the first is "
                        "the baseline of the ratios)")
    p.add_argument("-n", "--runs", type=int, default=3, help="counted rounds (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up rounds run first, not counted (default 1)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds one run may take before its process group is killed (default: none)")
    p.add_argument("--out", type=Path, default=None, metavar="CSV", help="write one row per counted run here")
    p.add_argument("--log", type=Path, default=None, metavar="DIR",
                   help="keep each run's stdout and stderr as DIR/LABEL.REP.log")
    a = p.parse_args(argv)
    if not a.cmd:
        raise UsageError("--cmd: no command given; name at least one, e.g. --cmd plain 'python script.py'")
    if a.runs < 1:
        raise UsageError(f"-n: {a.runs} counted rounds; give 1 or more")
    if a.warmup < 0:
        raise UsageError(f"--warmup: {a.warmup} rounds; give 0 or more")
    if a.timeout is not None and not a.timeout > 0:
        raise UsageError(f"--timeout: {a.timeout} s; give a positive number of seconds")
    if a.out is not None:
        if a.out.is_dir():
            raise UsageError(f"--out {a.out}: is a folder; give a file name, e.g. {a.out / 'times.csv'}")
        if not a.out.parent.is_dir():
            raise UsageError(f"--out {a.out}: folder {a.out.parent} does not exist; create it first")
    if a.log is not None and a.log.exists() and not a.log.is_dir():
        raise UsageError(f"--log {a.log}: is a file; give a folder")
    commands: list[Command] = []
    for label, text in a.cmd:
        if not LABEL_RE.fullmatch(label):
            raise UsageError(f"--cmd {label!r}: a label may hold only letters, digits and . _ + -; rename it")
        if any(c.label == label for c in commands):
            raise UsageError(f"--cmd {label}: label given twice; give each command its own label")
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise UsageError(f"--cmd {label}: cannot split {text!r} ({e}); check its quotes") from None
        if not words:
            raise UsageError(f"--cmd {label}: the command is empty; give the command to run")
        prog = words[0]
        found = (os.path.isfile(prog) and os.access(prog, os.X_OK)) if os.sep in prog else shutil.which(prog)
        if not found:
            raise UsageError(f"--cmd {label}: program {prog!r} not found"
                             f"{'' if os.sep in prog else ' on PATH'}; check its spelling or give its path")
        commands.append(Command(label, text, words))
    return a, commands


def kill_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it has no processes left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def run_once(cmd: Command, rep: str, timeout: float | None, log_dir: Path | None) -> Run:
    if log_dir is not None:
        out = open(log_dir / f"{cmd.label}.{rep}.log", "w+b")
    else:
        out = tempfile.TemporaryFile()
    with out:
        load1 = os.getloadavg()[0]
        finished, lock, timed_out = threading.Event(), threading.Lock(), []
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own session and process group, pgid = pid

        def expire():
            with lock:
                if finished.is_set():
                    return
                timed_out.append(True)
                kill_group(proc.pid, signal.SIGTERM)
            if not finished.wait(GRACE_S):
                kill_group(proc.pid, signal.SIGKILL)

        timer = None
        if timeout is not None:
            timer = threading.Thread(target=lambda: finished.wait(timeout) or expire(), daemon=True)
            timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C while waiting: take the command down with us
            kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        wall = time.monotonic() - t0
        with lock:
            finished.set()
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
        if timer is not None:
            timer.join()
        # whatever the command left behind in its group would run into the next timing
        if kill_group(proc.pid, signal.SIGKILL):
            print(f"  {cmd.label} run {rep} left processes running in its process group; killed them",
                  file=sys.stderr)
        state = "timeout" if timed_out else "ok" if code == 0 else "failed"
        run = Run(cmd.label, rep, wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss * MAXRSS_TO_MIB, code, state, load1)
        if not run.ok:
            what = f"timed out after {timeout:g} s" if timed_out else f"exit code {code}"
            print(f"  {cmd.label} run {rep}: {what}", file=sys.stderr)
            out.seek(0, os.SEEK_END)
            out.seek(max(0, out.tell() - 2000))
            tail = out.read().decode(errors="replace").splitlines()[-6:]
            for line in tail:
                print(f"    | {line}", file=sys.stderr)
            if log_dir is not None:
                print(f"    full output: {log_dir / f'{cmd.label}.{rep}.log'}", file=sys.stderr)
    return run


def fmt_row(name: str, values: list[float], digits: int, n_ok: int, n: int) -> str:
    if not values:
        return f"{name:<28}{'no successful run':>34}   0/{n}"
    vs = (min(values), statistics.median(values), max(values))
    return f"{name:<28}" + "".join(f"{v:>12.{digits}f}" for v in vs) + f"   {n_ok}/{n}"


def machine_line() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpus} CPUs available" + (f" ({model})" if model else "")


def summary(commands: list[Command], n: int, warmup: int, load_start: float, load_end: float) -> str:
    out = [
        f"{n} counted round(s) of {len(commands)} command(s) in turn, after {warmup} warm-up round(s) not counted; "
        f"{datetime.datetime.now().isoformat(timespec='minutes')}; {machine_line()}; "
        f"load average (1 min) {load_start:.2f} at start, {load_end:.2f} at end",
    ]
    width = max(len(c.label) for c in commands)
    out += [f"{c.label:<{width}} = {c.text}" for c in commands]
    out.append(f"{'':<28}{'min':>12}{'median':>12}{'max':>12}   ok")
    for c in commands:
        ok = [r for r in c.runs if r.ok]
        for name, attr, digits in (("wall s", "wall_s", 3), ("cpu s", "cpu_s", 3), ("peak MiB", "peak_mib", 1)):
            out.append(fmt_row(f"{c.label} {name}", [getattr(r, attr) for r in ok], digits, len(ok), n))
    failed = [r for c in commands for r in c.runs if not r.ok]
    for r in failed:
        out.append(f"FAILED: {r.label} run {r.rep}: {r.status}, exit code {r.exit_code}")
    base = commands[0]
    if len(commands) > 1:
        out.append(f"ratio to {base.label} (the first command): wall per round median (min, max); "
                   "ratio of median wall; ratio of median cpu")
        for c in commands[1:]:
            name = f"{c.label}/{base.label}"
            per_round = [r.wall_s / b.wall_s for r, b in zip(c.runs, base.runs) if r.ok and b.ok]
            line = f"{name:<28}"
            if per_round:
                line += (f"wall per round {statistics.median(per_round):.4f} "
                         f"({min(per_round):.4f}, {max(per_round):.4f}; {len(per_round)} rounds)")
            else:
                line += "wall per round n/a (no round where both succeeded)"
            ok_c, ok_b = [r for r in c.runs if r.ok], [r for r in base.runs if r.ok]
            if ok_c and ok_b:
                wall = statistics.median(r.wall_s for r in ok_c) / statistics.median(r.wall_s for r in ok_b)
                cpu_b = statistics.median(r.cpu_s for r in ok_b)
                cpu = statistics.median(r.cpu_s for r in ok_c) / cpu_b if cpu_b > 0 else float("nan")
                line += f"; medians: wall {wall:.4f}, cpu {cpu:.4f}"
            out.append(line)
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_TO_MIB
    out.append("peak: the largest single process among those each command waited for (ru_maxrss), "
               "not the sum of processes running at once; it cannot read below this harness's own "
               f"{floor:.1f} MiB (a child counts its parent's memory until it execs)")
    return "\n".join(out)


def row(run: Run, cmd: Command) -> dict:
    return {"label": run.label, "rep": run.rep, "wall_s": f"{run.wall_s:.4f}", "user_s": f"{run.user_s:.3f}",
            "sys_s": f"{run.sys_s:.3f}", "cpu_s": f"{run.cpu_s:.3f}", "peak_mib": f"{run.peak_mib:.1f}",
            "exit_code": run.exit_code, "status": run.status, "load1": f"{run.load1:.2f}", "command": cmd.text}


def main(argv: list[str] | None = None) -> int:
    try:
        a, commands = parse_args(sys.argv[1:] if argv is None else argv)
        if a.log is not None:
            a.log.mkdir(parents=True, exist_ok=True)
    except UsageError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"Error: --log {a.log}: cannot create it ({e.strerror}); give a folder you can write", file=sys.stderr)
        return 2
    partial = a.out.with_name(a.out.name + ".partial") if a.out is not None else None
    sink = writer = None
    if partial is not None:
        sink = open(partial, "w", newline="")
        writer = csv.DictWriter(sink, fieldnames=COLUMNS)
        writer.writeheader()
    any_failed = False
    load_start = os.getloadavg()[0]
    total = a.warmup + a.runs
    try:
        for k in range(total):
            counted = k >= a.warmup
            rep = str(k - a.warmup + 1) if counted else f"w{k + 1}"
            for c in commands:
                run = run_once(c, rep, a.timeout, a.log)
                any_failed |= not run.ok
                print(f"[{'round ' + rep if counted else 'warm-up ' + rep[1:]}/{a.runs if counted else a.warmup}] "
                      f"{c.label}: {run.wall_s:.2f} s wall, {run.cpu_s:.2f} s cpu, {run.peak_mib:.0f} MiB, "
                      f"{run.status}", file=sys.stderr, flush=True)
                if counted:
                    c.runs.append(run)
                    if writer is not None:
                        writer.writerow(row(run, c))
                        sink.flush()
    except KeyboardInterrupt:
        if sink is not None:
            sink.close()
        print(f"interrupted{f'; the runs so far are in {partial}' if partial else ''}", file=sys.stderr)
        return 130
    if sink is not None:
        sink.close()
        os.replace(partial, a.out)
    print(summary(commands, a.runs, a.warmup, load_start, os.getloadavg()[0]))
    if a.out is not None:
        print(f"wrote {a.out}")
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
