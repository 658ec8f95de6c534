/*
 * paging.h: the reference page walker and the page-table writer, for 32-bit paging
 * (4 KiB pages, and 4 MiB pages when CR4.PSE=1) and PAE paging (4 KiB and 2 MiB pages).
 *
 * The walker is a pure function of physical memory and the paging registers: it reads the
 * paging structures, applies the permission rules of SDM vol. 3, 4.6 for supervisor (CPL 0)
 * and user accesses, and reports either the physical address or the #PF the access raises
 * (error code; CR2 is the linear address). It can also say which A/D bits the access sets,
 * without setting them (walk_commit_ad() sets them, as the CPU does).
 */
#ifndef SHIMCHECK_MODEL_PAGING_H
#define SHIMCHECK_MODEL_PAGING_H

#include <stdbool.h>
#include <stdint.h>

#include "phys.h"

enum paging_mode { PM_32 = 0, PM_PAE = 1 }; /* PSE is CR4.PSE within PM_32 */

/* The registers a walk depends on. For PAE, pdpte[] are the four entries the CPU loaded
 * at the last MOV CR3 (or CR0/CR4 write), not what memory holds now. */
struct paging_regs {
	uint32_t cr0, cr3, cr4;
	uint64_t efer;
	uint64_t pdpte[4];
};

enum access { ACC_READ = 0, ACC_WRITE = 1, ACC_FETCH = 2 };

enum walk_status {
	WALK_OK = 0,
	WALK_FAULT = 1,   /* #PF: see err */
	WALK_BADPHYS = 2, /* a paging structure lies outside physical memory */
	WALK_BADPDPTE = 3 /* PAE: MOV CR3 would #GP (reserved bits in a present PDPTE) */
};

#define WALK_MAX_LEVELS 3

struct walk_level {
	uint64_t entry_pa; /* physical address of the entry read */
	uint64_t value;    /* its value (32-bit paging: high half 0) */
};

struct walk {
	enum walk_status status;
	uint32_t lin;
	uint64_t pa;       /* valid when status == WALK_OK */
	uint32_t err;      /* #PF error code when status == WALK_FAULT */
	uint32_t page_size; /* 4096, 2 MiB or 4 MiB: the page that maps lin */
	bool writable, user, global, nx;
	int nlevels;       /* entries read from memory, top first; PAE's PDPTE comes from the
	                    * register and is not a level, so level[0] is always the PDE */
	struct walk_level level[WALK_MAX_LEVELS];
};

/* Load the four PAE PDPTEs from memory at cr3 (& ~0x1F), as MOV CR3 does.
 * Returns WALK_OK, WALK_BADPHYS or WALK_BADPDPTE. */
enum walk_status paging_load_pdptes(const struct physmem *pm, struct paging_regs *r);

/* Translate lin for an access of kind acc at privilege cpl (0 or 3). */
struct walk paging_walk(const struct physmem *pm, const struct paging_regs *r, uint32_t lin,
			enum access acc, unsigned cpl);

/* Set the accessed (and for writes, dirty) bits that the walk w implies, as the CPU does
 * on a successful walk. Returns the number of entries changed. */
int walk_commit_ad(struct physmem *pm, const struct walk *w, enum access acc);

/* Paging-structure writer, used by the image builder. It allocates table pages through
 * alloc (zeroed, page aligned, returns 0 on exhaustion). */
typedef uint64_t (*page_alloc_fn)(void *ctx);

struct pt_builder {
	struct physmem *pm;
	enum paging_mode mode;
	uint64_t root;  /* 32-bit: page directory; PAE: page of the PDPT (32-byte aligned) */
	page_alloc_fn alloc;
	void *alloc_ctx;
};

/* Map one 4 KiB page: lin -> pa with the low flag bits (PTE_P is added), and for PAE the
 * high-dword bits flags_hi (e.g. PTE_NX_HI). Intermediate entries are created present,
 * writable and user (so the leaf decides), accessed. Returns false when a table could not
 * be allocated, or a large page already covers lin. */
bool pt_map4k(struct pt_builder *b, uint32_t lin, uint64_t pa, uint32_t flags, uint32_t flags_hi);
/* Map one large page (4 MiB in 32-bit paging, 2 MiB in PAE) with PTE_PS. Returns false when
 * lin or pa is misaligned or a page table already exists there. */
bool pt_map_large(struct pt_builder *b, uint32_t lin, uint64_t pa, uint32_t flags, uint32_t flags_hi);
/* Physical address of the leaf entry that maps lin (PTE, or PDE of a large page), 0 if none. */
uint64_t pt_leaf_pa(const struct pt_builder *b, uint32_t lin);
/* Physical address of the page-directory entry for lin (32-bit: in the PD; PAE: in the PD
 * its PDPTE points to), 0 if that PD does not exist. */
uint64_t pt_dir_entry_pa(const struct pt_builder *b, uint32_t lin);
/* Width in bytes of an entry: 4 in 32-bit paging, 8 in PAE. */
static inline unsigned pt_entry_size(enum paging_mode m) { return m == PM_PAE ? 8u : 4u; }

/* Reverse map: the linear regions whose translation goes through the paging-structure entry
 * at entry_pa, under r (whose PDPTEs are the register copies). A PDE of a large page, or one
 * pointing to a page table, yields its whole 4 MiB / 2 MiB region; a PTE yields its page; a
 * PAE PDPTE in memory yields its 1 GiB (it takes effect only at the next MOV CR3). Returns
 * how many regions were written to out (at most max). */
struct lin_region {
	uint32_t lin;
	uint32_t size;
	int level; /* 0 PDPTE, 1 PDE, 2 PTE */
};
int paging_reverse(const struct physmem *pm, const struct paging_regs *r, uint64_t entry_pa,
		   struct lin_region *out, int max);

#endif
