#!/usr/bin/env bash
# The lab topology, built from network namespaces, veth pairs and bridges. It works the same inside the lab
# VM and on the host kernel (for tests that need no IPVS: ARP, heartbeats), and never touches the
# namespace it is called from: even the bridges live in a namespace of their own.
#
#   topo.sh up [--hb] [--no-http]   build it        topo.sh down [--kill]  remove it (and its processes:
#                                                   TERM, or with --kill KILL and wait until they are gone)
#   topo.sh exec NODE CMD...        run in a node   topo.sh netem NODE IFACE SPEC...   tc netem on a link
#   topo.sh nodes                   list the nodes' namespaces
#
#   node  role             lan (bridge `lan`, eth0)       heartbeat link (bridge `hb`, eth1; with --hb)
#   d1    director         192.0.2.1/24   2001:db8::1/64  198.18.0.1/24  2001:db8:1::1/64
#   d2    director         192.0.2.2/24   2001:db8::2/64  198.18.0.2/24  2001:db8:1::2/64
#   r1    real server      192.0.2.11/24  2001:db8::11/64
#   r2    real server      192.0.2.12/24  2001:db8::12/64
#   c     client           192.0.2.51/24  2001:db8::51/64
#   sw    the switch: bridges `lan` and `hb`, one port per node link (named after the node; `hb-d1`, ...)
#
# Real servers serve HTTP on :80 (busybox httpd; the page is the node's name and a newline) and are set up
# for LVS-DR: the VIPs 192.0.2.100/32 and 2001:db8::100/128 on lo, arp_ignore=1, arp_announce=2.
#
# TOPO_PREFIX (default empty) is put before every namespace name, so that several topologies can exist at
# once (tests on the host use a unique prefix each). Node names in commands are given without it.
set -euo pipefail

P=${TOPO_PREFIX:-}
NODES=(d1 d2 r1 r2 c)
declare -A V4=([d1]=192.0.2.1 [d2]=192.0.2.2 [r1]=192.0.2.11 [r2]=192.0.2.12 [c]=192.0.2.51)
declare -A V6=([d1]=2001:db8::1 [d2]=2001:db8::2 [r1]=2001:db8::11 [r2]=2001:db8::12 [c]=2001:db8::51)
declare -A HB4=([d1]=198.18.0.1 [d2]=198.18.0.2)
declare -A HB6=([d1]=2001:db8:1::1 [d2]=2001:db8:1::2)
VIP4=192.0.2.100
VIP6=2001:db8::100
STATE=/run/lvs-lab-topo/${P:-default}

die() { echo "topo: $*" >&2; exit 2; }
ns() { echo "$P$1"; }
in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
need() { command -v "$1" >/dev/null || die "$1 is missing: install $2"; }

up() {
    local hb= http=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --hb) hb=1 ;;
            --no-http) http= ;;
            *) die "unknown option to up: $1" ;;
        esac
        shift
    done
    need ip iproute2
    [ -z "$http" ] || need busybox busybox-static
    [ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
    ip netns list | grep -qx "$(ns sw)\( .*\)\?" && die "a topology with prefix '${P}' exists already: topo.sh down first"

    mkdir -p "$STATE"
    # Batched: under the lab VM's emulation every process costs ~0.1 s, so one `ip -batch` per namespace.
    local n b=$STATE/batch
    for n in sw "${NODES[@]}"; do echo "netns add $(ns "$n")"; done > "$b"
    ip -batch "$b"
    {
        echo "link set lo up"
        echo "link add lan type bridge stp_state 0 forward_delay 0"
        [ -z "$hb" ] || echo "link add hb type bridge stp_state 0 forward_delay 0"
        for n in "${NODES[@]}"; do
            echo "link add $n type veth peer name eth0 netns $(ns "$n")"
            echo "link set $n master lan up"
        done
        if [ -n "$hb" ]; then
            for n in d1 d2; do
                echo "link add hb-$n type veth peer name eth1 netns $(ns "$n")"
                echo "link set hb-$n master hb up"
            done
            echo "link set hb up"
        fi
        echo "link set lan up"
    } > "$b"
    ip -n "$(ns sw)" -batch "$b"
    for n in "${NODES[@]}"; do
        {
            echo "link set lo up"
            echo "link set eth0 up"
            echo "addr add ${V4[$n]}/24 dev eth0"
            # nodad: IPv6 addresses usable at once.
            echo "addr add ${V6[$n]}/64 dev eth0 nodad"
            if [ -n "$hb" ] && [ -n "${HB4[$n]:-}" ]; then
                echo "link set eth1 up"
                echo "addr add ${HB4[$n]}/24 dev eth1"
                echo "addr add ${HB6[$n]}/64 dev eth1 nodad"
            fi
            case $n in r?)
                # LVS-DR: the real servers accept packets for the VIP...
                echo "addr add $VIP4/32 dev lo"
                echo "addr add $VIP6/128 dev lo"
            esac
        } > "$b"
        ip -n "$(ns "$n")" -batch "$b"
    done
    for n in r1 r2; do
        # ... but never answer ARP for it nor use it as an ARP source; then serve HTTP (without -f busybox
        # httpd puts itself in the background; `down` kills it with the namespace).
        mkdir -p "$STATE/www-$n"
        echo "$n" > "$STATE/www-$n/index.html"
        in_ns "$n" sh -c 'for c in all eth0; do
                echo 1 > /proc/sys/net/ipv4/conf/$c/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce
            done; [ -z "$1" ] || exec busybox httpd -p 80 -h "$2"' sh "$http" "$STATE/www-$n"
    done
    rm -f "$b"
    [ -z "$http" ] || wait_http
}

# Both real servers answer HTTP (one process: bash's /dev/tcp).
wait_http() {
    in_ns c bash -c 'for i in $(seq 1 100); do
            (echo >/dev/tcp/192.0.2.11/80 && echo >/dev/tcp/192.0.2.12/80) 2>/dev/null && exit 0
            sleep 0.1
        done; exit 1' || die "the HTTP servers on r1 and r2 did not answer within 10 s"
}

down() {
    local n errs=0 sig=TERM
    case "${1:-}" in
        "") ;;
        --kill) sig=KILL ;;
        *) die "unknown option to down: $1" ;;
    esac
    local present=()
    for n in "${NODES[@]}" sw; do
        ip netns list | grep -q "^$(ns "$n")\( \|$\)" && present+=("$n")
    done
    # Every node's processes are signalled before any namespace goes: with --kill, none of them
    # gets to act on its peers vanishing (a daemon's graceful release), and none is left running.
    for n in "${present[@]}"; do
        local pids
        pids=$(ip netns pids "$(ns "$n")" 2>/dev/null || true)
        # shellcheck disable=SC2086 # one pid a word
        [ -z "$pids" ] || kill -s "$sig" $pids 2>/dev/null || true
    done
    if [ "$sig" = KILL ]; then
        local k
        for n in "${present[@]}"; do
            for k in $(seq 50); do [ -z "$(ip netns pids "$(ns "$n")" 2>/dev/null || true)" ] && break; sleep 0.1; done
        done
    fi
    for n in "${present[@]}"; do
        ip netns del "$(ns "$n")" || errs=$((errs + 1))
    done
    rm -rf "$STATE"
    [ $errs = 0 ] || die "$errs namespaces could not be removed"
}

netem() {
    [ $# -ge 3 ] || die "usage: topo.sh netem NODE IFACE SPEC... (e.g. netem d1 eth1 loss 30%)"
    local n=$1 ifc=$2; shift 2
    if ! in_ns "$n" tc qdisc replace dev "$ifc" root netem "$@" 2>/dev/null; then
        [ -e /sys/module/sch_netem ] || modprobe sch_netem 2>/dev/null \
            || die "this kernel has no netem qdisc (sch_netem); run the scenario in the lab VM (tests/lab run)"
        in_ns "$n" tc qdisc replace dev "$ifc" root netem "$@"
    fi
}

[ $# -ge 1 ] || die "usage: topo.sh up|down|exec|netem|nodes ..."
cmd=$1; shift
case "$cmd" in
    up) up "$@" ;;
    down) down "$@" ;;
    exec) [ $# -ge 2 ] || die "usage: topo.sh exec NODE CMD..."; n=$1; shift; in_ns "$n" "$@" ;;
    netem) netem "$@" ;;
    nodes) for n in "${NODES[@]}" sw; do ns "$n"; done ;;
    *) die "unknown command: $cmd" ;;
esac
