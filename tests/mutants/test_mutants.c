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

static enum code_bin_id bin_id(const char *s)
{
	for (int b = 0; b < CB_N; b++)
		if (strcmp(s, code_bin_name((enum code_bin_id)b)) == 0)
			return (enum code_bin_id)b;
	fail_msg("unknown binary %s", s);
	return CB_HOST;
}

static size_t hex_bytes(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;
	while (*s && n < max) {
		if (*s == ' ') {
			s++;
			continue;
		}
		unsigned v;
		assert_int_equal(sscanf(s, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static void apply(struct shim_code *c, json_t *e, const char *name)
{
	enum code_bin_id b = bin_id(json_string_value(json_object_get(e, "binary")));
	const char *from = json_string_value(json_object_get(e, "from"));
	const char *find = json_string_value(json_object_get(e, "find"));
	const char *op = json_string_value(json_object_get(e, "op"));
	json_t *nth = json_object_get(e, "nth");
	struct insn_ref r, r2;
	if (!mutate_find(c, b, from, find, nth ? (int)json_integer_value(nth) : 1, &r))
		fail_msg("%s: no `%s` at or after %s in %s", name, find, from, code_bin_name(b));
	bool ok = false;
	if (strcmp(op, "nop") == 0) {
		ok = mutate_nop(c, &r);
	} else if (strcmp(op, "replace") == 0) {
		uint8_t bytes[16];
		size_t n = hex_bytes(json_string_value(json_object_get(e, "bytes")), bytes, sizeof bytes);
		ok = mutate_replace(c, &r, bytes, n);
	} else if (strcmp(op, "swap_next") == 0) {
		static struct insn_ref list[1024];
		int n = mutate_list(c, b, list, 1024);
		for (int i = 0; i + 1 < n; i++)
			if (list[i].off == r.off)
				ok = mutate_swap_next(c, &list[i], &list[i + 1]);
	} else if (strcmp(op, "move_before") == 0) {
		const char *before = json_string_value(json_object_get(e, "before"));
		if (!mutate_find(c, b, from, before, 1, &r2))
			fail_msg("%s: no `%s` for move_before", name, before);
		ok = mutate_move_before(c, &r, &r2);
	}
	if (!ok)
		fail_msg("%s: edit %s on `%s` does not apply", name, op, r.text);
	print_message("  %s: %s `%s` at %s+0x%x\n", name, op, r.text, code_bin_name(b), r.off);
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
