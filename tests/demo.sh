#!/usr/bin/env bash
# The README's demo (`tests/lab demo`), run inside the lab VM: the director pair of
# contrib/examples/pair (hbeat + fakeip moving the VIP, ldir programming both IPVS tables and the
# connection sync, monitor watching), a client served through the VIP, d1's cables pulled, the
# timeline of the failover, a long-lived connection that survives it, and auto_failback when d1
# comes back. Exits non-zero when something it shows did not happen.
. "$LAB_ROOT/tests/lib.sh"
T=$(mktemp -d /tmp/demo.XXXXXX)
. "$LAB_ROOT/tests/pair.sh"
command -v failover-probe > /dev/null || fail "failover-probe is missing (tests/lab builds the workspace's binaries)"
command -v jq > /dev/null || fail "jq is missing (apt-get install jq; tests/lab deps)"

fail() {
    pair_logs
    echo "FAIL: $*" >&2
    exit 1
}
cleanup() {
    topo down --kill > /dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }
# show NODE CMD...: print the command as typed on that director, then its output, indented.
show() {
    local n=$1; shift
    printf '   %s# %s\n' "${NAME[$n]}" "$*"
    on "$n" "$@" 2>&1 | sed 's/^/     /'
}
tables() {
    local n
    for n in d1 d2; do show "$n" ipvsadm -Ln; done
}
# served: the client's page through the VIP (the real server's name).
served() { fetch c "http://$VIP/"; }

step "a real kernel with IPVS ($(uname -r)) in the lab VM; the topology"
pair_setup
say "directors lb1 (d1) and lb2 (d2): eth0 on the LAN 192.0.2.0/24, eth1 on a cable between them (198.18.0.0/24)"
say "real servers r1 192.0.2.11 and r2 192.0.2.12 (LVS-DR: the VIP on lo), client c 192.0.2.51; VIP $VIP"
say "each director uses contrib/examples/pair as it is: /etc/hbeat, /etc/ldir, /etc/monitor"

step "start ldir, monitor and hbeat on both directors (as systemd would)"
pair_start
show d1 hbeat status
say "the pair as each sees it: lb1 $(pair_of d1), lb2 $(pair_of d2)  (N normal, T took over, R recovering, D down)"

step "both IPVS tables are programmed by ldir; only the VIP moves"
tables
wait_until 20 is "master backup" sync_roles d1 || fail "lb1's sync daemons: '$(sync_roles d1)', wanted master and backup"
wait_until 20 is "backup" sync_roles d2 || fail "lb2's sync daemons: '$(sync_roles d2)', wanted backup"
show d1 ipvsadm -L --daemon
show d2 ipvsadm -L --daemon

step "the client is served through the VIP by both real servers"
declare -A seen=()
for _ in 1 2 3 4; do
    page=$(served) || fail "the client was not served through the VIP"
    say "c -> http://$VIP/ : $page"
    seen[$page]=1
done
[ "${#seen[@]}" = 2 ] || fail "the client saw only ${!seen[*]}"

step "a long-lived connection: the client streams through the VIP to a real server (tests' stream-probe: a line every 50 ms, echoed; 192.0.2.100:9000 is a lab-only virtual)"
stream_start
sleep 4
say "its entry in both connection tables (lb1 has synced it to lb2):"
show d1 ipvsadm -Lnc
show d2 ipvsadm -Lnc
on d2 ipvsadm -Lnc | grep -q 'ESTABLISHED .*:9000 ' || fail "lb2 does not have the stream's connection (sync)"

step "pull d1's cables (LAN and heartbeat: both its switch ports down), the client requesting every 10 ms"
ip netns exec c failover-probe "$VIP:80" --every 10 --timeout 300 --duration 60 > "$T/probe" 2>&1 &
probe=$!
wait_until 20 grep -q '^ready=' "$T/probe" || fail "the prober was never served: $(cat "$T/probe")"
sleep 0.5
pulled=$EPOCHREALTIME
pull d1
wait_until 10 is 1 vips d2 || fail "the VIP never came to lb2"
sleep 1
kill -TERM "$probe"
wait "$probe" || fail "failover-probe failed: $(cat "$T/probe")"
grep -q '^last_ok=true' "$T/probe" || fail "the client is not served again: $(tr '\n' ' ' < "$T/probe")"
from=$(sed -n 's/.* from=\([0-9.]*\) .*/\1/p' "$T/probe")
to=$(sed -n 's/.* to=\([0-9.]*\)$/\1/p' "$T/probe")
gap=$(sed -n 's/^longest_gap_ms=\([0-9.]*\) .*/\1/p' "$T/probe")
# Time zero: when d1 saw its carrier go (the `ip` command that pulls is slow to start here).
cut=$(line_epoch "$(grep 'iface=eth0 up=false' "$T/d1.hbeat.log" | tail -1)")
[ "$cut" != "?" ] || cut=$pulled
dead=$(line_epoch "$(grep -m1 'peer dead' "$T/d2.hbeat.log")")
start=$(line_epoch "$(grep -m1 'group=web action="\?start' "$T/d2.hbeat.log")")
hold=$(line_epoch "$(grep 'holding' "$T/d2.hbeat.log" | grep -v 'holding nothing' | tail -1)")
ann=$(line_epoch "$(grep 'announcements=' "$T/d2.hbeat.log" | grep ' ready' | tail -1)")
say "timeline, ms from the moment lb1 saw its carrier go (TCG emulation: all slower than on hardware):"
printf '   %6s  c    last answer through the VIP\n' "$(ms_between "$cut" "$from")"
printf '   %6s  lb1  eth0 has no carrier: lb1 lets web go (it cannot serve it)\n' 0
printf '   %6s  lb2  peer lb1 declared dead (deadtime %s in the lab; the example says 100ms)\n' "$(ms_between "$cut" "$dead")" "$PAIR_DEADTIME"
printf '   %6s  lb2  group web starting: the sync master role, then the armed fakeip told to go\n' "$(ms_between "$cut" "$start")"
printf '   %6s  lb2  VIP %s added, first gratuitous ARP sent\n' "$(ms_between "$cut" "$hold")" "$VIP"
printf '   %6s  c    first answer through the VIP again\n' "$(ms_between "$cut" "$to")"
printf '   %6s  lb2  announcement burst done (5 gratuitous ARPs)\n' "$(ms_between "$cut" "$ann")"
say "the client's longest gap: $gap ms; $(grep '^probes=' "$T/probe")"
wait_until 10 is web held d2 || fail "lb2 does not hold web: '$(held d2)'"
wait_until 10 is "" held d1 || fail "lb1 (no carrier on eth0) still holds '$(held d1)'"
say "lb2 holds web; lb1 let it go: the pair as lb2 sees it: $(pair_of d2), as lb1 does: $(pair_of d1)"
[ "$(vips d1)" = 0 ] || fail "the VIP is still on lb1"
wait_until 20 is "master backup" sync_roles d2 || fail "lb2's sync daemons: '$(sync_roles d2)'"
tables

step "the long-lived connection went on through lb2"
stream_stop || fail "the stream broke: $(tr '\n' ' ' < "$T/stream")"
say "$(grep '^conn=0' "$T/stream" | sed 's/.* lines=\([0-9]*\) worst_ms=\([0-9]*\).*/\1 lines echoed, no reset; its longest wait for an echo: \2 ms/')"
stream_start
sleep 4

step "plug d1 back in: lb1 returns, and with auto_failback = true takes web back after failback_holdoff (5 s)"
plug d1
wait_until 30 is web held d1 || fail "lb1 did not take web back: lb1 holds '$(held d1)', lb2 '$(held d2)'"
wait_until 10 is "" held d2 || fail "lb2 still holds '$(held d2)'"
plugged=$(line_epoch "$(grep 'iface=eth0 up=true' "$T/d1.hbeat.log" | tail -1)")
heard=$(line_epoch "$(grep 'peer up' "$T/d1.hbeat.log" | tail -1)")
released=$(line_epoch "$(grep 'group released' "$T/d2.hbeat.log" | tail -1)")
started=$(line_epoch "$(grep 'group=web action="\?start' "$T/d1.hbeat.log" | tail -1)")
acquired=$(line_epoch "$(grep 'group acquired' "$T/d1.hbeat.log" | tail -1)")
say "timeline, ms from the moment lb1 saw its carrier again:"
printf '   %6s  lb1  peer lb2 heard again (it holds web); lb1 waits failback_holdoff\n' "$(ms_between "$plugged" "$heard")"
printf '   %6s  lb2  web released, handed to lb1 (its connections were synced to lb1 meanwhile)\n' "$(ms_between "$plugged" "$released")"
printf '   %6s  lb1  group web starting\n' "$(ms_between "$plugged" "$started")"
printf '   %6s  lb1  group web held; the pair: %s\n' "$(ms_between "$plugged" "$acquired")" "$(pair_of d1)"
awk -v p="$plugged" -v s="$started" -v r="$released" 'BEGIN { exit !(s - p >= 5 && r <= s) }' \
    || fail "the failback did not wait failback_holdoff (5 s) after the carrier came back, or lb1 started before lb2 released"
wait_until 10 is 1 vips d1 || fail "the VIP is not on lb1"
[ "$(vips d2)" = 0 ] || fail "the VIP is still on lb2"
wait_until 20 is "master backup" sync_roles d1 || fail "lb1's sync daemons: '$(sync_roles d1)'"
wait_until 20 is "backup" sync_roles d2 || fail "lb2's sync daemons: '$(sync_roles d2)'"
page=$(served) || fail "the client is not served through lb1"
say "c -> http://$VIP/ : $page"
stream_stop || fail "the stream opened through lb2 broke on the failback: $(tr '\n' ' ' < "$T/stream")"
say "a stream opened through lb2 went on through lb1: $(grep '^conn=0' "$T/stream" | sed 's/.* lines=\([0-9]*\) worst_ms=\([0-9]*\).*/\1 lines, longest wait \2 ms/')"
show d1 hbeat status
show d1 monitor status

printf '\ndemo: done\n'
