/*
 * test_window: the interrupt-window analysis on the documented sequence (literal, default
 * scenario). Expected faults are assertions: an NMI right after LIDT of the monitor's IDT,
 * while CR3 is still the host's, finds no gate; one right after MOV CR3, before LSS, pushes
 * onto a stack the new space does not map; before the jump into the shim and after the far
 * jump delivery is safe.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pipeline.h"
#include "window.h"

static struct pipeline P;
static struct wanalysis A;

static const struct wboundary *before(const char *mnemonic_prefix, int window)
{
	for (int i = 0; i < A.n; i++)
		if (A.b[i].window == window && strncmp(P.t.insn[A.b[i].insn].text, mnemonic_prefix, strlen(mnemonic_prefix)) == 0)
			return &A.b[i];
	fail_msg("no boundary before `%s` in window %d", mnemonic_prefix, window);
	return NULL;
}

static void literal_nmi_window(void **state)
{
	(void)state;
	pl_init(&P);
	assert_int_equal(pl_load_code(&P, SHIMCHECK_SHIM_DIR "/literal"), PL_OK);
	assert_int_equal(pl_load_scenario(&P, SHIMCHECK_SOURCE_DIR "/scenarios/default.json"), PL_OK);
	assert_int_equal(pl_run(&P), PL_OK);
	struct physmem mem = engine_memory(P.eng);
	A.safe_reasons = true;
	window_analyse(&P.t, &P.img, 2, &mem, &A);
	assert_true(A.n > 20);
	assert_true(A.unsafe > 0);
	/* window 0 is host->monitor */
	assert_int_equal(A.b[0].dir, DIR_H2M);
	assert_int_equal(A.b[0].verdict, WV_SAFE); /* the jump into the shim: host IDT, host stack */
	const struct wboundary *b = before("mov eax, dword ptr [ebx + 0x3a]", 0); /* right after LIDT */
	assert_int_equal(b->verdict, WV_UNSAFE);
	assert_non_null(strstr(b->reason, "IDT gate at 0xe0003010 not mapped"));
	b = before("lss", 0); /* right after MOV CR3 */
	assert_int_equal(b->verdict, WV_UNSAFE);
	assert_non_null(strstr(b->reason, "the push at SS:ESP-12"));
	b = before("ljmp", 0); /* after LSS: monitor IDT, monitor stack */
	assert_int_equal(b->verdict, WV_SAFE);
	assert_int_equal(A.b[A.n - 1].verdict, WV_SAFE); /* after the last far jump */
	pl_free(&P);
}

/* hardened keeps an IDT, descriptors and a stack of its own in the shim page: every boundary
 * is safe, in every shipped scenario (modes.json includes the stretch with paging off). */
static void hardened_nmi_safe_everywhere(void **state)
{
	(void)state;
	static const char *const scen[] = {"default", "pse", "pae", "cs-wrap", "modes"};
	pl_init(&P);
	assert_int_equal(pl_load_code(&P, SHIMCHECK_SHIM_DIR "/hardened"), PL_OK);
	assert_true(P.code.nmi_safe);
	for (size_t k = 0; k < sizeof scen / sizeof scen[0]; k++) {
		char path[512];
		snprintf(path, sizeof path, "%s/scenarios/%s.json", SHIMCHECK_SOURCE_DIR, scen[k]);
		assert_int_equal(pl_load_scenario(&P, path), PL_OK);
		assert_int_equal(pl_run(&P), PL_OK);
		struct physmem mem = engine_memory(P.eng);
		window_analyse(&P.t, &P.img, 2, &mem, &A);
		print_message("%s: %d boundaries, %d unsafe\n", scen[k], A.n, A.unsafe);
		assert_true(A.n > 50);
		assert_int_equal(A.unsafe, 0);
	}
	pl_free(&P);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(literal_nmi_window), cmocka_unit_test(hardened_nmi_safe_everywhere)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
