/*
 * test_nop_mutants: every INVLPG, LGDT, LIDT, busy-bit clear, LTR and MOV CR3 in every
 * built variant is essential. For each one, a copy of the code directory gets that single
 * instruction replaced by NOPs of the same length, and `shimcheck run --code-dir COPY` must
 * exit 1 and name a rule on its first line: with the default scenario, or, for code the
 * default scenario does not reach (hardened's paging-mode switch), with scenarios/modes.json.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <capstone/capstone.h>

#include "../../shim/shim_abi.h"
#include "check.h"

static const char *const bins[] = {"host", "monitor", "shim"};

static int read_all(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	int n = (int)fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void write_all(const char *path, const uint8_t *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* The instructions the done-criterion names. */
static bool essential(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;
	switch (in->id) {
	case X86_INS_INVLPG:
	case X86_INS_LGDT:
	case X86_INS_LIDT:
	case X86_INS_LTR:
		return true;
	case X86_INS_MOV:
		return x->op_count == 2 && x->operands[0].type == X86_OP_REG && x->operands[0].reg == X86_REG_CR3;
	case X86_INS_AND: /* and byte [desc+5], ~2: the busy-bit clear */
		return x->op_count == 2 && x->operands[0].type == X86_OP_MEM && x->operands[1].type == X86_OP_IMM &&
		       !(x->operands[1].imm & 0x2) && x->operands[0].size == 1;
	case X86_INS_BTR:
		return x->operands[0].type == X86_OP_MEM;
	default:
		return false;
	}
}

static bool starts_with_rule(const char *line)
{
	for (int r = 0; r < R_N; r++) {
		size_t n = strlen(rule_id((enum rule)r));
		if (strncmp(line, rule_id((enum rule)r), n) == 0 && line[n] == ' ')
			return true;
	}
	return false;
}

static int mutate_variant(const char *variant)
{
	char src[512];
	snprintf(src, sizeof src, "%s/%s", SHIMCHECK_SHIM_DIR, variant);
	csh cs;
	assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_32, &cs), CS_ERR_OK);
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	int killed = 0;
	for (size_t b = 0; b < sizeof bins / sizeof bins[0]; b++) {
		static uint8_t code[4096];
		char path[600];
		snprintf(path, sizeof path, "%s/%s.bin", src, bins[b]);
		int n = read_all(path, code, sizeof code);
		assert_true(n > 0);
		size_t start = strcmp(bins[b], "shim") == 0 ? 0 : PB_SIZE;
		size_t end = strcmp(bins[b], "shim") == 0 ? SHIM_DATA_OFF : (size_t)n;
		cs_insn *insn = cs_malloc(cs);
		const uint8_t *p = code + start;
		size_t left = end - start;
		uint64_t addr = start;
		while (left && cs_disasm_iter(cs, &p, &left, &addr, insn)) {
			if (!essential(insn))
				continue;
			char dir[] = "/tmp/shimcheck-nop-XXXXXX";
			assert_non_null(mkdtemp(dir));
			char cmd[2048];
			snprintf(cmd, sizeof cmd, "cp %s/* %s/", src, dir);
			assert_int_equal(system(cmd), 0);
			static uint8_t mut[4096];
			memcpy(mut, code, (size_t)n);
			memset(mut + insn->address, 0x90, insn->size);
			snprintf(path, sizeof path, "%s/%s.bin", dir, bins[b]);
			write_all(path, mut, (size_t)n);
			static const char *const scenarios[] = {"default", "modes", "differ"};
			bool caught = false;
			for (size_t sc = 0; sc < sizeof scenarios / sizeof scenarios[0] && !caught; sc++) {
				snprintf(cmd, sizeof cmd, "%s run --code-dir %s --scenario %s/scenarios/%s.json > %s/out.txt 2>&1",
					 SHIMCHECK_BIN, dir, SHIMCHECK_SOURCE_DIR, scenarios[sc], dir);
				int st = system(cmd);
				snprintf(path, sizeof path, "%s/out.txt", dir);
				FILE *f = fopen(path, "r");
				char line[512] = "";
				if (f) {
					if (!fgets(line, sizeof line, f))
						line[0] = '\0';
					fclose(f);
				}
				printf("%s %s+0x%03" PRIx64 " %-6s %-28s [%s] -> exit %d: %s", variant, bins[b], insn->address,
				       insn->mnemonic, insn->op_str, scenarios[sc], WIFEXITED(st) ? WEXITSTATUS(st) : -1, line);
				assert_true(WIFEXITED(st));
				assert_true(WEXITSTATUS(st) <= 2); /* never a crash or an internal error */
				caught = WEXITSTATUS(st) == 1 && starts_with_rule(line);
			}
			assert_true(caught);
			snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
			assert_int_equal(system(cmd), 0);
			killed++;
		}
		cs_free(insn, 1);
	}
	cs_close(&cs);
	return killed;
}

static void every_essential_instruction_is_caught(void **state)
{
	(void)state;
	DIR *d = opendir(SHIMCHECK_SHIM_DIR);
	assert_non_null(d);
	struct dirent *de;
	int variants = 0;
	while ((de = readdir(d))) {
		char m[600];
		snprintf(m, sizeof m, "%s/%s/manifest.json", SHIMCHECK_SHIM_DIR, de->d_name);
		if (de->d_name[0] == '.' || access(m, R_OK) != 0)
			continue;
		int k = mutate_variant(de->d_name);
		/* literal: 2 INVLPG in the monitor, and per shim half LGDT, LIDT, clear, LTR, MOV CR3 */
		assert_true(k >= 12);
		variants++;
	}
	closedir(d);
	assert_true(variants >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(every_essential_instruction_is_caught)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
