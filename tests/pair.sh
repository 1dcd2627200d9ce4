# The director pair of contrib/examples/pair in the lab (sourced by tests/demo.sh and the pair
# scenarios, after tests/lib.sh). Each director is a node of tests/topo.sh (d1 = lb1, d2 = lb2)
# with a mount namespace of its own, so the example's files are used as they are, at the paths they
# name: /etc/hbeat, /etc/ldir and /etc/monitor are bind mounts of the node's copies, /run/* and
# /var/lib/* of the three tools are the node's own tmpfs. `on NODE CMD...` runs CMD on a node as an
# operator would (its network and its files); `pair_start` starts ldir, monitor and hbeat on both,
# as systemd would, logging to $T/NODE.TOOL.log.
#
#   pair_setup          topology (with the heartbeat cable), the echo service on :9000 of the
#                       real servers (for the long-lived connection), the nodes' files
#   pair_start          the daemons, waiting until lb1 holds web and lb2 sees it
#   on NODE CMD...      run on a node           pair_logs       the daemons' logs (on failure)
#   pull NODE / plug NODE   both cables of NODE out (its switch ports down) / back in
PAIR_EX=$LAB_ROOT/contrib/examples/pair
VIP=192.0.2.100 ROUTER=192.0.2.254
PAIR_WARNTIME=${PAIR_WARNTIME:-300ms} PAIR_DEADTIME=${PAIR_DEADTIME:-1s}
declare -A NAME=([d1]=lb1 [d2]=lb2) HOLDER=()
: "${T:?set T (a scratch directory) before sourcing tests/pair.sh}"

pair_setup() {
    topo up --hb > /dev/null
    # The LAN's router, the example's ping target: the client's namespace answers for it.
    topo exec c ip addr add "$ROUTER/24" dev eth0
    # A long-lived TCP service on the real servers: each line sent comes back (socat + cat).
    local r
    for r in r1 r2; do
        topo exec "$r" socat TCP-LISTEN:9000,fork,reuseaddr EXEC:cat > /dev/null 2>&1 &
    done
    mkdir -p /etc/hbeat /etc/ldir /etc/monitor /run/hbeat /run/ldir /run/monitor \
        /var/lib/hbeat /var/lib/ldir /var/lib/monitor
    local n
    for n in d1 d2; do node_setup "$n"; done
}

# node_setup NODE: NODE's copy of the example (authkey made 0600 as the README says) and its
# mount namespace, kept by a `sleep` whose pid is HOLDER[NODE].
node_setup() {
    local n=$1 name=${NAME[$1]} root=$T/$1
    mkdir -p "$root/etc/hbeat/resource.d" "$root/etc/ldir" "$root/etc/monitor"
    # The one change: the emulated VM stops a vCPU for 100-300 ms now and then, and with the
    # example's 100 ms deadtime the peer of a stalled daemon is seen dead (then the group bounces);
    # tests/bench/failover.sh measures the example's timings, one daemon per node.
    sed -e "s/^warntime = .*/warntime = \"$PAIR_WARNTIME\"/" -e "s/^deadtime = .*/deadtime = \"$PAIR_DEADTIME\"/" \
        "$PAIR_EX/$name/hbeat.toml" > "$root/etc/hbeat/hbeat.toml"
    install -m 600 "$PAIR_EX/authkey" "$root/etc/hbeat/authkey"
    install -m 755 "$PAIR_EX/resource.d/ldir-sync" "$root/etc/hbeat/resource.d/"
    cp "$PAIR_EX"/ldir/*.toml "$root/etc/ldir/"
    # A lab-only virtual for the long-lived connection: the real servers' echo service on 9000.
    printf '[virtual]\naddress = "%s:9000"\nscheduler = "rr"\nforwarding = "gate"\n\n[check]\ntype = "tcp"\n\n[[real]]\naddress = "192.0.2.11:9000"\n\n[[real]]\naddress = "192.0.2.12:9000"\n' \
        "$VIP" > "$root/etc/ldir/echo.toml"
    cp "$PAIR_EX/monitor.toml" "$root/etc/monitor/"
    local mounts="mount --bind $root/etc/hbeat /etc/hbeat && mount --bind $root/etc/ldir /etc/ldir"
    mounts+=" && mount --bind $root/etc/monitor /etc/monitor"
    local d
    for d in /run/hbeat /run/ldir /run/monitor /var/lib/hbeat /var/lib/ldir /var/lib/monitor; do
        mounts+=" && mount -t tmpfs -o mode=755 none $d"
    done
    ip netns exec "$n" unshare --mount --propagation private \
        sh -c "$mounts && touch $root/ready && exec sleep 100000" &
    HOLDER[$n]=$!
    local k
    for k in $(seq 100); do [ -e "$root/ready" ] && return 0; sleep 0.1; done
    fail "$n's mount namespace was not ready within 10 s"
}

on() { local n=$1; shift; nsenter -t "${HOLDER[$n]}" -m -n -r -w "$@"; }

pair_start() {
    local n
    for n in d1 d2; do
        on "$n" hbeat check > "$T/$n.check" 2>&1 || fail "hbeat check on ${NAME[$n]}: $(cat "$T/$n.check")"
        on "$n" ldir check > "$T/$n.check" 2>&1 || fail "ldir check on ${NAME[$n]}: $(cat "$T/$n.check")"
        on "$n" monitor check > "$T/$n.check" 2>&1 || fail "monitor check on ${NAME[$n]}: $(cat "$T/$n.check")"
    done
    for n in d1 d2; do
        on "$n" ldir run > "$T/$n.ldir.log" 2>&1 &
        on "$n" monitor run > "$T/$n.monitor.log" 2>&1 &
    done
    # ldir programs the table before hbeat moves anything.
    for n in d1 d2; do wait_until 30 table_ready "$n" || fail "ldir on ${NAME[$n]} did not program the table: $(tail -5 "$T/$n.ldir.log")"; done
    for n in d1 d2; do
        on "$n" hbeat run > "$T/$n.hbeat.log" 2>&1 &
    done
    wait_until 30 settled || fail "the pair did not settle (lb1 holding web, lb2 seeing it): lb1 holds '$(held d1)', lb2 '$(held d2)'"
}

# wait_until SECONDS CMD...: CMD succeeds within SECONDS (polled every 0.1 s); returns 1 otherwise.
wait_until() {
    local end=$((SECONDS + $1)); shift
    until "$@" > /dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}
# is WANT CMD...: CMD prints WANT (for wait_until, which runs its command anew each time).
is() { local want=$1; shift; [ "$("$@")" = "$want" ]; }
table_ready() { [ "$(on "$1" ipvsadm -Ln | grep -c -- '-> 192.0.2.1[12]:\(80\|9000\) .*Route *[1-9]')" = 4 ]; }
status() { on "$1" hbeat status --json; }
held() { status "$1" | jq -r '.held | join(",")'; }
holder_seen_by() { status "$1" | jq -r '.groups[] | select(.name == "web") | .holder // "nobody"'; }
pair_of() { status "$1" | jq -r .pair; }
vips() { topo exec "$1" ip -4 -o addr show dev eth0 | grep -c " $VIP/24 " || true; }
settled() {
    [ "$(held d1)" = web ] && [ "$(held d2)" = "" ] && [ "$(vips d1)" = 1 ] && [ "$(vips d2)" = 0 ] \
        && [ "$(holder_seen_by d2)" = lb1 ]
}
# sync_roles NODE: the kernel's sync daemons on NODE, e.g. "master backup".
sync_roles() {
    on "$1" ipvsadm -L --daemon | awk '{ print $1 }' | sort -r | tr '\n' ' ' | sed 's/ $//'
}

pull() { printf 'link set %s down\nlink set hb-%s down\n' "$1" "$1" | ip -n sw -batch -; }
plug() { printf 'link set %s up\nlink set hb-%s up\n' "$1" "$1" | ip -n sw -batch -; }
# isolate NODE / rejoin NODE: NODE's two switch ports taken out of their bridges (a port moved to
# a dead VLAN: the node keeps its carrier but reaches nobody, neither its peer nor the router) /
# put back.
isolate() { printf 'link set %s nomaster\nlink set hb-%s nomaster\n' "$1" "$1" | ip -n sw -batch -; }
rejoin() { printf 'link set %s master lan\nlink set hb-%s master hb\n' "$1" "$1" | ip -n sw -batch -; }

# vip_watch_start / vip_watch_stop: the kernel's address events on both directors' eth0
# (`ip monitor`, timestamped) from now on; vip_overlap then prints the intervals in which the VIP
# was on both at once (nothing: never two holders), from the state at the start and the events.
vip_watch_start() {
    local n
    VIP_AT_START="$(vips d1)$(vips d2)"
    for n in d1 d2; do
        topo exec "$n" ip -ts -o monitor address dev eth0 > "$T/$n.addr" 2>&1 &
        VIP_WATCH[$n]=$!
    done
    # Each watch must be listening before the case goes on: a marker address (a /32 of no
    # subnet in use, at once removed) shows in its output. A fixed 0.3 s sleep once missed lb1's
    # removal of the VIP under load (CI, 2026-12-03): a false "on both" from a deaf watch.
    for n in d1 d2; do
        local tries=0
        until grep -q " $WATCH_MARK/32 " "$T/$n.addr"; do
            [ $((tries += 1)) -le 100 ] || fail "the address watch on $n did not start in 20 s"
            topo exec "$n" ip addr add "$WATCH_MARK/32" dev eth0
            sleep 0.1
            topo exec "$n" ip addr del "$WATCH_MARK/32" dev eth0
        done
    done
}
WATCH_MARK=198.18.255.254
vip_watch_stop() {
    sleep 0.3
    kill "${VIP_WATCH[@]}" 2> /dev/null || true
    wait "${VIP_WATCH[@]}" 2> /dev/null || true
}
declare -A VIP_WATCH=()
# vip_events: "TIME NODE +|-" for the VIP, in time order (TIME as ip -ts prints it).
vip_events() {
    local n
    for n in d1 d2; do
        tr -d '\r' < "$T/$n.addr" | awk -v n="$n" -v vip=" $VIP/" 'index($0, vip) {
            t = $1; gsub(/[][]/, "", t)
            print t, n, (index($0, "Deleted") ? "-" : "+")
        }'
    done | sort
}
vip_overlap() {
    vip_events | awk -v s="$VIP_AT_START" '
        BEGIN { on["d1"] = substr(s, 1, 1) + 0; on["d2"] = substr(s, 2, 1) + 0 }
        {
            on[$2] = ($3 == "+")
            if (on["d1"] && on["d2"] && !both) { both = 1; from = $1 }
            else if (both && !(on["d1"] && on["d2"])) { both = 0; print from " - " $1 }
        }
        END { if (both) print from " - (still)" }'
}
# vip_first NODE +|-: the time of NODE's first VIP event of that kind (epoch seconds), or "?".
vip_first() {
    local t
    t=$(vip_events | awk -v n="$1" -v k="$2" '$2 == n && $3 == k { print $1; exit }')
    [ -n "$t" ] && date -d "$t" +%s.%N 2> /dev/null || echo "?"
}

pair_logs() {
    local f
    for f in "$T"/d?.*.log; do
        [ -e "$f" ] || continue
        echo "--- $(basename "$f") (last 25 lines but link late/back):"
        grep -vE 'link (late|back)' "$f" | tail -25
    done
}

# The log line's leading RFC 3339 timestamp as epoch seconds (hbeat's and fakeip's text logs).
line_epoch() { date -d "$(awk '{ print $1; exit }' <<< "$1")" +%s.%N 2> /dev/null || echo "?"; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "?" || b == "?") print "?"; else printf "%.0f", (b - a) * 1000 }'; }

# stream_start / stream_stop: a long-lived TCP connection from the client to VIP:9000 (tests'
# stream-probe: a numbered line every 50 ms, each echo checked). stream_stop succeeds when it was
# never broken; its report is in $T/stream (`conn=0 opened=… lines=N worst_ms=W alive|broken=…`).
stream_start() {
    ip netns exec c stream-probe "$VIP:9000" --tick 50 --stall 10000 --duration 600 > "$T/stream" 2>&1 &
    STREAM_PID=$!
    wait_until 20 grep -q '^ready=' "$T/stream" || fail "the stream did not connect: $(cat "$T/stream")"
}
stream_stop() {
    kill -TERM "$STREAM_PID"
    wait "$STREAM_PID" || true
    grep -q '^conn=0 .* alive$' "$T/stream"
}
