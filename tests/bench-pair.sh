# shellcheck shell=bash
# The two directors' configurations the hbeat benchmarks share (sourced by bench/failover.sh and
# bench/hbeat-cpu.sh): hbeat with the example's timings (keepalive 20 ms, warntime 60 ms, deadtime 100 ms),
# a unicast UDP link on the LAN and a broadcast link on the heartbeat bridge, group `web` =
# `armed:fakeip hold VIP/24 dev eth0` preferred on d1; keepalived VRRPv3 `advert_int 0.1` on eth0,
# priorities 200 (d1, MASTER) and 100. Also the checks both benchmarks judge a turn by.

PAIR_TOPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/topo.sh

# pair_hbeat_conf NODE DIR KEY_FILE VIP: writes DIR/NODE.toml (socket and state under DIR).
pair_hbeat_conf() {
    local n=$1 d=$2 key=$3 vip=$4 o me peer
    case $n in d1) o=d2 me=192.0.2.1 peer=192.0.2.2 ;; d2) o=d1 me=192.0.2.2 peer=192.0.2.1 ;; *) return 1 ;; esac
    cat > "$d/$n.toml" << EOT
node = "$n"
cluster = "bench"
key_file = "$key"
keepalive = "20ms"
warntime = "60ms"
deadtime = "100ms"
initdead = "2s"
auto_failback = false
socket = "$d/$n.sock"
state_dir = "$d/$n.state"

[[peer]]
name = "$o"

[[link]]
udp = { bind = "$me:694", peer = "$peer:694" }
[[link]]
bcast = { dev = "eth1", port = 695 }

[[group]]
name = "web"
preferred = "d1"
resources = ["armed:fakeip hold $vip/24 dev eth0"]
EOT
}

# pair_keepalived_conf NODE DIR VIP: writes DIR/NODE.keepalived.conf.
pair_keepalived_conf() {
    local state=BACKUP prio=100
    [ "$1" != d1 ] || state=MASTER prio=200
    cat > "$2/$1.keepalived.conf" << EOT
global_defs {
    router_id $1
    vrrp_version 3
}
vrrp_instance web {
    state $state
    interface eth0
    virtual_router_id 51
    priority $prio
    advert_int 0.1
    virtual_ipaddress {
        $3/24 dev eth0
    }
}
EOT
}

# vips NODE VIP: how many times VIP/24 is on NODE's eth0 (the topology's TOPO_PREFIX applies).
vips() { "$PAIR_TOPO" exec "$1" ip -4 -o addr show dev eth0 | grep -c " $2/24 " || true; }
# hb_held DIR NODE: the groups NODE's hbeat holds, comma-separated.
hb_held() { hbeat --config "$1/$2.toml" status --json | jq -r '.held | join(",")'; }
# hb_settled DIR [VIP]: d1 holds web with the VIP (default $VIP), d2 sees it and holds nothing.
hb_settled() {
    local vip=${2:-$VIP}
    [ "$(hb_held "$1" d1)" = web ] && [ "$(hb_held "$1" d2)" = "" ] && [ "$(vips d1 "$vip")" = 1 ] \
        && [ "$(hbeat --config "$1/d2.toml" status --json | jq -r '.groups[0].holder')" = d1 ]
}
# k_settled DIR VIP: keepalived's VIP on d1 only, d1 master and d2 backup by their logs.
k_settled() {
    [ "$(vips d1 "$2")" = 1 ] && [ "$(vips d2 "$2")" = 0 ] && grep -q 'Entering BACKUP STATE' "$1/d2.keepalived.log" \
        && grep -q 'Entering MASTER STATE' "$1/d1.keepalived.log"
}
