/*
 * ptrev.c: which linear addresses a paging-structure entry translates.
 *
 * Used to turn "the CPU wrote physical address X" into "the translation of these linear
 * pages changed", which is what INVLPG and MOV CR3 are about.
 */
#include "mmu.h"
#include "paging.h"

static int add(struct lin_region *out, int n, int max, uint32_t lin, uint32_t size, int level)
{
	if (n < max) {
		out[n].lin = lin;
		out[n].size = size;
		out[n].level = level;
	}
	return n + 1;
}

static int reverse32(const struct physmem *pm, uint32_t cr3, uint64_t entry_pa, struct lin_region *out, int max)
{
	uint64_t pd = cr3 & PGMASK;
	uint64_t page = entry_pa & ~(uint64_t)(PGSIZE - 1);
	int n = 0;
	if (page == pd)
		return add(out, n, max, (uint32_t)((entry_pa - pd) >> 2) << 22, PSE_SIZE, 1);
	const uint8_t *dir = phys_ptr(pm, pd, PGSIZE);
	if (!dir)
		return 0;
	for (uint32_t i = 0; i < 1024; i++) {
		if (!(i & 1) && !(get8(dir + 4 * i) & ((uint64_t)PTE_P << 32 | PTE_P))) {
			i++; /* two absent entries at once: most of a directory is empty */
			continue;
		}
		uint32_t pde = get4(dir + 4 * i);
		if (!(pde & PTE_P))
			continue;
		/* A PS entry maps memory, not a table (when CR4.PSE is off the bit is ignored,
		 * so be generous and treat it as a table pointer as well). */
		if ((pde & PGMASK) == page)
			n = add(out, n, max, i << 22 | (uint32_t)((entry_pa - page) >> 2) << 12, PGSIZE, 2);
	}
	return n;
}

static int reverse_pae(const struct physmem *pm, const struct paging_regs *r, uint64_t entry_pa,
		       struct lin_region *out, int max)
{
	uint64_t page = entry_pa & ~(uint64_t)(PGSIZE - 1);
	uint64_t pdpt = r->cr3 & 0xFFFFFFE0u;
	int n = 0;
	if (entry_pa >= pdpt && entry_pa < pdpt + 32)
		n = add(out, n, max, (uint32_t)((entry_pa - pdpt) >> 3) << 30, 0x40000000u, 0);
	for (uint32_t j = 0; j < 4; j++) {
		uint64_t pdpte = r->pdpte[j];
		if (!(pdpte & PTE_P))
			continue;
		uint64_t pd = pdpte & PAE_ADDR_MASK;
		if (page == pd) {
			n = add(out, n, max, j << 30 | (uint32_t)((entry_pa - pd) >> 3) << 21, PAE_LARGE, 1);
			continue;
		}
		const uint8_t *dir = phys_ptr(pm, pd, PGSIZE);
		for (uint32_t i = 0; dir && i < 512; i++) {
			uint64_t pde = get8(dir + 8 * i);
			if (!(pde & PTE_P) || (pde & PTE_PS))
				continue;
			if ((pde & PAE_ADDR_MASK) == page)
				n = add(out, n, max, j << 30 | i << 21 | (uint32_t)((entry_pa - page) >> 3) << 12, PGSIZE, 2);
		}
	}
	return n;
}

int paging_reverse(const struct physmem *pm, const struct paging_regs *r, uint64_t entry_pa,
		   struct lin_region *out, int max)
{
	int n = (r->cr4 & CR4_PAE) ? reverse_pae(pm, r, entry_pa, out, max) : reverse32(pm, r->cr3, entry_pa, out, max);
	return n < max ? n : max;
}

uint64_t pt_dir_entry_pa(const struct pt_builder *b, uint32_t lin)
{
	if (b->mode != PM_PAE)
		return (b->root & PGMASK) + 4u * PDX(lin);
	uint64_t pdpte;
	if (!phys_read8(b->pm, (b->root & ~(uint64_t)0x1F) + 8u * PAE_PDPX(lin), &pdpte) || !(pdpte & PTE_P))
		return 0;
	return (pdpte & PAE_ADDR_MASK) + 8u * PAE_PDX(lin);
}
