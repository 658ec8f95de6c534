/*
 * afl_main.c: the AFL++ harness over the same decoders as the libFuzzer targets.
 *
 *   shimcheck-afl scenario|manifest|pipeline|bootlog [FILE]
 *
 * Built with afl-clang-fast (afl-parallel.sh does it), it runs in persistent mode: one
 * process reads many test cases from AFL++'s shared memory, with the target set up after the
 * fork server's fork. That order matters twice: the engine's watchdog thread would not
 * survive the fork, and the manifest target's private directory is removed at exit by the
 * process that made it. Built with any other compiler it runs FILE (or stdin) once and
 * prints the outcome, which is how a finding is replayed without AFL++.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* read(), which __AFL_FUZZ_TESTCASE_LEN expands to */

#include "fuzz_common.h"

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

struct target {
	const char *name;
	void (*one)(const uint8_t *data, size_t size);
};

static const struct target targets[] = {
	{"scenario", fz_scenario_one},
	{"manifest", fz_manifest_one},
	{"pipeline", fz_pipeline_one},
	{"bootlog", fz_bootlog_one},
};

static int setup(const struct target *t)
{
	if (t->one == fz_manifest_one)
		return fz_manifest_init() ? 0 : 2;
	if (t->one == fz_pipeline_one)
		return fz_pipeline_init(false);
	return 0;
}

#ifndef __AFL_FUZZ_TESTCASE_LEN
/* Inputs stay small: a scenario or a manifest of a few KiB; 1 MiB is far beyond any. */
static uint8_t *read_input(FILE *f, size_t *size)
{
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	*size = buf ? fread(buf, 1, cap, f) : 0;
	return buf;
}
#endif

int main(int argc, char **argv)
{
	const struct target *t = NULL;
	for (size_t i = 0; argc >= 2 && i < sizeof targets / sizeof targets[0]; i++)
		if (strcmp(argv[1], targets[i].name) == 0)
			t = &targets[i];
	if (!t || argc > 3) {
		fprintf(stderr, "usage: %s scenario|manifest|pipeline|bootlog [FILE]\n", argv[0]);
		return 2;
	}
#ifdef __AFL_FUZZ_TESTCASE_LEN
	(void)argc;
	__AFL_INIT();
	int rc = setup(t);
	if (rc)
		return rc;
	const uint8_t *buf = __AFL_FUZZ_TESTCASE_BUF;
	while (__AFL_LOOP(10000))
		t->one(buf, (size_t)__AFL_FUZZ_TESTCASE_LEN);
	return 0;
#else
	FILE *f = argc == 3 ? fopen(argv[2], "rb") : stdin;
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", argv[0], argv[2], strerror(errno));
		return 2;
	}
	size_t size;
	uint8_t *buf = read_input(f, &size);
	if (f != stdin)
		fclose(f);
	if (!buf) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 3;
	}
	int rc = setup(t);
	if (rc == 0) {
		t->one(buf, size);
		printf("%s\n", fz_outcome);
	}
	free(buf);
	return rc;
#endif
}
