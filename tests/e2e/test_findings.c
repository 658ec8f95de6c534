/*
 * test_findings: every class of finding keeps one reproducer under tests/findings/, with
 * its expected verdict per variant (tests/findings/expected.txt): "pass", the rule the run
 * must report first, or "rejected:REASON".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pipeline.h"

static void check_one(const char *variant, const char *file, const char *want)
{
	static struct pipeline p;
	char dir[600], path[600];
	pl_init(&p);
	snprintf(dir, sizeof dir, "%s/%s", SHIMCHECK_SHIM_DIR, variant);
	assert_int_equal(pl_load_code(&p, dir), PL_OK);
	snprintf(path, sizeof path, "%s/tests/findings/%s.json", SHIMCHECK_SOURCE_DIR, file);
	enum pl_status st = pl_load_scenario(&p, path);
	char got[160];
	if (st == PL_INPUT) {
		const char *r = strstr(p.err, "(rejected: ");
		assert_non_null(r);
		snprintf(got, sizeof got, "rejected:%.*s", (int)strcspn(r + 11, ")"), r + 11);
	} else {
		assert_int_equal(st, PL_OK);
		st = pl_run(&p);
		assert_true(st == PL_OK || st == PL_VIOLATION);
		snprintf(got, sizeof got, "%s", st == PL_OK ? "pass" : rule_id(p.v.v[0].rule));
	}
	print_message("%-26s %-9s -> %-28s (expected %s)\n", file, variant, got, want);
	assert_string_equal(got, want);
	pl_free(&p);
}

static void every_reproducer_gives_its_verdict(void **state)
{
	(void)state;
	char path[600];
	snprintf(path, sizeof path, "%s/tests/findings/expected.txt", SHIMCHECK_SOURCE_DIR);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		char file[128], a[128], b[128];
		assert_int_equal(sscanf(line, "%127s %127s %127s", file, a, b), 3);
		const char *vv[2] = {a, b};
		for (int k = 0; k < 2; k++) {
			char *eq = strchr(vv[k], '=');
			assert_non_null(eq);
			*eq = '\0';
			check_one(vv[k], file, eq + 1);
		}
		n++;
	}
	fclose(f);
	assert_true(n >= 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(every_reproducer_gives_its_verdict)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
