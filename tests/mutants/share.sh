#!/usr/bin/env bash
# The per-run NMI-WINDOW check lets a boundary take the safe verdict of the one before when
# nothing it depends on changed (sim/window.c, struct shared). That must change no verdict:
# every automatic mutant of hardened (its NMI handler's among them, which NMI-WINDOW kills)
# gets the same verdict with sharing and with every boundary judged on its own
# (SHIMCHECK_NO_SHARE=1).
set -euo pipefail
bin=$1
out=$(mktemp -d /tmp/shimcheck-share-XXXXXX)
trap 'rm -rf "$out"' EXIT
for share in 0 1; do
	set +e
	SHIMCHECK_NO_SHARE=$share "$bin" mutate --variant hardened > "$out/m.$share" 2>&1
	st=$?
	set -e
	[ "$st" -le 1 ] || { echo "mutate exited $st"; tail -5 "$out/m.$share"; exit 1; }
done
grep -q "NMI-WINDOW" "$out/m.0" || { echo "no mutant was killed by NMI-WINDOW: the comparison has no teeth"; exit 1; }
if ! diff "$out/m.0" "$out/m.1" > "$out/diff"; then
	echo "verdicts differ with shared and with separately judged boundaries:"
	head -20 "$out/diff"
	exit 1
fi
echo "hardened mutants: same verdicts with and without shared boundary verdicts ($(tail -1 "$out/m.0"))"
