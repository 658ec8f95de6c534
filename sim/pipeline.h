/*
 * pipeline.h: scenario + code directory -> image -> run -> verdict, the path every user of
 * the tool takes (CLI, end-to-end tests, fuzzers). Status values are the CLI's exit codes.
 */
#ifndef SHIMCHECK_SIM_PIPELINE_H
#define SHIMCHECK_SIM_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "check.h"
#include "engine.h"

enum pl_status { PL_OK = 0, PL_VIOLATION = 1, PL_INPUT = 2, PL_INTERNAL = 3, PL_UNAVAILABLE = 77 };

struct pipeline {
	struct scenario sc;
	struct shim_code code;
	struct image img;
	struct engine *eng;
	struct trace t;
	struct verdict v;
	bool have_code, have_img;
	bool loaded;        /* eng holds img */
	char err[640];      /* one line: "FILE: FIELD: what" for PL_INPUT, the cause for PL_INTERNAL */
};

void pl_init(struct pipeline *p);
void pl_free(struct pipeline *p);
/* Load and validate a code directory. */
enum pl_status pl_load_code(struct pipeline *p, const char *dir);
/* Use code c (taken over: the pipeline frees it), e.g. a mutant of a loaded variant. */
void pl_use_code(struct pipeline *p, struct shim_code *c);
/* Load a scenario file (needs the code first: the variant decides what may differ). */
enum pl_status pl_load_scenario(struct pipeline *p, const char *path);
/* Use an already parsed scenario (property tests, fuzzers). */
enum pl_status pl_set_scenario(struct pipeline *p, const struct scenario *sc, const char *label);
/* Run once and check; the engine is opened on first use and reused. */
enum pl_status pl_run(struct pipeline *p);


#endif
