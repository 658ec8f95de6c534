/*
 * paging.c: reference page walker and page-table writer (SDM vol. 3, 4.3, 4.4, 4.6, 4.7, 4.8).
 *
 * The walker never trusts a paging structure to lie inside the modelled memory: a table
 * address outside it is reported as WALK_BADPHYS rather than read, because on a real
 * machine it would read whatever RAM or MMIO sits there and the engines would disagree.
 */
#include <string.h>

#include "mmu.h"
#include "paging.h"

#define PAE_XD ((uint64_t)PTE_NX_HI << 32)
/* Frame of a PAE 2 MiB page: bits 12..20 of such a PDE are PAT and reserved, not address. */
#define PAE_LARGE_MASK (PAE_ADDR_MASK & ~(uint64_t)(PAE_LARGE - 1))
/* Frame bits 31:22 of a 32-bit 4 MiB PDE; PSE-36 puts address bits 39:32 at PDE bits 20:13. */
#define PSE_FRAME_LO 0xFFC00000u
#define PSE_HI_SHIFT 13
#define PSE_HI_MASK 0xFFu
#define PSE_PA_LIMIT ((uint64_t)1 << 40)
#define PAE_PA_LIMIT ((uint64_t)1 << 52)
/* In PAE the high dword of an entry holds address bits 51:32 in its low 20 bits. */
#define PAE_HI_ADDR 0x000FFFFFu

/* ---- the walker ---- */

struct walker {
	const struct physmem *pm;
	const struct paging_regs *r;
	enum access acc;
	unsigned cpl;
	bool pae;
	struct walk *w;
};

static bool is_user(const struct walker *k)
{
	/* CPL 1 and 2 are supervisor accesses for paging (SDM 4.6). */
	return k->cpl == 3;
}

static bool nxe(const struct walker *k)
{
	/* EFER.NXE only has an effect in PAE paging: 32-bit entries have no bit 63. */
	return k->pae && (k->r->efer & EFER_NXE) != 0;
}

static uint32_t access_bits(const struct walker *k)
{
	uint32_t err = 0;

	if (k->acc == ACC_WRITE)
		err |= PFEC_W;
	if (is_user(k))
		err |= PFEC_U;
	/* SDM 4.7: I/D is only reported when fetches can fault by themselves, i.e. with
	 * execute-disable enabled (SMEP, the other case, is not modelled). */
	if (k->acc == ACC_FETCH && nxe(k))
		err |= PFEC_I;
	return err;
}

static void fault(struct walker *k, uint32_t why)
{
	k->w->status = WALK_FAULT;
	k->w->err = why | access_bits(k);
}

/* Record the entry at pa in level[]; false (WALK_BADPHYS) when it is outside memory. */
static bool read_level(struct walker *k, uint64_t pa, uint64_t *v)
{
	struct walk *w = k->w;
	uint32_t v32;

	if (k->pae) {
		if (!phys_read8(k->pm, pa, v))
			goto bad;
	} else {
		if (!phys_read4(k->pm, pa, &v32))
			goto bad;
		*v = v32;
	}
	w->level[w->nlevels].entry_pa = pa;
	w->level[w->nlevels].value = *v;
	w->nlevels++;
	return true;
bad:
	w->status = WALK_BADPHYS;
	return false;
}

/* Present and reserved-bit checks, then fold the entry's rights in; false on #PF. */
static bool use_entry(struct walker *k, uint64_t e)
{
	struct walk *w = k->w;

	if (!(e & PTE_P)) {
		fault(k, 0);
		return false;
	}
	/* Without NXE bit 63 is reserved; a 32-bit entry is zero-extended so never hits this. */
	if ((e & PAE_XD) && !nxe(k)) {
		fault(k, PFEC_P | PFEC_RSVD);
		return false;
	}
	w->writable = w->writable && (e & PTE_W);
	w->user = w->user && (e & PTE_U);
	w->nx = w->nx || (e & PAE_XD);
	return true;
}

static void leaf(struct walker *k, uint64_t frame, uint32_t size, uint64_t e)
{
	struct walk *w = k->w;

	w->pa = frame | (w->lin & (size - 1));
	w->page_size = size;
	w->global = (e & PTE_G) != 0;
}

static uint64_t pse_frame(uint64_t pde)
{
	return (pde & PSE_FRAME_LO) | (pde >> PSE_HI_SHIFT & PSE_HI_MASK) << 32;
}

static void walk_32(struct walker *k)
{
	uint32_t lin = k->w->lin;
	uint64_t pde, pte;

	if (!read_level(k, (k->r->cr3 & PGMASK) + PDX(lin) * 4, &pde) || !use_entry(k, pde))
		return;
	/* With CR4.PSE=0 the PS bit is ignored and the PDE points at a page table. */
	if ((k->r->cr4 & CR4_PSE) && (pde & PTE_PS)) {
		leaf(k, pse_frame(pde), PSE_SIZE, pde);
		return;
	}
	if (!read_level(k, (pde & PGMASK) + PTX(lin) * 4, &pte) || !use_entry(k, pte))
		return;
	leaf(k, pte & PGMASK, PGSIZE, pte);
}

static void walk_pae(struct walker *k)
{
	uint32_t lin = k->w->lin;
	uint64_t pdpte = k->r->pdpte[PAE_PDPX(lin)];
	uint64_t pde, pte;

	if (!(pdpte & PTE_P)) {
		fault(k, 0);
		return;
	}
	/* Unreachable on hardware (MOV CR3 would have #GP'd), so refuse rather than guess. */
	if (pdpte & PAE_PDPTE_RSVD) {
		k->w->status = WALK_BADPDPTE;
		return;
	}
	if (!read_level(k, (pdpte & PAE_ADDR_MASK) + PAE_PDX(lin) * 8, &pde) || !use_entry(k, pde))
		return;
	/* PAE large pages do not depend on CR4.PSE. */
	if (pde & PTE_PS) {
		leaf(k, pde & PAE_LARGE_MASK, PAE_LARGE, pde);
		return;
	}
	if (!read_level(k, (pde & PAE_ADDR_MASK) + PAE_PTX(lin) * 8, &pte) || !use_entry(k, pte))
		return;
	leaf(k, pte & PAE_ADDR_MASK, PGSIZE, pte);
}

static void check_rights(struct walker *k)
{
	const struct walk *w = k->w;
	bool deny = false;

	if (is_user(k) && !w->user)
		deny = true;
	/* Supervisor writes ignore R/W unless CR0.WP=1 (SDM 4.6.1). */
	if (k->acc == ACC_WRITE && !w->writable && (is_user(k) || (k->r->cr0 & CR0_WP)))
		deny = true;
	if (k->acc == ACC_FETCH && w->nx)
		deny = true;
	if (deny)
		fault(k, PFEC_P);
}

struct walk paging_walk(const struct physmem *pm, const struct paging_regs *r, uint32_t lin,
			enum access acc, unsigned cpl)
{
	struct walk w = {
		.status = WALK_OK,
		.lin = lin,
		.writable = true,
		.user = true,
	};
	struct walker k = {
		.pm = pm,
		.r = r,
		.acc = acc,
		.cpl = cpl,
		.pae = (r->cr4 & CR4_PAE) != 0,
		.w = &w,
	};

	/* Paging off: linear is physical, nothing is read, nothing can fault. */
	if (!(r->cr0 & CR0_PG)) {
		w.pa = lin;
		w.page_size = PGSIZE;
		return w;
	}
	if (k.pae)
		walk_pae(&k);
	else
		walk_32(&k);
	if (w.status == WALK_OK)
		check_rights(&k);
	return w;
}

/*
 * OR bits into the entry's low dword as memory holds it now, not as the walk saw it, so a
 * change made since the walk is not undone. A and D are in the low dword in both formats.
 */
static int set_bits(struct physmem *pm, uint64_t pa, uint32_t bits)
{
	uint32_t v;

	if (!phys_read4(pm, pa, &v) || (v & bits) == bits)
		return 0;
	return phys_write4(pm, pa, v | bits) ? 1 : 0;
}

int walk_commit_ad(struct physmem *pm, const struct walk *w, enum access acc)
{
	int changed = 0;
	int i;

	if (w->status != WALK_OK)
		return 0;
	for (i = 0; i < w->nlevels; i++) {
		uint32_t bits = PTE_A;

		if (i == w->nlevels - 1 && acc == ACC_WRITE)
			bits |= PTE_D;
		changed += set_bits(pm, w->level[i].entry_pa, bits);
	}
	return changed;
}

enum walk_status paging_load_pdptes(const struct physmem *pm, struct paging_regs *r)
{
	uint64_t base = r->cr3 & 0xFFFFFFE0u;
	uint64_t e[4];
	int i;

	/* Outside PAE the first 32 bytes at CR3 are PDEs, which would fail the PDPTE checks. */
	if (!(r->cr4 & CR4_PAE))
		return WALK_OK;
	for (i = 0; i < 4; i++) {
		if (!phys_read8(pm, base + 8 * (uint64_t)i, &e[i]))
			return WALK_BADPHYS;
		if ((e[i] & PTE_P) && (e[i] & PAE_PDPTE_RSVD))
			return WALK_BADPDPTE;
	}
	/* Only now: a faulting MOV CR3 leaves the old PDPTE registers in place. */
	for (i = 0; i < 4; i++)
		r->pdpte[i] = e[i];
	return WALK_OK;
}

/* ---- the writer ---- */

static bool ent_read(const struct pt_builder *b, uint64_t pa, uint64_t *v)
{
	uint32_t v32;

	if (b->mode == PM_PAE)
		return phys_read8(b->pm, pa, v);
	if (!phys_read4(b->pm, pa, &v32))
		return false;
	*v = v32;
	return true;
}

static bool ent_write(struct pt_builder *b, uint64_t pa, uint64_t v)
{
	if (b->mode == PM_PAE)
		return phys_write8(b->pm, pa, v);
	return phys_write4(b->pm, pa, (uint32_t)v);
}

/* A fresh table page; zeroed here too, since stale bytes would become live mappings. */
static bool new_table(struct pt_builder *b, uint64_t *pa)
{
	uint64_t t = b->alloc(b->alloc_ctx);
	uint8_t *p;

	if (t == 0 || (t & (PGSIZE - 1)) || (b->mode == PM_32 && t > PGMASK))
		return false;
	p = phys_ptr(b->pm, t, PGSIZE);
	if (p == NULL)
		return false;
	memset(p, 0, PGSIZE);
	*pa = t;
	return true;
}

static uint64_t pte_slot(const struct pt_builder *b, uint64_t pde, uint32_t lin)
{
	if (b->mode == PM_PAE)
		return (pde & PAE_ADDR_MASK) + PAE_PTX(lin) * 8;
	return (pde & PGMASK) + PTX(lin) * 4;
}

/* Where the PDE for lin lives; false if the PAE page directory does not exist. */
static bool pde_lookup(const struct pt_builder *b, uint32_t lin, uint64_t *slot)
{
	uint64_t pdpte;

	if (b->mode == PM_32) {
		*slot = b->root + PDX(lin) * 4;
		return true;
	}
	if (!ent_read(b, b->root + PAE_PDPX(lin) * 8, &pdpte) || !(pdpte & PTE_P))
		return false;
	*slot = (pdpte & PAE_ADDR_MASK) + PAE_PDX(lin) * 8;
	return true;
}

/* As pde_lookup, allocating the PAE page directory on first use. Legacy PAE PDPTEs have no
 * R/W, U/S or A bits (they are reserved), so the PDPTE is just the address and P. */
static bool pde_create(struct pt_builder *b, uint32_t lin, uint64_t *slot)
{
	uint64_t pd;

	if (pde_lookup(b, lin, slot))
		return true;
	if (b->mode == PM_32 || !new_table(b, &pd))
		return false;
	if (!ent_write(b, b->root + PAE_PDPX(lin) * 8, pd | PTE_P))
		return false;
	return pde_lookup(b, lin, slot);
}

/* Checks that (pa, flags, flags_hi) fit the entry format, so no bit lands in a wrong field. */
static bool leaf_fits(const struct pt_builder *b, uint64_t pa, uint32_t size, uint32_t flags,
		      uint32_t flags_lo_ok, uint32_t flags_hi)
{
	if ((pa & (size - 1)) || (flags & ~flags_lo_ok))
		return false;
	if (b->mode == PM_PAE)
		return pa < PAE_PA_LIMIT && !(flags_hi & PAE_HI_ADDR);
	/* 32-bit entries have no high dword: dropping e.g. NX silently would lie to the caller. */
	if (flags_hi)
		return false;
	return pa < (size == PGSIZE ? ((uint64_t)1 << 32) : PSE_PA_LIMIT);
}

static uint64_t pse_encode(uint64_t pa)
{
	return (pa & PSE_FRAME_LO) | (pa >> 32 & PSE_HI_MASK) << PSE_HI_SHIFT;
}

static uint64_t leaf_value(const struct pt_builder *b, uint64_t pa, uint32_t flags,
			   uint32_t flags_hi, bool large)
{
	uint64_t v = flags | PTE_P | (large ? PTE_PS : 0);

	if (b->mode == PM_PAE)
		return v | pa | (uint64_t)flags_hi << 32;
	return v | (large ? pse_encode(pa) : pa);
}

bool pt_map4k(struct pt_builder *b, uint32_t lin, uint64_t pa, uint32_t flags, uint32_t flags_hi)
{
	uint64_t slot, pde, pt;

	if (!leaf_fits(b, pa, PGSIZE, flags, PGSIZE - 1, flags_hi))
		return false;
	if (!pde_create(b, lin, &slot) || !ent_read(b, slot, &pde))
		return false;
	if ((pde & PTE_P) && (pde & PTE_PS))
		return false;
	if (!(pde & PTE_P)) {
		/* Intermediate entries grant everything, so the leaf alone decides the rights. */
		if (!new_table(b, &pt))
			return false;
		pde = pt | PTE_P | PTE_W | PTE_U | PTE_A;
		if (!ent_write(b, slot, pde))
			return false;
	}
	return ent_write(b, pte_slot(b, pde, lin), leaf_value(b, pa, flags, flags_hi, false));
}

bool pt_map_large(struct pt_builder *b, uint32_t lin, uint64_t pa, uint32_t flags, uint32_t flags_hi)
{
	uint32_t size = b->mode == PM_PAE ? PAE_LARGE : PSE_SIZE;
	uint64_t slot, pde;

	if (lin & (size - 1))
		return false;
	if (!leaf_fits(b, pa, size, flags, (PGSIZE - 1) | PTE_PAT_LARGE, flags_hi))
		return false;
	if (!pde_create(b, lin, &slot) || !ent_read(b, slot, &pde))
		return false;
	/* Replacing a page table would orphan its 4 KiB mappings behind the caller's back. */
	if ((pde & PTE_P) && !(pde & PTE_PS))
		return false;
	return ent_write(b, slot, leaf_value(b, pa, flags, flags_hi, true));
}

/* A PTE slot is returned even when the PTE itself is not present, so a caller can fill it. */
uint64_t pt_leaf_pa(const struct pt_builder *b, uint32_t lin)
{
	uint64_t slot, pde;

	if (!pde_lookup(b, lin, &slot) || !ent_read(b, slot, &pde) || !(pde & PTE_P))
		return 0;
	if (pde & PTE_PS)
		return slot;
	return pte_slot(b, pde, lin);
}
