/*
 * test_effects.c: the GPR/EFLAGS write sets the engine trusts to read back less
 * (sim/effects.c), against hand-assembled instructions (NASM, 32-bit, Intel SDM vol. 2).
 * The end-to-end check of the same claim is the run-time comparison SHIMCHECK_CHECK_READS=1
 * (tests/CMakeLists.txt runs the property test with it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "effects.h"
#include "trace.h"

#define A EFF_GPR(R_EAX)
#define C EFF_GPR(R_ECX)
#define D EFF_GPR(R_EDX)
#define B EFF_GPR(R_EBX)
#define SP EFF_GPR(R_ESP)
#define BP EFF_GPR(R_EBP)
#define SI EFF_GPR(R_ESI)
#define DI EFF_GPR(R_EDI)
#define F EFF_FLAGS

struct eff_case {
	const char *what;
	uint8_t bytes[15];
	uint8_t len;
	unsigned want;
};

static const struct eff_case cases[] = {
	{"mov eax, 0x12345678", {0xB8, 0x78, 0x56, 0x34, 0x12}, 5, A},
	{"mov [ebx], ecx", {0x89, 0x0B}, 2, 0},
	{"mov cx, [esi]", {0x66, 0x8B, 0x0E}, 3, C},
	{"mov bh, 1", {0xB7, 0x01}, 2, B},
	{"mov eax, cr3", {0x0F, 0x20, 0xD8}, 3, A},
	{"mov cr3, eax", {0x0F, 0x22, 0xD8}, 3, 0},
	{"mov ds, ax", {0x8E, 0xD8}, 2, 0},
	{"add esi, 4", {0x83, 0xC6, 0x04}, 3, SI | F},
	{"sub dword [edi], 1", {0x83, 0x2F, 0x01}, 3, F},
	{"xor edx, edx", {0x31, 0xD2}, 2, D | F},
	{"and eax, 0xfffff000", {0x25, 0x00, 0xF0, 0xFF, 0xFF}, 5, A | F},
	{"inc ebp", {0x45}, 1, BP | F},
	{"cmp eax, ebx", {0x39, 0xD8}, 2, F},
	{"test byte [eax], 1", {0xF6, 0x00, 0x01}, 3, F},
	{"lea edi, [esi + 8]", {0x8D, 0x7E, 0x08}, 3, DI},
	{"movzx eax, word [ebx]", {0x0F, 0xB7, 0x03}, 3, A},
	{"xchg eax, ecx", {0x91}, 1, A | C},
	{"push eax", {0x50}, 1, SP},
	{"push dword [ebx]", {0xFF, 0x33}, 2, SP},
	{"pop edi", {0x5F}, 1, SP | DI},
	{"pop dword [eax]", {0x8F, 0x00}, 2, SP},
	{"pushad", {0x60}, 1, SP},
	{"popad", {0x61}, 1, EFF_GPRS},
	{"pushfd", {0x9C}, 1, SP},
	{"popfd", {0x9D}, 1, SP | F},
	{"call rel32", {0xE8, 0x00, 0x00, 0x00, 0x00}, 5, SP},
	{"call [eax]", {0xFF, 0x10}, 2, SP},
	{"ret", {0xC3}, 1, SP},
	{"ret 8", {0xC2, 0x08, 0x00}, 3, SP},
	{"leave", {0xC9}, 1, SP | BP},
	{"jmp short", {0xEB, 0x00}, 2, 0},
	{"jne short", {0x75, 0x00}, 2, 0},
	{"ljmp 0x8:0x1000", {0xEA, 0x00, 0x10, 0x00, 0x00, 0x08, 0x00}, 7, 0},
	{"lss esp, [ebx]", {0x0F, 0xB2, 0x23}, 3, SP},
	{"lgdt [eax]", {0x0F, 0x01, 0x10}, 3, 0},
	{"ltr ax", {0x0F, 0x00, 0xD8}, 3, 0},
	{"str eax", {0x0F, 0x00, 0xC8}, 3, A},
	{"invlpg [eax]", {0x0F, 0x01, 0x38}, 3, 0},
	{"cli", {0xFA}, 1, F},
	{"rdmsr", {0x0F, 0x32}, 2, A | D},
	{"wrmsr", {0x0F, 0x30}, 2, 0},
	{"cpuid", {0x0F, 0xA2}, 2, A | B | C | D},
	{"cdq", {0x99}, 1, D},
	{"loop", {0xE2, 0x00}, 2, C},
	/* not listed: everything */
	{"rep movsd", {0xF3, 0xA5}, 2, EFF_ALL},
	{"mul ecx", {0xF7, 0xE1}, 2, EFF_ALL},
	{"cmpxchg [ebx], ecx", {0x0F, 0xB1, 0x0B}, 3, EFF_ALL},
	{"iretd", {0xCF}, 1, EFF_ALL},
};

static void test_write_sets(void **state)
{
	(void)state;
	csh cs;
	assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_32, &cs), CS_ERR_OK);
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	int bad = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cs_insn *insn = NULL;
		size_t n = cs_disasm(cs, cases[i].bytes, cases[i].len, 0x1000, 1, &insn);
		if (n != 1 || insn->size != cases[i].len) {
			printf("FAIL %s: Capstone decodes %zu instruction(s)\n", cases[i].what, n);
			bad++;
		} else {
			unsigned got = effects_writes(insn);
			if (got != cases[i].want) {
				printf("FAIL %s (%s %s): write set 0x%03x, want 0x%03x\n", cases[i].what, insn->mnemonic,
				       insn->op_str, got, cases[i].want);
				bad++;
			}
		}
		if (n)
			cs_free(insn, n);
	}
	cs_close(&cs);
	assert_int_equal(bad, 0);
}

static void test_gpr_index(void **state)
{
	(void)state;
	assert_int_equal(effects_gpr_index(X86_REG_AH), R_EAX);
	assert_int_equal(effects_gpr_index(X86_REG_CX), R_ECX);
	assert_int_equal(effects_gpr_index(X86_REG_DL), R_EDX);
	assert_int_equal(effects_gpr_index(X86_REG_EBX), R_EBX);
	assert_int_equal(effects_gpr_index(X86_REG_SP), R_ESP);
	assert_int_equal(effects_gpr_index(X86_REG_EDI), R_EDI);
	assert_int_equal(effects_gpr_index(X86_REG_CR3), -1);
	assert_int_equal(effects_gpr_index(X86_REG_DS), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_sets),
		cmocka_unit_test(test_gpr_index),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
