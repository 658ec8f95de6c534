/*
 * window.c: interrupt delivery at every boundary of the switch windows (see window.h).
 */
#include "window.h"

#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <capstone/capstone.h>

#include "../model/desc.h"
#include "../model/mmu.h"
#include "check.h"
#include "../shim/shim_abi.h"

/* phys_ptr, inline: the loops over every recorded write and every kept byte call it most. */
static inline uint8_t *mem_at(const struct physmem *pm, uint64_t pa, uint64_t len)
{
	uint64_t off = pa - pm->base;
	return pa >= pm->base && off <= pm->size && len <= pm->size - off ? pm->bytes + off : NULL;
}

/* The recorded writes of instructions [a, b) undone, the last first. */
static void wind_back(struct physmem *pm, const struct trace *t, uint32_t a, uint32_t b)
{
	for (uint32_t i = b; i-- > a;) {
		const struct tr_insn *in = &t->insn[i];
		for (uint32_t k = in->mem_n; k-- > 0;) {
			const struct tr_mem *w = &t->mem[in->mem_first + k];
			uint8_t *p = w->write ? mem_at(pm, w->pa, w->size) : NULL;
			for (unsigned x = 0; p && x < w->size; x++)
				p[x] = (uint8_t)(w->old >> (8 * x));
		}
	}
}

static struct paging_regs regs_at(const struct physmem *pm, const struct tr_cpu *c)
{
	struct paging_regs r = {c->cr0, c->cr3, c->cr4, c->efer, {0, 0, 0, 0}};
	paging_load_pdptes(pm, &r);
	return r;
}

/*
 * Walks done at earlier boundaries, by page and access, under a few sets of paging registers.
 * Most boundaries of a window walk the same few pages (the IDT, the GDT, the handler, the
 * stack, the data area) under the same tables, so they are walked once; and a switch goes
 * back and forth between a handful of register sets (the source's, transition tables or
 * paging off, the target's; the next window the other way), so each set keeps its own walks
 * (a context). A walk stays valid until a recorded write lands on a paging-structure page its
 * context read.
 */
#define WMEMO_BITS 6
#define WMEMO_SLOTS (1 << WMEMO_BITS) /* per context, direct-mapped by page and access */
#define WMEMO_TABLES 16 /* paging-structure pages a context's walks read, before it gives up */
#define WMEMO_CTX 4

struct wctx {
	struct paging_regs r;
	uint32_t gen;          /* 0: unused; entries of another generation are empty */
	uint32_t used;         /* when it was last chosen (the least recent one is reused) */
	int ntables;           /* -1: more than WMEMO_TABLES, any write may matter */
	uint64_t tables[WMEMO_TABLES];
	struct wmemo_entry {
		uint32_t gen;
		uint32_t page;
		enum access acc;
		enum walk_status status;
		uint32_t err;
		uint64_t pa_page;
		int nlvl;          /* paging-structure entries the walk read (see jm_note_walk) */
		uint64_t lvl[WALK_MAX_LEVELS];
	} e[WMEMO_SLOTS];
};

struct wmemo {
	struct wctx x[WMEMO_CTX];
	struct wctx *cur;      /* the context of the registers of the last mwalk_regs */
	uint32_t gen;          /* the last generation given out: generations are unique across
	                        * contexts, so one names a register set and its tables' state */
	uint32_t tick;
	uint64_t tables;       /* bit (page number mod 64) of every page a context's walks read
	                        * (all bits: one gave up counting): most writes are elsewhere */
};

/* Empty one context: its walks no longer hold. */
static void mwalk_forget(struct wmemo *m, struct wctx *c)
{
	if (++m->gen == 0) { /* wrapped: clear every context for real */
		for (int k = 0; k < WMEMO_CTX; k++) {
			memset(m->x[k].e, 0, sizeof m->x[k].e);
			m->x[k].gen = 0;
		}
		m->gen = 1;
		m->cur = NULL; /* mwalk_regs chooses again before the next walk */
	}
	c->gen = m->gen;
	c->ntables = 0;
}

/* Every context empty (memory is another run's). */
static void mwalk_forget_all(struct wmemo *m)
{
	for (int k = 0; k < WMEMO_CTX; k++)
		m->x[k].gen = 0; /* unused: chosen again only by mwalk_regs, which forgets it first */
	m->cur = NULL;
	m->tables = 0;
}

static bool same_regs(const struct paging_regs *a, const struct paging_regs *b)
{
	/* field by field: the struct has padding, which memcmp would read */
	bool same = a->cr0 == b->cr0 && a->cr3 == b->cr3 && a->cr4 == b->cr4 && a->efer == b->efer;
	for (int k = 0; k < 4; k++)
		same &= a->pdpte[k] == b->pdpte[k];
	return same;
}

/* The paging registers of the next walks: the context whose walks hold for them. */
static void mwalk_regs(struct wmemo *m, const struct paging_regs *r)
{
	m->tick++;
	if (m->cur && same_regs(&m->cur->r, r)) {
		m->cur->used = m->tick;
		return;
	}
	struct wctx *old = &m->x[0];
	for (int k = 0; k < WMEMO_CTX; k++) {
		struct wctx *c = &m->x[k];
		if (c->gen && same_regs(&c->r, r)) {
			m->cur = c;
			c->used = m->tick;
			return;
		}
		if (!c->gen || (old->gen && c->used < old->used))
			old = c;
	}
	old->r = *r;
	mwalk_forget(m, old);
	old->used = m->tick;
	m->cur = old;
}

/*
 * The physical bytes a judgement reads (besides the paging structures, which the walk memo
 * watches): recorded while a boundary is judged, so that a later boundary can take the same
 * verdict as long as no recorded write lands on them (see window_analyse).
 */
#define RS_MAX 48

struct readset {
	bool on, over;
	int n;
	uint64_t pa[RS_MAX];
	uint32_t len[RS_MAX];
};

/* rs: what the judgement of a boundary reads, for sharing its verdict with the next ones;
 * dep: that and the paging-structure entries its walks read, for the judgement memo (below),
 * over the second, perturbed judgement too. */
static struct readset rs, dep;

static void set_add(struct readset *s, uint64_t pa, uint32_t len)
{
	for (int i = 0; i < s->n; i++)
		if (pa <= s->pa[i] + s->len[i] && s->pa[i] <= pa + len) {
			/* overlapping or adjacent: one range covers both (the same bytes) */
			uint64_t lo = pa < s->pa[i] ? pa : s->pa[i];
			uint64_t hi = pa + len > s->pa[i] + s->len[i] ? pa + len : s->pa[i] + s->len[i];
			s->pa[i] = lo;
			s->len[i] = (uint32_t)(hi - lo);
			return;
		}
	if (s->n == RS_MAX) {
		s->over = true;
		return;
	}
	s->pa[s->n] = pa;
	s->len[s->n++] = len;
}

static void rs_add(uint64_t pa, uint32_t len)
{
	if (rs.on)
		set_add(&rs, pa, len);
	if (dep.on)
		set_add(&dep, pa, len);
}

static bool rs_hit(const struct readset *r, uint64_t pa, uint32_t len)
{
	for (int i = 0; i < r->n; i++)
		if (pa < r->pa[i] + r->len[i] && r->pa[i] < pa + len)
			return true;
	return false;
}

/* Walk-memo slots of the current context whose entries dep holds already (cleared when a
 * slot is filled with another walk): most judgements walk the same page many times. */
static uint64_t dep_walked;

static void jm_slot_refilled(unsigned slot)
{
	dep_walked &= ~((uint64_t)1 << slot);
}

static void jm_note_walk(unsigned slot, const struct wmemo_entry *x, uint32_t size)
{
	if (!dep.on || (dep_walked >> slot & 1))
		return;
	dep_walked |= (uint64_t)1 << slot;
	for (int k = 0; k < x->nlvl; k++)
		set_add(&dep, x->lvl[k], size);
}

/* What the analysis needs of a walk (struct walk carries every level: too much to copy
 * for each of the thousands of lookups a run's analysis makes). */
struct mw {
	enum walk_status status;
	uint32_t err;      /* #PF error code when status == WALK_FAULT */
	uint64_t pa;       /* when status == WALK_OK */
};

/* paging_walk of lin under the registers of the last mwalk_regs, through the memo. */
static struct mw mwalk(struct wmemo *m, const struct physmem *pm, const struct paging_regs *r, uint32_t lin,
			 enum access acc)
{
	struct wctx *c = m->cur;
	uint32_t page = lin & PGMASK;
	/* Fibonacci hashing: the pages a switch walks often agree in their low bits (the shim at
	 * 0xc8801000, a world's stack at 0xc0101000), which a plain modulo would collide. */
	unsigned slot = ((page | (uint32_t)acc) * 2654435761u) >> (32 - WMEMO_BITS);
	struct wmemo_entry *x = &c->e[slot];
	if (x->gen != c->gen || x->page != page || x->acc != acc) {
		struct walk w = paging_walk(pm, r, page, acc, 0);
		*x = (struct wmemo_entry){c->gen, page, acc, w.status, w.err, w.pa & ~(uint64_t)0xFFF, w.nlevels, {0}};
		for (int k = 0; k < w.nlevels; k++)
			x->lvl[k] = w.level[k].entry_pa;
		jm_slot_refilled(slot);
		for (int k = 0; k < w.nlevels && c->ntables >= 0; k++) {
			uint64_t t = w.level[k].entry_pa & ~(uint64_t)0xFFF;
			int j = 0;
			while (j < c->ntables && c->tables[j] != t)
				j++;
			if (j == c->ntables)
				c->ntables = c->ntables < WMEMO_TABLES ? c->ntables + 1 : -1;
			if (c->ntables >= 0)
				c->tables[j] = t;
			m->tables |= c->ntables >= 0 ? (uint64_t)1 << (t >> PGSHIFT & 63) : ~(uint64_t)0;
		}
	}
	jm_note_walk(slot, x, (r->cr4 & CR4_PAE) ? 8 : 4);
	struct mw w = {x->status, x->err, x->status == WALK_OK ? x->pa_page + (lin & 0xFFF) : 0};
	return w;
}

/* A write at physical pa, applied or undone: forget the walks of every context that read
 * the paging-structure page it lands on (rare: the windows write no paging structure). */
static void mwalk_written(struct wmemo *m, uint64_t pa)
{
	uint64_t page = pa & ~(uint64_t)0xFFF;
	if (!(m->tables >> (page >> PGSHIFT & 63) & 1))
		return;
	for (int k = 0; k < WMEMO_CTX; k++) {
		struct wctx *c = &m->x[k];
		bool hit = c->gen && c->ntables < 0;
		for (int j = 0; c->gen && j < c->ntables && !hit; j++)
			hit = c->tables[j] == page;
		if (hit)
			mwalk_forget(m, c);
	}
}

/* Read n bytes at a linear address through the tables in force; false if any byte faults.
 * One walk per page touched. */
static bool read_lin(struct wmemo *m, const struct physmem *pm, const struct paging_regs *r, uint32_t lin,
		     uint8_t *out, unsigned n, uint64_t *pa0)
{
	unsigned done = 0;
	while (done < n) {
		uint32_t at = lin + done;
		unsigned chunk = PGSIZE - (at & 0xFFF);
		if (chunk > n - done)
			chunk = n - done;
		struct mw w = mwalk(m, pm, r, at, ACC_READ);
		const uint8_t *p = w.status == WALK_OK ? phys_ptr(pm, w.pa, chunk) : NULL;
		if (!p)
			return false;
		if (done == 0 && pa0)
			*pa0 = w.pa;
		rs_add(w.pa, chunk);
		memcpy(out + done, p, chunk);
		done += chunk;
	}
	return true;
}

#define OWNER_SHIM 2 /* the shim's own IDT, in the shim page */

static const char *world_of_idt(const struct image *img, uint32_t idt, int *sp)
{
	if (img->ep[EP_SHIM_NMI] &&
	    (idt == img->shim_lin + SHIM_IDT_OFF || idt == (uint32_t)img->shim_pa + SHIM_IDT_PHYS_OFF)) {
		*sp = OWNER_SHIM;
		return "shim";
	}
	for (int s = 0; s < 2; s++)
		if (img->w[s].idtr.base == idt) {
			*sp = s;
			return s == SP_HOST ? "host" : "monitor";
		}
	*sp = -1;
	return NULL;
}

/* Where a safe delivery leaves the CPU: what the return check starts from. */
struct delivered {
	int owner;              /* SP_HOST, SP_MON, OWNER_SHIM, or -1 (an IDT of no one's) */
	const char *idt_world;
	uint32_t handler;       /* linear */
	uint32_t handler_off;   /* EIP: the gate's offset, in the handler's CS */
	uint32_t cs_base;       /* of the gate's selector, in the GDT in force */
	uint32_t sp;            /* ESP after the push: the frame (EIP, CS, EFLAGS) */
	uint64_t stack_pa;      /* physical address of the frame */
};

/* The verdict for delivering `vector` with the CPU as in c and memory as in pm. */
static enum wverdict judge(struct wmemo *m, const struct physmem *pm, const struct paging_regs *rp,
			   const struct image *img, const struct tr_cpu *c, unsigned vector, bool want_safe_reasons, char *why,
			   size_t n, struct delivered *dl)
{
	const struct paging_regs r = *rp;
	if (c->idtr_limit < 8 * vector + 7) {
		snprintf(why, n, "vector %u lies beyond the IDT limit 0x%x", vector, c->idtr_limit);
		return WV_UNSAFE;
	}
	uint8_t g[8], d[8];
	uint64_t gate_pa = 0;
	if (!read_lin(m, pm, &r, c->idtr_base + 8 * vector, g, 8, &gate_pa)) {
		snprintf(why, n, "IDT gate at 0x%08" PRIx32 " not mapped under CR3 %08" PRIx32 " (the IDT in force is not "
			 "reachable in this space)", c->idtr_base + 8 * vector, c->cr3);
		return WV_UNSAFE;
	}
	int owner;
	const char *idt_world = world_of_idt(img, c->idtr_base, &owner);
	uint64_t idt_page = owner == OWNER_SHIM ? img->shim_pa : owner >= 0 ? img->w[owner].obj_pa[OBJ_IDT] : 0;
	if (owner >= 0 && (gate_pa & ~(uint64_t)0xFFF) != idt_page) {
		snprintf(why, n, "IDTR 0x%08" PRIx32 " (the %s IDT) reaches physical 0x%" PRIx64 " here, not that IDT",
			 c->idtr_base, idt_world, gate_pa);
		return WV_UNSAFE;
	}
	struct gate_desc gd = gate_decode(get8(g));
	if (!gd.p || (gd.type != STS_IG32 && gd.type != STS_TG32)) {
		snprintf(why, n, "gate %u not present or not a 32-bit interrupt/trap gate (type 0x%x)%s", vector, gd.type,
			 gd.type == STS_TG ? ": task gates are not modelled" : "");
		return WV_UNSAFE;
	}
	if (SEL_INDEX(gd.sel) + 7 > c->gdtr_limit ||
	    !read_lin(m, pm, &r, c->gdtr_base + SEL_INDEX(gd.sel), d, 8, NULL)) {
		snprintf(why, n, "handler selector 0x%04x: its descriptor in the GDT in force (0x%08" PRIx32 ") is not reachable",
			 gd.sel, c->gdtr_base);
		return WV_UNSAFE;
	}
	struct seg_desc cs = desc_decode(get8(d));
	if (!cs.p || !cs.s || !(cs.type & STA_X)) {
		snprintf(why, n, "handler selector 0x%04x is not a present code segment in the GDT in force", gd.sel);
		return WV_UNSAFE;
	}
	uint32_t handler = cs.base + gd.offset;
	struct mw hw = mwalk(m, pm, &r, handler, ACC_FETCH);
	if (hw.status != WALK_OK) {
		snprintf(why, n, "handler 0x%08" PRIx32 " not mapped for fetch under CR3 %08" PRIx32, handler, c->cr3);
		return WV_UNSAFE;
	}
	if (owner >= 0) {
		enum entry trap = owner == SP_HOST ? EP_HOST_TRAP : owner == SP_MON ? EP_MONITOR_TRAP : EP_SHIM_NMI;
		uint64_t page = owner == OWNER_SHIM ? img->shim_pa : img->w[owner].obj_pa[OBJ_CODE];
		uint64_t want = page + (img->ep[trap] & 0xFFF);
		if (hw.pa != want) {
			snprintf(why, n, "handler 0x%08" PRIx32 " reaches physical 0x%" PRIx64 ", not the %s's trap routine",
				 handler, hw.pa, idt_world);
			return WV_UNSAFE;
		}
	}
	/* Same privilege: EFLAGS, CS, EIP pushed at SS:ESP-12 (flat SS in every scenario). */
	uint32_t sp = c->gpr[R_ESP] - 12;
	uint64_t stack_pa = UINT64_MAX;
	for (unsigned k = 0; k < 12; k += 4) {
		if (k && ((sp + k) & PGMASK) == (sp & PGMASK))
			continue; /* same page as the first push: same walk */
		struct mw sw = mwalk(m, pm, &r, sp + k, ACC_WRITE);
		if (sw.status != WALK_OK) {
			snprintf(why, n, "the push at SS:ESP-12 = 0x%08" PRIx32 " faults (error 0x%x) under CR3 %08" PRIx32
				 ": #PF during delivery, then #DF through the same IDT", sp + k, sw.err, c->cr3);
			return WV_UNSAFE;
		}
		if (k == 0)
			stack_pa = sw.pa;
	}
	/* A world's handler must run on that world's stack; the shim's handler (which only
	 * notes the NMI) may run on any world's stack or its own. */
	uint64_t spage = stack_pa & ~(uint64_t)0xFFF;
	bool own_stack = owner >= 0 && owner < 2 ? spage == img->w[owner].obj_pa[OBJ_STACK]
		: spage == img->shim_pa || spage == img->w[SP_HOST].obj_pa[OBJ_STACK] ||
			  spage == img->w[SP_MON].obj_pa[OBJ_STACK];
	if (!own_stack) {
		snprintf(why, n, "the CPU would push EFLAGS/CS/EIP at 0x%08" PRIx32 " = physical 0x%" PRIx64
			 ", which is not the stack of the %s the handler belongs to", sp, stack_pa,
			 idt_world ? idt_world : "world");
		return WV_UNSAFE;
	}
	if (want_safe_reasons) /* only the window table prints them; the per-run check does not */
		snprintf(why, n, "%s IDT gate %u -> handler 0x%08" PRIx32 ", push at 0x%08" PRIx32,
			 idt_world ? idt_world : "an", vector, handler, sp);
	else
		why[0] = '\0';
	*dl = (struct delivered){owner, idt_world, handler, gd.offset, cs.base, sp, stack_pa};
	return WV_SAFE;
}

/* ---- the handler's way back ------------------------------------------------------------------ */

/*
 * A handler is followed instruction by instruction from the state its delivery leaves: the
 * general registers as the trace has them at the boundary, ESP at the frame, EIP at the
 * gate's offset, memory as it is at the boundary. Followed: MOV and LEA between registers,
 * immediates and memory; PUSH and POP; direct CALL and JMP; RET; any other instruction whose
 * only effects are on memory operands, general registers and the arithmetic flags (its
 * memory accesses are checked, the registers it writes become unknown); HLT (the handler
 * stops: it never comes back) and IRETD (it returns). Anything else (a conditional branch, a
 * load of a system or segment register, STI, a 16-bit IRET) ends the walk as "cannot
 * follow", which counts as unsafe: a variant that claims nmi_safe must have a handler the
 * model can judge. Segment bases other than CS's are taken as 0, as the delivery check
 * takes SS's: every scenario's data segments and the shim's own SS are flat.
 */

#define HF_STEPS 64 /* instructions followed before giving up */
#define HF_SLOTS 32 /* stack dwords the frame and the handler may write */

enum hf_end { HF_IRET, HF_STOPS, HF_CANNOT };

struct hf_slot {
	uint32_t lin, v;
	bool known;
	bool taint;            /* v comes from the interrupted context (see hf.taint) */
	int8_t orig;           /* v is exactly that initial value (see hf.orig), or -1 */
};

struct hf {
	const struct physmem *pm;
	const struct paging_regs *r;
	csh cs;
	cs_insn *in;
	uint32_t gpr[8];
	bool known[8];
	uint32_t cs_base, eip; /* the handler's CS base, and EIP as an offset in it */
	int nslot;
	struct hf_slot slot[HF_SLOTS];
	int npage;
	uint64_t wpage[4];     /* physical pages the handler may write: its data, its stack */
	uint64_t note_pa;      /* the shim's handler: D_NMI_PENDING, which it must write (else 0) */
	bool noted;
	struct wmemo *m;       /* the analysis' walks */
	uint32_t ret_limit;    /* WRN_RETURNS: the byte limit of the CS its IRET reloads */
	/* Which values come from the interrupted context (its general registers but ESP, the
	 * frame): when one of them forms an address the handler uses, or where RET goes, the
	 * handler's path depends on them (value_dep) and its verdict is not shared. */
	bool taint[8];
	bool value_dep;
	/* Which initial value each register holds unchanged: 0..7 the interrupted EAX..EDI,
	 * ORIG_EIP/ORIG_EFLAGS the frame's, -1 none. A return whose IRET pops the frame's EIP
	 * and EFLAGS and leaves every register with its own value is the same for any values
	 * of them (indep, set by judge_return). */
	int8_t orig[8];
	bool indep;
};

#define ORIG_EIP 8
#define ORIG_CS 9
#define ORIG_EFLAGS 10

/* The general register a Capstone register is part of (0..7 = EAX..EDI), or -1; *full says
 * it is the whole 32-bit register. */
static int gpr_of(unsigned reg, bool *full)
{
	static const unsigned r32[8] = {X86_REG_EAX, X86_REG_ECX, X86_REG_EDX, X86_REG_EBX,
					X86_REG_ESP, X86_REG_EBP, X86_REG_ESI, X86_REG_EDI};
	static const unsigned r16[8] = {X86_REG_AX, X86_REG_CX, X86_REG_DX, X86_REG_BX,
					X86_REG_SP, X86_REG_BP, X86_REG_SI, X86_REG_DI};
	static const unsigned r8[8] = {X86_REG_AL, X86_REG_CL, X86_REG_DL, X86_REG_BL,
				       X86_REG_AH, X86_REG_CH, X86_REG_DH, X86_REG_BH};
	for (int g = 0; g < 8; g++) {
		*full = reg == r32[g];
		if (reg == r32[g] || reg == r16[g])
			return g;
		if (reg == r8[g])
			return g & 3; /* AH..BH are bits 15:8 of EAX..EBX */
	}
	*full = false;
	return -1;
}

static struct hf_slot *hf_slot_at(struct hf *h, uint32_t lin)
{
	for (int i = 0; i < h->nslot; i++)
		if (h->slot[i].lin == lin)
			return &h->slot[i];
	return NULL;
}

/* Stack dword written at lin (known value v, or unknown). */
static bool hf_store(struct hf *h, uint32_t lin, uint32_t v, bool known, bool taint, int8_t orig)
{
	struct hf_slot *s = hf_slot_at(h, lin);
	if (!s) {
		if (h->nslot == HF_SLOTS)
			return false;
		s = &h->slot[h->nslot++];
		s->lin = lin;
	}
	s->v = v;
	s->known = known;
	s->taint = taint;
	s->orig = orig;
	return true;
}

/* A write of size bytes at lin that is not a whole known dword: the slots it touches are
 * no longer known. */
static void hf_clobber(struct hf *h, uint32_t lin, unsigned size)
{
	for (int i = 0; i < h->nslot; i++)
		if (h->slot[i].lin - lin < size || lin - h->slot[i].lin < 4) {
			h->slot[i].known = false;
			h->slot[i].orig = -1;
		}
}

/* One data access of the handler: every byte mapped for it under the paging in force, and a
 * write on a page the handler may write. */
static bool hf_access(struct hf *h, uint32_t lin, unsigned size, bool write, char *why, size_t n)
{
	for (unsigned k = 0; k < size; k++) {
		uint32_t at = lin + k;
		if (k && (at & 0xFFF) != 0)
			continue; /* one walk per page */
		struct mw w = mwalk(h->m, h->pm, h->r, at, write ? ACC_WRITE : ACC_READ);
		if (w.status != WALK_OK) {
			snprintf(why, n, "its %s of 0x%08" PRIx32 " faults (error 0x%x) under CR3 %08" PRIx32,
				 write ? "write" : "read", at, w.err, h->r->cr3);
			return false;
		}
		bool ok = !write;
		for (int p = 0; p < h->npage; p++)
			ok |= (w.pa & ~(uint64_t)0xFFF) == h->wpage[p];
		/* the bytes of this page the access covers: do they include the note? */
		unsigned left = size - k, in_page = PGSIZE - (at & 0xFFF);
		uint64_t end = w.pa + (left < in_page ? left : in_page);
		h->noted |= write && h->note_pa && h->note_pa >= w.pa && h->note_pa < end;
		if (!ok) {
			snprintf(why, n, "its write of 0x%08" PRIx32 " reaches physical 0x%" PRIx64
				 ", neither its own data nor the stack it runs on", at, w.pa);
			return false;
		}
	}
	return true;
}

/* The linear address of a memory operand; false when a register it uses is unknown. */
static bool hf_addr(const struct hf *h, const cs_x86_op *op, bool segment, uint32_t *lin, bool *taint)
{
	*taint = false;
	uint32_t a = (uint32_t)op->mem.disp;
	bool full;
	if (op->mem.base != X86_REG_INVALID) {
		int g = gpr_of(op->mem.base, &full);
		if (g < 0 || !full || !h->known[g])
			return false;
		a += h->gpr[g];
		*taint |= h->taint[g];
	}
	if (op->mem.index != X86_REG_INVALID) {
		int g = gpr_of(op->mem.index, &full);
		if (g < 0 || !full || !h->known[g])
			return false;
		a += h->gpr[g] * (uint32_t)op->mem.scale;
		*taint |= h->taint[g];
	}
	if (segment && op->mem.segment == X86_REG_CS)
		a += h->cs_base; /* other segments: flat (see above) */
	*lin = a;
	return true;
}

/* A dword the handler reads: what it pushed, or memory as at the boundary. */
static bool hf_load(struct hf *h, uint32_t lin, uint32_t *v, bool *known, bool *taint, int8_t *orig, char *why,
		    size_t n)
{
	if (!hf_access(h, lin, 4, false, why, n))
		return false;
	const struct hf_slot *s = hf_slot_at(h, lin);
	uint8_t b[4];
	if (s) {
		*v = s->v;
		*known = s->known;
		*taint = s->taint;
		*orig = s->orig;
	} else {
		*known = read_lin(h->m, h->pm, h->r, lin, b, 4, NULL);
		*v = *known ? get4(b) : 0;
		*taint = false; /* memory as at the boundary: its bytes are in the read set */
		*orig = -1;
	}
	return true;
}

/* Decoded handler instructions, kept across boundaries and runs: the handler's bytes seldom
 * change, and decoding (Capstone formats each instruction's text) costs more than the rest of
 * the walk. An entry serves the same physical address, EIP and instruction bytes. */
#define HF_CACHE 32

struct hf_decoded {
	bool valid;
	uint64_t pa;
	uint32_t eip;
	uint8_t bytes[16];
	cs_insn insn;       /* insn.detail points at detail below */
	cs_detail detail;
	bool regs_ok;       /* cs_regs_access answered: */
	uint8_t nw;
	cs_regs rw;         /* the registers it writes */
};

static struct hf_decoded hf_cache[HF_CACHE];

static const struct hf_decoded *hf_decode(struct hf *h, uint64_t pa, uint32_t eip, const uint8_t *b, size_t got)
{
	struct hf_decoded *d = &hf_cache[(pa ^ (pa >> 5)) % HF_CACHE];
	if (d->valid && d->pa == pa && d->eip == eip && got >= d->insn.size && memcmp(d->bytes, b, d->insn.size) == 0)
		return d;
	const uint8_t *code = b;
	uint64_t addr = eip;
	d->valid = false;
	if (!cs_disasm_iter(h->cs, &code, &got, &addr, h->in))
		return NULL;
	d->insn = *h->in;
	d->detail = *h->in->detail;
	d->insn.detail = &d->detail;
	memcpy(d->bytes, b, d->insn.size);
	cs_regs rr;
	uint8_t nr = 0;
	d->regs_ok = cs_regs_access(h->cs, h->in, rr, &nr, d->rw, &d->nw) == CS_ERR_OK;
	d->pa = pa;
	d->eip = eip;
	d->valid = true;
	return d;
}

/* Its text, for a reason. */
static const char *hf_text(const cs_insn *in, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s", in->mnemonic, in->op_str[0] ? " " : "", in->op_str);
	return buf;
}

/* The linear address of a memory operand the handler accesses: an address formed from the
 * interrupted context's values makes the handler's path depend on them (value_dep); one the
 * model cannot form stops the walk with why. */
static bool hf_operand(struct hf *h, const cs_insn *in, const cs_x86_op *op, uint32_t *lin, char *why, size_t n)
{
	bool tainted;
	if (!hf_addr(h, op, true, lin, &tainted)) {
		char text[64];
		snprintf(why, n, "the model cannot follow `%s` (its address depends on a register it does not know)",
			 hf_text(in, text, sizeof text));
		return false;
	}
	h->value_dep |= tainted;
	return true;
}

/* Instructions that change state the walk does not model: it stops there. */
static bool hf_system(const cs_insn *in)
{
	switch (in->id) {
	case X86_INS_LGDT: case X86_INS_LIDT: case X86_INS_LLDT: case X86_INS_LTR: case X86_INS_LMSW:
	case X86_INS_CLTS: case X86_INS_WRMSR: case X86_INS_INVLPG: case X86_INS_STI: case X86_INS_CLI:
	case X86_INS_LSS: case X86_INS_LDS: case X86_INS_LES: case X86_INS_LFS: case X86_INS_LGS:
	case X86_INS_POPFD: case X86_INS_POPF: case X86_INS_POPAL: case X86_INS_PUSHAL: case X86_INS_LEAVE:
	case X86_INS_ENTER:
		return true;
	default:
		break;
	}
	for (int g = 0; g < in->detail->groups_count; g++) {
		uint8_t k = in->detail->groups[g];
		if (k == X86_GRP_JUMP || k == X86_GRP_CALL || k == X86_GRP_RET || k == X86_GRP_INT || k == X86_GRP_IRET ||
		    k == X86_GRP_PRIVILEGE)
			return true;
	}
	return false;
}

/* An instruction the walk has no special case for: check its memory operands, forget the
 * general registers it writes. */
static bool hf_generic(struct hf *h, const struct hf_decoded *d, char *why, size_t n)
{
	const cs_insn *in = &d->insn;
	const cs_x86 *x = &in->detail->x86;
	char text[64];
	for (int i = 0; i < x->op_count; i++) {
		const cs_x86_op *op = &x->operands[i];
		if (op->type == X86_OP_REG && i == 0) {
			bool full;
			if (gpr_of(op->reg, &full) < 0) { /* a segment, control or debug register */
				snprintf(why, n, "the model cannot follow `%s` (it loads %s)", hf_text(in, text, sizeof text),
					 cs_reg_name(h->cs, op->reg));
				return false;
			}
		}
		if (op->type != X86_OP_MEM)
			continue;
		uint32_t lin;
		if (!hf_operand(h, in, op, &lin, why, n))
			return false;
		/* Capstone 4 leaves access off some operands: then take both */
		uint8_t acc = op->access ? op->access : CS_AC_READ | CS_AC_WRITE;
		if ((acc & CS_AC_READ) && !hf_access(h, lin, op->size, false, why, n))
			return false;
		if (acc & CS_AC_WRITE) {
			if (!hf_access(h, lin, op->size, true, why, n))
				return false;
			hf_clobber(h, lin, op->size);
		}
	}
	if (!d->regs_ok) {
		snprintf(why, n, "the model cannot follow `%s` (Capstone does not say what it writes)",
			 hf_text(in, text, sizeof text));
		return false;
	}
	for (int i = 0; i < d->nw; i++) {
		bool full;
		int g = gpr_of(d->rw[i], &full);
		if (d->rw[i] == X86_REG_EFLAGS || d->rw[i] == X86_REG_EIP)
			continue; /* IRET restores EFLAGS from the frame */
		if (g < 0 || g == R_ESP) {
			snprintf(why, n, "the model cannot follow `%s` (it writes %s)", hf_text(in, text, sizeof text),
				 cs_reg_name(h->cs, d->rw[i]));
			return false;
		}
		h->known[g] = false;
		h->orig[g] = -1;
	}
	return true;
}

/* Run the handler from h's state to HLT, IRET or something the model cannot follow. */
static enum hf_end hf_run(struct hf *h, char *why, size_t n)
{
	for (int step = 0; step < HF_STEPS; step++) {
		uint32_t lin = h->cs_base + h->eip;
		uint8_t b[16];
		size_t got = 0;
		uint64_t pa0 = UINT64_MAX;
		while (got < sizeof b) { /* the bytes fetchable from lin, up to 16 */
			uint32_t at = lin + (uint32_t)got;
			struct mw w = mwalk(h->m, h->pm, h->r, at, ACC_FETCH);
			size_t chunk = PGSIZE - (at & 0xFFF);
			if (chunk > sizeof b - got)
				chunk = sizeof b - got;
			const uint8_t *p = w.status == WALK_OK ? phys_ptr(h->pm, w.pa, chunk) : NULL;
			if (!p)
				break;
			if (got == 0)
				pa0 = w.pa;
			rs_add(w.pa, (uint32_t)chunk);
			memcpy(b + got, p, chunk);
			got += chunk;
		}
		const struct hf_decoded *d = got ? hf_decode(h, pa0, h->eip, b, got) : NULL;
		if (!d) {
			snprintf(why, n, "the handler's instruction at 0x%08" PRIx32 " cannot be fetched or decoded under CR3 %08" PRIx32,
				 lin, h->r->cr3);
			return HF_CANNOT;
		}
		const cs_insn *in = &d->insn;
		const cs_x86 *x = &in->detail->x86;
		const cs_x86_op *o0 = &x->operands[0], *o1 = &x->operands[1];
		char text[64];
		uint32_t next = h->eip + in->size;
		bool full = false;
		int g0 = x->op_count > 0 && o0->type == X86_OP_REG ? gpr_of(o0->reg, &full) : -1;
		bool r0 = g0 >= 0 && full && o0->size == 4; /* the first operand is a whole 32-bit register */
		int g1 = -1;
		bool full1 = false;
		if (x->op_count > 1 && o1->type == X86_OP_REG)
			g1 = gpr_of(o1->reg, &full1);
		uint32_t v = 0, at;
		bool known = true;
		switch (in->id) {
		case X86_INS_IRETD:
			return HF_IRET;
		case X86_INS_HLT: /* no reason: judge_return reports nothing for a handler that stops */
			return HF_STOPS;
		case X86_INS_PUSH:
			/* a dword (no operand-size prefix) from a whole register or an immediate */
			if (x->op_count != 1 || x->prefix[2] == 0x66 || !(o0->type == X86_OP_IMM || r0))
				goto generic;
			bool t = false;
			int8_t og = -1;
			if (o0->type == X86_OP_IMM)
				v = (uint32_t)o0->imm;
			else
				v = h->gpr[g0], known = h->known[g0], t = h->taint[g0], og = h->orig[g0];
			at = h->gpr[R_ESP] - 4;
			if (!hf_access(h, at, 4, true, why, n))
				return HF_CANNOT;
			if (!hf_store(h, at, v, known, t, og)) {
				snprintf(why, n, "the handler pushes more than %d dwords", HF_SLOTS);
				return HF_CANNOT;
			}
			h->gpr[R_ESP] = at;
			break;
		case X86_INS_POP:
			if (x->op_count != 1 || !r0 || g0 == R_ESP)
				goto generic;
			if (!hf_load(h, h->gpr[R_ESP], &h->gpr[g0], &h->known[g0], &h->taint[g0], &h->orig[g0], why, n))
				return HF_CANNOT;
			h->gpr[R_ESP] += 4;
			break;
		case X86_INS_CALL:
			if (x->op_count != 1 || o0->type != X86_OP_IMM)
				goto generic;
			at = h->gpr[R_ESP] - 4;
			if (!hf_access(h, at, 4, true, why, n))
				return HF_CANNOT;
			if (!hf_store(h, at, next, true, false, -1)) {
				snprintf(why, n, "the handler pushes more than %d dwords", HF_SLOTS);
				return HF_CANNOT;
			}
			h->gpr[R_ESP] = at;
			next = (uint32_t)o0->imm;
			break;
		case X86_INS_JMP:
			if (x->op_count != 1 || o0->type != X86_OP_IMM)
				goto generic;
			next = (uint32_t)o0->imm;
			break;
		case X86_INS_RET:
			if (x->op_count != 0)
				goto generic;
			bool rt;
			int8_t ro;
			if (!hf_load(h, h->gpr[R_ESP], &next, &known, &rt, &ro, why, n))
				return HF_CANNOT;
			h->value_dep |= rt; /* where it goes depends on the interrupted context */
			if (!known) {
				snprintf(why, n, "the model cannot follow `ret` at 0x%08" PRIx32 " (the return address is not known)", lin);
				return HF_CANNOT;
			}
			h->gpr[R_ESP] += 4;
			break;
		case X86_INS_LEA:
			if (!r0 || g0 == R_ESP)
				goto generic;
			h->known[g0] = hf_addr(h, o1, false, &v, &h->taint[g0]); /* an address, not an access */
			h->orig[g0] = -1;
			h->gpr[g0] = v;
			break;
		case X86_INS_MOV:
			if (x->op_count != 2 || o0->size != 4)
				goto generic;
			if (r0 && g0 != R_ESP && o1->type == X86_OP_IMM) {
				h->gpr[g0] = (uint32_t)o1->imm;
				h->known[g0] = true;
				h->taint[g0] = false;
				h->orig[g0] = -1;
			} else if (r0 && g0 != R_ESP && g1 >= 0 && full1) {
				h->gpr[g0] = h->gpr[g1];
				h->known[g0] = h->known[g1];
				h->taint[g0] = h->taint[g1];
				h->orig[g0] = h->orig[g1];
			} else if (r0 && g0 != R_ESP && o1->type == X86_OP_MEM) {
				if (!hf_operand(h, in, o1, &at, why, n))
					return HF_CANNOT;
				if (!hf_load(h, at, &h->gpr[g0], &h->known[g0], &h->taint[g0], &h->orig[g0], why, n))
					return HF_CANNOT;
			} else if (o0->type == X86_OP_MEM && (o1->type == X86_OP_IMM || (g1 >= 0 && full1))) {
				if (!hf_operand(h, in, o0, &at, why, n))
					return HF_CANNOT;
				if (!hf_access(h, at, 4, true, why, n))
					return HF_CANNOT;
				v = o1->type == X86_OP_IMM ? (uint32_t)o1->imm : h->gpr[g1];
				known = o1->type == X86_OP_IMM || h->known[g1];
				hf_clobber(h, at, 4);
				if (hf_slot_at(h, at) || at - h->gpr[R_ESP] < 4 * HF_SLOTS)
					(void)hf_store(h, at, v, known, o1->type != X86_OP_IMM && h->taint[g1],
						       o1->type != X86_OP_IMM ? h->orig[g1] : -1); /* IRET may pop it */
			} else {
				goto generic;
			}
			break;
		default:
		generic:
			if (hf_system(in)) {
				snprintf(why, n, "the model cannot follow `%s` at 0x%08" PRIx32, hf_text(in, text, sizeof text), lin);
				return HF_CANNOT;
			}
			if (!hf_generic(h, d, why, n))
				return HF_CANNOT;
			break;
		}
		h->eip = next;
	}
	snprintf(why, n, "the handler does not reach IRET or HLT within %d instructions", HF_STEPS);
	return HF_CANNOT;
}

/* The handler's way back from a safe delivery at the boundary before c: WRN_NONE when it
 * stops, WRN_RETURNS when its IRET lands on the interrupted instruction with the registers
 * as they were, else WRN_FAULTS with the reason. */
static enum wreturn judge_return(const struct physmem *pm, const struct paging_regs *r, const struct image *img,
				 const struct tr_cpu *c, const struct delivered *dl, struct hf *h, bool want_safe_reasons,
				 char *why, size_t n)
{
	h->pm = pm;
	h->r = r;
	memcpy(h->gpr, c->gpr, sizeof h->gpr);
	for (int g = 0; g < 8; g++) {
		h->known[g] = true;
		h->taint[g] = g != R_ESP; /* ESP is part of the sharing key */
		h->orig[g] = (int8_t)g;
	}
	h->indep = false;
	h->value_dep = false;
	h->gpr[R_ESP] = dl->sp;
	h->cs_base = dl->cs_base;
	h->eip = dl->handler_off;
	h->nslot = 0;
	/* The frame as the CPU pushed it: EIP (the offset in CS), CS, EFLAGS. */
	hf_store(h, dl->sp, c->eip_off, true, true, ORIG_EIP);
	hf_store(h, dl->sp + 4, c->cs, true, false, ORIG_CS); /* CS is part of the sharing key */
	hf_store(h, dl->sp + 8, c->eflags, true, true, ORIG_EFLAGS);
	h->npage = 0;
	h->wpage[h->npage++] = dl->stack_pa & ~(uint64_t)0xFFF;
	h->note_pa = 0;
	h->noted = false;
	if (dl->owner == OWNER_SHIM) {
		h->wpage[h->npage++] = img->shim_pa; /* D_NMI_PENDING, and its own stack */
		h->note_pa = img->shim_pa + SHIM_DATA_OFF + D_NMI_PENDING;
	} else if (dl->owner >= 0) {
		h->wpage[h->npage++] = img->w[dl->owner].obj_pa[OBJ_STACK];
	}
	char step[200];
	enum hf_end end = hf_run(h, step, sizeof step);
	if (end == HF_STOPS) {
		why[0] = '\0';
		h->indep = true; /* no IRET: nothing compared with the interrupted values */
		return WRN_NONE;
	}
	if (end == HF_CANNOT) {
		snprintf(why, n, "handler 0x%08" PRIx32 " runs, but %s", dl->handler, step);
		return WRN_FAULTS;
	}
	/* IRETD, CPL 0 (NT is clear: the gate cleared it): pops EIP, CS, EFLAGS at SS:ESP. */
	uint32_t esp = h->gpr[R_ESP], fr[3];
	bool fk[3], ft[3]; /* taints: the values are compared below (see indep) */
	int8_t fo[3];
	for (int k = 0; k < 3; k++)
		if (!hf_load(h, esp + 4 * (uint32_t)k, &fr[k], &fk[k], &ft[k], &fo[k], step, sizeof step)) {
			snprintf(why, n, "the handler's IRET cannot pop its frame: %s", step);
			return WRN_FAULTS;
		}
	if (!fk[0] || !fk[1] || !fk[2]) {
		snprintf(why, n, "the handler's IRET pops a frame the model does not know (ESP 0x%08" PRIx32 ")", esp);
		return WRN_FAULTS;
	}
	uint16_t sel = (uint16_t)fr[1];
	uint32_t gdt_at = c->gdtr_base + SEL_INDEX(sel);
	if (SEL_RPL(sel) != 0 || (sel & SEL_TI) || SEL_INDEX(sel) == 0) {
		snprintf(why, n, "the handler's IRET pops CS 0x%04x: %s: #GP", sel,
			 SEL_RPL(sel) ? "a return to another privilege level (not modelled)"
			 : (sel & SEL_TI) ? "an LDT selector (no LDT)" : "the null selector");
		return WRN_FAULTS;
	}
	if (SEL_INDEX(sel) + 7 > c->gdtr_limit) {
		snprintf(why, n, "the handler's IRET reloads CS 0x%04x beyond the GDT limit 0x%x (GDT in force 0x%08" PRIx32
			 "): #GP(0x%04x)", sel, c->gdtr_limit, c->gdtr_base, SEL_INDEX(sel));
		return WRN_FAULTS;
	}
	uint8_t d[8];
	if (!read_lin(h->m, pm, r, gdt_at, d, 8, NULL)) {
		if (r->cr0 & CR0_PG)
			snprintf(why, n, "the handler's IRET reloads CS 0x%04x from 0x%08" PRIx32 " in the GDT in force (0x%08" PRIx32
				 "), not mapped under CR3 %08" PRIx32 ": #PF", sel, gdt_at, c->gdtr_base, c->cr3);
		else /* physical memory outside the image: on a machine, whatever lies there */
			snprintf(why, n, "the handler's IRET reloads CS 0x%04x from physical 0x%08" PRIx32 " (paging off; GDT in "
				 "force 0x%08" PRIx32 "), outside the image: no descriptor of its", sel, gdt_at, c->gdtr_base);
		return WRN_FAULTS;
	}
	struct seg_desc cd = desc_decode(get8(d));
	bool dpl_ok = (cd.type & STA_C) ? cd.dpl <= SEL_RPL(sel) : cd.dpl == SEL_RPL(sel);
	if (!cd.s || !(cd.type & STA_X) || !dpl_ok) {
		char what[48];
		if (get8(d) == 0)
			snprintf(what, sizeof what, "an empty entry");
		else
			snprintf(what, sizeof what, "%s type 0x%x, DPL %u", cd.s ? "code/data" : "system", cd.type, cd.dpl);
		snprintf(why, n, "the handler's IRET reloads CS 0x%04x from 0x%08" PRIx32 " in the GDT in force (0x%08" PRIx32
			 "): not a DPL 0 code segment there (%s): #GP(0x%04x)", sel, gdt_at, c->gdtr_base, what, SEL_INDEX(sel));
		return WRN_FAULTS;
	}
	if (!cd.p) {
		snprintf(why, n, "the handler's IRET reloads CS 0x%04x from 0x%08" PRIx32 ": not present: #NP(0x%04x)", sel,
			 gdt_at, SEL_INDEX(sel));
		return WRN_FAULTS;
	}
	if (!(cd.type & STA_A)) {
		/* the CPU sets the accessed bit as it loads the descriptor: a write to the GDT */
		struct mw aw = mwalk(h->m, pm, r, gdt_at + 5, ACC_WRITE);
		if (aw.status != WALK_OK) {
			snprintf(why, n, "the handler's IRET sets the accessed bit of CS 0x%04x at 0x%08" PRIx32
				 ", not writable under CR3 %08" PRIx32 " (error 0x%x): #PF", sel, gdt_at + 5, c->cr3, aw.err);
			return WRN_FAULTS;
		}
	}
	if (fr[0] > desc_byte_limit(&cd)) {
		snprintf(why, n, "the handler's IRET returns to EIP 0x%08" PRIx32 ", beyond CS 0x%04x's limit 0x%08" PRIx32
			 ": #GP(0)", fr[0], sel, desc_byte_limit(&cd));
		return WRN_FAULTS;
	}
	/* It works; does it land where the NMI struck, as the interrupted code left things? */
	uint32_t lin = cd.base + fr[0];
	if (lin != c->eip || !cd.db) {
		snprintf(why, n, "the handler's IRET returns to %s code at %04x:%08" PRIx32 " = 0x%08" PRIx32
			 ", not the interrupted instruction at 0x%08" PRIx32, cd.db ? "32-bit" : "16-bit", sel, fr[0], lin, c->eip);
		return WRN_FAULTS;
	}
	if ((fr[2] ^ c->eflags) & ~0x10000u) { /* RF aside */
		snprintf(why, n, "the handler's IRET restores EFLAGS %08" PRIx32 ", not the interrupted %08" PRIx32, fr[2],
			 c->eflags);
		return WRN_FAULTS;
	}
	if (h->note_pa && !h->noted) {
		/* the shim cannot take the NMI itself: the target world must re-raise it */
		snprintf(why, n, "the handler returns without writing D_NMI_PENDING (physical 0x%" PRIx64 "): the NMI is lost",
			 h->note_pa);
		return WRN_FAULTS;
	}
	static const char *const names[8] = {"EAX", "ECX", "EDX", "EBX", "ESP", "EBP", "ESI", "EDI"};
	h->gpr[R_ESP] = esp + 12;
	for (int g = 0; g < 8; g++)
		if (!h->known[g] || h->gpr[g] != c->gpr[g]) {
			snprintf(why, n, "the handler returns with %s %s (was %08" PRIx32 ")", names[g],
				 h->known[g] ? "changed" : "clobbered", c->gpr[g]);
			return WRN_FAULTS;
		}
	if (want_safe_reasons)
		snprintf(why, n, "; its IRET reloads CS 0x%04x from 0x%08" PRIx32 " and returns", sel, gdt_at);
	else
		why[0] = '\0';
	h->ret_limit = desc_byte_limit(&cd);
	/* The checks above compared values of the interrupted context; they hold whatever those
	 * values are when the IRET pops the frame's own EIP, CS and EFLAGS and every register
	 * but ESP (keyed) ends with its own initial value. */
	h->indep = fo[0] == ORIG_EIP && fo[1] == ORIG_CS && fo[2] == ORIG_EFLAGS;
	for (int g = 0; g < 8; g++)
		h->indep &= g == R_ESP || h->orig[g] == g;
	return WRN_RETURNS;
}

/*
 * A safe verdict shared by the boundaries that follow it. Most boundaries of a window differ
 * from the one before only in EIP, the general registers and the arithmetic flags, which a
 * handler that saves and restores what it uses does not look at. A safe boundary's verdict is
 * kept when (1) the handler's return was judged a second time with those perturbed (every
 * general register but ESP, EIP, CF/PF/AF/ZF/SF/OF) and came out the same, (2) no judged byte
 * was written since (the read set, checked against every recorded write as memory is wound
 * forward; the walks' paging structures are the walk memo's business, its generation is part
 * of the key) and (3) what else the judgement used is the same: IDTR, GDTR, the walk memo's
 * generation (paging registers and tables), ESP, CS and its base, SS, EFLAGS but for the
 * arithmetic flags. A boundary that takes it is checked for its own EIP against the limit of
 * the CS the IRET reloads. Unsafe verdicts are never shared: their reasons are the
 * boundary's own.
 */
#define FL_ARITH 0x8D5u /* CF PF AF ZF SF OF */

struct shared {
	bool valid;
	uint32_t idtr_base, gdtr_base, esp, cs_base, eflags, mgen;
	uint16_t idtr_limit, gdtr_limit, cs, ss;
	enum wreturn ret;
	uint32_t limit;
	struct readset rs;
};

static bool shared_fits(const struct shared *sh, const struct tr_cpu *c, uint32_t mgen)
{
	return sh->valid && sh->mgen == mgen && sh->idtr_base == c->idtr_base && sh->idtr_limit == c->idtr_limit &&
	       sh->gdtr_base == c->gdtr_base && sh->gdtr_limit == c->gdtr_limit && sh->esp == c->gpr[R_ESP] &&
	       sh->cs == c->cs && sh->cs_base == c->cs_base && sh->ss == c->ss &&
	       sh->eflags == (c->eflags & ~FL_ARITH) && (sh->ret != WRN_RETURNS || c->eip_off <= sh->limit);
}

static void shared_keep(struct shared *sh, const struct tr_cpu *c, uint32_t mgen, enum wreturn ret, uint32_t limit)
{
	*sh = (struct shared){true, c->idtr_base, c->gdtr_base, c->gpr[R_ESP], c->cs_base, c->eflags & ~FL_ARITH, mgen,
			      c->idtr_limit, c->gdtr_limit, c->cs, c->ss, ret, limit, rs};
}

/* Judge the boundary before c: its delivery, its return, and whether the boundaries that
 * follow may take the verdict (*keep, with the limit of the CS its IRET reloads). */
static void judge_boundary(struct wmemo *memo, const struct physmem *mem, const struct paging_regs *r,
			   const struct image *img, const struct tr_cpu *c, unsigned vector, bool safe_reasons, bool have_cs,
			   struct hf *h, bool next_alike, struct wboundary *b, bool *keep, uint32_t *keep_limit)
{
	struct delivered dl;
	b->verdict = b->delivery = judge(memo, mem, r, img, c, vector, safe_reasons, b->reason, sizeof b->reason, &dl);
	if (b->delivery == WV_SAFE) {
		char back[200] = "the model cannot disassemble the handler (Capstone failed to open)";
		b->ret = have_cs ? judge_return(mem, r, img, c, &dl, h, safe_reasons, back, sizeof back) : WRN_FAULTS;
		if (b->ret == WRN_FAULTS) {
			b->verdict = WV_UNSAFE;
			snprintf(b->reason, sizeof b->reason, "delivered to the %s IDT's handler, but %s",
				 dl.idt_world ? dl.idt_world : "an", back);
		} else if (safe_reasons && back[0]) {
			size_t k = strlen(b->reason);
			snprintf(b->reason + k, sizeof b->reason - k, "%s", back);
		}
	}
	rs.on = false;
	*keep = false;
	bool dep_value = h->value_dep, indep = h->indep; /* of the judgement above */
	if (next_alike && !dep_value && indep && rs.n && !rs.over && have_cs && b->verdict == WV_SAFE) {
		/* The handler forms nothing from the interrupted values, and its return
		 * compares only values it carried unchanged: the verdict holds for any. */
		*keep = true;
		*keep_limit = h->ret_limit;
	} else if (next_alike && !dep_value && rs.n && !rs.over && have_cs && b->verdict == WV_SAFE) {
		/* Judge the return again with what it must not depend on perturbed. */
		uint32_t limit = h->ret_limit;
		struct tr_cpu c2 = *c;
		for (int g = 0; g < 8; g++)
			if (g != R_ESP)
				c2.gpr[g] ^= 0x5A5A5A5Au;
		c2.eflags ^= FL_ARITH;
		c2.eip_off++;
		c2.eip++;
		char back2[200];
		if (judge_return(mem, r, img, &c2, &dl, h, false, back2, sizeof back2) == b->ret) {
			*keep = true;
			*keep_limit = limit;
		}
	}
}

/*
 * Judgements kept from one run to the next. The bench and the property tests run the same
 * shim again and again, and the fuzzer's families of 16 scenarios share a layout: the same
 * boundary, with the same registers, over the same bytes, comes back. A judgement is a
 * function of (a) the CPU state and paging registers it uses (struct jkey), (b) the image's
 * description of the worlds and the memory window (struct jworld), and (c) the bytes it
 * read: the IDT gate, descriptors, the handler's instructions, what it loaded, and every
 * paging-structure entry of every walk (dep, recorded while it ran). A kept judgement is
 * used only when all three are equal, byte for byte, to what they were; then the judgement
 * would compute the same thing again. Only safe verdicts are kept (an unsafe one is always
 * the boundary's own, its reason written afresh), with what sharing needs: whether the next
 * boundaries may take it, and its read set. Off with SHIMCHECK_NO_SHARE=1, and where safe
 * boundaries get reasons (the window table).
 */
struct jkey {
	uint64_t efer, pdpte[4];         /* the paging registers (CR0/CR3/CR4 below) */
	uint32_t cr0, cr3, cr4;
	uint32_t eip, eip_off, gpr[8], eflags;
	uint32_t idtr_base, idtr_limit, gdtr_base, gdtr_limit, cs;
	uint32_t vector, next_alike, zero;
};
_Static_assert(sizeof(struct jkey) == 5 * 8 + 22 * 4, "struct jkey has no padding (it is hashed and compared as bytes)");

struct jworld {
	uint64_t pm_base, pm_size, shim_pa;
	uint64_t obj[2][3];              /* each world's IDT, code and stack pages */
	uint32_t shim_lin, ep_nmi, ep_host_trap, ep_monitor_trap;
	uint32_t idtr[2];
	uint32_t have_cs, zero;
};
_Static_assert(sizeof(struct jworld) == 9 * 8 + 8 * 4, "struct jworld has no padding (it is compared as bytes)");

#define JM_SETS 512 /* two ways each */
#define JM_RS 16
#define JM_BYTES 512

struct jentry {
	bool valid;
	uint32_t used;
	struct jkey k;
	enum wreturn ret;
	bool keep;                       /* the next boundaries may take it (shared_keep) */
	uint32_t keep_limit;
	int nrs;                         /* its read set, for shared_keep */
	uint64_t rs_pa[JM_RS];
	uint32_t rs_len[JM_RS];
	int ndep;                        /* what it read, and the bytes there */
	uint64_t dep_pa[RS_MAX];
	uint16_t dep_len[RS_MAX];
	uint8_t bytes[JM_BYTES];
};

static struct jmemo {
	struct jworld world;
	uint32_t tick;
	struct jentry e[JM_SETS][2];
} jm;

static void jworld_of(struct jworld *w, const struct image *img, const struct physmem *pm, bool have_cs)
{
	memset(w, 0, sizeof *w);
	w->pm_base = pm->base;
	w->pm_size = pm->size;
	w->shim_pa = img->shim_pa;
	for (int s = 0; s < 2; s++) {
		w->obj[s][0] = img->w[s].obj_pa[OBJ_IDT];
		w->obj[s][1] = img->w[s].obj_pa[OBJ_CODE];
		w->obj[s][2] = img->w[s].obj_pa[OBJ_STACK];
		w->idtr[s] = img->w[s].idtr.base;
	}
	w->shim_lin = img->shim_lin;
	w->ep_nmi = img->ep[EP_SHIM_NMI];
	w->ep_host_trap = img->ep[EP_HOST_TRAP];
	w->ep_monitor_trap = img->ep[EP_MONITOR_TRAP];
	w->have_cs = have_cs;
}

/* A new analysis: keep the judgements only if they were made for the same worlds. */
static void jm_begin(const struct image *img, const struct physmem *pm, bool have_cs)
{
	struct jworld w;
	jworld_of(&w, img, pm, have_cs);
	if (memcmp(&w, &jm.world, sizeof w) != 0) {
		for (int i = 0; i < JM_SETS; i++)
			jm.e[i][0].valid = jm.e[i][1].valid = false;
		jm.world = w;
	}
}

static void jkey_of(struct jkey *k, const struct tr_cpu *c, const struct paging_regs *r, unsigned vector,
		    bool next_alike)
{
	k->efer = r->efer;
	memcpy(k->pdpte, r->pdpte, sizeof k->pdpte);
	k->cr0 = r->cr0;
	k->cr3 = r->cr3;
	k->cr4 = r->cr4;
	k->eip = c->eip;
	k->eip_off = c->eip_off;
	memcpy(k->gpr, c->gpr, sizeof k->gpr);
	k->eflags = c->eflags;
	k->idtr_base = c->idtr_base;
	k->idtr_limit = c->idtr_limit;
	k->gdtr_base = c->gdtr_base;
	k->gdtr_limit = c->gdtr_limit;
	k->cs = c->cs;
	k->vector = vector;
	k->next_alike = next_alike;
	k->zero = 0;
}

/* The set of k: hashed from what tells boundaries apart (where, which registers, which
 * tables); the whole key is compared. */
static struct jentry *jm_set(const struct jkey *k)
{
	uint32_t h = k->eip * 0x9E3779B1u;
	for (int g = 0; g < 8; g++)
		h = (h ^ k->gpr[g]) * 0x01000193u;
	h = (h ^ k->cr3 ^ k->cr0 ^ k->next_alike) * 0x01000193u;
	return jm.e[(h ^ h >> 15) % JM_SETS];
}

/* The kept judgement for k, if every byte it read is as it was. */
static const struct jentry *jm_find(const struct jkey *k, const struct physmem *pm)
{
	struct jentry *set = jm_set(k);
	for (int way = 0; way < 2; way++) {
		struct jentry *e = &set[way];
		if (!e->valid || memcmp(&e->k, k, sizeof *k) != 0)
			continue;
		const uint8_t *b = e->bytes;
		for (int d = 0; d < e->ndep; d++) {
			const uint8_t *p = mem_at(pm, e->dep_pa[d], e->dep_len[d]);
			if (!p || memcmp(p, b, e->dep_len[d]) != 0)
				return NULL;
			b += e->dep_len[d];
		}
		e->used = ++jm.tick;
		return e;
	}
	return NULL;
}

/* Keep a safe judgement of k, made with dep recording and rs as it ended. */
static void jm_store(const struct jkey *k, const struct physmem *pm, enum wreturn ret, bool keep, uint32_t keep_limit)
{
	if (dep.over || (keep && (rs.over || rs.n > JM_RS)))
		return;
	struct jentry *set = jm_set(k), *e = NULL;
	for (int way = 0; way < 2 && !e; way++)
		if (set[way].valid && memcmp(&set[way].k, k, sizeof *k) == 0)
			e = &set[way]; /* the same key over other bytes: this judgement replaces it */
	if (!e) /* else the empty way, or the one used longer ago */
		e = !set[0].valid ? &set[0] : !set[1].valid || set[1].used < set[0].used ? &set[1] : &set[0];
	e->valid = false;
	size_t nb = 0;
	for (int d = 0; d < dep.n; d++) {
		const uint8_t *p = phys_ptr(pm, dep.pa[d], dep.len[d]);
		if (!p || dep.len[d] > JM_BYTES - nb)
			return; /* (every range read is in memory: p is never NULL) */
		memcpy(e->bytes + nb, p, dep.len[d]);
		e->dep_pa[d] = dep.pa[d];
		e->dep_len[d] = (uint16_t)dep.len[d];
		nb += dep.len[d];
	}
	e->ndep = dep.n;
	e->k = *k;
	e->ret = ret;
	e->keep = keep;
	e->keep_limit = keep_limit;
	e->nrs = keep ? rs.n : 0;
	for (int i = 0; i < e->nrs; i++) {
		e->rs_pa[i] = rs.pa[i];
		e->rs_len[i] = rs.len[i];
	}
	e->used = ++jm.tick;
	e->valid = true;
}

/* The recorded writes of instructions [a, b) applied again, in order; with m and sh, each
 * one is also checked against the walks of the memo and the bytes the shared verdict read. */
static void wind_forward(struct physmem *pm, const struct trace *t, uint32_t a, uint32_t b, struct wmemo *m,
			 struct shared *sh)
{
	for (uint32_t i = a; i < b; i++) {
		const struct tr_insn *in = &t->insn[i];
		for (uint32_t k = 0; k < in->mem_n; k++) {
			const struct tr_mem *w = &t->mem[in->mem_first + k];
			if (!w->write)
				continue;
			uint8_t *p = mem_at(pm, w->pa, w->size);
			for (unsigned x = 0; p && x < w->size; x++)
				p[x] = (uint8_t)(w->value >> (8 * x));
			if (!m)
				continue;
			mwalk_written(m, w->pa);
			if (sh->valid && rs_hit(&sh->rs, w->pa, w->size))
				sh->valid = false;
		}
	}
}

void window_analyse(const struct trace *t, const struct image *img, unsigned vector, struct physmem *mem,
		    struct wanalysis *out)
{
	out->n = out->unsafe = out->unsafe_delivery = out->unsafe_return = 0; /* the array is large: fill, don't clear */
	if (t->n == 0)
		return;
	struct window w[2 * SC_MAX_ROUNDS + 8];
	int nw = find_windows(t, img, w, (int)(sizeof w / sizeof w[0]));
	/* The handler walk's disassembler, opened once per process (opening one costs more than
	 * the analysis of a whole run) and kept. Without it every return counts as unknown
	 * (unsafe): the analysis never calls a return safe it has not followed. */
	static struct hf h;
	static bool tried, have_cs;
	if (!tried) {
		tried = true;
		if (cs_open(CS_ARCH_X86, CS_MODE_32, &h.cs) == CS_ERR_OK) {
			cs_option(h.cs, CS_OPT_DETAIL, CS_OPT_ON);
			h.in = cs_malloc(h.cs);
			have_cs = h.in != NULL;
		}
	}
	static struct wmemo memo;
	mwalk_forget_all(&memo); /* memory is another run's */
	jm_begin(img, mem, have_cs);
	static struct shared sh;
	sh.valid = false;
	/* SHIMCHECK_NO_SHARE=1 judges every boundary on its own (tests compare the two). */
	const char *ns = getenv("SHIMCHECK_NO_SHARE");
	bool share = !out->safe_reasons && !(ns && *ns && strcmp(ns, "0") != 0);
	h.m = &memo;
	if (nw == 0)
		return;
	/* Wind memory back to the first boundary; then forward, boundary by boundary. Writes
	 * before it are never undone: no boundary sees memory without them. */
	uint32_t applied = w[0].first > 0 ? w[0].first - 1 : 0;
	wind_back(mem, t, applied, t->n);
	for (int x = 0; x < nw; x++) {
		/* From the jump into the shim to the first instruction after the far jump. */
		uint32_t from = w[x].first > 0 ? w[x].first - 1 : 0;
		uint32_t to = w[x].has_jmp ? w[x].last + 1 : w[x].last;
		if (to >= t->n)
			to = t->n - 1;
		for (uint32_t i = from; i <= to && out->n < WINDOW_MAX_BOUNDARIES; i++) {
			wind_forward(mem, t, applied, i, &memo, &sh);
			applied = i > applied ? i : applied;
			struct wboundary *b = &out->b[out->n++];
			b->insn = i;
			b->window = x;
			b->dir = w[x].dir;
			b->ret = WRN_NONE;
			const struct tr_insn *prev = i > 0 ? &t->insn[i - 1] : NULL;
			bool inhibit = prev && (prev->text[0] == 'm' || prev->text[0] == 'p') &&
				       (strncmp(prev->text, "mov ss", 6) == 0 || strncmp(prev->text, "pop ss", 6) == 0);
			if (inhibit) {
				b->verdict = b->delivery = WV_INHIBITED;
				snprintf(b->reason, sizeof b->reason, "delivery waits: the previous instruction loaded SS");
				continue;
			}
			const struct tr_cpu *c = &t->insn[i].cpu;
			struct paging_regs r = regs_at(mem, c);
			mwalk_regs(&memo, &r);
			if (share && shared_fits(&sh, c, memo.cur->gen)) {
				b->verdict = b->delivery = WV_SAFE;
				b->ret = sh.ret;
				b->reason[0] = '\0';
				continue;
			}
			/* Worth sharing only if the next boundary could take the verdict. */
			const struct tr_cpu *nx = i + 1 <= to ? &t->insn[i + 1].cpu : NULL;
			bool next_alike = nx && nx->idtr_base == c->idtr_base && nx->gdtr_base == c->gdtr_base &&
					  nx->gpr[R_ESP] == c->gpr[R_ESP] && nx->cs == c->cs && nx->ss == c->ss &&
					  nx->cr3 == c->cr3 && nx->cr0 == c->cr0 && nx->cr4 == c->cr4;
			struct jkey k;
			const struct jentry *kept = NULL;
			if (share) {
				jkey_of(&k, c, &r, vector, next_alike);
				kept = jm_find(&k, mem);
			}
			bool keep = false;
			uint32_t keep_limit = 0;
			if (kept) {
				b->verdict = b->delivery = WV_SAFE;
				b->ret = kept->ret;
				b->reason[0] = '\0';
				keep = kept->keep;
				keep_limit = kept->keep_limit;
				rs.n = kept->nrs;
				rs.over = false;
				memcpy(rs.pa, kept->rs_pa, (size_t)rs.n * sizeof rs.pa[0]);
				memcpy(rs.len, kept->rs_len, (size_t)rs.n * sizeof rs.len[0]);
			} else {
				rs.on = !out->safe_reasons; /* not the arrays: n says how much of them holds */
				rs.over = false;
				rs.n = 0;
				dep.on = share;
				dep.over = false;
				dep.n = 0;
				dep_walked = 0;
				judge_boundary(&memo, mem, &r, img, c, vector, out->safe_reasons, have_cs, &h, next_alike, b, &keep,
					       &keep_limit);
				rs.on = dep.on = false;
				if (share && b->verdict == WV_SAFE)
					jm_store(&k, mem, b->ret, keep, keep_limit);
			}
			if (keep)
				shared_keep(&sh, c, memo.cur->gen, b->ret, keep_limit);
			out->unsafe += b->verdict == WV_UNSAFE;
			out->unsafe_delivery += b->delivery == WV_UNSAFE;
			out->unsafe_return += b->delivery == WV_SAFE && b->verdict == WV_UNSAFE;
		}
	}
	wind_forward(mem, t, applied, t->n, NULL, NULL);
}
