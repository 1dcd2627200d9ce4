#!/usr/bin/env bash
# Benchmark (not a test), run by `tests/lab bench monitor` in the lab VM: the issue's "5,000 services
# (ping and tcp, on hosts in lab namespaces) at a 10 s interval", watched by `monitor run` (release
# build) and by Debian's mon 1.3.6 with its own monitors (fping.monitor, tcp.monitor -p 80), in turns
# in the same VM run, on the same services.
#
# Services: HOSTS hosts (198.18.1.1 upwards, /32 addresses on the loopback of one server
# namespace: the lab kernel has no dummy module), each its own hostgroup hK with two services, ping and tcp (port 80: monitor's example
# bench_http_server accepts on every address), so 2 x HOSTS services, each every INTERVAL. Every 100th
# host is down on purpose: nft in the server namespace drops ICMP echo to it and answers TCP 80 with a
# reset. mon.cf is written here (interval per service; on failure the alert `rec.alert`, a few lines
# of sh written here that append `failure GROUP SERVICE` to a file as mon's file.alert does, with
# alertevery 1h: one alert per failing service, as a real setup would have it. Not file.alert itself:
# under emulation a perl start costs about 0.3 s of CPU, and 50 of them at once starved the probes of
# whichever tool sent them (its probes timed out, up hosts were alerted, more perl: a spiral that
# measured alert forks, not monitoring); randstart = INTERVAL so
# the first runs spread, statedir and logdir here, no maxprocs: mon's default, unlimited); monitor.toml
# is `monitor import mon.cf` (the same groups, services, intervals and alerts) plus socket and
# state_file here.
#
# Fairness: the server namespace (servers, nft) is built once; each turn gets a FRESH tool namespace
# (veth to the server namespace, 198.18.0.1/30, route to 198.18.0.0/15 through 198.18.0.2), made for
# the turn and deleted after it, with nothing else running in it. The tool runs on CPU 0 (taskset,
# its children inherit it); this script, the servers and the receive processing of both veth ends
# (RPS) on CPU 1, so the tool's CPU time is its own work. Rounds: ROUNDS, mon first in odd rounds,
# monitor first in even ones. Each turn: start the tool directly (mon in the foreground: its PID is
# mon itself, not a wrapper), WARMUP seconds, then SECONDS_MEASURED seconds measured:
#   cpu%        utime+stime+cutime+cstime of the tool's process (/proc/PID/stat), plus those of its
#               live descendants, difference over the window, over the wall time, as % of one CPU:
#               mon's monitors (perl, sh, fping) and both tools' alert commands are children they
#               reap (cutime/cstime); those still running at either end are added as they stand, so
#               a pile of unreaped monitors is not missed. cpu0_busy%: CPU 0 as a whole (the tool's).
#   checks      counted at the servers by nft counters over the same window: ICMP echo requests and
#               TCP SYNs to port 80 reaching the up hosts, plus those to the down hosts (dropped /
#               reset), where a down host's ping check sends 1 + retries echoes (fping.monitor: fping
#               -r 3, 4 echoes; monitor: count 1, 1 echo). expected = 2 x HOSTS x seconds / INTERVAL.
#   cpu_us/check the tool's CPU seconds over the checks counted at the servers.
#   rss         VmRSS of the tool's process at the end; tree_peak: the peak, sampled every second, of
#               the sum of VmRSS of the tool and all its descendants (mon's running monitors).
# Results: at the end of each turn the failing set must be exactly the down hosts' ping and tcp
# services (monitor: `monitor list failures`; mon: its client protocol, `moncmd list opstatus`), and
# no alert (rec.alert's file) may name another service; else the turn is void. A tool that has not
# yet tested some services (untested at the end: it fell behind) is not void for that, as long as
# every service it has tested is right: the line says how many are untested. A tool too busy to
# answer its client protocol (monitor's client waits 10 s, moncmd is given 60 s) is judged on its
# alerts: any for an up service voids the turn; down services never alerted count as not reached.
# A void round still prints its ratio, for information only; the last line uses valid rounds only.
#
# The ratio: for each round with both turns valid, monitor's cpu_us/check / mon's cpu_us/check (CPU
# per check done, so a tool that falls behind is not flattered by doing fewer checks; when both keep
# up it is the CPU % ratio); the last line's R is the median over those rounds:
#   monitor-vs-mon ratio=R target=0.1 met|NOT MET
#
# Environment: HOSTS (default 2500: 5,000 services), INTERVAL (default 10s), SECONDS_MEASURED
# (default 60), WARMUP (default 30), ROUNDS (default 3).
# build: -p monitor --bin monitor --example bench_http_server
# ratio: monitor-vs-mon
# env: HOSTS INTERVAL SECONDS_MEASURED WARMUP ROUNDS
set -euo pipefail
H=${HOSTS:-2500}
INTERVAL=${INTERVAL:-10s}
T=${SECONDS_MEASURED:-60}
WARM=${WARMUP:-30}
ROUNDS=${ROUNDS:-3}
DOWN_EVERY=100
ivl=${INTERVAL%s}
case "$ivl" in ''|*[!0-9]*) echo "FAIL: INTERVAL: whole seconds, e.g. 10s" >&2; exit 1 ;; esac
[ "$ivl" -ge 1 ] || { echo "FAIL: INTERVAL: at least 1s" >&2; exit 1; }
[ "$H" -ge 1 ] && [ "$H" -le 60000 ] || { echo "FAIL: HOSTS: 1 to 60000" >&2; exit 1; }
monitor=$LAB_RELEASE/monitor
server=$LAB_RELEASE/examples/bench_http_server
for f in "$monitor" "$server"; do
    [ -x "$f" ] || { echo "FAIL: $f is missing (tests/lab bench builds it)" >&2; exit 1; }
done
MON=/usr/sbin/mon
for f in $MON /usr/bin/moncmd /usr/lib/mon/mon.d/fping.monitor /usr/lib/mon/mon.d/tcp.monitor; do
    [ -x "$f" ] || { echo "FAIL: $f is missing (Debian package mon; tests/lab deps)" >&2; exit 1; }
done
command -v fping >/dev/null || { echo "FAIL: fping is missing (Debian package fping; tests/lab deps)" >&2; exit 1; }
command -v nft >/dev/null || { echo "FAIL: nft is missing (tests/lab deps)" >&2; exit 1; }

tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
tool_ns=
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$tool_ns" ]; then
        for p in $(ip netns pids "$tool_ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$tool_ns" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    ip netns del msrv 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# This script (and what it starts but the tools) on the last CPU; the tools on CPU 0.
ncpu=$(nproc)
pin_tool=() rps=0
if [ "$ncpu" -ge 2 ]; then
    taskset -pc 1 $$ >/dev/null
    pin_tool=(taskset -c 0)
    rps=2
fi

addr_of() { echo "198.18.$((1 + ($1 - 1) / 250)).$((1 + ($1 - 1) % 250))"; } # host K, 1-based
is_down() { [ $(($1 % DOWN_EVERY)) = 0 ]; }

# --- the server namespace: the hosts' addresses on its loopback, the TCP server, nft
ip netns add msrv
ip -n msrv link set lo up
for ((k = 1; k <= H; k++)); do echo "address add $(addr_of "$k")/32 dev lo"; done > "$tmp/addrs"
ip -n msrv -batch "$tmp/addrs"
down=()
for ((k = DOWN_EVERY; k <= H; k += DOWN_EVERY)); do down+=("$(addr_of "$k")"); done
{
    echo "table inet mbench {"
    if [ ${#down[@]} -gt 0 ]; then
        echo "  set down { type ipv4_addr; elements = { $(IFS=,; echo "${down[*]}") } }"
    else
        echo "  set down { type ipv4_addr; }"
    fi
    echo "  chain input {"
    echo "    type filter hook input priority 0; policy accept;"
    echo "    ip daddr @down icmp type echo-request counter drop comment \"down_echo\""
    echo "    ip daddr @down tcp dport 80 tcp flags & (syn | ack) == syn counter reject with tcp reset comment \"down_syn\""
    echo "    ip daddr @down tcp dport 80 reject with tcp reset"
    echo "    icmp type echo-request counter comment \"up_echo\""
    echo "    tcp dport 80 tcp flags & (syn | ack) == syn counter comment \"up_syn\""
    echo "  }"
    echo "}"
} > "$tmp/nft"
ip netns exec msrv nft -f "$tmp/nft"
ip netns exec msrv "$server" 80 > "$tmp/server.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$tmp/server.out" || { echo "FAIL: bench_http_server did not start" >&2; exit 1; }
# mon logs through syslog(3): a sink for /dev/log (else Sys::Syslog falls back to the console).
syslog_sink=none
if [ ! -S /dev/log ] && command -v socat >/dev/null; then
    socat -u UNIX-RECV:/dev/log,mode=666 OPEN:"$tmp/syslog",creat,append 2>/dev/null &
    pids+=($!)
    syslog_sink="socat to a file"
elif [ -S /dev/log ]; then
    syslog_sink="/dev/log"
fi

# nft counters: "down_echo N down_syn N up_echo N up_syn N" (packets).
counters() {
    ip netns exec msrv nft list chain inet mbench input | awk '
        /comment/ { for (i = 1; i < NF; i++) if ($i == "packets") p = $(i + 1)
                    c = $NF; gsub(/"/, "", c); printf "%s %s ", c, p }
        END { print "" }'
}

# --- the configurations
mkdir -p "$tmp/alerts" "$tmp/mon.state" "$tmp/mon.log" "$tmp/alert.d"
# The alert: mon's calling convention (-s SERVICE -g GROUP ...; the output on stdin, read to its end).
cat > "$tmp/alert.d/rec.alert" <<EOF
#!/bin/sh
while getopts s:g:h:t:l:uT o; do case \$o in s) s=\$OPTARG ;; g) g=\$OPTARG ;; esac; done
while read -r _; do :; done
echo "failure \$g \$s" >> $tmp/alerts/alerts
EOF
chmod 755 "$tmp/alert.d/rec.alert"
{
    echo "alertdir = $tmp/alert.d"
    echo "mondir = /usr/lib/mon/mon.d"
    echo "cfbasedir = /etc/mon"
    echo "statedir = $tmp/mon.state"
    echo "logdir = $tmp/mon.log"
    echo "randstart = ${ivl}s"
    echo "serverbind = 127.0.0.1"
    echo "trapbind = 127.0.0.1"
    echo "clientallow = 127.0.0.1"
    echo
    for ((k = 1; k <= H; k++)); do echo "hostgroup h$k $(addr_of "$k")"; done
    echo
    for ((k = 1; k <= H; k++)); do
        printf 'watch h%d\n' "$k"
        printf '    service ping\n        interval %ss\n        monitor fping.monitor\n        period\n            alertevery 1h\n            alert rec.alert\n' "$ivl"
        printf '    service tcp\n        interval %ss\n        monitor tcp.monitor -p 80\n        period\n            alertevery 1h\n            alert rec.alert\n' "$ivl"
    done
} > "$tmp/mon.cf"
{
    echo "socket = \"$tmp/monitor.sock\""
    echo "state_file = \"$tmp/monitor.state/state.json\""
    "$monitor" import "$tmp/mon.cf" 2> "$tmp/import.err"
} > "$tmp/monitor.toml"
mkdir -p "$tmp/monitor.state"
"$monitor" check --config "$tmp/monitor.toml" > "$tmp/check.out" 2>&1 \
    || { echo "FAIL: monitor check refuses the imported monitor.toml:" >&2; head -5 "$tmp/check.out" >&2; exit 1; }
nsvc=$(grep -c '^\[\[watch.service\]\]' "$tmp/monitor.toml" || true)
[ "$nsvc" = $((2 * H)) ] || { echo "FAIL: monitor import gave $nsvc services, not $((2 * H))" >&2; exit 1; }
for ((k = DOWN_EVERY; k <= H; k += DOWN_EVERY)); do printf 'h%d/ping\nh%d/tcp\n' "$k" "$k"; done | sort > "$tmp/expected.failing"

hz=$(getconf CLK_TCK)
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# descendants PID: PID and all its descendants (bash builtins only: cheap).
descendants() {
    local todo=("$1") p c kids=()
    while [ ${#todo[@]} -gt 0 ]; do
        p=${todo[0]}; todo=("${todo[@]:1}")
        [ -d "/proc/$p" ] || continue
        echo "$p"
        for c in /proc/"$p"/task/*/children; do
            kids=()
            { read -r -a kids < "$c"; } 2>/dev/null || true
            todo+=("${kids[@]}")
        done
    done
}
# tree_rss PID: VmRSS of PID and its descendants, in kB.
tree_rss() {
    local p sum=0 line
    for p in $(descendants "$1"); do
        { while read -r line; do
            case $line in VmRSS:*) line=${line#VmRSS:}; line=${line% kB}; sum=$((sum + line)); break ;; esac
        done < "/proc/$p/status"; } 2>/dev/null || true
    done
    echo "$sum"
}
# tree_ticks PID: CPU ticks (utime+stime+cutime+cstime) of PID and of each live descendant: a
# child's time lands in its parent's cutime only when it is reaped, so the children running at
# either end of the window are added as they stand (each tick counted once: a live process's
# cutime holds only its own reaped children, which are no longer anyone's live descendants).
tree_ticks() {
    local p sum=0 f
    for p in $(descendants "$1"); do
        { read -r f < "/proc/$p/stat"; } 2>/dev/null || continue
        f=${f##*) }
        # shellcheck disable=SC2086
        set -- $f
        # after "(comm) ": state is the 1st field (stat's 3rd), so utime..cstime are the 12th..15th
        sum=$((sum + ${12} + ${13} + ${14} + ${15}))
    done
    echo "$sum"
}
# CPU 0's busy ticks (all but idle and iowait).
cpu0_busy() { awk '/^cpu0 / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
echo "kernel $(uname -r), $ncpu CPUs, TCG emulation: compare figures only within this run"
echo "services=$((2 * H)) (hosts=$H x ping,tcp) interval=${ivl}s down hosts=${#down[@]} (every ${DOWN_EVERY}th) warmup=${WARM}s measured=${T}s rounds=$ROUNDS ulimit_n=$(ulimit -n) syslog=$syslog_sink"

# field NAME FILE: the value of NAME=... in FILE's line.
field() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' "$2"; }

# run_turn TOOL ROUND: one turn; appends "ROUND TOOL cpu_us cpu% rss_mb achieved% why" to results.
run_turn() {
    local tool=$1 round=$2 ns pid c0 c1 b0 b1 w0 w1 k0 k1 peak=0 r why=ok epc untested=0 i nproc_end
    ns=mb$round$tool
    tool_ns=$ns
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add tl0 netns "$ns" type veth peer name tl1 netns msrv
    ip -n "$ns" addr add 198.18.0.1/30 dev tl0
    ip -n msrv addr add 198.18.0.2/30 dev tl1
    ip -n "$ns" link set tl0 up
    ip -n msrv link set tl1 up
    ip -n "$ns" route add 198.18.0.0/15 via 198.18.0.2
    if [ "$rps" != 0 ]; then
        ip netns exec "$ns" sh -c "echo $rps > /sys/class/net/tl0/queues/rx-0/rps_cpus"
        ip netns exec msrv sh -c "echo $rps > /sys/class/net/tl1/queues/rx-0/rps_cpus"
    fi
    : > "$tmp/alerts/alerts"
    rm -rf "$tmp/mon.state"/* "$tmp/mon.log"/* "$tmp/monitor.state"/* "$tmp/monitor.sock"
    # `ip netns exec` and taskset exec: $! is the tool itself.
    if [ "$tool" = mon ]; then
        ip netns exec "$ns" "${pin_tool[@]}" $MON -c "$tmp/mon.cf" -P "$tmp/mon.pid" > "$tmp/$tool.out" 2>&1 &
        epc=4
    else
        ip netns exec "$ns" "${pin_tool[@]}" "$monitor" run --config "$tmp/monitor.toml" > "$tmp/$tool.out" 2>&1 &
        epc=1
    fi
    pid=$!
    sleep 1
    [ -d "/proc/$pid" ] || { echo "FAIL: $tool did not start:" >&2; tail -5 "$tmp/$tool.out" >&2; exit 1; }
    sleep "$WARM"
    [ -d "/proc/$pid" ] || { echo "FAIL: $tool ended during the warm-up:" >&2; tail -5 "$tmp/$tool.out" >&2; exit 1; }
    # The peak of the tool's tree's RSS, sampled every second in the background (on CPU 1).
    ( pk=0; while :; do r=$(tree_rss "$pid"); [ "$r" -le "$pk" ] || { pk=$r; echo "$pk" > "$tmp/peak"; }; sleep 1; done ) &
    local sampler=$!
    c0=$(tree_ticks "$pid"); b0=$(cpu0_busy); k0=$(counters); w0=$(date +%s%N)
    sleep "$T"
    c1=$(tree_ticks "$pid"); b1=$(cpu0_busy); k1=$(counters); w1=$(date +%s%N)
    kill "$sampler"; wait "$sampler" 2>/dev/null || true
    peak=$(cat "$tmp/peak" 2>/dev/null || echo 0)
    rm -f "$tmp/peak"
    nproc_end=$(descendants "$pid" | wc -l)
    local rss
    rss=$(rss_kb "$pid")
    # The failing set at the end of the turn: the tool's own client protocol; if it does not answer
    # (an overloaded tool), the services named in the alerts instead, and the down services never
    # alerted count as not reached (like untested), not as wrong.
    local src=client
    : > "$tmp/untested"
    if [ "$tool" = mon ]; then
        ip netns exec "$ns" timeout -k 5 60 moncmd -s 127.0.0.1 list opstatus > "$tmp/opstatus" 2>&1 || true
        awk '{ g = s = o = ""
               for (i = 1; i <= NF; i++) {
                   if ($i ~ /^group=/) g = substr($i, 7)
                   else if ($i ~ /^service=/) s = substr($i, 9)
                   else if ($i ~ /^opstatus=/) o = substr($i, 10) }
               if (g != "" && s != "") print g "/" s, o }' "$tmp/opstatus" > "$tmp/states"
        if [ "$(wc -l < "$tmp/states")" = $((2 * H)) ]; then
            awk '$2 == 0 || $2 == 4 || $2 == 6 { print $1 }' "$tmp/states" | sort > "$tmp/failing"
            awk '$2 == 7 { print $1 }' "$tmp/states" | sort > "$tmp/untested"
        else
            src=alerts
        fi
    else
        if "$monitor" list failures --socket "$tmp/monitor.sock" > "$tmp/failures.out" 2>&1; then
            awk '{ print $1 }' "$tmp/failures.out" | sort > "$tmp/failing"
            "$monitor" status --json --socket "$tmp/monitor.sock" > "$tmp/status.json" 2>&1 || true
            jq -r '.services[] | select(.status == "untested") | .service' "$tmp/status.json" 2>/dev/null | sort > "$tmp/untested" || : > "$tmp/untested"
        else
            src=alerts
        fi
    fi
    # Alerts that name a service: rec.alert writes "failure GROUP SERVICE".
    awk '$1 == "failure" { print $2 "/" $3 }' "$tmp/alerts/alerts" | sort -u > "$tmp/alerted"
    if [ $src = alerts ]; then
        cp "$tmp/alerted" "$tmp/failing"
        comm -23 "$tmp/expected.failing" "$tmp/alerted" > "$tmp/untested"
    fi
    untested=$(wc -l < "$tmp/untested")
    local extra missing bad_alerts untested_down
    extra=$(comm -13 "$tmp/expected.failing" "$tmp/failing" | head -3 | tr '\n' ' ')
    missing=$(comm -23 "$tmp/expected.failing" "$tmp/failing" | comm -23 - "$tmp/untested" | head -3 | tr '\n' ' ')
    untested_down=$(comm -12 "$tmp/expected.failing" "$tmp/untested" | wc -l)
    bad_alerts=$(comm -13 "$tmp/expected.failing" "$tmp/alerted" | head -3 | tr '\n' ' ')
    local nbad
    nbad=$(comm -13 "$tmp/expected.failing" "$tmp/alerted" | wc -l)
    if [ -n "$extra" ]; then why="failing but up ($src): $extra"
    elif [ -n "$missing" ]; then why="down but not failing: $missing"
    elif [ -n "$bad_alerts" ]; then why="alerts for $nbad up services, e.g. $bad_alerts"
    fi
    [ $src = client ] || why="$why (no answer from its client protocol: failing set from its alerts)"
    [ -d "/proc/$pid" ] || why="$tool ended before the end of its turn: $(tail -2 "$tmp/$tool.out" | tr '\n' ' ')"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    for r in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$r" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
    ip netns del "$ns"
    tool_ns=
    cp "$tmp/$tool.out" "$tmp/$tool.$round.out"
    local failing_n alerted_n
    failing_n=$(wc -l < "$tmp/failing")
    alerted_n=$(wc -l < "$tmp/alerted")
    # shellcheck disable=SC2086
    awk -v tool="$tool" -v round="$round" -v t=$((c1 - c0)) -v hz="$hz" -v w=$(((w1 - w0) / 1000000)) \
        -v cpu0=$((b1 - b0)) -v np="$nproc_end" -v k0="$k0" -v k1="$k1" -v epc="$epc" -v svcs=$((2 * H)) -v ivl="$ivl" -v rss="$rss" -v peak="$peak" \
        -v failing="$failing_n" -v want="$(wc -l < "$tmp/expected.failing")" -v untested="$untested" \
        -v udown="$untested_down" -v alerted="$alerted_n" -v why="$why" -v out="$tmp/results" 'BEGIN {
        n = split(k0, a, " "); for (i = 1; i < n; i += 2) v0[a[i]] = a[i + 1]
        n = split(k1, b, " "); for (i = 1; i < n; i += 2) v1[b[i]] = b[i + 1]
        for (c in v1) d[c] = v1[c] - v0[c]
        checks = d["up_echo"] + d["up_syn"] + d["down_syn"] + d["down_echo"] / epc
        secs = w / 1000; cpu = t / hz; exp_ = svcs * secs / ivl
        printf "turn tool=%s round=%d cpu%%=%.1f cpu_us/check=%.0f rss_mb=%.1f tree_peak_mb=%.1f checks=%.0f expected=%.0f achieved=%.1f%% (ping %d+%.0f tcp %d+%d) wall=%.1fs cpu0_busy%%=%.0f procs=%d failing=%d/%d untested=%d alerted=%d result=%s\n",
            tool, round, cpu / secs * 100, checks ? cpu / checks * 1e6 : 0, rss / 1024, peak / 1024, checks, exp_,
            checks / exp_ * 100, d["up_echo"], d["down_echo"] / epc, d["up_syn"], d["down_syn"], secs, cpu0 / hz / secs * 100, np, failing, want,
            untested, alerted, why ~ /^ok/ ? (udown ? why " (" udown " down services not reached)" : why) : "void: " why
        printf "%d %s %.3f %.2f %.1f %.1f %s\n", round, tool, checks ? cpu / checks * 1e6 : 0, cpu / secs * 100,
            rss / 1024, checks / exp_ * 100, (why ~ /^ok/ ? "ok" : why) >> out
    }'
}

: > "$tmp/results"
for ((r = 1; r <= ROUNDS; r++)); do
    if [ $((r % 2)) = 1 ]; then
        run_turn mon $r; run_turn monitor $r
    else
        run_turn monitor $r; run_turn mon $r
    fi
done

# Logs worth a look: errors in the tools' output.
for tool in mon monitor; do
    n=$(cat "$tmp/$tool".*.out 2>/dev/null | grep -ciE 'error|warn|panic|too many' || true)
    [ "$n" = 0 ] || { echo "$tool's output: $n lines with error/warn, e.g.:"; cat "$tmp/$tool".*.out | grep -iE 'error|warn|panic|too many' | sort | uniq -c | sort -rn | head -5; }
done
[ ! -s "$tmp/syslog" ] || { echo "mon's syslog, most frequent messages:"; tr '\0' '\n' < "$tmp/syslog" | grep . | sed 's/.*mon\[[0-9]*\]: //; s/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn | head -5; }

awk -v rounds="$ROUNDS" '
    function median(arr, m,   i, j, t) {
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
        return (m % 2) ? arr[(m + 1) / 2] : (arr[m / 2] + arr[m / 2 + 1]) / 2
    }
    { us[$2, $1] = $3; why = ""; for (i = 7; i <= NF; i++) why = why (i > 7 ? " " : "") $i; ok[$2, $1] = why
      if (why == "ok") { n[$2]++; U[$2, n[$2]] = $3; C[$2, n[$2]] = $4; R[$2, n[$2]] = $5; A[$2, n[$2]] = $6 } }
    END {
        split("mon monitor", tools, " ")
        for (ti = 1; ti <= 2; ti++) {
            t = tools[ti]; m = n[t] + 0
            if (!m) { printf "summary tool=%s: every turn void\n", t; continue }
            for (i = 1; i <= m; i++) { u[i] = U[t, i]; c[i] = C[t, i]; s[i] = R[t, i]; a[i] = A[t, i] }
            printf "summary tool=%s valid_turns=%d/%d median: cpu%%=%.1f cpu_us/check=%.0f rss_mb=%.1f achieved=%.1f%%\n",
                t, m, rounds, median(c, m), median(u, m), median(s, m), median(a, m)
        }
        m = 0
        for (r = 1; r <= rounds; r++) {
            if (ok["mon", r] != "ok" || ok["monitor", r] != "ok") {
                printf "round %d void (mon: %s; monitor: %s); for information only: monitor %.0f us/check, mon %.0f us/check, ratio %.4f\n",
                    r, ok["mon", r], ok["monitor", r], us["monitor", r], us["mon", r], (us["mon", r] > 0 ? us["monitor", r] / us["mon", r] : 0)
                continue
            }
            if (!(us["mon", r] > 0)) { printf "round %d void: mon did no measurable work\n", r; continue }
            ratio[++m] = us["monitor", r] / us["mon", r]
            printf "round %d: monitor %.0f us/check, mon %.0f us/check, ratio %.4f\n", r, us["monitor", r], us["mon", r], ratio[m]
        }
        if (m == 0) { print "monitor-vs-mon ratio=none target=0.1 NOT MET (every round void)"; exit }
        med = median(ratio, m)
        printf "monitor-vs-mon ratio=%.4f target=0.1 %s\n", med, med <= 0.1 ? "met" : "NOT MET"
    }' "$tmp/results"
