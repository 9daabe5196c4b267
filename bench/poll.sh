#!/usr/bin/env bash
# DDI poll throughput of patchgate (one server process) with wrk, plus the ceiling: a bare
# ASGI app on the same server software answering a constant poll reply.
# usage: bench/poll.sh [PORT=18060] [N_DEVICES=1000] [DURATION=15s] [RUNS=3]
# Env: PATCHGATE_DATABASE_URL to bench on PostgreSQL (default: SQLite in a fresh data dir);
#      WORKERS=N for `patchgate serve --workers N` (default 1);
#      PENDING=1 to give every device an open action first (the poll then links deploymentBase);
#      FILTER=QUERY to run a campaign on that device query first (bench/filter_campaign.py).
# Generated files go to ${PATCHGATE_BENCH_WORKDIR:-${TMPDIR:-/tmp}/patchgate-bench}.
set -euo pipefail
PORT="${1:-18060}"; N="${2:-1000}"; DUR="${3:-15s}"; RUNS="${4:-3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PG="$ROOT/.venv/bin/patchgate"
WORK="${PATCHGATE_BENCH_WORKDIR:-${TMPDIR:-/tmp}/patchgate-bench}"
RES="$WORK/results/$(date +%Y%m%d-%H%M%S)"; mkdir -p "$RES"
export PATCHGATE_DATA_DIR="$WORK/data"
rm -rf "$PATCHGATE_DATA_DIR"; mkdir -p "$PATCHGATE_DATA_DIR"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } >&2

if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then echo "port $PORT is in use" >&2; exit 2; fi
"$PG" init --json > "$RES/init.json"
python3 - "$N" > "$WORK/devices.csv" <<'PY'
import sys
print("id,groups,hardware,version")
for i in range(int(sys.argv[1])):
    print(f"bench-{i},,demo-gw-1,1.0.0")
PY
"$PG" device import "$WORK/devices.csv" --json > "$RES/devices.json"
if [ "${PENDING:-0}" = 1 ]; then
  # A release (rows written directly until the release service is on main) offered to all.
  "$ROOT/.venv/bin/python" - "$N" <<'PY' >&2
import hashlib, sys
from sqlalchemy.orm import Session
from patchgate.adapters.db.models import Blob, Release, ReleaseArtifact
from patchgate.bootstrap import Settings, build
from patchgate.services import actions
app = build(Settings.from_env())
now, data = app.context.clock(), b"bench payload"
sha = hashlib.sha256(data).hexdigest()
with Session(app.engines.write) as s:
    s.add(Blob(sha256=sha, sha1=hashlib.sha1(data).hexdigest(), md5=hashlib.md5(data).hexdigest(), size=len(data), created_at=now))
    r = Release(product="bench", version="2.0.0", type="security", hardware=[], state="signed", created_at=now, created_by="bench", flags={})
    s.add(r); s.flush()
    s.add(ReleaseArtifact(release_id=r.id, filename="image.bin", sha256=sha, tuf_target="bench/2.0.0/image.bin"))
    s.commit(); rid = r.id
for i in range(int(sys.argv[1])):
    actions.assign(app.context, f"bench-{i}", rid, actor="bench")
print(f"assigned release {rid} to {sys.argv[1]} devices")
PY
fi
if [ -n "${FILTER:-}" ]; then "$ROOT/.venv/bin/python" "$HERE/filter_campaign.py" "$FILTER" >&2; fi
export GATEWAY_TOKEN="$("$PG" ddi gateway-token --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

WORKERS="${WORKERS:-1}"
"$PG" serve --port "$PORT" --workers "$WORKERS" > "$RES/server.log" 2>&1 &
SERVER=$!
stop() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

URL="http://127.0.0.1:$PORT/DEFAULT/controller/v1/"
secs="${DUR%s}"
# Warm up: the first poll of each device is its first contact.
timeout 60 wrk -t1 -c50 -d3s -s "$HERE/poll_rr_gateway.lua" "$URL" -- "$N" > /dev/null
for i in $(seq 1 "$RUNS"); do
  echo "== patchgate run $i: wrk -t1 -c50 -d$DUR --latency -s poll_rr_gateway.lua $URL -- $N" | tee "$RES/P-$i.txt" >&2
  timeout $((secs + 30)) wrk -t1 -c50 -d"$DUR" --latency -s "$HERE/poll_rr_gateway.lua" "$URL" -- "$N" | tee -a "$RES/P-$i.txt" >&2
done
sleep 2  # let the last-seen flusher write, then check that it did
"$ROOT/.venv/bin/python" - > "$RES/last_seen.txt" <<'PY'
from patchgate.bootstrap import Settings, build
from patchgate.services import devices
found = list(devices.iter_devices(build(Settings.from_env()).context))
print(f"devices with last_seen: {sum(1 for d in found if d.last_seen)} of {len(found)}")
PY
cat "$RES/last_seen.txt" >&2
stop
trap - EXIT

(cd "$ROOT" && exec "$ROOT/.venv/bin/granian" --interface asgi --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" bench.ceiling_app:app > "$RES/ceiling.log" 2>&1) &
CEIL=$!
trap 'kill $CEIL 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.2; done
for i in $(seq 1 "$RUNS"); do
  echo "== ceiling run $i" | tee "$RES/C-$i.txt" >&2
  timeout $((secs + 30)) wrk -t1 -c50 -d"$DUR" --latency -s "$HERE/poll_rr_gateway.lua" "$URL" -- "$N" | tee -a "$RES/C-$i.txt" >&2
done
kill $CEIL 2>/dev/null || true
wait $CEIL 2>/dev/null || true

python3 - "$RES" "$RUNS" "$N" "$DUR" "${PATCHGATE_DATABASE_URL:+postgresql}" <<'PY'
import re, statistics, sys
res, runs, n, dur, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] or "sqlite"
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
def parse(path):
    t = open(path).read()
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return (float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)),
            ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1)), ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1)),
            int(non.group(1)) if non else 0)
out = {}
for tag in ("P", "C"):
    rows = [parse(f"{res}/{tag}-{i}.txt") for i in range(1, runs + 1)]
    out[tag] = (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows),
                statistics.median(r[2] for r in rows), sum(r[3] for r in rows))
p, c = out["P"], out["C"]
pending = " with an action pending for every device" if __import__("os").environ.get("PENDING") == "1" else ""
if __import__("os").environ.get("FILTER"):
    pending += f" with a running campaign on {__import__('os').environ['FILTER']!r}"
workers = __import__("os").environ.get("WORKERS", "1")
print(f"SUMMARY patchgate ({db}{pending}, granian {workers} worker(s), {n} devices round-robin, wrk -t1 -c50 -d{dur} x{runs}): "
      f"median {p[0]:.0f} polls/s, p50 {p[1]:.2f} ms, p99 {p[2]:.2f} ms, non-2xx {p[3]}; "
      f"ceiling {c[0]:.0f} req/s (p99 {c[2]:.2f} ms); share of ceiling {100 * p[0] / c[0]:.0f}%")
PY
