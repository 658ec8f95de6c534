/*
 * test_property: seeded random scenarios (model/gen.c) through both variants.
 *
 *  - hardened passes every scenario the model accepts;
 *  - a rejection always carries a reason from the closed list (docs/scenario.md);
 *  - every scenario survives scenario_to_json -> scenario_parse unchanged;
 *  - literal, on the same stream, does fail some (the property has teeth).
 *
 * SHIMCHECK_SEED replays a run (the seed is printed); SHIMCHECK_PROPERTY_N sets the count.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen.h"
#include "pipeline.h"

static struct pipeline H, L;

static int setup(void **state)
{
	(void)state;
	pl_init(&H);
	pl_init(&L);
	if (pl_load_code(&H, SHIMCHECK_SHIM_DIR "/hardened") != PL_OK || pl_load_code(&L, SHIMCHECK_SHIM_DIR "/literal") != PL_OK)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pl_free(&H);
	pl_free(&L);
	return 0;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

/* The fields a scenario file carries, compared one by one. */
static void assert_same_scenario(const struct scenario *a, const struct scenario *b)
{
	assert_int_equal(a->rounds, b->rounds);
	assert_int_equal(a->shim_lin, b->shim_lin);
	assert_int_equal(a->cs_wrap, b->cs_wrap);
	assert_int_equal(a->ntouch, b->ntouch);
	assert_memory_equal(a->touch, b->touch, sizeof a->touch[0] * (size_t)a->ntouch);
	for (int s = 0; s < 2; s++) {
		const struct sc_world *x = &a->w[s], *y = &b->w[s];
		assert_memory_equal(&x->state, &y->state, sizeof x->state);
		assert_memory_equal(x->lin, y->lin, sizeof x->lin[0] * (s == SP_HOST ? OBJ_NWORLD : OBJ_NMON));
		assert_int_equal(x->sel_cs, y->sel_cs);
		assert_int_equal(x->sel_ds, y->sel_ds);
		assert_int_equal(x->sel_tss, y->sel_tss);
		assert_int_equal(x->nmaps, y->nmaps);
	}
	assert_int_equal(a->nguest, b->nguest);
	const struct sc_map *ma[SC_MAX_MAPS + 1], *mb[SC_MAX_MAPS + 1];
	int n = 0;
	for (int i = 0; i < a->nguest; i++, n++)
		ma[n] = &a->guest[i], mb[n] = &b->guest[i];
	ma[n] = &a->guest_shim, mb[n] = &b->guest_shim, n++;
	for (int i = 0; i < n; i++) {
		assert_int_equal(ma[i]->lin, mb[i]->lin);
		assert_int_equal(ma[i]->large, mb[i]->large);
		assert_int_equal(ma[i]->has_raw, mb[i]->has_raw);
		if (ma[i]->has_raw) {
			assert_int_equal(ma[i]->raw, mb[i]->raw);
			continue;
		}
		assert_int_equal(ma[i]->flags, mb[i]->flags);
		assert_int_equal(ma[i]->flags_hi, mb[i]->flags_hi);
		assert_int_equal(ma[i]->to.kind, mb[i]->to.kind);
	}
}

static void hardened_passes_every_accepted_scenario(void **state)
{
	(void)state;
	uint64_t seed = env_u64("SHIMCHECK_SEED", (uint64_t)time(NULL));
	uint64_t n = env_u64("SHIMCHECK_PROPERTY_N", 1500);
	print_message("property seed: SHIMCHECK_SEED=0x%" PRIx64 " (%" PRIu64 " scenarios)\n", seed, n);
	struct rng r = {seed};
	static struct scenario sc, back;
	unsigned accepted = 0, rejected = 0, literal_fail = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t at = r.s;
		gen_scenario(&r, &sc);
		/* encode/decode identity of the scenario file format */
		char *json = scenario_to_json(&sc, NULL);
		assert_non_null(json);
		struct sc_error err;
		enum sc_reason pr = scenario_parse(json, strlen(json), &back, &err);
		if (pr == SC_OK || scenario_validate(&sc, &err) == SC_OK)
			assert_same_scenario(&sc, &back);
		free(json);

		enum pl_status st = pl_set_scenario(&H, &sc, "generated");
		if (st == PL_INPUT) {
			rejected++;
			enum sc_reason why = scenario_validate(&sc, &err);
			if (why == SC_OK)
				why = scenario_check_unswitched(&sc, &H.code.sw, &err);
			assert_true(why > SC_OK && why < SC_NREASONS);
			continue;
		}
		assert_int_equal(st, PL_OK);
		accepted++;
		st = pl_run(&H);
		if (st != PL_OK) {
			for (int k = 0; k < H.v.n && k < 5; k++)
				print_error("%s: %s\n", rule_id(H.v.v[k].rule), H.v.v[k].msg);
			fail_msg("hardened fails scenario #%" PRIu64 " (generator state 0x%" PRIx64 "); replay with "
				 "SHIMCHECK_SEED=0x%" PRIx64, i, at, seed);
		}
		if (pl_set_scenario(&L, &sc, "generated") == PL_OK && pl_run(&L) == PL_VIOLATION)
			literal_fail++;
	}
	print_message("accepted %u, rejected %u, literal failed %u of the accepted\n", accepted, rejected, literal_fail);
	assert_true(accepted > n / 3);
	assert_true(literal_fail > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(hardened_passes_every_accepted_scenario)};
	return cmocka_run_group_tests(tests, setup, teardown);
}
