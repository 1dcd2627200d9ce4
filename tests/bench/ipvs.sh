#!/usr/bin/env bash
# Benchmark (not a test), run by `tests/lab bench ipvs` in the lab VM: cold apply of 10,000 IPVS
# destinations (100 services x 100, then 1,000 x 10) by three tools, in the same VM run:
#   ours        common::ipvs, the release-built `ipvs` example: dump, plan, batched apply
#   ipvsadm     `ipvsadm -R` fed the same table (timed directly: Debian's `ipvsadm-restore` is a shell
#               wrapper that adds a grep, an `ipvsadm -C` and a shell to it)
#   keepalived  `keepalived --check` with a generated config of the same table (real servers without
#               checkers are up from the start): the time from its start until the kernel table is
#               complete, polled every POLL_MS by `ipvs wait` on the other CPU (one process; a poll
#               dumps the destinations of the service keepalived adds last, and the whole table once
#               that one is complete), so keepalived's figure is at most one poll late.
# Fair start for every turn: each tool and shape gets a fresh network namespace whose table is checked
# empty first; afterwards the table is flushed (kernel 6.1 keeps one service hash table for every
# namespace, so a leftover table would lengthen the next tool's hash chains) and the namespace deleted.
# No destination was ever deleted in a fresh namespace, so there is no destination trash either.
# The tools run on CPU 0; each is timed from a shell inside the namespace ($EPOCHREALTIME around the
# command: its process start counts, `ip netns exec` does not). The order rotates every round, so each
# tool takes each place once in three rounds. Every turn checks the resulting table against the
# expected one (`ipvsadm -Sn`, sorted). Prints every round, then the median over rounds of the ratio
# ours / the fastest other tool (lowest median), as the last line:
#   ipvs-apply-10k ratio=R target=0.5 met|NOT MET
# Environment: ROUNDS (default 3), SHAPES (default "100x100 1000x10"; services x destinations),
# TOOLS (default "ours ipvsadm keepalived"), POLL_MS (keepalived's poll, default 20), CHANGE=0 skips the
# one-weight-change figure at the end.
# build: -p common --example ipvs
# ratio: ipvs-apply-10k
# env: ROUNDS SHAPES TOOLS POLL_MS CHANGE
set -euo pipefail
ROUNDS=${ROUNDS:-3}
SHAPES=${SHAPES:-"100x100 1000x10"}
read -r -a tools <<< "${TOOLS:-ours ipvsadm keepalived}"
POLL_MS=${POLL_MS:-20}
TARGET=0.5
ours=$LAB_RELEASE/examples/ipvs
[ -x "$ours" ] || { echo "FAIL: $ours is missing (tests/lab bench builds it)" >&2; exit 1; }
IPVSADM=$(PATH=$PATH:/usr/sbin:/sbin command -v ipvsadm) \
    || { echo "FAIL: ipvsadm is missing (apt-get install ipvsadm; tests/lab deps)" >&2; exit 1; }
KEEPALIVED=$(PATH=$PATH:/usr/sbin:/sbin command -v keepalived) \
    || { echo "FAIL: keepalived is missing (apt-get install keepalived; tests/lab deps)" >&2; exit 1; }
[ "$ROUNDS" -ge 1 ] || { echo "FAIL: ROUNDS must be 1 or more" >&2; exit 1; }
case " ${tools[*]} " in *" ours "*) ;; *) echo "FAIL: TOOLS must include ours" >&2; exit 1 ;; esac
[ ${#tools[@]} -ge 2 ] || { echo "FAIL: TOOLS needs ours and at least one other tool" >&2; exit 1; }
tmp=$(mktemp -d)
NS=ipvsbench
cleanup() {
    ip netns exec "$NS" "$IPVSADM" -C 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

pin=()
[ "$(nproc)" -lt 2 ] || pin=(taskset -c 0)

# Inputs per shape: ipvsadm -R input, keepalived.conf, the expected `ipvsadm -Sn` (sorted).
for shape in $SHAPES; do
    s=${shape%x*} d=${shape#*x}
    case "$s$d" in *[!0-9]*|"") fail "SHAPES: $shape is not SERVICESxDESTINATIONS" ;; esac
    "$ours" restore "$s" "$d" > "$tmp/$shape.restore"
    sort "$tmp/$shape.restore" > "$tmp/$shape.expected"
    [ "$(wc -l < "$tmp/$shape.expected")" = $((s + s * d)) ] || fail "ipvs restore $s $d gave the wrong line count"
    # -A -t 198.18.0.1:80 -s wlc / -a -t 198.18.0.1:80 -r 198.19.0.1:80 -g -w 1 -> keepalived.conf
    # One keyword a line: keepalived 2.2 reads only the first keyword of a line inside a block.
    awk 'BEGIN { print "global_defs {\n    router_id ipvs_bench\n}" }
        $1 == "-A" { if (open) print "}"; split($3, a, ":"); open = 1
            printf "virtual_server %s %s {\n    lb_algo %s\n    lb_kind DR\n    protocol TCP\n", a[1], a[2], $5 }
        $1 == "-a" { split($5, r, ":"); if ($6 != "-g") { print "unexpected forwarding " $6 > "/dev/stderr"; exit 1 }
            printf "    real_server %s %s {\n        weight %s\n    }\n", r[1], r[2], $8 }
        END { if (open) print "}" }' "$tmp/$shape.restore" > "$tmp/$shape.keepalived.conf"
done

# turn TOOL SHAPE: prints the milliseconds TOOL took to install SHAPE's table in a fresh namespace.
turn() {
    local tool=$1 shape=$2 s d n times
    s=${shape%x*} d=${shape#*x}
    ip netns add "$NS"
    # lo up creates the namespace's local routing table: without it the kernel rejects every
    # destination address as not unicast.
    ip -n "$NS" link set lo up
    n=$(ip netns exec "$NS" "$IPVSADM" -Sn | wc -l)
    [ "$n" = 0 ] || fail "the fresh namespace's IPVS table has $n lines"
    case $tool in
        ours)
            times=$(ip netns exec "$NS" "${pin[@]}" bash -c \
                't0=$EPOCHREALTIME; "$1" apply "$2" "$3" > "$4" || exit 1; echo "$t0 $EPOCHREALTIME"' \
                _ "$ours" "$s" "$d" "$tmp/ours.report") || fail "ours: $(cat "$tmp/ours.report")"
            ;;
        ipvsadm)
            times=$(ip netns exec "$NS" "${pin[@]}" bash -c \
                't0=$EPOCHREALTIME; "$1" -R < "$2" || exit 1; echo "$t0 $EPOCHREALTIME"' \
                _ "$IPVSADM" "$tmp/$shape.restore") || fail "ipvsadm -R failed"
            ;;
        keepalived)
            rm -f "$tmp/k.pid" "$tmp/kc.pid"
            # Starts keepalived on CPU 0, moves itself to CPU 1 and waits there for the whole table
            # with `ipvs wait` (one process polling over netlink: no process start per poll). Prints
            # the start time and the start of the poll that saw the whole table.
            times=$(ip netns exec "$NS" "${pin[@]}" bash -c '
                keepalived=$1 conf=$2 tmp=$3 ours=$4 s=$5 d=$6 poll=$7 two=$8
                t0=$EPOCHREALTIME
                "$keepalived" --check --dont-fork --log-console --dont-release-ipvs --use-file "$conf" \
                    --pid "$tmp/k.pid" --checkers_pid "$tmp/kc.pid" > "$tmp/keepalived.log" 2>&1 &
                k=$!
                [ -z "$two" ] || taskset -p -c 1 $$ > /dev/null
                done=$("$ours" wait "$s" "$d" "$poll"); rc=$?
                kill $k 2>/dev/null; wait $k 2>/dev/null
                [ $rc = 0 ] || exit 1
                echo "$t0 $done"' _ "$KEEPALIVED" "$tmp/$shape.keepalived.conf" "$tmp" "$ours" "$s" "$d" "$POLL_MS" \
                "${pin[*]}") || { tail -5 "$tmp/keepalived.log" >&2; fail "keepalived did not install the whole table"; }
            ;;
        *) fail "unknown tool $tool (ours, ipvsadm, keepalived)" ;;
    esac
    ip netns exec "$NS" "$IPVSADM" -Sn | sort > "$tmp/got"
    cmp -s "$tmp/got" "$tmp/$shape.expected" || {
        echo "FAIL: $tool's $shape table differs from the expected one:" >&2
        diff "$tmp/$shape.expected" "$tmp/got" | head -5 >&2
        exit 1
    }
    # Flush first: the flush unhashes the services at once, a namespace's teardown only later.
    ip netns exec "$NS" "$IPVSADM" -C
    ip netns del "$NS"
    awk -v t="$times" 'BEGIN { split(t, a, " "); printf "%d", (a[2] - a[1]) * 1000 + 0.5 }'
}

echo "kernel $(uname -r), $(nproc) CPUs, TCG emulation: compare figures only within this run"
echo "shapes: $SHAPES; tools: ${tools[*]}; $ROUNDS rounds, the order rotating; times in ms, process start included"
k=${#tools[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    line="round $r:"
    for ((i = 0; i < k; i++)); do
        tool=${tools[$(( (i + r - 1) % k ))]}
        total=0 parts=""
        for shape in $SHAPES; do
            ms=$(turn "$tool" "$shape")
            total=$((total + ms)) parts+="${parts:+ }$shape=$ms"
            [ "$tool" != ours ] || parts+=" ($(cat "$tmp/ours.report"))"
        done
        echo "$r $tool $total" >> "$tmp/results"
        line+=" $tool=${total}ms [$parts]"
    done
    echo "$line"
done

if [ "${CHANGE:-1}" != 0 ] && [[ " $SHAPES " == *" 1000x10 "* ]]; then
    # One weight change in the 1000x10 table (ours installed it): the planner must emit one operation.
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip netns exec "$NS" "$ours" apply 1000 10 > /dev/null
    report=$(ip netns exec "$NS" bash -c 't0=$EPOCHREALTIME; "$1" change 1000 10; echo "took $t0 $EPOCHREALTIME"' _ "$ours")
    case "$report" in ops=1\ *) ;; *) fail "one weight change took: $report" ;; esac
    vip=198.18.2.1:80 rip=198.19.0.6:80 # service 500, destination 5: the ones `ipvs change 1000 10` picks
    ip netns exec "$NS" "$IPVSADM" -Sn > "$tmp/after.Sn"
    grep -qx -- "-a -t $vip -r $rip -g -w 2" "$tmp/after.Sn" || fail "the weight did not change"
    ref=$(ip netns exec "$NS" bash -c 't0=$EPOCHREALTIME; "$1" -e -t "$2" -r "$3" -g -w 3; echo "$t0 $EPOCHREALTIME"' \
        _ "$IPVSADM" "$vip" "$rip")
    ip netns exec "$NS" "$IPVSADM" -C
    ip netns del "$NS"
    ms() { awk -v t="$1" 'BEGIN { n = split(t, a, " "); printf "%d", (a[n] - a[n - 1]) * 1000 + 0.5 }'; }
    printf 'ipvs-change-1 in 10k dests: ours=%dms (%s, incl. dumping the 10k table) ipvsadm -e=%dms\n' \
        "$(ms "$report")" "$(head -1 <<< "$report")" "$(ms "$ref")"
fi

awk -v rounds="$ROUNDS" -v target="$TARGET" '
    { t[$2, $1] = $3; if (!($2 in seen)) { seen[$2] = 1; names[++k] = $2 } }
    function median(arr, n,    i, j, x) {
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { x = arr[i]; arr[i] = arr[j]; arr[j] = x }
        return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    END {
        best = ""
        for (i = 1; i <= k; i++) {
            delete v; for (r = 1; r <= rounds; r++) v[r] = t[names[i], r]
            m[names[i]] = median(v, rounds)
            printf "%-10s median %dms over %d rounds\n", names[i], m[names[i]], rounds
            if (names[i] != "ours" && (best == "" || m[names[i]] < m[best])) best = names[i]
        }
        all = ""
        for (r = 1; r <= rounds; r++) { q[r] = t["ours", r] / t[best, r]; all = all sprintf(" %.3f", q[r]) }
        printf "ratio ours/%s per round:%s\n", best, all
        med = median(q, rounds)
        printf "ipvs-apply-10k ratio=%.3f target=%s %s\n", med, target, med <= target ? "met" : "NOT MET"
    }' "$tmp/results"
