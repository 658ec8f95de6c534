#!/bin/sh
# gdb-tamper.sh: a gdb for `shimcheck boot --step` (SHIMCHECK_GDB) that runs the real gdb and
# then changes the CR3 of the 20th recorded step, as an engine that switched address spaces
# one instruction early would show it: the comparison must report that step (exit 1).
set -u
out=$(gdb "$@")
rc=$?
printf '%s\n' "$out" | awk '/^STEP / { n++; if (n == 20) { $4 = "dead000" } } { print }'
exit $rc
