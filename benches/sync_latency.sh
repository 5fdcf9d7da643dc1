#!/usr/bin/env bash
# Edit-to-served latency of live_update on a real Docker engine (issue 4's numbers).
#
# A Compose service runs busybox httpd from the test base image, built by docker_build with
# live_update=[sync('www', '/www')]. ../shared/bench/sync_latency.py writes a file and polls
# the URL until the new content is served. Two runs:
#   sync:    www/index.html (inside the sync) -> live update into the running container
#   rebuild: other.txt (outside every sync)   -> full image build + compose redeploy
# Usage: benches/sync_latency.sh [N_SYNC] [N_REBUILD]   (needs a release build and dockerd)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/$(rustc -vV | sed -n 's/^host: //p')/release/tiltrs"
bench="${SYNC_LATENCY_PY:-$root/../shared/bench/sync_latency.py}"
n_sync="${1:-40}"
n_rebuild="${2:-8}"
base=tiltrs-test/busybox:latest
[ -x "$bin" ] || (cd "$root" && cargo build --release)
if ! docker image inspect "$base" >/dev/null 2>&1; then
  rootfs="$(mktemp -d)"
  mkdir -p "$rootfs/bin" "$rootfs/www" "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/"
  for a in $("$rootfs/bin/busybox" --list); do [ -e "$rootfs/bin/$a" ] || ln -s busybox "$rootfs/bin/$a"; done
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' - "$base" >/dev/null
  rm -rf "$rootfs"
fi
work="$(mktemp -d)"
proj="$work/project"
logs="$work/logs"
mkdir -p "$proj/www" "$logs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$proj/Tiltfile" <<TILT
docker_build('tiltrs-bench/web', '.', live_update=[sync('www', '/www')])
docker_compose('docker-compose.yml', project_name='tiltrs-bench')
TILT
cat >"$proj/docker-compose.yml" <<YML
services:
  web:
    image: tiltrs-bench/web
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    # httpd as PID 1 ignores SIGTERM, so every redeploy would wait out Compose's 10 s stop
    # timeout; an init process forwards the signal, as in most real images.
    init: true
    ports: ["127.0.0.1:$port:80"]
YML
printf 'FROM %s\nCOPY www /www\nCOPY other.txt /www/other.txt\n' "$base" >"$proj/Dockerfile"
echo start >"$proj/www/index.html"
echo start >"$proj/other.txt"
cleanup() {
  [ -n "${up_pid:-}" ] && kill -INT "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
  (cd "$proj" && "$bin" down >/dev/null 2>&1) || true
  docker images -q tiltrs-bench/web | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$proj" && exec "$bin" up --stream >"$logs/up.log" 2>&1) &
up_pid=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== sync (live_update), $n_sync edits"
python3 "$bench" "$proj/www/index.html" "http://127.0.0.1:$port/index.html" "$n_sync" --gap 0.5
echo "== full rebuild and redeploy (file outside the syncs), $n_rebuild edits"
python3 "$bench" "$proj/other.txt" "http://127.0.0.1:$port/other.txt" "$n_rebuild" --gap 1
