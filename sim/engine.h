/*
 * engine.h: the image run in Unicorn (>= 2.1) i386, recorded into a trace.
 *
 * One engine per process (per fuzzing job): uc_open and hook set-up cost ~170 us, a reset
 * ~1 us. engine_load() maps an image's physical window and saves a clean context;
 * engine_run() restores it, runs host_main to host_done under an instruction bound and a
 * wall-clock watchdog, and records every instruction, memory access and control event.
 */
#ifndef SHIMCHECK_SIM_ENGINE_H
#define SHIMCHECK_SIM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/image.h"
#include "trace.h"

struct engine;

struct run_limits {
	uint32_t max_insns;  /* 0: derived from the round trips */
	uint32_t wall_ms;    /* 0: 2000 */
	bool record;         /* false: count only (the engine floor for benchmarks) */
};

/* Returns NULL and fills err when Unicorn cannot be opened. */
struct engine *engine_open(char *err, size_t errlen);
/* An engine for the benchmark's floor: no hooks at all, or (empty_hooks) a code hook and a
 * memory hook that do nothing. It records nothing, counts nothing (only the watchdog bounds
 * a run) and sees no write, so after engine_load it must be told which pages a run writes
 * (engine_bare_pages: physical addresses, e.g. from a recorded run of the same image),
 * which every reset then restores. */
struct engine *engine_open_bare(bool empty_hooks, char *err, size_t errlen);
bool engine_bare_pages(struct engine *e, const uint64_t *pa, uint32_t n);
void engine_close(struct engine *e);
/* Load img (kept by reference: it must outlive the runs). false + err on failure. */
bool engine_load(struct engine *e, const struct image *img, char *err, size_t errlen);
/* Run once from the clean state. Returns false only on internal engine failure. */
bool engine_run(struct engine *e, struct trace *t, const struct run_limits *lim);
/* The physical memory the engine runs on, as the last run left it (until the next run). */
struct physmem engine_memory(const struct engine *e);
/* Unicorn's version string, e.g. "2.1.1". */
const char *engine_version(void);

#endif
