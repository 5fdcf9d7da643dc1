#!/usr/bin/env python3
"""Whole-process cost of evaluating a Tiltfile: wall time and peak RSS of
`tiltrs alpha tiltfile-result`, median over N runs.

Usage: scripts/measure_load.py TILTRS_BIN TILTFILE [N]
Prints: runs=N wall_ms_median=.. wall_ms_min=.. peak_rss_mib_median=.. peak_rss_mib_max=..

Peak RSS comes from GNU time (`/usr/bin/time -f %M`, Debian package `time`): a child forked
from Python would count Python's own pages, which the kernel keeps in the high-water mark
across exec.
"""
import statistics
import subprocess
import sys
import time

binary, tiltfile = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
walls, rss = [], []
for _ in range(runs):
    start = time.monotonic()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", binary, "alpha", "tiltfile-result", "-f", tiltfile],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    walls.append((time.monotonic() - start) * 1000)
    if proc.returncode != 0:
        sys.exit("tiltrs failed:\n" + proc.stderr)
    rss.append(int(proc.stderr.strip().splitlines()[-1]) / 1024)  # KiB -> MiB
print(
    "runs=%d wall_ms_median=%.1f wall_ms_min=%.1f peak_rss_mib_median=%.1f peak_rss_mib_max=%.1f"
    % (runs, statistics.median(walls), min(walls), statistics.median(rss), max(rss))
)
