#!/usr/bin/env bash
# `monitor run` with the issue's example monitor.toml as written (plus the web/ping service it
# depends on), against nginx on 192.0.2.13 (r1) and 192.0.2.14 (r2), alerting through Debian mon's
# own mail.alert to a recording sendmail: nginx on r1 stops -> after alert_after = 3 failed rounds
# at the failure interval, an ALERT mail; nginx back -> an UPALERT mail. Then r2 drops ICMP (web/ping
# fails) and its nginx stops: web/http fails with no mail (depends). The VM's clock is set to a
# Wednesday noon (UTC) so the example's period (Mon-Fri 07:00-22:00) is open; restored at the end.
. "$LAB_ROOT/tests/lib.sh"

NGINX=$(PATH=$PATH:/usr/sbin:/sbin command -v nginx) || fail "nginx is missing: apt-get install nginx-light (tests/lab deps)"
[ -x /usr/lib/mon/alert.d/mail.alert ] || fail "mon's mail.alert is missing: apt-get install mon (tests/lab deps)"

tmp=$(mktemp -d)
clock0=$(date +%s)
restore_clock() { date -s "@$((clock0 + SECONDS))" > /dev/null; }
trap 'restore_clock; topo down >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
TZ=UTC date -s '2026-12-02 12:00:00' > /dev/null

topo up --no-http
topo exec r1 ip addr add 192.0.2.13/24 dev eth0
topo exec r2 ip addr add 192.0.2.14/24 dev eth0
mkdir -p "$tmp/www"
echo ok > "$tmp/www/index.html"
# nginx_start NODE ADDR: nginx in NODE serving $tmp/www on ADDR:80, in the foreground (killed to stop).
nginx_start() {
    local d=$tmp/nginx-$1
    mkdir -p "$d/tmp"
    cat > "$d/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
    server { listen $2:80; root $tmp/www; }
}
EOF
    ip netns exec "$1" "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
    echo $! > "$d/pid"
}
nginx_stop() { kill "$(cat "$tmp/nginx-$1/pid")"; wait "$(cat "$tmp/nginx-$1/pid")" 2>/dev/null || true; }
nginx_start r1 192.0.2.13
nginx_start r2 192.0.2.14

# A sendmail that keeps each mail (mail.alert pipes to /usr/lib/sendmail -oi -t); the VM's root is
# an overlay, so this replaces nothing on the host.
mkdir -p "$tmp/mail"
cat > /usr/lib/sendmail <<EOF
#!/bin/sh
cat > "$tmp/mail/\$(date +%s%N).mail"
EOF
chmod 755 /usr/lib/sendmail

# The issue's example, as written; the settings a test needs first (top-level keys come before the
# tables), web/ping (which web/http depends on) last.
cat > "$tmp/monitor.toml" <<EOF
socket = "$tmp/monitor.sock"
state_file = "$tmp/state.json"

# /etc/monitor/monitor.toml
[hostgroup]
web = ["192.0.2.13", "192.0.2.14"]

[[watch]]
group = "web"

[[watch.service]]
name = "http"
probe = { type = "http", port = 80, path = "/", expect = "200-299" }
interval = "10s"
failure_interval = "2s"      # probe faster while failing
alert_after = 3              # consecutive failures before the first alert (or "30s")
alert_every = "1h"           # repeat while failing
num_alerts = 10
depends = ["web/ping"]       # no alerts while a dependency fails
period = "Mon-Fri 07:00-22:00"
alert = ["mail.alert ops@example.com"]
upalert = ["mail.alert ops@example.com"]

[[watch.service]]
name = "ping"
probe = { type = "ping" }
interval = "2s"
EOF
monitor check --config "$tmp/monitor.toml" || fail "monitor check refused the example"

TZ=UTC ip netns exec d1 monitor run --config "$tmp/monitor.toml" --events json > "$tmp/events" 2> "$tmp/log" &
mon_pid=$!

# wait_for WHAT SECONDS CMD...: CMD succeeds within SECONDS.
wait_for() {
    local what=$1 n=$(($2 * 10)); shift 2
    while ! "$@" > /dev/null 2>&1; do
        n=$((n - 1))
        [ $n -gt 0 ] || { echo "--- events"; cat "$tmp/events"; echo "--- log"; cat "$tmp/log"; fail "$what"; }
        sleep 0.1
    done
    pass "$what"
}
# event FRAGMENT...: an event line holds every fragment (JSON keys come in any order).
event() {
    local l f ok
    while read -r l; do
        ok=1
        for f in "$@"; do [[ $l == *"$f"* ]] || ok=; done
        [ -z "$ok" ] || return 0
    done < "$tmp/events"
    return 1
}
mails() { ls "$tmp/mail" | wc -l; }
mails_are() { [ "$(mails)" = "$1" ]; }

wait_for "web/http is up" 60 event '"event":"change"' '"service":"web/http"' '"from":"untested"' '"to":"ok"'
wait_for "web/ping is up" 60 event '"event":"change"' '"service":"web/ping"' '"from":"untested"' '"to":"ok"'
topo exec d1 monitor status --socket "$tmp/monitor.sock"

nginx_stop r1
wait_for "web/http fails" 60 event '"event":"change"' '"service":"web/http"' '"to":"fail"' '"summary":"192.0.2.13"'
wait_for "the alert mail" 60 mails_are 1
mail=$(cat "$tmp"/mail/*.mail)
echo "$mail" | sed 's/^/    | /'
echo "$mail" | grep -q '^To: ops@example.com$' || fail "the mail's recipient"
echo "$mail" | grep -q '^Subject: ALERT web/http: 192.0.2.13 (Wed Dec 2 12:' || fail "the mail's subject"
echo "$mail" | grep -q '^Secs until next alert : 3600$' || fail "alert_every as -l"
echo "$mail" | grep -q '^192.0.2.13: ' || fail "the detail"
pass "mail.alert sent the alert"
# alert_after = 3: three failed rounds before the alert.
status=$(topo exec d1 monitor status --json --socket "$tmp/monitor.sock")
echo "$status" | grep -q '"alerts_sent": 1' || fail "one alert sent: $status"
topo exec d1 monitor list failures --socket "$tmp/monitor.sock" | grep -q '^web/http  192.0.2.13  (failing for' \
    || fail "monitor list failures"

nginx_start r1 192.0.2.13
wait_for "web/http back" 60 event '"event":"change"' '"service":"web/http"' '"from":"fail"' '"to":"ok"'
wait_for "the upalert mail" 60 mails_are 2
up=$(cat "$(ls -d "$tmp"/mail/*.mail | tail -1)")
echo "$up" | grep -q '^Subject: UPALERT web/http: ' || fail "the upalert's subject: $up"
pass "mail.alert sent the upalert"

# The dependency: r2 stops answering pings, then its nginx stops; web/http fails without a mail.
topo exec r2 nft add table inet t
topo exec r2 nft add chain inet t in '{ type filter hook input priority 0; }'
topo exec r2 nft add rule inet t in icmp type echo-request drop
wait_for "web/ping fails" 60 event '"event":"change"' '"service":"web/ping"' '"to":"fail"'
nginx_stop r2
wait_for "web/http's alert is suppressed" 60 \
    event '"event":"suppressed"' '"service":"web/http"' '"why":"web/ping (a dependency) is failing"'
expect_eq "mails after the suppressed alert" 2 "$(mails)"

kill "$mon_pid"
wait "$mon_pid" || fail "monitor exited with $?: $(cat "$tmp/log")"
grep -q '"web/http"' "$tmp/state.json" || fail "no state file"
pass "monitor stopped on TERM and saved its state"
