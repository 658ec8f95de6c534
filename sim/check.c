/*
 * check.c: the checkers. Each reads the trace and the image's facts and reports
 * violations with the instruction that shows them; none touches an engine.
 *
 * Most rules look at every instruction, its memory accesses or its events. Rather than one
 * walk over the trace per rule, scan() walks it once and hands each instruction to every
 * checker in turn; each keeps its own state in struct scan and reports in the order it would
 * alone. check_all then sorts by (instruction, checker): the lines and their order are those
 * of the checkers run one after another.
 */
#include "check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../model/mmu.h"

#define X_RULE_ID(id, name, why) name,
#define X_RULE_WHY(id, name, why) why,
static const char *const rule_ids[] = {RULES(X_RULE_ID)};
static const char *const rule_whys[] = {RULES(X_RULE_WHY)};
const char *rule_id(enum rule r) { return r < R_N ? rule_ids[r] : "?"; }
const char *rule_why(enum rule r) { return r < R_N ? rule_whys[r] : "?"; }

static void verdict_vadd(struct verdict *v, enum rule r, uint32_t insn, const char *fmt, va_list ap)
{
	v->counts[r]++;
	if (v->n < MAX_VIOLATIONS) {
		struct violation *x = &v->v[v->n];
		x->rule = r;
		x->insn = insn;
		vsnprintf(x->msg, sizeof x->msg, fmt, ap);
	}
	v->n++;
}

void verdict_add(struct verdict *v, enum rule r, uint32_t insn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verdict_vadd(v, r, insn, fmt, ap);
	va_end(ap);
}

static const char *dir_name(enum dir d) { return d == DIR_M2H ? "monitor->host" : "host->monitor"; }

/* In the shim: fetched from the shim's physical page (at its linear address, or at its
 * identity address while paging is being switched), or at its linear address. */
static bool in_shim(const struct image *img, const struct tr_insn *in)
{
	return (in->cpu.eip & PGMASK) == img->shim_lin ||
	       (in->pa != UINT64_MAX && (in->pa & ~(uint64_t)0xFFF) == img->shim_pa);
}

static bool has_event(const struct trace *t, const struct tr_insn *in, enum ev_kind k)
{
	for (uint32_t e = 0; e < in->ev_n; e++)
		if (t->ev[in->ev_first + e].kind == k)
			return true;
	return false;
}

int find_windows(const struct trace *t, const struct image *img, struct window *w, int max)
{
	int n = 0;
	bool prev = false; /* instruction i-1 is in the shim: i cannot open a window */
	for (uint32_t i = 0; i < t->n && n < max; i++) {
		bool cur = in_shim(img, &t->insn[i]);
		if (!cur || prev) {
			prev = cur;
			continue;
		}
		/* The window runs on while the next instruction is in the shim, up to and including
		 * a far jump; every instruction in it is in the shim, so its last one too. */
		struct window x = {t->insn[i].space == SP_HOST ? DIR_H2M : DIR_M2H, i, i, false};
		uint32_t j = i;
		for (;; j++) {
			if (has_event(t, &t->insn[j], EV_FAR_JMP)) {
				x.has_jmp = true;
				break;
			}
			if (j + 1 >= t->n || !in_shim(img, &t->insn[j + 1]))
				break;
		}
		x.last = j;
		w[n++] = x;
		i = j;
		prev = true;
	}
	return n;
}

#define MAX_WINDOWS (2 * SC_MAX_ROUNDS + 8)

/* ---- one pass, every checker ---------------------------------------------------------------- */

/* The checkers, in the order check_all runs them: at one instruction, a root cause first. */
enum chk { C_TLB, C_FAULT, C_REACH, C_TSS, C_WINDOW, C_ORDER, C_ARRIVAL, C_RESTORE, C_END, C_N };
#define ONE(c) (1u << (c))
#define BY_SCAN (ONE(C_TLB) | ONE(C_FAULT) | ONE(C_REACH) | ONE(C_TSS) | ONE(C_WINDOW) | ONE(C_ORDER) | ONE(C_RESTORE))

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

/* The objects a switch touches by linear address, and the physical page each must be. */
struct intended {
	uint32_t lin;
	uint64_t pa;
	const char *what;
};

/* What the checkers keep while scan() walks the trace. */
struct scan {
	const struct trace *t;
	const struct image *img;
	const struct shim_code *code;
	struct verdict *v;
	uint8_t *by;            /* which checker reported each slot of v->v (NULL: nobody asks) */
	unsigned on;            /* the checkers that run (ONE(C_...)) */
	const struct window *w; /* the windows (found first: the pass needs the end of each) */
	int nw;
	/* INVLPG, STALE-TLB, TLB-GLOBAL */
	int np, ns;
	struct pending pend[MAX_PENDING];
	struct survivor sv[MAX_SURVIVORS];
	/* REACH */
	int no;
	struct intended o[8];
	/* ORDER: the declared events per direction, and what the current window did */
	bool declared[2][SWE_N];
	bool distinct[2];       /* no event is declared twice */
	int nseen;
	enum swe seen[32];
	uint32_t at[32];
	/* RESTORE-REGS, RESTORE-PTE */
	const struct tr_cpu *call;
	uint32_t call_at;
	uint64_t cur, guest;    /* the entry at the shim address, and the guest's own */
	bool guest_has_it;      /* the guest's value is in place (since the last restore) */
	bool saved;
};

static void say(struct scan *s, enum chk c, enum rule r, uint32_t insn, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void say(struct scan *s, enum chk c, enum rule r, uint32_t insn, const char *fmt, ...)
{
	if (s->by && s->v->n < MAX_VIOLATIONS)
		s->by[s->v->n] = (uint8_t)c;
	va_list ap;
	va_start(ap, fmt);
	verdict_vadd(s->v, r, insn, fmt, ap);
	va_end(ap);
}

static int intended_pages(const struct image *img, struct intended *o)
{
	static const char *const names[2][2] = {{"the host GDT", "the host IDT"}, {"the monitor GDT", "the monitor IDT"}};
	static const int objs[2] = {OBJ_GDT, OBJ_IDT};
	int n = 0;
	for (int s = 0; s < 2; s++) {
		const struct world *w = &img->w[s];
		const uint32_t lin[2] = {w->gdtr.base, w->idtr.base};
		/* Not the TSS: its linear address is in its descriptor's base. */
		for (int k = 0; k < 2; k++)
			o[n++] = (struct intended){lin[k] & PGMASK, w->obj_pa[objs[k]], names[s][k]};
	}
	o[n++] = (struct intended){img->shim_lin, img->shim_pa, "the shim page"};
	return n;
}

/* Every checker's state as before the first instruction; `on` says which will run. */
static void scan_start(struct scan *s, unsigned on)
{
	s->on = on;
	s->np = s->ns = 0;
	if (on & ONE(C_REACH))
		s->no = intended_pages(s->img, s->o);
	if (on & ONE(C_ORDER)) {
		memset(s->declared, 0, sizeof s->declared);
		for (int d = 0; d < 2; d++) {
			s->distinct[d] = true;
			for (int k = 0; k < s->code->norder[d]; k++) {
				s->distinct[d] &= !s->declared[d][s->code->order[d][k]];
				s->declared[d][s->code->order[d][k]] = true;
			}
		}
	}
	s->nseen = 0;
	s->call = NULL;
	s->call_at = 0;
	s->cur = s->img->shim_pte;
	s->guest = s->img->guest_pte;
	s->guest_has_it = s->saved = false;
}

static void scan_init(struct scan *s, const struct trace *t, const struct image *img, const struct shim_code *code,
		      struct verdict *v)
{
	s->t = t;
	s->img = img;
	s->code = code;
	s->v = v;
	s->by = NULL;
	s->w = NULL;
	s->nw = 0;
}

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

/* A declared switch event of window x's direction, at instruction j. */
static void order_event(struct scan *s, int x, uint32_t j, const struct tr_event *ev)
{
	int e = swe_of(ev, s->w[x].dir, s->img);
	if (e >= 0 && s->declared[s->w[x].dir][e] && s->nseen < 32) {
		s->seen[s->nseen] = (enum swe)e;
		s->at[s->nseen++] = j;
	}
}

/* Window x is over: compare what it did with the declaration, a group at a time (a group's
 * events may come in any order among themselves, each once); report the first difference. */
static void order_end(struct scan *s, int x)
{
	const struct shim_code *code = s->code;
	const struct window *w = &s->w[x];
	enum dir d = w->dir;
	const enum swe *seen = s->seen;
	int ns = s->nseen;
	/* The declared events exactly in the declared order: every group complete, nothing
	 * twice, nothing extra. */
	if (s->distinct[d] && ns == code->norder[d] && memcmp(seen, code->order[d], (size_t)ns * sizeof *seen) == 0)
		return;
	char got[160] = ""; /* what was seen, for a report: written only when one is due */
	int k = 0, g0 = 0;
	bool bad = false;
	while (g0 < code->norder[d] && !bad) {
		int g1 = g0;
		while (g1 < code->norder[d] && code->group[d][g1] == code->group[d][g0])
			g1++;
		bool done[SWE_N] = {false};
		for (int m = 0; m < g1 - g0 && !bad; m++, k++) {
			enum swe due = SWE_N; /* the first member of the group not seen yet */
			for (int q = g0; q < g1 && due == SWE_N; q++)
				if (!done[code->order[d][q]])
					due = code->order[d][q];
			if (k >= ns) {
				seen_text(seen, ns, got, sizeof got);
				say(s, C_ORDER, R_ORDER, w->last, "%s window %d: %s never happens (seen: %s)", dir_name(d), x,
				    swe_name(due), got[0] ? got : "nothing");
				bad = true;
				break;
			}
			bool member = false;
			for (int q = g0; q < g1; q++)
				member |= seen[k] == code->order[d][q];
			if (!member || done[seen[k]]) {
				seen_text(seen, ns, got, sizeof got);
				say(s, C_ORDER, R_ORDER, s->at[k], "%s window %d: %s where %s is due (seen: %s)", dir_name(d), x,
				    swe_name(seen[k]), swe_name(due), got);
				bad = true;
				break;
			}
			done[seen[k]] = true;
		}
		g0 = g1;
	}
	if (!bad && k < ns && seen_text(seen, ns, got, sizeof got))
		say(s, C_ORDER, R_ORDER, s->at[k], "%s window %d: extra %s after the declared sequence (seen: %s)", dir_name(d),
		    x, swe_name(seen[k]), got);
}

/* ---- INVLPG / STALE-TLB -------------------------------------------------------------------- */

static bool covers(const struct pending *p, uint32_t lin)
{
	if (lin - p->lin >= p->size)
		return false;
	for (int i = 0; i < p->nexempt; i++)
		if (p->exempt[i] == (lin & PGMASK))
			return false;
	return true;
}

/* An access of instruction i through a global entry of the other space that survived. */
static void tlb_global_use(struct scan *s, uint32_t i)
{
	const struct trace *t = s->t;
	const struct tr_insn *in = &t->insn[i];
	struct survivor *sv = s->sv;
	for (int k = 0; k < s->ns; k++) {
		const struct survivor *g = &sv[k];
		if (g->space == in->space)
			continue; /* back in its own space the entry is right again */
		uint32_t lin = 0;
		uint64_t pa = UINT64_MAX;
		if (in->cpu.eip - g->lin < g->size) {
			lin = in->cpu.eip;
			pa = in->pa;
		}
		for (uint32_t m = 0; m < in->mem_n && pa == UINT64_MAX; m++) {
			const struct tr_mem *a = &t->mem[in->mem_first + m];
			if (a->lin_known && a->lin - g->lin < g->size) {
				lin = a->lin;
				pa = a->pa;
			}
		}
		if (pa == UINT64_MAX)
			continue;
		uint64_t stale = g->pa + (lin - g->lin);
		if ((stale & ~(uint64_t)0xFFF) != (pa & ~(uint64_t)0xFFF)) {
			say(s, C_TLB, R_GLOBAL, i, "0x%08" PRIx32 " may still translate to 0x%" PRIx64 " through the %s's global "
			    "entry that survived MOV CR3 at #%u (CR4.PGE=1); this space maps it to 0x%" PRIx64, lin, stale,
			    sc_space_name((enum sc_space)g->space), g->insn, pa);
			sv[k] = sv[--s->ns]; /* one report per entry */
			k--;
		}
	}
}

/* Uses by instruction i of a changed entry not invalidated yet: the fetch, then its data. */
static void tlb_pending_use(struct scan *s, uint32_t i)
{
	const struct trace *t = s->t;
	const struct tr_insn *in = &t->insn[i];
	struct pending *pend = s->pend;
	for (int p = 0; p < s->np; p++) {
		if (pend[p].space != in->space)
			continue;
		if (covers(&pend[p], in->cpu.eip)) {
			say(s, C_TLB, R_INVLPG, i, "fetch at 0x%08" PRIx32 " through the entry written at #%u (pa 0x%" PRIx64
			    ") with no INVLPG or CR3 reload since", in->cpu.eip, pend[p].insn, pend[p].pa);
			pend[p] = pend[--s->np]; /* one report per write */
			p--;
			continue;
		}
		for (uint32_t m = 0; m < in->mem_n; m++) {
			const struct tr_mem *a = &t->mem[in->mem_first + m];
			if (a->lin_known && covers(&pend[p], a->lin)) {
				say(s, C_TLB, R_INVLPG, i, "%s at 0x%08" PRIx32 " through the entry written at #%u (pa 0x%" PRIx64
				    ") with no INVLPG or CR3 reload since", a->write ? "write" : "read", a->lin, pend[p].insn,
				    pend[p].pa);
				pend[p] = pend[--s->np];
				p--;
				break;
			}
		}
	}
}

/* What an event of instruction i does to the translations a TLB may hold. */
static void tlb_event(struct scan *s, uint32_t i, const struct tr_event *ev)
{
	const struct tr_insn *in = &s->t->insn[i];
	struct pending *pend = s->pend;
	struct survivor *sv = s->sv;
	if (ev->kind == EV_GUEST_RUN) {
		for (int p = 0; p < s->np; p++)
			if (pend[p].space == in->space)
				say(s, C_TLB, R_STALE, i, "the guest runs while 0x%08" PRIx32 "+0x%" PRIx32
				    " may still translate through the entry changed at #%u", pend[p].lin, pend[p].size,
				    pend[p].insn);
	} else if (ev->kind == EV_PTE_WRITE && ev->lin_size && ev->space == in->space && ev->b != ev->c && ev->stale) {
		/* Only a translation that was present can be cached, and so be stale. */
		if (s->np < MAX_PENDING)
			pend[s->np++] = (struct pending){ev->lin, ev->lin_size, ev->space, ev->global, ev->large, i, ev->a, 0, {0}};
	} else if (ev->kind == EV_INVLPG) {
		/* INVLPG drops the page's TLB entry (the whole large page's) and every
		 * paging-structure cache entry (SDM 4.10.4.1): under a changed PDE that
		 * pointed to a page table, that one page is safe again. */
		for (int p = 0; p < s->np; p++) {
			if (!covers(&pend[p], (uint32_t)ev->a))
				continue;
			if (pend[p].size == PGSIZE || pend[p].large_leaf) {
				pend[p] = pend[--s->np];
				p--;
			} else if (pend[p].nexempt < 8) {
				pend[p].exempt[pend[p].nexempt++] = (uint32_t)ev->a & PGMASK;
			}
		}
		for (int k = 0; k < s->ns; k++) /* INVLPG drops global entries too */
			if ((uint32_t)ev->a - sv[k].lin < sv[k].size) {
				sv[k] = sv[--s->ns];
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
			return;
		for (int p = 0; p < s->np; p++)
			if (all || !pend[p].global || !pge) {
				pend[p] = pend[--s->np];
				p--;
			}
		if (all || !pge) {
			s->ns = 0;
		} else if (ev->kind == EV_MOV_CR3 && in->space >= 0) {
			/* Leaving in->space with PGE on: its global entries may survive. */
			const struct world *w = &s->img->w[in->space];
			for (int g = 0; g < w->nglobal && s->ns < MAX_SURVIVORS; g++) {
				int k = 0;
				while (k < s->ns && !(sv[k].space == in->space && sv[k].lin == w->global[g].lin))
					k++;
				if (k == s->ns)
					s->ns++; /* a new survivor; else refresh the one we have */
				sv[k] = (struct survivor){in->space, w->global[g].lin, w->global[g].size, w->global[g].pa, i};
			}
		}
	}
}

/* ---- TSS-BUSY ------------------------------------------------------------------------------- */

/* Instruction i is an LTR. */
static void tss_ltr(struct scan *s, uint32_t i)
{
	const struct trace *t = s->t;
	const struct image *img = s->img;
	const struct tr_insn *in = &t->insn[i];
	/* The descriptor's high dword as LTR read it. */
	bool found = false;
	for (uint32_t m = 0; m < in->mem_n; m++) {
		const struct tr_mem *a = &t->mem[in->mem_first + m];
		for (int w = 0; w < 2; w++) {
			if (a->write || a->pa != img->w[w].tss_desc_pa + 4 || a->size != 4)
				continue;
			found = true;
			unsigned type = (unsigned)(a->value >> 8) & 0xF;
			if (type != STS_T32A)
				say(s, C_TSS, R_TSS_BUSY, i, "LTR finds the %s TSS descriptor with type 0x%X (%s), not 0x9 (available)",
				    sc_space_name((enum sc_space)w), type, type == STS_T32B ? "busy" : "not a TSS");
		}
	}
	bool faulted = false;
	for (uint32_t k = 0; k < in->ev_n; k++)
		faulted |= t->ev[in->ev_first + k].kind == EV_FAULT && t->ev[in->ev_first + k].a == T_GP;
	if (faulted && !found)
		say(s, C_TSS, R_TSS_BUSY, i, "LTR raised #GP without reading a known TSS descriptor");
}

/* ---- SHIM-FETCH, IF-WINDOW ---------------------------------------------------------------- */

/* Instruction j of window x, or the jump into it (the instruction before it), which already
 * runs with IF=0. */
static void window_insn(struct scan *s, int x, uint32_t j, bool inside)
{
	const struct window *w = &s->w[x];
	const struct tr_insn *in = &s->t->insn[j];
	if (in->cpu.eflags & FL_IF)
		say(s, C_WINDOW, R_IF, j, "%s window %d: IF=1 at 0x%08" PRIx32 " (%s)", dir_name(w->dir), x, in->cpu.eip,
		    in->text);
	if (inside && (in->pa == UINT64_MAX || (in->pa & ~(uint64_t)0xFFF) != s->img->shim_pa))
		say(s, C_WINDOW, R_SHIM_FETCH, j, "%s window %d: 0x%08" PRIx32 " is fetched from physical 0x%" PRIx64
		    ", not the shim page 0x%" PRIx64, dir_name(w->dir), x, in->cpu.eip, in->pa, s->img->shim_pa);
}

static void window_end(struct scan *s, int x)
{
	const struct window *w = &s->w[x];
	uint32_t j = w->last + 1;
	if (!w->has_jmp && j < s->t->n)
		say(s, C_WINDOW, R_SHIM_FETCH, j, "%s window %d: control leaves the shim page at 0x%08" PRIx32
		    " without the far jump", dir_name(w->dir), x, s->t->insn[j].cpu.eip);
}

/* ---- RESTORE-REGS, RESTORE-PTE -------------------------------------------------------------- */

/* Instruction i as the call of host2monitor or the return from it. */
static void restore_call(struct scan *s, uint32_t i)
{
	static const char *const names[8] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
	const struct image *img = s->img;
	const struct tr_insn *in = &s->t->insn[i];
	const struct tr_cpu *c = &in->cpu;
	if (in->space != SP_HOST)
		return;
	if (c->eip == img->ep[EP_HOST_CALL]) {
		s->call = c;
		s->call_at = i;
	} else if (c->eip == img->ep[EP_HOST_AFTER_CALL] && s->call) {
		const struct tr_cpu *call = s->call;
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
			say(s, C_RESTORE, R_REGS, i, "host2monitor (called at #%u) returns with%s", s->call_at, bad);
		s->call = NULL;
	}
}

/* Event k of instruction i: the guest runs, or a write to the entry at the shim address
 * (replayed, so that memory's value is known when the guest runs). */
static void restore_event(struct scan *s, uint32_t i, uint32_t k, const struct tr_event *ev)
{
	const struct trace *t = s->t;
	uint64_t pa = s->img->shim_pte_pa;
	unsigned esz = s->img->pte_size;
	if (ev->kind == EV_GUEST_RUN) {
		if (s->cur != s->guest)
			say(s, C_RESTORE, R_PTE, i, "the guest runs with 0x%0*" PRIx64 " at its shim-address PTE (pa 0x%" PRIx64
			    "), its own entry was 0x%0*" PRIx64, (int)esz * 2, s->cur, pa, (int)esz * 2, s->guest);
		s->guest_has_it = true;
		s->saved = false;
	}
	if (ev->kind != EV_PTE_WRITE || ev->a + ev->size <= pa || ev->a >= pa + esz)
		return;
	const struct tr_insn *in = &t->insn[i];
	if (k > 0 && t->ev[in->ev_first + k - 1].kind == EV_PTE_WRITE && t->ev[in->ev_first + k - 1].a == ev->a)
		return; /* the same write reported for another region */
	/* Bring in what memory held (hardware A/D updates), then apply the write. */
	if (ev->a - (ev->a % esz) == pa)
		s->cur = esz == 8 ? ev->old_entry : (ev->old_entry & 0xFFFFFFFFu);
	if (s->guest_has_it && !s->saved) {
		s->guest = s->cur; /* the first change after the guest ran: what the guest left */
		s->saved = true;
		s->guest_has_it = false;
	}
	for (unsigned b = 0; b < ev->size; b++) {
		uint64_t at = ev->a + b;
		if (at < pa || at >= pa + esz)
			continue;
		unsigned sh = (unsigned)(at - pa) * 8;
		s->cur = (s->cur & ~(0xFFull << sh)) | (((ev->c >> (8 * b)) & 0xFF) << sh);
	}
}

/* ---- FAULT, WALK ---------------------------------------------------------------------------- */

static const char *vector_name(unsigned v)
{
	static const char *const n[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "(9)",
					"#TS", "#NP", "#SS", "#GP", "#PF", "(15)", "#MF", "#AC", "#MC", "#XM"};
	return v < sizeof n / sizeof n[0] ? n[v] : "#?";
}

/* An exception raised by instruction i; w is the window it lies in, if any. */
static void fault_event(struct scan *s, uint32_t i, const struct tr_event *ev, const struct window *w)
{
	const struct tr_insn *in = &s->t->insn[i];
	const char *where = !w ? "outside the switch windows"
		: w->dir == DIR_M2H ? "in the monitor->host window" : "in the host->monitor window";
	char err[32] = "";
	if (ev->size)
		snprintf(err, sizeof err, " error code 0x%" PRIx64 " (model)", ev->b);
	char cr2[32] = "";
	if (ev->a == T_PF)
		snprintf(cr2, sizeof cr2, " CR2=0x%08" PRIx64, ev->c);
	say(s, C_FAULT, R_FAULT, i, "%s (vector %" PRIu64 ")%s%s at 0x%08" PRIx32 " `%s` %s", vector_name((unsigned)ev->a),
	    ev->a, err, cr2, in->cpu.eip, in->text[0] ? in->text : "(not fetched)", where);
	if (ev->a == T_PF && ev->walk_ok && in->len)
		say(s, C_FAULT, R_WALK, i, "the engine raised #PF for CR2=0x%08" PRIx64 " but the model's walk succeeds", ev->c);
}

/* The engine's fetch of instruction i against the model's. */
static void fault_fetch(struct scan *s, uint32_t i)
{
	const struct tr_insn *in = &s->t->insn[i];
	if (!in->len)
		return;
	if (in->len_model && in->len != in->len_model)
		say(s, C_FAULT, R_WALK, i, "the engine executed a %u-byte instruction at 0x%08" PRIx32 " where the model's "
		    "walk finds `%s` (%u bytes): the engine fetched other bytes", in->len, in->cpu.eip, in->text,
		    in->len_model);
	if (in->pa == UINT64_MAX)
		say(s, C_FAULT, R_WALK, i, "the engine executed 0x%08" PRIx32 " but the model's walk faults on that fetch",
		    in->cpu.eip);
}

/* ---- REACH ---------------------------------------------------------------------------------- */

/* A data access a (at a linear address the model knows) of instruction i, in a window. */
static void reach_access(struct scan *s, uint32_t i, const struct tr_mem *a)
{
	/* which objects live at this linear page (worlds may share addresses); one that is the
	 * very page reached settles it */
	const uint32_t page = a->lin & PGMASK;
	const uint64_t pa = a->pa & ~(uint64_t)0xFFF;
	const char *what = NULL; /* the last object at that page, as the report names it */
	for (int k = s->no; k-- > 0;)
		if (page == s->o[k].lin) {
			if (pa == s->o[k].pa)
				return;
			if (!what)
				what = s->o[k].what;
		}
	if (what) {
		const struct tr_insn *in = &s->t->insn[i];
		say(s, C_REACH, R_REACH, i, "`%s` %s 0x%08" PRIx32 ", the linear address of %s, and reaches physical "
		    "0x%" PRIx64 " instead: the %s space maps it elsewhere", in->text, a->write ? "writes" : "reads", a->lin,
		    what, a->pa, in->space == SP_HOST ? "host" : in->space == SP_MON ? "monitor" : "current");
	}
}

/* ---- the pass ------------------------------------------------------------------------------- */

/* The rest of scan(): what it hands on when an instruction needs more than a glance. Kept
 * out of line (noinline) so that the loop over the trace stays a few registers wide. */
#define COLD __attribute__((noinline))

/* Instruction i's events; x is the window it lies in, or -1. */
static COLD void scan_events(struct scan *s, uint32_t i, int x)
{
	const struct tr_insn *in = &s->t->insn[i];
	const unsigned on = s->on;
	for (uint32_t k = 0; k < in->ev_n; k++) {
		const struct tr_event *ev = &s->t->ev[in->ev_first + k];
		if (on & ONE(C_TLB))
			tlb_event(s, i, ev);
		if ((on & ONE(C_FAULT)) && ev->kind == EV_FAULT)
			fault_event(s, i, ev, x >= 0 ? &s->w[x] : NULL);
		if (on & ONE(C_RESTORE))
			restore_event(s, i, k, ev);
		if ((on & ONE(C_ORDER)) && x >= 0)
			order_event(s, x, i, ev);
	}
}

/* Instruction i's data accesses: one the model cannot place (FAULT), and in a window what
 * each reaches (REACH); x is the window, or -1. */
static COLD void scan_mem(struct scan *s, uint32_t i, int x)
{
	const struct tr_insn *in = &s->t->insn[i];
	const bool fault = s->on & ONE(C_FAULT), reach = (s->on & ONE(C_REACH)) && x >= 0;
	const struct tr_mem *a = &s->t->mem[in->mem_first], *end = a + in->mem_n;
	for (; a < end; a++) {
		if (!a->lin_known) {
			if (fault)
				say(s, C_FAULT, R_WALK, i, "`%s` %s physical 0x%" PRIx64 ", which no linear address it uses "
				    "maps to in the model", in->text, a->write ? "writes" : "reads", a->pa);
		} else if (reach) {
			reach_access(s, i, a);
		}
	}
}

static COLD void scan_tlb(struct scan *s, uint32_t i)
{
	if (s->ns)
		tlb_global_use(s, i);
	if (s->np)
		tlb_pending_use(s, i);
}

/* These take what the loop's glance let through, for the checker if it runs. */
static COLD void scan_restore(struct scan *s, uint32_t i)
{
	if (s->on & ONE(C_RESTORE))
		restore_call(s, i);
}

static COLD void scan_fetch(struct scan *s, uint32_t i)
{
	if (s->on & ONE(C_FAULT))
		fault_fetch(s, i);
}

static COLD void scan_ltr(struct scan *s, uint32_t i)
{
	if ((s->on & ONE(C_TSS)) && strncmp(s->t->insn[i].text, "ltr", 3) == 0)
		tss_ltr(s, i);
}

static COLD void scan_window(struct scan *s, int x, uint32_t i, bool inside)
{
	if (s->on & ONE(C_WINDOW))
		window_insn(s, x, i, inside);
}

/* Window x ends at instruction i. */
static COLD void scan_window_end(struct scan *s, int x)
{
	if (s->on & ONE(C_WINDOW))
		window_end(s, x);
	if (s->on & ONE(C_ORDER)) {
		s->v->windows[s->w[x].dir]++;
		order_end(s, x);
	}
	s->nseen = 0;
}

/* Does any recorded access lack its linear address? (Else FAULT need not look at them.) */
static bool any_unplaced(const struct trace *t)
{
	bool any = false;
	for (uint32_t m = 0; m < t->nmem; m++)
		any |= !t->mem[m].lin_known;
	return any;
}

/* Hand every instruction to the checkers in s->on. Each checker's reports come out in the
 * order of its own loop over the trace; they interleave with the others'. The tests here
 * only decide whether an instruction needs a checker's look; the checker's own function
 * then tests it in full. */
static void scan(struct scan *s)
{
	const struct trace *t = s->t;
	const uint32_t n = t->n;
	/* Data accesses matter to FAULT only where one is unplaced, and to REACH in windows. */
	const bool mem_out = (s->on & ONE(C_FAULT)) && any_unplaced(t), mem_in = mem_out || (s->on & ONE(C_REACH));
	const uint32_t call_eip = s->img->ep[EP_HOST_CALL], ret_eip = s->img->ep[EP_HOST_AFTER_CALL];
	const uint64_t shim_pa = s->img->shim_pa;
	/* Window x is the first that does not end before i: i is in it from first to last. */
	int x = 0;
	uint32_t first = s->nw ? s->w[0].first : UINT32_MAX, last = s->nw ? s->w[0].last : UINT32_MAX;
	s->nseen = 0;
	const struct tr_insn *in = t->insn;
	for (uint32_t i = 0; i < n; i++, in++) {
		const bool inside = i >= first;
		if (s->ns | s->np) /* only TLB's own events make them non-zero */
			scan_tlb(s, i);
		if ((in->cpu.eip == call_eip || in->cpu.eip == ret_eip) && in->space == SP_HOST)
			scan_restore(s, i);
		if (in->ev_n)
			scan_events(s, i, inside ? x : -1);
		if (in->len != in->len_model || in->pa == UINT64_MAX)
			scan_fetch(s, i);
		if (in->mem_n && (inside ? mem_in : mem_out))
			scan_mem(s, i, inside ? x : -1);
		if (in->text[0] == 'l' && in->text[1] == 't')
			scan_ltr(s, i);
		/* IF is checked from the jump into a window (the instruction before it) on. */
		if (i + 1 >= first &&
		    ((in->cpu.eflags & FL_IF) || (inside && (in->pa == UINT64_MAX || (in->pa & ~(uint64_t)0xFFF) != shim_pa))))
			scan_window(s, x, i, inside);
		if (i == last) {
			scan_window_end(s, x);
			x++;
			first = x < s->nw ? s->w[x].first : UINT32_MAX;
			last = x < s->nw ? s->w[x].last : UINT32_MAX;
		}
	}
}

/* ---- ARRIVAL -------------------------------------------------------------------------------- */

static const struct tr_cpu *after(const struct trace *t, uint32_t i)
{
	return i + 1 < t->n ? &t->insn[i + 1].cpu : &t->final;
}

static void check_arrival_in(struct scan *s)
{
	const struct trace *t = s->t;
	const struct image *img = s->img;
	const struct window *w = s->w;
	/* Each world's stack pointer as it left through the shim. */
	uint32_t esp_left[2] = {0, img->w[SP_MON].stack_top};
	bool mon_started = false;
	for (int i = 0; i < s->nw; i++) {
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
			say(s, C_ARRIVAL, R_ARRIVAL, w[i].last, "%s window %d arrives with%s", dir_name(w[i].dir), i, bad);
	}
}

/* ---- BOUND, NO-RETURN, ROUNDS --------------------------------------------------------------- */

static void check_end_in(struct scan *s)
{
	const struct trace *t = s->t;
	uint32_t last = t->n ? t->n - 1 : UINT32_MAX;
	switch (t->end) {
	case END_BOUND:
		say(s, C_END, R_BOUND, last, "%s", t->end_detail);
		break;
	case END_TIMEOUT:
	case END_STOPPED:
		say(s, C_END, R_RETURN, last, "%s", t->end_detail);
		break;
	case END_FAULT:
	case END_DONE:
	case END_INTERNAL:
		break;
	}
	if (t->end == END_DONE) {
		int done[2] = {0, 0};
		for (int i = 0; i < s->nw; i++)
			done[s->w[i].dir] += s->w[i].has_jmp;
		if ((uint32_t)done[DIR_H2M] != s->img->rounds || (uint32_t)done[DIR_M2H] != s->img->rounds)
			say(s, C_END, R_ROUNDS, last, "%d host->monitor and %d monitor->host switches, for %u round trips",
			    done[DIR_H2M], done[DIR_M2H], s->img->rounds);
	}
}

/* ---- one checker at a time, and all of them ------------------------------------------------- */

static void run_one(struct scan *s, enum chk c)
{
	scan_start(s, ONE(c));
	if (c == C_ARRIVAL)
		check_arrival_in(s);
	else if (c == C_END)
		check_end_in(s);
	else
		scan(s);
}

/* A public checker: c alone, appending to v (with the windows when it needs them). */
static void check_one(const struct trace *t, const struct image *img, const struct shim_code *code, struct verdict *v,
		      enum chk c)
{
	struct scan s;
	scan_init(&s, t, img, code, v);
	struct window w[MAX_WINDOWS];
	if (c != C_TLB && c != C_TSS && c != C_RESTORE) {
		s.w = w;
		s.nw = find_windows(t, img, w, MAX_WINDOWS);
	}
	run_one(&s, c);
}

void check_order(const struct trace *t, const struct image *img, const struct shim_code *code, struct verdict *v)
{
	check_one(t, img, code, v, C_ORDER);
}
void check_tlb(const struct trace *t, const struct image *img, struct verdict *v) { check_one(t, img, NULL, v, C_TLB); }
void check_tss_busy(const struct trace *t, const struct image *img, struct verdict *v)
{
	check_one(t, img, NULL, v, C_TSS);
}
void check_window(const struct trace *t, const struct image *img, struct verdict *v)
{
	check_one(t, img, NULL, v, C_WINDOW);
}
void check_arrival(const struct trace *t, const struct image *img, struct verdict *v)
{
	check_one(t, img, NULL, v, C_ARRIVAL);
}
void check_restore(const struct trace *t, const struct image *img, struct verdict *v)
{
	check_one(t, img, NULL, v, C_RESTORE);
}
void check_faults(const struct trace *t, const struct image *img, struct verdict *v)
{
	check_one(t, img, NULL, v, C_FAULT);
}
void check_end(const struct trace *t, const struct image *img, struct verdict *v) { check_one(t, img, NULL, v, C_END); }
void check_reach(const struct trace *t, const struct image *img, struct verdict *v)
{
	check_one(t, img, NULL, v, C_REACH);
}

/* Earliest instruction first; at one instruction, checker order (root causes first), and a
 * checker's own reports in its order. A stable insertion sort: n is small. */
static void sort_violations(struct verdict *v, uint8_t *by)
{
	int n = v->n < MAX_VIOLATIONS ? v->n : MAX_VIOLATIONS;
	for (int i = 1; i < n; i++) {
		struct violation x = v->v[i];
		uint8_t c = by[i];
		int j = i - 1;
		while (j >= 0 && (v->v[j].insn > x.insn || (v->v[j].insn == x.insn && by[j] > c))) {
			v->v[j + 1] = v->v[j];
			by[j + 1] = by[j];
			j--;
		}
		v->v[j + 1] = x;
		by[j + 1] = c;
	}
}

static void verdict_clear(struct verdict *v)
{
	/* Only the counters: the violation slots past n are never read, and clearing all of
	 * them cost more than the checkers on a passing run. */
	v->n = 0;
	memset(v->windows, 0, sizeof v->windows);
	memset(v->counts, 0, sizeof v->counts);
}

void check_all(const struct trace *t, const struct image *img, const struct shim_code *code, struct verdict *v)
{
	verdict_clear(v);
	struct scan s;
	scan_init(&s, t, img, code, v);
	uint8_t by[MAX_VIOLATIONS];
	s.by = by;
	struct window w[MAX_WINDOWS];
	s.w = w;
	s.nw = find_windows(t, img, w, MAX_WINDOWS);
	scan_start(&s, BY_SCAN);
	scan(&s);
	check_arrival_in(&s);
	check_end_in(&s);
	/* More reports than slots: which ones are kept depends on the order they came in, and
	 * that is one checker after another. */
	if (v->n > MAX_VIOLATIONS) {
		verdict_clear(v);
		for (int c = 0; c < C_N; c++)
			run_one(&s, (enum chk)c);
	}
	sort_violations(v, by);
}
