/*
 * gen.h: seeded random scenarios (property tests, the fuzzer).
 */
#ifndef SHIMCHECK_MODEL_GEN_H
#define SHIMCHECK_MODEL_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "scenario.h"

struct rng {
	uint64_t s;
};

uint64_t rng_next(struct rng *r);
uint32_t rng_below(struct rng *r, uint32_t n);
bool rng_chance(struct rng *r, unsigned percent);

/* A random scenario; not necessarily valid (scenario_validate decides, with a reason). */
void gen_scenario(struct rng *r, struct scenario *sc);
/* Another guest (maps, its shim-address entry, the pages it reads) and round count for
 * base's host, monitor and shim: the code stays where base put it, so an engine keeps its
 * translations (the fuzzer draws families of siblings). */
void gen_sibling(struct rng *r, const struct scenario *base, struct scenario *sc);

#endif
