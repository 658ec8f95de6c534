/*
 * test_roundtrip: the real literal shim, end to end, in every shipped paging mode.
 *
 * Each scenario must pass every rule, and the trace must show what the documented sequence
 * promises: both TSS descriptors busy when their LTR comes, the guest reading its own page
 * at the shim address, the world state after each far jump.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../model/mmu.h"
#include "pipeline.h"

static struct pipeline P;

static int setup(void **state)
{
	(void)state;
	pl_init(&P);
	enum pl_status st = pl_load_code(&P, SHIMCHECK_SHIM_DIR "/literal");
	if (st != PL_OK)
		fprintf(stderr, "%s\n", P.err);
	return st == PL_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	pl_free(&P);
	return 0;
}

static unsigned count_events(enum ev_kind k)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < P.t.nev; i++)
		n += P.t.ev[i].kind == k;
	return n;
}

static void run_scenario(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/scenarios/%s.json", SHIMCHECK_SOURCE_DIR, name);
	enum pl_status st = pl_load_scenario(&P, path);
	if (st != PL_OK)
		fail_msg("%s", P.err);
	st = pl_run(&P);
	for (int i = 0; i < P.v.n && i < MAX_VIOLATIONS; i++)
		print_error("%s: %s\n", rule_id(P.v.v[i].rule), P.v.v[i].msg);
	assert_int_equal(st, PL_OK);
	assert_int_equal(P.t.end, END_DONE);
	assert_int_equal(P.v.windows[DIR_M2H], P.img.rounds);
	assert_int_equal(P.v.windows[DIR_H2M], P.img.rounds);

	/* Both TSS descriptors are busy when their LTR comes: every LTR is preceded by a clear. */
	assert_int_equal(count_events(EV_LTR), 2 * P.img.rounds);
	assert_int_equal(count_events(EV_BUSY_CLEAR), 2 * P.img.rounds);
	assert_int_equal(count_events(EV_BUSY_SET), 2 * P.img.rounds);
	assert_int_equal(count_events(EV_MOV_CR3), 2 * P.img.rounds);
	/* The monitor swaps the shim-address PTE twice per round trip (restore, then remap),
	 * each followed by INVLPG. */
	assert_int_equal(count_events(EV_INVLPG), 2 * P.img.rounds);
	assert_int_equal(count_events(EV_GUEST_RUN), P.img.rounds);

	/* The guest, reading its shim-address page, sees its own frame (UD2 filler), never the shim. */
	unsigned guest_reads = 0;
	for (uint32_t i = 0; i < P.t.nmem; i++) {
		const struct tr_mem *m = &P.t.mem[i];
		if (!m->write && m->lin_known && m->lin == P.img.shim_lin && P.t.insn[m->insn].space == SP_MON &&
		    (P.t.insn[m->insn].cpu.eip & PGMASK) != P.img.shim_lin) {
			assert_int_equal(m->pa, P.img.guest_pa[0]);
			assert_int_equal(m->value, 0x0B0F0B0F);
			guest_reads++;
		}
	}
	assert_int_equal(guest_reads, P.img.rounds);

	/* The run ends in the host, with the host's tables and TR. */
	assert_int_equal(P.t.final.cr3, P.img.w[SP_HOST].regs.cr3);
	assert_int_equal(P.t.final.tr, P.img.w[SP_HOST].tr);
	assert_int_equal(P.t.final.gdtr_base, P.img.w[SP_HOST].gdtr.base);
	assert_int_equal(P.t.final.eip, P.img.ep[EP_HOST_DONE]);
}

static void default_4k_two_round_trips_pass(void **state)
{
	(void)state;
	run_scenario("default");
	assert_int_equal(P.img.rounds, 2);
	assert_int_equal(P.img.pte_size, 4);
}

static void pse_4m_pages_pass(void **state)
{
	(void)state;
	run_scenario("pse");
	assert_true(P.img.w[SP_MON].regs.cr4 & CR4_PSE);
}

static void pae_8byte_ptes_pass(void **state)
{
	(void)state;
	run_scenario("pae");
	assert_true(P.img.w[SP_MON].regs.cr4 & CR4_PAE);
	assert_int_equal(P.img.pte_size, 8);
	/* NX is in the high half: both halves of the shim-address PTE are swapped. */
	assert_true(P.img.guest_pte >> 63);
}

static void cs_wrap_reaches_shim_by_wrapping(void **state)
{
	(void)state;
	run_scenario("cs-wrap");
	/* Inside __monitor2host the CPU's EIP is the linear address minus the CS base, mod 4 GiB. */
	bool seen = false;
	for (uint32_t i = 0; i < P.t.n; i++) {
		const struct tr_insn *in = &P.t.insn[i];
		if (in->space == SP_MON && in->cpu.eip == P.img.ep[EP_SHIM_M2H]) {
			assert_int_equal(in->cpu.eip_off, (uint32_t)(P.img.ep[EP_SHIM_M2H] - P.img.w[SP_MON].cs_base));
			assert_true(in->cpu.eip_off > in->cpu.eip); /* it wrapped */
			seen = true;
		}
	}
	assert_true(seen);
}

static void engine_reuse_gives_identical_traces(void **state)
{
	(void)state;
	run_scenario("default");
	uint32_t n = P.t.n, nmem = P.t.nmem, nev = P.t.nev;
	struct tr_cpu fin = P.t.final;
	for (int k = 0; k < 5; k++) {
		assert_int_equal(pl_run(&P), PL_OK);
		assert_int_equal(P.t.n, n);
		assert_int_equal(P.t.nmem, nmem);
		assert_int_equal(P.t.nev, nev);
		assert_memory_equal(&P.t.final, &fin, sizeof fin);
	}
}

/* Unicorn remembers a fault: on a reused engine the next one would come out as #DF and later
 * ones not at all. Every scenario on one pipeline must get its standalone verdict. */
static void faults_do_not_leak_across_scenarios(void **state)
{
	(void)state;
	const char *fault = SHIMCHECK_SOURCE_DIR "/tests/findings/host-lacks-monitor-gdt.json";
	const char *good = SHIMCHECK_SOURCE_DIR "/scenarios/default.json";
	for (int k = 0; k < 3; k++) {
		assert_int_equal(pl_load_scenario(&P, fault), PL_OK);
		assert_int_equal(pl_run(&P), PL_VIOLATION);
		assert_int_equal(P.v.v[0].rule, R_FAULT);
		assert_non_null(strstr(P.v.v[0].msg, "#PF (vector 14)"));
		assert_int_equal(pl_run(&P), PL_VIOLATION); /* the same image again */
		assert_non_null(strstr(P.v.v[0].msg, "#PF (vector 14)"));
		assert_int_equal(pl_load_scenario(&P, good), PL_OK);
		assert_int_equal(pl_run(&P), PL_OK);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_4k_two_round_trips_pass),
		cmocka_unit_test(pse_4m_pages_pass),
		cmocka_unit_test(pae_8byte_ptes_pass),
		cmocka_unit_test(cs_wrap_reaches_shim_by_wrapping),
		cmocka_unit_test(engine_reuse_gives_identical_traces),
		cmocka_unit_test(faults_do_not_leak_across_scenarios),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
