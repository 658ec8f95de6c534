/*
 * image.c: lay out a scenario in physical memory and compute the initial CPU state.
 *
 * Placement (all inside the scenario's physical window, one page each, bump-allocated in
 * this order so the same scenario always gives the same bytes): the shim page, each
 * world's code, stack, GDT, IDT, TSS, then page tables as the mappings need them, then
 * guest pages as mappings name them. Guest pages are filled with UD2 so that executing one
 * by mistake faults at once.
 *
 * The start state is "the monitor is switched out": the monitor's PTE at the shim's linear
 * address already maps the shim page and the guest's own PTE waits in the data area's
 * D_GUEST_PTE, exactly as the monitor's prologue would have left it. Both TSS descriptors
 * are busy (both worlds have run), so every LTR needs its busy-bit clear.
 */
#include "image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shim/shim_abi.h"
#include "desc.h"
#include "mmu.h"
#include "tss.h"

#define IDT_GATES 32 /* the exceptions and NMI; nothing else is ever raised here */

static enum sc_reason fail(struct sc_error *err, enum sc_reason r, const char *field, const char *detail)
{
	err->reason = r;
	snprintf(err->field, sizeof err->field, "%s", field);
	snprintf(err->detail, sizeof err->detail, "%s", detail);
	return r;
}

/* Page allocator over the window; 0 means full. Allocated pages are zero already. */
static uint64_t alloc_page(void *ctx)
{
	struct image *img = ctx;
	if (img->next_free + PGSIZE > img->pm.base + img->pm.size)
		return 0;
	uint64_t pa = img->next_free;
	img->next_free += PGSIZE;
	return pa;
}

/* Remember pages that hold paging structures, per space (the checkers watch writes there). */
struct tracked_alloc {
	struct image *img;
	struct world *w;
};

static uint64_t alloc_pt(void *ctx)
{
	struct tracked_alloc *t = ctx;
	uint64_t pa = alloc_page(t->img);
	if (pa && t->w->npt < (int)(sizeof t->w->pt_pages / sizeof t->w->pt_pages[0]))
		t->w->pt_pages[t->w->npt++] = pa;
	else if (pa)
		return 0; /* more tables than we can track: treat as full */
	return pa;
}

static uint64_t frame_pa(struct image *img, const struct scenario *sc, const struct sc_frame *fr, bool *ok)
{
	*ok = true;
	switch (fr->kind) {
	case FR_RAW:
		return fr->raw;
	case FR_SHIM:
		return img->shim_pa;
	case FR_WORLD:
		if (fr->sp == SP_MON && fr->obj == MOBJ_SHIM_ALIAS)
			return img->shim_pa;
		return img->w[fr->sp].obj_pa[fr->obj];
	case FR_GUEST:
		if (!img->guest_pa[fr->obj]) {
			uint64_t pa = alloc_page(img);
			if (!pa) {
				*ok = false;
				return 0;
			}
			/* UD2 everywhere: a guest page executed by mistake faults at its first byte. */
			uint8_t *p = phys_ptr(&img->pm, pa, PGSIZE);
			for (unsigned i = 0; i < PGSIZE; i += 2) {
				p[i] = 0x0F;
				p[i + 1] = 0x0B;
			}
			img->guest_pa[fr->obj] = pa;
		}
		return img->guest_pa[fr->obj];
	case FR_NONE:
		break;
	}
	(void)sc;
	*ok = false;
	return 0;
}

/* Remember a global leaf mapping: with CR4.PGE its translation may outlive MOV CR3. */
static void note_global(struct image *img, struct pt_builder *b, const struct sc_map *m, uint64_t pa)
{
	struct world *w = b->root == img->w[SP_HOST].pt_root ? &img->w[SP_HOST] : &img->w[SP_MON];
	uint32_t size = m->large ? (b->mode == PM_PAE ? PAE_LARGE : PSE_SIZE) : PGSIZE;
	if (w->nglobal < (int)(sizeof w->global / sizeof w->global[0]))
		w->global[w->nglobal++] = (struct img_global){m->lin, size, pa};
}

static enum sc_reason map_one(struct image *img, const struct scenario *sc, struct pt_builder *b,
			      const struct sc_map *m, struct sc_error *err)
{
	char why[160];
	if (m->has_raw) {
		/* A verbatim entry: build the path with a placeholder, then overwrite the leaf. */
		bool ok = m->large ? pt_map_large(b, m->lin, img->pm.base, 0, 0) : pt_map4k(b, m->lin, img->pm.base, 0, 0);
		uint64_t at = ok ? pt_leaf_pa(b, m->lin) : 0;
		if (!at) {
			snprintf(why, sizeof why, "cannot place an entry for 0x%08x", m->lin);
			return fail(err, img->next_free + PGSIZE > img->pm.base + img->pm.size ? SC_FULL : SC_PAGING, m->field, why);
		}
		uint64_t raw = m->raw;
		if (m->large)
			raw |= PTE_PS; /* a large-page entry is one only with PS set */
		if (b->mode == PM_PAE)
			phys_write8(b->pm, at, raw);
		else
			phys_write4(b->pm, at, (uint32_t)raw);
		if ((raw & (PTE_P | PTE_G)) == (PTE_P | PTE_G))
			note_global(img, b, m, raw & (b->mode == PM_PAE ? PAE_ADDR_MASK : PGMASK));
		return SC_OK;
	}
	bool ok;
	uint64_t pa = frame_pa(img, sc, &m->to, &ok);
	if (!ok)
		return fail(err, SC_FULL, m->field, "no room for the frame it names");
	ok = m->large ? pt_map_large(b, m->lin, pa, m->flags, m->flags_hi) : pt_map4k(b, m->lin, pa, m->flags, m->flags_hi);
	if (ok && (m->flags & PTE_G))
		note_global(img, b, m, pa);
	if (!ok) {
		snprintf(why, sizeof why, "the page tables cannot map 0x%08x here", m->lin);
		return fail(err, img->next_free + PGSIZE > img->pm.base + img->pm.size ? SC_FULL : SC_PAGING, m->field, why);
	}
	return SC_OK;
}

static void put_desc(struct physmem *pm, uint64_t gdt_pa, uint16_t sel, const struct seg_desc *d)
{
	phys_write8(pm, gdt_pa + SEL_INDEX(sel), desc_encode(d));
}

static struct cpu_seg seg_from(uint16_t sel, const struct seg_desc *d)
{
	uint64_t raw = desc_encode(d);
	struct cpu_seg s = {sel, d->base, desc_byte_limit(d), desc_attr_flags(raw)};
	return s;
}

/* GDT, IDT and TSS contents of one world. */
static void build_tables(struct image *img, const struct scenario *sc, enum sc_space sp)
{
	const struct sc_world *sw = &sc->w[sp];
	struct world *w = &img->w[sp];
	struct seg_desc code = desc_flat_code(), data = desc_flat_data();
	if (sp == SP_MON && sc->cs_wrap)
		code.base = sw->lin[OBJ_CODE];
	w->cs_base = code.base;
	struct seg_desc tss = desc_tss32(sw->lin[OBJ_TSS], TSS32_SIZE - 1, true);
	uint64_t gdt = w->obj_pa[OBJ_GDT];
	put_desc(&img->pm, gdt, sw->sel_cs, &code);
	put_desc(&img->pm, gdt, sw->sel_ds, &data);
	put_desc(&img->pm, gdt, sw->sel_tss, &tss);
	/* The shim's own selectors, the same in every GDT, so that its gates and stack stay
	 * valid whichever GDT is loaded while it switches. */
	struct seg_desc flat_code = desc_flat_code(), flat_data = desc_flat_data();
	put_desc(&img->pm, gdt, SHIM_CS_SEL, &flat_code);
	put_desc(&img->pm, gdt, SHIM_SS_SEL, &flat_data);
	w->gdtr.base = sw->lin[OBJ_GDT];
	w->gdtr.limit = (uint16_t)(SHIM_CS_SEL + 7);
	w->idtr.base = sw->lin[OBJ_IDT];
	w->idtr.limit = IDT_GATES * 8 - 1;
	w->cs = sw->sel_cs;
	w->ds = sw->sel_ds;
	w->tr = sw->sel_tss;
	w->tss_desc_pa = gdt + SEL_INDEX(sw->sel_tss);
	w->stack_top = sw->lin[OBJ_STACK] + PGSIZE;

	struct tss32 t = {0};
	t.esp0 = w->stack_top;
	t.ss0 = sw->sel_ds;
	t.iomap = TSS32_SIZE;
	tss_put(phys_ptr(&img->pm, w->obj_pa[OBJ_TSS], TSS32_SIZE), &t);
}

/* Every gate of a world's IDT: a present 32-bit interrupt gate to its trap routine. Unicorn
 * never delivers through them; the window analysis asks whether a CPU could, and the boot
 * kernel relies on them. */
static void build_idt(struct image *img, const struct scenario *sc, const struct shim_code *code, enum sc_space sp)
{
	const struct world *w = &img->w[sp];
	enum entry trap = sp == SP_HOST ? EP_HOST_TRAP : EP_MONITOR_TRAP;
	struct gate_desc g = {w->cs, sc->w[sp].lin[OBJ_CODE] + code->entry[trap] - w->cs_base, STS_IG32, 0, true};
	uint64_t raw = gate_encode(&g);
	for (unsigned v = 0; v < IDT_GATES; v++)
		phys_write8(&img->pm, w->obj_pa[OBJ_IDT] + 8 * v, raw);
}

static uint32_t world_cr0(const struct sc_state *st)
{
	return CR0_PE | CR0_ET | CR0_NE | CR0_PG | (st->cr0_wp ? CR0_WP : 0);
}

static uint32_t world_cr4(const struct sc_state *st)
{
	return (st->paging == SC_PSE ? CR4_PSE : 0) | (st->paging == SC_PAE ? CR4_PAE : 0) |
	       (st->cr4_pge ? CR4_PGE : 0);
}

static uint64_t read_entry(const struct image *img, enum paging_mode mode, uint64_t pa)
{
	return mode == PM_PAE ? get8(phys_ptr(&img->pm, pa, 8)) : get4(phys_ptr(&img->pm, pa, 4));
}

static void write_entry(struct image *img, enum paging_mode mode, uint64_t pa, uint64_t v)
{
	if (mode == PM_PAE)
		phys_write8(&img->pm, pa, v);
	else
		phys_write4(&img->pm, pa, (uint32_t)v);
}

/* PDE swap (plex86's transition page table): the guest's own entry for the shim address is
 * built in the guest's tables; the monitor's replacement is a whole PDE pointing to a page
 * table of its own that maps only the shim page. */
static enum sc_reason swap_pde(struct image *img, const struct scenario *sc, struct pt_builder *b,
			       struct sc_error *err)
{
	struct sc_map g = sc->guest_shim;
	snprintf(g.field, sizeof g.field, "guest.shim_pte");
	if (g.large)
		g.lin = sc->shim_lin & ~((b->mode == PM_PAE ? PAE_LARGE : PSE_SIZE) - 1);
	enum sc_reason r = map_one(img, sc, b, &g, err);
	if (r != SC_OK)
		return r;
	uint64_t pde = pt_dir_entry_pa(b, sc->shim_lin);
	uint64_t tpt = b->alloc(b->alloc_ctx);
	if (!pde || !tpt)
		return fail(err, SC_FULL, "phys_window", "no room for the transition page table");
	unsigned esz = pt_entry_size(b->mode);
	uint32_t idx = b->mode == PM_PAE ? PAE_PTX(sc->shim_lin) : PTX(sc->shim_lin);
	write_entry(img, b->mode, tpt + esz * idx, img->shim_pa | PTE_P | PTE_W | PTE_A | PTE_D);
	img->guest_pte = read_entry(img, b->mode, pde);
	img->shim_pte = tpt | PTE_P | PTE_W | PTE_A;
	img->shim_pte_pa = pde;
	write_entry(img, b->mode, pde, img->shim_pte);
	return SC_OK;
}

/* Tables in a world's paging mode that map the shim page at its linear address and at its
 * physical address (identity), for a shim that must turn paging off to change CR4.PAE. */
static enum sc_reason transition_tables(struct image *img, const struct scenario *sc, enum sc_space sp,
					struct sc_error *err)
{
	struct tracked_alloc t = {img, &img->w[sp]};
	uint64_t root = alloc_pt(&t);
	struct pt_builder b = {&img->pm, sc->w[sp].state.paging == SC_PAE ? PM_PAE : PM_32, root, alloc_pt, &t};
	if (!root || !pt_map4k(&b, sc->shim_lin, img->shim_pa, PTE_W | PTE_A | PTE_D, 0) ||
	    !pt_map4k(&b, (uint32_t)img->shim_pa, img->shim_pa, PTE_W | PTE_A | PTE_D, 0))
		return fail(err, SC_FULL, "phys_window", "no room for the transition tables");
	img->w[sp].xcr3 = (uint32_t)root;
	return SC_OK;
}

static enum sc_reason build_space(struct image *img, const struct scenario *sc, const struct shim_code *code,
				  enum sc_space sp, struct pt_builder *b, struct sc_error *err)
{
	const struct sc_world *sw = &sc->w[sp];
	struct world *w = &img->w[sp];
	static const uint32_t obj_flags[OBJ_NMON] = {
		[OBJ_CODE] = PTE_A,
		[OBJ_STACK] = PTE_W | PTE_A | PTE_D,
		[OBJ_GDT] = PTE_W | PTE_A | PTE_D, /* LTR writes the busy bit */
		[OBJ_IDT] = PTE_A,
		[OBJ_TSS] = PTE_W | PTE_A | PTE_D,
		[MOBJ_SHIM_ALIAS] = PTE_W | PTE_A | PTE_D,
		[MOBJ_PT_WINDOW] = PTE_W | PTE_A | PTE_D,
	};
	w->pt_root = b->root; /* first: note_global() tells the spaces apart by it */
	int nobj = sp == SP_HOST ? OBJ_NWORLD : MOBJ_SHIM_ALIAS + 1; /* the PT window comes last */
	for (int i = 0; i < nobj; i++) {
		uint64_t pa = i == MOBJ_SHIM_ALIAS ? img->shim_pa : w->obj_pa[i];
		if (!pt_map4k(b, sw->lin[i], pa, obj_flags[i], 0))
			return fail(err, SC_FULL, sc_space_name(sp), "no room for its page tables");
	}
	/* The shim page: the host maps it for good; in the monitor space the shim mapping sits
	 * where the guest's entry was (see the file comment). */
	bool pde_swap = code->sw.pde_swap && sp == SP_MON;
	if (!pde_swap && !pt_map4k(b, sc->shim_lin, img->shim_pa, PTE_W | PTE_A | PTE_D, 0))
		return fail(err, SC_FULL, "shim", "no room for its page tables");
	for (int i = 0; i < sw->nmaps; i++) {
		enum sc_reason r = map_one(img, sc, b, &sw->maps[i], err);
		if (r != SC_OK)
			return r;
	}
	if (sp == SP_MON) {
		for (int i = 0; i < sc->nguest; i++) {
			enum sc_reason r = map_one(img, sc, b, &sc->guest[i], err);
			if (r != SC_OK)
				return r;
		}
		img->pte_size = pt_entry_size(b->mode);
		const struct sc_map *g = &sc->guest_shim;
		if (pde_swap) {
			enum sc_reason r = swap_pde(img, sc, b, err);
			if (r != SC_OK)
				return r;
		} else if (g->has_raw) {
			img->guest_pte = g->raw;
		} else {
			bool ok;
			uint64_t pa = frame_pa(img, sc, &g->to, &ok);
			if (!ok)
				return fail(err, SC_FULL, "guest.shim_pte", "no room for the frame it names");
			img->guest_pte = pa | g->flags | PTE_P | (b->mode == PM_PAE ? (uint64_t)g->flags_hi << 32 : 0);
		}
		if (!pde_swap) {
			img->shim_pte_pa = pt_leaf_pa(b, sc->shim_lin);
			img->shim_pte = read_entry(img, b->mode, img->shim_pte_pa);
		}
		/* The monitor's window onto the page table holding that entry. */
		if (!pt_map4k(b, sw->lin[MOBJ_PT_WINDOW], img->shim_pte_pa & ~(uint64_t)(PGSIZE - 1),
			      obj_flags[MOBJ_PT_WINDOW], 0))
			return fail(err, SC_FULL, "monitor.layout.pt_window", "no room for its page tables");
	}
	w->pt_root = b->root;
	w->regs.cr0 = world_cr0(&sw->state);
	w->regs.cr4 = world_cr4(&sw->state);
	w->regs.cr3 = (uint32_t)b->root;
	w->regs.efer = sw->state.efer_nxe ? EFER_NXE : 0;
	if (b->mode == PM_PAE && paging_load_pdptes(&img->pm, &w->regs) != WALK_OK)
		return fail(err, SC_PAGING, sc_space_name(sp), "its PDPTEs are not loadable");
	return SC_OK;
}

static void put_table(uint8_t *p, const struct cpu_table *t)
{
	put2(p, t->limit);
	put4(p + 2, t->base);
}

/* The shim's own IDTs, for variants whose shim loads them (it exports __shim_nmi): every
 * gate to that handler, once by the shim's linear address and once by its physical address
 * (for the stretch where paging is off), and the matching stacks. */
static void shim_idt(struct image *img, const struct scenario *sc, const struct shim_code *code, uint8_t *d)
{
	if (code->entry[EP_SHIM_NMI] == ENTRY_ABSENT)
		return;
	const uint32_t base[2] = {sc->shim_lin, (uint32_t)img->shim_pa};
	const uint32_t off[2] = {SHIM_IDT_OFF, SHIM_IDT_PHYS_OFF};
	struct seg_desc flat_code = desc_flat_code(), flat_data = desc_flat_data();
	phys_write8(&img->pm, img->shim_pa + SHIM_GDT_OFF, desc_encode(&flat_data));
	phys_write8(&img->pm, img->shim_pa + SHIM_GDT_OFF + 8, desc_encode(&flat_code));
	for (int k = 0; k < 2; k++) {
		struct gate_desc g = {SHIM_CS_SEL, base[k] + code->entry[EP_SHIM_NMI], STS_IG32, 0, true};
		uint64_t raw = gate_encode(&g);
		for (unsigned v = 0; v < IDT_GATES; v++)
			phys_write8(&img->pm, img->shim_pa + off[k] + 8 * v, raw);
		struct cpu_table t = {base[k] + off[k], IDT_GATES * 8 - 1};
		put_table(d + (k ? D_SHIM_IDTR_PHYS : D_SHIM_IDTR), &t);
		/* A GDT of which only the two shim entries exist: its base lies below this page so
		 * that entries SHIM_SS_SEL and SHIM_CS_SEL land at SHIM_GDT_OFF. */
		struct cpu_table gt = {base[k] + SHIM_GDT_OFF - SHIM_SS_SEL, SHIM_CS_SEL + 7};
		put_table(d + (k ? D_SHIM_GDTR_PHYS : D_SHIM_GDTR), &gt);
		put4(d + (k ? D_SHIM_SSESP_PHYS : D_SHIM_SSESP), base[k] + SHIM_STACK_TOP);
		put2(d + (k ? D_SHIM_SSESP_PHYS : D_SHIM_SSESP) + 4, SHIM_SS_SEL);
	}
}

static void fill_data_area(struct image *img, const struct scenario *sc, const struct shim_code *code)
{
	uint8_t *d = phys_ptr(&img->pm, img->shim_pa + SHIM_DATA_OFF, SHIM_DATA_SIZE);
	const struct world *m = &img->w[SP_MON];
	put4(d + D_M_CR3, m->regs.cr3);
	put_table(d + D_M_GDTR, &m->gdtr);
	put_table(d + D_M_IDTR, &m->idtr);
	put2(d + D_M_TR, m->tr);
	put4(d + D_M_SSESP, m->stack_top);
	put2(d + D_M_SSESP + 4, m->ds);
	put4(d + D_M_TARGET, sc->w[SP_MON].lin[OBJ_CODE] + code->entry[EP_MONITOR_START] - m->cs_base);
	put2(d + D_M_TARGET + 4, m->cs);
	put2(d + D_M_DS, m->ds);
	put4(d + D_SHIM_LIN, sc->shim_lin);
	put4(d + D_PTE_LIN, sc->w[SP_MON].lin[MOBJ_PT_WINDOW] + (uint32_t)(img->shim_pte_pa & (PGSIZE - 1)));
	put4(d + D_PTE_SIZE, img->pte_size);
	put8(d + D_SHIM_PTE, img->shim_pte);
	put8(d + D_GUEST_PTE, img->guest_pte);
	/* The monitor jumps to __monitor2host with its own CS: store the CS offset. */
	put4(d + D_M2H_ENTRY, sc->shim_lin + code->entry[EP_SHIM_M2H] - m->cs_base);
	put4(d + D_H2M_ENTRY, sc->shim_lin + code->entry[EP_SHIM_H2M]);
	put4(d + D_H_CR4, img->w[SP_HOST].regs.cr4);
	put4(d + D_M_CR4, m->regs.cr4);
	put4(d + D_H_CR0, img->w[SP_HOST].regs.cr0);
	put4(d + D_M_CR0, m->regs.cr0);
	put4(d + D_H_EFER, (uint32_t)img->w[SP_HOST].regs.efer);
	put4(d + D_M_EFER, (uint32_t)m->regs.efer);
	put4(d + D_SHIM_PA, (uint32_t)img->shim_pa);
	put4(d + D_H_XCR3, img->w[SP_HOST].xcr3);
	put4(d + D_M_XCR3, m->xcr3);
	put4(d + D_MODESWITCH, (img->w[SP_HOST].regs.cr4 ^ m->regs.cr4) & CR4_PAE ? 1 : 0);
	put4(d + D_TOUCH_N, (uint32_t)sc->ntouch);
	for (int i = 0; i < sc->ntouch; i++)
		put4(d + D_TOUCH + 4 * i, sc->touch[i]);
	shim_idt(img, sc, code, d);
}

static void load_bins(struct image *img, const struct scenario *sc, const struct shim_code *code)
{
	memcpy(phys_ptr(&img->pm, img->shim_pa, PGSIZE), code->bin[CB_SHIM].bytes, PGSIZE);
	const enum code_bin_id ids[2] = {CB_HOST, CB_MON};
	for (int s = 0; s < 2; s++) {
		const struct code_bin *cb = &code->bin[ids[s]];
		uint8_t *p = phys_ptr(&img->pm, img->w[s].obj_pa[OBJ_CODE], PGSIZE);
		memcpy(p, cb->bytes, cb->size);
		uint32_t data = (s == SP_HOST ? sc->shim_lin : sc->w[SP_MON].lin[MOBJ_SHIM_ALIAS]) + SHIM_DATA_OFF;
		put4(p + PB_DATA, data);
		put4(p + PB_ROUNDS, sc->rounds);
	}
	/* Linear addresses of entry points and symbols. */
	for (int e = 0; e < EP_N; e++) {
		enum code_bin_id b = entry_bin((enum entry)e);
		uint32_t base = b == CB_SHIM ? sc->shim_lin : sc->w[b == CB_HOST ? SP_HOST : SP_MON].lin[OBJ_CODE];
		img->ep[e] = code->entry[e] == ENTRY_ABSENT ? 0 : base + code->entry[e];
	}
	img->nsyms = 0;
	for (int i = 0; i < code->nsyms && img->nsyms < IMG_MAX_SYMS; i++) {
		const struct code_sym *cs = &code->syms[i];
		struct img_sym *s = &img->syms[img->nsyms++];
		s->both = cs->bin == CB_SHIM;
		s->sp = cs->bin == CB_HOST ? SP_HOST : SP_MON;
		s->lin = (cs->bin == CB_SHIM ? sc->shim_lin : sc->w[s->sp].lin[OBJ_CODE]) + cs->off;
		s->name = cs->name;
	}
}

static void initial_cpu(struct image *img)
{
	const struct world *h = &img->w[SP_HOST];
	struct cpu_state *c = &img->init;
	memset(c, 0, sizeof *c);
	c->eip = img->ep[EP_HOST_MAIN];
	c->esp = h->stack_top;
	c->eflags = FL_RESERVED1; /* IF=0: nothing interrupts the simulated run */
	c->cr0 = h->regs.cr0;
	c->cr3 = h->regs.cr3;
	c->cr4 = h->regs.cr4;
	c->efer = h->regs.efer;
	c->gdtr = h->gdtr;
	c->idtr = h->idtr;
	struct seg_desc code = desc_flat_code(), data = desc_flat_data();
	c->cs = seg_from(h->cs, &code);
	c->ss = c->ds = c->es = c->fs = c->gs = seg_from(h->ds, &data);
	uint64_t raw = 0;
	phys_read8(&img->pm, h->tss_desc_pa, &raw);
	struct seg_desc td = desc_decode(raw);
	c->tr = seg_from(h->tr, &td);
}

static enum sc_reason build(const struct scenario *sc, const struct shim_code *code, struct image *img,
			    struct sc_error *err, uint8_t *bytes)
{
	memset(img, 0, sizeof *img);
	memset(err, 0, sizeof *err);
	img->pm.base = sc->phys_base;
	img->pm.size = sc->phys_size;
	img->pm.bytes = bytes ? bytes : calloc(1, (size_t)sc->phys_size);
	if (!img->pm.bytes)
		return fail(err, SC_FULL, "phys_window", "cannot allocate the image");
	img->next_free = sc->phys_base;
	img->shim_lin = sc->shim_lin;
	img->data_lin = sc->shim_lin + SHIM_DATA_OFF;
	img->rounds = sc->rounds;
	img->shim_pa = alloc_page(img);
	for (int s = 0; s < 2; s++) {
		for (int i = 0; i < OBJ_NWORLD; i++) /* shim_alias and pt_window have no frame of their own */
			if (!(img->w[s].obj_pa[i] = alloc_page(img)))
				return fail(err, SC_FULL, "phys_window", "too small for the layout");
	}
	for (int s = 0; s < 2; s++)
		build_tables(img, sc, (enum sc_space)s);
	for (int s = 0; s < 2; s++) {
		struct tracked_alloc t = {img, &img->w[s]};
		uint64_t root = alloc_pt(&t);
		if (!root)
			return fail(err, SC_FULL, "phys_window", "no room for a page directory");
		struct pt_builder b = {&img->pm, sc->w[s].state.paging == SC_PAE ? PM_PAE : PM_32, root, alloc_pt, &t};
		enum sc_reason r = build_space(img, sc, code, (enum sc_space)s, &b, err);
		if (r != SC_OK)
			return r;
	}
	bool modes_differ = (sc->w[SP_HOST].state.paging == SC_PAE) != (sc->w[SP_MON].state.paging == SC_PAE);
	for (int s = 0; s < 2 && modes_differ && code->sw.paging; s++) {
		enum sc_reason r = transition_tables(img, sc, (enum sc_space)s, err);
		if (r != SC_OK)
			return r;
	}
	load_bins(img, sc, code);
	for (int s = 0; s < 2; s++)
		build_idt(img, sc, code, (enum sc_space)s);
	fill_data_area(img, sc, code);
	initial_cpu(img);
	return SC_OK;
}

enum sc_reason image_build(const struct scenario *sc, const struct shim_code *code, struct image *img,
			   struct sc_error *err)
{
	return build(sc, code, img, err, NULL);
}

/* The builder writes only inside the pages it allocates, all below next_free: zeroing those
 * makes an old image's buffer as good as a fresh one, without touching the whole window. */
enum sc_reason image_rebuild(const struct scenario *sc, const struct shim_code *code, struct image *img,
			     struct sc_error *err)
{
	if (!img->pm.bytes || img->pm.size != sc->phys_size || img->pm.base != sc->phys_base) {
		image_free(img);
		return build(sc, code, img, err, NULL);
	}
	uint8_t *bytes = img->pm.bytes;
	memset(bytes, 0, (size_t)image_used(img));
	return build(sc, code, img, err, bytes);
}

uint64_t image_used(const struct image *img) { return img->next_free - img->pm.base; }

void image_free(struct image *img)
{
	free(img->pm.bytes);
	img->pm.bytes = NULL;
}

const char *image_sym_at(const struct image *img, enum sc_space sp, uint32_t lin)
{
	for (int i = 0; i < img->nsyms; i++)
		if (img->syms[i].lin == lin && (img->syms[i].both || img->syms[i].sp == sp))
			return img->syms[i].name;
	return NULL;
}

int image_pt_space(const struct image *img, uint64_t pa)
{
	pa &= ~(uint64_t)(PGSIZE - 1);
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < img->w[s].npt; i++)
			if (img->w[s].pt_pages[i] == pa)
				return s;
	return -1;
}
