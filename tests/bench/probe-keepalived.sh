#!/usr/bin/env bash
# Benchmark (not a test), run by `tests/lab bench probe-keepalived` in the lab VM: N real servers (a
# tokio HTTP server, monitor's example `bench_http_server`, on N addresses of 198.18.0.0/15 in a network
# namespace behind a veth) checked every second by keepalived's HTTP_GET (one virtual server with N
# real servers, delay_loop 1), and by `monitor probe http - --every 1s` (release build) with the
# same IPVS table in place, in turns in the same VM run. CPU is utime+stime from /proc/PID/stat over the same wall time after a
# warm-up: keepalived's checker child (the process doing the checks) and the monitor process. Checks
# done are counted at the servers (TcpPassiveOpens of their namespace), so CPU per check compares
# like with like. Prints one line per tool (CPU split into user and system time, and `all_cpu_us`:
# every CPU's busy time per check, servers included; `switches`: the tool's context switches per
# check, its wake-ups mostly).
#
# A turn counts only if its tool did the job: at least 95 % of the N x seconds checks expected in the
# window (keepalived: connections its servers accepted; monitor: its result lines) and every server
# judged up (keepalived: no failure in its log and all N real servers still in the IPVS table with
# weight 1 at the end of the window; monitor: no `down` line and an `up` line for each of the N
# targets in the window). A round with a void turn is void, says why, and has no ratio.
# Order: keepalived first in odd rounds, monitor first in even rounds.
#
# Two variants (VARIANTS, default "plain regex"), each its own rounds and last line:
#   plain   status code 200 only: `probe-http-cpu ratio=<ours/keepalived> target=0.5 met|NOT MET`
#   regex   the body must match the regex `ok` as well, so both tools read the body (keepalived 2.2's
#           url `regex`, monitor's --regex): `probe-http-regex-cpu ratio=... target=0.5 met|NOT MET`.
#           keepalived matches over the whole response, status line and headers too, and its `$` never
#           matches (it matches each read partially, and not again at the end), so the regex is
#           unanchored; only the servers' body has a lower-case "ok" (the status line says "OK").
# The ratio is the median over the rounds that count of the tools' CPU per check.
#
# Environment: SERVERS (default 500), SECONDS_MEASURED (default 30), WARMUP (default 8), ROUNDS
# (default 3), VARIANTS, REGEX (the regex variant's, default ok: the servers' body; another, e.g.
# nope, voids every round: the checks do read the body), MIN_PCT (default 95: the share of the
# expected checks a tool must do; keepalived starts a server's next check delay_loop after the last
# one ended, so it does N / (1 s + check time) a second: on a busy machine, 92-93 % at 250 servers and
# 60-93 % at 500); PERF=N records each tool with perf during the measurement and prints its N
# hottest symbols (perf adds its own cost); STRACE=1 counts each tool's system calls during the
# measurement instead (strace -c; slows the tool).
# build: -p monitor --bin monitor --example bench_http_server
# ratio: probe-http-cpu probe-http-regex-cpu
# env: SERVERS SECONDS_MEASURED WARMUP ROUNDS VARIANTS REGEX MIN_PCT PERF STRACE
set -euo pipefail
N=${SERVERS:-500}
T=${SECONDS_MEASURED:-30}
WARM=${WARMUP:-8}
ROUNDS=${ROUNDS:-3}
REGEX=${REGEX:-ok}
MIN_PCT=${MIN_PCT:-95}
monitor=$LAB_RELEASE/monitor
server=$LAB_RELEASE/examples/bench_http_server
for f in "$monitor" "$server"; do
    [ -x "$f" ] || { echo "FAIL: $f is missing (tests/lab bench builds it)" >&2; exit 1; }
done
KEEPALIVED=$(PATH=$PATH:/usr/sbin:/sbin command -v keepalived) \
    || { echo "FAIL: keepalived is missing (apt-get install keepalived; tests/lab deps)" >&2; exit 1; }
[ "$N" -le 60000 ] || { echo "FAIL: at most 60000 servers" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del kbench 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- the real servers: 198.18.1.0 upwards on the namespace's end of a veth, port 8001
ip netns add kbench
ip link add kb0 type veth peer name kb1 netns kbench
ip addr add 198.18.0.1/15 dev kb0
ip link set kb0 up
ip -n kbench link set lo up
ip -n kbench addr add 198.18.0.2/15 dev kb1
addr_of() { echo "198.18.$(( 1 + $1 / 250 )).$(( 1 + $1 % 250 ))"; }
for ((i = 0; i < N; i++)); do echo "address add $(addr_of "$i")/32 dev kb1"; done > "$tmp/addrs"
ip -n kbench -batch "$tmp/addrs"
ip -n kbench link set kb1 up
# Two CPUs or more: the tools run on CPU 0, the servers on CPU 1, and Receive Packet Steering sends
# every packet's receive processing on both veth ends to CPU 1. Without this, a veth hands each packet
# to the receiving stack in the sender's own context, so a tool's system time would include the
# servers' TCP work (on a real director, the servers are other machines and receive processing runs
# in softirq context). Both tools are measured the same way either way; `all` adds every CPU's time.
pin_tool=() pin_server=()
if [ "$(nproc)" -ge 2 ]; then
    echo 2 > /sys/class/net/kb0/queues/rx-0/rps_cpus
    ip netns exec kbench sh -c 'echo 2 > /sys/class/net/kb1/queues/rx-0/rps_cpus'
    pin_tool=(taskset -c 0) pin_server=(taskset -c 1)
fi
ip netns exec kbench "${pin_server[@]}" "$server" 8001 > "$tmp/server.out" &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$tmp/server.out" || { echo "FAIL: bench_http_server did not start" >&2; exit 1; }
for ((i = 0; i < N; i++)); do echo "$(addr_of "$i"):8001"; done > "$tmp/targets"
# Every address answers before anything is measured (ARP resolved, server up).
"$monitor" probe http - --timeout 10s --concurrency 64 < "$tmp/targets" > "$tmp/pre" \
    || { echo "FAIL: not every server answers before the benchmark:" >&2; grep -v '^up' "$tmp/pre" | head -3 >&2; exit 1; }

# Every CPU's busy time (all but idle and iowait), in ticks.
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
ticks_of() { awk '{ print $14 + $15, $14, $15 }' "/proc/$1/stat"; }
# /proc/net/snmp's second Tcp: line, field 7: PassiveOpens (connections the servers accepted).
opens() { ip netns exec kbench awk '/^Tcp:/ { if (h) { print $7; exit } else h = 1 }' /proc/net/snmp; }
hz=$(getconf CLK_TCK)
# Context switches of every thread of a process (each a wake-up from a wait, or a preemption).
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'; }

# measure NAME PID [OUT]: CPU ticks of PID and connections opened at the servers over T seconds; OUT
# (monitor's result lines): its lines of the window go to $tmp/window. Appends the tool's line to
# $tmp/turn (and prints it).
measure() {
    local name=$1 pid=$2 out=${3:-} t0 u0 s0 t1 u1 s1 o0 o1 w0 w1 b0 b1 x0 x1 l0 l1
    sleep "$WARM"
    [ -z "$out" ] || l0=$(wc -l < "$out")
    # The servers' count and the clock side by side: the window's checks and its length match.
    read -r t0 u0 s0 <<< "$(ticks_of "$pid")"; b0=$(busy); x0=$(switches "$pid"); o0=$(opens); w0=$(date +%s%N)
    if [ -n "${PERF:-}" ]; then
        perf record -q -F 499 -g -o "$tmp/perf.$name" -p "$pid" -- sleep "$T" 2>/dev/null
    elif [ -n "${STRACE:-}" ]; then
        timeout -s INT "$T" strace -c -f -p "$pid" -o "$tmp/strace.$name" 2>/dev/null || true
    else
        sleep "$T"
    fi
    read -r t1 u1 s1 <<< "$(ticks_of "$pid")"; b1=$(busy); x1=$(switches "$pid"); o1=$(opens); w1=$(date +%s%N)
    if [ -n "$out" ]; then
        l1=$(wc -l < "$out")
        sed -n "$((l0 + 1)),${l1}p" "$out" > "$tmp/window"
    fi
    awk -v n="$name" -v t=$((t1 - t0)) -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v c=$((o1 - o0)) -v b=$((b1 - b0)) -v x=$((x1 - x0)) \
        -v w=$(( (w1 - w0) / 1000000 )) -v hz="$hz" -v N="$N" 'BEGIN {
        cpu = t / hz
        printf "%-10s servers=%d interval=1s wall=%.1fs checks=%d expected=%d checks/s=%.0f cpu=%.2fs (user %.2fs, system %.2fs) cpu%%=%.1f cpu_us/check=%.1f all_cpu_us/check=%.1f switches/check=%.2f\n",
            n, N, w / 1000, c, N * w / 1000, c / (w / 1000), cpu, u / hz, s / hz, cpu / (w / 1000) * 100, c ? cpu / c * 1e6 : 0,
            c ? b / hz / c * 1e6 : 0, c ? x / c : 0 }' | tee "$tmp/turn"
    if [ -n "${PERF:-}" ]; then
        perf report -i "$tmp/perf.$name" --no-children --sort dso -g none 2>/dev/null | grep "%" | head -6 || true
        perf report -i "$tmp/perf.$name" --no-children --sort dso,sym -g none 2>/dev/null | grep "%" | head -"${PERF}" || true
    fi
    if [ -n "${STRACE:-}" ]; then
        # calls per check: strace's "calls" column over the checks the servers counted
        awk -v c=$((o1 - o0)) 'NR > 2 && $0 !~ /^-/ {
            printf "  %-16s %8.2f/check\n", $NF, $4 / (c ? c : 1) }' "$tmp/strace.$name" | sort -k2 -rn | head -20
    fi
}

# field NAME: the value of NAME=... in the turn's line.
field() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' "$tmp/turn"; }
# enough COUNT: whether COUNT is at least 95 % of the checks expected in the window.
enough() { awk -v c="$1" -v e="$(field expected)" -v p="$MIN_PCT" 'BEGIN { exit !(c >= p / 100 * e) }'; }

echo "kernel $(uname -r), $(nproc) CPUs, TCG emulation: compare figures only within this run"

# --- keepalived: one virtual server, N real servers, HTTP_GET every second (and the body's regex).
# One keyword a line: keepalived 2.2 reads only the first keyword of a line inside a block (a one-line
# `url { path / status_code 200 regex "x" }` checks the path alone, and ignores the regex). The virtual
# port is the real servers' (8001): with DR, keepalived "resets" a real server port that differs.
for variant in plain regex; do
    {
        echo "global_defs {"
        echo "    router_id probe_bench"
        echo "    checker_log_all_failures" # every failed check, not only the one that takes a server out
        echo "}"
        echo "virtual_server 192.0.2.100 8001 {"
        echo "    delay_loop 1"
        echo "    lb_algo rr"
        echo "    lb_kind DR"
        echo "    protocol TCP"
        for ((i = 0; i < N; i++)); do
            echo "    real_server $(addr_of "$i") 8001 {"
            echo "        weight 1"
            echo "        HTTP_GET {"
            echo "            url {"
            echo "                path /"
            echo "                status_code 200"
            [ $variant = plain ] || echo "                regex \"$REGEX\""
            echo "            }"
            echo "            connect_timeout 2"
            echo "            retry 1"
            echo "            delay_before_retry 1"
            echo "        }"
            echo "    }"
        done
        echo "}"
    } > "$tmp/keepalived.$variant.conf"
done
# The same IPVS table as keepalived's, for monitor's turn: with a virtual service in place, every
# packet a tool sends passes IPVS's netfilter hooks, which costs keepalived; monitor pays it too.
{
    echo "-A -t 192.0.2.100:8001 -s rr"
    for ((i = 0; i < N; i++)); do echo "-a -t 192.0.2.100:8001 -r $(addr_of "$i"):8001 -g -w 1"; done
} > "$tmp/ipvs.rules"
sort "$tmp/ipvs.rules" > "$tmp/ipvs.expected" # keepalived's table with every server up
command -v ipvsadm >/dev/null || { echo "FAIL: ipvsadm is missing (apt-get install ipvsadm; tests/lab deps)" >&2; exit 1; }

# keepalived's lines that say a check failed or a server went down (its log says nothing of a check
# that passes).
KFAIL='fail|error|timeout|timed out|removing|down|refused|mismatch|no match|unreachable'

# Each run_* appends "VARIANT ROUND TOOL cpu_us void-reason-or-ok" to $tmp/results.
run_keepalived() {
    local variant=$1 round=$2 kparent checker bad why=ok
    rm -f "$tmp/checkers.pid"
    [ "$(ipvsadm -Sn | wc -l)" = 0 ] || { echo "FAIL: the IPVS table is not empty before keepalived starts" >&2; exit 1; }
    "${pin_tool[@]}" "$KEEPALIVED" --check --dont-fork --log-console --use-file "$tmp/keepalived.$variant.conf" \
        --pid "$tmp/keepalived.pid" --checkers_pid "$tmp/checkers.pid" > "$tmp/keepalived.log" 2>&1 &
    kparent=$!
    pids+=("$kparent")
    for _ in $(seq 100); do [ -s "$tmp/checkers.pid" ] && break; sleep 0.1; done
    [ -s "$tmp/checkers.pid" ] || { echo "FAIL: keepalived's checker process did not start:" >&2; tail -5 "$tmp/keepalived.log" >&2; exit 1; }
    checker=$(cat "$tmp/checkers.pid")
    measure keepalived "$checker"
    # Every server still in the table with its weight: keepalived removes a server whose check fails.
    ipvsadm -Sn | sort > "$tmp/ipvs.now"
    bad=$(grep -Eci "$KFAIL" "$tmp/keepalived.log" || true)
    kill "$kparent"; wait "$kparent" 2>/dev/null || true
    if [ "$bad" != 0 ]; then
        why="keepalived logged $bad failures, e.g.: $(grep -Ei "$KFAIL" "$tmp/keepalived.log" | head -1 | tr -s ' ')"
    elif [ "$(grep -c -- '^-a -t 192.0.2.100:8001 -r .*:8001 -g -w 1$' "$tmp/ipvs.now" || true)" != "$N" ]; then
        why="keepalived's IPVS table has $(grep -c -- '-w 1$' "$tmp/ipvs.now" || true) of $N real servers with weight 1, e.g.: $(diff "$tmp/ipvs.expected" "$tmp/ipvs.now" | grep '^[<>]' | head -2 | tr '\n' ' ')"
    elif ! enough "$(field checks)"; then
        why="keepalived did $(field checks) checks, fewer than $MIN_PCT % of $(field expected)"
    fi
    [ "$why" = ok ] || echo "  void: $why"
    echo "$variant $round keepalived $(field cpu_us/check) $why" >> "$tmp/results"
    ipvsadm -C 2>/dev/null || true
}

run_monitor() {
    local variant=$1 round=$2 mpid lines ups downs why=ok regex=()
    [ $variant = plain ] || regex=(--regex "$REGEX")
    ipvsadm -R < "$tmp/ipvs.rules"
    "${pin_tool[@]}" "$monitor" probe http - --every 1s --timeout 2s --concurrency 4096 "${regex[@]}" < "$tmp/targets" > "$tmp/monitor.out" &
    mpid=$!
    pids+=("$mpid")
    measure monitor "$mpid" "$tmp/monitor.out"
    kill "$mpid"; wait "$mpid" 2>/dev/null || true
    ipvsadm -C
    lines=$(wc -l < "$tmp/window")
    downs=$(grep -c '^down' "$tmp/window" || true)
    ups=$(awk '$1 == "up" { print $2 }' "$tmp/window" | sort -u | wc -l)
    if [ "$downs" != 0 ]; then
        why="monitor: $downs down results, e.g.: $(grep '^down' "$tmp/window" | head -1)"
    elif [ "$ups" != "$N" ]; then
        why="monitor judged $ups of $N servers up in the window"
    elif ! enough "$lines"; then
        why="monitor did $lines checks, fewer than $MIN_PCT % of $(field expected)"
    fi
    [ "$why" = ok ] || echo "  void: $why"
    echo "$variant $round monitor $(field cpu_us/check) $why" >> "$tmp/results"
}

# Turns in alternation, keepalived first in odd rounds, monitor first in even ones; a round's ratio
# compares its two turns; the median of the rounds' ratios is the figure (TCG's timing drifts
# between runs: see the rounds' spread).
: > "$tmp/results"
for variant in ${VARIANTS:-plain regex}; do
    case $variant in plain|regex) ;; *) echo "FAIL: VARIANTS: unknown variant $variant (plain, regex)" >&2; exit 1 ;; esac
    for ((r = 1; r <= ROUNDS; r++)); do
        echo "$variant round $r"
        if [ $((r % 2)) = 1 ]; then
            run_keepalived $variant $r; run_monitor $variant $r
        else
            run_monitor $variant $r; run_keepalived $variant $r
        fi
    done
done

for variant in ${VARIANTS:-plain regex}; do
    name=probe-http-cpu
    [ $variant = plain ] || name=probe-http-$variant-cpu
    awk -v variant="$variant" -v rounds="$ROUNDS" -v name="$name" '
        $1 == variant { cpu[$3, $2] = $4; why = ""; for (i = 5; i <= NF; i++) why = why (i > 5 ? " " : "") $i; ok[$3, $2] = why }
        END {
            for (r = 1; r <= rounds; r++) {
                if (ok["keepalived", r] != "ok") { printf "%s round %d void: %s\n", name, r, ok["keepalived", r]; continue }
                if (ok["monitor", r] != "ok") { printf "%s round %d void: %s\n", name, r, ok["monitor", r]; continue }
                if (!(cpu["keepalived", r] > 0)) { printf "%s round %d void: keepalived used no measurable CPU\n", name, r; continue }
                ratio[++m] = cpu["monitor", r] / cpu["keepalived", r]
                printf "%s round %d: monitor %.1f us/check, keepalived %.1f us/check, ratio %.3f\n", name, r, cpu["monitor", r], cpu["keepalived", r], ratio[m]
            }
            if (m == 0) { printf "%s ratio=none target=0.5 NOT MET (every round void)\n", name; exit }
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (ratio[j] < ratio[i]) { t = ratio[i]; ratio[i] = ratio[j]; ratio[j] = t }
            med = (m % 2) ? ratio[(m + 1) / 2] : (ratio[m / 2] + ratio[m / 2 + 1]) / 2
            all = ""; for (i = 1; i <= m; i++) all = all sprintf("%s%.3f", i > 1 ? " " : "", ratio[i])
            printf "%s: median of %d valid rounds of %d: %s\n", name, m, rounds, all
            printf "%s ratio=%.3f target=0.5 %s\n", name, med, med <= 0.5 ? "met" : "NOT MET"
        }' "$tmp/results"
done
