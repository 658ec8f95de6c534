#!/bin/sh
# nmi.sh: `shimcheck boot --engine qemu --nmi`: every tested boundary agrees with the model's
# prediction (exit 0), and the rows right after given instructions say what they must.
#
#   nmi.sh 'AFTER PATTERN'... -- COMMAND...
#
# AFTER is the mnemonic before the boundary (the table's "after" column); every tested row
# with it must match the extended regular expression PATTERN (from the model column on), and
# there must be at least one. 77 from the command is passed through (QEMU or gdb missing).
set -u
exp=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	exp="$exp$1
"
	shift
done
[ $# -gt 1 ] || { echo "usage: nmi.sh 'AFTER PATTERN'... -- COMMAND..." >&2; exit 2; }
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "nmi.sh: exit status $rc, wanted 0 (every tested boundary agrees)" >&2; exit 1; }
printf '%s\n' "$out" | grep -Eq '^[0-9]+ boundaries tested on qemu, [0-9]+ agree with the prediction, 0 do not' ||
	{ echo "nmi.sh: no summary line with 0 disagreements" >&2; exit 1; }
printf '%s' "$exp" | while read -r after pattern; do
	[ -n "$after" ] || continue
	rows=$(printf '%s\n' "$out" | awk -v a="$after" '$1 ~ /^[0-9]+$/ && $5 == a')
	[ -n "$rows" ] || { echo "nmi.sh: no tested boundary right after $after" >&2; exit 1; }
	printf '%s\n' "$rows" | grep -Ev -- "$pattern" && { echo "nmi.sh: a row after $after does not match: $pattern" >&2; exit 1; }
	:
done || exit 1
exit 0
