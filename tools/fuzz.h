#ifndef SHIMCHECK_TOOLS_FUZZ_H
#define SHIMCHECK_TOOLS_FUZZ_H
#include <stdbool.h>
#include <stdint.h>
#include "pipeline.h"
struct fuzz_opts {
	double seconds;
	uint64_t seed;
	int jobs;
	const char *out;
	bool quiet;          /* no per-finding lines and no summary (bench) */
	double *rate;        /* when set: scenarios per second, written at the end */
	long *rss_kib;       /* when set: the largest peak resident set of a job (KiB), written at the end */
};
#define FUZZ_FAMILY 16 /* generated scenarios per layout (fuzz.c) */
/* Run the fuzzer with p's code loaded; returns the exit status (0 none, 1 findings, 2, 3). */
int fuzz_run(const struct fuzz_opts *o, struct pipeline *p);
#endif
