/*
 * test_check.c: every checker of sim/check.c, HOLDING on a correct synthetic trace and FIRING
 * on a variant that breaks exactly its rule.
 *
 * The fake image mirrors what `shimcheck trace` shows for the literal variant and the
 * default scenario (shim page 0xC8801000 -> pa 0x400000, host CR3 0x40B000, monitor CR3
 * 0x40F000, ...). build() writes a complete round trip per round, instruction by
 * instruction, with the events the engine extracts:
 *
 *   host_call -> host2monitor (pushfd, cli, jmp) -> [h2m window: lgdt lidt busy_clear ltr
 *   mov_cr3 lss ljmp] -> monitor_start/resume -> guest-PTE prologue (write, invlpg) ->
 *   guest_run (the guest reads the shim address) -> monitor2host (cli, write, invlpg, jmp)
 *   -> [m2h window, the same steps] -> restore_to_host -> host_after_call
 *
 * Mutations are options of build() (round 0 only, so messages name window 0) or edits of
 * one recorded instruction afterwards. Tests that expose a bug in the code under test are
 * marked BUG and are expected to fail until it is fixed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "check.h"
#include "mmu.h"
#include "trace.h"

/* ---- the fake image ---------------------------------------------------------------------- */

#define SHIM_LIN 0xC8801000u
#define SHIM_PA 0x00400000u
#define SHIM_PTE_PA 0x00411004u
#define SHIM_PTE 0x00400063u  /* shim frame | D A W P */
#define GUEST_PTE 0x00417067u /* guest.page0 | D A U W P */
#define GUEST_PA 0x00417000u
#define PTE_LIN 0xE0006004u   /* the monitor's pt_window view of SHIM_PTE_PA */

#define H_CR3 0x0040B000u
#define M_CR3 0x0040F000u
#define H_GDT 0xC0102000u
#define H_IDT 0xC0103000u
#define M_GDT 0xE0002000u
#define M_IDT 0xE0003000u
#define H_GDT_LIM 0x1Fu
#define M_GDT_LIM 0x37u
#define IDT_LIM 0x7FFu
#define H_DESC_PA 0x00403018u /* host TSS descriptor (selector 0x18) */
#define M_DESC_PA 0x00408030u /* monitor TSS descriptor (selector 0x30) */
#define H_TSS 0xC0104000u
#define M_TSS 0xE0004000u
#define H_DESC_HI 0xC0008910u /* high dword, type 9 (available) */
#define M_DESC_HI 0xE0008900u
#define DESC_BUSY 0x00000200u /* type 9 -> 0xB */

#define H_STACK_TOP 0xC0102000u
#define M_STACK_TOP 0xE0002000u
#define H_ESP_CALL 0xC0102000u /* host ESP at the CALL host2monitor */
#define H_ESP_SW 0xC0101FC8u   /* host ESP when it jumps into the shim */
#define M_ESP_SW 0xE0001FC8u   /* monitor ESP when it jumps into the shim */

#define A_HOST_MAIN 0xC0100010u
#define A_HOST_CALL 0xC010003Cu
#define A_AFTER_CALL 0xC0100041u
#define A_HOST_DONE 0xC0100044u
#define A_H2M 0xC0100045u
#define A_RESTORE 0xC010008Au
#define A_MON_START 0xE0000010u
#define A_MON_RESUME 0xE00000ACu
#define A_GUEST_RUN 0xE0000033u
#define A_M2H 0xE000004Bu

#define MAXR 4

struct rec {
	uint32_t host_call[MAXR], after_call[MAXR];
	uint32_t h2m_in[MAXR], h2m_first[MAXR], h2m_lidt[MAXR], h2m_clear[MAXR], h2m_ltr[MAXR], h2m_cr3[MAXR];
	uint32_t h2m_lss[MAXR], h2m_jmp[MAXR], mon_land[MAXR];
	uint32_t pro_write[MAXR], guest_run[MAXR], guest_read[MAXR];
	uint32_t m2h_in[MAXR], m2h_first[MAXR], m2h_ltr[MAXR], m2h_cr3[MAXR], m2h_lss[MAXR], m2h_jmp[MAXR], host_land[MAXR];
};

/* Options of build(). Mutations of the h2m window and the prologue apply to round 0 only. */
struct rt {
	int rounds;
	bool ltr_first;        /* LTR before the busy-bit clear */
	bool no_lidt;          /* no LIDT at all */
	bool cr3_twice;        /* MOV CR3 executed twice */
	bool clear_host_desc;  /* the busy-bit clear hits the host's descriptor (not the target's) */
	bool extra_far_jmp;    /* the far jump reports two far_jmp events */
	bool no_invlpg0;       /* the prologue writes the guest PTE but does not INVLPG */
	bool no_write0;        /* the prologue neither writes the guest PTE nor INVLPGs */
	uint64_t guest_write[MAXR]; /* what the prologue of round r writes (0: img.guest_pte) */
	uint64_t guest_sets[MAXR];  /* what the guest's A/D updates leave in the entry (0: nothing) */
};

/* Trace builder: cpu is the state before the next instruction. */
struct tb {
	struct trace *t;
	struct tr_cpu cpu;
	uint64_t pte; /* memory at SHIM_PTE_PA */
};

struct fx {
	struct image img;
	struct shim_code code;
	struct trace t;
	struct verdict v;
	struct tb b;
	struct rec r;
};

static const enum swe literal_order[] = {SWE_LGDT, SWE_LIDT, SWE_BUSY_CLEAR, SWE_LTR, SWE_MOV_CR3, SWE_FAR_JMP};

/* A strict order: every event its own group. */
static void set_order(struct shim_code *c, const enum swe *o, int n)
{
	for (int d = 0; d < 2; d++) {
		c->norder[d] = n;
		for (int k = 0; k < n; k++) {
			c->order[d][k] = o[k];
			c->group[d][k] = k;
		}
	}
}



static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	if (f == NULL)
		return -1;
	struct image *img = &f->img;
	img->shim_lin = SHIM_LIN;
	img->data_lin = SHIM_LIN + 0x800;
	img->shim_pa = SHIM_PA;
	img->shim_pte_pa = SHIM_PTE_PA;
	img->pte_size = 4;
	img->shim_pte = SHIM_PTE;
	img->guest_pte = GUEST_PTE;
	img->rounds = 2;
	img->ep[EP_HOST_MAIN] = A_HOST_MAIN;
	img->ep[EP_HOST_CALL] = A_HOST_CALL;
	img->ep[EP_HOST_AFTER_CALL] = A_AFTER_CALL;
	img->ep[EP_HOST_DONE] = A_HOST_DONE;
	img->ep[EP_HOST2MONITOR] = A_H2M;
	img->ep[EP_RESTORE_TO_HOST] = A_RESTORE;
	img->ep[EP_MONITOR_START] = A_MON_START;
	img->ep[EP_MONITOR_RESUME] = A_MON_RESUME;
	img->ep[EP_GUEST_RUN] = A_GUEST_RUN;
	img->ep[EP_MONITOR2HOST] = A_M2H;
	img->ep[EP_SHIM_M2H] = SHIM_LIN;
	img->ep[EP_SHIM_H2M] = SHIM_LIN + 0x2A;

	struct world *h = &img->w[SP_HOST], *m = &img->w[SP_MON];
	h->regs.cr0 = m->regs.cr0 = CR0_PE | CR0_ET | CR0_WP | CR0_PG;
	h->regs.cr3 = H_CR3;
	m->regs.cr3 = M_CR3;
	h->gdtr = (struct cpu_table){H_GDT, H_GDT_LIM};
	h->idtr = (struct cpu_table){H_IDT, IDT_LIM};
	m->gdtr = (struct cpu_table){M_GDT, M_GDT_LIM};
	m->idtr = (struct cpu_table){M_IDT, IDT_LIM};
	h->cs = 0x08, h->ds = 0x10, h->tr = 0x18;
	m->cs = 0x20, m->ds = 0x28, m->tr = 0x30;
	h->stack_top = H_STACK_TOP;
	m->stack_top = M_STACK_TOP;
	h->tss_desc_pa = H_DESC_PA;
	m->tss_desc_pa = M_DESC_PA;
	/* the physical pages REACH expects behind each world's GDT and IDT */
	h->obj_pa[OBJ_GDT] = H_DESC_PA & ~0xFFFu;
	m->obj_pa[OBJ_GDT] = M_DESC_PA & ~0xFFFu;
	h->obj_pa[OBJ_IDT] = 0x00404000u;
	m->obj_pa[OBJ_IDT] = 0x00409000u;

	set_order(&f->code, literal_order, 6);
	trace_init(&f->t);
	f->b.t = &f->t;
	f->b.pte = SHIM_PTE;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	trace_free(&f->t);
	free(f);
	return 0;
}

/* ---- trace building ------------------------------------------------------------------------ */

static int space_of(uint32_t cr3)
{
	if ((cr3 & PGMASK) == H_CR3)
		return SP_HOST;
	if ((cr3 & PGMASK) == M_CR3)
		return SP_MON;
	return -1;
}

static uint64_t pa_of(uint32_t eip)
{
	uint32_t off = eip & 0xFFFu;

	if ((eip & PGMASK) == SHIM_LIN)
		return SHIM_PA | off;
	if ((eip & PGMASK) == 0xC0100000u)
		return 0x00401000u | off;
	if ((eip & PGMASK) == 0xE0000000u)
		return 0x00406000u | off;
	return GUEST_PA | off;
}

/* Append an instruction at eip with the builder's CPU state; returns its index. */
static uint32_t I(struct tb *b, uint32_t eip, const char *text)
{
	struct tr_insn *in = trace_add_insn(b->t);

	assert_non_null(in);
	b->cpu.eip = eip;
	b->cpu.eip_off = eip - b->cpu.cs_base;
	in->cpu = b->cpu;
	in->space = space_of(b->cpu.cr3);
	in->pa = pa_of(eip);
	in->len = 3;
	in->len_model = 3;
	snprintf(in->text, sizeof in->text, "%s", text);
	return b->t->n - 1;
}

/* A memory access of the last instruction. */
static struct tr_mem *M(struct tb *b, bool write, uint8_t size, uint32_t lin, uint64_t pa, uint64_t value)
{
	struct tr_mem *m = trace_add_mem(b->t);

	assert_non_null(m);
	m->write = write;
	m->size = size;
	m->lin_known = true;
	m->lin = lin;
	m->pa = pa;
	m->value = value;
	return m;
}

/* An event of the last instruction. */
static struct tr_event *E(struct tb *b, enum ev_kind k, uint64_t a, uint64_t bb, uint64_t c)
{
	assert_true(b->t->n > 0);
	struct tr_event *e = trace_add_event(b->t, b->t->n - 1, k);

	assert_non_null(e);
	e->a = a;
	e->b = bb;
	e->c = c;
	return e;
}

/* A write of the monitor paging-structure entry at pa (through lin) that maps the region
 * rlin/rsize, old -> new, with the engine's verdict on the old translation: whether it was
 * present (may be cached), global, and one large-page TLB entry (as sim/engine.c computes). */
static void pte_event(struct tb *b, uint32_t lin, uint64_t pa, uint64_t old, uint64_t new, uint32_t rlin,
		      uint32_t rsize)
{
	M(b, true, 4, lin, pa, new)->old = old;
	struct tr_event *e = E(b, EV_PTE_WRITE, pa, old, new);
	e->space = SP_MON;
	e->size = 4;
	e->lin = rlin;
	e->lin_size = rsize;
	e->old_entry = old; /* 4-byte entries: the write covers the whole entry */
	e->stale = (old & PTE_P) != 0;
	e->large = rsize != PGSIZE && (old & PTE_PS);
	e->global = e->stale && (old & PTE_G) && (rsize == PGSIZE || e->large);
}

static void shim_pte_write(struct tb *b, uint64_t value)
{
	pte_event(b, PTE_LIN, SHIM_PTE_PA, b->pte, value, SHIM_LIN, PGSIZE);
	b->pte = value;
}

static void host_world(struct tr_cpu *c)
{
	memset(c, 0, sizeof *c);
	c->cr0 = CR0_PE | CR0_ET | CR0_WP | CR0_PG;
	c->cr3 = H_CR3;
	c->gdtr_base = H_GDT;
	c->gdtr_limit = H_GDT_LIM;
	c->idtr_base = H_IDT;
	c->idtr_limit = IDT_LIM;
	c->cs = 0x08;
	c->ss = c->ds = c->es = c->fs = c->gs = 0x10;
	c->tr = 0x18;
	c->tr_base = H_TSS;
	c->eflags = FL_RESERVED1 | FL_IF;
	const uint32_t g[8] = {0xA5A50001u, 2, 0xA5A50003u, 0xA5A50002u, H_ESP_CALL, 0xC0100000u, 0xA5A50006u,
			       0xA5A50007u};
	memcpy(c->gpr, g, sizeof g);
}

static void mon_world(struct tr_cpu *c)
{
	host_world(c);
	c->cr3 = M_CR3;
	c->gdtr_base = M_GDT;
	c->gdtr_limit = M_GDT_LIM;
	c->idtr_base = M_IDT;
	c->cs = 0x20;
	c->ss = c->ds = c->es = c->fs = c->gs = 0x28;
	c->tr = 0x30;
	c->tr_base = M_TSS;
	c->eflags = FL_RESERVED1;
	c->gpr[R_ESP] = M_STACK_TOP;
}

/* and byte ptr [eax + ecx + 5], 0xfd on whose TSS descriptor. */
static uint32_t busy_clear(struct tb *b, uint32_t eip, enum sc_space whose)
{
	uint32_t gdt = whose == SP_MON ? M_GDT : H_GDT;
	uint64_t desc = whose == SP_MON ? M_DESC_PA : H_DESC_PA;
	uint16_t sel = whose == SP_MON ? 0x30 : 0x18;
	uint32_t hi = whose == SP_MON ? M_DESC_HI : H_DESC_HI;
	uint32_t i = I(b, eip, "and byte ptr [eax + ecx + 5], 0xfd");

	M(b, false, 1, gdt + sel + 5, desc + 5, 0x8B);
	M(b, true, 1, gdt + sel + 5, desc + 5, 0x89)->old = 0x8B;
	E(b, EV_BUSY_CLEAR, desc, whose, hi);
	return i;
}

/* ltr of whose TSS; busy: the descriptor LTR reads still has type 0xB. */
static uint32_t ltr(struct tb *b, uint32_t eip, enum sc_space whose, bool busy)
{
	uint32_t gdt = whose == SP_MON ? M_GDT : H_GDT;
	uint64_t desc = whose == SP_MON ? M_DESC_PA : H_DESC_PA;
	uint16_t sel = whose == SP_MON ? 0x30 : 0x18;
	uint32_t hi = whose == SP_MON ? M_DESC_HI : H_DESC_HI;
	uint32_t dfield = whose == SP_MON ? 0x48 : 0x18;
	uint32_t i = I(b, eip, whose == SP_MON ? "ltr word ptr [ebx + 0x48]" : "ltr word ptr [ebx + 0x18]");

	M(b, false, 2, SHIM_LIN + 0x800 + dfield, SHIM_PA + 0x800 + dfield, sel);
	M(b, false, 4, gdt + sel, desc, 0x40000067u);
	M(b, false, 4, gdt + sel + 4, desc + 4, busy ? hi | DESC_BUSY : hi);
	M(b, true, 4, gdt + sel + 4, desc + 4, hi | DESC_BUSY)->old = busy ? hi | DESC_BUSY : hi;
	E(b, EV_BUSY_SET, desc, whose, 0);
	E(b, EV_LTR, sel, whose == SP_MON ? M_TSS : H_TSS, 0);
	b->cpu.tr = sel;
	b->cpu.tr_base = whose == SP_MON ? M_TSS : H_TSS;
	return i;
}

static void h2m(struct fx *f, const struct rt *o, int k)
{
	struct tb *b = &f->b;
	struct rec *r = &f->r;
	bool mut = k == 0;

	r->h2m_first[k] = I(b, SHIM_LIN + 0x2A, "lgdt [ebx + 0x38]");
	M(b, false, 2, SHIM_LIN + 0x838, SHIM_PA + 0x838, M_GDT_LIM);
	M(b, false, 4, SHIM_LIN + 0x83A, SHIM_PA + 0x83A, M_GDT);
	E(b, EV_SHIM_ENTER, SHIM_LIN + 0x2A, 1, 0)->space = 1;
	E(b, EV_LGDT, M_GDT, M_GDT_LIM, 0);
	b->cpu.gdtr_base = M_GDT;
	b->cpu.gdtr_limit = M_GDT_LIM;
	if (!(mut && o->no_lidt)) {
		r->h2m_lidt[k] = I(b, SHIM_LIN + 0x2E, "lidt [ebx + 0x40]");
		E(b, EV_LIDT, M_IDT, IDT_LIM, 0);
		b->cpu.idtr_base = M_IDT;
		b->cpu.idtr_limit = IDT_LIM;
	}
	I(b, SHIM_LIN + 0x32, "mov eax, dword ptr [ebx + 0x3a]");
	if (mut && o->ltr_first) {
		r->h2m_ltr[k] = ltr(b, SHIM_LIN + 0x3F, SP_MON, true);
		r->h2m_clear[k] = busy_clear(b, SHIM_LIN + 0x44, SP_MON);
	} else if (mut && o->clear_host_desc) {
		r->h2m_clear[k] = busy_clear(b, SHIM_LIN + 0x3F, SP_HOST);
		r->h2m_ltr[k] = ltr(b, SHIM_LIN + 0x44, SP_MON, true);
	} else {
		r->h2m_clear[k] = busy_clear(b, SHIM_LIN + 0x3F, SP_MON);
		r->h2m_ltr[k] = ltr(b, SHIM_LIN + 0x44, SP_MON, false);
	}
	I(b, SHIM_LIN + 0x48, "mov eax, dword ptr [ebx + 0x30]");
	r->h2m_cr3[k] = I(b, SHIM_LIN + 0x4B, "mov cr3, eax");
	E(b, EV_MOV_CR3, H_CR3, M_CR3, 0);
	b->cpu.cr3 = M_CR3;
	if (mut && o->cr3_twice) {
		I(b, SHIM_LIN + 0x4B, "mov cr3, eax");
		E(b, EV_MOV_CR3, M_CR3, M_CR3, 0);
	}
	uint32_t esp = k == 0 ? M_STACK_TOP : M_ESP_SW;
	r->h2m_lss[k] = I(b, SHIM_LIN + 0x4E, "lss esp, ptr [ebx + 0x50]");
	E(b, EV_LSS, 0x28, esp, 0);
	b->cpu.ss = 0x28;
	b->cpu.gpr[R_ESP] = esp;
	uint32_t target = k == 0 ? A_MON_START : A_MON_RESUME;
	r->h2m_jmp[k] = I(b, SHIM_LIN + 0x52, "ljmp [ebx + 0x58]");
	E(b, EV_FAR_JMP, 0x20, target, target);
	if (mut && o->extra_far_jmp)
		E(b, EV_FAR_JMP, 0x20, target, target);
	b->cpu.cs = 0x20;
}

static void monitor(struct fx *f, const struct rt *o, int k)
{
	struct tb *b = &f->b;
	struct rec *r = &f->r;

	r->mon_land[k] = I(b, k == 0 ? A_MON_START : A_MON_RESUME, k == 0 ? "mov ax, ss" : "pop gs");
	b->cpu.ds = b->cpu.es = b->cpu.fs = b->cpu.gs = 0x28;
	b->cpu.gpr[R_ESI] = 0xE0005800u; /* the data area through the shim alias */
	b->cpu.gpr[R_EDX] = PTE_LIN;
	b->cpu.gpr[R_EDI] = SHIM_LIN;
	if (!(k == 0 && o->no_write0)) {
		r->pro_write[k] = I(b, 0xE00000C7u, "mov dword ptr [edx], eax");
		shim_pte_write(b, o->guest_write[k] ? o->guest_write[k] : f->img.guest_pte);
		if (!(k == 0 && o->no_invlpg0)) {
			I(b, 0xE00000CCu, "invlpg byte ptr [edi]");
			E(b, EV_INVLPG, SHIM_LIN, 0, 0);
		}
	}
	I(b, 0xE00000CFu, "ret");
	b->cpu.eflags |= FL_IF; /* the guest runs with interrupts enabled */
	r->guest_run[k] = I(b, A_GUEST_RUN, "mov edi, dword ptr [esi + 0x64]");
	E(b, EV_GUEST_RUN, 0, 0, 0);
	r->guest_read[k] = I(b, 0xE0000036u, "mov eax, dword ptr [edi]");
	M(b, false, 4, SHIM_LIN, GUEST_PA, 0x0B0F0B0Fu);
	if (o->guest_sets[k])
		b->pte = o->guest_sets[k]; /* the CPU set A/D in the guest's entry: no event */
	I(b, A_M2H, "pushfd");
	I(b, A_M2H + 1, "cli");
	b->cpu.eflags &= ~FL_IF;
	I(b, 0xE0000088u, "mov dword ptr [edx], eax");
	shim_pte_write(b, f->img.shim_pte);
	I(b, 0xE000009Bu, "invlpg byte ptr [edi]");
	E(b, EV_INVLPG, SHIM_LIN, 0, 0);
	b->cpu.gpr[R_ESP] = M_ESP_SW;
	b->cpu.gpr[R_EBX] = SHIM_LIN + 0x800;
	r->m2h_in[k] = I(b, 0xE00000A6u, "jmp dword ptr [esi + 0x88]");
}

static void m2h(struct fx *f, int k)
{
	struct tb *b = &f->b;
	struct rec *r = &f->r;

	r->m2h_first[k] = I(b, SHIM_LIN, "lgdt [ebx + 8]");
	E(b, EV_SHIM_ENTER, SHIM_LIN, 0, 0)->space = 0;
	E(b, EV_LGDT, H_GDT, H_GDT_LIM, 0);
	b->cpu.gdtr_base = H_GDT;
	b->cpu.gdtr_limit = H_GDT_LIM;
	I(b, SHIM_LIN + 0x04, "lidt [ebx + 0x10]");
	E(b, EV_LIDT, H_IDT, IDT_LIM, 0);
	b->cpu.idtr_base = H_IDT;
	b->cpu.idtr_limit = IDT_LIM;
	busy_clear(b, SHIM_LIN + 0x15, SP_HOST);
	r->m2h_ltr[k] = ltr(b, SHIM_LIN + 0x1A, SP_HOST, false);
	r->m2h_cr3[k] = I(b, SHIM_LIN + 0x20, "mov cr3, eax");
	E(b, EV_MOV_CR3, M_CR3, H_CR3, 0);
	b->cpu.cr3 = H_CR3;
	r->m2h_lss[k] = I(b, SHIM_LIN + 0x23, "lss esp, ptr [ebx + 0x20]");
	E(b, EV_LSS, 0x10, H_ESP_SW, 0);
	b->cpu.ss = 0x10;
	b->cpu.gpr[R_ESP] = H_ESP_SW;
	r->m2h_jmp[k] = I(b, SHIM_LIN + 0x27, "ljmp [ebx + 0x28]");
	E(b, EV_FAR_JMP, 0x08, A_RESTORE, A_RESTORE);
	b->cpu.cs = 0x08;
}

/* A complete run of o->rounds correct round trips (unless o asks for a mutation). */
static void build(struct fx *f, const struct rt *o)
{
	struct tb *b = &f->b;
	struct rec *r = &f->r;

	assert_true(o->rounds >= 1 && o->rounds <= MAXR);
	f->img.rounds = (uint32_t)o->rounds;
	host_world(&b->cpu);
	b->cpu.gpr[R_ECX] = (uint32_t)o->rounds;
	I(b, A_HOST_MAIN, "call 0xc0100015");
	for (int k = 0; k < o->rounds; k++) {
		b->cpu.gpr[R_ESP] = H_ESP_CALL;
		b->cpu.gpr[R_EBX] = 0xA5A50002u;
		b->cpu.eflags = FL_RESERVED1 | FL_IF;
		r->host_call[k] = I(b, A_HOST_CALL, "call 0xc0100045");
		M(b, true, 4, H_ESP_CALL - 4, 0x00402FFCu, A_AFTER_CALL);
		struct tr_cpu saved = b->cpu;
		b->cpu.gpr[R_ESP] -= 4;
		I(b, A_H2M, "pushfd");
		b->cpu.gpr[R_ESP] -= 4;
		I(b, A_H2M + 1, "cli");
		b->cpu.eflags &= ~FL_IF;
		b->cpu.gpr[R_ESP] = H_ESP_SW;
		b->cpu.gpr[R_EBX] = SHIM_LIN + 0x800;
		r->h2m_in[k] = I(b, 0xC0100084u, "jmp dword ptr [ebx + 0x8c]");
		h2m(f, o, k);
		monitor(f, o, k);
		m2h(f, k);
		r->host_land[k] = I(b, A_RESTORE, "pop gs");
		b->cpu.ds = b->cpu.es = b->cpu.fs = b->cpu.gs = 0x10;
		I(b, 0xC0100090u, "popal");
		I(b, 0xC0100091u, "popfd");
		b->cpu = saved;
		b->cpu.gpr[R_ESP] = H_ESP_CALL - 4;
		I(b, 0xC0100092u, "ret");
		b->cpu.gpr[R_ESP] = H_ESP_CALL;
		r->after_call[k] = I(b, A_AFTER_CALL, "dec ecx");
		b->cpu.gpr[R_ECX]--;
		I(b, 0xC0100042u, "jne 0xc0100037");
	}
	f->t.final = b->cpu;
	f->t.final.eip = f->t.final.eip_off = A_HOST_DONE;
	f->t.end = END_DONE;
	snprintf(f->t.end_detail, sizeof f->t.end_detail, "reached host_done");
}

static void build_default(struct fx *f)
{
	struct rt o = {.rounds = 2};

	build(f, &o);
}

/* Keep instructions [0, n): their accesses and events stay, later ones go. */
static void cut(struct fx *f, uint32_t n)
{
	struct trace *t = &f->t;

	assert_true(n >= 1 && n <= t->n);
	t->n = n;
	t->nmem = t->insn[n - 1].mem_first + t->insn[n - 1].mem_n;
	t->nev = t->insn[n - 1].ev_first + t->insn[n - 1].ev_n;
	f->b.cpu = t->insn[n - 1].cpu;
}

/* ---- verdict helpers -------------------------------------------------------------------- */

static void run_all(struct fx *f)
{
	check_all(&f->t, &f->img, &f->code, &f->v);
}

static void clear_verdict(struct fx *f)
{
	memset(&f->v, 0, sizeof f->v);
}

static void print_verdict(const struct verdict *v)
{
	int n = v->n < MAX_VIOLATIONS ? v->n : MAX_VIOLATIONS;
	for (int i = 0; i < n; i++)
		print_message("#   %s #%u: %s\n", rule_id(v->v[i].rule), v->v[i].insn, v->v[i].msg);
}

/* counts[r] == n for the rules listed (terminated by R_N), 0 for every other rule. */
static void assert_counts(const struct verdict *v, const int *want)
{
	uint32_t total = 0;
	for (int r = 0; r < R_N; r++) {
		int expect = 0;
		for (const int *w = want; *w != R_N; w += 2)
			if (*w == r)
				expect = w[1];
		if (v->counts[r] != (uint32_t)expect) {
			print_verdict(v);
			fail_msg("rule %s: %u violations, expected %d", rule_id((enum rule)r), v->counts[r], expect);
		}
		total += v->counts[r];
	}
	assert_int_equal(v->n, total);
}

#define EXPECT(v, ...) assert_counts((v), (const int[]){__VA_ARGS__, R_N})
#define EXPECT_NONE(v) assert_counts((v), (const int[]){R_N})

static const struct violation *first_of(const struct verdict *v, enum rule r)
{
	int n = v->n < MAX_VIOLATIONS ? v->n : MAX_VIOLATIONS;
	for (int i = 0; i < n; i++)
		if (v->v[i].rule == r)
			return &v->v[i];
	print_verdict(v);
	fail_msg("no %s violation", rule_id(r));
	return NULL;
}

#define assert_contains(hay, needle)                                                      \
	do {                                                                              \
		const char *h_ = (hay);                                                   \
		if (strstr(h_, (needle)) == NULL)                                         \
			fail_msg("\"%s\"\n  does not contain \"%s\"", h_, (needle));      \
	} while (0)

/* ---- the correct round trip, and find_windows ------------------------------------------------ */

static void round_trip_2_rounds_holds_every_rule(void **state)
{
	struct fx *f = *state;

	build_default(f);
	run_all(f);
	EXPECT_NONE(&f->v);
	assert_int_equal(f->v.windows[DIR_H2M], 2);
	assert_int_equal(f->v.windows[DIR_M2H], 2);
	/* Not vacuous: the trace carries what the rules look at. */
	assert_int_equal(f->t.n, 1 + 2 * 37);
	assert_true(f->t.insn[f->r.guest_run[1]].cpu.eflags & FL_IF);   /* IF=1 outside windows is fine */
	assert_int_equal(f->t.insn[f->r.mon_land[1]].cpu.eip, A_MON_RESUME);
	assert_int_equal(f->t.insn[f->r.host_land[1]].cpu.gpr[R_ESP], H_ESP_SW);
}

static void round_trip_1_round_holds_every_rule(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 1};

	build(f, &o);
	run_all(f);
	EXPECT_NONE(&f->v);
	assert_int_equal(f->v.windows[DIR_H2M], 1);
	assert_int_equal(f->v.windows[DIR_M2H], 1);
}

static void find_windows_4_alternating_windows_end_at_far_jumps(void **state)
{
	struct fx *f = *state;
	struct window w[8];

	build_default(f);
	assert_int_equal(find_windows(&f->t, &f->img, w, 8), 4);
	for (int k = 0; k < 2; k++) {
		const struct window *a = &w[2 * k], *b = &w[2 * k + 1];
		assert_int_equal(a->dir, DIR_H2M);
		assert_int_equal(a->first, f->r.h2m_first[k]);
		assert_int_equal(a->last, f->r.h2m_jmp[k]);
		assert_true(a->has_jmp);
		assert_int_equal(b->dir, DIR_M2H);
		assert_int_equal(b->first, f->r.m2h_first[k]);
		assert_int_equal(b->last, f->r.m2h_jmp[k]);
		assert_true(b->has_jmp);
	}
	assert_int_equal(f->r.h2m_first[0], f->r.h2m_in[0] + 1);
	assert_int_equal(f->r.m2h_first[1], f->r.m2h_in[1] + 1);
}

static void find_windows_stops_at_max(void **state)
{
	struct fx *f = *state;
	struct window w[4];

	build_default(f);
	memset(w, 0xEE, sizeof w);
	assert_int_equal(find_windows(&f->t, &f->img, w, 3), 3);
	assert_int_equal(w[2].first, f->r.h2m_first[1]);
	assert_int_equal(w[3].first, 0xEEEEEEEEu); /* not written */
	assert_int_equal(find_windows(&f->t, &f->img, w, 0), 0);
}

static void find_windows_cut_window_has_no_far_jmp_and_ends_at_last_insn(void **state)
{
	struct fx *f = *state;
	struct window w[4];

	build_default(f);
	cut(f, f->r.h2m_lss[0] + 1); /* the run stops before the far jump */
	assert_int_equal(find_windows(&f->t, &f->img, w, 4), 1);
	assert_int_equal(w[0].dir, DIR_H2M);
	assert_int_equal(w[0].first, f->r.h2m_first[0]);
	assert_int_equal(w[0].last, f->r.h2m_lss[0]);
	assert_false(w[0].has_jmp);
}

static void find_windows_empty_trace_has_none(void **state)
{
	struct fx *f = *state;
	struct window w[2];

	assert_int_equal(find_windows(&f->t, &f->img, w, 2), 0);
	run_all(f); /* END_DONE with rounds=2 and no switches at all */
	EXPECT(&f->v, R_ROUNDS, 1);
	assert_string_equal(first_of(&f->v, R_ROUNDS)->msg, "0 host->monitor and 0 monitor->host switches, for 2 round trips");
	assert_int_equal(first_of(&f->v, R_ROUNDS)->insn, UINT32_MAX);
}

/* ---- ORDER ---------------------------------------------------------------------------------- */

static void order_ltr_before_busy_clear_fires(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 2, .ltr_first = true};

	build(f, &o);
	check_order(&f->t, &f->img, &f->code, &f->v);
	EXPECT(&f->v, R_ORDER, 1);
	assert_string_equal(first_of(&f->v, R_ORDER)->msg,
			    "host->monitor window 0: ltr where busy_clear is due (seen: lgdt lidt ltr busy_clear mov_cr3 far_jmp)");
	assert_int_equal(first_of(&f->v, R_ORDER)->insn, f->r.h2m_ltr[0]);
}

static void order_missing_lidt_fires_and_idtr_arrives_wrong(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 2, .no_lidt = true};

	build(f, &o);
	run_all(f);
	EXPECT(&f->v, R_ORDER, 1, R_ARRIVAL, 1);
	assert_string_equal(first_of(&f->v, R_ORDER)->msg,
			    "host->monitor window 0: busy_clear where lidt is due (seen: lgdt busy_clear ltr mov_cr3 far_jmp)");
	assert_int_equal(first_of(&f->v, R_ORDER)->insn, f->r.h2m_clear[0]);
	assert_string_equal(first_of(&f->v, R_ARRIVAL)->msg,
			    "host->monitor window 0 arrives with IDTR=c0103000/7ff(want e0003000/7ff)");
}

static void order_mov_cr3_twice_fires(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 2, .cr3_twice = true};

	build(f, &o);
	run_all(f);
	EXPECT(&f->v, R_ORDER, 1);
	assert_string_equal(first_of(&f->v, R_ORDER)->msg,
			    "host->monitor window 0: mov_cr3 where far_jmp is due (seen: lgdt lidt busy_clear ltr mov_cr3 mov_cr3 far_jmp)");
	assert_int_equal(first_of(&f->v, R_ORDER)->insn, f->r.h2m_cr3[0] + 1);
}

static void order_extra_far_jmp_after_sequence_fires(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 2, .extra_far_jmp = true};

	build(f, &o);
	check_order(&f->t, &f->img, &f->code, &f->v);
	EXPECT(&f->v, R_ORDER, 1);
	assert_string_equal(first_of(&f->v, R_ORDER)->msg,
			    "host->monitor window 0: extra far_jmp after the declared sequence "
			    "(seen: lgdt lidt busy_clear ltr mov_cr3 far_jmp far_jmp)");
}

/* A busy-bit clear of the host's descriptor in the host->monitor window is not the step: it
 * drops out of what was seen, and the first difference is the LTR. */
static void order_busy_clear_of_wrong_world_is_not_the_step(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 2, .clear_host_desc = true};

	build(f, &o);
	check_order(&f->t, &f->img, &f->code, &f->v);
	EXPECT(&f->v, R_ORDER, 1);
	assert_string_equal(first_of(&f->v, R_ORDER)->msg,
			    "host->monitor window 0: ltr where busy_clear is due (seen: lgdt lidt ltr mov_cr3 far_jmp)");
}

/* As a real run shows it: LTR then finds the monitor's descriptor busy, #GP ends the run, and
 * the busy-bit clear "never happens". */
static void order_busy_clear_of_wrong_world_then_gp_never_happens(void **state)
{
	struct fx *f = *state;
	struct tb *b = &f->b;

	build_default(f);
	cut(f, f->r.h2m_clear[0]); /* up to the instruction before the clear */
	busy_clear(b, SHIM_LIN + 0x3F, SP_HOST);
	uint32_t i = I(b, SHIM_LIN + 0x44, "ltr word ptr [ebx + 0x48]");
	M(b, false, 2, SHIM_LIN + 0x848, SHIM_PA + 0x848, 0x30);
	M(b, false, 4, M_GDT + 0x30, M_DESC_PA, 0x40000067u);
	M(b, false, 4, M_GDT + 0x34, M_DESC_PA + 4, M_DESC_HI | DESC_BUSY);
	E(b, EV_FAULT, T_GP, 0x30, 0)->size = 1;
	f->t.end = END_FAULT;
	run_all(f);
	EXPECT(&f->v, R_ORDER, 1, R_TSS_BUSY, 1, R_FAULT, 1);
	assert_string_equal(first_of(&f->v, R_ORDER)->msg, "host->monitor window 0: busy_clear never happens (seen: lgdt lidt)");
	assert_int_equal(first_of(&f->v, R_ORDER)->insn, i);
	assert_string_equal(first_of(&f->v, R_TSS_BUSY)->msg,
			    "LTR finds the monitor TSS descriptor with type 0xB (busy), not 0x9 (available)");
	assert_contains(first_of(&f->v, R_FAULT)->msg, "#GP (vector 13)");
}

static void order_declared_lss_is_checked_undeclared_lss_ignored(void **state)
{
	struct fx *f = *state;
	const enum swe with_lss[] = {SWE_LGDT, SWE_LIDT, SWE_BUSY_CLEAR, SWE_LTR, SWE_MOV_CR3, SWE_LSS, SWE_FAR_JMP};
	const enum swe lss_first[] = {SWE_LSS, SWE_LGDT, SWE_LIDT, SWE_BUSY_CLEAR, SWE_LTR, SWE_MOV_CR3, SWE_FAR_JMP};

	build_default(f);
	/* The literal order does not declare lss: the LSS events are ignored (held above too). */
	check_order(&f->t, &f->img, &f->code, &f->v);
	EXPECT_NONE(&f->v);
	set_order(&f->code, with_lss, 7);
	check_order(&f->t, &f->img, &f->code, &f->v);
	EXPECT_NONE(&f->v);
	set_order(&f->code, lss_first, 7);
	check_order(&f->t, &f->img, &f->code, &f->v);
	EXPECT(&f->v, R_ORDER, 4); /* every window */
	assert_string_equal(first_of(&f->v, R_ORDER)->msg,
			    "host->monitor window 0: lgdt where lss is due (seen: lgdt lidt busy_clear ltr mov_cr3 lss far_jmp)");
}

/* ---- INVLPG / STALE-TLB on small monitor-space traces ---------------------------------------- */

#define G_LIN 0x00400000u     /* guest.maps[0] */
#define G_PTE_PA 0x00412000u  /* its PTE */
#define G_OLD 0x00418067u
#define G_NEW 0x00419067u

static void tlb_begin(struct fx *f)
{
	mon_world(&f->b.cpu);
}

/* Instruction 0..: a monitor write of the PTE of lin. */
static uint32_t tlb_write(struct fx *f, uint64_t old, uint64_t new, uint32_t lin, uint32_t size)
{
	uint32_t i = I(&f->b, 0xE0000100u + 4 * f->t.n, "mov dword ptr [edx], eax");
	pte_event(&f->b, 0xE0006000u, G_PTE_PA, old, new, lin, size);
	return i;
}

static uint32_t tlb_read(struct fx *f, uint32_t lin)
{
	uint32_t i = I(&f->b, 0xE0000100u + 4 * f->t.n, "mov eax, dword ptr [edi]");
	M(&f->b, false, 4, lin, GUEST_PA | (lin & 0xFFF), 0x12345678u);
	return i;
}

static void tlb_invlpg(struct fx *f, uint32_t lin)
{
	I(&f->b, 0xE0000100u + 4 * f->t.n, "invlpg byte ptr [edi]");
	E(&f->b, EV_INVLPG, lin, 0, 0);
}

/* MOV CRn, old -> new. */
static void tlb_cr(struct fx *f, enum ev_kind k, uint32_t old, uint32_t new)
{
	I(&f->b, 0xE0000100u + 4 * f->t.n, k == EV_MOV_CR3 ? "mov cr3, eax" : k == EV_MOV_CR4 ? "mov cr4, eax" : "mov cr0, eax");
	E(&f->b, k, old, new, 0);
}

static void tlb_run(struct fx *f)
{
	clear_verdict(f);
	check_tlb(&f->t, &f->img, &f->v);
}

static void invlpg_read_after_pte_write_without_invlpg_fires(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	I(&f->b, 0xE0000200u, "nop");
	uint32_t r = tlb_read(f, G_LIN + 0x10);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
	assert_int_equal(first_of(&f->v, R_INVLPG)->insn, r);
	assert_string_equal(first_of(&f->v, R_INVLPG)->msg,
			    "read at 0x00400010 through the entry written at #0 (pa 0x412000) with no INVLPG or CR3 reload since");
}

static void invlpg_fetch_after_pte_write_without_invlpg_fires(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	uint32_t r = I(&f->b, G_LIN + 0xABC, "nop");
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
	assert_int_equal(first_of(&f->v, R_INVLPG)->insn, r);
	assert_contains(first_of(&f->v, R_INVLPG)->msg, "fetch at 0x00400abc through the entry written at #0");
}

static void invlpg_write_after_pte_write_without_invlpg_fires_once(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	I(&f->b, 0xE0000300u, "mov dword ptr [edi], eax");
	M(&f->b, true, 4, G_LIN + 0xFFC, GUEST_PA + 0xFFC, 1);
	tlb_read(f, G_LIN); /* the same write is reported once */
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
	assert_contains(first_of(&f->v, R_INVLPG)->msg, "write at 0x00400ffc");
}

static void invlpg_between_write_and_use_holds(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	tlb_invlpg(f, G_LIN + 0x123); /* any address in the page */
	tlb_read(f, G_LIN + 0x10);
	I(&f->b, G_LIN, "nop");
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

static void invlpg_of_another_page_does_not_help(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	tlb_invlpg(f, G_LIN + PGSIZE);
	tlb_read(f, G_LIN + 0x10);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
}

static void invlpg_use_outside_region_or_in_other_space_holds(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	tlb_read(f, G_LIN + PGSIZE);  /* next page */
	tlb_read(f, G_LIN - 4);       /* previous page */
	f->b.cpu.cr3 = H_CR3;         /* the host's G_LIN is another translation */
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT_NONE(&f->v);
	/* ... but in the monitor space it is the changed one. */
	f->b.cpu.cr3 = M_CR3;
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
}

static void invlpg_unchanged_value_or_unknown_region_is_not_pending(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_OLD, G_LIN, PGSIZE); /* rewrites the same value */
	tlb_write(f, G_OLD, G_NEW, 0, 0);           /* no linear region known */
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

/* Only a present translation can be cached (SDM vol. 3, 4.10.4.3): P 0 -> 1 needs no INVLPG. */
static void invlpg_write_of_not_present_entry_is_not_pending(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD & ~PTE_P, G_NEW, G_LIN, PGSIZE);
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT_NONE(&f->v);
	/* the reverse, P 1 -> 0, does */
	tlb_write(f, G_NEW, G_NEW & ~PTE_P, G_LIN, PGSIZE);
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
}

static void invlpg_mov_cr3_drops_non_global_entries(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	f->b.cpu.cr4 = CR4_PGE;
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	tlb_cr(f, EV_MOV_CR3, M_CR3, M_CR3);
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

static void invlpg_global_entry_survives_mov_cr3_with_pge(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	f->b.cpu.cr4 = CR4_PGE;
	tlb_write(f, G_OLD | PTE_G, G_NEW, G_LIN, PGSIZE); /* the old entry was global */
	tlb_cr(f, EV_MOV_CR3, M_CR3, M_CR3);
	tlb_read(f, G_LIN + 8);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
	assert_contains(first_of(&f->v, R_INVLPG)->msg, "read at 0x00400008 through the entry written at #0");
}

static void invlpg_global_entry_is_dropped_by_mov_cr3_without_pge_or_by_invlpg(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	f->b.cpu.cr4 = 0;
	tlb_write(f, G_OLD | PTE_G, G_NEW, G_LIN, PGSIZE);
	tlb_cr(f, EV_MOV_CR3, M_CR3, M_CR3);
	tlb_read(f, G_LIN);
	f->b.cpu.cr4 = CR4_PGE;
	tlb_write(f, G_OLD | PTE_G, G_NEW, G_LIN, PGSIZE);
	tlb_invlpg(f, G_LIN);
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

static void invlpg_mov_cr4_changing_pge_flushes_global_entries(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	f->b.cpu.cr4 = CR4_PGE;
	tlb_write(f, G_OLD | PTE_G, G_NEW, G_LIN, PGSIZE);
	tlb_cr(f, EV_MOV_CR4, CR4_PGE, 0);
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

static void invlpg_mov_cr4_keeping_pge_flushes_nothing(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	f->b.cpu.cr4 = CR4_PGE;
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	tlb_cr(f, EV_MOV_CR4, CR4_PGE, CR4_PGE | CR4_PSE);
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
}

static void invlpg_mov_cr0_flushes_only_when_pg_changes(void **state)
{
	struct fx *f = *state;
	const uint32_t cr0 = CR0_PE | CR0_ET | CR0_PG;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	tlb_cr(f, EV_MOV_CR0, cr0, cr0 | CR0_WP); /* WP only */
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
	tlb_write(f, G_NEW, G_OLD, G_LIN, PGSIZE);
	tlb_cr(f, EV_MOV_CR0, cr0, cr0 & ~CR0_PG); /* paging off */
	tlb_read(f, G_LIN);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1); /* still only the first write */
}

/* A large-page PDE is one TLB entry: INVLPG of any address inside drops it. */
static void invlpg_large_page_pde_dropped_by_invlpg_anywhere_inside(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	f->b.cpu.cr4 = CR4_PSE;
	tlb_write(f, 0x00800083u, 0x00C00083u, 0x00800000u, PSE_SIZE);
	tlb_invlpg(f, 0x00B00000u);
	tlb_read(f, 0x00801000u);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

/* A PDE that points to a page table: INVLPG of one page leaves the others of its 4 MiB. */
static void invlpg_page_table_pde_needs_cr3_reload_for_other_pages(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, 0x00413027u, 0x00414027u, 0x00800000u, PSE_SIZE);
	tlb_invlpg(f, 0x00800000u);
	uint32_t r = tlb_read(f, 0x00A01000u);
	tlb_run(f);
	EXPECT(&f->v, R_INVLPG, 1);
	assert_int_equal(first_of(&f->v, R_INVLPG)->insn, r);
	/* and a CR3 reload settles it */
	cut(f, 2);
	tlb_cr(f, EV_MOV_CR3, M_CR3, M_CR3);
	tlb_read(f, 0x00A01000u);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

/* BUG (check_tlb): after a PDE that points to a page table changes, INVLPG of page X removes
 * X's TLB entry and every paging-structure-cache entry (SDM vol. 3, 4.10.4.1), so using X
 * afterwards is correct; the checker keeps the whole 4 MiB region pending and reports it.
 * The engine emits such a region-wide event when the old table mapped more than
 * PDE_SCAN_MAX (16) pages (sim/engine.c pte_events); below that it emits one 4 KiB event
 * per page, which INVLPG handles. */
static void invlpg_page_is_safe_after_page_table_pde_change(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, 0x00413027u, 0x00414027u, 0x00800000u, PSE_SIZE);
	tlb_invlpg(f, 0x00A01000u);
	tlb_read(f, 0x00A01000u); /* the very page just invalidated */
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

/* ---- TLB-GLOBAL ------------------------------------------------------------------------------ */

#define GL_LIN 0x00400000u
#define GL_PA 0x00500000u /* where the host's global entry maps GL_LIN */

/* The host, with CR4.PGE=1 and one global mapping, switches to the monitor space. */
static uint32_t global_begin(struct fx *f, uint32_t cr4)
{
	f->img.w[SP_HOST].nglobal = 1;
	f->img.w[SP_HOST].global[0].lin = GL_LIN;
	f->img.w[SP_HOST].global[0].size = PGSIZE;
	f->img.w[SP_HOST].global[0].pa = GL_PA;
	host_world(&f->b.cpu);
	f->b.cpu.cr4 = cr4;
	uint32_t i = I(&f->b, SHIM_LIN + 0x4B, "mov cr3, eax");
	E(&f->b, EV_MOV_CR3, H_CR3, M_CR3, 0);
	f->b.cpu.cr3 = M_CR3;
	return i;
}

static void global_host_entry_surviving_mov_cr3_fires_in_monitor(void **state)
{
	struct fx *f = *state;

	global_begin(f, CR4_PGE);
	uint32_t r = tlb_read(f, GL_LIN + 0x10); /* the monitor maps it to GUEST_PA */
	tlb_read(f, GL_LIN + 0x20);              /* one report per entry */
	tlb_run(f);
	EXPECT(&f->v, R_GLOBAL, 1);
	assert_int_equal(first_of(&f->v, R_GLOBAL)->insn, r);
	assert_string_equal(first_of(&f->v, R_GLOBAL)->msg,
			    "0x00400010 may still translate to 0x500010 through the host's global entry that survived MOV CR3 "
			    "at #0 (CR4.PGE=1); this space maps it to 0x417010");
}

static void global_host_entry_fetch_fires(void **state)
{
	struct fx *f = *state;

	global_begin(f, CR4_PGE);
	I(&f->b, GL_LIN + 0x100, "nop");
	tlb_run(f);
	EXPECT(&f->v, R_GLOBAL, 1);
	assert_contains(first_of(&f->v, R_GLOBAL)->msg, "0x00400100 may still translate to 0x500100");
}

static void global_entry_holds_without_pge_or_same_frame_or_after_invlpg(void **state)
{
	struct fx *f = *state;

	global_begin(f, 0); /* CR4.PGE=0: MOV CR3 flushes it */
	tlb_read(f, GL_LIN);
	tlb_run(f);
	EXPECT_NONE(&f->v);

	trace_reset(&f->t);
	global_begin(f, CR4_PGE);
	I(&f->b, 0xE0000100u, "mov eax, dword ptr [edi]");
	M(&f->b, false, 4, GL_LIN + 8, GL_PA + 8, 0); /* the monitor maps it to the same frame */
	tlb_run(f);
	EXPECT_NONE(&f->v);

	trace_reset(&f->t);
	global_begin(f, CR4_PGE);
	tlb_invlpg(f, GL_LIN + 0x800);
	tlb_read(f, GL_LIN);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

static void global_entry_is_right_again_back_in_its_space(void **state)
{
	struct fx *f = *state;

	global_begin(f, CR4_PGE);
	I(&f->b, SHIM_LIN + 0x20, "mov cr3, eax");
	E(&f->b, EV_MOV_CR3, M_CR3, H_CR3, 0);
	f->b.cpu.cr3 = H_CR3;
	I(&f->b, 0xC0100100u, "mov eax, dword ptr [edi]");
	M(&f->b, false, 4, GL_LIN, GL_PA, 0);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

/* BUG (check_tlb): every MOV CR3 that leaves the host with CR4.PGE=1 appends the host's
 * global entries to the survivor list again, without looking for the copies already there.
 * After host -> monitor -> host -> monitor, one stale access is reported once per copy (here
 * twice, one more per extra round trip), although it is one TLB entry ("one report per
 * entry"). */
static void global_entry_is_reported_once_after_two_switches(void **state)
{
	struct fx *f = *state;

	global_begin(f, CR4_PGE);
	I(&f->b, SHIM_LIN + 0x20, "mov cr3, eax");
	E(&f->b, EV_MOV_CR3, M_CR3, H_CR3, 0);
	f->b.cpu.cr3 = H_CR3;
	I(&f->b, SHIM_LIN + 0x4B, "mov cr3, eax");
	E(&f->b, EV_MOV_CR3, H_CR3, M_CR3, 0);
	f->b.cpu.cr3 = M_CR3;
	tlb_read(f, GL_LIN);
	tlb_run(f);
	EXPECT(&f->v, R_GLOBAL, 1);
}

static void stale_guest_run_with_pending_change_fires(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	uint32_t g = I(&f->b, A_GUEST_RUN, "mov edi, dword ptr [esi + 0x64]");
	E(&f->b, EV_GUEST_RUN, 0, 0, 0);
	tlb_run(f);
	EXPECT(&f->v, R_STALE, 1);
	assert_int_equal(first_of(&f->v, R_STALE)->insn, g);
	assert_string_equal(first_of(&f->v, R_STALE)->msg,
			    "the guest runs while 0x00400000+0x1000 may still translate through the entry changed at #0");
}

static void stale_guest_run_after_invlpg_holds(void **state)
{
	struct fx *f = *state;

	tlb_begin(f);
	tlb_write(f, G_OLD, G_NEW, G_LIN, PGSIZE);
	tlb_invlpg(f, G_LIN);
	I(&f->b, A_GUEST_RUN, "mov edi, dword ptr [esi + 0x64]");
	E(&f->b, EV_GUEST_RUN, 0, 0, 0);
	tlb_run(f);
	EXPECT_NONE(&f->v);
}

static void stale_and_invlpg_when_prologue_skips_invlpg(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 2, .no_invlpg0 = true};

	build(f, &o);
	run_all(f);
	EXPECT(&f->v, R_STALE, 1, R_INVLPG, 1);
	char want[160];
	assert_int_equal(first_of(&f->v, R_STALE)->insn, f->r.guest_run[0]);
	snprintf(want, sizeof want, "the guest runs while 0xc8801000+0x1000 may still translate through the entry changed at #%u",
		 f->r.pro_write[0]);
	assert_string_equal(first_of(&f->v, R_STALE)->msg, want);
	assert_int_equal(first_of(&f->v, R_INVLPG)->insn, f->r.guest_read[0]);
	snprintf(want, sizeof want, "read at 0xc8801000 through the entry written at #%u (pa 0x411004)", f->r.pro_write[0]);
	assert_contains(first_of(&f->v, R_INVLPG)->msg, want);
}

/* ---- TSS-BUSY ------------------------------------------------------------------------------- */

static uint32_t tss_ltr(struct fx *f, uint64_t desc_pa, uint32_t hi)
{
	uint32_t i = I(&f->b, SHIM_LIN + 0x1A, "ltr word ptr [ebx + 0x18]");
	M(&f->b, false, 2, SHIM_LIN + 0x818, SHIM_PA + 0x818, 0x18);
	M(&f->b, false, 4, H_GDT + 0x18, desc_pa, 0x40000067u);
	M(&f->b, false, 4, H_GDT + 0x1C, desc_pa + 4, hi);
	return i;
}

static void tss_busy_ltr_of_available_descriptor_holds(void **state)
{
	struct fx *f = *state;

	host_world(&f->b.cpu);
	tss_ltr(f, H_DESC_PA, H_DESC_HI);
	check_tss_busy(&f->t, &f->img, &f->v);
	EXPECT_NONE(&f->v);
}

static void tss_busy_ltr_of_busy_host_descriptor_fires(void **state)
{
	struct fx *f = *state;

	host_world(&f->b.cpu);
	uint32_t i = tss_ltr(f, H_DESC_PA, H_DESC_HI | DESC_BUSY);
	check_tss_busy(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_TSS_BUSY, 1);
	assert_int_equal(first_of(&f->v, R_TSS_BUSY)->insn, i);
	assert_string_equal(first_of(&f->v, R_TSS_BUSY)->msg,
			    "LTR finds the host TSS descriptor with type 0xB (busy), not 0x9 (available)");
}

static void tss_busy_ltr_of_non_tss_monitor_descriptor_fires(void **state)
{
	struct fx *f = *state;

	host_world(&f->b.cpu);
	tss_ltr(f, M_DESC_PA, 0xE0008200u); /* type 2: an LDT */
	check_tss_busy(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_TSS_BUSY, 1);
	assert_string_equal(first_of(&f->v, R_TSS_BUSY)->msg,
			    "LTR finds the monitor TSS descriptor with type 0x2 (not a TSS), not 0x9 (available)");
}

static void tss_busy_gp_without_descriptor_read_fires(void **state)
{
	struct fx *f = *state;

	host_world(&f->b.cpu);
	I(&f->b, SHIM_LIN + 0x1A, "ltr word ptr [ebx + 0x18]");
	M(&f->b, false, 4, 0xC0105004u, 0x00405004u, H_DESC_HI | DESC_BUSY); /* not a known descriptor */
	E(&f->b, EV_FAULT, T_GP, 0x18, 0)->size = 1;
	check_tss_busy(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_TSS_BUSY, 1);
	assert_string_equal(first_of(&f->v, R_TSS_BUSY)->msg, "LTR raised #GP without reading a known TSS descriptor");
}

static void tss_busy_only_ltr_and_only_its_4_byte_read_count(void **state)
{
	struct fx *f = *state;

	host_world(&f->b.cpu);
	I(&f->b, 0xC0100100u, "mov eax, dword ptr [ecx + 0x1c]"); /* not an LTR */
	M(&f->b, false, 4, H_GDT + 0x1C, H_DESC_PA + 4, H_DESC_HI | DESC_BUSY);
	I(&f->b, SHIM_LIN + 0x1A, "ltr word ptr [ebx + 0x18]");
	M(&f->b, true, 4, H_GDT + 0x1C, H_DESC_PA + 4, H_DESC_HI | DESC_BUSY); /* the busy-bit write */
	M(&f->b, false, 2, H_GDT + 0x1C, H_DESC_PA + 4, 0x8B10);             /* a 2-byte read */
	check_tss_busy(&f->t, &f->img, &f->v);
	EXPECT_NONE(&f->v);
}

/* ---- SHIM-FETCH, IF-WINDOW -------------------------------------------------------------------- */

static void shim_fetch_window_insn_from_other_page_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	uint32_t i = f->r.h2m_lidt[0];
	f->t.insn[i].pa = GUEST_PA | 0x02E;
	run_all(f);
	EXPECT(&f->v, R_SHIM_FETCH, 1);
	assert_int_equal(first_of(&f->v, R_SHIM_FETCH)->insn, i);
	assert_string_equal(first_of(&f->v, R_SHIM_FETCH)->msg,
			    "host->monitor window 0: 0xc880102e is fetched from physical 0x41702e, not the shim page 0x400000");
}

static void shim_fetch_unwalkable_fetch_in_window_fires_with_walk(void **state)
{
	struct fx *f = *state;

	build_default(f);
	uint32_t i = f->r.m2h_ltr[1];
	f->t.insn[i].pa = UINT64_MAX;
	run_all(f);
	EXPECT(&f->v, R_SHIM_FETCH, 1, R_WALK, 1);
	assert_contains(first_of(&f->v, R_SHIM_FETCH)->msg, "monitor->host window 3: 0xc880101a is fetched from physical 0xffffffffffffffff");
	assert_string_equal(first_of(&f->v, R_WALK)->msg, "the engine executed 0xc880101a but the model's walk faults on that fetch");
}

static void shim_fetch_leaving_without_far_jmp_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	cut(f, f->r.h2m_lss[0] + 1);
	uint32_t i = I(&f->b, A_MON_START, "mov ax, ss"); /* falls out of the page without the jump */
	clear_verdict(f);
	check_window(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_SHIM_FETCH, 1);
	assert_int_equal(first_of(&f->v, R_SHIM_FETCH)->insn, i);
	assert_string_equal(first_of(&f->v, R_SHIM_FETCH)->msg,
			    "host->monitor window 0: control leaves the shim page at 0xe0000010 without the far jump");
}

static void if_window_if_set_inside_window_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	uint32_t i = f->r.m2h_ltr[1];
	f->t.insn[i].cpu.eflags |= FL_IF;
	run_all(f);
	EXPECT(&f->v, R_IF, 1);
	assert_int_equal(first_of(&f->v, R_IF)->insn, i);
	assert_string_equal(first_of(&f->v, R_IF)->msg, "monitor->host window 3: IF=1 at 0xc880101a (ltr word ptr [ebx + 0x18])");
}

static void if_window_if_set_on_jump_into_shim_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	uint32_t i = f->r.h2m_in[0];
	f->t.insn[i].cpu.eflags |= FL_IF;
	run_all(f);
	EXPECT(&f->v, R_IF, 1);
	assert_int_equal(first_of(&f->v, R_IF)->insn, i);
	assert_contains(first_of(&f->v, R_IF)->msg, "host->monitor window 0: IF=1 at 0xc0100084 (jmp dword ptr [ebx + 0x8c])");
}

static void if_window_if_set_before_the_jump_holds(void **state)
{
	struct fx *f = *state;

	build_default(f);
	/* cli comes two instructions before the jump; the pushfd before it runs with IF=1 */
	assert_true(f->t.insn[f->r.h2m_in[0] - 2].cpu.eflags & FL_IF);
	assert_false(f->t.insn[f->r.h2m_in[0]].cpu.eflags & FL_IF);
	clear_verdict(f);
	check_window(&f->t, &f->img, &f->v);
	EXPECT_NONE(&f->v);
}

/* ---- ARRIVAL -------------------------------------------------------------------------------- */

static void arrival_wrong_cr3_fires_and_names_cr3(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.insn[f->r.mon_land[0]].cpu.cr3 = 0x00412000u;
	run_all(f);
	EXPECT(&f->v, R_ARRIVAL, 1);
	assert_int_equal(first_of(&f->v, R_ARRIVAL)->insn, f->r.h2m_jmp[0]);
	assert_string_equal(first_of(&f->v, R_ARRIVAL)->msg, "host->monitor window 0 arrives with CR3=00412000(want 0040f000)");
}

static void arrival_cr3_flag_bits_are_ignored(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.insn[f->r.mon_land[0]].cpu.cr3 = M_CR3 | 0x18; /* PWT PCD */
	clear_verdict(f);
	check_arrival(&f->t, &f->img, &f->v);
	EXPECT_NONE(&f->v);
}

static void arrival_wrong_tr_fires_and_names_tr(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.insn[f->r.host_land[1]].cpu.tr = 0x30;
	run_all(f);
	EXPECT(&f->v, R_ARRIVAL, 1);
	assert_int_equal(first_of(&f->v, R_ARRIVAL)->insn, f->r.m2h_jmp[1]);
	assert_string_equal(first_of(&f->v, R_ARRIVAL)->msg, "monitor->host window 3 arrives with TR=0030(want 0018)");
}

static void arrival_wrong_eip_fires_and_names_cs_eip(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.insn[f->r.mon_land[0]].cpu.eip = A_MON_RESUME; /* the first entry must be monitor_start */
	f->t.insn[f->r.mon_land[1]].cpu.eip = A_MON_START;  /* later ones monitor_resume */
	run_all(f);
	EXPECT(&f->v, R_ARRIVAL, 2);
	assert_string_equal(f->v.v[0].msg, "host->monitor window 0 arrives with CS:EIP=0020:e00000ac(want 0020:e0000010)");
	assert_string_equal(f->v.v[1].msg, "host->monitor window 2 arrives with CS:EIP=0020:e0000010(want 0020:e00000ac)");
}

static void arrival_wrong_gdtr_idtr_ss_esp_are_all_named(void **state)
{
	struct fx *f = *state;

	build_default(f);
	struct tr_cpu *c = &f->t.insn[f->r.host_land[0]].cpu;
	c->gdtr_limit = 0x37;
	c->idtr_base = M_IDT;
	c->gpr[R_ESP] += 4;
	run_all(f);
	EXPECT(&f->v, R_ARRIVAL, 1);
	assert_string_equal(first_of(&f->v, R_ARRIVAL)->msg,
			    "monitor->host window 1 arrives with GDTR=c0102000/37(want c0102000/1f) "
			    "IDTR=e0003000/7ff(want c0103000/7ff) SS:ESP=0010:c0101fcc(want 0010:c0101fc8)");
}

static void arrival_after_last_insn_uses_final_state(void **state)
{
	struct fx *f = *state;

	build_default(f);
	cut(f, f->r.m2h_jmp[1] + 1); /* the far jump is the last instruction */
	f->t.final = f->t.insn[f->r.host_land[0]].cpu;
	clear_verdict(f);
	check_arrival(&f->t, &f->img, &f->v);
	EXPECT_NONE(&f->v);
	f->t.final.cs = 0x20;
	check_arrival(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_ARRIVAL, 1);
	assert_string_equal(first_of(&f->v, R_ARRIVAL)->msg,
			    "monitor->host window 3 arrives with CS:EIP=0020:c010008a(want 0008:c010008a)");
}

/* ---- RESTORE-REGS --------------------------------------------------------------------------- */

static void regs_gpr_changed_across_host2monitor_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.insn[f->r.after_call[0]].cpu.gpr[R_EBX] = 0xDEADBEEFu;
	run_all(f);
	EXPECT(&f->v, R_REGS, 1);
	assert_int_equal(first_of(&f->v, R_REGS)->insn, f->r.after_call[0]);
	char want[128];
	snprintf(want, sizeof want, "host2monitor (called at #%u) returns with ebx a5a50002->deadbeef", f->r.host_call[0]);
	assert_string_equal(first_of(&f->v, R_REGS)->msg, want);
}

static void regs_segment_eflags_and_tables_are_compared(void **state)
{
	struct fx *f = *state;

	build_default(f);
	struct tr_cpu *c = &f->t.insn[f->r.after_call[1]].cpu;
	c->ds = 0x28;
	c->eflags &= ~FL_IF;
	c->tr = 0x30;
	run_all(f);
	EXPECT(&f->v, R_REGS, 1);
	assert_contains(first_of(&f->v, R_REGS)->msg, "returns with eflags 00000202->00000002 ds 0010->0028 cr3/gdtr/idtr/tr changed");
}

static void regs_resume_flag_difference_is_ignored(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.insn[f->r.after_call[0]].cpu.eflags |= 0x10000u; /* RF */
	run_all(f);
	EXPECT_NONE(&f->v);
}

/* ---- RESTORE-PTE ---------------------------------------------------------------------------- */

static void pte_guest_runs_with_wrong_entry_fires(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 2, .guest_write = {0x00417065u, 0x00417065u}}; /* R/W lost */

	build(f, &o);
	run_all(f);
	/* Round 1 finds what the guest left after round 0, so only round 0 is reported. */
	EXPECT(&f->v, R_PTE, 1);
	assert_int_equal(first_of(&f->v, R_PTE)->insn, f->r.guest_run[0]);
	assert_string_equal(first_of(&f->v, R_PTE)->msg,
			    "the guest runs with 0x00417065 at its shim-address PTE (pa 0x411004), its own entry was 0x00417067");
}

static void pte_guest_runs_with_shim_mapping_fires(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 1, .no_write0 = true};

	build(f, &o);
	run_all(f);
	EXPECT(&f->v, R_PTE, 1);
	assert_int_equal(first_of(&f->v, R_PTE)->insn, f->r.guest_run[0]);
	assert_contains(first_of(&f->v, R_PTE)->msg, "the guest runs with 0x00400063 at its shim-address PTE");
}

/* The guest's own entry follows what the guest left (hardware A/D updates, no event). */
static void pte_guest_dirty_bit_update_must_be_saved_and_restored(void **state)
{
	struct fx *f = *state;
	struct rt ok = {.rounds = 2, .guest_write = {0x00417027u, 0x00417067u}, .guest_sets = {0x00417067u}};
	struct rt stale = {.rounds = 2, .guest_write = {0x00417027u, 0x00417027u}, .guest_sets = {0x00417067u}};

	f->img.guest_pte = 0x00417027u; /* not dirty yet */
	build(f, &ok);
	run_all(f);
	EXPECT_NONE(&f->v);

	trace_reset(&f->t);
	f->b.pte = SHIM_PTE;
	build(f, &stale);
	run_all(f);
	EXPECT(&f->v, R_PTE, 1);
	assert_int_equal(first_of(&f->v, R_PTE)->insn, f->r.guest_run[1]);
	assert_contains(first_of(&f->v, R_PTE)->msg, "the guest runs with 0x00417027 at its shim-address PTE (pa 0x411004), its own entry was 0x00417067");
}

/* ---- FAULT ---------------------------------------------------------------------------------- */

static void fault_gp_in_window_names_vector_and_window(void **state)
{
	struct fx *f = *state;
	struct tb *b = &f->b;

	build_default(f);
	cut(f, f->r.h2m_ltr[0]);
	uint32_t i = I(b, SHIM_LIN + 0x44, "ltr word ptr [ebx + 0x48]");
	M(b, false, 2, SHIM_LIN + 0x848, SHIM_PA + 0x848, 0x30);
	M(b, false, 4, M_GDT + 0x30, M_DESC_PA, 0x40000067u);
	M(b, false, 4, M_GDT + 0x34, M_DESC_PA + 4, M_DESC_HI);
	E(b, EV_FAULT, T_GP, 0x30, 0)->size = 1;
	f->t.end = END_FAULT;
	run_all(f);
	EXPECT(&f->v, R_FAULT, 1, R_ORDER, 1);
	assert_int_equal(first_of(&f->v, R_FAULT)->insn, i);
	assert_string_equal(first_of(&f->v, R_FAULT)->msg,
			    "#GP (vector 13) error code 0x30 (model) at 0xc8801044 `ltr word ptr [ebx + 0x48]` in the host->monitor window");
	assert_string_equal(first_of(&f->v, R_ORDER)->msg, "host->monitor window 0: ltr never happens (seen: lgdt lidt busy_clear)");
}

static void fault_pf_outside_windows_names_cr2(void **state)
{
	struct fx *f = *state;

	build_default(f);
	cut(f, f->r.guest_read[0]);
	I(&f->b, 0xE0000036u, "mov dword ptr [edi], eax");
	struct tr_event *e = E(&f->b, EV_FAULT, T_PF, PFEC_P | PFEC_W, SHIM_LIN);
	e->size = 1;
	f->t.end = END_FAULT;
	clear_verdict(f);
	check_faults(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_FAULT, 1);
	assert_string_equal(first_of(&f->v, R_FAULT)->msg,
			    "#PF (vector 14) error code 0x3 (model) CR2=0xc8801000 at 0xe0000036 `mov dword ptr [edi], eax` "
			    "outside the switch windows");
}

static void fault_ud_without_error_code_in_m2h_window(void **state)
{
	struct fx *f = *state;

	build_default(f);
	cut(f, f->r.m2h_cr3[0]);
	I(&f->b, SHIM_LIN + 0x20, "(bad)");
	E(&f->b, EV_FAULT, T_UD, 0, 0); /* size 0: no error code */
	f->t.end = END_FAULT;
	clear_verdict(f);
	check_faults(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_FAULT, 1);
	assert_string_equal(first_of(&f->v, R_FAULT)->msg, "#UD (vector 6) at 0xc8801020 `(bad)` in the monitor->host window");
}

/* BUG (check_faults; docs/rules.md lists it as a known false positive): error code 0 is what
 * a #PF for a not-present page on a supervisor read has (SDM vol. 3, 4.7), but "b == 0" is
 * read as "the model's walk succeeds" and a WALK violation is added. A real run shows it: a guest.shim_pte of {"raw": "0x0"} makes the
 * guest's read at the shim address raise #PF with error code 0, and `shimcheck run` reports
 * "WALK ... the model's walk succeeds" next to the FAULT. */
static void pf_not_present_read_error_code_0_is_not_a_walk_mismatch(void **state)
{
	struct fx *f = *state;

	build_default(f);
	cut(f, f->r.guest_read[0] + 1);
	E(&f->b, EV_FAULT, T_PF, 0, SHIM_LIN)->size = 1; /* not present, read, supervisor */
	f->t.end = END_FAULT;
	clear_verdict(f);
	check_faults(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_FAULT, 1);
}

/* ---- WALK ----------------------------------------------------------------------------------- */

static void walk_access_without_linear_address_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	const struct tr_insn *in = &f->t.insn[f->r.guest_read[1]];
	assert_int_equal(in->mem_n, 1);
	f->t.mem[in->mem_first].lin_known = false;
	run_all(f);
	EXPECT(&f->v, R_WALK, 1);
	assert_int_equal(first_of(&f->v, R_WALK)->insn, f->r.guest_read[1]);
	assert_string_equal(first_of(&f->v, R_WALK)->msg,
			    "`mov eax, dword ptr [edi]` reads physical 0x417000, which no linear address it uses maps to in the model");
}

static void walk_fetch_the_model_cannot_walk_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.insn[f->r.host_call[0]].pa = UINT64_MAX;
	run_all(f);
	EXPECT(&f->v, R_WALK, 1);
	assert_string_equal(first_of(&f->v, R_WALK)->msg, "the engine executed 0xc010003c but the model's walk faults on that fetch");
}

static void walk_fault_record_without_fetch_is_not_checked(void **state)
{
	struct fx *f = *state;

	build_default(f);
	cut(f, f->r.guest_run[0]);
	uint32_t i = I(&f->b, 0x00400000u, "");
	f->t.insn[i].len = f->t.insn[i].len_model = 0; /* the engine never fetched it */
	f->t.insn[i].pa = UINT64_MAX;
	E(&f->b, EV_FAULT, T_PF, PFEC_I, 0x00400000u)->size = 1;
	f->t.end = END_FAULT;
	clear_verdict(f);
	check_faults(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_FAULT, 1);
	assert_contains(first_of(&f->v, R_FAULT)->msg, "`(not fetched)` outside the switch windows");
}

static void walk_instruction_length_mismatch_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.insn[f->r.pro_write[0]].len_model = 2;
	run_all(f);
	EXPECT(&f->v, R_WALK, 1);
	assert_contains(first_of(&f->v, R_WALK)->msg, "3-byte instruction at 0xe00000c7");
	assert_contains(first_of(&f->v, R_WALK)->msg, "(2 bytes)");
}

/* ---- BOUND, NO-RETURN, ROUNDS --------------------------------------------------------------- */

static void end_bound_fires_bound_with_engine_detail(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.end = END_BOUND;
	snprintf(f->t.end_detail, sizeof f->t.end_detail, "instruction bound 5000 reached at 0xc0100042");
	run_all(f);
	EXPECT(&f->v, R_BOUND, 1);
	assert_string_equal(first_of(&f->v, R_BOUND)->msg, "instruction bound 5000 reached at 0xc0100042");
	assert_int_equal(first_of(&f->v, R_BOUND)->insn, f->t.n - 1);
}

static void end_stopped_and_timeout_fire_no_return(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.end = END_STOPPED;
	snprintf(f->t.end_detail, sizeof f->t.end_detail, "hlt at 0xc0100042");
	run_all(f);
	EXPECT(&f->v, R_RETURN, 1);
	assert_string_equal(first_of(&f->v, R_RETURN)->msg, "hlt at 0xc0100042");
	f->t.end = END_TIMEOUT;
	run_all(f);
	EXPECT(&f->v, R_RETURN, 1);
}

static void end_fault_and_internal_add_no_end_violation(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->t.end = END_FAULT;
	clear_verdict(f);
	check_end(&f->t, &f->img, &f->v);
	EXPECT_NONE(&f->v);
	f->t.end = END_INTERNAL;
	check_end(&f->t, &f->img, &f->v);
	EXPECT_NONE(&f->v);
}

static void rounds_fewer_switches_than_rounds_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	f->img.rounds = 3;
	run_all(f);
	EXPECT(&f->v, R_ROUNDS, 1);
	assert_int_equal(first_of(&f->v, R_ROUNDS)->insn, f->t.n - 1);
	assert_string_equal(first_of(&f->v, R_ROUNDS)->msg, "2 host->monitor and 2 monitor->host switches, for 3 round trips");
}

static void rounds_missing_return_switch_fires(void **state)
{
	struct fx *f = *state;

	build_default(f);
	cut(f, f->r.mon_land[1] + 1); /* done after the second host->monitor switch */
	f->t.end = END_DONE;
	clear_verdict(f);
	check_end(&f->t, &f->img, &f->v);
	EXPECT(&f->v, R_ROUNDS, 1);
	assert_string_equal(first_of(&f->v, R_ROUNDS)->msg, "2 host->monitor and 1 monitor->host switches, for 2 round trips");
}

/* ---- the rule table ------------------------------------------------------------------------- */

static void rule_ids_and_whys_are_non_empty_and_unique(void **state)
{
	(void)state;
	for (int r = 0; r < R_N; r++) {
		const char *id = rule_id((enum rule)r), *why = rule_why((enum rule)r);
		assert_non_null(id);
		assert_non_null(why);
		assert_true(strlen(id) > 0);
		assert_true(strlen(why) > 10);
		assert_string_not_equal(id, "?");
		for (int s = 0; s < r; s++)
			assert_string_not_equal(id, rule_id((enum rule)s));
	}
	assert_string_equal(rule_id(R_ORDER), "ORDER");
	assert_string_equal(rule_id(R_GLOBAL), "TLB-GLOBAL");
	assert_string_equal(rule_id(R_STALE), "STALE-TLB");
	assert_string_equal(rule_id(R_REGS), "RESTORE-REGS");
	assert_string_equal(rule_id(R_RETURN), "NO-RETURN");
	assert_string_equal(rule_id(R_ROUNDS), "ROUNDS");
	assert_string_equal(rule_id(R_N), "?");
	assert_string_equal(rule_why(R_N), "?");
}

/* More violations than MAX_VIOLATIONS slots: which are kept depends on the order they are
 * found, and check_all keeps what running the checkers one after another keeps (TLB before
 * FAULT: sim/check.c's enum chk), sorted by instruction. Here the reads that break INVLPG come
 * after the faults in the trace, so a single pass in trace order would keep other ones. */
static void check_all_keeps_what_the_checkers_in_order_keep_when_slots_run_out(void **state)
{
	struct fx *f = *state;
	enum { NF = 200, NR = 200 };
	tlb_begin(f);
	for (int i = 0; i < NF; i++) {
		I(&f->b, 0xE0000100u + 4 * f->t.n, "ud2");
		E(&f->b, EV_FAULT, T_UD, 0, 0);
	}
	for (int i = 0; i < NR; i++) { /* each a PTE write, then a read through it */
		tlb_write(f, G_OLD, G_NEW, G_LIN + (uint32_t)i * PGSIZE, PGSIZE);
		tlb_read(f, G_LIN + (uint32_t)i * PGSIZE);
	}
	f->t.end = END_FAULT;

	/* What the checkers keep one after another, stably sorted by instruction. */
	static struct verdict want;
	memset(&want, 0, sizeof want);
	check_tlb(&f->t, &f->img, &want);
	check_faults(&f->t, &f->img, &want);
	check_reach(&f->t, &f->img, &want);
	check_tss_busy(&f->t, &f->img, &want);
	check_window(&f->t, &f->img, &want);
	check_order(&f->t, &f->img, &f->code, &want);
	check_arrival(&f->t, &f->img, &want);
	check_restore(&f->t, &f->img, &want);
	check_end(&f->t, &f->img, &want);
	assert_true(want.n > MAX_VIOLATIONS);
	for (int i = 1; i < MAX_VIOLATIONS; i++)
		for (int j = i; j > 0 && want.v[j - 1].insn > want.v[j].insn; j--) {
			struct violation x = want.v[j];
			want.v[j] = want.v[j - 1];
			want.v[j - 1] = x;
		}

	clear_verdict(f);
	run_all(f);
	assert_int_equal(f->v.n, want.n);
	for (int r = 0; r < R_N; r++)
		assert_int_equal(f->v.counts[r], want.counts[r]);
	int kept_reads = 0;
	for (int i = 0; i < MAX_VIOLATIONS; i++) {
		assert_int_equal(f->v.v[i].rule, want.v[i].rule);
		assert_int_equal(f->v.v[i].insn, want.v[i].insn);
		assert_string_equal(f->v.v[i].msg, want.v[i].msg);
		kept_reads += f->v.v[i].rule == R_INVLPG;
	}
	/* The reads came first in checker order: all of them were kept, though they come last. */
	assert_int_equal(kept_reads, NR);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* A declared group (e.g. [["busy_clear", "ltr"]]) accepts its events in either order; the
 * same trace breaks the strict order (order_ltr_before_busy_clear_fires). */
static void order_group_accepts_either_order(void **state)
{
	struct fx *f = *state;
	struct rt o = {.rounds = 2, .ltr_first = true};

	build(f, &o);
	for (int d = 0; d < 2; d++)
		for (int k = 0; k < f->code.norder[d]; k++)
			if (f->code.order[d][k] == SWE_LTR)
				f->code.group[d][k] = f->code.group[d][k - 1]; /* busy_clear's group */
	check_order(&f->t, &f->img, &f->code, &f->v);
	EXPECT(&f->v, R_ORDER, 0);
	/* and a group member that never comes is still reported */
	f->code.order[0][0] = SWE_LSS;
	memset(&f->v, 0, sizeof f->v);
	check_order(&f->t, &f->img, &f->code, &f->v);
	assert_true(f->v.counts[R_ORDER] >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(round_trip_2_rounds_holds_every_rule),
		T(order_group_accepts_either_order),
		T(round_trip_1_round_holds_every_rule),
		T(find_windows_4_alternating_windows_end_at_far_jumps),
		T(find_windows_stops_at_max),
		T(find_windows_cut_window_has_no_far_jmp_and_ends_at_last_insn),
		T(find_windows_empty_trace_has_none),
		T(order_ltr_before_busy_clear_fires),
		T(order_missing_lidt_fires_and_idtr_arrives_wrong),
		T(order_mov_cr3_twice_fires),
		T(order_extra_far_jmp_after_sequence_fires),
		T(order_busy_clear_of_wrong_world_is_not_the_step),
		T(order_busy_clear_of_wrong_world_then_gp_never_happens),
		T(order_declared_lss_is_checked_undeclared_lss_ignored),
		T(invlpg_read_after_pte_write_without_invlpg_fires),
		T(check_all_keeps_what_the_checkers_in_order_keep_when_slots_run_out),
		T(invlpg_fetch_after_pte_write_without_invlpg_fires),
		T(invlpg_write_after_pte_write_without_invlpg_fires_once),
		T(invlpg_between_write_and_use_holds),
		T(invlpg_of_another_page_does_not_help),
		T(invlpg_use_outside_region_or_in_other_space_holds),
		T(invlpg_unchanged_value_or_unknown_region_is_not_pending),
		T(invlpg_mov_cr3_drops_non_global_entries),
		T(invlpg_global_entry_survives_mov_cr3_with_pge),
		T(invlpg_global_entry_is_dropped_by_mov_cr3_without_pge_or_by_invlpg),
		T(invlpg_write_of_not_present_entry_is_not_pending),
		T(invlpg_mov_cr4_changing_pge_flushes_global_entries),
		T(invlpg_mov_cr4_keeping_pge_flushes_nothing),
		T(invlpg_mov_cr0_flushes_only_when_pg_changes),
		T(invlpg_large_page_pde_dropped_by_invlpg_anywhere_inside),
		T(invlpg_page_table_pde_needs_cr3_reload_for_other_pages),
		T(global_host_entry_surviving_mov_cr3_fires_in_monitor),
		T(global_host_entry_fetch_fires),
		T(global_entry_holds_without_pge_or_same_frame_or_after_invlpg),
		T(global_entry_is_right_again_back_in_its_space),
		T(stale_guest_run_with_pending_change_fires),
		T(stale_guest_run_after_invlpg_holds),
		T(stale_and_invlpg_when_prologue_skips_invlpg),
		T(tss_busy_ltr_of_available_descriptor_holds),
		T(tss_busy_ltr_of_busy_host_descriptor_fires),
		T(tss_busy_ltr_of_non_tss_monitor_descriptor_fires),
		T(tss_busy_gp_without_descriptor_read_fires),
		T(tss_busy_only_ltr_and_only_its_4_byte_read_count),
		T(shim_fetch_window_insn_from_other_page_fires),
		T(shim_fetch_unwalkable_fetch_in_window_fires_with_walk),
		T(shim_fetch_leaving_without_far_jmp_fires),
		T(if_window_if_set_inside_window_fires),
		T(if_window_if_set_on_jump_into_shim_fires),
		T(if_window_if_set_before_the_jump_holds),
		T(arrival_wrong_cr3_fires_and_names_cr3),
		T(arrival_cr3_flag_bits_are_ignored),
		T(arrival_wrong_tr_fires_and_names_tr),
		T(arrival_wrong_eip_fires_and_names_cs_eip),
		T(arrival_wrong_gdtr_idtr_ss_esp_are_all_named),
		T(arrival_after_last_insn_uses_final_state),
		T(regs_gpr_changed_across_host2monitor_fires),
		T(regs_segment_eflags_and_tables_are_compared),
		T(regs_resume_flag_difference_is_ignored),
		T(pte_guest_runs_with_wrong_entry_fires),
		T(pte_guest_runs_with_shim_mapping_fires),
		T(pte_guest_dirty_bit_update_must_be_saved_and_restored),
		T(fault_gp_in_window_names_vector_and_window),
		T(fault_pf_outside_windows_names_cr2),
		T(fault_ud_without_error_code_in_m2h_window),
		T(walk_access_without_linear_address_fires),
		T(walk_fetch_the_model_cannot_walk_fires),
		T(walk_fault_record_without_fetch_is_not_checked),
		T(walk_instruction_length_mismatch_fires),
		T(end_bound_fires_bound_with_engine_detail),
		T(end_stopped_and_timeout_fire_no_return),
		T(end_fault_and_internal_add_no_end_violation),
		T(rounds_fewer_switches_than_rounds_fires),
		T(rounds_missing_return_switch_fires),
		T(rule_ids_and_whys_are_non_empty_and_unique),
		/* BUG: expected to fail until the code under test is fixed (see each test) */
		T(invlpg_page_is_safe_after_page_table_pde_change),
		T(pf_not_present_read_error_code_0_is_not_a_walk_mismatch),
		T(global_entry_is_reported_once_after_two_switches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
