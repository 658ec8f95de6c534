#!/usr/bin/env bash
# Golden traces: the review trace of every shipped scenario, per variant, compared with
# traces/<variant>/<scenario>.txt. Only the first line (the paths of the code directory and
# the scenario, which depend on where the tree lives) is sanitised.
#
#   SHIMCHECK_REGEN=1 ctest -R golden     rewrites the golden files (review the diff!)
set -euo pipefail
bin=$1
src=$2
fail=0
n=0
for variant in literal hardened; do
	mkdir -p "$src/traces/$variant"
	for scen in "$src"/scenarios/*.json; do
		name=$(basename "$scen" .json)
		gold="$src/traces/$variant/$name.txt"
		set +e
		out=$("$bin" trace --variant "$variant" --scenario "$scen" 2>&1)
		st=$?
		set -e
		if [ $st -eq 2 ]; then
			# a scenario this variant rejects (e.g. literal on modes.json): the message is the golden
			out="rejected: ${out#shimcheck: }"
			out=${out//$src\//}
		fi
		out=$(printf '%s\n' "$out" | sed -e '1s|(.*/shim/\([a-z]*\))|(build/shim/\1)|' -e "1s|($src/|(|")
		n=$((n + 1))
		if [ "${SHIMCHECK_REGEN:-}" = 1 ]; then
			printf '%s\n' "$out" > "$gold"
			continue
		fi
		if [ ! -f "$gold" ]; then
			echo "golden: $gold is missing; run SHIMCHECK_REGEN=1 ctest -R golden and commit it"
			fail=1
			continue
		fi
		if ! diff -u "$gold" <(printf '%s\n' "$out") > /tmp/golden-diff.$$ 2>&1; then
			echo "golden: $variant/$name differs from $gold:"
			head -40 /tmp/golden-diff.$$
			echo "(if the change is intended: SHIMCHECK_REGEN=1 ctest --test-dir build -R golden, review, commit)"
			fail=1
		fi
		rm -f /tmp/golden-diff.$$
	done
done
[ "${SHIMCHECK_REGEN:-}" = 1 ] && echo "golden: regenerated $n traces" && exit 0
[ $fail -eq 0 ] && echo "golden: $n traces match"
exit $fail
