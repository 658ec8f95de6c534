#!/usr/bin/env bash
# Fuzzer smoke test: a short hardened run finds nothing; a short literal run finds
# violations, and every finding it writes replays with `shimcheck run` and the same rule.
set -euo pipefail
bin=$1
out=$(mktemp -d /tmp/shimcheck-fuzz-XXXXXX)
trap 'rm -rf "$out"' EXIT

"$bin" fuzz --variant hardened --seconds 4 --seed 7 --out "$out/h" | tail -1
"$bin" fuzz --variant literal --seconds 4 --seed 7 --out "$out/l" > "$out/l.txt" 2>&1 && {
	echo "literal: the fuzzer found nothing in 4 s"; exit 1; } || rc=$?
tail -1 "$out/l.txt"
[ "$rc" -eq 1 ] || { echo "literal: fuzz exited $rc, not 1"; exit 1; }
n=0
for f in "$out"/l/*.json; do
	rule=$(basename "$f" | sed 's/-[0-9a-f]\{16\}\.json$//')
	set +e
	"$bin" run --variant literal --scenario "$f" > "$out/r.txt" 2>&1
	st=$?
	set -e
	grep -q "^$rule " "$out/r.txt" || { echo "$f: replay (exit $st) does not report $rule"; cat "$out/r.txt"; exit 1; }
	[ "$st" -eq 1 ] || { echo "$f: replay exited $st"; exit 1; }
	n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no finding files written"; exit 1; }
echo "fuzz smoke: $n literal findings replayed with their rule; hardened clean"
