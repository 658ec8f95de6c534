/*
 * fuzz_common.h: the input decoders shared by every fuzzing front end.
 *
 * One decoder per target; the libFuzzer entry points (fuzz_*.c), the AFL++ harness
 * (afl_main.c) and the corpus replay test (tests/corpus/run_corpus.c) all call these, so a
 * crash found by one engine replays bit for bit in the others.
 *
 * Each decoder writes a one-word outcome into fz_outcome (see docs/fuzzing.md):
 *   fuzz_scenario   "ok" | "rejected:<reason>"          (sc_reason_name)
 *   fuzz_manifest   "ok" | "rejected:<file>:<field>"    (the error's FILE and FIELD)
 *   fuzz_pipeline   "pass" | "rejected:<reason>"
 *   fuzz_bootlog    "ok:images=<n>" | "rejected:line=<n>"   (bootlog_decoder.c)
 * and calls abort() on what is a bug by contract (a round trip that changes the scenario,
 * an accepted manifest that breaks its own invariants, a violation or an internal error of
 * the hardened variant on an accepted scenario), so every engine reports it as a crash.
 */
#ifndef SHIMCHECK_FUZZ_COMMON_H
#define SHIMCHECK_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scenario.h"

#define FZ_OUTCOME_MAX 160
extern char fz_outcome[FZ_OUTCOME_MAX];

/* Where the built shim variants are: $SHIMCHECK_SHIM_DIR, else <exe dir>/shim (the layout
 * oss-fuzz-build.sh writes into $OUT), else the build tree this binary came from. */
void fz_shim_root(char *out, size_t n);

/* fuzz_scenario: parse, and for an accepted scenario check to_json -> parse is the identity. */
void fz_scenario_one(const uint8_t *data, size_t size);

/* fuzz_manifest: a private code directory holding the hardened binaries plus a few files of
 * telling sizes (empty, short, too big) that a manifest may name. Returns false with a
 * message on stderr when the directory cannot be made. */
bool fz_manifest_init(void);
void fz_manifest_one(const uint8_t *data, size_t size);

/* fuzz_pipeline: load the hardened code once. warm: also run the default scenario now, so
 * that a missing engine is reported at start-up and not as the first input's failure (the
 * AFL++ harness passes false: the engine's watchdog thread must start after the fork).
 * Returns 0, or the exit status to stop with (2 no code, 77 engine unavailable). */
int fz_pipeline_init(bool warm);
void fz_pipeline_one(const uint8_t *data, size_t size);

/* fuzz_bootlog: the boot-log readers of tools/boot/boot_log.c (strict serial log with a
 * write-back round trip, the engines' streams and logs). Defined in bootlog_decoder.c, which
 * needs the boot library (shimcheck_boot): link that file and the library with it. */
void fz_bootlog_one(const uint8_t *data, size_t size);

/* Input bytes to a scenario: JSON when the first non-blank byte is '{', else the generator
 * seeded from the first 8 bytes, then field overrides from the rest, written as a scenario
 * file and parsed back. Returns SC_OK or scenario_parse's rejection. */
enum sc_reason fz_decode_scenario(const uint8_t *data, size_t size, struct scenario *sc, struct sc_error *err);

/* Field by field; on the first difference writes its path into what and returns false. */
bool fz_same_scenario(const struct scenario *a, const struct scenario *b, char *what, size_t n);

#endif
