#!/usr/bin/env python3
"""Whole-process cost of evaluating a Tiltfile: wall time and peak RSS of
`tiltrs alpha tiltfile-result`, median over N runs.

Usage: scripts/measure_load.py TILTRS_BIN TILTFILE [N]
Prints: runs=N wall_ms_median=.. wall_ms_min=.. peak_rss_mib_median=.. peak_rss_mib_max=..
"""
import os
import statistics
import subprocess
import sys
import time

binary, tiltfile = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
walls, rss = [], []
for _ in range(runs):
    start = time.monotonic()
    proc = subprocess.Popen(
        [binary, "alpha", "tiltfile-result", "-f", tiltfile],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    walls.append((time.monotonic() - start) * 1000)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("tiltrs failed: " + proc.stderr.read().decode())
    rss.append(usage.ru_maxrss / 1024)  # KiB -> MiB
print(
    "runs=%d wall_ms_median=%.1f wall_ms_min=%.1f peak_rss_mib_median=%.1f peak_rss_mib_max=%.1f"
    % (runs, statistics.median(walls), min(walls), statistics.median(rss), max(rss))
)
