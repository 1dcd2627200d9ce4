#!/usr/bin/env bash
# Benchmark (not a test), run by `tests/lab bench probe-keepalived` in the lab VM: N real servers (a
# tokio HTTP server, monitor's example `bench_http_server`, on N addresses of 198.18.0.0/15 in a network
# namespace behind a veth) checked every second by keepalived's HTTP_GET (one virtual server with N
# real servers, delay_loop 1), then by `monitor probe http - --every 1s` (release build) with the
# same IPVS table in place, one after the other in the same VM run. CPU is utime+stime from /proc/PID/stat over the same wall time after a
# warm-up: keepalived's checker child (the process doing the checks) and the monitor process. Checks
# done are counted at the servers (TcpPassiveOpens of their namespace), so CPU per check compares
# like with like. Prints one line per tool (CPU split into user and system time, and `all_cpu_us`:
# every CPU's busy time per check, servers included; `switches`: the tool's context switches per
# check, its wake-ups mostly) and last `probe-http-cpu ratio=<ours/keepalived>`
# (the tool's CPU per check; target <= 0.5).
#
# Environment: SERVERS (default 500), SECONDS_MEASURED (default 30), WARMUP (default 8), ROUNDS
# (default 3: keepalived then monitor, ROUNDS times; the median ratio is printed); PERF=N records
# each tool with perf during the measurement and prints its N hottest symbols (perf adds its own cost);
# STRACE=1 counts each tool's system calls during the measurement instead (strace -c; slows the tool).
# build: -p monitor --bin monitor --example bench_http_server
set -euo pipefail
N=${SERVERS:-500}
T=${SECONDS_MEASURED:-30}
WARM=${WARMUP:-8}
ROUNDS=${ROUNDS:-3}
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

# measure NAME PID: CPU ticks of PID and connections opened at the servers over T seconds.
measure() {
    local name=$1 pid=$2 t0 u0 s0 t1 u1 s1 o0 o1 w0 w1 b0 b1 x0 x1
    sleep "$WARM"
    read -r t0 u0 s0 <<< "$(ticks_of "$pid")"; o0=$(opens); b0=$(busy); x0=$(switches "$pid"); w0=$(date +%s%N)
    if [ -n "${PERF:-}" ]; then
        perf record -q -F 499 -g -o "$tmp/perf.$name" -p "$pid" -- sleep "$T" 2>/dev/null
    elif [ -n "${STRACE:-}" ]; then
        timeout -s INT "$T" strace -c -f -p "$pid" -o "$tmp/strace.$name" 2>/dev/null || true
    else
        sleep "$T"
    fi
    read -r t1 u1 s1 <<< "$(ticks_of "$pid")"; o1=$(opens); b1=$(busy); x1=$(switches "$pid"); w1=$(date +%s%N)
    awk -v n="$name" -v t=$((t1 - t0)) -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v c=$((o1 - o0)) -v b=$((b1 - b0)) -v x=$((x1 - x0)) \
        -v w=$(( (w1 - w0) / 1000000 )) -v hz="$hz" -v N="$N" 'BEGIN {
        cpu = t / hz
        printf "%-10s servers=%d interval=1s wall=%.1fs checks=%d checks/s=%.0f cpu=%.2fs (user %.2fs, system %.2fs) cpu%%=%.1f cpu_us/check=%.1f all_cpu_us/check=%.1f switches/check=%.2f\n",
            n, N, w / 1000, c, c / (w / 1000), cpu, u / hz, s / hz, cpu / (w / 1000) * 100, c ? cpu / c * 1e6 : 0,
            c ? b / hz / c * 1e6 : 0, c ? x / c : 0 }' | tee -a "$tmp/results"
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

echo "kernel $(uname -r), $(nproc) CPUs, TCG emulation: compare figures only within this run"

# --- keepalived: one virtual server, N real servers, HTTP_GET every second
{
    echo "global_defs { router_id probe_bench }"
    echo "virtual_server 192.0.2.100 80 {"
    echo "    delay_loop 1"
    echo "    lb_algo rr"
    echo "    lb_kind DR"
    echo "    protocol TCP"
    for ((i = 0; i < N; i++)); do
        echo "    real_server $(addr_of "$i") 8001 {"
        echo "        weight 1"
        echo "        HTTP_GET { url { path / status_code 200 } connect_timeout 2 retry 1 delay_before_retry 1 }"
        echo "    }"
    done
    echo "}"
} > "$tmp/keepalived.conf"
# The same IPVS table as keepalived's, for monitor's turn: with a virtual service in place, every
# packet a tool sends passes IPVS's netfilter hooks, which costs keepalived; monitor pays it too.
{
    echo "-A -t 192.0.2.100:80 -s rr"
    for ((i = 0; i < N; i++)); do echo "-a -t 192.0.2.100:80 -r $(addr_of "$i"):8001 -g -w 1"; done
} > "$tmp/ipvs.rules"
command -v ipvsadm >/dev/null || { echo "FAIL: ipvsadm is missing (apt-get install ipvsadm; tests/lab deps)" >&2; exit 1; }

run_keepalived() {
    local kparent checker down
    rm -f "$tmp/checkers.pid"
    "${pin_tool[@]}" "$KEEPALIVED" --check --dont-fork --log-console --use-file "$tmp/keepalived.conf" \
        --pid "$tmp/keepalived.pid" --checkers_pid "$tmp/checkers.pid" > "$tmp/keepalived.log" 2>&1 &
    kparent=$!
    pids+=("$kparent")
    for _ in $(seq 100); do [ -s "$tmp/checkers.pid" ] && break; sleep 0.1; done
    [ -s "$tmp/checkers.pid" ] || { echo "FAIL: keepalived's checker process did not start:" >&2; tail -5 "$tmp/keepalived.log" >&2; exit 1; }
    checker=$(cat "$tmp/checkers.pid")
    measure keepalived "$checker"
    down=$(grep -ci 'down\|fail' "$tmp/keepalived.log" || true)
    kill "$kparent"; wait "$kparent" 2>/dev/null || true
    [ "$down" = 0 ] || { echo "  keepalived logged $down failures:"; grep -i 'down\|fail' "$tmp/keepalived.log" | head -3; }
    ipvsadm -C 2>/dev/null || true
}

run_monitor() {
    local mpid mdown
    ipvsadm -R < "$tmp/ipvs.rules"
    "${pin_tool[@]}" "$monitor" probe http - --every 1s --timeout 2s --concurrency 4096 < "$tmp/targets" > "$tmp/monitor.out" &
    mpid=$!
    pids+=("$mpid")
    measure monitor "$mpid"
    kill "$mpid"; wait "$mpid" 2>/dev/null || true
    ipvsadm -C
    mdown=$(grep -c '^down' "$tmp/monitor.out" || true)
    [ "$mdown" = 0 ] || { echo "  monitor: $mdown down results:"; grep '^down' "$tmp/monitor.out" | cut -d' ' -f5- | sort | uniq -c | head -3; }
}

# Turns in alternation, keepalived first; a round's ratio compares its two turns; the median of
# the rounds' ratios is the figure (TCG's timing drifts between runs: see the rounds' spread).
for ((r = 1; r <= ROUNDS; r++)); do
    [ "$ROUNDS" = 1 ] || echo "round $r"
    run_keepalived
    run_monitor
done

awk -v rounds="$ROUNDS" '{ for (i = 1; i <= NF; i++) if ($i ~ /^cpu_us\/check=/) { split($i, a, "="); v[$1, ++n[$1]] = a[2] } }
    END {
        for (r = 1; r <= rounds; r++) if (v["keepalived", r] > 0) ratio[++m] = v["monitor", r] / v["keepalived", r]
        if (m == 0) { print "probe-http-cpu ratio=unknown (keepalived used no measurable CPU)"; exit }
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (ratio[j] < ratio[i]) { t = ratio[i]; ratio[i] = ratio[j]; ratio[j] = t }
        med = (m % 2) ? ratio[(m + 1) / 2] : (ratio[m / 2] + ratio[m / 2 + 1]) / 2
        all = ""; for (i = 1; i <= m; i++) all = all sprintf("%s%.3f", i > 1 ? " " : "", ratio[i])
        if (m > 1) printf "probe-http-cpu ratio=%.3f (median of %d rounds: %s)\n", med, m, all
        else printf "probe-http-cpu ratio=%.3f\n", med
    }' "$tmp/results"
