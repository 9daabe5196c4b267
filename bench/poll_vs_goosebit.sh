#!/usr/bin/env bash
# DDI poll throughput and latency, side by side in one run on this machine:
#   G0  gooseBit 0.2.12 (one uvicorn process, SQLite), N devices round-robin, nothing pending
#   G1  the same with an update pending for every device (a rollout of a newer version)
#   S0  patchgate on SQLite (one granian worker), N devices round-robin, nothing pending
#   S1  the same with an action pending for every device (`device assign`'s service)
#   P0  patchgate on PostgreSQL, N devices, nothing pending
#   P1  the same with an action pending for every device
#   PM  patchgate on PostgreSQL with BIG devices, polled over all of them (stride 7919)
#   C   the ceiling: a bare ASGI app on the same server software (granian, one worker)
#       answering a constant poll reply
# Each is `wrk -t1 -c50 -d$DURATION --latency` with a Lua script (round-robin controllerIds),
# RUNS times; the summary takes the median run. Prints a Markdown table last.
#
# usage: bench/poll_vs_goosebit.sh [DURATION=15s] [RUNS=3] [N=1000] [BIG=1000000]
# Env:   PATCHGATE_BENCH_PG  admin URL of a PostgreSQL server (default
#                            postgresql://postgres@127.0.0.1:5432/postgres); the script
#                            creates and drops a database `patchgate_poll_bench` on it.
#        GOOSEBIT_PEER       folder with the gooseBit peer scripts (start_goosebit.sh,
#                            bench_setup.py, make_dummy_swu.py, poll_rr.lua); required
#                            for the gooseBit runs (G0 G1).
#        GOOSEBIT_WORKDIR    gooseBit's venv and data (default ${TMPDIR:-/tmp}/goosebit-peer)
#        ONLY                space-separated subset of "G0 G1 S0 S1 P0 P1 PM C"
# Generated files go to ${PATCHGATE_BENCH_WORKDIR:-${TMPDIR:-/tmp}/patchgate-bench}.
set -euo pipefail
DUR="${1:-15s}"; RUNS="${2:-3}"; N="${3:-1000}"; BIG="${4:-1000000}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PG="$ROOT/.venv/bin/patchgate"
PY="$ROOT/.venv/bin/python"
WORK="${PATCHGATE_BENCH_WORKDIR:-${TMPDIR:-/tmp}/patchgate-bench}"
RES="$WORK/results/vs-goosebit-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$RES"
PG_ADMIN="${PATCHGATE_BENCH_PG:-postgresql://postgres@127.0.0.1:5432/postgres}"
PG_URL="${PG_ADMIN%/*}/patchgate_poll_bench"
GB_WORK="${GOOSEBIT_WORKDIR:-${TMPDIR:-/tmp}/goosebit-peer}"
ONLY="${ONLY:-G0 G1 S0 S1 P0 P1 PM C}"
PORT_GB=18054; PORT_PG=18060; PORT_C=18069
secs="${DUR%s}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } >&2
want() { [[ " $ONLY " == *" $1 "* ]]; }
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$RES/log.txt" >&2; }
wait_http() { for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done; return 1; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
busy() { curl -s -o /dev/null "http://127.0.0.1:$1/" && { echo "port $1 is in use" >&2; exit 2; } || true; }

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)"
  echo "memory: $(free -g | awk '/^Mem/{print $2}') GiB"
  echo "kernel: $(uname -r)"; echo "python: $("$PY" -V)"
  echo "granian: $("$PY" -c 'import granian; print(granian.__version__)')"
  echo "postgresql: $(psql "$PG_ADMIN" -Atc 'show server_version' 2>/dev/null || echo '?')"
  echo "wrk: $(wrk -v 2>&1 | head -1)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RES/machine.txt"
cat "$RES/machine.txt" >&2

# measure TAG URL LUA ARGS PID: a 3 s warm-up, then RUNS runs; the server's RSS after them.
measure() {
  local tag="$1" url="$2" lua="$3" n="$4" pid="$5"
  timeout 60 wrk -t1 -c50 -d3s -s "$lua" "$url" -- $n > /dev/null
  for i in $(seq 1 "$RUNS"); do
    local cmd="wrk -t1 -c50 -d$DUR --latency -s $(basename "$lua") $url -- $n"
    { echo "== $tag run $i: $cmd"; echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$RES/$tag-$i.txt"
    timeout $((secs + 60)) wrk -t1 -c50 -d"$DUR" --latency -s "$lua" "$url" -- $n >> "$RES/$tag-$i.txt"
    log "$tag run $i: $(grep -E 'Requests/sec' "$RES/$tag-$i.txt" | xargs)"
  done
  rss_kb "$pid" > "$RES/$tag-rss.txt"
}

# --- gooseBit --------------------------------------------------------------------------------
if want G0 || want G1; then
  [ -n "${GOOSEBIT_PEER:-}" ] || { echo "set GOOSEBIT_PEER to the gooseBit peer scripts" >&2; exit 2; }
  busy $PORT_GB
  BD="$GB_WORK/bench-data-vs"; rm -rf "$BD"; mkdir -p "$BD"
  export GOOSEBIT_WORKDIR="$GB_WORK" GOOSEBIT_DB_URI="sqlite://$BD/db.sqlite3" GOOSEBIT_ARTIFACTS_DIR="$BD/artifacts"
  GB_PID="$("$GOOSEBIT_PEER/start_goosebit.sh" $PORT_GB | tail -1)"
  trap 'kill $GB_PID 2>/dev/null || true' EXIT
  GBPY="$GB_WORK/venv/bin/python"
  "$GBPY" "$GOOSEBIT_PEER/make_dummy_swu.py" "$BD/update-1.0.0.swu" 1.0.0 1.0 >&2
  log "gooseBit: registering $N devices through DDI"
  timeout 900 "$GBPY" "$GOOSEBIT_PEER/bench_setup.py" "http://127.0.0.1:$PORT_GB" "$N" "$BD/update-1.0.0.swu" > "$RES/G-setup.txt"
  echo "gooseBit $("$GB_WORK/venv/bin/pip" show goosebit 2>/dev/null | awk '/^Version/{print $2}'), pid $GB_PID" >> "$RES/machine.txt"
  want G0 && measure G0 "http://127.0.0.1:$PORT_GB/DEFAULT/controller/v1/" "$GOOSEBIT_PEER/poll_rr.lua" "$N" "$GB_PID"
  if want G1; then
    "$GBPY" "$GOOSEBIT_PEER/make_dummy_swu.py" "$BD/update-2.0.0.swu" 2.0.0 1.0 >&2
    timeout 900 "$GBPY" "$HERE/goosebit_pending.py" "http://127.0.0.1:$PORT_GB" "$N" "$BD/update-2.0.0.swu" | tee "$RES/G1-setup.txt" >&2
    measure G1 "http://127.0.0.1:$PORT_GB/DEFAULT/controller/v1/" "$GOOSEBIT_PEER/poll_rr.lua" "$N" "$GB_PID"
  fi
  grep -c -E 'ERROR|Traceback|database is locked' "$GB_WORK/logs/goosebit-$PORT_GB.log" > "$RES/G-server-errors.txt" || true
  kill "$GB_PID"; wait "$GB_PID" 2>/dev/null || true; sleep 1
  trap - EXIT
fi

# --- patchgate -------------------------------------------------------------------------------
# provision DB_URL DATA_DIR: init, N devices by `device import`, a gateway token.
provision() {
  if [ -n "$1" ]; then export PATCHGATE_DATABASE_URL="$1"; else unset PATCHGATE_DATABASE_URL; fi
  export PATCHGATE_DATA_DIR="$2"
  rm -rf "$PATCHGATE_DATA_DIR"; mkdir -p "$PATCHGATE_DATA_DIR"
  "$PG" init --demo --json > "$RES/init.json" 2> /dev/null
  "$PY" -c "import sys
print('id,groups,hardware,version')
for i in range(int(sys.argv[1])): print(f'bench-{i},,demo-gw-1,1.0.0')" "$N" > "$WORK/devices.csv"
  "$PG" device import "$WORK/devices.csv" --json > /dev/null
  GATEWAY_TOKEN="$("$PG" ddi gateway-token --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
  export GATEWAY_TOKEN
}

# pending: a release made by `release create`, offered to every bench device by the service
# behind `device assign` (one call per device, as the CLI makes it).
pending() {
  head -c 65536 /dev/urandom > "$WORK/image.bin"
  local rid
  rid="$("$PG" release create "Demo Gateway" 9.0.0 --artifact "$WORK/image.bin" --hardware demo-gw-1 --json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  "$PY" - "$N" "$rid" <<'PY' >&2
import sys
from patchgate.bootstrap import Settings, build
from patchgate.services import actions
app = build(Settings.from_env())
n, rid = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    actions.assign(app.context, f"bench-{i}", rid, actor="bench")
print(f"release {rid} assigned to {n} devices (actions.assign, as `patchgate device assign`)")
PY
}

start_patchgate() {
  busy $PORT_PG
  "$PG" serve --port $PORT_PG > "$RES/server-$1.log" 2>&1 &
  PG_PID=$!
  trap 'kill $PG_PID 2>/dev/null || true' EXIT
  wait_http "http://127.0.0.1:$PORT_PG/healthz"
  WORKER_PID="$(pgrep -P "$PG_PID" | head -1)"; WORKER_PID="${WORKER_PID:-$PG_PID}"
  # one poll must answer 200 with the expected links
  curl -fs -H "Authorization: GatewayToken $GATEWAY_TOKEN" "http://127.0.0.1:$PORT_PG/DEFAULT/controller/v1/bench-0" > "$RES/$1-poll.json"
}
stop_patchgate() { kill "$PG_PID" 2>/dev/null || true; wait "$PG_PID" 2>/dev/null || true; trap - EXIT; sleep 1; }
PURL="http://127.0.0.1:$PORT_PG/DEFAULT/controller/v1/"
LUA="$HERE/poll_rr_gateway.lua"

if want S0 || want S1; then
  provision "" "$WORK/data-sqlite"
  if want S0; then start_patchgate S0; measure S0 "$PURL" "$LUA" "$N" "$WORKER_PID"; stop_patchgate; fi
  if want S1; then
    pending; start_patchgate S1
    grep -q deploymentBase "$RES/S1-poll.json" || { echo "S1: no deploymentBase in the poll" >&2; exit 1; }
    measure S1 "$PURL" "$LUA" "$N" "$WORKER_PID"; stop_patchgate
  fi
fi

pg_fresh() {
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS patchgate_poll_bench" -c "CREATE DATABASE patchgate_poll_bench" >&2
}
if want P0 || want P1; then
  pg_fresh; provision "$PG_URL" "$WORK/data-pg"
  if want P0; then start_patchgate P0; measure P0 "$PURL" "$LUA" "$N" "$WORKER_PID"; stop_patchgate; fi
  if want P1; then
    pending; start_patchgate P1
    grep -q deploymentBase "$RES/P1-poll.json" || { echo "P1: no deploymentBase in the poll" >&2; exit 1; }
    measure P1 "$PURL" "$LUA" "$N" "$WORKER_PID"; stop_patchgate
  fi
fi

if want PM; then
  pg_fresh; provision "$PG_URL" "$WORK/data-pg-big"
  log "PostgreSQL: bulk-loading devices $N..$((BIG - 1)) (bench/bulk_devices.sql)"
  start=$(date +%s)
  psql "$PG_URL" -q -v first="$N" -v last="$((BIG - 1))" -f "$HERE/bulk_devices.sql" >&2
  log "bulk load: $((BIG - N)) devices in $(( $(date +%s) - start )) s; $(psql "$PG_URL" -Atc 'select count(*) from devices') devices in all"
  # The bulk rows must equal what `device import` wrote, but for the per-device fields.
  psql "$PG_URL" -At -f - > "$RES/PM-row-check.txt" <<SQL
SELECT count(DISTINCT (tenant_id, hardware, installed_version, attributes::text, group_names::text,
       open_action_id, installed_action_id, config_requested, auto_confirm, auto_confirm_by,
       auto_confirm_remark, auto_confirm_at, last_seen)) FROM devices WHERE controller_id LIKE 'bench-%';
SQL
  [ "$(cat "$RES/PM-row-check.txt")" = 1 ] || { echo "bulk rows differ from imported ones" >&2; exit 1; }
  start_patchgate PM
  # stride 7919 (prime): each run's polls spread over all BIG devices, not the first few 10k
  measure PM "$PURL" "$LUA" "$BIG 7919" "$WORKER_PID"
  "$PY" - > "$RES/PM-last-seen.txt" <<'PY'
import time
from sqlalchemy import text
from patchgate.bootstrap import Settings, build
time.sleep(2)  # the flusher writes last-seen every second
app = build(Settings.from_env())
with app.engines.read.connect() as c:
    seen = c.execute(text("select count(*) from devices where last_seen is not null")).scalar()
print(f"devices with last_seen written behind: {seen}")
PY
  stop_patchgate
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS patchgate_poll_bench" >&2
fi

if want C; then
  busy $PORT_C
  (cd "$ROOT" && exec "$ROOT/.venv/bin/granian" --interface asgi --host 127.0.0.1 --port $PORT_C --workers 1 --no-access-log bench.ceiling_app:app > "$RES/ceiling.log" 2>&1) &
  C_PID=$!
  trap 'kill $C_PID 2>/dev/null || true' EXIT
  wait_http "http://127.0.0.1:$PORT_C/"
  CW="$(pgrep -P "$C_PID" | head -1)"; CW="${CW:-$C_PID}"
  measure C "http://127.0.0.1:$PORT_C/DEFAULT/controller/v1/" "$LUA" "$N" "$CW"
  kill "$C_PID" 2>/dev/null || true; wait "$C_PID" 2>/dev/null || true; trap - EXIT
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RES/machine.txt"

"$PY" "$HERE/poll_summary.py" "$RES" "$RUNS" "$N" "$BIG" | tee "$RES/summary.md"
echo "results: $RES" >&2
