#!/usr/bin/env bash
# afl-parallel.sh TARGET SECONDS [JOBS]: AFL++ on one fuzz target, one main (-M) and
# JOBS-1 secondary (-S) instances for SECONDS, seeded from tests/corpus/fuzz_TARGET.
#
#   TARGET   scenario | manifest | pipeline | bootlog (seeds: tests/corpus/bootlog)
#   JOBS     default: the number of CPUs
#
# Builds the persistent-mode harness (afl_main.c) with afl-clang-fast and ASan+UBSan into
# $SHIMCHECK_AFL_BUILD (default build-afl/) on first use; the findings go to
# $SHIMCHECK_AFL_BUILD/afl-TARGET/{main,s1,...}/crashes. Exit status: 0 no crash, 1 crashes
# (listed at the end), 2 usage or build error.
set -euo pipefail

usage() { echo "usage: $0 scenario|manifest|pipeline|bootlog SECONDS [JOBS]" >&2; exit 2; }
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
target=$1 secs=$2 jobs=${3:-$(nproc)}
case $target in scenario|manifest|pipeline|bootlog) ;; *) usage ;; esac
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || usage
[[ $jobs =~ ^[0-9]+$ && $jobs -gt 0 ]] || usage

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${SHIMCHECK_AFL_BUILD:-$root/build-afl}
cc=$(command -v afl-clang-fast || command -v afl-cc || true)
if [ -z "$cc" ] || ! command -v afl-fuzz >/dev/null; then
	echo "afl-parallel: AFL++ (afl-clang-fast, afl-fuzz) is not installed (Debian: apt-get install afl++)" >&2
	exit 2
fi

# afl-clang-fast reads AFL_USE_* when it compiles, so they are set for the build itself.
# -Wno-unknown-warning-option: the project's GCC-only -Wno-format-truncation under -Werror.
echo "afl-parallel: building shimcheck-afl in $build"
AFL_USE_ASAN=1 AFL_USE_UBSAN=1 cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DSHIMCHECK_FUZZ=ON \
	-DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS=-Wno-unknown-warning-option >"$build.log" 2>&1 ||
	{ cat "$build.log"; exit 2; }
AFL_USE_ASAN=1 AFL_USE_UBSAN=1 cmake --build "$build" -j"$(nproc)" --target shimcheck-afl >>"$build.log" 2>&1 ||
	{ tail -40 "$build.log"; exit 2; }
harness=$build/tools/fuzz-targets/shimcheck-afl

out=$build/afl-$target
mkdir -p "$out"
# The seeds without their documentation (EXPECTED is not an input) and without the
# findings not fixed yet (crash-*): afl-fuzz refuses to start on a crashing seed.
in=$out/seeds
rm -rf "$in"
mkdir -p "$in"
seeds=$root/tests/corpus/fuzz_$target
[ "$target" = bootlog ] && seeds=$root/tests/corpus/bootlog
find "$seeds" -maxdepth 1 -type f ! -name EXPECTED ! -name README.md ! -name 'crash-*' \
	-exec cp {} "$in/" \;

args=(-i "$in" -o "$out" -V "$secs")
dict=$root/tools/fuzz-targets/$target.dict
[ -f "$dict" ] && args+=(-x "$dict")
# One pipeline input runs the shim in Unicorn (milliseconds, more under ASan); the engine's
# own watchdog stops a run after 2 s, so 5 s means a hang outside the emulated code.
[ "$target" = pipeline ] && args+=(-t 5000)

export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
# afl-fuzz ends its targets with SIGKILL, past their atexit clean-up: the manifest target's
# private directories go under $out/tmp, removed below.
export TMPDIR=$out/tmp
mkdir -p "$TMPDIR"
# A resumed session (-i -) would ignore new seeds; start afresh, keep old findings aside.
if [ -d "$out/main" ]; then
	old=$out/previous-$(date +%Y%m%d-%H%M%S)
	mkdir -p "$old"
	for d in "$out"/main "$out"/s[0-9]* "$out"/*.log; do [ -e "$d" ] && mv "$d" "$old/"; done
	echo "afl-parallel: the last session's output moved to $old"
fi

pids=()
afl-fuzz -M main "${args[@]}" -- "$harness" "$target" >"$out/main.log" 2>&1 &
pids+=($!)
for ((i = 1; i < jobs; i++)); do
	afl-fuzz -S "s$i" "${args[@]}" -- "$harness" "$target" >"$out/s$i.log" 2>&1 &
	pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
echo "afl-parallel: $jobs instance(s) on $target for $secs s, output in $out"
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
[ "$status" -eq 0 ] || echo "afl-parallel: an afl-fuzz instance exited $status (see $out/*.log)" >&2

rm -rf "$out/tmp"

# Per instance, from afl-fuzz's own fuzzer_stats (afl-whatsup leaves out finished ones).
crashes=""
for d in "$out"/main "$out"/s*; do
	[ -f "$d/fuzzer_stats" ] || continue
	awk -v n="$(basename "$d")" -F' *: *' '
		{ v[$1] = $2 }
		END { printf "%-5s %5s s  %10s execs  %8s/s  corpus %5s  crashes %s  hangs %s  stability %s\n",
		      n, v["run_time"], v["execs_done"], v["execs_per_sec"], v["corpus_count"],
		      v["saved_crashes"], v["saved_hangs"], v["stability"] }' "$d/fuzzer_stats"
	for c in "$d"/crashes/id:*; do
		[ -e "$c" ] && crashes+="$c"$'\n'
	done
done
if [ -n "$crashes" ]; then
	echo "afl-parallel: crashes (replay: $harness $target FILE):"
	printf '%s' "$crashes"
	exit 1
fi
echo "afl-parallel: no crashes"
exit 0
