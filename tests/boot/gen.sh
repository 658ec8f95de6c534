#!/bin/sh
# gen.sh: the seeded random scenarios the batch tests boot (a ctest fixture).
#
#   gen.sh GEN DIR SEED COUNT [VARIANT]
#
# GEN is shimcheck-boot-gen. Writes COUNT scenarios into DIR (emptied first) and requires
# every host paging mode (4k, pse, pae) to be there.
set -u
gen=$1 dir=$2 seed=$3 count=$4 variant=${5:-hardened}
rm -rf "$dir" || exit 1
out=$("$gen" --seed "$seed" --count "$count" --variant "$variant" --out "$dir") || { printf '%s\n' "$out"; exit 1; }
printf '%s\n' "$out"
for mode in 4k pse pae; do
	ls "$dir"/gen-*-"$mode".json >/dev/null 2>&1 || { echo "gen.sh: no scenario with host paging $mode" >&2; exit 1; }
done
[ "$(ls "$dir"/*.json | wc -l)" -eq "$count" ] || { echo "gen.sh: not $count scenario files" >&2; exit 1; }
exit 0
