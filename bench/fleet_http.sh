#!/usr/bin/env bash
# simulate --mode http: a real `patchgate serve` on a fresh data folder of its own and
# DEVICES asyncio virtual devices over DDI (BENCHMARKS.md "Fleet simulator", http mode).
#
#   [TIME_SCALE=60] [TIMEOUT=900] bench/fleet_http.sh [DEVICES] [FAULT] [SEED]
#   (defaults: 10000 boot:0.3 1; time scale 60 = 15 s real polls for 15 simulated minutes)
#
# Prints the machine, the load before and after, and the run's JSON (one object).
set -euo pipefail
DEVICES=${1:-10000}
FAULT=${2:-boot:0.3}
SEED=${3:-1}
PATCHGATE=${PATCHGATE:-.venv/bin/patchgate}
echo "machine: $(nproc) CPU, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(python3 --version)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
"$PATCHGATE" simulate --mode http --devices "$DEVICES" --fault "$FAULT" --power-loss 0.01 \
    --offline 0.05 --seed "$SEED" --time-scale "${TIME_SCALE:-60}" --http-timeout "${TIMEOUT:-900}" --json
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); $(( $(date +%s) - start )) s"
