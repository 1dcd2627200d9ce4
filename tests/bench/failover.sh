#!/usr/bin/env bash
# Benchmark (issue 12), run by `tests/lab bench failover` in the lab VM: the outage a client sees when
# the active director's cables are pulled, hbeat (the example's timings: keepalive 20 ms, warntime
# 60 ms, deadtime 100 ms; links: unicast UDP on the LAN, broadcast on the heartbeat bridge; group
# `armed:fakeip hold 192.0.2.100/24 dev eth0`, the fakeip started ahead and told to go at the
# takeover) against keepalived VRRPv3 (`advert_int 0.1`, priorities 200
# and 100, the same VIP on eth0), in the same VM run, on the same topology (tests/topo.sh --hb).
#
# Turns alternate: hbeat then keepalived in odd rounds, keepalived then hbeat in even ones (PULLS
# rounds, default 5), each from a clean state: a
# fresh topology, the same IPVS table on both directors (ldir apply: VIP:80 -> r1, r2, LVS-DR), the
# tool started on d1 and d2 and seen settled (the VIP on d1 only, d2 standing by). The client c runs
# tests' failover-probe (an HTTP GET through the VIP every 10 ms, 300 ms timeout, each on its own
# connection); after 0.5 s of service both of d1's switch ports go down at once (its LAN cable and
# its heartbeat cable: with only the LAN pulled, hbeat's second link keeps d1 alive, and acting on
# a tracked interface is the next issue's policy). The outage is the probe's longest gap between two
# successful requests (by completion time). Checked in every turn: the gap spans the pull (its start
# may lie up to 50 ms after the pull command returned: the probe stamps a completion when its poll
# loop sees it, which under emulation can be late), the VIP
# ends on d2's eth0 exactly once, d2 took over exactly once (hbeat: holds `web`, one `group start`;
# keepalived: one `Entering MASTER STATE`), and the client's last request succeeded (served again).
# A turn that fails a check says why and counts for nothing. For hbeat the turn also prints d2's
# timeline (pull -> peer dead -> fakeip started -> its first announcement), from the logs.
#
# Then, in one more fresh topology with both tools running side by side (hbeat's VIP .100,
# keepalived's .101): hbeat's CPU (utime+stime of /proc/PID/stat) and RSS (VmRSS, VmHWM) on both
# directors over MEASURE_SECS (30) of steady state, keepalived's VRRP process beside it; then
# `stress-ng --cpu NPROC` in d1 and in d2 for STRESS_SECS (300): false failovers = hbeat's `peer
# dead` or `group` lines after the start (target 0), keepalived's state changes beside it.
# Lines: `hbeat-cpu ... met|NOT MET` (<= 1 % of a core), `hbeat-rss ... met|NOT MET` (<= 8 MB),
# `false-failovers ... met|NOT MET` (0), and last `failover ratio=<median hbeat / median
# keepalived> target=0.33 met|NOT MET`. Exit 1 when a turn or a part failed (after the last line).
# TCG emulation makes every figure slower than on hardware: compare them only within this run.
#
# Part `resource` (issue 13): RESOURCE_RUNS (5) times, SIGKILL to the holder's `fakeip hold`; the
# line `resource-failover-ms median=...` is the time from the kill to the peer's fakeip holding the
# VIP (the death is seen at once, the group moves to the ready peer).
# Environment: PULLS (5), STRESS_SECS (300), MEASURE_SECS (30), RESOURCE_RUNS (5), PARTS ("pulls
# steady resource").
# build: -p hbeat --bin hbeat
# build: -p fakeip --bin fakeip
# build: -p ldir --bin ldir
# build: -p tests --bin failover-probe
# ratio: failover
# env: PULLS STRESS_SECS MEASURE_SECS RESOURCE_RUNS PARTS
set -euo pipefail
PULLS=${PULLS:-5}
STRESS_SECS=${STRESS_SECS:-300}
MEASURE_SECS=${MEASURE_SECS:-30}
PARTS=${PARTS:-"pulls steady resource"}
RESOURCE_RUNS=${RESOURCE_RUNS:-5}
VIP=192.0.2.100
KVIP=192.0.2.101

fail() { echo "FAIL: $*" >&2; exit 1; }
# The release builds first: hbeat finds `fakeip` on PATH.
export PATH=$LAB_RELEASE:$PATH
for b in hbeat fakeip ldir failover-probe; do
    [ -x "$LAB_RELEASE/$b" ] || fail "$LAB_RELEASE/$b is missing (tests/lab bench builds it)"
done
KEEPALIVED=$(PATH=$PATH:/usr/sbin:/sbin command -v keepalived) \
    || fail "keepalived is missing (apt-get install keepalived; tests/lab deps)"
command -v stress-ng >/dev/null || fail "stress-ng is missing (apt-get install stress-ng; tests/lab deps)"
command -v jq >/dev/null || fail "jq is missing (apt-get install jq; tests/lab deps)"
for p in $PARTS; do case $p in pulls|steady|resource) ;; *) fail "PARTS: unknown part $p (pulls steady resource)" ;; esac; done
[ "$PULLS" -ge 1 ] || fail "PULLS must be 1 or more"

topo() { "$LAB_ROOT/tests/topo.sh" "$@"; }
tmp=$(mktemp -d /tmp/failover-bench.XXXXXX)
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_all
    rm -rf "$tmp"
}
# Every process in the topology's namespaces, KILLed and waited for, then the namespaces go.
stop_all() { topo down --kill >/dev/null 2>&1 || true; }
trap cleanup EXIT

hz=$(getconf CLK_TCK)
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
# The epoch (seconds) of a log line's leading RFC 3339 timestamp (hbeat's and fakeip's text logs).
line_epoch() { date -d "$(awk '{ print $1; exit }' <<< "$1")" +%s.%N 2>/dev/null || echo "?"; }
# is WANT CMD...: CMD prints WANT (for wait_until, which runs its command anew each time).
is() { local want=$1; shift; [ "$("$@")" = "$want" ]; }

# wait_until SECONDS CMD...: CMD succeeds within SECONDS (polled every 0.05 s); returns 1 otherwise.
wait_until() {
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.05
    done
}

# --- the tools' configurations ----------------------------------------------------------------
hbeat keygen > "$tmp/authkey"
chmod 600 "$tmp/authkey"
# shellcheck source=tests/bench-pair.sh
source "$(dirname "${BASH_SOURCE[0]}")/../bench-pair.sh"
ipvs_on_both() { # DIR
    local n
    for n in d1 d2; do
        mkdir -p "$1/ldir-$n"
        printf '[global]\nstate_dir = "%s/ldir-%s.state"\nsocket = "%s/ldir-%s.sock"\n' "$1" "$n" "$1" "$n" > "$1/ldir-$n/ldir.toml"
        printf '[virtual]\naddress = "%s:80"\nscheduler = "rr"\nforwarding = "gate"\n\n[check]\ntype = "on"\n\n[[real]]\naddress = "192.0.2.11:80"\n\n[[real]]\naddress = "192.0.2.12:80"\n' "$VIP" > "$1/ldir-$n/web.toml"
        if [ "$KV" = 1 ]; then
            printf '[virtual]\naddress = "%s:80"\nscheduler = "rr"\nforwarding = "gate"\n\n[check]\ntype = "on"\n\n[[real]]\naddress = "192.0.2.11:80"\n\n[[real]]\naddress = "192.0.2.12:80"\n' "$KVIP" > "$1/ldir-$n/kweb.toml"
        fi
        topo exec "$n" ldir --config-dir "$1/ldir-$n" apply > /dev/null || return 1
    done
}

start_hbeat() { # DIR
    local n
    for n in d1 d2; do
        pair_hbeat_conf "$n" "$1" "$tmp/authkey" "$VIP"
        ip netns exec "$n" hbeat --config "$1/$n.toml" run > "$1/$n.hbeat.log" 2>&1 &
        echo $! > "$1/$n.hbeat.pid"
    done
}
start_keepalived() { # DIR VIP
    local n
    for n in d1 d2; do
        pair_keepalived_conf "$n" "$1" "$2"
        ip netns exec "$n" "$KEEPALIVED" --vrrp --dont-fork --log-console --log-detail --use-file "$1/$n.keepalived.conf" \
            --pid "$1/$n.k.pid" --vrrp_pid "$1/$n.kv.pid" > "$1/$n.keepalived.log" 2>&1 &
    done
}

# --- part pulls ---------------------------------------------------------------------------------
: > "$tmp/results"
# turn TOOL N: one pull; appends "TOOL N GAP_MS ok" or "TOOL N - why" to results.
turn() {
    local tool=$1 k=$2 d=$tmp/$1-$2 why='' pulled pull_end gap from to
    mkdir -p "$d"
    topo up --hb > /dev/null
    KV=0 ipvs_on_both "$d" || why="ldir apply failed"
    if [ -z "$why" ]; then
        if [ "$tool" = hbeat ]; then
            start_hbeat "$d"
            wait_until 30 hb_settled "$d" || why="not settled: d1 holds '$(hb_held "$d" d1 2>&1)', d2 '$(hb_held "$d" d2 2>&1)'"
        else
            start_keepalived "$d" $VIP
            wait_until 30 k_settled "$d" $VIP || why="not settled: the VIP on d1 $(vips d1 $VIP)x, on d2 $(vips d2 $VIP)x"
        fi
    fi
    if [ -z "$why" ]; then
        ip netns exec c failover-probe "$VIP:80" --every 10 --timeout 300 --duration 60 > "$d/probe" 2>&1 &
        local probe=$!
        wait_until 20 grep -q '^ready=' "$d/probe" || why="the client was never served: $(cat "$d/probe")"
    fi
    if [ -z "$why" ]; then
        sleep 0.5
        printf 'link set d1 down\nlink set hb-d1 down\n' > "$d/pull"
        # Under emulation `ip` takes up to a second to start: the pull happens between these two.
        pulled=$EPOCHREALTIME
        ip -n sw -batch "$d/pull"
        pull_end=$EPOCHREALTIME
        wait_until 10 is 1 vips d2 $VIP || why="the VIP never came to d2"
        sleep 1
        kill -TERM "$probe"
        wait "$probe" || why="failover-probe failed: $(cat "$d/probe")"
    fi
    if [ -z "$why" ]; then
        gap=$(sed -n 's/^longest_gap_ms=\([0-9.]*\) .*/\1/p' "$d/probe")
        from=$(sed -n 's/.* from=\([0-9.]*\) .*/\1/p' "$d/probe")
        to=$(sed -n 's/.* to=\([0-9.]*\)$/\1/p' "$d/probe")
        if ! grep -q '^last_ok=true' "$d/probe"; then
            why="the client's last request failed: $(tr '\n' ' ' < "$d/probe")"
        elif [ -z "$gap" ] || ! awk -v f="$from" -v t="$to" -v p="$pulled" -v e="$pull_end" 'BEGIN { exit !(f <= e + 0.05 && t > p) }'; then
            why="the longest gap ($(grep longest "$d/probe")) does not span the pull ($pulled to $pull_end)"
        elif [ "$(vips d2 $VIP)" != 1 ]; then
            why="the VIP is on d2's eth0 $(vips d2 $VIP) times"
        elif [ "$tool" = hbeat ]; then
            local starts
            starts=$(grep -c 'group=web action="\?start' "$d/d2.hbeat.log" || true)
            if [ "$(hb_held "$d" d2)" != web ]; then why="d2 holds '$(hb_held "$d" d2)'"
            elif [ "$starts" != 1 ]; then why="d2 started web $starts times"; fi
        else
            local m
            m=$(grep -c 'Entering MASTER STATE' "$d/d2.keepalived.log" || true)
            [ "$m" = 1 ] || why="d2 entered MASTER $m times"
        fi
    fi
    if [ -n "$why" ]; then
        printf '%-10s pull %d: FAILED: %s\n' "$tool" "$k" "$why"
        echo "$tool $k - $why" >> "$tmp/results"
        for f in "$d"/*.log; do [ -e "$f" ] && { echo "  --- $(basename "$f"):"; tail -8 "$f" | sed 's/^/  /'; }; done
    else
        local extra=""
        if [ "$tool" = hbeat ]; then
            # d2's timeline from its log: peer dead, fakeip told to go, fakeip's "holding" (the address
            # is added; the first gratuitous ARP goes out right after it).
            local dead start ann
            dead=$(line_epoch "$(grep -m1 'peer dead' "$d/d2.hbeat.log")")
            start=$(line_epoch "$(grep -m1 'starting resource' "$d/d2.hbeat.log")")
            ann=$(line_epoch "$(grep -m1 'holding vips' "$d/d2.hbeat.log")")
            extra="d2 from the pull: peer dead $(ms_between "$pulled" "$dead") ms, fakeip told to go $(ms_between "$pulled" "$start") ms, fakeip holding (first GARP) $(ms_between "$pulled" "$ann") ms"
        else
            local master
            master=$(grep -m1 'Entering MASTER STATE' "$d/d2.keepalived.log" || true)
            extra="d2: ${master:-?}"
        fi
        printf '%-10s pull %d: outage %s ms (last ok %+.0f ms, next ok %+.0f ms from the pull); %s\n' "$tool" "$k" "$gap" \
            "$(ms_between "$pulled" "$from")" "$(ms_between "$pulled" "$to")" "$extra"
        echo "$tool $k $gap ok" >> "$tmp/results"
    fi
    stop_all
}

rc=0
if [[ " $PARTS " == *" pulls "* ]]; then
    echo "kernel $(uname -r), $(nproc) CPUs, TCG emulation: compare figures only within this run"
    echo "hbeat: $(hbeat --version); keepalived: $("$KEEPALIVED" --version 2>&1 | head -1)"
    # Who goes first alternates from round to round (hbeat, keepalived; keepalived, hbeat; ...).
    for ((k = 1; k <= PULLS; k++)); do
        if ((k % 2)); then
            turn hbeat "$k"
            turn keepalived "$k"
        else
            turn keepalived "$k"
            turn hbeat "$k"
        fi
    done
    grep -q ' - ' "$tmp/results" && rc=1
fi

# --- part steady: CPU, RSS, false failovers under stress -----------------------------------------
steady_lines=()
if [[ " $PARTS " == *" steady "* ]]; then
    d=$tmp/steady
    mkdir -p "$d"
    topo up --hb > /dev/null
    KV=1 ipvs_on_both "$d" || fail "ldir apply failed (steady)"
    start_hbeat "$d"
    start_keepalived "$d" $KVIP
    wait_until 30 hb_settled "$d" || fail "hbeat did not settle (steady): $(for n in d1 d2; do echo "--- $n:"; grep -vE 'link (late|back)' "$d/$n.hbeat.log" | tail -30; done)"
    wait_until 30 k_settled "$d" $KVIP || fail "keepalived did not settle (steady): $(tail -5 "$d/d2.keepalived.log")"
    sleep 2
    ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
    kv1=$(cat "$d/d1.kv.pid") kv2=$(cat "$d/d2.kv.pid")
    h1=$(cat "$d/d1.hbeat.pid") h2=$(cat "$d/d2.hbeat.pid")
    declare -A t0
    for p in $h1 $h2 $kv1 $kv2; do t0[$p]=$(ticks "$p"); done
    w0=$EPOCHREALTIME
    rss_max=0
    for ((s = 0; s < MEASURE_SECS; s++)); do
        for p in $h1 $h2; do
            r=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status")
            [ "$r" -le "$rss_max" ] || rss_max=$r
        done
        sleep 1
    done
    w1=$EPOCHREALTIME
    pct() { awk -v t="$(( $(ticks "$1") - t0[$1] ))" -v hz="$hz" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", t / hz / (b - a) * 100 }'; }
    c1=$(pct "$h1") c2=$(pct "$h2") k1=$(pct "$kv1") k2=$(pct "$kv2")
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$h1/status" "/proc/$h2/status" | sort -n | tail -1)
    cpu_max=$(printf '%s\n%s\n' "$c1" "$c2" | sort -n | tail -1)
    steady_lines+=("$(awk -v a="$c1" -v b="$c2" -v k1="$k1" -v k2="$k2" -v m="$cpu_max" -v s="$MEASURE_SECS" 'BEGIN {
        printf "hbeat-cpu d1=%.2f%% d2=%.2f%% of a core over %d s at keepalive 20 ms (keepalived VRRP advert_int 0.1: d1=%.2f%% d2=%.2f%%) target<=1%% %s",
            a, b, s, k1, k2, m <= 1 ? "met" : "NOT MET" }')")
    steady_lines+=("$(awk -v r="$rss_max" -v h="$hwm" 'BEGIN {
        printf "hbeat-rss max VmRSS=%.1f MB, VmHWM=%.1f MB target<=8MB %s", r / 1024, h / 1024, h / 1024 <= 8 ? "met" : "NOT MET" }')")
    printf '%s\n' "${steady_lines[@]}"

    n=$(nproc)
    echo "stress-ng --cpu $n in d1 and in d2 for ${STRESS_SECS}s, both tools running"
    before_h=$(cat "$d/d1.hbeat.log" "$d/d2.hbeat.log" | grep -cE 'peer dead|group=' || true)
    before_k=$(cat "$d/d1.keepalived.log" "$d/d2.keepalived.log" | grep -c 'Entering' || true)
    for x in d1 d2; do
        ip netns exec "$x" stress-ng --cpu "$n" --timeout "${STRESS_SECS}s" --quiet > "$d/$x.stress.log" 2>&1 &
        echo $! > "$d/$x.stress.pid"
    done
    for x in d1 d2; do wait "$(cat "$d/$x.stress.pid")" || fail "stress-ng in $x failed: $(cat "$d/$x.stress.log")"; done
    after_h=$(cat "$d/d1.hbeat.log" "$d/d2.hbeat.log" | grep -cE 'peer dead|group=' || true)
    after_k=$(cat "$d/d1.keepalived.log" "$d/d2.keepalived.log" | grep -c 'Entering' || true)
    late=$(cat "$d/d1.hbeat.log" "$d/d2.hbeat.log" | grep -c 'link late' || true)
    fh=$((after_h - before_h)) fk=$((after_k - before_k))
    [ "$fh" = 0 ] || cat "$d/d1.hbeat.log" "$d/d2.hbeat.log" | grep -E 'peer dead|group=' | tail -6 | sed 's/^/  /'
    [ "$fk" = 0 ] || cat "$d/d1.keepalived.log" "$d/d2.keepalived.log" | grep 'Entering' | tail -6 | sed 's/^/  /'
    # Both tools still as they were: hbeat's group on d1, keepalived's VIP on d1.
    hb_settled "$d" || { echo "  hbeat no longer settled after the stress"; fh=$((fh + 1)); }
    [ "$(vips d1 $KVIP)" = 1 ] && [ "$(vips d2 $KVIP)" = 0 ] || echo "  keepalived's VIP moved"
    steady_lines+=("false-failovers hbeat=$fh (link late warnings: $late) keepalived=$fk state changes, stress-ng --cpu $n on both directors for ${STRESS_SECS}s target=0 $([ "$fh" = 0 ] && echo met || echo NOT MET)")
    echo "${steady_lines[-1]}"
    stop_all
fi

# --- part resource: kill -9 of the holder's fakeip -> the group running on the peer ----------------
# (issue 13: a supervised command's death is seen at once, and the group moves to the ready peer)
# RESOURCE_RUNS times: d1 holds web and d2's fakeip is armed; d1's `fakeip hold` gets SIGKILL; the
# time from the kill to d2's fakeip "holding" (the VIP added, its first announcement going out),
# from d2's log. Checked: d2 then holds web with the VIP, d1 has no VIP. Then `hbeat takeover` on d1
# (which also clears d1's failure mark) brings web back for the next run.
if [[ " $PARTS " == *" resource "* ]]; then
    d=$tmp/resource
    mkdir -p "$d"
    topo up --hb > /dev/null
    KV=0 ipvs_on_both "$d" || fail "ldir apply failed (resource)"
    start_hbeat "$d"
    # fakeip_of NODE: the pid of the fakeip in NODE's namespace (each node has one: held or armed).
    fakeip_of() {
        local p
        for p in $(ip netns pids "$1"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = fakeip ] && echo "$p"; done
    }
    ready_for_kill() { hb_settled "$d" && [ -n "$(fakeip_of d2)" ] && [ "$(vips d2 $VIP)" = 0 ]; }
    moved() { [ "$(hb_held "$d" d2)" = web ] && [ "$(vips d2 $VIP)" = 1 ] && [ "$(vips d1 $VIP)" = 0 ]; }
    took=()
    for ((k = 1; k <= RESOURCE_RUNS; k++)); do
        wait_until 30 ready_for_kill || fail "resource run $k: not settled (d1 holds web, d2's fakeip armed): $(grep -vE 'link (late|back)' "$d/d2.hbeat.log" | tail -8)"
        pid=$(fakeip_of d1)
        [ "$(wc -w <<< "$pid")" = 1 ] || fail "resource run $k: d1 runs fakeip '$pid', expected one"
        before=$(grep -c 'holding vips' "$d/d2.hbeat.log" || true)
        killed=$EPOCHREALTIME
        kill -9 "$pid"
        more_holding() { [ "$(grep -c 'holding vips' "$d/d2.hbeat.log" || true)" -gt "$before" ]; }
        wait_until 10 more_holding \
            || fail "resource run $k: d2's fakeip never held the VIP: $(for n in d1 d2; do echo "--- $n"; grep -vE 'link (late|back)' "$d/$n.hbeat.log" | tail -12; done)"
        ms=$(ms_between "$killed" "$(line_epoch "$(grep 'holding vips' "$d/d2.hbeat.log" | tail -1)")")
        wait_until 10 moved || fail "resource run $k: after the kill d2 holds '$(hb_held "$d" d2)', the VIP on d1 $(vips d1 $VIP)x, on d2 $(vips d2 $VIP)x"
        echo "resource run $k: kill -9 of d1's fakeip hold -> d2's fakeip holding the VIP: $ms ms"
        took+=("$ms")
        hbeat --config "$d/d1.toml" takeover > /dev/null || fail "hbeat takeover on d1 failed"
    done
    stop_all
    printf '%s\n' "${took[@]}" | sort -n | awk -v n="$RESOURCE_RUNS" '{ a[NR] = $1 } END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "resource-failover-ms median=%.0f min=%d max=%d over %d runs (kill -9 of the holder'"'"'s fakeip -> the peer holding the VIP)\n", m, a[1], a[NR], n }'
fi

# --- the last line: the ratio of the medians -----------------------------------------------------
if [[ " $PARTS " == *" pulls "* ]]; then
    awk -v pulls="$PULLS" '
        $4 == "ok" { v[$1, ++n[$1]] = $3 }
        function median(t,   m, i, j, a, x) {
            m = n[t]; for (i = 1; i <= m; i++) a[i] = v[t, i]
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
            return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        END {
            for (t in n) printf "%s: median outage %.1f ms over %d valid pulls of %d\n", t, median(t), n[t], pulls
            if (!n["hbeat"] || !n["keepalived"]) {
                printf "failover ratio=none target=0.33 NOT MET (no valid pull for %s)\n", n["hbeat"] ? "keepalived" : "hbeat"; exit
            }
            r = median("hbeat") / median("keepalived")
            printf "failover ratio=%.3f target=0.33 %s\n", r, r <= 0.33 ? "met" : "NOT MET"
        }' "$tmp/results"
fi
exit $rc
