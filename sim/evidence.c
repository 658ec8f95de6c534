/*
 * evidence.c: page walks behind violations (see evidence.h).
 */
#include "evidence.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../model/mmu.h"

/* Append to a fixed buffer; output past its end is dropped (these are display strings). */
static void add(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *out, size_t n, const char *fmt, ...)
{
	size_t k = strlen(out);
	if (k + 1 >= n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out + k, n - k, fmt, ap);
	va_end(ap);
}

#define XD_BIT ((uint64_t)PTE_NX_HI << 32)

/* The flags of an entry as the SDM names them; pde says whether PS means a large page. */
static void flags_str(uint64_t e, bool pde, bool pse_on, char *out, size_t n)
{
	out[0] = '\0';
	if (!(e & PTE_P)) {
		snprintf(out, n, "not present");
		return;
	}
	static const struct {
		uint64_t bit;
		const char *name;
	} f[] = {{PTE_P, "P"}, {PTE_W, "W"}, {PTE_U, "U"}, {PTE_PWT, "PWT"}, {PTE_PCD, "PCD"}, {PTE_A, "A"}, {PTE_D, "D"}};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (e & f[i].bit)
			add(out, n, "%s%s", out[0] ? " " : "", f[i].name);
	if (pde && (e & PTE_PS))
		add(out, n, " %s", pse_on ? "PS" : "PS(ignored: CR4.PSE=0)");
	if (e & PTE_G)
		add(out, n, " G");
	if (e & XD_BIT)
		add(out, n, " XD");
}

static void pfec_str(uint32_t err, char *out, size_t n)
{
	snprintf(out, n, "%s, %s%s%s%s", err & PFEC_P ? "protection" : "not present", err & PFEC_W ? "write" : "read",
		 err & PFEC_U ? ", user" : "", err & PFEC_RSVD ? ", reserved bit" : "", err & PFEC_I ? ", fetch" : "");
}

/* Which of the levels read lack bit, by name ("the PDE and the PTE"). */
static void levels_without(const struct walk *w, uint64_t bit, bool want_set, char *out, size_t n)
{
	out[0] = '\0';
	for (int k = 0; k < w->nlevels; k++) {
		bool set = (w->level[k].value & bit) != 0;
		if (set == want_set)
			add(out, n, "%s%s", out[0] ? " and the " : "the ", k == 0 ? "PDE" : "PTE");
	}
}

int walk_evidence(const struct physmem *mem, const struct paging_regs *r, uint32_t lin, enum access acc, char *out,
		  size_t n)
{
	out[0] = '\0';
	struct walk w = paging_walk(mem, r, lin, acc, 0);
	if (!(r->cr0 & CR0_PG)) {
		add(out, n, "CR0.PG=0: no paging, linear 0x%08" PRIx32 " is physical 0x%08" PRIx32, lin, lin);
		return w.status;
	}
	bool pae = (r->cr4 & CR4_PAE) != 0, pse = (r->cr4 & CR4_PSE) != 0;
	int width = pae ? 16 : 8;
	char fl[96];
	add(out, n, "CR3 0x%08" PRIx32, r->cr3);
	uint64_t next_table = r->cr3 & PGMASK; /* where the next level is read from */
	if (pae) {
		unsigned i = PAE_PDPX(lin);
		uint64_t e = r->pdpte[i];
		flags_str(e & ~(uint64_t)(PTE_W | PTE_U | PTE_A | PTE_D), false, false, fl, sizeof fl);
		add(out, n, " -> PDPTE[%u] = 0x%016" PRIx64 " (%s; the register CR3 loaded)", i, e, fl);
		if (!(e & PTE_P)) {
			add(out, n, " => #PF, error code 0x%x (not present)", w.err);
			return w.status;
		}
		if (w.status == WALK_BADPDPTE) {
			add(out, n, " => reserved bits 0x%" PRIx64 " set: MOV CR3 would have raised #GP", e & PAE_PDPTE_RSVD);
			return w.status;
		}
		next_table = e & PAE_ADDR_MASK;
	}
	for (int k = 0; k < w.nlevels; k++) {
		uint64_t e = w.level[k].value;
		unsigned idx = pae ? (k == 0 ? PAE_PDX(lin) : PAE_PTX(lin)) : (k == 0 ? PDX(lin) : PTX(lin));
		flags_str(e, k == 0, pae || pse, fl, sizeof fl);
		add(out, n, " -> %s[%u] @0x%" PRIx64 " = 0x%0*" PRIx64 " (%s)", k == 0 ? "PDE" : "PTE", idx,
		    w.level[k].entry_pa, width, e, fl);
		next_table = pae ? e & PAE_ADDR_MASK : e & PGMASK;
	}
	char pf[80];
	pfec_str(w.err, pf, sizeof pf);
	switch (w.status) {
	case WALK_OK:
		if (w.page_size > PGSIZE)
			add(out, n, " -> %u MiB page 0x%" PRIx64 " -> 0x%" PRIx64, w.page_size >> 20,
			    w.pa & ~(uint64_t)(w.page_size - 1), w.pa);
		else
			add(out, n, " -> 0x%" PRIx64, w.pa);
		break;
	case WALK_BADPHYS:
		add(out, n, " -> the %s at 0x%" PRIx64 " lies outside physical memory [0x%" PRIx64 ", 0x%" PRIx64 ")",
		    w.nlevels == 0 ? "page directory" : "page table", next_table, mem->base, mem->base + mem->size);
		break;
	case WALK_FAULT:
		if (!(w.err & PFEC_P)) {
			add(out, n, " => #PF, error code 0x%x (%s)", w.err, pf);
		} else if (w.err & PFEC_RSVD) {
			add(out, n, " => XD (bit 63) set while EFER.NXE=0 is a reserved bit: #PF, error code 0x%x (%s)", w.err, pf);
		} else {
			char who[64];
			add(out, n, " -> 0x%" PRIx64 ", but", w.pa);
			if (acc == ACC_WRITE && !w.writable) {
				levels_without(&w, PTE_W, false, who, sizeof who);
				add(out, n, " R/W=0 in %s and CR0.WP=1", who);
			} else if (acc == ACC_FETCH && w.nx) {
				levels_without(&w, XD_BIT, true, who, sizeof who);
				add(out, n, " XD=1 in %s with EFER.NXE=1", who);
			} else {
				add(out, n, " the rights deny it");
			}
			add(out, n, ": #PF, error code 0x%x (%s)", w.err, pf);
		}
		break;
	case WALK_BADPDPTE: /* handled above */
		break;
	}
	return w.status;
}

/* ---- violations --------------------------------------------------------------------------- */

static const char *acc_name(enum access a) { return a == ACC_WRITE ? "write" : a == ACC_FETCH ? "fetch" : "read"; }

static const char *space_owner(int sp)
{
	return sp == SP_HOST ? "the host's" : sp == SP_MON ? "the monitor's" : "a transition";
}

/* Undo (back) or redo (forward) instruction i's recorded writes on mem. */
static void replay(struct physmem *m, const struct trace *t, uint32_t i, bool forward)
{
	const struct tr_insn *in = &t->insn[i];
	for (uint32_t k = 0; k < in->mem_n; k++) {
		const struct tr_mem *a = &t->mem[in->mem_first + (forward ? k : in->mem_n - 1 - k)];
		uint8_t *q = a->write ? phys_ptr(m, a->pa, a->size) : NULL;
		uint64_t v = forward ? a->value : a->old;
		for (unsigned b = 0; q && b < a->size; b++)
			q[b] = (uint8_t)(v >> (8 * b));
	}
}

static bool explains(enum rule r)
{
	return r == R_FAULT || r == R_REACH || r == R_INVLPG || r == R_GLOBAL || r == R_WALK || r == R_SHIM_FETCH ||
	       r == R_STALE;
}

struct target {
	uint32_t lin;
	enum access acc;
	const char *what;   /* "CR2", or the access kind */
};

/* The #PF the instruction raised, if any. */
static const struct tr_event *page_fault_at(const struct trace *t, uint32_t i)
{
	const struct tr_insn *in = &t->insn[i];
	for (uint32_t k = 0; k < in->ev_n; k++) {
		const struct tr_event *ev = &t->ev[in->ev_first + k];
		if (ev->kind == EV_FAULT && ev->a == T_PF)
			return ev;
	}
	return NULL;
}

static struct target pf_target(const struct tr_insn *in, const struct tr_event *pf)
{
	uint32_t cr2 = (uint32_t)pf->c;
	/* The engine's own rule (engine.c): a fetch when CR2 lies in the instruction's first
	 * bytes and the model could not fetch them; else the error code's W bit. */
	enum access acc = cr2 - in->cpu.eip < 16u && in->pa == UINT64_MAX ? ACC_FETCH
		: (pf->b & PFEC_W) ? ACC_WRITE : ACC_READ;
	return (struct target){cr2, acc, "CR2"};
}

/* Messages print linear addresses as 0x%08x: every such number, in order. */
static int linear_numbers(const char *msg, uint32_t *out, int max)
{
	int k = 0;
	for (const char *s = msg; (s = strstr(s, "0x")) && k < max; s += 2) {
		const char *h = s + 2;
		int len = 0;
		while (len < 17 && ((h[len] >= '0' && h[len] <= '9') || (h[len] >= 'a' && h[len] <= 'f')))
			len++;
		if (len == 8)
			out[k++] = (uint32_t)strtoul(h, NULL, 16);
	}
	return k;
}

static bool find_target(const struct trace *t, const struct violation *v, struct target *tg)
{
	const struct tr_insn *in = &t->insn[v->insn];
	const struct tr_event *pf = page_fault_at(t, v->insn);
	if (v->rule == R_FAULT) {
		if (!pf)
			return false; /* #GP, #UD...: no address to walk */
		*tg = pf_target(in, pf);
		return true;
	}
	uint32_t nums[8];
	int nn = linear_numbers(v->msg, nums, 8);
	/* REACH says "`insn` writes 0x...", INVLPG "write at 0x..." (and "written at #" of the
	 * PTE write, which is not about this access). */
	bool says_write = strstr(v->msg, " writes 0x") || strncmp(v->msg, "write at 0x", 11) == 0;
	for (int x = 0; x < nn; x++) {
		uint32_t lin = nums[x];
		if (pf && (uint32_t)pf->c == lin) {
			*tg = pf_target(in, pf);
			return true;
		}
		/* The recorded access at that address (the one the message's verb names). */
		const struct tr_mem *hit = NULL;
		for (uint32_t m = 0; m < in->mem_n; m++) {
			const struct tr_mem *a = &t->mem[in->mem_first + m];
			if (a->lin_known && a->lin == lin && (!hit || a->write == says_write))
				hit = a;
		}
		if (hit) {
			*tg = (struct target){lin, hit->write ? ACC_WRITE : ACC_READ, hit->write ? "write" : "read"};
			return true;
		}
		if (lin == in->cpu.eip) {
			*tg = (struct target){lin, ACC_FETCH, "fetch"};
			return true;
		}
		if (v->rule == R_STALE) { /* the region the guest may reach through a stale entry */
			*tg = (struct target){lin, ACC_READ, "read"};
			return true;
		}
	}
	return false;
}

void violation_evidence(const struct pipeline *p, const struct violation *v, char *out, size_t n)
{
	if (n == 0)
		return;
	out[0] = '\0';
	const struct trace *t = &p->t;
	if (!p->eng || !explains(v->rule) || v->insn >= t->n)
		return;
	struct target tg;
	if (!find_target(t, v, &tg))
		return;
	struct physmem em = engine_memory(p->eng);
	if (!em.bytes || !em.size)
		return;
	struct physmem m = em;
	m.bytes = malloc(em.size);
	if (!m.bytes)
		return;
	memcpy(m.bytes, em.bytes, em.size);

	const struct tr_insn *in = &t->insn[v->insn];
	/* PAE: the PDPTEs are what the last MOV CR3 (or paging-mode write) loaded, from memory as
	 * it was then; so wind back to just after that instruction, load, then forward again. */
	uint32_t loaded_after = 0;
	bool have_load = false;
	for (uint32_t i = v->insn; i-- > 0 && !have_load;) {
		const struct tr_insn *x = &t->insn[i];
		for (uint32_t k = 0; k < x->ev_n; k++) {
			enum ev_kind kd = t->ev[x->ev_first + k].kind;
			if (kd == EV_MOV_CR3 || kd == EV_MOV_CR0 || kd == EV_MOV_CR4) {
				loaded_after = i + 1;
				have_load = true;
				break;
			}
		}
	}
	for (uint32_t i = t->n; i-- > loaded_after;)
		replay(&m, t, i, false);
	struct paging_regs r = {in->cpu.cr0, in->cpu.cr3, in->cpu.cr4, in->cpu.efer, {0, 0, 0, 0}};
	paging_load_pdptes(&m, &r);
	for (uint32_t i = loaded_after; i < v->insn; i++)
		replay(&m, t, i, true);

	char walk[700];
	walk_evidence(&m, &r, tg.lin, tg.acc, walk, sizeof walk);
	if (strcmp(tg.what, "CR2") == 0)
		snprintf(out, n, "CR2 0x%08" PRIx32 " (%s) at #%u under %s CR3 0x%08" PRIx32 ": %s", tg.lin, acc_name(tg.acc),
			 v->insn, space_owner(in->space), in->cpu.cr3, walk);
	else
		snprintf(out, n, "%s 0x%08" PRIx32 " at #%u under %s CR3 0x%08" PRIx32 ": %s", tg.what, tg.lin, v->insn,
			 space_owner(in->space), in->cpu.cr3, walk);
	/* Where the other world's tables send that address: the page REACH expected, or the
	 * global entry TLB-GLOBAL says may have survived. */
	if ((v->rule == R_REACH || v->rule == R_GLOBAL) && (in->space == SP_HOST || in->space == SP_MON)) {
		int other = in->space == SP_HOST ? SP_MON : SP_HOST;
		struct paging_regs o = p->img.w[other].regs;
		paging_load_pdptes(&m, &o);
		walk_evidence(&m, &o, tg.lin, tg.acc, walk, sizeof walk);
		add(out, n, "\nunder %s CR3 0x%08" PRIx32 "%s: %s", space_owner(other), o.cr3,
		    v->rule == R_REACH ? ", for comparison" : ", where the surviving global entry comes from", walk);
	}
	/* INVLPG, STALE-TLB: the translation a TLB may still hold is the one before the write
	 * the message names; memory wound back to just before that instruction shows it. */
	const char *w_at = strstr(v->msg, "written at #");
	if (!w_at)
		w_at = strstr(v->msg, "changed at #");
	if ((v->rule == R_INVLPG || v->rule == R_STALE) && w_at) {
		uint32_t wi = (uint32_t)strtoul(w_at + strlen("written at #"), NULL, 10);
		if (wi < v->insn) {
			for (uint32_t i = v->insn; i-- > wi;)
				replay(&m, t, i, false);
			walk_evidence(&m, &r, tg.lin, tg.acc, walk, sizeof walk);
			add(out, n, "\nbefore the write at #%u (what a TLB may still hold): %s", wi, walk);
		}
	}
	free(m.bytes);
}

void evidence_fprint(FILE *f, const char *prefix, const char *text)
{
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);
		fprintf(f, "%s%.*s\n", prefix, (int)len, text);
		text += len + (nl ? 1 : 0);
	}
}
