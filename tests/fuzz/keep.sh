#!/usr/bin/env bash
# The engine keeps translated blocks across scenarios that leave the code in place
# (sim/engine.c, engine_load). That must change nothing: the same generated scenarios,
# run with the blocks kept and with every page that ran dropped at each load
# (SHIMCHECK_NO_TB_KEEP=1), give the same outcome digest, run by run.
set -euo pipefail
bin=$1
n=${SHIMCHECK_KEEP_SCENARIOS:-3000}
out=$(mktemp -d /tmp/shimcheck-keep-XXXXXX)
trap 'rm -rf "$out"' EXIT
for v in literal hardened; do
	for keep in 0 1; do
		set +e
		SHIMCHECK_FUZZ_DIGEST=1 SHIMCHECK_NO_TB_KEEP=$keep SHIMCHECK_FUZZ_COUNT=$n \
			"$bin" fuzz --variant "$v" --seconds 600 --seed 11 --out "$out/f" > "$out/$v.$keep" 2>&1
		st=$?
		set -e
		[ "$st" -le 1 ] || { echo "$v: fuzz exited $st"; cat "$out/$v.$keep"; exit 1; }
		grep -q "^fuzz: verdict digest " "$out/$v.$keep" || { echo "$v: no digest"; exit 1; }
		grep -q " $n scenarios in " "$out/$v.$keep" || { echo "$v: not $n scenarios"; cat "$out/$v.$keep"; exit 1; }
	done
	a=$(grep "^fuzz: verdict digest " "$out/$v.0")
	b=$(grep "^fuzz: verdict digest " "$out/$v.1")
	if [ "$a" != "$b" ]; then
		echo "$v: kept blocks ($a) and dropped blocks ($b) disagree"
		exit 1
	fi
	echo "$v: $n scenarios, same outcomes with blocks kept and dropped ($a)"
done
