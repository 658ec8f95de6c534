#!/bin/sh
# expect.sh: run a command, require its exit status and a line of its output.
#
#   expect.sh [--divergence-ok] STATUS PATTERN COMMAND...
#
# STATUS: the exit status wanted; 77 from the command is passed through (engine missing:
# skipped). PATTERN: an extended regular expression some line of stdout+stderr must match.
# Output that starts a line with DIVERGENCE fails unless PATTERN asks for it or
# --divergence-ok is given (the mutant tests: each divergence there is judged by the tool).
set -u
divok=
[ "$1" = "--divergence-ok" ] && { divok=1; shift; }
want=$1 pattern=$2
shift 2
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] && [ "$want" -ne 77 ] && exit 77
[ $rc -eq "$want" ] || { echo "expect.sh: exit status $rc, wanted $want" >&2; exit 1; }
printf '%s\n' "$out" | grep -Eq -- "$pattern" || { echo "expect.sh: no line matches: $pattern" >&2; exit 1; }
case $divok$pattern in
1* | *DIVERGENCE*) ;;
*) if printf '%s\n' "$out" | grep -q '^DIVERGENCE'; then echo "expect.sh: unexpected DIVERGENCE" >&2; exit 1; fi ;;
esac
exit 0
