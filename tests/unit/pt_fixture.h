/*
 * pt_fixture.h: the fixture test_paging.c and test_ptrev.c share: a fresh 64-page physical
 * window at 0x400000 with a bump allocator, so table addresses are predictable (the root is
 * 0x400000, every table the builder allocates takes the next page), and paging registers
 * pointing at the root. Included once per test program (its functions are static).
 */
#ifndef SHIMCHECK_TESTS_PT_FIXTURE_H
#define SHIMCHECK_TESTS_PT_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mmu.h"
#include "paging.h"
#include "phys.h"

#define MEM_BASE 0x400000u
#define MEM_PAGES 64u
#define MEM_END (MEM_BASE + MEM_PAGES * PGSIZE)

struct fix {
	struct physmem pm;
	uint64_t next;
	struct pt_builder b;
	struct paging_regs r;
	struct lin_region out[8]; /* test_ptrev's answers */
};

static uint64_t bump(void *ctx)
{
	struct fix *f = ctx;
	uint64_t pa = f->next;

	if (pa >= MEM_END)
		return 0;
	f->next += PGSIZE;
	memset(phys_ptr(&f->pm, pa, PGSIZE), 0, PGSIZE);
	return pa;
}

static int setup(void **state, enum paging_mode mode)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->pm.base = MEM_BASE;
	f->pm.size = MEM_PAGES * PGSIZE;
	f->pm.bytes = calloc(MEM_PAGES, PGSIZE);
	if (f->pm.bytes == NULL) {
		free(f);
		return -1;
	}
	f->next = MEM_BASE;
	f->b.pm = &f->pm;
	f->b.mode = mode;
	f->b.alloc = bump;
	f->b.alloc_ctx = f;
	f->b.root = bump(f);
	f->r.cr0 = CR0_PE | CR0_ET | CR0_PG;
	f->r.cr3 = (uint32_t)f->b.root;
	f->r.cr4 = mode == PM_PAE ? CR4_PAE : 0;
	*state = f;
	return 0;
}

static int setup32(void **state)
{
	return setup(state, PM_32);
}

static int setup_pae(void **state)
{
	return setup(state, PM_PAE);
}

static int teardown(void **state)
{
	struct fix *f = *state;

	free(f->pm.bytes);
	free(f);
	return 0;
}

#endif
