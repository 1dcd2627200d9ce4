#!/usr/bin/env bash
# The lab itself: a real kernel with IPVS, the topology with working real servers, netem, and a binary of
# this workspace built on the host running inside the VM.
. "$LAB_ROOT/tests/lib.sh"

expect_eq "running inside the lab VM" vm "${LAB:-}"
[ -r /proc/net/ip_vs ] || fail "/proc/net/ip_vs is missing: ip_vs is not loaded"
pass "/proc/net/ip_vs exists: $(head -1 /proc/net/ip_vs)"
expect_eq "IPVS table (ipvsadm -Sn)" "" "$(ipvsadm -Sn)"

for b in hbeat ldir fakeip monitor; do
    expect_eq "$b runs from the host's build" "$LAB_BIN/$b" "$(command -v "$b")"
    expect_eq "$b --version" "$b $(sed -n 's/^version = "\(.*\)"/\1/p' "$LAB_ROOT/Cargo.toml")" "$($b --version)"
done

topo up --hb
for r in r1 r2; do
    n=${r#r}
    expect_eq "client fetches $r over IPv4" "$r" "$(fetch c "http://192.0.2.1$n/")"
    expect_eq "client fetches $r over IPv6" "$r" "$(fetch c "http://[2001:db8::1$n]/")"
done
expect_eq "r1 holds the VIP on lo (LVS-DR)" "192.0.2.100/32" \
    "$(topo exec r1 ip -4 -o addr show dev lo | awk '$4 != "127.0.0.1/8" {print $4}')"
expect_eq "r1 arp_ignore" 1 "$(topo exec r1 sysctl -n net.ipv4.conf.eth0.arp_ignore)"
# d1 has no server: "connection refused" proves the heartbeat link carries packets both ways.
expect_eq "d2 reaches d1 over the heartbeat link" "refused" \
    "$(topo exec d2 bash -c '{ echo >/dev/tcp/198.18.0.1/9; } 2>&1 | grep -q "Connection refused" && echo refused')"

# netem (the host kernel has none): total loss on r1's link makes the fetch fail, removing it heals.
topo netem r1 eth0 loss 100%
expect_fail "fetch from r1 fails with 100% loss on its link" fetch c http://192.0.2.11/
topo exec r1 tc qdisc del dev eth0 root
expect_eq "fetch from r1 after removing the loss" r1 "$(fetch c http://192.0.2.11/)"

topo down
expect_eq "no namespaces left after topo down" "" "$(ip netns list)"
