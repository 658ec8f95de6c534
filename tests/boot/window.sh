#!/bin/sh
# window.sh: `shimcheck boot --window`: every tested boundary agrees with the model's
# prediction (exit 0), and the rows right after given instructions say what they must.
#
#   window.sh 'AFTER PREDICTED ENGINE'... -- COMMAND...
#
# Each expectation names the mnemonic before the boundary (the table's "after" column), the
# prediction (safe, UNSAFE) and the engine's verdict (delivered, triple fault, faulted);
# at least one tested row must have them, and every tested row after that mnemonic must
# agree. 77 from the command is passed through (engine missing: skipped).
set -u
me=window.sh
usage="window.sh 'AFTER PREDICTED ENGINE'... -- COMMAND..."
. "$(dirname "$0")/boundaries.sh"
printf '%s' "$exp" | while read -r after predicted engine; do
	[ -n "$after" ] || continue
	rows=$(printf '%s\n' "$out" | awk -v a="$after" '$1 ~ /^[0-9]+$/ && $5 == a && $0 !~ / = #/')
	[ -n "$rows" ] || { echo "window.sh: no tested boundary right after $after" >&2; exit 1; }
	printf '%s\n' "$rows" | grep -Ev " $predicted +$engine +yes " && { echo "window.sh: a row after $after is not '$predicted $engine yes'" >&2; exit 1; }
	:
done || exit 1
exit 0
