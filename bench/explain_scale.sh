#!/usr/bin/env bash
# PostgreSQL at a million devices and ten million actions: seed a database, run what the
# poll, the console, the API and the reports run, and let auto_explain log the plan of
# every statement slower than THRESHOLD (docs/deploy.md, "Indexes at a million devices").
# usage: bench/explain_scale.sh [DEVICES=1000000] [ACTIONS_PER_DEVICE=10] [THRESHOLD=20ms]
# Env:   PG_ADMIN   a superuser URL (default postgresql://postgres@127.0.0.1:5432/postgres)
#        PG_LOG     PostgreSQL's log file (default /var/log/postgresql/postgresql-15-main.log)
# Prints the slow statements with their plans (from the log) and keeps the database
# `patchgate_scale` for further EXPLAINs; drop it when done.
set -euo pipefail
N="${1:-1000000}"; PER="${2:-10}"; THRESHOLD="${3:-20ms}"
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
PG="$ROOT/.venv/bin/patchgate"
ADMIN="${PG_ADMIN:-postgresql://postgres@127.0.0.1:5432/postgres}"
DB_URL="${ADMIN%/*}/patchgate_scale"
PG_LOG="${PG_LOG:-/var/log/postgresql/postgresql-15-main.log}"
WORK="${PATCHGATE_BENCH_WORKDIR:-${TMPDIR:-/tmp}/patchgate-bench}/scale"
rm -rf "$WORK"; mkdir -p "$WORK"
export PATCHGATE_DATA_DIR="$WORK/data" PATCHGATE_DATABASE_URL="$DB_URL"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS patchgate_scale WITH (FORCE)" -c "CREATE DATABASE patchgate_scale"
"$PG" init --demo --json > "$WORK/init.json"
TOKEN="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$WORK/init.json")"
head -c 4096 /dev/urandom > "$WORK/fw.bin"
REL="$("$PG" release create "Demo Gateway" 9.9.9 --artifact "$WORK/fw.bin" --security-version 9 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
for _ in 1 2 3; do "$PG" campaign create "$REL" --stages 10,100 --json > /dev/null; done
log "seeding $N devices"
psql -q "$DB_URL" -v first=0 -v last=$((N - 1)) -f "$HERE/bulk_devices.sql"
log "seeding $((N * PER)) actions (the last of each device open, one in ten of a campaign) and their events"
psql -q "$DB_URL" <<SQL
INSERT INTO actions (tenant_id, device_id, release_id, campaign_id, source, status, active,
                     download_type, update_type, result, last_execution, created_at,
                     updated_at, closed_at, created_by)
SELECT d.tenant_id, d.id, $REL, CASE WHEN k % 10 = 0 THEN 1 + (d.id % 3) END, 'campaign',
       CASE WHEN k = $PER THEN 'offered' WHEN k % 7 = 0 THEN 'error' ELSE 'finished' END,
       k = $PER, 'forced', 'forced', CASE WHEN k = $PER THEN NULL ELSE 'success' END, 'closed',
       now() - (($PER - k) * interval '30 days'), now() - (($PER - k) * interval '30 days'),
       CASE WHEN k = $PER THEN NULL ELSE now() - (($PER - k) * interval '30 days') END, 'bench'
FROM devices d, generate_series(1, $PER) AS k;
UPDATE devices d SET open_action_id = a.id FROM actions a WHERE a.device_id = d.id AND a.active;
INSERT INTO action_events (action_id, at, channel, execution, finished, details, status_after)
SELECT id, closed_at, 'deployment', 'closed', 'success', '[]', status FROM actions WHERE NOT active;
VACUUM ANALYZE devices; VACUUM ANALYZE actions; VACUUM ANALYZE action_events;
ALTER DATABASE patchgate_scale SET session_preload_libraries = 'auto_explain';
ALTER DATABASE patchgate_scale SET auto_explain.log_min_duration = '$THRESHOLD';
ALTER DATABASE patchgate_scale SET auto_explain.log_analyze = on;
ALTER DATABASE patchgate_scale SET auto_explain.log_buffers = on;
SQL
START=$(wc -c < "$PG_LOG")
PORT=18171
"$PG" serve --port $PORT > "$WORK/server.log" 2>&1 &
SERVER=$!; trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
GW="$("$PG" ddi gateway-token --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
api() { curl -fs -o /dev/null -w "%{http_code} %{time_total}s $1\n" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"; }
log "the poll, the console's and the API's reads, the reports"
for i in 7 77777 $((N - 1)); do
  curl -fs -o /dev/null -w "%{http_code} %{time_total}s poll bench-$i\n" -H "Authorization: GatewayToken $GW" "http://127.0.0.1:$PORT/DEFAULT/controller/v1/bench-$i"
done
api "/api/v1/devices?limit=50"
api "/api/v1/devices/bench-77777"
api "/api/v1/devices?filter=version%3D%3D1.0.0&limit=50"
api "/api/v1/devices?filter=id%3D%3Dbench-9999*&limit=50"
for c in 1 2 3; do api "/api/v1/campaigns/$c"; done
api "/api/v1/campaigns"
api "/metrics"
"$PG" campaign start 1 > /dev/null && api "/api/v1/campaigns/1"
curl -fs -o /dev/null -w "%{http_code} %{time_total}s poll after start\n" -H "Authorization: GatewayToken $GW" "http://127.0.0.1:$PORT/DEFAULT/controller/v1/bench-5"
( time "$PG" report sla --json > /dev/null ) 2>&1 | grep real | sed 's/^/report sla /'
( time "$PG" report checklist --json > /dev/null ) 2>&1 | grep real | sed 's/^/report checklist /'
( time "$PG" db prune-actions --older-than 200d --dry-run --json ) 2>&1 | tail -4
kill $SERVER; wait $SERVER 2>/dev/null || true; trap - EXIT
log "statements slower than $THRESHOLD, with their plans:"
tail -c +"$((START + 1))" "$PG_LOG" | grep -A40 "duration: .* plan:" | grep -v "^--$" | cut -c1-220 || echo "(none)"
