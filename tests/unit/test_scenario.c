/*
 * test_scenario.c: scenario_parse() on in-memory JSON, one test per rejection reason, with the
 * exact reason and the JSON path it names.
 *
 * BASE is scenarios/default.json as of this writing; each test mutates one spot of it (an
 * exact text replacement that must match once). Tests that expose a bug in the code under
 * test are marked BUG and are expected to fail until it is fixed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mmu.h"
#include "scenario.h"

static const char BASE[] =
	"{\n"
	"  \"schema\": 1,\n"
	"  \"name\": \"default\",\n"
	"  \"description\": \"Two round trips host->monitor->host with 4 KiB pages.\",\n"
	"  \"paging\": \"4k\",\n"
	"  \"round_trips\": 2,\n"
	"  \"shim\": \"0xC8801000\",\n"
	"  \"phys_window\": {\"base\": \"0x00400000\", \"size\": \"0x00C00000\"},\n"
	"  \"host\": {\n"
	"    \"state\": {\"cr0_wp\": true, \"cr4_pge\": false, \"efer_nxe\": false, \"ldtr\": \"0x0000\"},\n"
	"    \"layout\": {\"code\": \"0xC0100000\", \"stack\": \"0xC0101000\", \"gdt\": \"0xC0102000\", \"idt\": \"0xC0103000\", \"tss\": \"0xC0104000\"},\n"
	"    \"selectors\": {\"cs\": \"0x08\", \"ds\": \"0x10\", \"tss\": \"0x18\"},\n"
	"    \"maps\": [\n"
	"      {\"linear\": \"monitor.gdt\", \"to\": \"monitor.gdt\", \"flags\": \"wa\"}\n"
	"    ]\n"
	"  },\n"
	"  \"monitor\": {\n"
	"    \"state\": {\"cr0_wp\": true, \"cr4_pge\": false, \"efer_nxe\": false, \"ldtr\": \"0x0000\"},\n"
	"    \"layout\": {\"code\": \"0xE0000000\", \"stack\": \"0xE0001000\", \"gdt\": \"0xE0002000\", \"idt\": \"0xE0003000\", \"tss\": \"0xE0004000\",\n"
	"               \"shim_alias\": \"0xE0005000\", \"pt_window\": \"0xE0006000\"},\n"
	"    \"selectors\": {\"cs\": \"0x20\", \"ds\": \"0x28\", \"tss\": \"0x30\"},\n"
	"    \"maps\": [\n"
	"      {\"linear\": \"host.gdt\", \"to\": \"host.gdt\", \"flags\": \"wa\"}\n"
	"    ]\n"
	"  },\n"
	"  \"guest\": {\n"
	"    \"shim_pte\": {\"to\": \"guest.page0\", \"flags\": \"wuad\"},\n"
	"    \"maps\": [\n"
	"      {\"linear\": \"0x00400000\", \"to\": \"guest.page1\", \"flags\": \"wu\"},\n"
	"      {\"linear\": \"0x08048000\", \"to\": \"guest.page2\", \"flags\": \"u\"}\n"
	"    ]\n"
	"  }\n"
	"}\n";

/* Fixture: the parsed scenario, the error, and the mutated text. */
struct fx {
	struct scenario sc;
	struct sc_error err;
	char text[sizeof BASE + 1024];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	if (f == NULL)
		return -1;
	memcpy(f->text, BASE, sizeof BASE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* Replace the one occurrence of from in f->text by to. */
static void sub(struct fx *f, const char *from, const char *to)
{
	char *p = strstr(f->text, from);

	if (p == NULL)
		fail_msg("\"%s\" is not in the scenario text", from);
	if (strstr(p + 1, from) != NULL)
		fail_msg("\"%s\" occurs more than once", from);
	size_t lf = strlen(from), lt = strlen(to), rest = strlen(p + lf);
	assert_true(strlen(f->text) - lf + lt < sizeof f->text);
	memmove(p + lt, p + lf, rest + 1);
	memcpy(p, to, lt);
}

static enum sc_reason parse(struct fx *f)
{
	return scenario_parse(f->text, strlen(f->text), &f->sc, &f->err);
}

/* s with bytes outside printable ASCII as \xNN, for messages. */
static const char *printable(const char *s, char *buf, size_t n)
{
	size_t o = 0;

	for (; *s && o + 5 < n; s++)
		o += (size_t)snprintf(buf + o, n - o, *s >= 0x20 && *s < 0x7F ? "%c" : "\\x%02x", (unsigned char)*s);
	buf[o] = '\0';
	return buf;
}

/* The parse is rejected with reason r, naming field. */
static void rejects(struct fx *f, enum sc_reason r, const char *field)
{
	enum sc_reason got = parse(f);
	char shown[4 * sizeof f->err.field + 8];

	if (got != r || strcmp(f->err.field, field) != 0)
		fail_msg("got %s at \"%s\" (%s), expected %s at \"%s\"", sc_reason_name(got),
			 printable(f->err.field, shown, sizeof shown), f->err.detail, sc_reason_name(r), field);
	assert_int_equal(f->err.reason, r);
	assert_true(strlen(f->err.detail) > 0);
}

#define assert_contains(hay, needle)                                                      \
	do {                                                                              \
		const char *h_ = (hay);                                                   \
		if (strstr(h_, (needle)) == NULL)                                         \
			fail_msg("\"%s\"\n  does not contain \"%s\"", h_, (needle));      \
	} while (0)

/* ---- the default scenario ------------------------------------------------------------------- */

static void default_parses_with_its_values(void **state)
{
	struct fx *f = *state;
	const struct scenario *sc = &f->sc;

	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->err.reason, SC_OK);
	assert_string_equal(sc->name, "default");
	assert_int_equal(sc->rounds, 2);
	assert_int_equal(sc->shim_lin, 0xC8801000u);
	assert_false(sc->cs_wrap);
	assert_int_equal(sc->phys_base, 0x00400000u);
	assert_int_equal(sc->phys_size, 0x00C00000u);

	const uint32_t host_lin[OBJ_NWORLD] = {0xC0100000u, 0xC0101000u, 0xC0102000u, 0xC0103000u, 0xC0104000u};
	const uint32_t mon_lin[OBJ_NMON] = {0xE0000000u, 0xE0001000u, 0xE0002000u, 0xE0003000u,
					    0xE0004000u, 0xE0005000u, 0xE0006000u};
	for (int i = 0; i < OBJ_NWORLD; i++)
		assert_int_equal(sc->w[SP_HOST].lin[i], host_lin[i]);
	for (int i = 0; i < OBJ_NMON; i++)
		assert_int_equal(sc->w[SP_MON].lin[i], mon_lin[i]);
	assert_int_equal(sc->w[SP_HOST].sel_cs, 0x08);
	assert_int_equal(sc->w[SP_HOST].sel_ds, 0x10);
	assert_int_equal(sc->w[SP_HOST].sel_tss, 0x18);
	assert_int_equal(sc->w[SP_MON].sel_cs, 0x20);
	assert_int_equal(sc->w[SP_MON].sel_ds, 0x28);
	assert_int_equal(sc->w[SP_MON].sel_tss, 0x30);
	for (int s = 0; s < 2; s++) {
		const struct sc_state *st = &sc->w[s].state;
		assert_int_equal(st->paging, SC_4K);
		assert_true(st->cr0_wp);
		assert_false(st->cr4_pge);
		assert_false(st->efer_nxe);
		assert_int_equal(st->ldtr, 0);
	}

	/* Each world maps the other's GDT at the same linear address. */
	assert_int_equal(sc->w[SP_HOST].nmaps, 1);
	const struct sc_map *hm = &sc->w[SP_HOST].maps[0];
	assert_int_equal(hm->lin, 0xE0002000u);
	assert_int_equal(hm->to.kind, FR_WORLD);
	assert_int_equal(hm->to.sp, SP_MON);
	assert_int_equal(hm->to.obj, OBJ_GDT);
	assert_int_equal(hm->flags, PTE_W | PTE_A);
	assert_false(hm->large);
	assert_false(hm->has_raw);
	assert_string_equal(hm->field, "host.maps[0]");
	assert_int_equal(sc->w[SP_MON].nmaps, 1);
	const struct sc_map *mm = &sc->w[SP_MON].maps[0];
	assert_int_equal(mm->lin, 0xC0102000u);
	assert_int_equal(mm->to.kind, FR_WORLD);
	assert_int_equal(mm->to.sp, SP_HOST);
	assert_int_equal(mm->to.obj, OBJ_GDT);

	const struct sc_map *g = &sc->guest_shim;
	assert_int_equal(g->to.kind, FR_GUEST);
	assert_int_equal(g->to.obj, 0);
	assert_int_equal(g->flags, PTE_W | PTE_U | PTE_A | PTE_D);
	assert_int_equal(g->flags_hi, 0);
	assert_int_equal(g->lin, 0xC8801000u);
	assert_false(g->large);
	assert_false(g->has_raw);
	assert_string_equal(g->field, "guest.shim_pte");

	assert_int_equal(sc->nguest, 2);
	assert_int_equal(sc->guest[0].lin, 0x00400000u);
	assert_int_equal(sc->guest[0].to.kind, FR_GUEST);
	assert_int_equal(sc->guest[0].to.obj, 1);
	assert_int_equal(sc->guest[0].flags, PTE_W | PTE_U);
	assert_int_equal(sc->guest[1].lin, 0x08048000u);
	assert_int_equal(sc->guest[1].to.obj, 2);
	assert_int_equal(sc->guest[1].flags, PTE_U);
	assert_string_equal(sc->guest[1].field, "guest.maps[1]");
	/* by default the guest reads its page at the shim address */
	assert_int_equal(sc->ntouch, 1);
	assert_int_equal(sc->touch[0], 0xC8801000u);

	/* Unswitched state agrees between the spaces. */
	struct sc_switches none = {.paging = false};
	assert_int_equal(scenario_check_unswitched(sc, &none, &f->err), SC_OK);
}

static void default_json_file_loads(void **state)
{
	struct fx *f = *state;

	assert_int_equal(scenario_load(SHIMCHECK_SOURCE_DIR "/scenarios/default.json", &f->sc, &f->err), SC_OK);
	assert_int_equal(f->sc.shim_lin, 0xC8801000u);
	assert_int_equal(f->sc.rounds, 2);
	assert_int_equal(scenario_load(SHIMCHECK_SOURCE_DIR "/scenarios/no-such-file.json", &f->sc, &f->err), SC_JSON);
	assert_string_equal(f->err.field, "(file)");
}

static void numbers_as_json_integers_and_hex_strings_agree(void **state)
{
	struct fx *f = *state;

	sub(f, "\"round_trips\": 2", "\"round_trips\": \"64\"");
	sub(f, "\"shim\": \"0xC8801000\"", "\"shim\": 3363835904");
	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->sc.rounds, 64);
	assert_int_equal(f->sc.shim_lin, 0xC8801000u);
}

/* docs/scenario.md: "0x..." strings are hexadecimal, all others decimal: a leading 0 is
 * not octal, and "0x" alone is not a number. */
static void number_string_with_leading_zero_is_decimal(void **state)
{
	struct fx *f = *state;

	sub(f, "\"round_trips\": 2", "\"round_trips\": \"010\"");
	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->sc.rounds, 10);
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": \"08\"");
	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->sc.rounds, 8);
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": \"0x\"");
	rejects(f, SC_TYPE, "round_trips");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": \"0x1g\"");
	rejects(f, SC_TYPE, "round_trips");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": \" 8\"");
	rejects(f, SC_TYPE, "round_trips");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": \"+8\"");
	rejects(f, SC_TYPE, "round_trips");
}

/* ---- SC_JSON -------------------------------------------------------------------------------- */

static void json_truncated_text_is_json_with_position(void **state)
{
	struct fx *f = *state;

	enum sc_reason r = scenario_parse(f->text, strlen(f->text) / 2, &f->sc, &f->err);
	assert_int_equal(r, SC_JSON);
	assert_int_equal(f->err.reason, SC_JSON);
	assert_int_equal(strncmp(f->err.field, "line ", 5), 0);
	assert_contains(f->err.field, ", column ");
}

static void json_empty_string_is_json(void **state)
{
	struct fx *f = *state;

	assert_int_equal(scenario_parse("", 0, &f->sc, &f->err), SC_JSON);
	assert_int_equal(scenario_parse("   \n", 4, &f->sc, &f->err), SC_JSON);
	assert_int_equal(f->err.reason, SC_JSON);
}

static void json_deep_nesting_is_json_not_a_crash(void **state)
{
	struct fx *f = *state;
	enum { DEPTH = 100000 };
	char *s = malloc(2 * DEPTH + 1);

	assert_non_null(s);
	memset(s, '[', DEPTH);
	memset(s + DEPTH, ']', DEPTH);
	s[2 * DEPTH] = '\0';
	assert_int_equal(scenario_parse(s, 2 * DEPTH, &f->sc, &f->err), SC_JSON);
	/* nested objects, unterminated */
	for (int i = 0; i < DEPTH / 5; i++)
		memcpy(s + 5 * i, "{\"a\":", 5);
	assert_int_equal(scenario_parse(s, DEPTH, &f->sc, &f->err), SC_JSON);
	free(s);
}

static void json_nesting_inside_a_field_is_a_type_error(void **state)
{
	struct fx *f = *state;
	char deep[2 * 200 + 1];

	memset(deep, '[', 200);
	memset(deep + 200, ']', 200);
	deep[400] = '\0';
	char desc[512];
	snprintf(desc, sizeof desc, "\"description\": %s,\n  \"paging\"", deep);
	sub(f, "\"description\": \"Two round trips host->monitor->host with 4 KiB pages.\",\n  \"paging\"", desc);
	rejects(f, SC_TYPE, "description");
}

static void json_duplicate_key_is_json(void **state)
{
	struct fx *f = *state;

	sub(f, "\"round_trips\": 2,", "\"round_trips\": 2, \"round_trips\": 3,");
	assert_int_equal(parse(f), SC_JSON);
}

/* ---- SC_TYPE -------------------------------------------------------------------------------- */

static void type_round_trips_string_abc(void **state)
{
	struct fx *f = *state;

	sub(f, "\"round_trips\": 2", "\"round_trips\": \"abc\"");
	rejects(f, SC_TYPE, "round_trips");
	assert_contains(f->err.detail, "\"abc\" is not a number");
}

static void type_other_wrong_types_name_their_field(void **state)
{
	struct fx *f = *state;

	sub(f, "\"shim\": \"0xC8801000\"", "\"shim\": true");
	rejects(f, SC_TYPE, "shim");

	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": 2.5");
	rejects(f, SC_TYPE, "round_trips");

	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"flags\": \"wuad\"", "\"flags\": \"wuax\"");
	rejects(f, SC_TYPE, "guest.shim_pte.flags");

	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"paging\": \"4k\"", "\"paging\": \"2m\"");
	rejects(f, SC_TYPE, "paging");

	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "{\"to\": \"guest.page0\", \"flags\": \"wuad\"}", "{\"to\": \"guest.page0\", \"flags\": \"wuad\", \"size\": \"2m\"}");
	rejects(f, SC_TYPE, "guest.shim_pte.size");

	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "{\"to\": \"guest.page0\", \"flags\": \"wuad\"}", "{\"raw\": \"0x0\", \"flags\": \"wuad\"}");
	rejects(f, SC_TYPE, "guest.shim_pte.raw");

	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"to\": \"guest.page1\"", "\"to\": \"nowhere\"");
	assert_int_equal(parse(f), SC_TYPE); /* the field: see bad_map_value_names_its_field */
	assert_contains(f->err.detail, "\"nowhere\" names no frame");

	assert_int_equal(scenario_parse("[1, 2]", 6, &f->sc, &f->err), SC_TYPE);
	assert_string_equal(f->err.field, "(top level)");
}

/* ---- SC_UNKNOWN ----------------------------------------------------------------------------- */

static void unknown_key_at_top_level(void **state)
{
	struct fx *f = *state;

	sub(f, "\"schema\": 1,", "\"schema\": 1, \"bogus\": 1,");
	rejects(f, SC_UNKNOWN, "bogus");
}

static void unknown_key_in_host_layout(void **state)
{
	struct fx *f = *state;

	sub(f, "\"tss\": \"0xC0104000\"}", "\"tss\": \"0xC0104000\", \"bogus\": \"0xC0105000\"}");
	rejects(f, SC_UNKNOWN, "host.layout.bogus");
}

static void unknown_monitor_object_in_host_layout(void **state)
{
	struct fx *f = *state;

	sub(f, "\"tss\": \"0xC0104000\"}", "\"tss\": \"0xC0104000\", \"shim_alias\": \"0xC0105000\"}");
	rejects(f, SC_UNKNOWN, "host.layout.shim_alias");
}

static void unknown_linear_in_guest_shim_pte(void **state)
{
	struct fx *f = *state;

	sub(f, "{\"to\": \"guest.page0\"", "{\"linear\": \"shim\", \"to\": \"guest.page0\"");
	rejects(f, SC_UNKNOWN, "guest.shim_pte.linear");
}

/* ---- SC_MISSING ----------------------------------------------------------------------------- */

static void missing_shim(void **state)
{
	struct fx *f = *state;

	sub(f, "  \"shim\": \"0xC8801000\",\n", "");
	rejects(f, SC_MISSING, "shim");
}

static void missing_layout_object_and_map_target(void **state)
{
	struct fx *f = *state;

	sub(f, ", \"tss\": \"0xE0004000\"", "");
	rejects(f, SC_MISSING, "monitor.layout.tss");

	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"to\": \"guest.page2\", ", "");
	rejects(f, SC_MISSING, "guest.maps[1].to");
}

/* ---- SC_RANGE ------------------------------------------------------------------------------- */

static void range_round_trips_0_and_65_rejected_64_accepted(void **state)
{
	struct fx *f = *state;

	sub(f, "\"round_trips\": 2", "\"round_trips\": 0");
	rejects(f, SC_RANGE, "round_trips");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": 65");
	rejects(f, SC_RANGE, "round_trips");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": -1");
	rejects(f, SC_RANGE, "round_trips");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"round_trips\": 2", "\"round_trips\": 64");
	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->sc.rounds, 64);
}

static void range_misaligned_shim(void **state)
{
	struct fx *f = *state;

	sub(f, "\"shim\": \"0xC8801000\"", "\"shim\": \"0xC8801004\"");
	rejects(f, SC_RANGE, "shim");
	assert_contains(f->err.detail, "0xc8801004 is not page aligned");
}

static void range_selector_with_rpl_3_ti_or_null(void **state)
{
	struct fx *f = *state;

	sub(f, "\"cs\": \"0x08\"", "\"cs\": \"0x0B\"");
	rejects(f, SC_RANGE, "host.selectors.cs");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"tss\": \"0x30\"", "\"tss\": \"0x34\"");
	rejects(f, SC_RANGE, "monitor.selectors.tss");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"ds\": \"0x10\"", "\"ds\": \"0x00\"");
	rejects(f, SC_RANGE, "host.selectors.ds");
}

static void range_schema_2_and_guest_page_16(void **state)
{
	struct fx *f = *state;

	sub(f, "\"schema\": 1", "\"schema\": 2");
	rejects(f, SC_RANGE, "schema");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"guest.page2\"", "\"guest.page16\"");
	assert_int_equal(parse(f), SC_RANGE); /* the field: see bad_map_value_names_its_field */
	assert_contains(f->err.detail, "guest pages are guest.page0..guest.page15");
}

/* BUG (get_map, listed under Known issues in docs/scenario.md): a bad "linear" or "to" value
 * inside a map is reported with FIELD taken from get_map's path buffer f before anything was
 * written into it (join() runs only on the "missing" path), so err.field holds stale stack
 * bytes instead of "guest.maps[0].to". */
static void bad_map_value_names_its_field(void **state)
{
	struct fx *f = *state;

	sub(f, "\"to\": \"guest.page1\"", "\"to\": \"nowhere\"");
	rejects(f, SC_TYPE, "guest.maps[0].to");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"guest.page2\"", "\"guest.page16\"");
	rejects(f, SC_RANGE, "guest.maps[1].to");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "{\"linear\": \"0x00400000\"", "{\"linear\": \"low\"");
	rejects(f, SC_TYPE, "guest.maps[0].linear");
}

static void range_guest_touch_must_be_in_present_guest_memory(void **state)
{
	struct fx *f = *state;
	static const char at[] = "\"shim_pte\": {\"to\": \"guest.page0\", \"flags\": \"wuad\"},";
	char with[160];

	snprintf(with, sizeof with, "%s \"touch\": [\"shim\", \"0x00400FFC\", \"0x08048000\"],", at);
	sub(f, at, with);
	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->sc.ntouch, 3);
	assert_int_equal(f->sc.touch[0], 0xC8801000u);
	assert_int_equal(f->sc.touch[1], 0x00400FFCu);

	memcpy(f->text, BASE, sizeof BASE);
	snprintf(with, sizeof with, "%s \"touch\": [\"0x00400000\", \"0x00400FFD\"],", at);
	sub(f, at, with);
	rejects(f, SC_RANGE, "guest.touch[1]"); /* a dword there crosses the page */

	memcpy(f->text, BASE, sizeof BASE);
	snprintf(with, sizeof with, "%s \"touch\": [\"0x10000000\"],", at);
	sub(f, at, with);
	rejects(f, SC_RANGE, "guest.touch[0]");

	memcpy(f->text, BASE, sizeof BASE);
	snprintf(with, sizeof with, "%s \"touch\": [],", at);
	sub(f, at, with);
	rejects(f, SC_TYPE, "guest.touch");
}

/* ---- SC_OVERLAP ----------------------------------------------------------------------------- */

static void overlap_host_stack_equal_to_code(void **state)
{
	struct fx *f = *state;

	sub(f, "\"stack\": \"0xC0101000\"", "\"stack\": \"0xC0100000\"");
	rejects(f, SC_OVERLAP, "host.layout.stack");
	assert_contains(f->err.detail, "is also host.layout.code");
}

static void overlap_guest_map_at_monitor_gdt(void **state)
{
	struct fx *f = *state;

	sub(f, "{\"linear\": \"0x00400000\"", "{\"linear\": \"0xE0002000\"");
	rejects(f, SC_OVERLAP, "guest.maps[0].linear");
	assert_contains(f->err.detail, "the monitor's gdt");
}

static void overlap_layout_at_shim_and_duplicate_selector(void **state)
{
	struct fx *f = *state;

	sub(f, "\"idt\": \"0xE0003000\"", "\"idt\": \"0xC8801000\"");
	rejects(f, SC_OVERLAP, "monitor.layout.idt");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"ds\": \"0x28\"", "\"ds\": \"0x20\"");
	rejects(f, SC_OVERLAP, "monitor.selectors.ds");
}

/* ---- SC_WINDOW ------------------------------------------------------------------------------ */

static void window_raw_frame_outside_phys_window(void **state)
{
	struct fx *f = *state;

	sub(f, "\"to\": \"guest.page1\"", "\"to\": \"0x01000000\""); /* the first page after the window */
	rejects(f, SC_WINDOW, "guest.maps[0].to");
	memcpy(f->text, BASE, sizeof BASE);
	sub(f, "\"to\": \"guest.page1\"", "\"to\": \"0x00FFF000\""); /* the last page inside */
	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->sc.guest[0].to.kind, FR_RAW);
	assert_int_equal(f->sc.guest[0].to.raw, 0x00FFF000u);
}

static void window_below_1_mib_is_window(void **state)
{
	struct fx *f = *state;

	sub(f, "\"base\": \"0x00400000\"", "\"base\": \"0x00000000\"");
	rejects(f, SC_WINDOW, "phys_window");
}

/* ---- SC_UNSWITCHED -------------------------------------------------------------------------- */

static void unswitched_paging_4k_host_pae_monitor(void **state)
{
	struct fx *f = *state;

	sub(f, "\"monitor\": {\n    \"state\": {\"cr0_wp\"", "\"monitor\": {\n    \"state\": {\"paging\": \"pae\", \"cr0_wp\"");
	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->sc.w[SP_HOST].state.paging, SC_4K);
	assert_int_equal(f->sc.w[SP_MON].state.paging, SC_PAE);

	struct sc_switches none = {.paging = false};
	assert_int_equal(scenario_check_unswitched(&f->sc, &none, &f->err), SC_UNSWITCHED);
	assert_int_equal(f->err.reason, SC_UNSWITCHED);
	assert_string_equal(f->err.field, "monitor.state.paging");
	assert_contains(f->err.detail, "host pages with \"4k\", monitor with \"pae\"");

	struct sc_switches paging = {.paging = true};
	memset(&f->err, 0, sizeof f->err);
	assert_int_equal(scenario_check_unswitched(&f->sc, &paging, &f->err), SC_OK);
}

static void unswitched_each_state_names_its_field(void **state)
{
	struct fx *f = *state;
	struct sc_switches none = {.paging = false};

	assert_int_equal(parse(f), SC_OK);
	f->sc.w[SP_MON].state.cr0_wp = false;
	assert_int_equal(scenario_check_unswitched(&f->sc, &none, &f->err), SC_UNSWITCHED);
	assert_string_equal(f->err.field, "monitor.state.cr0_wp");
	f->sc.w[SP_MON].state.cr0_wp = true;
	f->sc.w[SP_HOST].state.cr4_pge = true;
	assert_int_equal(scenario_check_unswitched(&f->sc, &none, &f->err), SC_UNSWITCHED);
	assert_string_equal(f->err.field, "monitor.state.cr4_pge");
	struct sc_switches pge = {.cr4_pge = true};
	assert_int_equal(scenario_check_unswitched(&f->sc, &pge, &f->err), SC_OK);
	f->sc.w[SP_HOST].state.cr4_pge = false;
	f->sc.w[SP_MON].state.efer_nxe = true;
	assert_int_equal(scenario_check_unswitched(&f->sc, &none, &f->err), SC_UNSWITCHED);
	assert_string_equal(f->err.field, "monitor.state.efer_nxe");
	f->sc.w[SP_MON].state.efer_nxe = false;
	f->sc.w[SP_MON].state.ldtr = 0x38;
	assert_int_equal(scenario_check_unswitched(&f->sc, &none, &f->err), SC_UNSWITCHED);
	assert_string_equal(f->err.field, "monitor.state.ldtr");
}

/* ---- SC_PAGING ------------------------------------------------------------------------------ */

static void paging_large_map_with_4k_paging(void **state)
{
	struct fx *f = *state;

	sub(f, "\"flags\": \"wa\"}\n    ]\n  },\n  \"monitor\"",
	    "\"flags\": \"wa\"},\n      {\"linear\": \"0xD0000000\", \"to\": \"0x00800000\", \"size\": \"large\"}\n    ]\n  },\n  \"monitor\"");
	rejects(f, SC_PAGING, "host.maps[1].size");
	/* the same map is fine with PSE */
	sub(f, "\"paging\": \"4k\"", "\"paging\": \"pse\"");
	assert_int_equal(parse(f), SC_OK);
	assert_true(f->sc.w[SP_HOST].maps[1].large);
	assert_int_equal(f->sc.w[SP_HOST].maps[1].to.raw, 0x00800000u);
}

/* A large guest page at the shim address: not with 4 KiB paging; with PSE it parses, and the
 * variant check refuses it unless the variant swaps the whole PDE. */
static void paging_large_guest_page_at_shim_address(void **state)
{
	struct fx *f = *state;

	sub(f, "{\"to\": \"guest.page0\", \"flags\": \"wuad\"}",
	    "{\"to\": \"0x00800000\", \"flags\": \"wuad\", \"size\": \"large\"}");
	rejects(f, SC_PAGING, "guest.shim_pte.size");
	assert_contains(f->err.detail, "large pages need paging");

	sub(f, "\"paging\": \"4k\"", "\"paging\": \"pse\"");
	assert_int_equal(parse(f), SC_OK);
	assert_true(f->sc.guest_shim.large);
	struct sc_switches pte_swap = {.paging = false}, pde_swap = {.pde_swap = true};
	assert_int_equal(scenario_check_unswitched(&f->sc, &pte_swap, &f->err), SC_PAGING);
	assert_string_equal(f->err.field, "guest.shim_pte.size");
	assert_contains(f->err.detail, "needs a PDE swap");
	memset(&f->err, 0, sizeof f->err);
	assert_int_equal(scenario_check_unswitched(&f->sc, &pde_swap, &f->err), SC_OK);
}

/* A PDE swap must not unmap the monitor's own pages in the shim's 4 MiB. */
static void overlap_monitor_map_in_swapped_pde_region(void **state)
{
	struct fx *f = *state;

	sub(f, "{\"linear\": \"host.gdt\", \"to\": \"host.gdt\", \"flags\": \"wa\"}",
	    "{\"linear\": \"host.gdt\", \"to\": \"host.gdt\", \"flags\": \"wa\"},\n"
	    "      {\"linear\": \"0xC8BFF000\", \"to\": \"host.idt\", \"flags\": \"a\"}");
	assert_int_equal(parse(f), SC_OK);
	struct sc_switches pte_swap = {.paging = false}, pde_swap = {.pde_swap = true};
	assert_int_equal(scenario_check_unswitched(&f->sc, &pte_swap, &f->err), SC_OK);
	assert_int_equal(scenario_check_unswitched(&f->sc, &pde_swap, &f->err), SC_OVERLAP);
	assert_string_equal(f->err.field, "monitor.maps[1].linear");
}

static void paging_large_page_with_named_frame(void **state)
{
	struct fx *f = *state;

	sub(f, "\"paging\": \"4k\"", "\"paging\": \"pse\"");
	sub(f, "{\"linear\": \"0x00400000\", \"to\": \"guest.page1\", \"flags\": \"wu\"}",
	    "{\"linear\": \"0x00400000\", \"to\": \"guest.page1\", \"flags\": \"wu\", \"size\": \"large\"}");
	rejects(f, SC_PAGING, "guest.maps[0].to");
}

/* docs/scenario.md: "A large page that covers a layout object, the shim page or another
 * mapping of the same space is also reported as overlap". */
static void overlap_large_guest_page_covering_shim(void **state)
{
	struct fx *f = *state;

	sub(f, "\"paging\": \"4k\"", "\"paging\": \"pse\"");
	sub(f, "\"flags\": \"u\"}\n", "\"flags\": \"u\"},\n      {\"linear\": \"0xC8800000\", \"to\": \"0x00800000\", \"size\": \"large\"}\n");
	rejects(f, SC_OVERLAP, "guest.maps[2].linear");
	assert_contains(f->err.detail, "0xc8800000 is the monitor's shim");
	/* one 4 MiB further it is accepted */
	sub(f, "\"linear\": \"0xC8800000\"", "\"linear\": \"0xC8C00000\"");
	assert_int_equal(parse(f), SC_OK);
	assert_int_equal(f->sc.nguest, 3);
}

/* ---- the reason table ----------------------------------------------------------------------- */

static void reason_names_and_whys_cover_every_reason(void **state)
{
	(void)state;
	assert_int_equal(SC_NREASONS, 11);
	for (int r = 0; r < SC_NREASONS; r++) {
		const char *n = sc_reason_name((enum sc_reason)r), *w = sc_reason_why((enum sc_reason)r);
		assert_non_null(n);
		assert_non_null(w);
		assert_true(strlen(n) > 0);
		assert_true(strlen(w) > 0);
		assert_string_not_equal(n, "?");
		assert_string_not_equal(w, "?");
		for (int s = 0; s < r; s++)
			assert_string_not_equal(n, sc_reason_name((enum sc_reason)s));
	}
	assert_string_equal(sc_reason_name(SC_OK), "ok");
	assert_string_equal(sc_reason_name(SC_JSON), "json");
	assert_string_equal(sc_reason_name(SC_UNKNOWN), "unknown-field");
	assert_string_equal(sc_reason_name(SC_MISSING), "missing-field");
	assert_string_equal(sc_reason_name(SC_UNSWITCHED), "unswitched-state");
	assert_string_equal(sc_reason_name(SC_PAGING), "paging-conflict");
	assert_string_equal(sc_reason_name(SC_FULL), "image-full");
	assert_string_equal(sc_reason_name(SC_NREASONS), "?");
	assert_string_equal(sc_reason_why(SC_NREASONS), "?");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(default_parses_with_its_values),
		T(default_json_file_loads),
		T(numbers_as_json_integers_and_hex_strings_agree),
		T(number_string_with_leading_zero_is_decimal),
		T(json_truncated_text_is_json_with_position),
		T(json_empty_string_is_json),
		T(json_deep_nesting_is_json_not_a_crash),
		T(json_nesting_inside_a_field_is_a_type_error),
		T(json_duplicate_key_is_json),
		T(type_round_trips_string_abc),
		T(type_other_wrong_types_name_their_field),
		T(unknown_key_at_top_level),
		T(unknown_key_in_host_layout),
		T(unknown_monitor_object_in_host_layout),
		T(unknown_linear_in_guest_shim_pte),
		T(missing_shim),
		T(missing_layout_object_and_map_target),
		T(range_round_trips_0_and_65_rejected_64_accepted),
		T(range_misaligned_shim),
		T(range_selector_with_rpl_3_ti_or_null),
		T(range_schema_2_and_guest_page_16),
		T(range_guest_touch_must_be_in_present_guest_memory),
		T(overlap_host_stack_equal_to_code),
		T(overlap_guest_map_at_monitor_gdt),
		T(overlap_layout_at_shim_and_duplicate_selector),
		T(window_raw_frame_outside_phys_window),
		T(window_below_1_mib_is_window),
		T(unswitched_paging_4k_host_pae_monitor),
		T(unswitched_each_state_names_its_field),
		T(paging_large_map_with_4k_paging),
		T(paging_large_guest_page_at_shim_address),
		T(overlap_monitor_map_in_swapped_pde_region),
		T(paging_large_page_with_named_frame),
		T(overlap_large_guest_page_covering_shim),
		T(reason_names_and_whys_cover_every_reason),
		/* BUG: expected to fail until the code under test is fixed (see each test) */
		T(bad_map_value_names_its_field),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
