#!/bin/sh
# batch.sh: a batch of scenarios booted by `shimcheck boot --scenario DIR`: every one must
# come out identical to the simulator, with no violation, in at most BOOTS boots.
#
#   batch.sh COUNT BOOTS COMMAND...
#
# 77 from the command is passed through (engine missing: skipped).
set -u
count=$1 boots=$2
shift 2
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "batch.sh: exit status $rc, wanted 0" >&2; exit 1; }
n=$(printf '%s\n' "$out" | grep -c '^BOOT PASS: .*identical to unicorn .*; 0 violations;')
[ "$n" -eq "$count" ] || { echo "batch.sh: $n of $count scenarios identical to unicorn" >&2; exit 1; }
printf '%s\n' "$out" | grep -q '^DIVERGENCE' && { echo "batch.sh: a DIVERGENCE" >&2; exit 1; }
used=$(printf '%s\n' "$out" | sed -n 's/^BOOT BATCH: .* in \([0-9]*\) boots*:.*/\1/p')
[ -n "$used" ] && [ "$used" -le "$boots" ] || { echo "batch.sh: ${used:-?} boots, wanted at most $boots" >&2; exit 1; }
exit 0
