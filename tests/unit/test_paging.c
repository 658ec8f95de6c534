/*
 * test_paging.c: the reference walker and the table writer against hand-computed walks.
 *
 * Each test builds its tables in a fresh 64-page physical window at 0x400000 with a bump
 * allocator, so table addresses are predictable: the root is 0x400000 and every table the
 * builder allocates takes the next page (0x401000, 0x402000, ...).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pt_fixture.h"

static struct walk wk(struct fix *f, uint32_t lin, enum access acc, unsigned cpl)
{
	return paging_walk(&f->pm, &f->r, lin, acc, cpl);
}

static uint32_t rd4(struct fix *f, uint64_t pa)
{
	uint32_t v = 0;

	assert_true(phys_read4(&f->pm, pa, &v));
	return v;
}

static uint64_t rd8(struct fix *f, uint64_t pa)
{
	uint64_t v = 0;

	assert_true(phys_read8(&f->pm, pa, &v));
	return v;
}

static void wr4(struct fix *f, uint64_t pa, uint32_t v)
{
	assert_true(phys_write4(&f->pm, pa, v));
}

static void wr8(struct fix *f, uint64_t pa, uint64_t v)
{
	assert_true(phys_write8(&f->pm, pa, v));
}

static void assert_fault(struct walk w, uint32_t err)
{
	assert_int_equal(w.status, WALK_FAULT);
	assert_int_equal(w.err, err);
}

/* ---- physmem ---- */

static void phys_in_rejects_edges_and_wraparound(void **state)
{
	struct fix *f = *state;

	assert_true(phys_in(&f->pm, MEM_BASE, 4));
	assert_true(phys_in(&f->pm, MEM_END - 8, 8));
	assert_false(phys_in(&f->pm, MEM_END - 4, 8));
	assert_false(phys_in(&f->pm, MEM_BASE - 1, 2));
	assert_false(phys_in(&f->pm, UINT64_MAX - 3, 8));
	assert_null(phys_ptr(&f->pm, MEM_END, 1));
	assert_true(phys_write8(&f->pm, MEM_BASE + 0x10, 0x1122334455667788ull));
	assert_int_equal(rd4(f, MEM_BASE + 0x10), 0x55667788u);
	assert_int_equal(rd4(f, MEM_BASE + 0x14), 0x11223344u);
}

/* ---- 32-bit paging ---- */

/* PDX(0x00801ABC) = 2, PTX = 1; PT is the first allocation, 0x401000. */
static void walk32_4k_0x00801ABC_to_0x00405ABC_levels_are_built_pde_pte(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W, 0));
	assert_int_equal(rd4(f, 0x400008), 0x00401027u); /* PT | A U W P */
	assert_int_equal(rd4(f, 0x401004), 0x00405003u); /* frame | W P */

	w = wk(f, 0x00801ABCu, ACC_READ, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.lin, 0x00801ABCu);
	assert_int_equal(w.pa, 0x00405ABCu);
	assert_int_equal(w.page_size, PGSIZE);
	assert_true(w.writable);
	assert_false(w.user);
	assert_false(w.global);
	assert_false(w.nx);
	assert_int_equal(w.nlevels, 2);
	assert_int_equal(w.level[0].entry_pa, 0x400008);
	assert_int_equal(w.level[0].value, 0x00401027u);
	assert_int_equal(w.level[1].entry_pa, 0x401004);
	assert_int_equal(w.level[1].value, 0x00405003u);
}

/* PDX(0x00C00000) = 3: PDE at 0x40000C = frame | G PS W P. */
static void walk32_pse_4m_0x00D23456_to_0x01123456(void **state)
{
	struct fix *f = *state;
	struct walk w;

	f->r.cr4 = CR4_PSE;
	assert_true(pt_map_large(&f->b, 0x00C00000u, 0x01000000u, PTE_W | PTE_G, 0));
	assert_int_equal(rd4(f, 0x40000C), 0x01000183u);
	assert_int_equal(f->next, 0x401000); /* no page table allocated */

	w = wk(f, 0x00D23456u, ACC_WRITE, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x01123456u);
	assert_int_equal(w.page_size, PSE_SIZE);
	assert_true(w.global);
	assert_int_equal(w.nlevels, 1);
	assert_int_equal(w.level[0].entry_pa, 0x40000C);
	assert_int_equal(w.level[0].value, 0x01000183u);
}

/* PSE-36: pa bits 33:32 = 3 go to PDE bits 14:13, i.e. 0x6000. */
static void walk32_pse36_pde_bits_20_13_give_pa_39_32(void **state)
{
	struct fix *f = *state;
	struct walk w;

	f->r.cr4 = CR4_PSE;
	assert_true(pt_map_large(&f->b, 0x01000000u, 0x300400000ull, 0, 0));
	assert_int_equal(rd4(f, 0x400010), 0x00406081u);
	w = wk(f, 0x01000010u, ACC_READ, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x300400010ull);
}

/*
 * PDE 4 is a large page whose frame is 0x400000, the page directory itself. Without
 * CR4.PSE the walker must treat it as a page-table pointer: PTX(0x01002034) = 2 selects
 * the PD's own entry 2 (0x00401027, the PDE built for 0x00801000) as the PTE.
 */
static void walk32_ps_bit_ignored_when_cr4_pse_0(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W, 0));
	assert_true(pt_map_large(&f->b, 0x01000000u, 0x00400000u, PTE_W, 0));
	assert_int_equal(rd4(f, 0x400010), 0x00400083u);

	f->r.cr4 = CR4_PSE;
	w = wk(f, 0x01002034u, ACC_READ, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x00402034u);
	assert_int_equal(w.page_size, PSE_SIZE);
	assert_int_equal(w.nlevels, 1);

	f->r.cr4 = 0;
	w = wk(f, 0x01002034u, ACC_READ, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x00401034u);
	assert_int_equal(w.page_size, PGSIZE);
	assert_int_equal(w.nlevels, 2);
	assert_int_equal(w.level[1].entry_pa, 0x400008);
	assert_int_equal(w.level[1].value, 0x00401027u);
	assert_true(w.writable);
	assert_false(w.user); /* the PDE 0x00400083 lacks U */
}

/* PDX(0x40000000) = 0x100: entry 0x400400 is still zero. */
static void walk32_not_present_pde_err_0_write_2_user_write_6(void **state)
{
	struct fix *f = *state;
	struct walk w;

	w = wk(f, 0x40000000u, ACC_READ, 0);
	assert_fault(w, 0);
	assert_int_equal(w.nlevels, 1);
	assert_int_equal(w.level[0].entry_pa, 0x400400);
	assert_int_equal(w.level[0].value, 0);
	assert_fault(wk(f, 0x40000000u, ACC_WRITE, 0), PFEC_W);
	assert_fault(wk(f, 0x40000000u, ACC_WRITE, 3), PFEC_U | PFEC_W);
	/* 32-bit paging never reports I/D, whatever EFER.NXE says. */
	f->r.efer = EFER_NXE;
	assert_fault(wk(f, 0x40000000u, ACC_FETCH, 3), PFEC_U);
}

/* PTX(0x00802000) = 2: PT 0x401000 exists, entry 0x401008 is zero. */
static void walk32_not_present_pte_err_0_write_2_user_write_6(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W | PTE_U, 0));
	w = wk(f, 0x00802000u, ACC_READ, 0);
	assert_fault(w, 0);
	assert_int_equal(w.nlevels, 2);
	assert_int_equal(w.level[1].entry_pa, 0x401008);
	assert_int_equal(w.level[1].value, 0);
	assert_fault(wk(f, 0x00802000u, ACC_WRITE, 0), 2);
	assert_fault(wk(f, 0x00802000u, ACC_WRITE, 3), 6);
}

static void walk32_supervisor_write_ro_err_3_with_wp_ok_without(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, 0, 0));
	f->r.cr0 |= CR0_WP;
	assert_fault(wk(f, 0x00801010u, ACC_WRITE, 0), PFEC_P | PFEC_W);
	assert_int_equal(wk(f, 0x00801010u, ACC_READ, 0).status, WALK_OK);

	f->r.cr0 &= ~CR0_WP;
	w = wk(f, 0x00801010u, ACC_WRITE, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x00405010u);
	assert_false(w.writable);
}

static void walk32_user_read_supervisor_err_5_user_write_ro_err_7(void **state)
{
	struct fix *f = *state;

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W, 0));
	assert_true(pt_map4k(&f->b, 0x00803000u, 0x00406000u, PTE_U, 0));
	assert_fault(wk(f, 0x00801000u, ACC_READ, 3), PFEC_P | PFEC_U);
	assert_fault(wk(f, 0x00801000u, ACC_FETCH, 3), PFEC_P | PFEC_U);
	assert_fault(wk(f, 0x00803000u, ACC_WRITE, 3), PFEC_P | PFEC_W | PFEC_U);
	assert_int_equal(wk(f, 0x00803000u, ACC_READ, 3).status, WALK_OK);
	/* No SMEP/SMAP: the supervisor may read and fetch user pages. */
	assert_int_equal(wk(f, 0x00803000u, ACC_READ, 0).status, WALK_OK);
	assert_int_equal(wk(f, 0x00803000u, ACC_FETCH, 0).status, WALK_OK);
}

static void walk32_rights_are_and_of_pde_and_pte(void **state)
{
	struct fix *f = *state;

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W | PTE_U, 0));
	f->r.cr0 |= CR0_WP;
	assert_int_equal(wk(f, 0x00801000u, ACC_WRITE, 3).status, WALK_OK);
	wr4(f, 0x400008, 0x00401021u); /* PDE without U and W */
	assert_fault(wk(f, 0x00801000u, ACC_READ, 3), PFEC_P | PFEC_U);
	assert_fault(wk(f, 0x00801000u, ACC_WRITE, 0), PFEC_P | PFEC_W);
	wr4(f, 0x400008, 0x00401025u); /* U back, still no W */
	assert_fault(wk(f, 0x00801000u, ACC_WRITE, 3), PFEC_P | PFEC_W | PFEC_U);
	assert_int_equal(wk(f, 0x00801000u, ACC_READ, 3).status, WALK_OK);
}

static void walk32_table_outside_memory_is_badphys(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W, 0));
	f->r.cr3 = 0x10000000u;
	w = wk(f, 0x00801000u, ACC_READ, 0);
	assert_int_equal(w.status, WALK_BADPHYS);
	assert_int_equal(w.nlevels, 0);

	f->r.cr3 = MEM_BASE;
	wr4(f, 0x400008, 0x20000003u);
	w = wk(f, 0x00801000u, ACC_READ, 0);
	assert_int_equal(w.status, WALK_BADPHYS);
	assert_int_equal(w.nlevels, 1);
	assert_int_equal(w.level[0].value, 0x20000003u);

	/* The data page itself is never read, so a leaf outside memory is fine. */
	f->r.cr4 = CR4_PSE;
	assert_true(pt_map_large(&f->b, 0x80000000u, 0x80000000u, 0, 0));
	w = wk(f, 0x80000004u, ACC_READ, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x80000004u);
}

static void walk_with_paging_off_is_identity(void **state)
{
	struct fix *f = *state;
	struct walk w;

	f->r.cr0 = CR0_PE;
	w = wk(f, 0xDEADBEEFu, ACC_WRITE, 3);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0xDEADBEEFu);
	assert_int_equal(w.nlevels, 0);
}

static void commit_ad_sets_a_on_pde_pte_and_d_on_write_once(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W, 0));
	assert_true(pt_map4k(&f->b, 0x00802000u, 0x00406000u, PTE_W, 0));
	wr4(f, 0x400008, 0x00401007u); /* PDE with A cleared */

	w = wk(f, 0x00801000u, ACC_WRITE, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(walk_commit_ad(&f->pm, &w, ACC_WRITE), 2);
	assert_int_equal(rd4(f, 0x400008), 0x00401027u);
	assert_int_equal(rd4(f, 0x401004), 0x00405063u); /* A D W P */
	assert_int_equal(walk_commit_ad(&f->pm, &w, ACC_WRITE), 0);

	/* A read sets A only; the PDE already has it. */
	w = wk(f, 0x00802000u, ACC_READ, 0);
	assert_int_equal(walk_commit_ad(&f->pm, &w, ACC_READ), 1);
	assert_int_equal(rd4(f, 0x401008), 0x00406023u);

	/* A faulting walk sets nothing. */
	w = wk(f, 0x00803000u, ACC_WRITE, 0);
	assert_int_equal(w.status, WALK_FAULT);
	assert_int_equal(walk_commit_ad(&f->pm, &w, ACC_WRITE), 0);
	assert_int_equal(rd4(f, 0x40100C), 0);
}

static void commit_ad_on_4m_page_sets_a_d_in_pde(void **state)
{
	struct fix *f = *state;
	struct walk w;

	f->r.cr4 = CR4_PSE;
	assert_true(pt_map_large(&f->b, 0x00C00000u, 0x01000000u, PTE_W, 0));
	w = wk(f, 0x00C00000u, ACC_WRITE, 0);
	assert_int_equal(walk_commit_ad(&f->pm, &w, ACC_WRITE), 1);
	assert_int_equal(rd4(f, 0x40000C), 0x010000E3u);
}

static void builder32_refusals_and_4k_remap(void **state)
{
	struct fix *f = *state;

	assert_true(pt_map_large(&f->b, 0x00C00000u, 0x01000000u, PTE_W, 0));
	assert_false(pt_map4k(&f->b, 0x00C01000u, 0x00405000u, PTE_W, 0));
	assert_int_equal(rd4(f, 0x40000C), 0x01000083u);

	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W, 0));
	assert_false(pt_map_large(&f->b, 0x00800000u, 0x01000000u, PTE_W, 0));
	assert_int_equal(rd4(f, 0x400008), 0x00401027u);

	assert_false(pt_map_large(&f->b, 0x01001000u, 0x01000000u, 0, 0)); /* lin misaligned */
	assert_false(pt_map_large(&f->b, 0x01000000u, 0x00200000u, 0, 0)); /* pa misaligned */
	assert_false(pt_map4k(&f->b, 0x00804000u, 0x00405000u, 0, PTE_NX_HI)); /* no NX here */

	/* Overwriting a 4K leaf is allowed and reuses the page table. */
	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00407000u, 0, 0));
	assert_int_equal(rd4(f, 0x401004), 0x00407001u);
	assert_int_equal(f->next, 0x402000);
}

static void leaf_pa_is_entry_walk_read_last(void **state)
{
	struct fix *f = *state;
	struct walk w;

	f->r.cr4 = CR4_PSE;
	assert_true(pt_map4k(&f->b, 0x00801000u, 0x00405000u, PTE_W, 0));
	assert_true(pt_map_large(&f->b, 0x00C00000u, 0x01000000u, PTE_W, 0));

	w = wk(f, 0x00801FFFu, ACC_READ, 0);
	assert_int_equal(pt_leaf_pa(&f->b, 0x00801FFFu), w.level[w.nlevels - 1].entry_pa);
	assert_int_equal(pt_leaf_pa(&f->b, 0x00801FFFu), 0x401004);
	w = wk(f, 0x00FFFFFFu, ACC_READ, 0);
	assert_int_equal(pt_leaf_pa(&f->b, 0x00FFFFFFu), w.level[w.nlevels - 1].entry_pa);
	assert_int_equal(pt_leaf_pa(&f->b, 0x00FFFFFFu), 0x40000C);
	/* PT present but PTE empty: the slot; PDE empty: nothing. */
	assert_int_equal(pt_leaf_pa(&f->b, 0x00802000u), 0x401008);
	assert_int_equal(pt_leaf_pa(&f->b, 0x40000000u), 0);
}

/* ---- PAE paging ---- */

/*
 * PDPX(0x40201ABC) = 1, PAE_PDX = 1, PAE_PTX = 1. PD 0x401000 and PT 0x402000 are the first
 * two allocations; the PDPTE carries only the address and P.
 */
static void pae_4k_0x40201ABC_to_0x12345ABC(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x40201000u, 0x12345000u, PTE_W | PTE_U, 0));
	assert_int_equal(rd8(f, 0x400008), 0x401001u);
	assert_int_equal(rd8(f, 0x401008), 0x402027u);
	assert_int_equal(rd8(f, 0x402008), 0x12345007u);
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	assert_int_equal(f->r.pdpte[0], 0);
	assert_int_equal(f->r.pdpte[1], 0x401001u);

	w = wk(f, 0x40201ABCu, ACC_WRITE, 3);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x12345ABCu);
	assert_int_equal(w.page_size, PGSIZE);
	assert_true(w.user);
	assert_true(w.writable);
	assert_int_equal(w.nlevels, 2);
	assert_int_equal(w.level[0].entry_pa, 0x401008);
	assert_int_equal(w.level[0].value, 0x402027u);
	assert_int_equal(w.level[1].entry_pa, 0x402008);
	assert_int_equal(w.level[1].value, 0x12345007u);
	assert_int_equal(pt_leaf_pa(&f->b, 0x40201ABCu), 0x402008);
}

/* PDPX(0x805ABCDE) = 2, PAE_PDX = 2; offset 0x1ABCDE. CR4.PSE is left 0 on purpose. */
static void pae_2m_0x805ABCDE_to_0x1007ABCDE_above_4g(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map_large(&f->b, 0x80400000u, 0x100600000ull, PTE_W | PTE_G, 0));
	assert_int_equal(rd8(f, 0x400010), 0x401001u);
	assert_int_equal(rd8(f, 0x401010), 0x100600183ull);
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);

	w = wk(f, 0x805ABCDEu, ACC_READ, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x1007ABCDEull);
	assert_int_equal(w.page_size, PAE_LARGE);
	assert_true(w.global);
	assert_int_equal(w.nlevels, 1);
	assert_int_equal(w.level[0].entry_pa, 0x401010);
	assert_int_equal(pt_leaf_pa(&f->b, 0x805ABCDEu), 0x401010);
}

static void pae_walk_uses_pdpte_register_not_memory(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x40201000u, 0x12345000u, PTE_W | PTE_U, 0));
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	wr8(f, 0x400008, 0); /* memory PDPTE gone; the register keeps 0x401001 */

	w = wk(f, 0x40201ABCu, ACC_READ, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.pa, 0x12345ABCu);

	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	w = wk(f, 0x40201ABCu, ACC_READ, 0);
	assert_fault(w, 0);
	assert_int_equal(w.nlevels, 0);
	assert_fault(wk(f, 0x40201ABCu, ACC_WRITE, 3), PFEC_W | PFEC_U);
}

static void pae_nx_fetch_with_nxe_err_0x11(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x40201000u, 0x12345000u, PTE_W, PTE_NX_HI));
	assert_true(pt_map4k(&f->b, 0x40203000u, 0x12346000u, PTE_W, 0));
	assert_int_equal(rd8(f, 0x402008), 0x8000000012345003ull);
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	f->r.efer = EFER_NXE;

	assert_fault(wk(f, 0x40201000u, ACC_FETCH, 0), PFEC_P | PFEC_I);
	w = wk(f, 0x40201000u, ACC_READ, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_true(w.nx);
	w = wk(f, 0x40203000u, ACC_FETCH, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_false(w.nx);
	/* I/D is reported on not-present fetches too once NXE=1. */
	assert_fault(wk(f, 0x40202000u, ACC_FETCH, 0), PFEC_I);
}

static void pae_nx_bit_without_nxe_is_rsvd_err_9(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x40201000u, 0x12345000u, PTE_W, PTE_NX_HI));
	assert_true(pt_map4k(&f->b, 0x40203000u, 0x12346000u, PTE_W, 0));
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);

	w = wk(f, 0x40201000u, ACC_READ, 0);
	assert_fault(w, PFEC_P | PFEC_RSVD);
	assert_int_equal(w.nlevels, 2);
	assert_fault(wk(f, 0x40201000u, ACC_FETCH, 0), PFEC_P | PFEC_RSVD);
	assert_fault(wk(f, 0x40201000u, ACC_WRITE, 3), PFEC_P | PFEC_RSVD | PFEC_W | PFEC_U);

	/* Bit 63 in the PDE poisons every page under it, detected at level 0. */
	wr8(f, 0x401008, 0x8000000000402027ull);
	w = wk(f, 0x40203000u, ACC_READ, 0);
	assert_fault(w, PFEC_P | PFEC_RSVD);
	assert_int_equal(w.nlevels, 1);
}

static void pae_pdpte_reserved_bit_is_badpdpte(void **state)
{
	struct fix *f = *state;

	assert_true(pt_map4k(&f->b, 0x40201000u, 0x12345000u, PTE_W, 0));
	f->r.pdpte[1] = 0xAAAA;
	wr8(f, 0x400008, 0x401003u); /* bit 1 (R/W) is reserved in a PDPTE */
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_BADPDPTE);
	assert_int_equal(f->r.pdpte[1], 0xAAAA); /* registers untouched */

	/* Reserved bits in a not-present PDPTE are ignored. */
	wr8(f, 0x400008, 0x401001u);
	wr8(f, 0x400000, PAE_PDPTE_RSVD);
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	assert_int_equal(f->r.pdpte[0], PAE_PDPTE_RSVD);

	f->r.pdpte[1] = 0x401001u | PTE_U;
	assert_int_equal(wk(f, 0x40201000u, ACC_READ, 0).status, WALK_BADPDPTE);
}

static void pae_table_outside_memory_is_badphys(void **state)
{
	struct fix *f = *state;
	struct walk w;

	f->r.cr3 = 0x10000000u;
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_BADPHYS);
	f->r.pdpte[1] = 0x80000001u;
	w = wk(f, 0x40201000u, ACC_READ, 0);
	assert_int_equal(w.status, WALK_BADPHYS);
	assert_int_equal(w.nlevels, 0);
}

/* A/D are written in the low dword only; NX in the high dword must survive. */
static void pae_commit_ad_keeps_nx_high_dword(void **state)
{
	struct fix *f = *state;
	struct walk w;

	assert_true(pt_map4k(&f->b, 0x40201000u, 0x12345000u, PTE_W, PTE_NX_HI));
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	f->r.efer = EFER_NXE;
	w = wk(f, 0x40201000u, ACC_WRITE, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(walk_commit_ad(&f->pm, &w, ACC_WRITE), 1); /* PDE built with A */
	assert_int_equal(rd8(f, 0x402008), 0x8000000012345063ull);
	assert_int_equal(rd8(f, 0x401008), 0x402027u);
	assert_int_equal(rd8(f, 0x400008), 0x401001u); /* the PDPTE has no A bit */
	assert_int_equal(walk_commit_ad(&f->pm, &w, ACC_WRITE), 0);
}

static void pae_builder_refusals_and_exhaustion(void **state)
{
	struct fix *f = *state;

	assert_false(pt_map_large(&f->b, 0x80300000u, 0x00600000u, 0, 0)); /* 1 MiB aligned */
	assert_false(pt_map_large(&f->b, 0x80400000u, 0x00500000u, 0, 0));
	assert_false(pt_map4k(&f->b, 0x40201000u, 0x12345000u, 0, 0x1)); /* address bit 32 */
	assert_true(pt_map_large(&f->b, 0x80400000u, 0x00600000u, 0, 0));
	assert_false(pt_map4k(&f->b, 0x80401000u, 0x00700000u, 0, 0));
	assert_int_equal(pt_leaf_pa(&f->b, 0x40201000u), 0); /* no PD for PDPX 1 */

	f->next = MEM_END;
	assert_false(pt_map4k(&f->b, 0x40201000u, 0x12345000u, 0, 0));
	assert_false(pt_map4k(&f->b, 0x80600000u, 0x12345000u, 0, 0)); /* PD exists, PT not */
}

#define T32(fn) cmocka_unit_test_setup_teardown(fn, setup32, teardown)
#define TPAE(fn) cmocka_unit_test_setup_teardown(fn, setup_pae, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T32(phys_in_rejects_edges_and_wraparound),
		T32(walk32_4k_0x00801ABC_to_0x00405ABC_levels_are_built_pde_pte),
		T32(walk32_pse_4m_0x00D23456_to_0x01123456),
		T32(walk32_pse36_pde_bits_20_13_give_pa_39_32),
		T32(walk32_ps_bit_ignored_when_cr4_pse_0),
		T32(walk32_not_present_pde_err_0_write_2_user_write_6),
		T32(walk32_not_present_pte_err_0_write_2_user_write_6),
		T32(walk32_supervisor_write_ro_err_3_with_wp_ok_without),
		T32(walk32_user_read_supervisor_err_5_user_write_ro_err_7),
		T32(walk32_rights_are_and_of_pde_and_pte),
		T32(walk32_table_outside_memory_is_badphys),
		T32(walk_with_paging_off_is_identity),
		T32(commit_ad_sets_a_on_pde_pte_and_d_on_write_once),
		T32(commit_ad_on_4m_page_sets_a_d_in_pde),
		T32(builder32_refusals_and_4k_remap),
		T32(leaf_pa_is_entry_walk_read_last),
		TPAE(pae_4k_0x40201ABC_to_0x12345ABC),
		TPAE(pae_2m_0x805ABCDE_to_0x1007ABCDE_above_4g),
		TPAE(pae_walk_uses_pdpte_register_not_memory),
		TPAE(pae_nx_fetch_with_nxe_err_0x11),
		TPAE(pae_nx_bit_without_nxe_is_rsvd_err_9),
		TPAE(pae_pdpte_reserved_bit_is_badpdpte),
		TPAE(pae_table_outside_memory_is_badphys),
		TPAE(pae_commit_ad_keeps_nx_high_dword),
		TPAE(pae_builder_refusals_and_exhaustion),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
