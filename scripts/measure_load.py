#!/usr/bin/env python3
"""Whole-process cost of evaluating a Tiltfile: wall time and peak RSS of
`tiltrs alpha tiltfile-result`, median over N runs.

Usage: scripts/measure_load.py TILTRS_BIN TILTFILE [N]
Prints: runs=N wall_ms_median=.. wall_ms_min=.. peak_rss_mib_median=.. peak_rss_mib_max=..

Wall time is from spawning the process (posix_spawn, stdout to /dev/null) to reaping it, so
it includes exec, dynamic loading and exit. Peak RSS comes from separate runs under GNU time
(`/usr/bin/time -f %M`, Debian package `time`): a child spawned from Python would count
Python's own pages, which the kernel keeps in the high-water mark across exec.
"""
import os
import statistics
import subprocess
import sys
import time

binary, tiltfile = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
argv = [binary, "alpha", "tiltfile-result", "-f", tiltfile]
to_null = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]


def wall_ms():
    start = time.monotonic()
    pid = os.posix_spawn(binary, argv, os.environ, file_actions=to_null)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.monotonic() - start) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("tiltrs failed: " + " ".join(argv))
    return elapsed


def peak_rss_mib():
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M"] + argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit("tiltrs failed:\n" + proc.stderr)
    return int(proc.stderr.strip().splitlines()[-1]) / 1024  # KiB -> MiB


wall_ms()  # warm the page cache
walls = [wall_ms() for _ in range(runs)]
rss = [peak_rss_mib() for _ in range(runs)]
print(
    "runs=%d wall_ms_median=%.1f wall_ms_min=%.1f peak_rss_mib_median=%.1f peak_rss_mib_max=%.1f"
    % (runs, statistics.median(walls), min(walls), statistics.median(rss), max(rss))
)
