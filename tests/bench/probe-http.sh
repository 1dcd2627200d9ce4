#!/usr/bin/env bash
# Benchmark: `monitor probe --every 1s` HTTP checks against local servers at 1k, 5k and 10k probes
# per second; prints CPU% and peak RSS of the prober. A script, not a test: it asserts nothing.
#
#   tests/bench/probe-http.sh [RATE...]      (default: 1000 5000 10000)
#
# Runs as root inside its own network namespace (unshare -n): the HTTP server (monitor's example
# `bench_http_server`, tokio, 10 ports) listens there on all addresses, targets are 127.0.x.y:port,
# so nothing leaves the namespace. Each rate runs ROUNDS (default 10) intervals of 1 s; every target
# is a distinct probe (no sharing), so RATE targets at 1 s are RATE checks per second.
# The servers share the machine with the prober: on 2 cores, 10k connections a second saturate it
# (each costs the prober ~120 µs and the server and its kernel side as much again), and the figures
# then show timeouts of the overloaded machine, not of the prober.
# Environment: ROUNDS, BENCH_PROFILE (release by default; debug to skip the release build).
#
# keepalived's HTTP_GET side by side, in the lab VM: tests/bench/probe-keepalived.sh (`tests/lab bench probe-keepalived`).
# Not in `tests/lab bench all`: it has no reference tool on the host (keepalived's checks need IPVS, which
# the host kernel lacks; the comparison is probe-keepalived's), so it has no ratio to print.
# lab: host
# all: no
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROFILE=${BENCH_PROFILE:-release}
ROUNDS=${ROUNDS:-10}
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(1000 5000 10000)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if [ "$(id -u)" != 0 ]; then
    echo "probe-http.sh: run as root (it makes a network namespace with unshare -n)" >&2
    exit 2
fi
command -v unshare >/dev/null || { echo "probe-http.sh: unshare (util-linux) is missing" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "probe-http.sh: /usr/bin/time is missing: apt-get install time" >&2; exit 2; }

if [ "$PROFILE" = release ]; then
    (cd "$ROOT" && cargo build -q --release -p monitor --bin monitor --example bench_http_server)
else
    (cd "$ROOT" && cargo build -q -p monitor --bin monitor --example bench_http_server)
fi
BIN=$TARGET_DIR/$PROFILE

if [ -z "${PROBE_BENCH_INNER:-}" ]; then
    exec env PROBE_BENCH_INNER=1 unshare -n "$0" "${RATES[@]}"
fi

# --- inside the namespace
ip link set lo up
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d)
PORTS=(8001 8002 8003 8004 8005 8006 8007 8008 8009 8010)
"$BIN/examples/bench_http_server" "${PORTS[@]}" > "$WORK/server.out" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do grep -q ready "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done

nproc_=$(nproc)
printf 'monitor probe (%s build), %s rounds of 1 s, %s cores\n' "$PROFILE" "$ROUNDS" "$nproc_"
printf '%-8s %-8s %-8s %-6s %-11s %-9s %-7s %-13s %s\n' \
    rate/s targets results down elapsed_s checks/s cpu% cpu_us/check peak_rss_MiB
for rate in "${RATES[@]}"; do
    per_port=$(( (rate + ${#PORTS[@]} - 1) / ${#PORTS[@]} ))
    : > "$WORK/targets"
    for ((i = 0; i < per_port; i++)); do
        ip="127.$(( (i >> 8) & 255 )).$(( i & 255 )).1"
        for p in "${PORTS[@]}"; do echo "$ip:$p"; done
    done | head -n "$rate" > "$WORK/targets"
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" \
        "$BIN/monitor" probe http - --every 1s --rounds "$ROUNDS" --timeout 2s --concurrency 4096 \
        < "$WORK/targets" > "$WORK/out" || true
    # The last line: time(1) writes "Command exited with non-zero status 1" above it when a check is down.
    read -r elapsed user sys rss_kb < <(tail -n 1 "$WORK/time")
    results=$(wc -l < "$WORK/out")
    down=$(grep -c '^down' "$WORK/out" || true)
    awk -v r="$rate" -v t="$(wc -l < "$WORK/targets")" -v n="$results" -v d="$down" -v e="$elapsed" \
        -v u="$user" -v s="$sys" -v m="$rss_kb" 'BEGIN {
        printf "%-8d %-8d %-8d %-6d %-11.2f %-9.0f %-7.1f %-13.1f %.1f\n",
            r, t, n, d, e, n / e, (u + s) / e * 100, (u + s) / n * 1e6, m / 1024 }'
    if [ "$down" -gt 0 ]; then
        echo "  first down reasons:"; grep '^down' "$WORK/out" | cut -d' ' -f5- | sort | uniq -c | sort -rn | head -3
    fi
done
echo "keepalived HTTP_GET comparison: tests/lab bench probe-keepalived"
