/*
 * test_cli: the command-line contract. Exit status 0/1/2/3, one clear line naming file and
 * field for bad input, a rule ID first on every violation line, and never a signal, a hang
 * or a silent pass, whatever the code directory holds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "../../shim/shim_abi.h"
#include "check.h"

static char tmp[] = "/tmp/shimcheck-cli-XXXXXX";
static char out[1 << 16];

/* Run the CLI with args; capture stdout+stderr in out; return the exit status, or -1 for a
 * signal and -2 for the 60 s guard (a hang). */
static int run(const char *fmt, ...)
{
	char args[2048], cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "cd %s && timeout -s KILL 60 %s %s > %s/out.txt 2>&1", SHIMCHECK_SOURCE_DIR, SHIMCHECK_BIN,
		 args, tmp);
	int st = system(cmd);
	char path[600];
	snprintf(path, sizeof path, "%s/out.txt", tmp);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
	if (!WIFEXITED(st))
		return -1;
	if (WEXITSTATUS(st) == 137 || WEXITSTATUS(st) == 124)
		return -2;
	return WEXITSTATUS(st);
}

static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

/* A fresh copy of the literal code directory at tmp/NAME. */
static void code_copy(const char *name)
{
	sh("rm -rf %s/%s && cp -r %s/literal %s/%s", tmp, name, SHIMCHECK_SHIM_DIR, tmp, name);
}

static void put_bytes(const char *name, const char *bin, long off, const uint8_t *b, size_t n)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s/%s.bin", tmp, name, bin);
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, off, SEEK_SET), 0);
	assert_int_equal(fwrite(b, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static long entry(const char *name, const char *sym)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s/manifest.json", tmp, name);
	json_t *m = json_load_file(path, 0, NULL);
	assert_non_null(m);
	json_t *off = json_object_get(json_object_get(json_object_get(m, "entry_points"), sym), "offset");
	assert_true(json_is_integer(off));
	long v = (long)json_integer_value(off);
	json_decref(m);
	return v;
}

static bool first_line_is_rule(const char *text, const char *want)
{
	size_t n = strlen(want);
	return strncmp(text, want, n) == 0 && text[n] == ' ';
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static void help_version_rules_exit_0(void **state)
{
	(void)state;
	assert_int_equal(run("--help"), 0);
	assert_non_null(strstr(out, "exit status"));
	assert_int_equal(run("--version"), 0);
	assert_non_null(strstr(out, "unicorn 2."));
	assert_int_equal(run("rules"), 0);
	for (int r = 0; r < R_N; r++)
		assert_non_null(strstr(out, rule_id((enum rule)r)));
	/* docs/rules.md has a section for every rule */
	FILE *f = fopen(SHIMCHECK_SOURCE_DIR "/docs/rules.md", "r");
	assert_non_null(f);
	static char doc[1 << 17];
	size_t n = fread(doc, 1, sizeof doc - 1, f);
	doc[n] = '\0';
	fclose(f);
	for (int r = 0; r < R_N; r++) {
		char head[64];
		snprintf(head, sizeof head, "\n## %s\n", rule_id((enum rule)r));
		if (!strstr(doc, head))
			fail_msg("docs/rules.md has no section %s", head + 1);
	}
}

static void bad_command_line_exits_2(void **state)
{
	(void)state;
	assert_int_equal(run("run --frobnicate"), 2);
	assert_non_null(strstr(out, "command line"));
	assert_int_equal(run("explode"), 2);
	assert_int_equal(run("run --variant literal --code-dir /tmp"), 2);
	assert_int_equal(run("run --format xml --trace /dev/null"), 2);
	assert_int_equal(run("run --variant ../etc"), 2);
}

static void default_run_passes_with_json_summary(void **state)
{
	(void)state;
	assert_int_equal(run("run --json"), 0);
	json_error_t e;
	json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, &e);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "verdict")), "pass");
	assert_int_equal(json_integer_value(json_object_get(o, "instructions")) > 100, 1);
	assert_int_equal(json_array_size(json_object_get(o, "violations")), 0);
	json_decref(o);
}

static void jsonl_trace_every_line_is_json(void **state)
{
	(void)state;
	assert_int_equal(run("run --trace %s/t.jsonl", tmp), 0);
	char path[600];
	snprintf(path, sizeof path, "%s/t.jsonl", tmp);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char line[1 << 14];
	int n = 0, insns = 0;
	const char *last = "";
	static char lasttype[32];
	while (fgets(line, sizeof line, f)) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		const char *type = json_string_value(json_object_get(o, "type"));
		assert_non_null(type);
		if (n == 0) {
			assert_string_equal(type, "header");
			assert_int_equal(json_integer_value(json_object_get(o, "schema")), 1);
		}
		insns += strcmp(type, "insn") == 0;
		snprintf(lasttype, sizeof lasttype, "%s", type);
		last = lasttype;
		json_decref(o);
		n++;
	}
	fclose(f);
	assert_string_equal(last, "end");
	assert_true(insns > 100);
}

static void scenario_errors_name_file_and_field(void **state)
{
	(void)state;
	assert_int_equal(run("run --scenario %s/nope.json", tmp), 2);
	assert_non_null(strstr(out, "nope.json"));

	sh("head -c 200 %s/scenarios/default.json > %s/trunc.json", SHIMCHECK_SOURCE_DIR, tmp);
	assert_int_equal(run("run --scenario %s/trunc.json", tmp), 2);
	assert_non_null(strstr(out, "trunc.json: line"));

	sh("sed 's/\"gdt\": \"0xC0102000\"/\"gdt\": \"0xC0102001\"/' %s/scenarios/default.json > %s/mis.json",
	   SHIMCHECK_SOURCE_DIR, tmp);
	assert_int_equal(run("run --scenario %s/mis.json", tmp), 2);
	assert_non_null(strstr(out, "mis.json: host.layout.gdt:"));
	assert_non_null(strstr(out, "(rejected: range)"));

	sh("printf '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[' > %s/deep.json", tmp);
	assert_int_equal(run("run --scenario %s/deep.json", tmp), 2);
	sh(": > %s/empty.json", tmp);
	assert_int_equal(run("run --scenario %s/empty.json", tmp), 2);
	sh("sed 's/\"round_trips\": 2/\"round_trips\": -5/' %s/scenarios/default.json > %s/neg.json", SHIMCHECK_SOURCE_DIR, tmp);
	assert_int_equal(run("run --scenario %s/neg.json", tmp), 2);
	assert_non_null(strstr(out, "round_trips"));
	sh("sed 's/\"round_trips\": 2/\"round_trips\": 99999999999999999999999/' %s/scenarios/default.json > %s/huge.json",
	   SHIMCHECK_SOURCE_DIR, tmp);
	assert_int_equal(run("run --scenario %s/huge.json", tmp), 2);
}

static void manifest_errors_exit_2(void **state)
{
	(void)state;
	code_copy("nomanifest");
	sh("rm %s/nomanifest/manifest.json", tmp);
	assert_int_equal(run("run --code-dir %s/nomanifest", tmp), 2);
	assert_non_null(strstr(out, "manifest.json"));

	code_copy("badmanifest");
	sh("echo '{\"abi_version\": 1,' > %s/badmanifest/manifest.json", tmp);
	assert_int_equal(run("run --code-dir %s/badmanifest", tmp), 2);
	assert_non_null(strstr(out, "manifest.json"));

	code_copy("noentry");
	sh("sed -i 's/\"host_done\"/\"host_gone\"/' %s/noentry/manifest.json", tmp);
	assert_int_equal(run("run --code-dir %s/noentry", tmp), 2);
	assert_non_null(strstr(out, "entry_points.host_done"));

	code_copy("abi");
	sh("sed -i 's/\"abi_version\": 1/\"abi_version\": 7/' %s/abi/manifest.json", tmp);
	assert_int_equal(run("run --code-dir %s/abi", tmp), 2);
	assert_non_null(strstr(out, "abi_version"));
}

static void binary_larger_than_slot_exits_2(void **state)
{
	(void)state;
	code_copy("big");
	sh("head -c 4097 /dev/zero >> %s/big/host.bin", tmp);
	assert_int_equal(run("run --code-dir %s/big", tmp), 2);
	assert_non_null(strstr(out, "host.bin: size: larger than its slot"));
	code_copy("short");
	sh("head -c 100 %s/short/shim.bin > %s/short/x && mv %s/short/x %s/short/shim.bin", tmp, tmp, tmp, tmp);
	assert_int_equal(run("run --code-dir %s/short", tmp), 2);
	assert_non_null(strstr(out, "shim.bin: size"));
}

static void random_shim_bytes_never_pass(void **state)
{
	(void)state;
	/* Random code where both shim halves are (the data area is the builder's): seeds 1..24. */
	for (unsigned seed = 1; seed <= 24; seed++) {
		code_copy("rand");
		uint8_t b[SHIM_CODE_MAX];
		uint32_t x = seed * 2654435761u;
		for (size_t i = 0; i < sizeof b; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			b[i] = (uint8_t)x;
		}
		put_bytes("rand", "shim", 0, b, sizeof b);
		int st = run("run --code-dir %s/rand", tmp);
		print_message("seed %u: exit %d: %.100s\n", seed, st, out);
		assert_true(st == 1 || st == 2);
		if (st == 1) {
			bool rule = false;
			for (int r = 0; r < R_N; r++)
				rule |= first_line_is_rule(out, rule_id((enum rule)r));
			assert_true(rule);
		}
	}
}

static void infinite_loop_shim_hits_the_bound(void **state)
{
	(void)state;
	code_copy("loop");
	const uint8_t jmp_self[] = {0xEB, 0xFE};
	put_bytes("loop", "shim", entry("loop", "__host2monitor"), jmp_self, sizeof jmp_self);
	assert_int_equal(run("run --code-dir %s/loop", tmp), 1);
	assert_true(first_line_is_rule(out, "BOUND") || strstr(out, "\nBOUND ") != NULL);
}

static void self_modifying_shim_faults(void **state)
{
	(void)state;
	/* At __host2monitor: two byte stores that turn the NOPs right after them into UD2,
	 * then NOPs and a jmp-to-self. Unmodified it would loop; modified it must fault. */
	code_copy("smc");
	long h2m = entry("smc", "__host2monitor");
	uint8_t code[32];
	int32_t disp = (int32_t)(h2m + 14) - SHIM_DATA_OFF; /* ebx = data area */
	uint8_t mov[7] = {0xC6, 0x83, (uint8_t)disp, (uint8_t)(disp >> 8), (uint8_t)(disp >> 16), (uint8_t)(disp >> 24), 0x0F};
	memcpy(code, mov, 7);
	disp++;
	uint8_t mov2[7] = {0xC6, 0x83, (uint8_t)disp, (uint8_t)(disp >> 8), (uint8_t)(disp >> 16), (uint8_t)(disp >> 24), 0x0B};
	memcpy(code + 7, mov2, 7);
	memset(code + 14, 0x90, 16);
	code[30] = 0xEB;
	code[31] = 0xFE;
	put_bytes("smc", "shim", h2m, code, sizeof code);
	assert_int_equal(run("run --code-dir %s/smc", tmp), 1);
	assert_non_null(strstr(out, "#UD"));
	assert_null(strstr(out, "BOUND"));
}

static void triple_faulting_shim_and_overlapping_layout(void **state)
{
	(void)state;
	/* a shim that loads an empty IDT and then traps: on a CPU a triple fault; here the first
	 * exception stops the run and is reported */
	code_copy("tf");
	long h2m = entry("tf", "__host2monitor");
	const uint8_t code[] = {
		0x6A, 0x00,             /* push 0 */
		0x6A, 0x00,             /* push 0 */
		0x0F, 0x01, 0x1C, 0x24, /* lidt [esp]: limit 0, base 0 */
		0xCC,                   /* int3 */
		0xEB, 0xFE,             /* jmp $ */
	};
	put_bytes("tf", "shim", h2m, code, sizeof code);
	assert_int_equal(run("run --code-dir %s/tf", tmp), 1);
	assert_non_null(strstr(out, "FAULT"));

	sh("sed 's/\"stack\": \"0xC0101000\"/\"stack\": \"0xC0100000\"/' %s/scenarios/default.json > %s/ov.json",
	   SHIMCHECK_SOURCE_DIR, tmp);
	assert_int_equal(run("run --scenario %s/ov.json", tmp), 2);
	assert_non_null(strstr(out, "host.layout.stack"));
	assert_non_null(strstr(out, "(rejected: overlap)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(help_version_rules_exit_0),
		cmocka_unit_test(bad_command_line_exits_2),
		cmocka_unit_test(default_run_passes_with_json_summary),
		cmocka_unit_test(jsonl_trace_every_line_is_json),
		cmocka_unit_test(scenario_errors_name_file_and_field),
		cmocka_unit_test(manifest_errors_exit_2),
		cmocka_unit_test(binary_larger_than_slot_exits_2),
		cmocka_unit_test(random_shim_bytes_never_pass),
		cmocka_unit_test(infinite_loop_shim_hits_the_bound),
		cmocka_unit_test(self_modifying_shim_faults),
		cmocka_unit_test(triple_faulting_shim_and_overlapping_layout),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
