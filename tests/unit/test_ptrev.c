/*
 * test_ptrev.c: paging_reverse(), from a paging-structure entry's physical address back to
 * the linear regions it translates, against tables built with pt_builder.
 *
 * As in test_paging.c, each test gets a fresh 64-page physical window at 0x400000 with a
 * bump allocator: the root is 0x400000 and each table the builder allocates takes the next
 * page. With 0xC8801000 mapped first:
 *   32-bit: PD 0x400000, PDE 0x322 at 0x400C88 -> PT 0x401000, PTE 1 at 0x401004
 *   PAE:    PDPT 0x400000, PDPTE 3 at 0x400018 -> PD 0x401000, PDE 0x44 at 0x401220
 *           -> PT 0x402000, PTE 1 at 0x402008
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pt_fixture.h"

#define SHIM_LIN 0xC8801000u
#define FRAME 0x00405000u

static int rev(struct fix *f, uint64_t entry_pa, int max)
{
	memset(f->out, 0xEE, sizeof f->out);
	return paging_reverse(&f->pm, &f->r, entry_pa, f->out, max);
}

static void assert_region(const struct lin_region *x, uint32_t lin, uint32_t size, int level)
{
	assert_int_equal(x->lin, lin);
	assert_int_equal(x->size, size);
	assert_int_equal(x->level, level);
}

static void map_shim(struct fix *f)
{
	assert_true(pt_map4k(&f->b, SHIM_LIN, FRAME, PTE_W, 0));
	if (f->b.mode == PM_PAE)
		assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
}

/* ---- 32-bit paging ---- */

static void rev32_pte_of_0xC8801000_is_that_page_at_level_2(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_int_equal(pt_leaf_pa(&f->b, SHIM_LIN), 0x401004);
	assert_int_equal(rev(f, 0x401004, 8), 1);
	assert_region(&f->out[0], SHIM_LIN, PGSIZE, 2);
	/* the other entries of the same table: their own pages of the 4 MiB */
	assert_int_equal(rev(f, 0x401000, 8), 1);
	assert_region(&f->out[0], 0xC8800000u, PGSIZE, 2);
	assert_int_equal(rev(f, 0x401FFC, 8), 1);
	assert_region(&f->out[0], 0xC8BFF000u, PGSIZE, 2);
}

static void rev32_pde_is_its_4m_region_at_level_1(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_int_equal(rev(f, 0x400C88, 8), 1);
	assert_region(&f->out[0], 0xC8800000u, PSE_SIZE, 1);
	/* present or not, a PDE slot covers its 4 MiB */
	assert_int_equal(rev(f, 0x400000, 8), 1);
	assert_region(&f->out[0], 0x00000000u, PSE_SIZE, 1);
	assert_int_equal(rev(f, 0x400FFC, 8), 1);
	assert_region(&f->out[0], 0xFFC00000u, PSE_SIZE, 1);
}

static void rev32_pse_large_pde_is_its_4m_region(void **state)
{
	struct fix *f = *state;

	f->r.cr4 = CR4_PSE;
	assert_true(pt_map_large(&f->b, 0x00C00000u, 0x01000000u, PTE_W, 0));
	assert_int_equal(pt_leaf_pa(&f->b, 0x00C00000u), 0x40000C);
	assert_int_equal(rev(f, 0x40000C, 8), 1);
	assert_region(&f->out[0], 0x00C00000u, PSE_SIZE, 1);
}

static void rev32_page_table_under_two_pdes_gives_two_regions(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_true(phys_write4(&f->pm, 0x400000 + PDX(0x00800000u) * 4, 0x00401000u | PTE_P | PTE_W | PTE_A));
	assert_int_equal(rev(f, 0x401004, 8), 2);
	assert_region(&f->out[0], 0x00801000u, PGSIZE, 2); /* PDE 2 comes first */
	assert_region(&f->out[1], SHIM_LIN, PGSIZE, 2);
	/* max bounds what is written and returned */
	assert_int_equal(rev(f, 0x401004, 1), 1);
	assert_region(&f->out[0], 0x00801000u, PGSIZE, 2);
	assert_int_equal(f->out[1].lin, 0xEEEEEEEEu);
}

static void rev32_not_present_pde_does_not_reference_its_table(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_true(phys_write4(&f->pm, 0x400000 + PDX(0x00800000u) * 4, 0x00401000u | PTE_W | PTE_A));
	assert_int_equal(rev(f, 0x401004, 8), 1);
	assert_region(&f->out[0], SHIM_LIN, PGSIZE, 2);
}

/* With CR4.PSE=0 the PS bit is ignored: the PDE points to a page table. */
static void rev32_ps_pde_without_pse_points_to_a_table(void **state)
{
	struct fix *f = *state;

	assert_true(phys_write4(&f->pm, 0x400000 + 5 * 4, 0x00405000u | PTE_PS | PTE_P));
	assert_int_equal(rev(f, 0x405010, 8), 1);
	assert_region(&f->out[0], 0x01404000u, PGSIZE, 2);
}

static void rev32_entry_in_unreferenced_page_yields_nothing(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_int_equal(rev(f, FRAME + 0x10, 8), 0);      /* the mapped frame is data */
	assert_int_equal(rev(f, 0x402000, 8), 0);          /* a page no PDE points to */
	assert_int_equal(rev(f, 0x10000000, 8), 0);        /* outside physical memory */
	assert_int_equal(f->out[0].lin, 0xEEEEEEEEu);
}

/* ---- PAE ---- */

static void revpae_pte_of_0xC8801000_is_that_page_at_level_2(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_int_equal(pt_leaf_pa(&f->b, SHIM_LIN), 0x402008);
	assert_int_equal(rev(f, 0x402008, 8), 1);
	assert_region(&f->out[0], SHIM_LIN, PGSIZE, 2);
	assert_int_equal(rev(f, 0x402FF8, 8), 1);
	assert_region(&f->out[0], 0xC89FF000u, PGSIZE, 2);
}

static void revpae_pde_is_its_2m_region_at_level_1(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_int_equal(rev(f, 0x401220, 8), 1);
	assert_region(&f->out[0], 0xC8800000u, PAE_LARGE, 1);
	assert_int_equal(rev(f, 0x401FF8, 8), 1);
	assert_region(&f->out[0], 0xFFE00000u, PAE_LARGE, 1);
}

static void revpae_pdpte_is_its_1g_region_at_level_0(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_int_equal(rev(f, 0x400018, 8), 1);
	assert_region(&f->out[0], 0xC0000000u, 0x40000000u, 0);
	assert_int_equal(rev(f, 0x400000, 8), 1);
	assert_region(&f->out[0], 0x00000000u, 0x40000000u, 0);
	assert_int_equal(rev(f, 0x400020, 8), 0); /* past the four PDPTEs */
}

static void revpae_uses_pdpte_registers_not_memory(void **state)
{
	struct fix *f = *state;

	assert_true(pt_map4k(&f->b, SHIM_LIN, FRAME, PTE_W, 0));
	/* PDPTE registers not loaded yet: memory points to the PD, the CPU does not */
	assert_int_equal(rev(f, 0x402008, 8), 0);
	assert_int_equal(rev(f, 0x401220, 8), 0);
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	assert_int_equal(f->r.pdpte[3], 0x401000u | PTE_P);
	assert_int_equal(rev(f, 0x402008, 8), 1);
	/* clearing the PDPTE in memory changes nothing until the next load */
	assert_true(phys_write8(&f->pm, 0x400018, 0));
	assert_int_equal(rev(f, 0x402008, 8), 1);
	assert_region(&f->out[0], SHIM_LIN, PGSIZE, 2);
}

static void revpae_page_table_under_two_pdes_gives_two_regions(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_true(phys_write8(&f->pm, 0x401228, 0x402000u | PTE_P | PTE_W | PTE_A)); /* PDE 0x45 */
	assert_int_equal(rev(f, 0x402008, 8), 2);
	assert_region(&f->out[0], SHIM_LIN, PGSIZE, 2);
	assert_region(&f->out[1], 0xC8A01000u, PGSIZE, 2);
}

static void revpae_page_directory_under_two_pdptes_gives_two_regions(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_true(phys_write8(&f->pm, 0x400010, 0x401000u | PTE_P)); /* PDPTE 2 -> the same PD */
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	assert_int_equal(rev(f, 0x401220, 8), 2);
	assert_region(&f->out[0], 0x88800000u, PAE_LARGE, 1);
	assert_region(&f->out[1], 0xC8800000u, PAE_LARGE, 1);
	assert_int_equal(rev(f, 0x402008, 8), 2);
	assert_region(&f->out[0], 0x88801000u, PGSIZE, 2);
	assert_region(&f->out[1], SHIM_LIN, PGSIZE, 2);
}

/* A 2 MiB PDE maps memory: its frame is not a page table. */
static void revpae_large_pde_frame_is_not_a_table(void **state)
{
	struct fix *f = *state;

	assert_true(pt_map_large(&f->b, 0x00200000u, 0x00600000u, PTE_W, 0));
	assert_int_equal(paging_load_pdptes(&f->pm, &f->r), WALK_OK);
	assert_int_equal(rev(f, 0x00600010u, 8), 0);
	assert_int_equal(pt_leaf_pa(&f->b, 0x00200000u), 0x401008);
	assert_int_equal(rev(f, 0x401008, 8), 1);
	assert_region(&f->out[0], 0x00200000u, PAE_LARGE, 1);
}

static void revpae_entry_in_unreferenced_page_yields_nothing(void **state)
{
	struct fix *f = *state;

	map_shim(f);
	assert_int_equal(rev(f, FRAME + 0x10, 8), 0);
	assert_int_equal(rev(f, 0x403000, 8), 0);
	assert_int_equal(f->out[0].lin, 0xEEEEEEEEu);
}

#define T32(fn) cmocka_unit_test_setup_teardown(fn, setup32, teardown)
#define TPAE(fn) cmocka_unit_test_setup_teardown(fn, setup_pae, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T32(rev32_pte_of_0xC8801000_is_that_page_at_level_2),
		T32(rev32_pde_is_its_4m_region_at_level_1),
		T32(rev32_pse_large_pde_is_its_4m_region),
		T32(rev32_page_table_under_two_pdes_gives_two_regions),
		T32(rev32_not_present_pde_does_not_reference_its_table),
		T32(rev32_ps_pde_without_pse_points_to_a_table),
		T32(rev32_entry_in_unreferenced_page_yields_nothing),
		TPAE(revpae_pte_of_0xC8801000_is_that_page_at_level_2),
		TPAE(revpae_pde_is_its_2m_region_at_level_1),
		TPAE(revpae_pdpte_is_its_1g_region_at_level_0),
		TPAE(revpae_uses_pdpte_registers_not_memory),
		TPAE(revpae_page_table_under_two_pdes_gives_two_regions),
		TPAE(revpae_page_directory_under_two_pdptes_gives_two_regions),
		TPAE(revpae_large_pde_frame_is_not_a_table),
		TPAE(revpae_entry_in_unreferenced_page_yields_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
