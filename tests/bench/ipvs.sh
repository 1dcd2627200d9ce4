#!/usr/bin/env bash
# Benchmark (not a test), run by `tests/lab bench ipvs` in the lab VM: cold-apply 10,000 destinations
# (100 services x 100, then 1,000 x 10) with common::ipvs (the release-built `ipvs` example: dump, plan,
# batched apply) and with `ipvsadm-restore` of the same table, then change one destination's weight in the
# 10k table. Times include process start, in the same VM run, side by side. The last line is
# `ipvs-apply-10k ratio=<ours/ipvsadm-restore>` over both shapes.
# build: -p common --example ipvs
set -euo pipefail
ours=$LAB_RELEASE/examples/ipvs
[ -x "$ours" ] || { echo "FAIL: $ours is missing (tests/lab bench builds it)" >&2; exit 1; }
command -v ipvsadm-restore >/dev/null || { echo "FAIL: ipvsadm-restore is missing (apt-get install ipvsadm)" >&2; exit 1; }
tmp=$(mktemp -d)

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
count() { ipvsadm -Sn | wc -l; }

echo "kernel $(uname -r), $(nproc) CPUs, TCG emulation: compare figures only within this run"
total_ours=0 total_ref=0
for shape in "100 100" "1000 10"; do
    set -- $shape
    s=$1 d=$2 lines=$(( $1 + $1 * $2 ))
    "$ours" restore "$s" "$d" > "$tmp/restore"

    ipvsadm -C
    t0=$(now); ipvsadm-restore < "$tmp/restore"; t1=$(now)
    ref=$(ms "$t0" "$t1")
    [ "$(count)" = "$lines" ] || { echo "FAIL: ipvsadm-restore left $(count) lines, expected $lines" >&2; exit 1; }
    ipvsadm -Sn | sort > "$tmp/ref.Sn"

    ipvsadm -C
    t0=$(now); report=$("$ours" apply "$s" "$d"); t1=$(now)
    mine=$(ms "$t0" "$t1")
    ipvsadm -Sn | sort > "$tmp/ours.Sn"
    cmp -s "$tmp/ref.Sn" "$tmp/ours.Sn" || { echo "FAIL: the two tables differ" >&2; diff "$tmp/ref.Sn" "$tmp/ours.Sn" | head >&2; exit 1; }

    printf 'ipvs-apply %4dx%-4d dests=%d ours=%dms (%s) ipvsadm-restore=%dms ratio=%s\n' "$s" "$d" $((s * d)) \
        "$mine" "$report" "$ref" "$(awk -v a="$mine" -v b="$ref" 'BEGIN { printf "%.3f", a / b }')"
    total_ours=$((total_ours + mine)) total_ref=$((total_ref + ref))
done

# The 1000x10 table is in place (ours). One weight change: the planner must emit exactly one operation.
t0=$(now); report=$("$ours" change 1000 10); t1=$(now)
mine=$(ms "$t0" "$t1")
case "$report" in ops=1\ *) ;; *) echo "FAIL: one weight change took: $report" >&2; exit 1 ;; esac
vip=198.18.2.1:80 rip=198.19.0.6:80 # service 500, destination 5: the ones `ipvs change 1000 10` picks
ipvsadm -Sn > "$tmp/after.Sn" # (not piped into grep -q: SIGPIPE under pipefail)
grep -qx -- "-a -t $vip -r $rip -g -w 2" "$tmp/after.Sn" || { echo "FAIL: the weight did not change" >&2; exit 1; }
t0=$(now); ipvsadm -e -t "$vip" -r "$rip" -g -w 3; t1=$(now)
ref=$(ms "$t0" "$t1")
printf 'ipvs-change-1 in 10k dests ours=%dms (%s, incl. dumping the 10k table) ipvsadm -e=%dms\n' "$mine" "$report" "$ref"

rm -rf "$tmp"
ipvsadm -C
echo "ipvs-apply-10k ratio=$(awk -v a="$total_ours" -v b="$total_ref" 'BEGIN { printf "%.3f", a / b }')"
