#!/usr/bin/env bash
# ldir on a real kernel: the issue's example as written (check and apply), then the daemon on director d1
# with real servers r1 and r2 (busybox httpd, LVS-DR) and d2 as the sorry server: checks drive weights,
# clients reach only healthy servers, the fallback serves while both are down, a reload that adds one real
# is one change, a broken file changes nothing, drift made by hand is repaired, a service made by hand
# survives start, reload and stop, Prometheus metrics show health and weights, quiescent = false removes a
# down real instead of weighting it 0, and a clean stop removes what ldir owns.
. "$LAB_ROOT/tests/lib.sh"

T=$(mktemp -d /tmp/ldir-lab.XXXXXX)
in_d1() { topo exec d1 "$@"; }
table() { in_d1 ipvsadm -Sn | sort; }

# wait_for WHAT SECONDS CMD...: CMD succeeds within SECONDS (polled every 0.2 s), else fail.
wait_for() {
    local what=$1 secs=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { echo "--- ldir log:"; tail -30 "$T/ldir.log" 2>/dev/null; echo "--- table:"; table; fail "$what: not within ${secs}s"; }
        sleep 0.2
    done
    pass "$what"
}
has_line() { table | grep -qx -- "$1"; }
no_line() { ! table | grep -q -- "$1"; }

echo "== the issue's example as written: ldir check, ldir apply"
mkdir -p "$T/example"
# The example as the issue writes it, shipped as contrib/examples/standalone/ldir/web.toml.
cp "$LAB_ROOT/contrib/examples/standalone/ldir/web.toml" "$T/example/web.toml"
printf '[global]\nstate_dir = "%s/example-state"\n' "$T" > "$T/example/ldir.toml"
topo up --no-http
out=$(ldir --config-dir "$T/example" check) || fail "ldir check of the example: $out"
pass "ldir check: $out"
in_d1 ldir --config-dir "$T/example" apply >/dev/null || fail "ldir apply of the example"
want="-A -t 192.0.2.100:80 -s wrr -p 300
-a -t 192.0.2.100:80 -r 192.0.2.13:80 -g -w 10"
for i in $(seq 20 29); do want+=$'\n'"-a -t 192.0.2.100:80 -r 192.0.2.$i:80 -g -w 5"; done
expect_eq "ldir apply programs the example" "$(sort <<<"$want")" "$(table)"
topo down

echo "== the daemon on d1: r1 and r2 checked over HTTP, d2 the sorry server"
topo up
S=/run/lvs-lab-topo/default
echo ok > "$S/www-r1/health"
echo ok > "$S/www-r2/health"
# LVS-DR: the VIP on d1's LAN side; d2 serves "d2" as the sorry server, with the VIP on lo like a real.
in_d1 ip addr add 192.0.2.100/32 dev eth0
topo exec d2 sh -c 'ip addr add 192.0.2.100/32 dev lo
    for c in all eth0; do echo 1 > /proc/sys/net/ipv4/conf/$c/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce; done
    mkdir -p /tmp/d2www && echo d2 > /tmp/d2www/index.html && echo sorry > /tmp/d2www/health
    busybox httpd -p 80 -h /tmp/d2www'
mkdir -p "$T/conf"
cat > "$T/conf/ldir.toml" <<EOF
[global]
state_dir = "$T/state"
reconcile_interval = "2s"
expire_nodest_conn = true
EOF
cat > "$T/conf/web.toml" <<'EOF'
[virtual]
address = "192.0.2.100:80"
scheduler = "rr"
fallback = "192.0.2.2:80"

[check]
type = "http"
path = "/health"
interval = "1s"
timeout = "1s"
rise = 1
fall = 2

[[real]]
address = "192.0.2.11:80"
weight = 10

[[real]]
address = "192.0.2.12:80"
weight = 10
EOF
cp "$T/conf/web.toml" "$T/web.toml.good"
# A service made by hand before ldir starts: it must survive start, reload and stop.
in_d1 ipvsadm -A -u 192.0.2.100:53 -s rr
in_d1 ipvsadm -a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 3
hand="-a -u 192.0.2.100:53 -r 192.0.2.11:53 -g -w 3"

# `ip netns exec` execs ldir in place: $! is ldir's pid, for the signals below.
ip netns exec d1 ldir --config-dir "$T/conf" run --metrics 127.0.0.1:9101 >"$T/ldir.log" 2>&1 &
LDIR=$!
trap 'kill $LDIR 2>/dev/null || true; topo down >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
wait_for "both reals up at weight 10" 20 has_line "-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 10"
has_line "-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 10" || fail "r1 not at weight 10: $(table)"
has_line "$hand" || fail "the hand-made service did not survive the start"
pass "the hand-made service survived the start"
v=$(in_d1 cat /proc/sys/net/ipv4/vs/expire_nodest_conn) || true
[ "$v" = 1 ] || fail "expire_nodest_conn in d1 is '$v': $(grep sysctl "$T/ldir.log")"
pass "expire_nodest_conn = 1"

pages() { for _ in 1 2 3 4; do fetch c http://192.0.2.100/; done | sort -u | tr '
' ' '; }
expect_eq "clients reach both real servers" "r1 r2 " "$(pages)"

status=$(ldir --config-dir "$T/conf" status --json) || fail "ldir status: $status"
case "$status" in *'"state": "up"'*'"reason": "200 OK"'*) pass "ldir status --json shows states and reasons" ;; *) fail "status: $status" ;; esac

# The kernel folds its per-CPU counters into what a dump returns every 2 s (its rate estimator):
# the connections just made may take that long to show.
for try in 1 2 3 4 5 6; do
    metrics=$(fetch d1 http://127.0.0.1:9101/metrics) || fail "GET /metrics on d1 failed: $(tail -3 "$T/ldir.log")"
    ! echo "$metrics" | grep -q -- '^ldir_real_connections_total{[^}]*192.0.2.11:80[^}]*} [1-9]' || break
    sleep 1
done
for want in 'ldir_real_up{[^}]*192.0.2.11:80[^}]*} 1' 'ldir_real_weight{[^}]*192.0.2.12:80[^}]*} 10' \
    'ldir_check_latency_seconds{[^}]*192.0.2.11:80[^}]*} [0-9]' 'ldir_real_connections_total{[^}]*192.0.2.11:80[^}]*} [1-9]'; do
    echo "$metrics" | grep -q -- "^$want" || fail "no metrics line like '$want' in: $(echo "$metrics" | grep -v '^#' | grep -v '_bytes_total' | head -12)"
done
pass "metrics: health, weight, check latency and the kernel's connection counters per real"

echo "== r1's server stops: weight 0 within fall x interval; clients reach only r2"
r1pid=$(ip netns pids r1)
kill $r1pid
wait_for "r1 at weight 0" 15 has_line "-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 0"
expect_eq "clients reach only r2" "r2 " "$(pages)"
grep -q 'real down.*192.0.2.11:80' "$T/ldir.log" || fail "no 'real down' line in the log"
pass "the log says why: $(grep -o 'real down.*192.0.2.11:80.*' "$T/ldir.log" | head -1)"

echo "== r1 back: weight 10"
topo exec r1 busybox httpd -p 80 -h "$S/www-r1"
wait_for "r1 back at weight 10" 15 has_line "-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 10"

echo "== both down: the fallback serves; one back: the fallback goes"
rm "$S/www-r1/health" "$S/www-r2/health"
wait_for "the fallback d2 at weight 1" 15 has_line "-a -t 192.0.2.100:80 -r 192.0.2.2:80 -g -w 1"
expect_eq "clients reach the sorry server" "d2" "$(fetch c http://192.0.2.100/)"
echo ok > "$S/www-r2/health"
wait_for "the fallback removed once r2 is up" 15 no_line "192.0.2.2:80"
echo ok > "$S/www-r1/health"
wait_for "r1 up again" 15 has_line "-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 10"

echo "== SIGHUP adding one real: one change"
before=$(table)
printf '\n[[real]]\naddress = "192.0.2.13:80"\nweight = 5\n' >> "$T/conf/web.toml"
kill -HUP $LDIR
wait_for "the new real in the kernel (at weight 0 until checked)" 15 has_line "-a -t 192.0.2.100:80 -r 192.0.2.13:80 -g -w 0"
echo "$before" > "$T/before"; table > "$T/after"
diff=$(diff "$T/before" "$T/after" | grep '^[<>]' || true)
expect_eq "the table's only change" "> -a -t 192.0.2.100:80 -r 192.0.2.13:80 -g -w 0" "$diff"
grep -q 'reloaded operations=1' "$T/ldir.log" || fail "the reload was not one operation: $(grep reloaded "$T/ldir.log")"
pass "the log says: reloaded operations=1"
has_line "$hand" || fail "the hand-made service did not survive the reload"

echo "== SIGHUP with a broken file: nothing changes, every error logged"
cp "$T/conf/web.toml" "$T/web.toml.two"
before=$(in_d1 ipvsadm -Sn)
printf '[virtual]\naddress = "192.0.2.100:8080"\nschedular = "rr"\n[[real]]\naddress = "192.0.2.11"\nweight = -1\n' > "$T/conf/broken.toml"
kill -HUP $LDIR
wait_for "the reload refused in the log" 15 grep -q 'reload refused' "$T/ldir.log"
grep -q "broken.toml:3:1: virtual.schedular: unknown field" "$T/ldir.log" || fail "the error is not in the log: $(grep broken "$T/ldir.log")"
pass "the error names file, line and field"
sleep 3
expect_eq "ipvsadm -Sn byte-identical" "$before" "$(in_d1 ipvsadm -Sn)"
rm "$T/conf/broken.toml"

echo "== drift by hand is repaired within one interval"
in_d1 ipvsadm -d -t 192.0.2.100:80 -r 192.0.2.12:80
wait_for "r2 back after ipvsadm -d" 10 has_line "-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 10"
grep -q 'repairing drift' "$T/ldir.log" || fail "no 'repairing drift' line"
pass "logged: $(grep -o 'repairing drift.*' "$T/ldir.log" | head -1 | cut -c1-80)"

echo "== drain and undrain"
ldir --config-dir "$T/conf" drain 192.0.2.11 >/dev/null || fail "ldir drain"
wait_for "r1 drained to weight 0" 5 has_line "-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 0"
ldir --config-dir "$T/conf" undrain 192.0.2.11 >/dev/null || fail "ldir undrain"
wait_for "r1 undrained" 5 has_line "-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 10"

echo "== quiescent = false: a down real leaves the table, and comes back when up"
sed -i 's/^fallback = /quiescent = false\nfallback = /' "$T/conf/web.toml"
grep -q '^quiescent = false' "$T/conf/web.toml" || fail "the edit did not take: $(cat "$T/conf/web.toml")"
kill -HUP $LDIR
# 192.0.2.13 has no server: down, so out of the table now.
wait_for "the down real 192.0.2.13 removed at the reload" 15 no_line "192.0.2.100:80 -r 192.0.2.13:80"
kill $(ip netns pids r1)
wait_for "r1 removed within fall x interval" 15 no_line "192.0.2.100:80 -r 192.0.2.11:80"
has_line "-a -t 192.0.2.100:80 -r 192.0.2.12:80 -g -w 10" || fail "r2 touched: $(table)"
topo exec r1 busybox httpd -p 80 -h "$S/www-r1"
wait_for "r1 back at weight 10" 15 has_line "-a -t 192.0.2.100:80 -r 192.0.2.11:80 -g -w 10"

echo "== stop: ldir's service removed, the hand-made one stays"
kill -TERM $LDIR
wait $LDIR || fail "ldir exited with $?"
expect_eq "the table after a clean stop" "-A -u 192.0.2.100:53 -s rr
$hand" "$(in_d1 ipvsadm -Sn)"
