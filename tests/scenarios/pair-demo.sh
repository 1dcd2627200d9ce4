#!/usr/bin/env bash
# The README's demo as a scenario, so that `tests/lab all` proves it: the pair of
# contrib/examples/pair, d1's cables pulled (the client served again through lb2, the long-lived
# connection going on through the synced entry), d1 back (auto_failback, the connection made through
# lb2 going on through lb1). tests/demo.sh exits non-zero when anything it shows did not happen.
exec bash "$LAB_ROOT/tests/demo.sh"
