/*
 * check.c: the checkers. Each reads the trace and the image's facts and reports
 * violations with the instruction that shows them; none touches an engine.
 */
#include "check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../model/mmu.h"

#define report verdict_add
#define X_RULE_ID(id, name, why) name,
#define X_RULE_WHY(id, name, why) why,
static const char *const rule_ids[] = {RULES(X_RULE_ID)};
static const char *const rule_whys[] = {RULES(X_RULE_WHY)};
const char *rule_id(enum rule r) { return r < R_N ? rule_ids[r] : "?"; }
const char *rule_why(enum rule r) { return r < R_N ? rule_whys[r] : "?"; }

void verdict_add(struct verdict *v, enum rule r, uint32_t insn, const char *fmt, ...)
{
	v->counts[r]++;
	if (v->n < MAX_VIOLATIONS) {
		struct violation *x = &v->v[v->n];
		x->rule = r;
		x->insn = insn;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(x->msg, sizeof x->msg, fmt, ap);
		va_end(ap);
	}
	v->n++;
}

static const char *dir_name(enum dir d) { return d == DIR_M2H ? "monitor->host" : "host->monitor"; }

/* In the shim: fetched from the shim's physical page (at its linear address, or at its
 * identity address while paging is being switched), or at its linear address. */
static bool in_shim(const struct image *img, const struct tr_insn *in)
{
	return (in->cpu.eip & PGMASK) == img->shim_lin ||
	       (in->pa != UINT64_MAX && (in->pa & ~(uint64_t)0xFFF) == img->shim_pa);
}

int find_windows(const struct trace *t, const struct image *img, struct window *w, int max)
{
	int n = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		if (!in_shim(img, &t->insn[i]) || (i > 0 && in_shim(img, &t->insn[i - 1])))
			continue;
		struct window x = {t->insn[i].space == SP_HOST ? DIR_H2M : DIR_M2H, i, i, false};
		uint32_t j = i;
		for (; j < t->n; j++) {
			const struct tr_insn *in = &t->insn[j];
			bool jmp = false;
			for (uint32_t k = 0; k < in->ev_n; k++)
				jmp |= t->ev[in->ev_first + k].kind == EV_FAR_JMP;
			if (jmp) {
				x.has_jmp = true;
				break;
			}
			if (j + 1 < t->n && !in_shim(img, &t->insn[j + 1]))
				break;
		}
		x.last = j < t->n ? j : t->n - 1;
		if (n < max)
			w[n] = x;
		n++;
		i = x.last;
	}
	return n < max ? n : max;
}

#define MAX_WINDOWS (2 * SC_MAX_ROUNDS + 8)

/* ---- ORDER --------------------------------------------------------------------------------- */

static int swe_of(const struct tr_event *ev, enum dir d, const struct image *img)
{
	enum sc_space target = d == DIR_M2H ? SP_HOST : SP_MON;
	switch (ev->kind) {
	case EV_LGDT: /* the target's GDT, not a shim's own on the way */
		return (uint32_t)ev->a == img->w[target].gdtr.base ? SWE_LGDT : -1;
	case EV_LIDT:
		/* The step is the load of the target's IDT; a shim's own IDT on the way is not. */
		return (uint32_t)ev->a == img->w[target].idtr.base ? SWE_LIDT : -1;
	case EV_LTR: return SWE_LTR;
	case EV_MOV_CR3:
		/* The step is the load of the target's CR3; loads of transition tables are not. */
		return ((uint32_t)ev->b & PGMASK) == (img->w[target].regs.cr3 & PGMASK) ? SWE_MOV_CR3 : -1;
	case EV_LSS: /* likewise: the target's stack */
		return (uint16_t)ev->a == img->w[target].ds ? SWE_LSS : -1;
	case EV_FAR_JMP: return SWE_FAR_JMP;
	case EV_BUSY_CLEAR:
		/* Only the target world's TSS counts: clearing another descriptor is not the step. */
		return (int)ev->b == (int)target ? SWE_BUSY_CLEAR : -1;
	default: return -1;
	}
}

/* "lgdt lidt ltr ...": the events seen, for a report. Returns true. */
static bool seen_text(const enum swe *seen, int ns, char *got, size_t n)
{
	got[0] = '\0';
	for (int x = 0; x < ns; x++)
		snprintf(got + strlen(got), n - strlen(got), "%s%s", x ? " " : "", swe_name(seen[x]));
	return true;
}

static void check_order_in(const struct trace *t, const struct image *img, const struct shim_code *code,
			const struct window *w, int nw, struct verdict *v)
{
	for (int i = 0; i < nw; i++) {
		enum dir d = w[i].dir;
		v->windows[d]++;
		bool declared[SWE_N] = {false};
		for (int k = 0; k < code->norder[d]; k++)
			declared[code->order[d][k]] = true;
		enum swe seen[32];
		uint32_t at[32];
		int ns = 0;
		for (uint32_t j = w[i].first; j <= w[i].last; j++) {
			const struct tr_insn *in = &t->insn[j];
			for (uint32_t k = 0; k < in->ev_n; k++) {
				int s = swe_of(&t->ev[in->ev_first + k], d, img);
				if (s >= 0 && declared[s] && ns < 32) {
					seen[ns] = (enum swe)s;
					at[ns++] = j;
				}
			}
		}
		/* Compare with the declaration, a group at a time (a group's events may come in any
		 * order among themselves, each once); report the first difference. */
		char got[160] = ""; /* what was seen, for a report: written only when one is due */
		int x = 0, g0 = 0;
		bool bad = false;
		while (g0 < code->norder[d] && !bad) {
			int g1 = g0;
			while (g1 < code->norder[d] && code->group[d][g1] == code->group[d][g0])
				g1++;
			bool done[SWE_N] = {false};
			for (int m = 0; m < g1 - g0 && !bad; m++, x++) {
				enum swe due = SWE_N; /* the first member of the group not seen yet */
				for (int q = g0; q < g1 && due == SWE_N; q++)
					if (!done[code->order[d][q]])
						due = code->order[d][q];
				if (x >= ns) {
					seen_text(seen, ns, got, sizeof got);
					report(v, R_ORDER, w[i].last, "%s window %d: %s never happens (seen: %s)", dir_name(d), i,
					       swe_name(due), got[0] ? got : "nothing");
					bad = true;
					break;
				}
				bool member = false;
				for (int q = g0; q < g1; q++)
					member |= seen[x] == code->order[d][q];
				if (!member || done[seen[x]]) {
					seen_text(seen, ns, got, sizeof got);
					report(v, R_ORDER, at[x], "%s window %d: %s where %s is due (seen: %s)", dir_name(d), i,
					       swe_name(seen[x]), swe_name(due), got);
					bad = true;
					break;
				}
				done[seen[x]] = true;
			}
			g0 = g1;
		}
		if (!bad && x < ns && seen_text(seen, ns, got, sizeof got))
			report(v, R_ORDER, at[x], "%s window %d: extra %s after the declared sequence (seen: %s)", dir_name(d), i,
			       swe_name(seen[x]), got);
	}
}

void check_order(const struct trace *t, const struct image *img, const struct shim_code *code, struct verdict *v)
{
	struct window w[MAX_WINDOWS];
	int nw = find_windows(t, img, w, MAX_WINDOWS);
	check_order_in(t, img, code, w, nw, v);
}

/* ---- INVLPG / STALE-TLB ------------------------------------------------------------------- */

/* Translations the CPU may still hold from before a paging-structure write. */
struct pending {
	uint32_t lin, size;
	int space;
	bool global;    /* the old entry was global: survives MOV CR3 when CR4.PGE=1 */
	bool large_leaf;/* a large-page PDE: one TLB entry, INVLPG of any address in it drops it */
	uint32_t insn;  /* the write */
	uint64_t pa;
	int nexempt;    /* pages of a page-table region already invalidated one by one */
	uint32_t exempt[8];
};

#define MAX_PENDING 64

static bool covers(const struct pending *p, uint32_t lin)
{
	if (lin - p->lin >= p->size)
		return false;
	for (int i = 0; i < p->nexempt; i++)
		if (p->exempt[i] == (lin & PGMASK))
			return false;
	return true;
}

/* Global translations a worst-case TLB may still hold from the space it left: every global
 * leaf mapping of that space (valid since the last full flush, so possibly cached, even by
 * speculation), kept across MOV CR3 while CR4.PGE=1. */
struct survivor {
	int space;
	uint32_t lin, size;
	uint64_t pa;
	uint32_t insn; /* the MOV CR3 it survived */
};

#define MAX_SURVIVORS (4 * SC_MAX_MAPS)

static void check_global_use(const struct trace *t, uint32_t i, struct survivor *sv, int *ns, struct verdict *v)
{
	const struct tr_insn *in = &t->insn[i];
	for (int k = 0; k < *ns; k++) {
		const struct survivor *s = &sv[k];
		if (s->space == in->space)
			continue; /* back in its own space the entry is right again */
		uint32_t lin = 0;
		uint64_t pa = UINT64_MAX;
		if (in->cpu.eip - s->lin < s->size) {
			lin = in->cpu.eip;
			pa = in->pa;
		}
		for (uint32_t m = 0; m < in->mem_n && pa == UINT64_MAX; m++) {
			const struct tr_mem *a = &t->mem[in->mem_first + m];
			if (a->lin_known && a->lin - s->lin < s->size) {
				lin = a->lin;
				pa = a->pa;
			}
		}
		if (pa == UINT64_MAX)
			continue;
		uint64_t stale = s->pa + (lin - s->lin);
		if ((stale & ~(uint64_t)0xFFF) != (pa & ~(uint64_t)0xFFF)) {
			report(v, R_GLOBAL, i, "0x%08" PRIx32 " may still translate to 0x%" PRIx64 " through the %s's global "
			       "entry that survived MOV CR3 at #%u (CR4.PGE=1); this space maps it to 0x%" PRIx64, lin, stale,
			       sc_space_name((enum sc_space)s->space), s->insn, pa);
			sv[k] = sv[--*ns]; /* one report per entry */
			k--;
		}
	}
}

void check_tlb(const struct trace *t, const struct image *img, struct verdict *v)
{
	struct pending pend[MAX_PENDING];
	int np = 0;
	struct survivor sv[MAX_SURVIVORS];
	int ns = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		check_global_use(t, i, sv, &ns, v);
		/* Uses by this instruction: the fetch, then its data accesses. */
		for (int p = 0; p < np; p++) {
			if (pend[p].space != in->space)
				continue;
			if (covers(&pend[p], in->cpu.eip)) {
				report(v, R_INVLPG, i, "fetch at 0x%08" PRIx32 " through the entry written at #%u (pa 0x%" PRIx64
				       ") with no INVLPG or CR3 reload since", in->cpu.eip, pend[p].insn, pend[p].pa);
				pend[p] = pend[--np]; /* one report per write */
				p--;
				continue;
			}
			for (uint32_t m = 0; m < in->mem_n; m++) {
				const struct tr_mem *a = &t->mem[in->mem_first + m];
				if (a->lin_known && covers(&pend[p], a->lin)) {
					report(v, R_INVLPG, i, "%s at 0x%08" PRIx32 " through the entry written at #%u (pa 0x%" PRIx64
					       ") with no INVLPG or CR3 reload since", a->write ? "write" : "read", a->lin,
					       pend[p].insn, pend[p].pa);
					pend[p] = pend[--np];
					p--;
					break;
				}
			}
		}
		for (uint32_t k = 0; k < in->ev_n; k++) {
			const struct tr_event *ev = &t->ev[in->ev_first + k];
			if (ev->kind == EV_GUEST_RUN) {
				for (int p = 0; p < np; p++)
					if (pend[p].space == in->space)
						report(v, R_STALE, i, "the guest runs while 0x%08" PRIx32 "+0x%" PRIx32
						       " may still translate through the entry changed at #%u",
						       pend[p].lin, pend[p].size, pend[p].insn);
			} else if (ev->kind == EV_PTE_WRITE && ev->lin_size && ev->space == in->space && ev->b != ev->c &&
				   ev->stale) {
				/* Only a translation that was present can be cached, and so be stale. */
				if (np < MAX_PENDING)
					pend[np++] = (struct pending){ev->lin, ev->lin_size, ev->space, ev->global, ev->large,
								      i, ev->a, 0, {0}};
			} else if (ev->kind == EV_INVLPG) {
				/* INVLPG drops the page's TLB entry (the whole large page's) and every
				 * paging-structure cache entry (SDM 4.10.4.1): under a changed PDE that
				 * pointed to a page table, that one page is safe again. */
				for (int p = 0; p < np; p++) {
					if (!covers(&pend[p], (uint32_t)ev->a))
						continue;
					if (pend[p].size == PGSIZE || pend[p].large_leaf) {
						pend[p] = pend[--np];
						p--;
					} else if (pend[p].nexempt < 8) {
						pend[p].exempt[pend[p].nexempt++] = (uint32_t)ev->a & PGMASK;
					}
				}
				for (int k = 0; k < ns; k++) /* INVLPG drops global entries too */
					if ((uint32_t)ev->a - sv[k].lin < sv[k].size) {
						sv[k] = sv[--ns];
						k--;
					}
			} else if (ev->kind == EV_MOV_CR3 || ev->kind == EV_MOV_CR0 || ev->kind == EV_MOV_CR4) {
				bool pge = (in->cpu.cr4 & CR4_PGE) != 0;
				/* SDM 4.10.4.1: MOV CR4 changing PGE, and MOV CR0 clearing PG, flush every
				 * translation, global ones too; MOV CR4 changing PAE, like MOV CR3, flushes
				 * all but global ones; other CR0/CR4 writes flush nothing. */
				bool all = (ev->kind == EV_MOV_CR4 && ((ev->a ^ ev->b) & CR4_PGE)) ||
					   (ev->kind == EV_MOV_CR0 && (ev->a & CR0_PG) && !(ev->b & CR0_PG));
				bool nonglobal = ev->kind == EV_MOV_CR3 || (ev->kind == EV_MOV_CR4 && ((ev->a ^ ev->b) & CR4_PAE));
				if (!all && !nonglobal)
					continue;
				for (int p = 0; p < np; p++)
					if (all || !pend[p].global || !pge) {
						pend[p] = pend[--np];
						p--;
					}
				if (all || !pge) {
					ns = 0;
				} else if (ev->kind == EV_MOV_CR3 && in->space >= 0) {
					/* Leaving in->space with PGE on: its global entries may survive. */
					const struct world *w = &img->w[in->space];
					for (int g = 0; g < w->nglobal && ns < MAX_SURVIVORS; g++) {
						int k = 0;
						while (k < ns && !(sv[k].space == in->space && sv[k].lin == w->global[g].lin))
							k++;
						if (k == ns)
							ns++; /* a new survivor; else refresh the one we have */
						sv[k] = (struct survivor){in->space, w->global[g].lin, w->global[g].size,
									  w->global[g].pa, i};
					}
				}
			}
		}
	}
	(void)img;
}

/* ---- TSS-BUSY ------------------------------------------------------------------------------- */

void check_tss_busy(const struct trace *t, const struct image *img, struct verdict *v)
{
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		if (strncmp(in->text, "ltr", 3) != 0)
			continue;
		/* The descriptor's high dword as LTR read it. */
		bool found = false;
		for (uint32_t m = 0; m < in->mem_n; m++) {
			const struct tr_mem *a = &t->mem[in->mem_first + m];
			for (int s = 0; s < 2; s++) {
				if (a->write || a->pa != img->w[s].tss_desc_pa + 4 || a->size != 4)
					continue;
				found = true;
				unsigned type = (unsigned)(a->value >> 8) & 0xF;
				if (type != STS_T32A)
					report(v, R_TSS_BUSY, i, "LTR finds the %s TSS descriptor with type 0x%X (%s), not 0x9 (available)",
					       sc_space_name((enum sc_space)s), type, type == STS_T32B ? "busy" : "not a TSS");
			}
		}
		bool faulted = false;
		for (uint32_t k = 0; k < in->ev_n; k++)
			faulted |= t->ev[in->ev_first + k].kind == EV_FAULT && t->ev[in->ev_first + k].a == T_GP;
		if (faulted && !found)
			report(v, R_TSS_BUSY, i, "LTR raised #GP without reading a known TSS descriptor");
	}
}

/* ---- SHIM-FETCH, IF-WINDOW ---------------------------------------------------------------- */

static void check_window_in(const struct trace *t, const struct image *img,
			const struct window *w, int nw, struct verdict *v)
{
	for (int i = 0; i < nw; i++) {
		/* The jump into the shim (the instruction before the window) already runs with IF=0. */
		uint32_t from = w[i].first > 0 ? w[i].first - 1 : 0;
		for (uint32_t j = from; j <= w[i].last; j++) {
			const struct tr_insn *in = &t->insn[j];
			if (in->cpu.eflags & FL_IF)
				report(v, R_IF, j, "%s window %d: IF=1 at 0x%08" PRIx32 " (%s)", dir_name(w[i].dir), i,
				       in->cpu.eip, in->text);
			if (j < w[i].first)
				continue;
			if (in->pa == UINT64_MAX || (in->pa & ~(uint64_t)0xFFF) != img->shim_pa)
				report(v, R_SHIM_FETCH, j, "%s window %d: 0x%08" PRIx32 " is fetched from physical 0x%" PRIx64
				       ", not the shim page 0x%" PRIx64, dir_name(w[i].dir), i, in->cpu.eip, in->pa, img->shim_pa);
		}
		if (!w[i].has_jmp) {
			uint32_t j = w[i].last + 1;
			if (j < t->n)
				report(v, R_SHIM_FETCH, j, "%s window %d: control leaves the shim page at 0x%08" PRIx32
				       " without the far jump", dir_name(w[i].dir), i, t->insn[j].cpu.eip);
		}
	}
}

void check_window(const struct trace *t, const struct image *img, struct verdict *v)
{
	struct window w[MAX_WINDOWS];
	int nw = find_windows(t, img, w, MAX_WINDOWS);
	check_window_in(t, img, w, nw, v);
}

/* ---- ARRIVAL -------------------------------------------------------------------------------- */

static const struct tr_cpu *after(const struct trace *t, uint32_t i)
{
	return i + 1 < t->n ? &t->insn[i + 1].cpu : &t->final;
}

static void check_arrival_in(const struct trace *t, const struct image *img,
			const struct window *w, int nw, struct verdict *v)
{
	/* Each world's stack pointer as it left through the shim. */
	uint32_t esp_left[2] = {0, img->w[SP_MON].stack_top};
	bool mon_started = false;
	for (int i = 0; i < nw; i++) {
		enum sc_space from = w[i].dir == DIR_M2H ? SP_MON : SP_HOST;
		enum sc_space to = w[i].dir == DIR_M2H ? SP_HOST : SP_MON;
		esp_left[from] = t->insn[w[i].first].cpu.gpr[R_ESP];
		if (!w[i].has_jmp)
			continue;
		const struct tr_cpu *c = after(t, w[i].last);
		const struct world *tw = &img->w[to];
		uint32_t eip_want = to == SP_HOST ? img->ep[EP_RESTORE_TO_HOST]
			: mon_started ? img->ep[EP_MONITOR_RESUME] : img->ep[EP_MONITOR_START];
		if (to == SP_MON)
			mon_started = true;
		char bad[256] = "";
#define DIFF(cond, ...) \
	if (cond) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), __VA_ARGS__)
		DIFF((c->cr3 & PGMASK) != (tw->regs.cr3 & PGMASK), " CR3=%08" PRIx32 "(want %08" PRIx32 ")", c->cr3, tw->regs.cr3);
		DIFF(c->cr4 != tw->regs.cr4, " CR4=%08" PRIx32 "(want %08" PRIx32 ")", c->cr4, tw->regs.cr4);
		DIFF((c->cr0 ^ tw->regs.cr0) & (CR0_PG | CR0_PE | CR0_WP), " CR0=%08" PRIx32 "(want %08" PRIx32 ")", c->cr0,
		     tw->regs.cr0);
		DIFF((c->efer ^ (uint32_t)tw->regs.efer) & EFER_NXE, " EFER=%08" PRIx32 "(want %08" PRIx32 ")", c->efer,
		     (uint32_t)tw->regs.efer);
		DIFF(c->gdtr_base != tw->gdtr.base || c->gdtr_limit != tw->gdtr.limit, " GDTR=%08" PRIx32 "/%x(want %08" PRIx32 "/%x)",
		     c->gdtr_base, c->gdtr_limit, tw->gdtr.base, tw->gdtr.limit);
		DIFF(c->idtr_base != tw->idtr.base || c->idtr_limit != tw->idtr.limit, " IDTR=%08" PRIx32 "/%x(want %08" PRIx32 "/%x)",
		     c->idtr_base, c->idtr_limit, tw->idtr.base, tw->idtr.limit);
		DIFF(c->tr != tw->tr, " TR=%04x(want %04x)", c->tr, tw->tr);
		DIFF(c->cs != tw->cs || c->eip != eip_want, " CS:EIP=%04x:%08" PRIx32 "(want %04x:%08" PRIx32 ")", c->cs, c->eip,
		     tw->cs, eip_want);
		DIFF(c->ss != tw->ds || c->gpr[R_ESP] != esp_left[to], " SS:ESP=%04x:%08" PRIx32 "(want %04x:%08" PRIx32 ")", c->ss,
		     c->gpr[R_ESP], tw->ds, esp_left[to]);
#undef DIFF
		if (bad[0])
			report(v, R_ARRIVAL, w[i].last, "%s window %d arrives with%s", dir_name(w[i].dir), i, bad);
	}
}

void check_arrival(const struct trace *t, const struct image *img, struct verdict *v)
{
	struct window w[MAX_WINDOWS];
	int nw = find_windows(t, img, w, MAX_WINDOWS);
	check_arrival_in(t, img, w, nw, v);
}

/* ---- RESTORE-REGS, RESTORE-PTE -------------------------------------------------------------- */

void check_restore(const struct trace *t, const struct image *img, struct verdict *v)
{
	static const char *const names[8] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
	const struct tr_cpu *call = NULL;
	uint32_t call_at = 0;
	/* The guest's entry at the shim address, as memory holds it (replayed from writes). */
	uint64_t cur = img->shim_pte, guest = img->guest_pte;
	uint64_t pa = img->shim_pte_pa;
	unsigned esz = img->pte_size;
	bool guest_has_it = false; /* the guest's value is in place (since the last restore) */
	bool saved = false;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		const struct tr_cpu *c = &in->cpu;
		if (c->eip == img->ep[EP_HOST_CALL] && in->space == SP_HOST) {
			call = c;
			call_at = i;
		} else if (c->eip == img->ep[EP_HOST_AFTER_CALL] && in->space == SP_HOST && call) {
			char bad[256] = "";
			for (int r = 0; r < 8; r++)
				if (c->gpr[r] != call->gpr[r])
					snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " %s %08" PRIx32 "->%08" PRIx32, names[r],
						 call->gpr[r], c->gpr[r]);
			if ((c->eflags & ~0x10000u) != (call->eflags & ~0x10000u)) /* RF aside */
				snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " eflags %08" PRIx32 "->%08" PRIx32, call->eflags,
					 c->eflags);
			const uint16_t s0[6] = {call->cs, call->ss, call->ds, call->es, call->fs, call->gs};
			const uint16_t s1[6] = {c->cs, c->ss, c->ds, c->es, c->fs, c->gs};
			static const char *const sn[6] = {"cs", "ss", "ds", "es", "fs", "gs"};
			for (int r = 0; r < 6; r++)
				if (s0[r] != s1[r])
					snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " %s %04x->%04x", sn[r], s0[r], s1[r]);
			if (c->cr3 != call->cr3 || c->gdtr_base != call->gdtr_base || c->idtr_base != call->idtr_base ||
			    c->tr != call->tr)
				snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " cr3/gdtr/idtr/tr changed");
			if (bad[0])
				report(v, R_REGS, i, "host2monitor (called at #%u) returns with%s", call_at, bad);
			call = NULL;
		}
		for (uint32_t k = 0; k < in->ev_n; k++) {
			const struct tr_event *ev = &t->ev[in->ev_first + k];
			if (ev->kind == EV_GUEST_RUN) {
				if (cur != guest)
					report(v, R_PTE, i, "the guest runs with 0x%0*" PRIx64 " at its shim-address PTE (pa 0x%" PRIx64
					       "), its own entry was 0x%0*" PRIx64, (int)esz * 2, cur, pa, (int)esz * 2, guest);
				guest_has_it = true;
				saved = false;
			}
			if (ev->kind != EV_PTE_WRITE || ev->a + ev->size <= pa || ev->a >= pa + esz)
				continue;
			if (k > 0 && t->ev[in->ev_first + k - 1].kind == EV_PTE_WRITE &&
			    t->ev[in->ev_first + k - 1].a == ev->a)
				continue; /* the same write reported for another region */
			/* Bring in what memory held (hardware A/D updates), then apply the write. */
			if (ev->a - (ev->a % esz) == pa)
				cur = esz == 8 ? ev->old_entry : (ev->old_entry & 0xFFFFFFFFu);
			if (guest_has_it && !saved) {
				guest = cur; /* the first change after the guest ran: what the guest left */
				saved = true;
				guest_has_it = false;
			}
			for (unsigned b = 0; b < ev->size; b++) {
				uint64_t at = ev->a + b;
				if (at < pa || at >= pa + esz)
					continue;
				unsigned sh = (unsigned)(at - pa) * 8;
				cur = (cur & ~(0xFFull << sh)) | (((ev->c >> (8 * b)) & 0xFF) << sh);
			}
		}
	}
}

/* ---- FAULT, WALK ---------------------------------------------------------------------------- */

static const char *vector_name(unsigned v)
{
	static const char *const n[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "(9)",
					"#TS", "#NP", "#SS", "#GP", "#PF", "(15)", "#MF", "#AC", "#MC", "#XM"};
	return v < sizeof n / sizeof n[0] ? n[v] : "#?";
}

static void check_faults_in(const struct trace *t, const struct image *img,
			const struct window *w, int nw, struct verdict *v)
{
	(void)img; /* the windows were found with it */
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		for (uint32_t k = 0; k < in->ev_n; k++) {
			const struct tr_event *ev = &t->ev[in->ev_first + k];
			if (ev->kind != EV_FAULT)
				continue;
			const char *where = "outside the switch windows";
			for (int x = 0; x < nw; x++)
				if (i >= w[x].first && i <= w[x].last)
					where = w[x].dir == DIR_M2H ? "in the monitor->host window" : "in the host->monitor window";
			char err[32] = "";
			if (ev->size)
				snprintf(err, sizeof err, " error code 0x%" PRIx64 " (model)", ev->b);
			char cr2[32] = "";
			if (ev->a == T_PF)
				snprintf(cr2, sizeof cr2, " CR2=0x%08" PRIx64, ev->c);
			report(v, R_FAULT, i, "%s (vector %" PRIu64 ")%s%s at 0x%08" PRIx32 " `%s` %s", vector_name((unsigned)ev->a),
			       ev->a, err, cr2, in->cpu.eip, in->text[0] ? in->text : "(not fetched)", where);
			if (ev->a == T_PF && ev->walk_ok && in->len)
				report(v, R_WALK, i, "the engine raised #PF for CR2=0x%08" PRIx64 " but the model's walk succeeds", ev->c);
		}
		if (in->len && in->len_model && in->len != in->len_model)
			report(v, R_WALK, i, "the engine executed a %u-byte instruction at 0x%08" PRIx32 " where the model's "
			       "walk finds `%s` (%u bytes): the engine fetched other bytes", in->len, in->cpu.eip, in->text,
			       in->len_model);
		if (in->len && in->pa == UINT64_MAX)
			report(v, R_WALK, i, "the engine executed 0x%08" PRIx32 " but the model's walk faults on that fetch",
			       in->cpu.eip);
		for (uint32_t m = 0; m < in->mem_n; m++) {
			const struct tr_mem *a = &t->mem[in->mem_first + m];
			if (!a->lin_known)
				report(v, R_WALK, i, "`%s` %s physical 0x%" PRIx64 ", which no linear address it uses maps to in the model",
				       in->text, a->write ? "writes" : "reads", a->pa);
		}
	}
}

void check_faults(const struct trace *t, const struct image *img, struct verdict *v)
{
	struct window w[MAX_WINDOWS];
	int nw = find_windows(t, img, w, MAX_WINDOWS);
	check_faults_in(t, img, w, nw, v);
}

/* ---- REACH ---------------------------------------------------------------------------------- */

/* The objects a switch touches by linear address, and the physical page each must be. */
struct intended {
	uint32_t lin;
	uint64_t pa;
	const char *what;
};

static int intended_pages(const struct image *img, struct intended *o)
{
	static const char *const names[2][3] = {{"the host GDT", "the host IDT", "the host TSS"},
						{"the monitor GDT", "the monitor IDT", "the monitor TSS"}};
	static const int objs[3] = {OBJ_GDT, OBJ_IDT, OBJ_TSS};
	int n = 0;
	for (int s = 0; s < 2; s++) {
		const struct world *w = &img->w[s];
		const uint32_t lin[3] = {w->gdtr.base, w->idtr.base, 0};
		for (int k = 0; k < 3; k++) {
			uint32_t l = k < 2 ? lin[k] : 0;
			if (k == 2) /* the TSS: its linear address is in its descriptor's base */
				continue;
			o[n++] = (struct intended){l & PGMASK, w->obj_pa[objs[k]], names[s][k]};
		}
	}
	o[n++] = (struct intended){img->shim_lin, img->shim_pa, "the shim page"};
	return n;
}

static void check_reach_in(const struct trace *t, const struct image *img,
			const struct window *w, int nw, struct verdict *v)
{
	struct intended o[8];
	int no = intended_pages(img, o);
	for (int x = 0; x < nw; x++)
		for (uint32_t i = w[x].first; i <= w[x].last; i++) {
			const struct tr_insn *in = &t->insn[i];
			for (uint32_t m = 0; m < in->mem_n; m++) {
				const struct tr_mem *a = &t->mem[in->mem_first + m];
				if (!a->lin_known)
					continue;
				/* which objects live at this linear page (worlds may share addresses) */
				const char *what = NULL;
				bool ok = false, hit = false;
				for (int k = 0; k < no; k++)
					if ((a->lin & PGMASK) == o[k].lin) {
						hit = true;
						ok |= (a->pa & ~(uint64_t)0xFFF) == o[k].pa;
						what = o[k].what;
					}
				if (hit && !ok)
					report(v, R_REACH, i, "`%s` %s 0x%08" PRIx32 ", the linear address of %s, and reaches physical "
					       "0x%" PRIx64 " instead: the %s space maps it elsewhere", in->text,
					       a->write ? "writes" : "reads", a->lin, what, a->pa,
					       in->space == SP_HOST ? "host" : in->space == SP_MON ? "monitor" : "current");
			}
		}
}

void check_reach(const struct trace *t, const struct image *img, struct verdict *v)
{
	struct window w[MAX_WINDOWS];
	int nw = find_windows(t, img, w, MAX_WINDOWS);
	check_reach_in(t, img, w, nw, v);
}

/* ---- BOUND, NO-RETURN, ROUNDS --------------------------------------------------------------- */

static void check_end_in(const struct trace *t, const struct image *img, const struct window *w, int nw,
			 struct verdict *v)
{
	uint32_t last = t->n ? t->n - 1 : UINT32_MAX;
	switch (t->end) {
	case END_BOUND:
		report(v, R_BOUND, last, "%s", t->end_detail);
		break;
	case END_TIMEOUT:
	case END_STOPPED:
		report(v, R_RETURN, last, "%s", t->end_detail);
		break;
	case END_FAULT:
	case END_DONE:
	case END_INTERNAL:
		break;
	}
	if (t->end == END_DONE) {
		int done[2] = {0, 0};
		for (int i = 0; i < nw; i++)
			done[w[i].dir] += w[i].has_jmp;
		if ((uint32_t)done[DIR_H2M] != img->rounds || (uint32_t)done[DIR_M2H] != img->rounds)
			report(v, R_ROUNDS, last, "%d host->monitor and %d monitor->host switches, for %u round trips",
			       done[DIR_H2M], done[DIR_M2H], img->rounds);
	}
}

void check_end(const struct trace *t, const struct image *img, struct verdict *v)
{
	struct window w[MAX_WINDOWS];
	int nw = find_windows(t, img, w, MAX_WINDOWS);
	check_end_in(t, img, w, nw, v);
}

/* Earliest instruction first (ties keep checker order), so the first line is the first thing
 * that went wrong. */
/* Earliest instruction first; at one instruction, checker order (root causes first). A
 * stable insertion sort: n is small. */
static void sort_violations(struct verdict *v)
{
	int n = v->n < MAX_VIOLATIONS ? v->n : MAX_VIOLATIONS;
	for (int i = 1; i < n; i++) {
		struct violation x = v->v[i];
		int j = i - 1;
		while (j >= 0 && v->v[j].insn > x.insn) {
			v->v[j + 1] = v->v[j];
			j--;
		}
		v->v[j + 1] = x;
	}
}

void check_all(const struct trace *t, const struct image *img, const struct shim_code *code, struct verdict *v)
{
	/* Only the counters: the violation slots past n are never read, and clearing all of
	 * them cost more than the checkers on a passing run. */
	v->n = 0;
	memset(v->windows, 0, sizeof v->windows);
	memset(v->counts, 0, sizeof v->counts);
	/* The windows once for all checkers (each public checker finds them on its own). */
	struct window w[MAX_WINDOWS];
	int nw = find_windows(t, img, w, MAX_WINDOWS);
	check_tlb(t, img, v);
	check_faults_in(t, img, w, nw, v);
	check_reach_in(t, img, w, nw, v);
	check_tss_busy(t, img, v);
	check_window_in(t, img, w, nw, v);
	check_order_in(t, img, code, w, nw, v);
	check_arrival_in(t, img, w, nw, v);
	check_restore(t, img, v);
	check_end_in(t, img, w, nw, v);
	sort_violations(v);
}
