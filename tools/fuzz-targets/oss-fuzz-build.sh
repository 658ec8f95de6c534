#!/bin/bash -eu
# oss-fuzz-build.sh: build.sh for OSS-Fuzz / ClusterFuzzLite.
#
# Uses the environment those builders set: $CC, $CFLAGS (sanitizer and coverage flags),
# $LIB_FUZZING_ENGINE (the engine to link), $OUT (where targets go), $WORK (scratch).
# Writes into $OUT:
#   fuzz_scenario fuzz_manifest fuzz_pipeline   the targets (RUNPATH $ORIGIN/lib)
#   fuzz_bootlog                                (its build also builds the boot kernel:
#                                               nasm, GNU ld, a -m32 capable clang)
#   fuzz_*_seed_corpus.zip, fuzz_*.dict         seeds from tests/corpus/, dictionaries
#   shim/hardened/                              the built shim the targets load at run time
#   lib/                                        Unicorn, Capstone, Jansson: the runner image
#                                               has none of them
# Needs at build time: cmake, nasm, pkg-config, jansson, capstone, cmocka headers and
# Unicorn >= 2.1 (tools/setup-deps.sh puts one under build/deps/). Locally:
#   CC=clang CFLAGS="-fsanitize=address,fuzzer-no-link" LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
#     OUT=/tmp/out tools/fuzz-targets/oss-fuzz-build.sh

: "${CC:=clang}"
: "${CFLAGS:=}"
: "${LIB_FUZZING_ENGINE:=-fsanitize=fuzzer}"
: "${OUT:?OUT must name the output directory}"
root=${SHIMCHECK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${WORK:-/tmp}/shimcheck-fuzz-build
targets="fuzz_scenario fuzz_manifest fuzz_pipeline fuzz_bootlog"

# Warnings do not fail the build here: the builder's clang may be newer than ours, and the
# project's GCC-only -Wno-format-truncation is unknown to clang.
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$CFLAGS -Wno-unknown-warning-option" \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHIMCHECK_WERROR=OFF -DBUILD_TESTING=OFF \
	-DSHIMCHECK_FUZZ=ON -DSHIMCHECK_FUZZ_ENGINE="$LIB_FUZZING_ENGINE" -DSHIMCHECK_FUZZ_ORIGIN_RPATH=ON
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets

mkdir -p "$OUT/lib" "$OUT/shim/hardened"
for t in $targets; do
	cp "$build/tools/fuzz-targets/$t" "$OUT/"
done
cp "$build"/shim/hardened/{manifest.json,host.bin,monitor.bin,shim.bin} "$OUT/shim/hardened/"

# The libraries the runner lacks, found where this build linked them.
ldd "$OUT/fuzz_pipeline" | awk '/lib(unicorn|capstone|jansson)\.so/ {print $3}' | while read -r lib; do
	cp -L "$lib" "$OUT/lib/"
done

for t in scenario manifest pipeline bootlog; do
	corpus=$root/tests/corpus/fuzz_$t
	[ "$t" = bootlog ] && corpus=$root/tests/corpus/bootlog
	rm -f "$OUT/fuzz_${t}_seed_corpus.zip"
	# crash-* are findings kept as regression inputs, not seeds: a bot would re-file them.
	(cd "$corpus" && find . -maxdepth 1 -type f ! -name EXPECTED ! -name README.md ! -name 'crash-*' -printf '%f\n' |
		zip -q -@ "$OUT/fuzz_${t}_seed_corpus.zip")
	dict=$root/tools/fuzz-targets/$t.dict
	[ -f "$dict" ] && cp "$dict" "$OUT/fuzz_$t.dict"
done
# One pipeline input is a full emulated run: allow it more than the default 1 s on a busy bot.
printf '[libfuzzer]\ntimeout = 25\n' >"$OUT/fuzz_pipeline.options"
echo "oss-fuzz-build: $targets in $OUT"
