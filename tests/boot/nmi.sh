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
me=nmi.sh
usage="nmi.sh 'AFTER PATTERN'... -- COMMAND..."
. "$(dirname "$0")/boundaries.sh"
printf '%s' "$exp" | while read -r after pattern; do
	[ -n "$after" ] || continue
	rows=$(printf '%s\n' "$out" | awk -v a="$after" '$1 ~ /^[0-9]+$/ && $5 == a')
	[ -n "$rows" ] || { echo "nmi.sh: no tested boundary right after $after" >&2; exit 1; }
	printf '%s\n' "$rows" | grep -Ev -- "$pattern" && { echo "nmi.sh: a row after $after does not match: $pattern" >&2; exit 1; }
	:
done || exit 1
exit 0
