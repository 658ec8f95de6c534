#!/usr/bin/env bash
# `shimcheck bench` runs every measure and prints its final line with every field a number
# (timing targets are the benchmark's business, never a test's: docs/performance.md). The
# profiler modes (SHIMCHECK_BENCH_ONLY/RUNS) run exactly the runs asked for, the floor
# engines included; an unknown measure is refused with exit 2.
set -euo pipefail
bin=$1
out=$(mktemp -d /tmp/shimcheck-bench-XXXXXX)
trap 'rm -rf "$out"' EXIT
for v in hardened literal; do
	"$bin" bench --variant "$v" --seconds 1 > "$out/b.txt" 2>&1 || { echo "$v: bench exited $?"; cat "$out/b.txt"; exit 1; }
	last=$(tail -1 "$out/b.txt")
	num='[0-9]+(\.[0-9]+)?'
	re="^checked_us=$num raw_us=$num overhead=${num}x cold_us=$num fuzz_per_s=$num jobs2_speedup=${num}x qemu_ratio=(${num}x|na) rss_mib=[0-9]+$"
	[[ $last =~ $re ]] || { echo "$v: final line malformed: $last"; exit 1; }
	for m in raw hooked counted checked cold; do
		grep -q "^$m " "$out/b.txt" || { echo "$v: no '$m' row"; cat "$out/b.txt"; exit 1; }
	done
	echo "$v: $last"
done
for m in raw hooked counted checked; do
	r=$(SHIMCHECK_BENCH_ONLY=$m SHIMCHECK_BENCH_RUNS=3 "$bin" bench)
	[ "$r" = "$m: 3 runs" ] || { echo "BENCH_ONLY=$m: '$r'"; exit 1; }
done
set +e
SHIMCHECK_BENCH_ONLY=nonsense "$bin" bench > "$out/e.txt" 2>&1
st=$?
set -e
[ "$st" -eq 2 ] && grep -q "SHIMCHECK_BENCH_ONLY" "$out/e.txt" || { echo "unknown measure: exit $st"; cat "$out/e.txt"; exit 1; }
echo "bench smoke: both variants, every measure, profiler modes"
