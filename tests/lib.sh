# Shell helpers for lab scenarios (sourced). A scenario is a bash script run as root inside the lab VM by
# `tests/lab test`; it exits 0 when everything it asserts holds. LAB_ROOT is the checkout, LAB_BIN the
# directory of the freshly built binaries (first on PATH).
set -euo pipefail
: "${LAB_ROOT:?scenarios run under tests/lab}"

topo() { "$LAB_ROOT/tests/topo.sh" "$@"; }

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "  ok: $*"; }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
    pass "$1 = '$3'"
}

# expect_fail WHAT CMD...: CMD must exit non-zero.
expect_fail() {
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then fail "$what: '$*' succeeded"; fi
    pass "$what"
}

# Remove the topology whatever happens, so one scenario's failure cannot leak into the next check.
trap 'topo down >/dev/null 2>&1 || true' EXIT

# fetch NODE URL: the body of URL fetched from NODE (busybox wget: cheap to start under emulation; its own
# -T option crashes busybox 1.35, hence `timeout`).
fetch() { topo exec "$1" busybox timeout 5 busybox wget -qO- "$2"; }
