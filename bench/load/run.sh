#!/usr/bin/env bash
# Load benchmark: how the HTTP side holds up while generation keeps the CPU
# busy. Prints figures; never passes or fails on time.
#
#   bench/load/run.sh                     uses build/src/cli/togethershot
#   TS_BIN=path/to/togethershot bench/load/run.sh
#
# It starts `togethershot serve` on a free loopback port with a temporary
# data folder, then for each cheap route (/, /healthz, a job's status, a
# download) runs wrk twice: once with the server idle, once while a
# background loop keeps the generation queue full (jobs of 4 images at
# 512x512, 30 steps). Then an upload run: wrk posting a multipart photo to
# /v1/jobs (with the queue full, accepted uploads and 503 "queue full"
# answers are both counted). For each run: requests/s, p50/p99 latency, and
# the server's resident memory afterwards (VmRSS) and at its peak (VmHWM).
#
# Environment: TS_BENCH_MODEL (default: the built-in model if present, else
# the tiny test model), TS_BENCH_SECONDS (10), TS_BENCH_THREADS (2),
# TS_BENCH_CONNECTIONS (32). Traffic goes to 127.0.0.1 only; every loop
# ends by itself (the queue filler after a fixed time at most).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${TS_BIN:-build/src/cli/togethershot}
secs=${TS_BENCH_SECONDS:-10}
threads=${TS_BENCH_THREADS:-2}
conns=${TS_BENCH_CONNECTIONS:-32}
if [ -n "${TS_BENCH_MODEL:-}" ]; then
    model=$TS_BENCH_MODEL
elif [ -d models/togethershot-mini ]; then
    model=models/togethershot-mini
else
    model=tests/fixtures/engine/tiny-sd1
fi
[ -x "$bin" ] || { echo "run.sh: no binary at $bin (build first, or set TS_BIN)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "run.sh: wrk is not installed (apt-get install wrk)" >&2; exit 2; }

work=$(mktemp -d)
server_pid=
filler_pid=
cleanup() {
    touch "$work/stop"
    [ -n "$filler_pid" ] && wait "$filler_pid" 2>/dev/null || true
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# One client address sends everything: lift the per-client caps.
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --model "$model" \
    --rate-expensive 1000000 --burst-expensive 1000000 --rate-cheap 10000000 \
    --burst-cheap 10000000 --max-conns-per-client 256 --max-connections 512 \
    --queue-size 8 --log-level warn > "$work/url" 2> "$work/log" &
server_pid=$!
for _ in $(seq 1 600); do
    [ -s "$work/url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.1
done
url=$(head -1 "$work/url" | sed 's#/$##')
[ -n "$url" ] || { echo "run.sh: the server did not start" >&2; exit 1; }

rss() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$server_pid/status"; }
json_field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }

# A finished job for the status and download routes.
created=$(curl -s -X POST "$url/v1/jobs" -H 'Content-Type: application/json' \
    -d '{"prompt":"a red heart","size":"256x256","steps":4}')
id=$(echo "$created" | json_field id)
token=$(echo "$created" | json_field token)
for _ in $(seq 1 600); do
    state=$(curl -s -H "X-Job-Token: $token" "$url/v1/jobs/$id" | json_field status)
    [ "$state" = done ] && break
    sleep 0.2
done
[ "$state" = done ] || { echo "run.sh: the first job did not finish ($state)" >&2; exit 1; }

# Keeps at least two jobs waiting until the stop file appears (or 15 min).
fill_queue() {
    local end=$((SECONDS + 900))
    while [ $SECONDS -lt $end ] && [ ! -e "$work/stop" ]; do
        local queued
        queued=$(curl -s --max-time 5 "$url/healthz" | json_field queued || true)
        if [ "${queued:-0}" -lt 2 ]; then
            curl -s --max-time 5 -o /dev/null -X POST "$url/v1/jobs" \
                -H 'Content-Type: application/json' \
                -d '{"prompt":"a lighthouse at dusk","n":4,"size":"512x512","steps":30}' || true
        fi
        sleep 0.5
    done
}

# Runs wrk and prints one table row.
row() {
    local label=$1 phase=$2
    shift 2
    local out busy
    # Whether generation is running while this route is measured.
    busy=$(curl -s --max-time 5 "$url/healthz" || echo '{}')
    busy="running $(echo "$busy" | json_field running), queued $(echo "$busy" | json_field queued)"
    out=$(wrk -t "$threads" -c "$conns" -d "${secs}s" --latency "$@" 2>&1)
    local rps p50 p99 errs
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errs=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    # wrk gives up on a request after 2 s: those count as timeouts, not latency.
    local tmo
    tmo=$(echo "$out" | sed -n 's/.*timeout \([0-9]*\).*/\1/p')
    local extra
    extra=$(echo "$out" | sed -n 's/^statuses  //p')
    printf '| %-22s | %-9s | %10s | %8s | %8s | %7s MiB | %-26s | %s |\n' "$label" "$phase" \
        "$rps" "$p50" "$p99" "$(($(rss) / 1024))" \
        "${extra:-non-2xx: ${errs:-0}}${tmo:+, timeouts: $tmo}" "$busy"
}

echo "# togethershot load benchmark"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; model: $model"
echo "wrk: $threads threads, $conns connections, ${secs}s per run, on the same machine"
echo
echo "| route                  | phase     | requests/s |   p50    |   p99    |   RSS after | answers                    | jobs at start |"
echo "|------------------------|-----------|------------|----------|----------|-------------|----------------------------|---------------|"
auth=(-H "X-Job-Token: $token")
for phase in idle saturated; do
    if [ "$phase" = saturated ]; then
        fill_queue &
        filler_pid=$!
        sleep 3 # let the first jobs start
    fi
    row "GET /" "$phase" "$url/"
    row "GET /healthz" "$phase" "$url/healthz"
    row "GET /v1/jobs/:id" "$phase" "${auth[@]}" "$url/v1/jobs/$id"
    row "GET .../images/0.png" "$phase" "${auth[@]}" "$url/v1/jobs/$id/images/0.png"
done
png=tests/fixtures/image/orient_1.jpg
[ -f tests/hostile/files/png_100x50.png ] && png=tests/hostile/files/png_100x50.png
export TS_BENCH_PNG=$png
row "POST /v1/jobs (upload)" saturated -s bench/load/upload.lua "$url/v1/jobs"
echo
echo "server peak RSS (VmHWM): $(($(hwm) / 1024)) MiB; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(the load average counts every process on the machine: on a shared machine it says how much"
echo " of the figures above is waiting for a core rather than work of the server)"
