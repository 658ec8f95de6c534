/*
 * seeded.h: a seeded generator for the unit tests' random rounds: the model's (model/gen.c),
 * seeded with the test's SEED, or with SHIMCHECK_SEED when set; the seed is printed, so a
 * failure replays exactly. Define SEED before including; included once per test program.
 */
#ifndef SHIMCHECK_TESTS_SEEDED_H
#define SHIMCHECK_TESTS_SEEDED_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gen.h"

static struct rng rng;

static uint64_t rnd(void)
{
	return rng_next(&rng);
}

/* A cmocka group setup. */
static int seed_rng(void **state)
{
	(void)state;
	const char *env = getenv("SHIMCHECK_SEED");
	rng.s = env && *env ? strtoull(env, NULL, 0) : SEED;
	printf("# seed: SHIMCHECK_SEED=0x%llx\n", (unsigned long long)rng.s);
	return 0;
}

#endif
