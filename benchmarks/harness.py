"""What the benchmark scripts share: a child process that prints its result as one
`RESULT {json}` line, a whole process timed from outside with its exact peak RSS (wait4),
this process's own peak RSS, the machine in one line, and the CSV writer. Standard
library only; the scripts import it as `import harness` (python benchmarks/x.py puts
benchmarks/ first on sys.path)."""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_result(out) -> None:
    """The child's side of run_child: its result, as the last `RESULT ` line of stdout."""
    print("RESULT " + json.dumps(out), flush=True)


def run_child(argv: list[str], env: dict, timeout=None, tail_chars=600):
    """Run `argv`, a child that ends with print_result(...): (its result, None), or
    (None, the last 3 lines of stderr, at most tail_chars) when it failed, printed no
    result or ran past `timeout` seconds."""
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    lines = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
    if p.returncode or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return None, " | ".join(tail)[-tail_chars:]
    return json.loads(lines[-1][len("RESULT "):]), None


def timed_process(cmd: list[str], **popen) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MiB, exit status, stderr) of one whole process: wait4's
    ru_maxrss, the largest of the process's and its reaped descendants' peaks."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), err


def cpu_name() -> str:
    return platform.processor() or platform.machine()


def machine() -> str:
    """The CPU's model name, its core count and the AVX-512 / AMX flags it has."""
    cpu, flags = "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16") if f in flags]
    return f"{cpu}, {os.cpu_count()} cores, flags: {' '.join(wanted) or 'no AVX-512'}"


def write_csv(path, rows: list[dict], keys=None, lineterminator="\r\n", atomic=False) -> None:
    """rows as CSV; columns `keys`, or every key the rows have in first-seen order. The
    default line ends are csv's own (\\r\\n), as the committed CSVs of the scripts that
    never chose have them; atomic: written beside and renamed, never half there."""
    keys = keys or list(dict.fromkeys(k for r in rows for k in r))
    path = Path(path)
    target = path.with_name(path.name + ".tmp") if atomic else path
    with open(target, "w", newline="") as f:
        w = csv.DictWriter(f, keys, lineterminator=lineterminator)
        w.writeheader()
        w.writerows(rows)
    if atomic:
        os.replace(target, path)


if __name__ == "__main__":
    sys.exit("harness.py is imported by the benchmark scripts, not run")
