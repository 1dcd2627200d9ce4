#!/usr/bin/env bash
# ldirectord itself (Debian's package) and `ldir apply` program the same IPVS table from the same
# configuration: tests/fixtures/ldirectord-compare.cf (every check `on`, so no check decides anything) is
# run by ldirectord, and converted by `ldir import` and applied by `ldir apply`, each in a fresh network
# namespace; `ipvsadm -Sn` and `ipvsadm -Ln --thresholds` (which shows the l:/u: thresholds) must be equal.
. "$LAB_ROOT/tests/lib.sh"
command -v ldirectord >/dev/null || fail "ldirectord is missing: install the Debian package ldirectord (tests/lab deps)"

T=$(mktemp -d /tmp/ldir-ldirectord.XXXXXX)
CF=$LAB_ROOT/tests/fixtures/ldirectord-compare.cf
trap 'ip netns del ldcmp1 2>/dev/null || true; ip netns del ldcmp2 2>/dev/null || true; rm -rf "$T"' EXIT

echo "== ldirectord"
ip netns add ldcmp1
ip -n ldcmp1 link set lo up
cp "$CF" "$T/ldirectord.cf"
ip netns exec ldcmp1 ldirectord -d "$T/ldirectord.cf" start > "$T/ldirectord.log" 2>&1 &
LD=$!
for _ in $(seq 1 600); do
    [ "$(ip netns exec ldcmp1 ipvsadm -Sn | grep -c '^-a')" -ge 10 ] && break
    sleep 0.5
done
ip netns exec ldcmp1 ipvsadm -Sn > "$T/ld.S"
ip netns exec ldcmp1 ipvsadm -Ln --thresholds > "$T/ld.T"
kill -TERM $LD; wait $LD || true
[ "$(grep -c '^-a' "$T/ld.S")" = 10 ] || { tail -20 "$T/ldirectord.log"; fail "ldirectord did not program 10 reals: $(cat "$T/ld.S")"; }
pass "ldirectord programmed $(grep -c '^-A' "$T/ld.S") virtuals, 10 reals"

echo "== ldir import + ldir apply"
ldir import "$CF" --out "$T/ldir" 2> "$T/import.err" || fail "ldir import: $(cat "$T/import.err")"
ldir --config-dir "$T/ldir" check >/dev/null || fail "ldir check of the converted files"
sed -i "s|^\[global\]\$|[global]\nstate_dir = \"$T/state\"|" "$T/ldir/ldir.toml"
grep -q "^state_dir" "$T/ldir/ldir.toml" || fail "no [global] in the converted ldir.toml: $(cat "$T/ldir/ldir.toml")"
ip netns add ldcmp2
ip -n ldcmp2 link set lo up
ip netns exec ldcmp2 ldir --config-dir "$T/ldir" apply >/dev/null || fail "ldir apply"
ip netns exec ldcmp2 ipvsadm -Sn > "$T/ldir.S"
ip netns exec ldcmp2 ipvsadm -Ln --thresholds > "$T/ldir.T"

expect_eq "ipvsadm -Sn, ldirectord vs ldir apply" "$(cat "$T/ld.S")" "$(cat "$T/ldir.S")"
expect_eq "ipvsadm -Ln --thresholds, ldirectord vs ldir apply" "$(cat "$T/ld.T")" "$(cat "$T/ldir.T")"
