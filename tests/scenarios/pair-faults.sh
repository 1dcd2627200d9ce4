#!/usr/bin/env bash
# The fault matrix on the director pair of contrib/examples/pair (tests/pair.sh): each case starts
# from a fresh topology and a fresh pair (lb1 holding web), does one harm, checks what must follow,
# and prints its own line `case NAME: ok` or `case NAME: FAILED: why`. Exit 1 if any failed.
# Cases (all by default; or name them: tests/lab run tests/scenarios/pair-faults.sh term drift):
#   kill9       kill -9 of the active hbeat: its armed `fakeip hold` sees hbeat's pipe close and
#               removes the VIP; lb2 takes over at deadtime; the client is served again
#   term        graceful stop (TERM, as `systemctl stop`) of the active hbeat: lb2 takes over on
#               lb1's leave, before deadtime could have passed; the client is served again
#   loss        one of the two heartbeat links (the cable, eth1) at 30 % loss both ways for 10 s:
#               no peer declared dead, no group moved
#   partition   heartbeats cut on both links while both keep their carrier (UDP 694 dropped):
#               each side holds web (both still reach the router, the tie-breaker); healed: within
#               seconds exactly one holder, the VIP on it alone and announced (the client served)
#   cutoff      both heartbeat links cut and the active lb1 cut off from the router too (its switch
#               ports out of their bridges, carrier kept): lb1 lets the VIP go before lb2 adds it,
#               never on both (the kernel's address events on both); the client served by lb2;
#               rejoined: lb1 takes web back after failback_holdoff, still never two holders
#   cutoff2     the same with the standby lb2 cut off: lb2 takes nothing, lb1 keeps web and the
#               client; rejoined: nothing moves
#   drift       a real removed from lb1's IPVS table behind ldir's back: repaired
#   flap        a real server flapping every second for 12 s: its weight never changes faster than
#               rise/fall allow (no table churn beyond the rules); the other real never touched
#   hang        a real server that accepts connections but never answers: down at the check timeout
#   brokenconf  a broken virtual file pushed to the standby: its table and lb1 unchanged, the
#               error (file:line) in ldir's log and from `ldir check`, and a second reload still
#               refused; a broken hbeat.toml on the standby: `hbeat reload` and SIGHUP refused with
#               file:line:col, nothing moves, `hbeat status` still answers; a broken monitor.toml
#               on the standby: SIGHUP refused with file:line:col, the same services watched
. "$LAB_ROOT/tests/lib.sh"
T=$(mktemp -d /tmp/pair-faults.XXXXXX)
. "$LAB_ROOT/tests/pair.sh"
command -v failover-probe > /dev/null || fail "failover-probe is missing (tests/lab builds the workspace's binaries)"
command -v jq > /dev/null || fail "jq is missing (apt-get install jq; tests/lab deps)"
command -v nft > /dev/null || fail "nft is missing (apt-get install nftables; tests/lab deps)"

CASES=${*:-kill9 term loss partition cutoff cutoff2 drift flap hang brokenconf}

# Inside a case, a failure ends the case (a subshell), not the scenario.
fail() {
    echo "FAILED: $*" > "$T/why"
    exit 1
}
teardown() {
    topo down --kill > /dev/null 2>&1 || true
    find "$T" -mindepth 1 -maxdepth 1 ! -name results -exec rm -rf {} +
}
trap 'teardown; rm -rf "$T"' EXIT

# pid_of NODE TOOL: the pid of TOOL's daemon on NODE (the process whose net namespace is NODE's).
pid_of() {
    local p
    for p in $(ip netns pids "$1"); do
        [ "$(cat "/proc/$p/comm" 2> /dev/null)" = "$2" ] || continue
        tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null | grep -q ' run' || continue
        echo "$p"
        return 0
    done
    return 1
}
# httpd NODE SIGNAL: SIGNAL to NODE's web server (pkill would reach every namespace's).
httpd() {
    local p
    for p in $(ip netns pids "$1"); do
        tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null | grep -q '^busybox httpd' && kill "-$2" "$p"
    done
    return 0
}
probe_start() {
    ip netns exec c failover-probe "$VIP:80" --every 10 --timeout 300 --duration 120 > "$T/probe" 2>&1 &
    PROBE=$!
    wait_until 20 grep -q '^ready=' "$T/probe" || fail "the client was never served: $(cat "$T/probe")"
}
# probe_gap: the client's longest gap in ms, from the stopped probe's report.
probe_gap() { sed -n 's/^longest_gap_ms=\([0-9.]*\).*/\1/p' "$T/probe"; }
probe_stop() {
    kill -TERM "$PROBE"
    wait "$PROBE" || fail "failover-probe exited with $?: $(cat "$T/probe")"
    grep -q '^last_ok=true' "$T/probe" || fail "the client's last request failed: $(tr '\n' ' ' < "$T/probe")"
}
# group_lines NODE: how many times NODE's hbeat started or stopped a group.
group_lines() { grep -c 'INFO hbeat::daemon: group group=' "$T/$1.hbeat.log" || true; }
dead_lines() { grep -c 'peer dead' "$T/$1.hbeat.log" || true; }
table() { on "$1" ipvsadm -Sn | sort; }
weight_of() { on "$1" ipvsadm -Ln | awk -v r="$2" '$2 == r { print $4 }'; }

case_term() {
    probe_start
    local pid
    pid=$(pid_of d1 hbeat) || fail "no hbeat on d1"
    local t0=$EPOCHREALTIME
    kill -TERM "$pid"
    wait_until 15 is web held d2 || fail "lb2 did not take web: '$(held d2)'"
    local took
    took=$(ms_between "$t0" "$EPOCHREALTIME")
    wait_until 10 is 1 vips d2 || fail "the VIP is not on lb2"
    [ "$(vips d1)" = 0 ] || fail "the VIP is still on lb1"
    ! grep 'peer dead' "$T/d2.hbeat.log" | grep -qv 'it left' || fail "lb2 waited for deadtime: $(grep 'peer dead' "$T/d2.hbeat.log")"
    grep -q 'peer dead.*it left' "$T/d2.hbeat.log" || fail "lb2 did not see lb1 leave"
    sleep 0.5
    probe_stop
    echo "lb2 held web ${took} ms after the TERM (deadtime $PAIR_DEADTIME, not waited for); longest client gap $(probe_gap) ms"
}

case_kill9() {
    probe_start
    local pid
    pid=$(pid_of d1 hbeat) || fail "no hbeat on d1"
    kill -KILL "$pid"
    local t0=$EPOCHREALTIME
    # Its armed fakeip reads hbeat's pipe: hbeat's death ends the hold, the VIP goes with it.
    wait_until 10 is 0 vips d1 || fail "the VIP stayed on lb1 after its hbeat was killed"
    local gone
    gone=$(ms_between "$t0" "$EPOCHREALTIME")
    wait_until 15 is web held d2 || fail "lb2 did not take web: '$(held d2)'"
    wait_until 10 is 1 vips d2 || fail "the VIP is not on lb2"
    grep -q 'peer dead.*no frame within deadtime' "$T/d2.hbeat.log" || fail "lb2 did not see lb1 die"
    sleep 0.5
    [ "$(vips d1)" = 0 ] || fail "the VIP came back on lb1"
    probe_stop
    echo "lb1's VIP gone within ${gone} ms of the KILL (its fakeip saw hbeat's pipe close); lb2 took over at deadtime; longest client gap $(probe_gap) ms"
}

case_loss() {
    local g1 g2
    g1=$(group_lines d1) g2=$(group_lines d2)
    topo netem d1 eth1 loss 30%
    topo netem d2 eth1 loss 30%
    sleep 10
    topo exec d1 tc qdisc del dev eth1 root
    topo exec d2 tc qdisc del dev eth1 root
    [ "$(dead_lines d1)$(dead_lines d2)" = 00 ] || fail "a peer was declared dead: $(grep -h 'peer dead' "$T"/d?.hbeat.log)"
    [ "$(group_lines d1) $(group_lines d2)" = "$g1 $g2" ] || fail "a group moved: $(grep -h 'group group=' "$T"/d?.hbeat.log)"
    [ "$(held d1)" = web ] && [ "$(held d2)" = "" ] || fail "holders changed: lb1 '$(held d1)', lb2 '$(held d2)'"
    echo "no failover through 10 s at 30 % loss on the cable; lb2: $(on d2 hbeat status | grep 'via link' | sed 's/^ *//' | tr '\n' ';')"
}

case_partition() {
    local n
    vip_watch_start
    for n in d1 d2; do
        printf 'table inet cut {\n chain in { type filter hook input priority 0; udp dport 694 drop; }\n chain out { type filter hook output priority 0; udp dport 694 drop; }\n}\n' \
            | topo exec "$n" nft -f -
    done
    wait_until 15 is web held d2 || fail "lb2 never took web while cut off"
    [ "$(held d1)" = web ] || fail "lb1 let web go while cut off (no tie-breaker is configured)"
    local t0=$EPOCHREALTIME
    for n in d1 d2; do topo exec "$n" nft delete table inet cut; done
    wait_until 20 one_holder || fail "not exactly one holder after the heal: lb1 '$(held d1)', lb2 '$(held d2)'"
    local took holder
    took=$(ms_between "$t0" "$EPOCHREALTIME")
    sleep 2
    one_holder || fail "two holders again 2 s after the heal: lb1 '$(held d1)', lb2 '$(held d2)'"
    if [ "$(held d1)" = web ]; then holder=d1; else holder=d2; fi
    [ "$(vips "$holder")" = 1 ] || fail "the VIP is not on the holder ${NAME[$holder]}"
    grep -q 'announcing it\|announcing again' "$T/$holder.hbeat.log" || fail "${NAME[$holder]} did not announce the VIP again"
    grep -q 'releasing web' "$T/$holder.hbeat.log" && fail "the keeper ${NAME[$holder]} let web go too after the heal: $(grep 'releasing web' "$T/$holder.hbeat.log")"
    [ -n "$(fetch c "http://$VIP/")" ] || fail "the client is not served after the heal"
    # Both held the VIP meanwhile (both reach the router): the watch the cutoff cases rely on
    # must see that.
    vip_watch_stop
    local both
    both=$(vip_overlap)
    [ -n "$both" ] || fail "the address watch did not see the VIP on both: $(vip_events | tr '\n' ';')"
    echo "both held web while cut off (the VIP on both from $both); ${took} ms after the heal ${NAME[$holder]} alone holds it, re-announced, the client served"
}
one_holder() {
    local a b
    a=$(held d1) b=$(held d2)
    { [ "$a" = web ] && [ "$b" = "" ] && [ "$(vips d2)" = 0 ]; } || { [ "$a" = "" ] && [ "$b" = web ] && [ "$(vips d1)" = 0 ]; }
}

unready_of() { status "$1" | jq -r '.groups[] | select(.name == "web") | .unready // ""'; }
peer_up() { status "$1" | jq -r '.peers[0].up'; }
ping_of() { status "$1" | jq -r '.ping | if . then "\(.[0])/\(.[1])" else "none" end'; }
no_overlap() {
    local both
    both=$(vip_overlap)
    [ -z "$both" ] || fail "the VIP was on both directors: $both; events: $(vip_events | tr '\n' ';')"
}
case_cutoff() {
    probe_start
    vip_watch_start
    local t0=$EPOCHREALTIME
    isolate d1
    wait_until 15 is web held d2 || fail "lb2 did not take web: '$(held d2)'"
    wait_until 10 is "" held d1 || fail "lb1, cut off, still holds '$(held d1)'"
    local why
    why=$(unready_of d1)
    [ "$why" = "cut off: no peer heard, no ping target reached" ] || fail "lb1's reason: '$why'"
    wait_until 10 is 1 vips d2 || fail "the VIP is not on lb2"
    [ "$(vips d1)" = 0 ] || fail "the VIP is still on lb1"
    sleep 1
    local gone added
    gone=$(vip_first d1 -) added=$(vip_first d2 +)
    rejoin d1
    wait_until 30 settled || fail "after the rejoin lb1 did not take web back alone: lb1 '$(held d1)', lb2 '$(held d2)'"
    vip_watch_stop
    no_overlap
    probe_stop
    echo "lb1 ($why) removed the VIP $(ms_between "$t0" "$gone") ms after the cut, lb2 added it $(ms_between "$t0" "$added") ms after; never on both; rejoined: lb1 took web back after the holdoff, one holder throughout; longest client gap $(probe_gap) ms"
}
case_cutoff2() {
    probe_start
    vip_watch_start
    local g2
    g2=$(group_lines d2)
    isolate d2
    wait_until 15 is false peer_up d2 || fail "lb2 still sees lb1 up"
    wait_until 10 is 0/1 ping_of d2 || fail "lb2 still reaches the router: $(ping_of d2)"
    sleep 3
    [ "$(held d1)" = web ] && [ "$(held d2)" = "" ] || fail "holders changed: lb1 '$(held d1)', lb2 '$(held d2)'"
    [ "$(group_lines d2)" = "$g2" ] || fail "lb2 started something: $(grep 'group group=' "$T/d2.hbeat.log" | tail -3)"
    local why
    why=$(unready_of d2)
    [ "$why" = "cut off: no peer heard, no ping target reached" ] || fail "lb2's reason: '$why'"
    rejoin d2
    wait_until 15 is lb1 holder_seen_by d2 || fail "lb2 does not see lb1 hold web after the rejoin"
    sleep 2
    [ "$(held d1)" = web ] && [ "$(held d2)" = "" ] && [ "$(group_lines d2)" = "$g2" ] \
        || fail "something moved after the rejoin: lb1 '$(held d1)', lb2 '$(held d2)'"
    vip_watch_stop
    no_overlap
    [ -z "$(vip_events)" ] || fail "the VIP moved: $(vip_events | tr '\n' ';')"
    probe_stop
    echo "lb2 (${why}) took nothing for 3 s past its deadtime; lb1 kept web and served the client (longest gap $(probe_gap) ms); rejoined: nothing moved"
}

case_drift() {
    local before
    before=$(table d1)
    on d1 ipvsadm -d -t "$VIP:80" -r 192.0.2.12:80
    [ "$(table d1)" != "$before" ] || fail "ipvsadm -d changed nothing"
    local t0=$EPOCHREALTIME
    wait_until 25 is "$before" table d1 || fail "not repaired: $(table d1)"
    grep -q 'repairing drift' "$T/d1.ldir.log" || fail "ldir did not log the repair"
    echo "repaired $(ms_between "$t0" "$EPOCHREALTIME") ms after the change (reconcile_interval 10s): $(grep -m1 'repairing drift' "$T/d1.ldir.log" | sed 's/.*change=//')"
}

# flap: r2's web server refuses connections (nft: TCP reset) and serves, in turns, for 20 s
# (refusing 1 s, serving 1.5 s: the phase drifts against the 2 s checks, so some checks fail
# and some pass). With rise 2
# and fall 2, r2's state may change only after two equal results in a row: two changes of its
# state are at least two check intervals apart (3.5 s allowing for jitter); r1 is never touched.
# r2_last: lb1's last check result for r2:80 (up: true|false, and its reason).
r2_last() {
    on d1 ldir status --json | jq -r '.virtuals[] | select(.name == "web") | .reals[]
        | select(.address | startswith("192.0.2.12")) | "\(.last.up) \(.last.reason)"'
}
case_flap() {
    local n0 r1
    n0=$(grep -c 'real=192.0.2.12:80' "$T/d1.ldir.log" || true)
    r1=$(grep -c 'real=192.0.2.11:80' "$T/d1.ldir.log" || true)
    # 20 s of flapping, longer (up to 45 s) until a sample has seen a failed check: a sample is
    # r2's last result at the end of a 1 s refusal, which holds a failure only if a check (every
    # 2 s) fell inside it; five samples all missing happened once (2026-12-03).
    local start=$SECONDS end=$((SECONDS + 20)) hard=$((SECONDS + 45)) k=0
    : > "$T/lasts"
    while [ $SECONDS -lt $end ] || { ! grep -q '^false' "$T/lasts" && [ $SECONDS -lt $hard ]; }; do
        printf 'table inet flap {\n chain in { type filter hook input priority 0; tcp dport 80 reject with tcp reset; }\n}\n' \
            | topo exec r2 nft -f -
        sleep 1
        r2_last >> "$T/lasts"
        topo exec r2 nft delete table inet flap
        sleep 1.5
        k=$((k + 1))
    done
    # Not vacuous: checks did see r2 refuse.
    grep -q '^false' "$T/lasts" || fail "no check of r2 failed during the flap (its last results: $(tr '\n' ' ' < "$T/lasts"))"
    grep 'real=192.0.2.12:80' "$T/d1.ldir.log" | tail -n +$((n0 + 1)) > "$T/flaps"
    local changes gaps
    changes=$(wc -l < "$T/flaps")
    gaps=$(while read -r l; do line_epoch "$l"; done < "$T/flaps" | awk 'NR > 1 { printf "%s%.1f", sep, $1 - p; sep = " " } { p = $1 }')
    awk -v g="$gaps" 'BEGIN { n = split(g, a, " "); for (i = 1; i <= n; i++) if (a[i] < 3.5) exit 1 }' \
        || fail "r2 changed state faster than rise/fall allow (gaps $gaps s): $(cat "$T/flaps")"
    [ "$(grep -c 'real=192.0.2.11:80' "$T/d1.ldir.log" || true)" = "$r1" ] || fail "r1 was touched: $(grep 'real=192.0.2.11:80' "$T/d1.ldir.log" | tail -3)"
    echo "r2 flapped $k times in $((SECONDS - start)) s; failed checks seen $(grep -c '^false' "$T/lasts") of $(wc -l < "$T/lasts") samples; ldir changed its state $changes times, at least 3.5 s apart (gaps: ${gaps:-none})"
}

# hang: r1 stops answering (its web server frozen: connections are accepted by the kernel, nothing
# is answered): down after fall (2) checks that each time out at 1 s; weight 0 on both directors.
case_hang() {
    httpd r1 STOP
    local t0=$EPOCHREALTIME
    wait_until 20 is 0 weight_of d1 192.0.2.11:80 || fail "r1 not quiesced on lb1: $(on d1 ipvsadm -Ln)"
    wait_until 10 is 0 weight_of d2 192.0.2.11:80 || fail "r1 not quiesced on lb2"
    local took
    took=$(ms_between "$t0" "$EPOCHREALTIME")
    grep 'real down' "$T/d1.ldir.log" | grep -q 'real=192.0.2.11:80' || fail "no 'real down' for r1"
    local why
    why=$(grep 'real down' "$T/d1.ldir.log" | grep 'real=192.0.2.11:80' | tail -1 | sed 's/.*reason=//')
    httpd r1 CONT
    wait_until 20 is 10 weight_of d1 192.0.2.11:80 || fail "r1 not back on lb1"
    echo "r1 quiesced on both ${took} ms after it hung (reason: $why); back at weight 10 once it answered"
}

count_refusals() { grep -c 'reload refused' "$T/d2.ldir.log" || true; }
case_brokenconf() {
    local t1 t2
    t1=$(table d1) t2=$(table d2)
    printf '\n[[real]]\naddress = "192.0.2.300:80"\n' >> "$T/d2/etc/ldir/web.toml"
    local pid
    pid=$(pid_of d2 ldir) || fail "no ldir on d2"
    kill -HUP "$pid"
    wait_until 15 grep -q 'web.toml:[0-9]*' "$T/d2.ldir.log" || fail "no file:line error in lb2's log: $(tail -5 "$T/d2.ldir.log")"
    sleep 2
    # Asked again, the file still broken: refused again (never "nothing changed").
    local refused
    refused=$(count_refusals)
    kill -HUP "$pid"
    wait_until 15 is $((refused + 1)) count_refusals || fail "a second reload of the broken file was not refused: $(grep 'reload' "$T/d2.ldir.log" | tail -3)"
    [ "$(table d2)" = "$t2" ] || fail "lb2's table changed: $(table d2)"
    [ "$(table d1)" = "$t1" ] || fail "lb1's table changed"
    [ "$(held d1)" = web ] || fail "lb1 lost web"
    local out rc=0
    out=$(on d2 ldir check 2>&1) || rc=$?
    [ "$rc" = 2 ] || fail "ldir check exit $rc, wanted 2: $out"
    grep -q 'web.toml:[0-9]*:[0-9]*: real.address\|web.toml:[0-9]*:[0-9]*:.*address' <<< "$out" || fail "ldir check does not name file:line:col and the field: $out"
    # The same for hbeat: a broken hbeat.toml on the standby. `hbeat reload` (the client reads the
    # file first) names file:line:col; SIGHUP to the daemon: refused, logged with file:line, the
    # daemon runs on as it was (`hbeat status` still reaches it: the file's node names its socket).
    local pair hcopy=$T/hbeat.toml.good
    pair=$(pair_of d2)
    cp "$T/d2/etc/hbeat/hbeat.toml" "$hcopy"
    printf '\n[[peer]]\nname = 7\n' >> "$T/d2/etc/hbeat/hbeat.toml"
    local hout hrc=0
    hout=$(on d2 hbeat reload 2>&1) || hrc=$?
    [ "$hrc" != 0 ] || fail "hbeat reload accepted a broken file: $hout"
    grep -q 'hbeat.toml:[0-9]*:[0-9]*' <<< "$hout" || fail "hbeat reload does not name file:line:col: $hout"
    pid=$(pid_of d2 hbeat) || fail "no hbeat on d2"
    kill -HUP "$pid"
    wait_until 15 grep -q 'hbeat.toml:[0-9]*:[0-9]*' "$T/d2.hbeat.log" || fail "lb2's hbeat did not log the broken file: $(tail -3 "$T/d2.hbeat.log")"
    kill -0 "$pid" || fail "lb2's hbeat died on the broken file"
    [ "$(held d1)" = web ] && [ "$(held d2)" = "" ] && [ "$(pair_of d2)" = "$pair" ] \
        || fail "something moved after the refused reload (or hbeat status cannot reach lb2 with its file broken): lb1 holds '$(held d1)', lb2 '$(held d2)', the pair $(pair_of d2) (was $pair)"
    cp "$hcopy" "$T/d2/etc/hbeat/hbeat.toml"
    # And monitor: a broken monitor.toml on the standby, SIGHUP: refused with file:line, the old
    # configuration keeps running (status answers with the same services), `monitor check` exit 2.
    local mfile=$T/d2/etc/monitor/monitor.toml mbefore mout mrc=0
    mbefore=$(on d2 monitor status)
    printf '\n[[watch]]\ngroup = "reals"\n\n[[watch.service]]\nname = "smtp"\nprobe = { type = "smtp" }\ninterval = "often"\n' >> "$mfile"
    pid=$(pid_of d2 monitor) || fail "no monitor on d2"
    kill -HUP "$pid"
    wait_until 15 grep -q 'nothing changed.*monitor.toml:[0-9]*:[0-9]*' "$T/d2.monitor.log" || fail "lb2's monitor did not log the broken file: $(tail -3 "$T/d2.monitor.log")"
    kill -0 "$pid" || fail "lb2's monitor died on the broken file"
    [ "$(on d2 monitor status)" = "$mbefore" ] || fail "lb2's monitor status changed: $(on d2 monitor status)"
    mout=$(on d2 monitor check 2>&1) || mrc=$?
    [ "$mrc" = 2 ] || fail "monitor check exit $mrc, wanted 2: $mout"
    grep -q 'monitor.toml:[0-9]*:[0-9]*:.*interval' <<< "$mout" || fail "monitor check does not name file:line:col and the field: $mout"
    echo "lb2's table unchanged; ldir check: $(head -1 <<< "$out"); hbeat reload refused (exit $hrc): $(head -1 <<< "$hout"); SIGHUP logged: $(grep -m1 'hbeat.toml:[0-9]*:[0-9]*' "$T/d2.hbeat.log" | sed 's/.*Z *//'); monitor check: $(head -1 <<< "$mout"), its SIGHUP refused, status unchanged"
}

: > "$T/results"
failed=0
for c in $CASES; do
    declare -F "case_$c" > /dev/null || { echo "case $c: FAILED: no such case"; failed=$((failed + 1)); continue; }
    rm -f "$T/why"
    rc=0
    (
        pair_setup
        pair_start
        "case_$c" > "$T/what"
    ) > "$T/case.log" 2>&1 || rc=$?
    if [ $rc = 0 ]; then
        line="case $c: ok: $(cat "$T/what")"
    else
        failed=$((failed + 1))
        line="case $c: $(cat "$T/why" 2> /dev/null || echo "FAILED (exit $rc)")"
        sed 's/^/    | /' "$T/case.log" | tail -20
        pair_logs | sed 's/^/    | /'
    fi
    echo "$line"
    echo "$line" >> "$T/results"
    teardown
done
# The summary last: `tests/lab test` shows a failed scenario's last lines.
echo "--- summary"
cat "$T/results"
[ $failed = 0 ] || { echo "$failed case(s) failed"; exit 1; }
echo "all cases passed"
