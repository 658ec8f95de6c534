/*
 * test_window: the interrupt-window analysis on the documented sequence (literal, default
 * scenario). Expected faults are assertions: an NMI right after LIDT of the monitor's IDT,
 * while CR3 is still the host's, finds no gate; one right after MOV CR3, before LSS, pushes
 * onto a stack the new space does not map; before the jump into the shim and after the far
 * jump delivery is safe. Literal's handlers are the worlds' HLT loops: no return to judge.
 *
 * hardened: delivery and return safe at every boundary of every shipped scenario; and the
 * return check itself, on hardened as it was before its CS moved to SHIM_CS_SEL (the RETF
 * made a NOP): the handler's IRET faults at the 50 boundaries QEMU showed (docs/findings.md).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/mmu.h"
#include "../shim/shim_abi.h"
#include "mutate.h"
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
	/* every handler reached is host_trap or monitor_trap, which HLT: nothing comes back */
	for (int i = 0; i < A.n; i++)
		assert_int_equal(A.b[i].ret, WRN_NONE);
	assert_int_equal(A.unsafe_return, 0);
	assert_int_equal(A.unsafe, A.unsafe_delivery);
	pl_free(&P);
}

/* hardened keeps an IDT, descriptors and a stack of its own in the shim page, and runs on its
 * flat SHIM_CS_SEL from before its own LGDT to the far jump: every boundary is safe, delivery
 * and return, in every shipped scenario (modes.json and differ.json include the stretch with
 * paging off). */
static void hardened_nmi_safe_everywhere(void **state)
{
	(void)state;
	static const char *const scen[] = {"default", "pse", "pae", "cs-wrap", "modes", "differ", "global"};
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
		int returns = 0;
		for (int i = 0; i < A.n; i++)
			returns += A.b[i].ret == WRN_RETURNS;
		print_message("%s: %d boundaries, %d unsafe, %d returns judged\n", scen[k], A.n, A.unsafe, returns);
		assert_true(A.n > 50);
		assert_int_equal(A.unsafe, 0);
		assert_int_equal(A.unsafe_delivery, 0);
		assert_int_equal(A.unsafe_return, 0);
		/* the shim's IDT is in force at most boundaries: their returns were judged, not skipped */
		assert_true(returns > A.n / 2);
	}
	pl_free(&P);
}

/* A fresh pipeline with hardened loaded, and *mut a copy of its code to edit. */
static void hardened_copy(struct shim_code *mut)
{
	pl_init(&P);
	assert_int_equal(pl_load_code(&P, SHIMCHECK_SHIM_DIR "/hardened"), PL_OK);
	assert_true(code_dup(mut, &P.code));
}

/* The edited code in place of hardened's, on the default scenario. */
static void use_edited(struct shim_code *mut)
{
	pl_use_code(&P, mut);
	assert_int_equal(pl_load_scenario(&P, SHIMCHECK_SOURCE_DIR "/scenarios/default.json"), PL_OK);
}

/* hardened with the RETF to SHIM_CS_SEL made a NOP in both halves: the source's CS stays
 * loaded through the switch, as in the shim QEMU caught. Its pushes stay on the source's
 * stack, which the shim's LSS leaves behind; the run itself still passes every other rule. */
static void old_cs_code(struct shim_code *mut)
{
	static const char *const half[] = {"__host2monitor", "__monitor2host"};
	for (int k = 0; k < 2; k++) {
		struct insn_ref r;
		assert_true(mutate_find(mut, CB_SHIM, half[k], "retf", 1, &r));
		assert_true(mutate_nop(mut, &r));
	}
}

static int first_at(uint32_t eip, int upto)
{
	for (int j = 0; j < upto; j++)
		if (P.t.insn[A.b[j].insn].cpu.eip == eip)
			return j;
	return upto;
}

static void hardened_old_cs_return_faults(void **state)
{
	(void)state;
	struct shim_code mut;
	hardened_copy(&mut);
	old_cs_code(&mut);
	use_edited(&mut);
	/* rule NMI-WINDOW reports it on the plain run */
	assert_int_equal(pl_run(&P), PL_VIOLATION);
	assert_int_equal(P.v.counts[R_NMI], P.v.n);
	assert_non_null(strstr(P.v.v[0].msg, "IRET"));
	struct physmem mem = engine_memory(P.eng);
	A.safe_reasons = true;
	window_analyse(&P.t, &P.img, 2, &mem, &A);
	assert_int_equal(A.unsafe_delivery, 0); /* delivery was always safe */
	assert_int_equal(A.unsafe, A.unsafe_return);
	assert_int_equal(P.v.counts[R_NMI], A.unsafe);
	/* QEMU tests each address once (windows 2 and 3 repeat 0 and 1): 50 faulting returns */
	int distinct = 0, faults = 0;
	for (int i = 0; i < A.n; i++) {
		faults += A.b[i].ret == WRN_FAULTS;
		if (A.b[i].ret == WRN_FAULTS && first_at(P.t.insn[A.b[i].insn].cpu.eip, i) == i)
			distinct++;
	}
	print_message("%d boundaries, %d unsafe returns, %d at distinct addresses\n", A.n, A.unsafe_return, distinct);
	assert_int_equal(faults, A.unsafe_return);
	assert_int_equal(distinct, 50);
	/* before the shim's LGDT the source's GDT is in force: the IRET reloads the source CS */
	const struct wboundary *b = before("lgdt [ebx + 0x128]", 0);
	assert_int_equal(b->ret, WRN_RETURNS);
	/* from the shim's LGDT: CS 0x08's descriptor would lie below the shim page, unmapped */
	b = before("lss esp, ptr [ebx + 0x110]", 0);
	assert_int_equal(b->verdict, WV_UNSAFE);
	assert_int_equal(b->delivery, WV_SAFE);
	assert_int_equal(b->ret, WRN_FAULTS);
	assert_non_null(strstr(b->reason, "reloads CS 0x0008 from 0xc8800a18"));
	assert_non_null(strstr(b->reason, "#PF"));
	/* from the monitor's LGDT: 0x08 is no code segment of the monitor's GDT */
	b = before("mov eax, dword ptr [ebx + 0x3a]", 0);
	assert_int_equal(b->ret, WRN_FAULTS);
	assert_non_null(strstr(b->reason, "#GP(0x0008)"));
	b = before("lidt [ebx + 0x40]", 0); /* the last boundary the shim's IDT serves */
	assert_int_equal(b->ret, WRN_FAULTS);
	b = before("ljmp", 0); /* the monitor's IDT: monitor_trap HLTs, nothing to return */
	assert_int_equal(b->verdict, WV_SAFE);
	assert_int_equal(b->ret, WRN_NONE);
	/* monitor->host: the monitor's CS 0x20 */
	b = before("lss esp, ptr [ebx + 0x110]", 1);
	assert_non_null(strstr(b->reason, "reloads CS 0x0020 from 0xc8800a30"));
	b = before("mov eax, dword ptr [ebx + 0xa]", 1);
	assert_non_null(strstr(b->reason, "#GP(0x0020)"));
	pl_free(&P);
}

/* The walk through the handler has teeth of its own: a __shim_nmi that no longer saves and
 * restores EAX returns to the interrupted instruction with EAX broken. */
static void hardened_handler_clobbers(void **state)
{
	(void)state;
	struct shim_code mut;
	hardened_copy(&mut);
	struct insn_ref r;
	assert_true(mutate_find(&mut, CB_SHIM, "__shim_nmi", "pop eax", 2, &r)); /* after `call .pc; pop eax` */
	assert_true(mutate_nop(&mut, &r));
	assert_true(mutate_find(&mut, CB_SHIM, "__shim_nmi", "push eax", 1, &r));
	assert_true(mutate_nop(&mut, &r));
	use_edited(&mut);
	assert_int_equal(pl_run(&P), PL_VIOLATION);
	struct physmem mem = engine_memory(P.eng);
	window_analyse(&P.t, &P.img, 2, &mem, &A);
	assert_int_equal(A.unsafe_delivery, 0);
	assert_true(A.unsafe_return > 50);
	const struct wboundary *b = before("lgdt [ebx + 0x128]", 0);
	assert_int_equal(b->ret, WRN_FAULTS);
	assert_non_null(strstr(b->reason, "returns with EAX changed"));
	pl_free(&P);
}

/* ... and one that no longer ORs its note into D_NMI_PENDING returns fine but loses the NMI:
 * the target world would never re-raise it. */
static void hardened_handler_must_note(void **state)
{
	(void)state;
	struct shim_code mut;
	hardened_copy(&mut);
	struct insn_ref r;
	assert_true(mutate_find(&mut, CB_SHIM, "__shim_nmi", "or byte ptr ss:", 1, &r));
	assert_true(mutate_nop(&mut, &r));
	use_edited(&mut);
	assert_int_equal(pl_run(&P), PL_VIOLATION);
	assert_int_equal(P.v.counts[R_NMI], P.v.n);
	struct physmem mem = engine_memory(P.eng);
	window_analyse(&P.t, &P.img, 2, &mem, &A);
	const struct wboundary *b = before("mov eax, cr4", 1);
	assert_int_equal(b->ret, WRN_FAULTS);
	assert_non_null(strstr(b->reason, "without writing D_NMI_PENDING"));
	pl_free(&P);
}

/* A handler whose note goes through the interrupted ESI (`or byte [ss:esi + 0x120], 1`): its
 * verdict depends on a value of the interrupted context, safe where ESI happens to point at
 * the data area, unsafe elsewhere (default scenario: 42 and 94 of 136). Sharing verdicts
 * between boundaries must change none of them (SHIMCHECK_NO_SHARE=1 judges each alone). */
static void hardened_value_dependent_handler(void **state)
{
	(void)state;
	static struct wanalysis alone;
	struct shim_code mut;
	hardened_copy(&mut);
	struct insn_ref r;
	assert_true(mutate_find(&mut, CB_SHIM, "__shim_nmi", "or byte ptr ss:", 1, &r));
	assert_int_equal(r.len, 8);
	uint8_t b[8];
	memcpy(b, mut.bin[r.bin].bytes + r.off, sizeof b);
	assert_int_equal(b[2], 0x88); /* ModRM: /1, [eax + disp32] */
	b[2] = 0x8E;                  /* ... [esi + disp32] */
	b[3] = 0x20, b[4] = 0x01, b[5] = 0, b[6] = 0; /* D_NMI_PENDING's offset in the data area */
	assert_true(mutate_replace(&mut, &r, b, sizeof b));
	use_edited(&mut);
	enum pl_status st = pl_run(&P);
	assert_true(st == PL_OK || st == PL_VIOLATION);
	struct physmem mem = engine_memory(P.eng);
	A.safe_reasons = alone.safe_reasons = false; /* the per-run check's mode, where sharing is on */
	assert_int_equal(setenv("SHIMCHECK_NO_SHARE", "1", 1), 0);
	window_analyse(&P.t, &P.img, 2, &mem, &alone);
	assert_int_equal(unsetenv("SHIMCHECK_NO_SHARE"), 0);
	window_analyse(&P.t, &P.img, 2, &mem, &A);
	assert_int_equal(A.n, alone.n);
	int safe = 0, unsafe = 0;
	for (int i = 0; i < A.n; i++) {
		if (A.b[i].verdict != alone.b[i].verdict || A.b[i].ret != alone.b[i].ret)
			fail_msg("boundary #%u: shared %d/%d, alone %d/%d (%s)", A.b[i].insn, A.b[i].verdict, A.b[i].ret,
				 alone.b[i].verdict, alone.b[i].ret, alone.b[i].reason);
		safe += alone.b[i].verdict == WV_SAFE;
		unsafe += alone.b[i].verdict == WV_UNSAFE;
	}
	printf("# value-dependent handler: %d boundaries, %d safe, %d unsafe, the same with and without sharing\n",
	       A.n, safe, unsafe);
	assert_true(safe > 0 && unsafe > 0);
	pl_free(&P);
}

/* The verdicts of an analysis with sharing (and the judgement memo) and of one that judges
 * every boundary alone must be the same, reasons included. */
static void same_as_alone(struct physmem *mem, const char *what)
{
	static struct wanalysis alone;
	A.safe_reasons = alone.safe_reasons = false;
	window_analyse(&P.t, &P.img, 2, mem, &A);
	assert_int_equal(setenv("SHIMCHECK_NO_SHARE", "1", 1), 0);
	window_analyse(&P.t, &P.img, 2, mem, &alone);
	assert_int_equal(unsetenv("SHIMCHECK_NO_SHARE"), 0);
	assert_int_equal(A.n, alone.n);
	for (int i = 0; i < A.n; i++)
		if (A.b[i].verdict != alone.b[i].verdict || A.b[i].ret != alone.b[i].ret ||
		    strcmp(A.b[i].reason, alone.b[i].reason) != 0)
			fail_msg("%s: boundary #%u: shared %d/%d (%s), alone %d/%d (%s)", what, A.b[i].insn, A.b[i].verdict,
				 A.b[i].ret, A.b[i].reason, alone.b[i].verdict, alone.b[i].ret, alone.b[i].reason);
	printf("# %s: %d boundaries, %d unsafe, the same with and without sharing\n", what, A.n, A.unsafe);
}

/* A judgement kept from an earlier analysis is taken only while every byte it read is the
 * same, paging entries included. Memory after the run is changed where the trace writes
 * nothing (so the whole analysis sees the change): gate 2 of the shim's IDT made not
 * present, then the host's PTE of the shim page made read-only (its pushes then fault under
 * the host's CR3: CR0.WP is set). The same registers come back at every boundary; only the
 * bytes say that the kept verdicts no longer hold. */
static void kept_judgements_follow_the_bytes(void **state)
{
	(void)state;
	pl_init(&P);
	assert_int_equal(pl_load_code(&P, SHIMCHECK_SHIM_DIR "/hardened"), PL_OK);
	assert_int_equal(pl_load_scenario(&P, SHIMCHECK_SOURCE_DIR "/scenarios/default.json"), PL_OK);
	assert_int_equal(pl_run(&P), PL_OK); /* its analysis keeps the judgements */
	struct physmem mem = engine_memory(P.eng);
	same_as_alone(&mem, "as run");
	assert_int_equal(A.unsafe, 0);

	uint8_t *type = phys_ptr(&mem, P.img.shim_pa + SHIM_IDT_OFF + 8 * 2 + 5, 1);
	assert_non_null(type);
	assert_true(*type & 0x80);
	*type &= 0x7F;
	same_as_alone(&mem, "shim gate 2 not present");
	assert_true(A.unsafe_delivery > 0);
	*type |= 0x80;

	struct walk w = paging_walk(&mem, &P.img.w[SP_HOST].regs, P.img.shim_lin, ACC_WRITE, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_true(w.nlevels > 0);
	uint8_t *pte = phys_ptr(&mem, w.level[w.nlevels - 1].entry_pa, 1);
	assert_non_null(pte);
	assert_true(*pte & PTE_W);
	*pte &= (uint8_t)~PTE_W;
	same_as_alone(&mem, "host PTE of the shim page read-only");
	assert_true(A.unsafe_delivery > 0);
	*pte |= PTE_W;

	same_as_alone(&mem, "restored");
	assert_int_equal(A.unsafe, 0);
	pl_free(&P);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(literal_nmi_window), cmocka_unit_test(hardened_nmi_safe_everywhere),
					   cmocka_unit_test(hardened_old_cs_return_faults),
					   cmocka_unit_test(hardened_handler_clobbers), cmocka_unit_test(hardened_handler_must_note),
					   cmocka_unit_test(hardened_value_dependent_handler),
					   cmocka_unit_test(kept_judgements_follow_the_bytes)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
