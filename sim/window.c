/*
 * window.c: interrupt delivery at every boundary of the switch windows (see window.h).
 */
#include "window.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../model/desc.h"
#include "../model/mmu.h"
#include "check.h"
#include "../shim/shim_abi.h"

/* Instruction i's recorded writes, applied (forward) or undone (back) on mem. */
static void apply_writes(struct physmem *pm, const struct trace *t, uint32_t i, bool forward)
{
	const struct tr_insn *in = &t->insn[i];
	for (uint32_t k = 0; k < in->mem_n; k++) {
		uint32_t m = forward ? k : in->mem_n - 1 - k;
		const struct tr_mem *a = &t->mem[in->mem_first + m];
		uint8_t *p = a->write ? phys_ptr(pm, a->pa, a->size) : NULL;
		uint64_t v = forward ? a->value : a->old;
		for (unsigned b = 0; p && b < a->size; b++)
			p[b] = (uint8_t)(v >> (8 * b));
	}
}

static struct paging_regs regs_at(const struct physmem *pm, const struct tr_cpu *c)
{
	struct paging_regs r = {c->cr0, c->cr3, c->cr4, c->efer, {0, 0, 0, 0}};
	paging_load_pdptes(pm, &r);
	return r;
}

/* Read n bytes at a linear address through the tables in force; false if any byte faults.
 * One walk per page touched. */
static bool read_lin(const struct physmem *pm, const struct paging_regs *r, uint32_t lin, uint8_t *out, unsigned n,
		     uint64_t *pa0)
{
	unsigned done = 0;
	while (done < n) {
		uint32_t at = lin + done;
		unsigned chunk = PGSIZE - (at & 0xFFF);
		if (chunk > n - done)
			chunk = n - done;
		struct walk w = paging_walk(pm, r, at, ACC_READ, 0);
		const uint8_t *p = w.status == WALK_OK ? phys_ptr(pm, w.pa, chunk) : NULL;
		if (!p)
			return false;
		if (done == 0 && pa0)
			*pa0 = w.pa;
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

/* The verdict for delivering `vector` with the CPU as in c and memory as in pm. */
static enum wverdict judge(const struct physmem *pm, const struct image *img, const struct tr_cpu *c, unsigned vector,
			   bool want_safe_reasons, char *why, size_t n)
{
	struct paging_regs r = regs_at(pm, c);
	if (c->idtr_limit < 8 * vector + 7) {
		snprintf(why, n, "vector %u lies beyond the IDT limit 0x%x", vector, c->idtr_limit);
		return WV_UNSAFE;
	}
	uint8_t g[8], d[8];
	uint64_t gate_pa = 0;
	if (!read_lin(pm, &r, c->idtr_base + 8 * vector, g, 8, &gate_pa)) {
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
	    !read_lin(pm, &r, c->gdtr_base + SEL_INDEX(gd.sel), d, 8, NULL)) {
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
	struct walk hw = paging_walk(pm, &r, handler, ACC_FETCH, 0);
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
		struct walk sw = paging_walk(pm, &r, sp + k, ACC_WRITE, 0);
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
	return WV_SAFE;
}

void window_analyse(const struct trace *t, const struct image *img, unsigned vector, struct physmem *mem,
		    struct wanalysis *out)
{
	out->n = out->unsafe = 0; /* the boundary array is large: fill, don't clear */
	if (t->n == 0)
		return;
	struct window w[2 * SC_MAX_ROUNDS + 8];
	int nw = find_windows(t, img, w, (int)(sizeof w / sizeof w[0]));
	/* Wind memory back to before the first instruction; then forward, boundary by boundary. */
	for (uint32_t i = t->n; i-- > 0;)
		apply_writes(mem, t, i, false);
	uint32_t applied = 0;
	for (int x = 0; x < nw; x++) {
		/* From the jump into the shim to the first instruction after the far jump. */
		uint32_t from = w[x].first > 0 ? w[x].first - 1 : 0;
		uint32_t to = w[x].has_jmp ? w[x].last + 1 : w[x].last;
		if (to >= t->n)
			to = t->n - 1;
		for (uint32_t i = from; i <= to && out->n < WINDOW_MAX_BOUNDARIES; i++) {
			while (applied < i)
				apply_writes(mem, t, applied++, true);
			struct wboundary *b = &out->b[out->n++];
			b->insn = i;
			b->window = x;
			b->dir = w[x].dir;
			const struct tr_insn *prev = i > 0 ? &t->insn[i - 1] : NULL;
			bool inhibit = prev && (strncmp(prev->text, "mov ss", 6) == 0 || strncmp(prev->text, "pop ss", 6) == 0);
			if (inhibit) {
				b->verdict = WV_INHIBITED;
				snprintf(b->reason, sizeof b->reason, "delivery waits: the previous instruction loaded SS");
				continue;
			}
			b->verdict = judge(mem, img, &t->insn[i].cpu, vector, out->safe_reasons, b->reason, sizeof b->reason);
			out->unsafe += b->verdict == WV_UNSAFE;
		}
	}
	while (applied < t->n)
		apply_writes(mem, t, applied++, true);
}
