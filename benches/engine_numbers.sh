#!/bin/sh
# Whole-process numbers for the engine (issue 3), on the release binary:
#   1. `tiltrs ci` on 20 echo resources (four chains of five): wall, CPU, peak RSS (/usr/bin/time -v);
#   2. `tiltrs up` idle after that graph settled: RSS and CPU ticks (utime+stime) over 30 s;
#   3. edit-to-start latency (file write -> cmd start), 50 edits: p50 and p90.
# Usage: benches/engine_numbers.sh [path/to/tiltrs]   (default: target/<host>/release/tiltrs)
set -eu
BIN=${1:-$(cd "$(dirname "$0")/.." && pwd)/target/$(rustc -vV | sed -n 's/^host: //p')/release/tiltrs}
IDLE_SECS=${IDLE_SECS:-30}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/p"
: > "$WORK/p/Tiltfile"
for c in 0 1 2 3; do
  for i in 0 1 2 3 4; do
    deps=""
    [ "$i" -gt 0 ] && deps=", resource_deps=['c$c-$((i-1))']"
    echo "local_resource('c$c-$i', cmd='echo c$c-$i'$deps)" >> "$WORK/p/Tiltfile"
  done
done
cd "$WORK/p"

echo "== ci, 20 resources (5 runs)"
for run in 1 2 3 4 5; do
  /usr/bin/time -v "$BIN" ci > /dev/null 2> "$WORK/time.txt"
  wall=$(grep 'Elapsed (wall clock)' "$WORK/time.txt" | awk '{print $NF}')
  user=$(grep 'User time' "$WORK/time.txt" | awk '{print $NF}')
  sys=$(grep 'System time' "$WORK/time.txt" | awk '{print $NF}')
  rss=$(grep 'Maximum resident' "$WORK/time.txt" | awk '{print $NF}')
  echo "run $run: wall ${wall} user ${user}s sys ${sys}s peak RSS ${rss} KiB"
done

echo "== up idle (${IDLE_SECS}s after settling)"
: > "$WORK/up.log"
"$BIN" up > "$WORK/up.log" 2>&1 &
UP=$!
n=0
while [ "$(grep -c 'Update succeeded' "$WORK/up.log" || true)" -lt 20 ]; do
  sleep 0.1; n=$((n+1)); [ $n -lt 300 ] || { echo "up did not settle"; kill $UP; exit 1; }
done
sleep 2
ticks() { awk '{print $14+$15}' /proc/$UP/stat; }
t0=$(ticks)
sleep "$IDLE_SECS"
t1=$(ticks)
rss=$(awk '/VmRSS/{print $2}' /proc/$UP/status)
echo "idle RSS ${rss} KiB, CPU ticks over ${IDLE_SECS}s: $((t1 - t0)) (CLK_TCK=$(getconf CLK_TCK))"
kill -INT $UP; wait $UP || true

echo "== edit-to-start latency (50 edits)"
mkdir -p "$WORK/e/src"; echo 0 > "$WORK/e/src/f"
echo "local_resource('app', cmd='date +%s%N >> $WORK/starts', deps=['src'])" > "$WORK/e/Tiltfile"
cd "$WORK/e"
: > "$WORK/e.log"
"$BIN" up > "$WORK/e.log" 2>&1 &
UP=$!
while [ ! -s "$WORK/starts" ]; do sleep 0.05; done
: > "$WORK/lat"
i=0
while [ $i -lt 50 ]; do
  sleep 0.05
  before=$(date +%s%N)
  echo $i > src/f
  want=$((i + 2))
  while [ "$(wc -l < "$WORK/starts")" -lt $want ]; do sleep 0.002; done
  after=$(tail -n 1 "$WORK/starts")
  echo $(( (after - before) / 1000 )) >> "$WORK/lat"
  i=$((i+1))
done
kill -INT $UP; wait $UP || true
sort -n "$WORK/lat" > "$WORK/lat.sorted"
p50=$(sed -n 25p "$WORK/lat.sorted"); p90=$(sed -n 45p "$WORK/lat.sorted")
echo "edit-to-start: p50 ${p50} us, p90 ${p90} us (min $(head -1 "$WORK/lat.sorted"), max $(tail -1 "$WORK/lat.sorted"))"
