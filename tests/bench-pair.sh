# shellcheck shell=bash
# The two directors' configurations the hbeat benchmarks share (sourced by bench/failover.sh and
# bench/hbeat-cpu.sh): hbeat with the example's timings (keepalive 20 ms, warntime 60 ms, deadtime 100 ms),
# a unicast UDP link on the LAN and a broadcast link on the heartbeat bridge, group `web` =
# `armed:fakeip hold VIP/24 dev eth0` preferred on d1; keepalived VRRPv3 `advert_int 0.1` on eth0,
# priorities 200 (d1, MASTER) and 100.

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
