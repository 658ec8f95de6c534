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
exp=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	exp="$exp$1
"
	shift
done
[ $# -gt 1 ] || { echo "usage: window.sh 'AFTER PREDICTED ENGINE'... -- COMMAND..." >&2; exit 2; }
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "window.sh: exit status $rc, wanted 0 (every tested boundary agrees)" >&2; exit 1; }
printf '%s\n' "$out" | grep -Eq '^[0-9]+ boundaries tested on [a-z]+, [0-9]+ agree with the prediction, 0 do not' ||
	{ echo "window.sh: no summary line with 0 disagreements" >&2; exit 1; }
printf '%s' "$exp" | while read -r after predicted engine; do
	[ -n "$after" ] || continue
	rows=$(printf '%s\n' "$out" | awk -v a="$after" '$1 ~ /^[0-9]+$/ && $5 == a && $0 !~ / = #/')
	[ -n "$rows" ] || { echo "window.sh: no tested boundary right after $after" >&2; exit 1; }
	printf '%s\n' "$rows" | grep -Ev " $predicted +$engine +yes " && { echo "window.sh: a row after $after is not '$predicted $engine yes'" >&2; exit 1; }
	:
done || exit 1
exit 0
