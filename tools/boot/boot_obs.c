/*
 * boot_obs.c: observations. The boot kernel prints one per observation point of host_main
 * (entry, after each round trip, end) and one when an exception reaches its host-IDT gates;
 * the engine's log says when the machine shut down or stopped in a trap routine. The same
 * scenario runs in Unicorn (pl_run); its trace gives the state at the same points: the
 * instruction at host_loop (right after OBSERVE 0), each instruction at host_after_call
 * (OBSERVE 1), and the final state at host_done (OBSERVE 2). Memory at those points is the
 * image replayed with the trace's writes. Both sides become lists of observations; the first
 * field that differs is the divergence.
 */
#include "boot_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../shim/shim_abi.h"
#include "mmu.h"
#include "paging.h"

#define F_NAME(id, name) name,
const char *const field_name[F_N] = {OBS_FIELDS(F_NAME)};
_Static_assert(F_N <= 64, "struct obs keeps one bit per field in a uint64_t");

const char *const okind_name[] = {"entry", "round", "end", "exception", "shutdown", "trap", "timeout", "stopped",
				  "not run"};

/* EFLAGS: the observer is reached after host.inc's `cmp dword [pb_observer], 0` with a
 * non-zero slot, the simulator's host_loop after the same CMP with 0: the arithmetic flags
 * (CF PF AF ZF SF OF) differ by construction. Everything else must match. */
#define EFLAGS_ARITH 0x8D5u

static uint64_t field_mask(enum ofield f) { return f == F_EFLAGS ? ~(uint64_t)EFLAGS_ARITH : ~(uint64_t)0; }

struct obs *obs_add(struct obs_list *l, enum okind k)
{
	if (l->n == MAX_OBS)
		return NULL;
	struct obs *o = &l->o[l->n++];
	memset(o, 0, sizeof *o);
	o->kind = k;
	int rounds = 0;
	for (int i = 0; i < l->n - 1; i++)
		rounds += l->o[i].kind == O_ROUND;
	o->n = k == O_ROUND ? rounds + 1 : rounds;
	return o;
}

void obs_set(struct obs *o, enum ofield f, uint64_t v)
{
	o->v[f] = v;
	o->have |= (uint64_t)1 << f;
}

bool obs_has(const struct obs *o, enum ofield f) { return o->have & ((uint64_t)1 << f); }

void obs_label(const struct obs *o, char *b, size_t n)
{
	if (o->kind == O_ROUND)
		snprintf(b, n, "round %d", o->n);
	else
		snprintf(b, n, "%s", okind_name[o->kind]);
}

bool obs_ends(const struct obs_list *l)
{
	return l->n && (l->o[l->n - 1].kind == O_END || l->o[l->n - 1].kind == O_EXCEPTION);
}

const struct obs *obs_last(const struct obs_list *l) { return l->n ? &l->o[l->n - 1] : NULL; }

/* One observation as a JSON line in the kernel's format, for --keep. */
static void obs_write(FILE *f, const struct obs *o, const char *engine)
{
	fprintf(f, "{\"type\":\"observation\",\"engine\":\"%s\",\"event\":\"%s\",\"n\":%d", engine, okind_name[o->kind], o->n);
	for (int k = 0; k < F_N; k++)
		if (obs_has(o, (enum ofield)k))
			fprintf(f, ",\"%s\":\"0x%" PRIx64 "\"", field_name[k], o->v[k]);
	if (o->note[0]) {
		json_t *s = json_string(o->note);
		char *t = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
		if (t)
			fprintf(f, ",\"note\":%s", t);
		free(t);
		json_decref(s);
	}
	fputs("}\n", f);
}

void write_obs_file(const char *dir, const char *name, const struct obs_list *l)
{
	char path[PATH_MAX + 96];
	snprintf(path, sizeof path, "%s/obs-%s.jsonl", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	for (int i = 0; i < l->n; i++)
		obs_write(f, &l->o[i], name);
	fclose(f);
}

/* ---- trap routines ------------------------------------------------------------------------- */

/* host_trap and monitor_trap (every gate of the image's IDTs; the kernel replaces the host
 * IDT's first 32, so host_trap is reached by nothing the kernel knows of), and the hardened
 * shim's __shim_nmi at its linear and at its physical address (its two IDTs). */
void trap_set_of(const struct image *img, const struct shim_code *code, struct trap_set *ts)
{
	ts->n = 0;
	if (img->ep[EP_HOST_TRAP]) {
		ts->lin[ts->n] = img->ep[EP_HOST_TRAP];
		ts->name[ts->n++] = "host_trap";
	}
	if (img->ep[EP_MONITOR_TRAP]) {
		ts->lin[ts->n] = img->ep[EP_MONITOR_TRAP];
		ts->name[ts->n++] = "monitor_trap";
	}
	if (code->entry[EP_SHIM_NMI] != ENTRY_ABSENT && img->ep[EP_SHIM_NMI]) {
		ts->lin[ts->n] = img->ep[EP_SHIM_NMI];
		ts->name[ts->n++] = "__shim_nmi";
		uint32_t pa = (uint32_t)img->shim_pa + (img->ep[EP_SHIM_NMI] & 0xFFF);
		if (pa != img->ep[EP_SHIM_NMI]) {
			ts->lin[ts->n] = pa;
			ts->name[ts->n++] = "__shim_nmi (physical)";
		}
	}
}

const char *trap_name(const struct trap_set *ts, uint32_t lin)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->lin[i] == lin)
			return ts->name[i];
	return NULL;
}

/* ---- what the boot kernel adds, seen by the guest ------------------------------------------- */

/* The guest's touch list is read in the monitor space with the guest's own entry at the shim
 * address (the monitor restores it before guest_run). A touch that reaches the host code
 * page past host.bin (where the kernel puts its observer blob), the top of the host stack
 * (the observer's frames: host_main calls it there, with ESP at the top of the stack page,
 * and Unicorn, whose PB_OBSERVER is 0, never does) or the host IDT's first 32 gates (which
 * the kernel replaces) reads bytes only the boot kernel's machine has: what the guest folds
 * into D_GUEST_SEEN (and so shim_sum) cannot match Unicorn's there. */
#define OBSERVER_STACK 256u /* the observer's deepest frame is ~100 bytes below host_main's ESP */
bool guest_reads_kernel_bytes(const struct scenario *sc, const struct image *img, const struct shim_code *code, char *why,
			      size_t n)
{
	uint64_t code_pa = img->w[SP_HOST].obj_pa[OBJ_CODE], idt_pa = img->w[SP_HOST].obj_pa[OBJ_IDT];
	uint64_t stack_pa = img->w[SP_HOST].obj_pa[OBJ_STACK]; /* host ESP starts at the top of this page */
	uint32_t blob_off = ((uint32_t)code->bin[CB_HOST].size + 15) & ~15u;
	/* The guest's entry where the monitor swaps in the shim's (a PTE, or a whole PDE in
	 * variants that swap the PDE): put it back for the walks, then restore the image. */
	uint8_t *e = phys_ptr(&img->pm, img->shim_pte_pa, img->pte_size);
	uint8_t saved[8];
	if (e) {
		memcpy(saved, e, img->pte_size);
		for (unsigned k = 0; k < img->pte_size; k++)
			e[k] = (uint8_t)(img->guest_pte >> (8 * k));
	}
	bool hit = false;
	for (int i = 0; i < sc->ntouch && !hit; i++) {
		uint32_t lin = sc->touch[i];
		struct walk w = paging_walk(&img->pm, &img->w[SP_MON].regs, lin, ACC_READ, 0);
		if (w.status != WALK_OK)
			continue;
		uint64_t pa = w.pa;
		/* the guest reads a dword: either of its bytes may be in the region */
		if (pa + 4 > code_pa + blob_off && pa < code_pa + 4096) {
			snprintf(why, n, "the guest reads 0x%08" PRIx32 " = physical 0x%" PRIx64 ", the host code page past host.bin, "
				 "where the boot kernel puts its observer", lin, pa);
			hit = true;
		} else if (pa + 4 > stack_pa + 4096 - OBSERVER_STACK && pa < stack_pa + 4096) {
			snprintf(why, n, "the guest reads 0x%08" PRIx32 " = physical 0x%" PRIx64 ", the top %u bytes of the host "
				 "stack, where the boot kernel's observer keeps its frames", lin, pa, OBSERVER_STACK);
			hit = true;
		} else if (pa + 4 > idt_pa && pa < idt_pa + 32 * 8) {
			snprintf(why, n, "the guest reads 0x%08" PRIx32 " = physical 0x%" PRIx64 ", the host IDT's first 32 gates, "
				 "which the boot kernel replaces", lin, pa);
			hit = true;
		}
	}
	if (e)
		memcpy(e, saved, img->pte_size);
	return hit;
}

/* ---- the simulator's side ------------------------------------------------------------------ */

/* The observer's checksum of a page (observer.asm): h = rol(h, 5) + dword, in order. */
static uint32_t page_sum(const uint8_t *p)
{
	uint32_t h = 0;
	for (int i = 0; i < 1024; i++)
		h = ((h << 5) | (h >> 27)) + get4(p + 4 * i);
	return h;
}

static uint32_t sym_lin(const struct image *img, const char *name)
{
	for (int i = 0; i < img->nsyms; i++)
		if (!img->syms[i].both && img->syms[i].sp == SP_HOST && strcmp(img->syms[i].name, name) == 0)
			return img->syms[i].lin;
	return 0;
}

/* The state the observer would print, from a CPU state of the trace and the memory replayed
 * up to that point. */
static void obs_from_cpu(struct obs *o, const struct tr_cpu *c, const struct image *img, const struct physmem *pm)
{
	obs_set(o, F_CR0, c->cr0);
	obs_set(o, F_CR3, c->cr3);
	obs_set(o, F_CR4, c->cr4);
	obs_set(o, F_EFER, c->efer);
	obs_set(o, F_GDTR, c->gdtr_base);
	obs_set(o, F_GDTR_LIMIT, c->gdtr_limit);
	obs_set(o, F_IDTR, c->idtr_base);
	obs_set(o, F_IDTR_LIMIT, c->idtr_limit);
	obs_set(o, F_TR, c->tr);
	const uint16_t seg[6] = {c->cs, c->ss, c->ds, c->es, c->fs, c->gs};
	for (int i = 0; i < 6; i++)
		obs_set(o, (enum ofield)(F_CS + i), seg[i]);
	obs_set(o, F_EFLAGS, c->eflags);
	const enum ofield gpr[8] = {F_EAX, F_ECX, F_EDX, F_EBX, F_ESP, F_EBP, F_ESI, F_EDI};
	for (int i = 0; i < 8; i++)
		obs_set(o, gpr[i], c->gpr[i]);

	struct paging_regs r = {.cr0 = c->cr0, .cr3 = c->cr3, .cr4 = c->cr4, .efer = c->efer};
	bool paging_ok = !(c->cr4 & CR4_PAE) || paging_load_pdptes(pm, &r) == WALK_OK;
	/* The TR descriptor through the GDT, as the observer reads it (0 outside the limit). */
	uint32_t idx = c->tr & 0xFFF8u;
	uint64_t desc = 0;
	if (idx && idx + 7 <= c->gdtr_limit && paging_ok) {
		struct walk w = paging_walk(pm, &r, c->gdtr_base + idx, ACC_READ, 0);
		if (w.status != WALK_OK || !phys_read8(pm, w.pa, &desc))
			desc = UINT64_MAX; /* the observer would have faulted */
	}
	if (desc != UINT64_MAX)
		obs_set(o, F_TR_DESC, desc);
	uint64_t entry = 0;
	uint32_t lo = 0;
	if (img->pte_size == 8 ? phys_read8(pm, img->shim_pte_pa, &entry)
			       : (phys_read4(pm, img->shim_pte_pa, &lo) && ((entry = lo), true)))
		obs_set(o, F_SHIM_ENTRY, entry);
	if (paging_ok) {
		struct walk w = paging_walk(pm, &r, img->shim_lin, ACC_READ, 0);
		const uint8_t *page = w.status == WALK_OK ? phys_ptr(pm, w.pa & ~(uint64_t)0xFFF, 4096) : NULL;
		if (page) {
			obs_set(o, F_SHIM_SUM, page_sum(page));
			obs_set(o, F_GUEST_SEEN, get4(page + SHIM_DATA_OFF + D_GUEST_SEEN));
			obs_set(o, F_MONITOR_ROUNDS, get4(page + SHIM_DATA_OFF + D_ROUNDS));
			obs_set(o, F_NMI_PENDING, get4(page + SHIM_DATA_OFF + D_NMI_PENDING));
		}
	}
}

/* Apply the trace's writes made by instructions before `upto` (all when UINT32_MAX). */
static void replay_until(const struct trace *t, struct physmem *pm, uint32_t *next, uint32_t upto)
{
	for (; *next < t->nmem && (upto == UINT32_MAX || t->mem[*next].insn < upto); (*next)++) {
		const struct tr_mem *m = &t->mem[*next];
		uint8_t *p = m->write ? phys_ptr(pm, m->pa, m->size) : NULL;
		for (int b = 0; p && b < m->size; b++)
			p[b] = (uint8_t)(m->value >> (8 * b));
	}
}

/* What an exception the simulator stops at becomes on the boot kernel's machine, by the
 * IDT in force (the image's gates, plus the kernel's in the host IDT):
 *   the host's IDT in the host space: the kernel's gates report it (exception);
 *   the monitor's IDT in the monitor space: monitor_trap, a HLT loop (trap);
 *   the hardened shim's own IDT: __shim_nmi notes an NMI and returns to the faulting
 *     instruction, again and again; the engine is stopped at its first instruction (trap);
 *   an IDT, GDT or handler not mapped where the CPU looks: a triple fault (shutdown). */
static enum okind fault_kind(const struct tr_cpu *c, const struct image *img, const struct physmem *pm, uint32_t vector,
			     bool has_error, const char **why, uint32_t *handler)
{
	const struct world *h = &img->w[SP_HOST], *m = &img->w[SP_MON];
	*handler = 0;
	/* Same privilege: the CPU pushes EFLAGS, CS, EIP (and the error code) at SS:ESP (flat SS
	 * in every scenario). If that is not writable in the space in force, the push faults,
	 * and the #DF that follows pushes at the same place: a triple fault, whatever the gate. */
	struct paging_regs r = {.cr0 = c->cr0, .cr3 = c->cr3, .cr4 = c->cr4, .efer = c->efer};
	if (!(c->cr4 & CR4_PAE) || paging_load_pdptes(pm, &r) == WALK_OK) {
		unsigned frame = has_error ? 16 : 12;
		for (unsigned k = 4; k <= frame; k += 4) {
			struct walk w = paging_walk(pm, &r, c->gpr[R_ESP] - k, ACC_WRITE, 0);
			if (w.status != WALK_OK) {
				*why = "the CPU cannot push the exception frame at SS:ESP in the space in force: #PF, then #DF on "
				       "the same stack: a triple fault";
				return O_SHUTDOWN;
			}
		}
	}
	if (vector < 32 && c->idtr_base == h->idtr.base && c->idtr_limit >= vector * 8 + 7 &&
	    c->cr3 == h->regs.cr3 && c->gdtr_base == h->gdtr.base) {
		*why = "in the host world: the boot kernel's host-IDT gate reports it";
		return O_EXCEPTION;
	}
	if (c->idtr_base == m->idtr.base && c->cr3 == m->regs.cr3 && c->gdtr_base == m->gdtr.base) {
		*why = "in the monitor world: its gate leads to monitor_trap, which halts for good";
		*handler = img->ep[EP_MONITOR_TRAP];
		return O_TRAP;
	}
	if (img->ep[EP_SHIM_NMI] && c->idtr_base == img->shim_lin + SHIM_IDT_OFF) {
		*why = "through the shim's own IDT: __shim_nmi returns to the faulting instruction, forever";
		*handler = img->ep[EP_SHIM_NMI];
		return O_TRAP;
	}
	if (img->ep[EP_SHIM_NMI] && c->idtr_base == img->shim_pa + SHIM_IDT_PHYS_OFF) {
		*why = "through the shim's IDT at its physical address: __shim_nmi returns to the faulting instruction, forever";
		*handler = (uint32_t)img->shim_pa + (img->ep[EP_SHIM_NMI] & 0xFFF);
		return O_TRAP;
	}
	*why = "no usable gate in the IDT in force: a triple fault";
	return O_SHUTDOWN;
}

bool sim_observations(const struct pipeline *p, struct obs_list *l, char *err, size_t errlen)
{
	const struct trace *t = &p->t;
	const struct image *img = &p->img;
	struct physmem pm = img->pm;
	pm.bytes = malloc((size_t)pm.size);
	if (!pm.bytes) {
		snprintf(err, errlen, "out of memory replaying the trace");
		return false;
	}
	memcpy(pm.bytes, img->pm.bytes, (size_t)pm.size);
	uint32_t loop = sym_lin(img, "host_loop"), next = 0;
	bool entry_seen = false;
	l->n = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		if (in->space != SP_HOST)
			continue;
		/* Without a host_loop symbol (a user's code directory), the entry point is the first
		 * host_call, where EBX already holds its loop value: leave EBX out then. */
		bool entry = !entry_seen && in->cpu.eip == (loop ? loop : img->ep[EP_HOST_CALL]);
		bool round = in->cpu.eip == img->ep[EP_HOST_AFTER_CALL];
		if (!entry && !round)
			continue;
		replay_until(t, &pm, &next, i);
		struct obs *o = obs_add(l, entry ? O_ENTRY : O_ROUND);
		if (!o)
			break;
		obs_from_cpu(o, &in->cpu, img, &pm);
		if (entry && !loop)
			o->have &= ~((uint64_t)1 << F_EBX);
		entry_seen = true;
	}
	replay_until(t, &pm, &next, UINT32_MAX);
	struct obs *o = NULL;
	if (t->end == END_DONE) {
		if ((o = obs_add(l, O_END)))
			obs_from_cpu(o, &t->final, img, &pm);
	} else if (t->end == END_FAULT) {
		const struct tr_event *f = NULL;
		for (uint32_t k = 0; k < t->nev; k++)
			if (t->ev[k].kind == EV_FAULT)
				f = &t->ev[k];
		const struct tr_cpu *c = f && f->insn < t->n ? &t->insn[f->insn].cpu : &t->final;
		uint32_t vector = f ? (uint32_t)f->a : 0, handler = 0;
		const char *why = "";
		if (f && (o = obs_add(l, fault_kind(c, img, &pm, vector, f->size != 0, &why, &handler)))) {
			obs_set(o, F_VECTOR, vector);
			obs_set(o, F_ERROR, f->size ? f->b : 0);
			obs_set(o, F_EIP, c->eip);
			if (vector == 14)
				obs_set(o, F_CR2, f->c);
			if (o->kind == O_EXCEPTION)
				obs_set(o, F_CR3, c->cr3);
			if (o->kind == O_TRAP)
				obs_set(o, F_HANDLER, handler);
			snprintf(o->note, sizeof o->note, "%s; %s", t->end_detail, why);
		}
	} else if ((o = obs_add(l, O_STOPPED))) {
		snprintf(o->note, sizeof o->note, "%s: %s", tr_end_name(t->end), t->end_detail);
	}
	free(pm.bytes);
	return true;
}

/* ---- comparing ------------------------------------------------------------------------------- */

int first_difference(const struct obs_list *a, const struct obs_list *b, int *field)
{
	int n = a->n > b->n ? a->n : b->n;
	for (int i = 0; i < n; i++) {
		*field = -1;
		if (i >= a->n || i >= b->n || a->o[i].kind != b->o[i].kind)
			return i;
		for (int f = 0; f < F_N; f++) {
			enum ofield ff = (enum ofield)f;
			if (obs_has(&a->o[i], ff) && obs_has(&b->o[i], ff) && ((a->o[i].v[f] ^ b->o[i].v[f]) & field_mask(ff))) {
				*field = f;
				return i;
			}
		}
	}
	return -1;
}

static void cell(const struct obs *o, int f, char *b, size_t n)
{
	if (!o)
		snprintf(b, n, "(none)");
	else if (f < 0)
		obs_label(o, b, n);
	else if (obs_has(o, (enum ofield)f))
		snprintf(b, n, "0x%" PRIx64, o->v[f]);
	else
		snprintf(b, n, "-");
}

void show_side_by_side(FILE *out, const char *engine, const struct obs *a, const struct obs *b, int diff_field)
{
	char x[48], y[48];
	fprintf(out, "  %-15s %-22s %s\n", "field", engine, "unicorn");
	cell(a, -1, x, sizeof x);
	cell(b, -1, y, sizeof y);
	fprintf(out, "  %-15s %-22s %-22s%s\n", "event", x, y, diff_field == -1 ? " <--" : "");
	for (int f = 0; f < F_N; f++) {
		if ((!a || !obs_has(a, (enum ofield)f)) && (!b || !obs_has(b, (enum ofield)f)))
			continue;
		cell(a, f, x, sizeof x);
		cell(b, f, y, sizeof y);
		fprintf(out, "  %-15s %-22s %-22s%s\n", field_name[f], x, y, f == diff_field ? " <--" : "");
	}
	if (a && a->note[0])
		fprintf(out, "  %s: %s\n", engine, a->note);
	if (b && b->note[0])
		fprintf(out, "  unicorn: %s\n", b->note);
}

void print_divergence(FILE *out, const char *engine, const struct obs_list *ea, const struct obs_list *sb, int at,
		      int field)
{
	const struct obs *a = at < ea->n ? &ea->o[at] : NULL, *b = at < sb->n ? &sb->o[at] : NULL;
	char la[48], lb[48];
	cell(a, -1, la, sizeof la);
	cell(b, -1, lb, sizeof lb);
	if (field >= 0)
		fprintf(out, "DIVERGENCE at observation %d (%s): %s: %s 0x%" PRIx64 ", unicorn 0x%" PRIx64 "\n", at, la,
			field_name[field], engine, a->v[field], b->v[field]);
	else
		fprintf(out, "DIVERGENCE at observation %d: %s says %s, unicorn says %s\n", at, engine, la, lb);
	show_side_by_side(out, engine, a, b, field);
}
