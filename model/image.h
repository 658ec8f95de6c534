/*
 * image.h: the physical image: memory bytes plus the initial CPU state, built from a
 * scenario and a code directory. It is the only input every engine gets (Unicorn here; the
 * boot kernel copies the same bytes on QEMU, Bochs, KVM and a PC), and it carries the facts
 * the checkers compare against (each world's CR3, GDTR, TR, where its TSS descriptor is...).
 */
#ifndef SHIMCHECK_MODEL_IMAGE_H
#define SHIMCHECK_MODEL_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "code.h"
#include "paging.h"
#include "phys.h"
#include "scenario.h"

/* A segment register with its hidden part, in the form QEMU/Unicorn keep it. */
struct cpu_seg {
	uint16_t sel;
	uint32_t base, limit; /* limit in bytes (granularity applied) */
	uint32_t flags;       /* desc_attr_flags() of the descriptor */
};

struct cpu_table {
	uint32_t base;
	uint16_t limit;
};

struct cpu_state {
	uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
	uint32_t eip, eflags;
	uint32_t cr0, cr3, cr4;
	uint64_t efer;
	struct cpu_table gdtr, idtr;
	struct cpu_seg cs, ss, ds, es, fs, gs, tr, ldtr;
};

/* What the image builder knows of one world, for the checkers. */
struct world {
	struct paging_regs regs; /* CR0/CR3/CR4/EFER and, for PAE, the PDPTEs its CR3 loads */
	struct cpu_table gdtr, idtr;
	uint16_t cs, ds, tr;
	uint32_t stack_top;
	uint32_t cs_base;        /* monitor with cs_wrap: its code's linear address */
	uint64_t tss_desc_pa;    /* physical address of its TSS descriptor (in its GDT page) */
	uint64_t obj_pa[OBJ_NMON];
	uint64_t pt_root;
	uint32_t xcr3;           /* transition tables in this world's mode (0: none) */
	int npt;
	uint64_t pt_pages[256];  /* physical pages holding this space's paging structures */
	int nglobal;             /* global leaf mappings (G=1) the scenario gives this space */
	struct img_global {
		uint32_t lin, size;
		uint64_t pa;
	} global[2 * SC_MAX_MAPS];
};

#define IMG_MAX_SYMS (CODE_MAX_SYMS)

struct img_sym {
	uint32_t lin;       /* linear address */
	enum sc_space sp;   /* which space it lives in (shim symbols: both) */
	bool both;
	const char *name;   /* points into the shim_code */
};

struct image {
	struct physmem pm;       /* owns pm.bytes */
	struct cpu_state init;   /* the CPU as the host runs host_main */
	struct world w[2];
	uint32_t shim_lin, data_lin;
	uint64_t shim_pa;
	uint64_t shim_pte_pa;    /* the monitor-space entry at shim_lin */
	unsigned pte_size;       /* 4 or 8 */
	uint64_t shim_pte;       /* value that maps the shim there */
	uint64_t guest_pte;      /* the guest's own entry there (saved in the data area at start) */
	uint64_t guest_pa[SC_GUEST_PAGES];
	uint32_t ep[EP_N];       /* linear (for the monitor with cs_wrap: CS offset + base) */
	uint32_t rounds;
	int nsyms;
	struct img_sym syms[IMG_MAX_SYMS];
	uint64_t next_free;      /* allocator cursor */
};

/* Build the image. Returns SC_OK, or a reason (SC_FULL, SC_PAGING, SC_WINDOW) with *err. */
enum sc_reason image_build(const struct scenario *sc, const struct shim_code *code, struct image *img,
			   struct sc_error *err);
/* The same into an image that holds an earlier one (its buffer is reused when the window is
 * the same): what a fuzzer or a property test calls in its loop. */
enum sc_reason image_rebuild(const struct scenario *sc, const struct shim_code *code, struct image *img,
			     struct sc_error *err);
/* Bytes from the window base that the builder wrote (the rest of the window is zero). */
uint64_t image_used(const struct image *img);
void image_free(struct image *img);

/* The symbol at lin in space sp (exact match), or NULL. */
const char *image_sym_at(const struct image *img, enum sc_space sp, uint32_t lin);
/* Which space's paging structures hold physical page pa: SP_HOST, SP_MON, or -1. */
int image_pt_space(const struct image *img, uint64_t pa);

#endif
