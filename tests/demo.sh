#!/usr/bin/env bash
# The README's demo (`tests/lab demo`), run inside the lab VM. It grows with the toolkit: for now it shows
# the lab itself (a real kernel with IPVS, the director/real-server topology, clients reaching both real
# servers) and that the IPVS table starts empty; ldir, fakeip and hbeat join it as they arrive.
. "$LAB_ROOT/tests/lib.sh"

step() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" | sed 's/^/  /'; }

step "a real kernel with IPVS: $(uname -r), in the lab VM ($LAB_KERNEL)"
show cat /proc/net/ip_vs

step "the topology: directors d1 d2, real servers r1 r2 (LVS-DR ready), client c, bridges lan and hb"
topo up --hb
for n in d1 d2 r1 r2 c; do
    printf '  %-3s %s\n' "$n" "$(topo exec "$n" ip -o addr show scope global | awk '{printf "%s %s  ", $2, $4}')"
done

step "the client fetches a page from each real server"
for r in 192.0.2.11 192.0.2.12 '[2001:db8::11]' '[2001:db8::12]'; do
    printf '  c -> http://%s/ : %s\n' "$r" "$(fetch c "http://$r/")"
done

step "the IPVS table is empty (nothing programs it yet)"
show ipvsadm -Ln
[ -z "$(ipvsadm -Sn)" ] || fail "the IPVS table is not empty"

step "this workspace's binaries, built on the host, run here"
for b in hbeat ldir fakeip monitor; do show "$b" --version; done

topo down
printf '\ndemo: done\n'
