#!/usr/bin/env bash
# Downloads side by side with nginx serving the same 50 MB file (sendfile), on this machine:
#   full   whole-file GETs, `wrk -c4`          (goal: patchgate >= 80 % of nginx's MB/s)
#   range  128 KiB Range requests, `wrk -c16`   (goal: patchgate >= 50 % of nginx's requests/s)
# each through /tuf/targets and through the DDI artifact link with the device's TargetToken.
# Every patchgate run is paired with an nginx run of the same shape right before it, so the
# ratio holds even on a busy machine.
#
# usage: bench/downloads_vs_nginx.sh [DURATION=10s] [RUNS=3]
# Env:   PATCHGATE_BENCH_WORKDIR  generated files (default ${TMPDIR:-/tmp}/patchgate-bench)
#        NGINX                    the nginx binary (default: nginx on PATH or /usr/sbin/nginx)
#        WORKERS                  `patchgate serve --workers` (default 1)
#        NGINX_WORKERS            nginx's worker_processes (default auto: one per core)
#        ONLY                     "full", "range" or both (default "full range")
#        FLOOR                    1: also time bench/downloads_floor.py (granian answering
#                                 the same range from memory, no work in Python) with the
#                                 same workers, after each range pair
set -euo pipefail
DUR="${1:-10s}"; RUNS="${2:-3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PG="$ROOT/.venv/bin/patchgate"
PY="$ROOT/.venv/bin/python"
WORK="${PATCHGATE_BENCH_WORKDIR:-${TMPDIR:-/tmp}/patchgate-bench}/downloads"
RES="$WORK/results-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$RES"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
PORT_PG=18071; PORT_NG=18072; PORT_FL=18073
WORKERS="${WORKERS:-1}"; NGINX_WORKERS="${NGINX_WORKERS:-auto}"; ONLY="${ONLY:-full range}"
FLOOR="${FLOOR:-0}"
SIZE=$((50 * 1024 * 1024)); RANGE="bytes=1048576-1179647"  # 128 KiB at 1 MiB
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$RES/log.txt" >&2; }
wait_http() { for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done; return 1; }
busy() { if curl -s -o /dev/null "http://127.0.0.1:$1/"; then echo "port $1 is in use" >&2; exit 2; fi; }
[ -x "$NGINX" ] || { echo "nginx not found (apt-get install nginx-light)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
busy $PORT_PG; busy $PORT_NG; if [ "$FLOOR" = 1 ]; then busy $PORT_FL; fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)"
  echo "kernel: $(uname -r)"; echo "python: $("$PY" -V)"
  echo "granian: $("$PY" -c 'import granian; print(granian.__version__)')"
  echo "nginx: $("$NGINX" -v 2>&1)"; echo "wrk: $(wrk -v 2>&1 | head -1)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RES/machine.txt"
cat "$RES/machine.txt" >&2

# --- patchgate: a signed release with a 50 MB artifact, offered to one device -------------
export PATCHGATE_DATA_DIR="$WORK/data"; unset PATCHGATE_DATABASE_URL
rm -rf "$PATCHGATE_DATA_DIR"; mkdir -p "$PATCHGATE_DATA_DIR"
"$PG" init --demo --json > "$RES/init.json" 2> /dev/null
head -c $SIZE /dev/urandom > "$WORK/image.bin"
REL="$("$PG" release create "Demo Gateway" 9.0.0 --artifact "$WORK/image.bin" --hardware demo-gw-1 --json 2>/dev/null)"
read -r RID TARGET < <(echo "$REL" | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print(r["id"], r["artifacts"][0]["tuf_target"])')
TOKEN="$("$PG" device add dl-1 --hardware demo-gw-1 --version 1.0.0 --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
"$PG" device assign dl-1 "$RID" --json > /dev/null
"$PG" serve --port $PORT_PG --workers "$WORKERS" > "$RES/server.log" 2>&1 &
PG_PID=$!
NG_DIR="$(mktemp -d)"; chmod 755 "$NG_DIR"
FL_PID=""
if [ "$FLOOR" = 1 ]; then
  "$ROOT/.venv/bin/granian" --interface asgi --workers "$WORKERS" --port $PORT_FL --no-access-log \
    --backlog 2048 --working-dir "$HERE" downloads_floor:app > "$RES/floor.log" 2>&1 &
  FL_PID=$!
fi
trap 'kill $PG_PID $FL_PID 2>/dev/null || true; [ -f "$NG_DIR/nginx.pid" ] && kill "$(cat "$NG_DIR/nginx.pid")" 2>/dev/null || true' EXIT
wait_http "http://127.0.0.1:$PORT_PG/healthz"
BASE="http://127.0.0.1:$PORT_PG"
DDI_LINK="$(curl -fs -H "Authorization: TargetToken $TOKEN" "$BASE/DEFAULT/controller/v1/dl-1/deploymentBase/1" \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"])')"
TUF_URL="$BASE/tuf/targets/$TARGET"

# --- nginx: an unprivileged process on a loopback port, sendfile, the same file ----------
mkdir -p "$NG_DIR/www" "$NG_DIR/tmp"; chmod 644 "$WORK/image.bin"; ln "$WORK/image.bin" "$NG_DIR/www/image.bin" 2>/dev/null || cp "$WORK/image.bin" "$NG_DIR/www/image.bin"
cat > "$NG_DIR/nginx.conf" <<NGINX
worker_processes $NGINX_WORKERS;
pid $NG_DIR/nginx.pid;
error_log $NG_DIR/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  client_body_temp_path $NG_DIR/tmp; proxy_temp_path $NG_DIR/tmp;
  fastcgi_temp_path $NG_DIR/tmp; uwsgi_temp_path $NG_DIR/tmp; scgi_temp_path $NG_DIR/tmp;
  server { listen 127.0.0.1:$PORT_NG; root $NG_DIR/www; }
}
NGINX
"$NGINX" -p "$NG_DIR" -c "$NG_DIR/nginx.conf" -e "$NG_DIR/error.log"
NG_URL="http://127.0.0.1:$PORT_NG/image.bin"
wait_http "$NG_URL"
if [ "$FLOOR" = 1 ]; then wait_http "http://127.0.0.1:$PORT_FL/"; fi

# The answers must be right before they are timed.
for url in "$TUF_URL" "$DDI_LINK" "$NG_URL"; do
  curl -fs -H "Authorization: TargetToken $TOKEN" "$url" | cmp -s - "$WORK/image.bin" || { echo "wrong bytes from $url" >&2; exit 1; }
  code="$(curl -s -o "$RES/part.bin" -w '%{http_code}' -H "Authorization: TargetToken $TOKEN" -H "Range: $RANGE" "$url")"
  [ "$code" = 206 ] && cmp -s "$RES/part.bin" <(tail -c +1048577 "$WORK/image.bin" | head -c 131072) \
    || { echo "wrong Range answer ($code) from $url" >&2; exit 1; }
done

# CPU time (user + system, clock ticks) of a server: its main process and its children.
cpu_ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1"); do
    [ -r "/proc/$pid/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
# run TAG URL CONNECTIONS RANGE INDEX SERVER_PID: a 2 s warm-up, then one timed run; the
# server's CPU time over the timed run goes with it (robust where throughput is not: on a
# busy machine a server gets what CPU the others leave it).
run() {
  local tag="$1" url="$2" conns="$3" range="${4:-}" i="$5" server="$6" out before
  local args=(-t1 -c"$conns" -H "Authorization: TargetToken $TOKEN")
  [ -n "$range" ] && args+=(-H "Range: $range")
  out="$RES/$tag-$i.txt"
  timeout 60 wrk "${args[@]}" -d2s "$url" > /dev/null
  { echo "== wrk ${args[*]//$TOKEN/TOKEN} -d$DUR $url"; echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$out"
  before="$(cpu_ticks "$server")"
  timeout 120 wrk "${args[@]}" -d"$DUR" "$url" >> "$out"
  echo "server cpu ticks: $(( $(cpu_ticks "$server") - before )) of $(getconf CLK_TCK)/s" >> "$out"
  log "$tag run $i: $(grep -E 'Requests/sec|Transfer/sec|server cpu' "$out" | xargs)"
}
NG_PID="$(cat "$NG_DIR/nginx.pid")"
echo "patchgate workers: $WORKERS; nginx worker_processes: $NGINX_WORKERS" >> "$RES/machine.txt"
for i in $(seq 1 "$RUNS"); do
  [[ " $ONLY " == *" full "* ]] || continue
  run full-nginx "$NG_URL" 4 "" "$i" "$NG_PID"; run full-tuf "$TUF_URL" 4 "" "$i" "$PG_PID"
  run full-nginx2 "$NG_URL" 4 "" "$i" "$NG_PID"; run full-ddi "$DDI_LINK" 4 "" "$i" "$PG_PID"
done
for i in $(seq 1 "$RUNS"); do
  [[ " $ONLY " == *" range "* ]] || continue
  run range-nginx "$NG_URL" 16 "$RANGE" "$i" "$NG_PID"; run range-tuf "$TUF_URL" 16 "$RANGE" "$i" "$PG_PID"
  run range-nginx2 "$NG_URL" 16 "$RANGE" "$i" "$NG_PID"; run range-ddi "$DDI_LINK" 16 "$RANGE" "$i" "$PG_PID"
  if [ "$FLOOR" = 1 ]; then run range-floor "http://127.0.0.1:$PORT_FL/" 16 "$RANGE" "$i" "$FL_PID"; fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RES/machine.txt"

"$PY" - "$RES" "$RUNS" <<'PY'
import re, statistics, sys
from pathlib import Path
res, runs = Path(sys.argv[1]), int(sys.argv[2])
UNITS = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}
def figures(tag, i):
    text = (res / f"{tag}-{i}.txt").read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
    num, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text).groups()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    count = int(re.search(r"(\d+) requests in", text)[1])
    ticks, hz = map(int, re.search(r"server cpu ticks: (-?\d+) of (\d+)", text).groups())
    cpu_us = ticks / hz / max(count, 1) * 1e6  # server CPU per request
    return rps, float(num) * UNITS[unit], int(bad[1]) if bad else 0, cpu_us
rows = [("full", "tuf", "full-nginx", 1), ("full", "ddi", "full-nginx2", 1),
        ("range", "tuf", "range-nginx", 0), ("range", "ddi", "range-nginx2", 0),
        ("range", "floor", "range-nginx2", 0)]
rows = [r for r in rows if (res / f"{r[0]}-{r[1]}-1.txt").exists()]
print("| shape | route | patchgate (median) | nginx (median) | ratio per pair (median; all) "
      "| server CPU per request, patchgate / nginx (median) | errors |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for shape, route, peer, by_bytes in rows:
    ours = [figures(f"{shape}-{route}", i) for i in range(1, runs + 1)]
    theirs = [figures(peer, i) for i in range(1, runs + 1)]
    k = 1 if by_bytes else 0
    unit = "MB/s" if by_bytes else "req/s"
    ratios = [o[k] / t[k] for o, t in zip(ours, theirs)]
    print(f"| {shape} | {route} | {statistics.median(o[k] for o in ours):,.0f} {unit} "
          f"| {statistics.median(t[k] for t in theirs):,.0f} {unit} "
          f"| {statistics.median(ratios):.2f} ({'/'.join(f'{r:.2f}' for r in ratios)}) "
          f"| {statistics.median(o[3] for o in ours):,.0f} µs / "
          f"{statistics.median(t[3] for t in theirs):,.0f} µs "
          f"| {sum(o[2] for o in ours)} |")
PY
