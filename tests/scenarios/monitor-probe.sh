#!/usr/bin/env bash
# `monitor probe` from a director against the topology's real servers (busybox httpd on r1, r2):
# HTTP with the Host header and a body regex, TCP, ping over IPv4 and IPv6, a refusing server seen
# down with exit 1.
. "$LAB_ROOT/tests/lib.sh"

topo up
probe() { topo exec d1 monitor probe "$@"; }
first() { awk '{print $1, $2, $3}'; }

out=$(probe http 192.0.2.11 192.0.2.12 --host www.example.org --regex '^r[12]$' --timeout 5s) \
    || fail "monitor probe http: exit $?: $out"
expect_eq "http to r1 and r2, in order" "up 192.0.2.11:80 http
up 192.0.2.12:80 http" "$(first <<<"$out")"
expect_eq "tcp to r1 over IPv6" "up [2001:db8::11]:80 tcp" "$(probe tcp '[2001:db8::11]:80' | first)"
expect_eq "ping r1 and r2 over IPv4 and IPv6" "up 192.0.2.11 ping
up 2001:db8::12 ping" "$(probe ping 192.0.2.11 2001:db8::12 | first)"

# r2 refuses port 80 (a TCP reset from its own firewall): its probe is down, exit 1.
topo exec r2 nft add table inet probe
topo exec r2 nft add chain inet probe in '{ type filter hook input priority 0; }'
topo exec r2 nft add rule inet probe in tcp dport 80 reject with tcp reset
set +e
out=$(probe http://192.0.2.12/ --timeout 2s); rc=$?
set -e
expect_eq "exit status with r2 down" 1 "$rc"
expect_eq "r2's result line" "down 192.0.2.12:80 http" "$(first <<<"$out")"
case "$out" in *"connection refused"*) pass "reason: ${out#* * * * }" ;; *) fail "reason: $out" ;; esac
