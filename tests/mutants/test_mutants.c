/*
 * test_mutants: the hand-written mutant catalogue (tests/mutants/catalogue.json). Each
 * mutant is a known way to break the switch; it must be reported by the rule it names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mutate.h"
#include "pipeline.h"

/* One edit of the catalogue, through the applier `shimcheck boot --mutants` uses too. */
static void apply(struct shim_code *c, json_t *e, const char *name)
{
	json_t *nth = json_object_get(e, "nth");
	struct mutate_edit ed = {CB_HOST, json_string_value(json_object_get(e, "from")),
				 json_string_value(json_object_get(e, "find")), json_string_value(json_object_get(e, "op")),
				 json_string_value(json_object_get(e, "bytes")), json_string_value(json_object_get(e, "before")),
				 nth ? (int)json_integer_value(nth) : 1};
	const char *bin = json_string_value(json_object_get(e, "binary"));
	if (!code_bin_id(bin, &ed.bin))
		fail_msg("%s: unknown binary %s", name, bin ? bin : "(none)");
	struct insn_ref r;
	char err[256];
	if (!mutate_apply(c, &ed, &r, err, sizeof err))
		fail_msg("%s: %s", name, err);
	print_message("  %s: %s `%s` at %s+0x%x\n", name, ed.op, r.text, code_bin_name(ed.bin), r.off);
}

static void every_mutant_is_caught_by_its_rule(void **state)
{
	(void)state;
	json_error_t jerr;
	json_t *cat = json_load_file(SHIMCHECK_SOURCE_DIR "/tests/mutants/catalogue.json", 0, &jerr);
	if (!cat)
		fail_msg("catalogue.json: %s", jerr.text);
	json_t *list = json_object_get(cat, "mutants");
	assert_true(json_array_size(list) >= 15);
	size_t i;
	json_t *m;
	static struct pipeline p;
	json_array_foreach(list, i, m) {
		const char *name = json_string_value(json_object_get(m, "name"));
		const char *variant = json_string_value(json_object_get(m, "variant"));
		const char *expect = json_string_value(json_object_get(m, "expect"));
		json_t *sj = json_object_get(m, "scenario");
		char dir[512], scen[512];
		snprintf(dir, sizeof dir, "%s/%s", SHIMCHECK_SHIM_DIR, variant);
		snprintf(scen, sizeof scen, "%s/%s", SHIMCHECK_SOURCE_DIR,
			 sj ? json_string_value(sj) : "scenarios/default.json");
		pl_init(&p);
		assert_int_equal(pl_load_code(&p, dir), PL_OK);
		/* the unmutated variant passes the scenario: the mutant's failure is its own */
		assert_int_equal(pl_load_scenario(&p, scen), PL_OK);
		assert_int_equal(pl_run(&p), PL_OK);
		struct shim_code mut;
		assert_true(code_dup(&mut, &p.code));
		size_t k;
		json_t *e;
		json_array_foreach(json_object_get(m, "edits"), k, e)
			apply(&mut, e, name);
		pl_use_code(&p, &mut);
		assert_int_equal(pl_load_scenario(&p, scen), PL_OK);
		enum pl_status st = pl_run(&p);
		int rule = -1;
		for (int r = 0; r < R_N; r++)
			if (strcmp(rule_id((enum rule)r), expect) == 0)
				rule = r;
		assert_true(rule >= 0);
		print_message("%-32s %-8s -> %s%s%s\n", name, variant, st == PL_VIOLATION ? rule_id(p.v.v[0].rule) : "pass",
			      st == PL_VIOLATION ? ": " : "", st == PL_VIOLATION ? p.v.v[0].msg : "");
		assert_int_equal(st, PL_VIOLATION);
		if (p.v.counts[rule] == 0)
			fail_msg("%s: expected %s, not reported (first: %s)", name, expect, rule_id(p.v.v[0].rule));
		pl_free(&p);
	}
	json_decref(cat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(every_mutant_is_caught_by_its_rule)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
