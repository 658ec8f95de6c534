/*
 * engine.c: Unicorn i386 over the modelled physical memory, with recording.
 *
 * Unicorn walks the modelled page tables itself (UC_TLB_CPU mode, physical memory = the
 * image's window mapped with uc_mem_map_ptr); model/paging.c walks them too, and the two
 * are compared on every memory access (see attribute()). Unicorn has no hooks for LGDT,
 * LTR or CR writes, so each instruction is decoded with Capstone (cached by its bytes, with
 * a memo per address in front) and its effect is read from the registers before the next
 * one. A run with the engine's hooks is what the benchmark compares with engine_open_bare's
 * runs, which have none (docs/performance.md).
 *
 * Facts this file relies on (shared/reference/unicorn-notes.md, re-checked by tests):
 * memory hooks report physical addresses and fire before the store; uc_context_restore
 * does not flush the TLB; after a fault the engine is only trustworthy again after a
 * restore of a context saved before any fault; writing a segment register whose GDT page is
 * not present kills the process, so the image builder guarantees the host GDT is mapped.
 */
#include "engine.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <capstone/capstone.h>
#include <unicorn/unicorn.h>

#include "../model/desc.h"
#include "../model/mmu.h"
#include "../shim/shim_abi.h"
#include "effects.h"
#include "fnv.h"

#define SHIM_CODE_LEN SHIM_DATA_OFF

/* Print uc_strerror with the call that failed (Unicorn's own tests do the same). */
#define UC_TRY(e, call)                                                                           \
	do {                                                                                      \
		uc_err err_ = (call);                                                             \
		if (err_ != UC_ERR_OK) {                                                          \
			snprintf((e)->err, sizeof (e)->err, "%s: %s", #call, uc_strerror(err_)); \
			return false;                                                             \
		}                                                                                 \
	} while (0)

#define DECODE_CACHE 1024 /* a few hundred distinct instructions: small enough to stay in cache */
#define DECODE_PROBES 8
#define RR_CR 1u      /* CR0, CR3, CR4 */
#define RR_SEG 2u     /* segment selectors */
#define RR_TABLES 4u  /* GDTR, IDTR, TR */
#define RR_ALL (RR_CR | RR_SEG | RR_TABLES)
#define WALK_CACHE 256 /* direct-mapped, per access kind (read, fetch) */
#define REV_CACHE 32
#define SCAN_CACHE 16
#define EIP_MEMO 512

/* A cache of the model's own walks, so that attributing every access stays cheap. Entries
 * are valid for one generation and under the CR3 they were made with; the generation moves
 * on at every write to a page a cached walk read as a paging structure, and at every change
 * of CR0, CR4 or EFER or load of PAE PDPTEs: the cache can never answer with a translation
 * the tables no longer give. */
struct walk_cache_entry {
	uint32_t gen;
	uint32_t cr3;              /* walks under each CR3 stay apart: a switch need not drop them */
	uint32_t lin_page;
	enum walk_status status;
	uint64_t pa_page;
};

struct decoded {
	uint32_t eip;              /* where text was rendered for (relative branch targets) */
	uint8_t len;
	uint8_t bytes[16];
	bool valid;
	bool rel;                  /* text is mnem + the target eip + rel_off: render per eip */
	bool eip_bound;            /* text depends on eip otherwise: the entry serves this eip only */
	int32_t rel_off;
	char mnem[16];
	unsigned id;               /* X86_INS_* */
	uint8_t size;              /* decoded length */
	char text[64];             /* "mnemonic operands" */
	bool has_mem;              /* an explicit memory operand */
	int mem_seg, mem_base, mem_index, mem_scale; /* X86_REG_* */
	int64_t mem_disp;
	uint8_t mem_size;
	bool mem_write;
	int dst_reg;               /* first operand when a register (MOV CRn) */
	bool control;              /* may change state beyond GPRs and EFLAGS: re-read after it */
	uint8_t reread;            /* which: RR_CR | RR_SEG | RR_TABLES */
	uint16_t writes;           /* GPRs and EFLAGS it can change (effects.h): read back only those */
	uint8_t nread;             /* writes as Unicorn register ids (filled once, see read_ids) */
	int8_t read_slot[9];       /* 0..7 GPR, 8 EFLAGS */
	int read_id[9];
	bool finish;               /* finish_prev has something to do after it (set in decode) */
};

struct engine {
	uc_engine *uc;
	csh cs;
	uc_context *clean;
	uc_context *pristine;      /* saved right after uc_open, before any run could fault */
	uc_hook h_code, h_mem, h_intr;
	char err[256];

	const struct image *img;
	uint8_t *live;             /* the memory Unicorn runs on */
	uint64_t base, size;
	struct physmem pm;         /* view of live */
	uint8_t *dirty;            /* one byte per page */
	uint32_t *dirty_list;      /* the pages marked in dirty, so a reset need not scan them all */
	uint32_t ndirty;
	uint8_t *exec;             /* one byte per page: executed since the last TB flush */
	uint64_t exec_hi;          /* no page at or above this one is marked in exec */
	uint8_t *xbits;            /* one bit per byte of the window: ran as an instruction */
	uint32_t xepoch;           /* moves on whenever bits of xbits are cleared */
	/* What the instruction at an address decoded to last time, and whether its bytes are
	 * already marked in xbits: most addresses run once per round trip, the same bytes on
	 * every run. Checked against the bytes fetched now, never trusted blindly. */
	struct eip_memo {
		uint32_t eip;
		uint32_t xepoch;       /* xbits marked for pa..pa+len in this epoch */
		uint64_t pa;
		const struct decoded *d;
	} em[EIP_MEMO];
	bool exec_partial;         /* a recorded run stopped early: blocks may hold bytes that never ran */
	uint64_t placement;        /* where the image puts the code (placement_of) */
	bool exec_unknown;         /* a run without recording: which pages ran is not known */
	uint64_t used;             /* image_used() of the image loaded */

	/* per run */
	struct trace *t;
	bool record;
	uint32_t count, bound;
	bool stopped;
	struct tr_cpu cur;
	struct paging_regs regs;   /* what the CPU's paging uses now (PDPTEs as loaded) */
	uint32_t seg_base[6];      /* es cs ss ds fs gs hidden bases */
	uint16_t seg_sel[6];
	const struct decoded *prev;
	bool in_shim;
	uint64_t old_entry;        /* the paging entry being written, before the write */
	bool fault_walk_ok;        /* model_error_code: the model's walk of CR2 succeeded */
	bool check_reads;          /* SHIMCHECK_CHECK_READS: verify every partial read-back */
	bool no_keep;              /* SHIMCHECK_NO_TB_KEEP: drop the blocks of every page that ran at each load */
	bool bare;                 /* no hooks at all (engine_open_bare): the benchmark's floor */

	struct decoded cache[DECODE_CACHE];
	struct walk_cache_entry wc[2][WALK_CACHE];
	uint32_t wgen;
	uint32_t *struct_gen;      /* per window page: the generation in which a walk read it */
	/* paging_reverse answers, valid while the directory pages each one scanned keep their
	 * versions (pver, below) and for one image (epoch). The shim writes the same few
	 * entries again and again. */
	struct rev_cache_entry {
		bool valid;
		uint32_t cr3, epoch;
		bool pae;
		uint64_t pdpte[4];
		uint64_t entry_pa;
		int n;
		struct lin_region reg[8];
		int ndir;
		uint64_t dir_page[4];  /* the directory pages it scanned (window page numbers) */
		uint32_t dir_ver[4];   /* and their versions (pver) then */
	} rc[REV_CACHE];
	/* Which present entries a page table holds (pte_events scans the old table of a PDE
	 * that is overwritten), valid while the table's page keeps its version: pver counts
	 * the recorded writes to each page and its restores at reset, epoch the image loads.
	 * The CPU's own accessed/dirty updates bump nothing: the answer ignores those bits. */
	uint32_t *pver;
	uint32_t epoch;
	/* image_pt_space by window page (space + 1, 0: none), set at load from the image's
	 * lists; pts_pages remembers which to clear at the next load. */
	uint8_t *pts;
	uint32_t pts_pages[512];
	uint32_t npts;
	struct scan_cache_entry {
		uint64_t table_pa;
		uint32_t ver, epoch;
		bool pae, valid;
		unsigned hits;         /* present entries, up to PDE_SCAN_MAX + 1 */
		uint16_t idx[16];      /* PDE_SCAN_MAX: their indexes */
		uint16_t glob;         /* bit i: entry idx[i] is global */
	} scan[SCAN_CACHE];

	/* watchdog */
	pthread_t wd;
	pthread_mutex_t wd_mu;     /* only for the 20 ms sleep, and waking it at close */
	pthread_cond_t wd_cv;
	atomic_bool wd_quit, wd_fired;
	_Atomic uint64_t wd_deadline; /* CLOCK_MONOTONIC ms; 0 = disarmed */
};

struct physmem engine_memory(const struct engine *e) { return e->pm; }

const char *engine_version(void)
{
	static char buf[32];
	unsigned maj, min;
	unsigned v = uc_version(&maj, &min);
	snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, (v >> 8) & 0xFF);
	return buf;
}

/* ---- watchdog ---------------------------------------------------------------------------- */

/* A thread that polls a deadline every 20 ms and stops a run that overruns it. Arming and
 * disarming are two atomic stores: a run costs no system call for it. */
static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *watchdog(void *arg)
{
	struct engine *e = arg;
	pthread_mutex_lock(&e->wd_mu);
	while (!atomic_load(&e->wd_quit)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&e->wd_cv, &e->wd_mu, &ts); /* engine_close signals */
		uint64_t dl = atomic_load(&e->wd_deadline);
		if (dl && mono_ms() > dl && atomic_compare_exchange_strong(&e->wd_deadline, &dl, 0)) {
			atomic_store(&e->wd_fired, true);
			uc_emu_stop(e->uc);
		}
	}
	pthread_mutex_unlock(&e->wd_mu);
	return NULL;
}

static void wd_arm(struct engine *e, uint32_t ms)
{
	atomic_store(&e->wd_fired, false);
	atomic_store(&e->wd_deadline, mono_ms() + ms);
}

static bool wd_disarm(struct engine *e)
{
	atomic_store(&e->wd_deadline, 0);
	return atomic_load(&e->wd_fired);
}

/* ---- registers ------------------------------------------------------------------------------ */

/* After an ordinary instruction only the general registers, EIP and EFLAGS can have
 * changed: read those, keep the rest from the previous state. */
static void read_cpu_fast(struct engine *e, uint64_t address, struct tr_cpu *c)
{
	static int ids[] = {UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_EBX, UC_X86_REG_ESP,
			    UC_X86_REG_EBP, UC_X86_REG_ESI, UC_X86_REG_EDI, UC_X86_REG_EIP, UC_X86_REG_EFLAGS};
	void *vals[] = {&c->gpr[0], &c->gpr[1], &c->gpr[2], &c->gpr[3], &c->gpr[4], &c->gpr[5], &c->gpr[6],
			&c->gpr[7], &c->eip_off, &c->eflags};
	uc_reg_read_batch(e->uc, ids, vals, (int)(sizeof ids / sizeof ids[0]));
	c->eip = (uint32_t)address;
}

/* Unicorn's ids of the registers in a write set, in e->cur slot order (0..7 GPRs, 8 EFLAGS). */
static void read_ids(struct decoded *d)
{
	static const int gpr_ids[8] = {UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_EBX,
				       UC_X86_REG_ESP, UC_X86_REG_EBP, UC_X86_REG_ESI, UC_X86_REG_EDI};
	d->nread = 0;
	for (int i = 0; i < 8; i++)
		if (d->writes & EFF_GPR(i)) {
			d->read_slot[d->nread] = (int8_t)i;
			d->read_id[d->nread++] = gpr_ids[i];
		}
	if (d->writes & EFF_FLAGS) {
		d->read_slot[d->nread] = 8;
		d->read_id[d->nread++] = UC_X86_REG_EFLAGS;
	}
}

/* Only the registers in an instruction's write set (effects.h); EIP follows from the linear
 * address when CS did not change (the caller reads it after a segment load). */
static void read_cpu_writes(struct engine *e, uint64_t address, struct tr_cpu *c, const struct decoded *d)
{
	if (d->writes == EFF_ALL) {
		read_cpu_fast(e, address, c);
		return;
	}
	if (d->nread) {
		void *vals[9];
		for (int k = 0; k < d->nread; k++)
			vals[k] = d->read_slot[k] == 8 ? (void *)&c->eflags : (void *)&c->gpr[d->read_slot[k]];
		uc_reg_read_batch(e->uc, (int *)d->read_id, vals, d->nread); /* Unicorn 2.1 takes int *, reads only */
	}
	c->eip = (uint32_t)address;
	c->eip_off = (uint32_t)address - e->seg_base[1];
}

/* The registers d writes (EFF_ALL: GPRs, EIP, EFLAGS), plus the groups in mask. */
static void read_cpu_some(struct engine *e, uint64_t address, struct tr_cpu *c, unsigned mask, const struct decoded *d)
{
	read_cpu_writes(e, address, c, d);
	if (mask & RR_CR) {
		static int ids[] = {UC_X86_REG_CR0, UC_X86_REG_CR3, UC_X86_REG_CR4};
		uint64_t cr[3] = {0};
		void *vals[] = {&cr[0], &cr[1], &cr[2]};
		uc_reg_read_batch(e->uc, ids, vals, 3);
		c->cr0 = (uint32_t)cr[0];
		c->cr3 = (uint32_t)cr[1];
		c->cr4 = (uint32_t)cr[2];
	}
	if (mask & RR_SEG) {
		/* EIP too: a far jump changes CS, so the linear address alone does not give it. */
		static int ids[] = {UC_X86_REG_CS, UC_X86_REG_SS, UC_X86_REG_DS, UC_X86_REG_ES, UC_X86_REG_FS, UC_X86_REG_GS,
				    UC_X86_REG_EIP};
		uint16_t sg[6] = {0};
		void *vals[] = {&sg[0], &sg[1], &sg[2], &sg[3], &sg[4], &sg[5], &c->eip_off};
		uc_reg_read_batch(e->uc, ids, vals, 7);
		c->cs = sg[0], c->ss = sg[1], c->ds = sg[2], c->es = sg[3], c->fs = sg[4], c->gs = sg[5];
	}
	if (mask & RR_TABLES) {
		uc_x86_mmr g = {0}, i = {0}, tr = {0};
		uc_reg_read(e->uc, UC_X86_REG_GDTR, &g);
		uc_reg_read(e->uc, UC_X86_REG_IDTR, &i);
		uc_reg_read(e->uc, UC_X86_REG_TR, &tr);
		c->gdtr_base = (uint32_t)g.base;
		c->gdtr_limit = (uint16_t)g.limit;
		c->idtr_base = (uint32_t)i.base;
		c->idtr_limit = (uint16_t)i.limit;
		c->tr = tr.selector;
		c->tr_base = (uint32_t)tr.base;
	}
}

static const struct decoded read_everything = {.writes = EFF_ALL};

static void read_cpu(struct engine *e, uint64_t address, struct tr_cpu *c)
{
	read_cpu_some(e, address, c, RR_ALL, &read_everything);
	c->cs_base = e->seg_base[1];
	c->efer = (uint32_t)e->regs.efer;
}

static int space_of(const struct image *img, uint32_t cr3)
{
	for (int s = 0; s < 2; s++)
		if ((img->w[s].regs.cr3 & ~0xFFFu) == (cr3 & ~0xFFFu))
			return s;
	return -1;
}

static void walk_cache_flush(struct engine *e)
{
	if (++e->wgen == 0) { /* wrapped: clear for real */
		memset(e->wc, 0, sizeof e->wc);
		memset(e->struct_gen, 0, (size_t)(e->size >> PGSHIFT) * sizeof e->struct_gen[0]);
		e->wgen = 1;
	}
}

/* The physical address lin translates to for an access of kind acc (read or fetch), or
 * UINT64_MAX when the walk does not succeed: paging_walk through the cache, which keeps only
 * the page-granular answer. */
static uint64_t cached_pa_miss(struct engine *e, struct walk_cache_entry *c, uint32_t lin, enum access acc);

static inline uint64_t cached_pa(struct engine *e, uint32_t lin, enum access acc)
{
	struct walk_cache_entry *c = &e->wc[acc == ACC_FETCH][(lin >> PGSHIFT) % WALK_CACHE];
	if (c->gen == e->wgen && c->lin_page == (lin & PGMASK) && c->cr3 == e->regs.cr3)
		return c->status == WALK_OK ? c->pa_page | (lin & 0xFFF) : UINT64_MAX;
	return cached_pa_miss(e, c, lin, acc);
}

/* The walk, out of line: the hit above is every access's, the walk a few per run. */
static __attribute__((noinline)) uint64_t cached_pa_miss(struct engine *e, struct walk_cache_entry *c, uint32_t lin,
							 enum access acc)
{
	struct walk w = paging_walk(&e->pm, &e->regs, lin, acc, 0);
	for (int i = 0; i < w.nlevels; i++) {
		uint64_t pa = w.level[i].entry_pa;
		if (pa >= e->base && pa < e->base + e->size)
			e->struct_gen[(pa - e->base) >> PGSHIFT] = e->wgen;
	}
	if (e->regs.cr4 & CR4_PAE) /* the PDPT page too, though only MOV CR3 reloads it */
		if ((e->regs.cr3 & ~0x1Fu) >= e->base && (e->regs.cr3 & ~0x1Fu) < e->base + e->size)
			e->struct_gen[((e->regs.cr3 & ~0x1Fu) - e->base) >> PGSHIFT] = e->wgen;
	c->gen = e->wgen;
	c->cr3 = e->regs.cr3;
	c->lin_page = lin & PGMASK;
	c->status = w.status;
	c->pa_page = w.status == WALK_OK ? (w.pa & ~(uint64_t)0xFFF) : 0;
	return w.status == WALK_OK ? w.pa : UINT64_MAX;
}

/* Hidden base of a segment just loaded with sel: read its descriptor as the CPU did (the
 * walk through the cache, as the accesses' attribution does). */
static uint32_t seg_base_of(struct engine *e, uint16_t sel)
{
	if (SEL_INDEX(sel) == 0 || (sel & SEL_TI))
		return 0;
	uint32_t lin = e->cur.gdtr_base + SEL_INDEX(sel);
	uint64_t pa = cached_pa(e, lin, ACC_READ), raw;
	if (pa == UINT64_MAX || (lin & 0xFFF) > 0xFF8 || !phys_read8(&e->pm, pa, &raw))
		return 0;
	return desc_raw_base(raw);
}

static void sync_paging(struct engine *e, bool reload_pdptes)
{
	/* Entries carry their CR3: only a change of paging mode, or PDPTEs loaded anew (PAE),
	 * outdates them. */
	if (e->regs.cr0 != e->cur.cr0 || e->regs.cr4 != e->cur.cr4 || (e->cur.cr4 & CR4_PAE))
		walk_cache_flush(e);
	e->regs.cr0 = e->cur.cr0;
	e->regs.cr3 = e->cur.cr3;
	e->regs.cr4 = e->cur.cr4;
	if (reload_pdptes && (e->cur.cr4 & CR4_PAE))
		paging_load_pdptes(&e->pm, &e->regs);
}

static void sync_segs(struct engine *e, bool force_cs)
{
	const uint16_t sel[6] = {e->cur.es, e->cur.cs, e->cur.ss, e->cur.ds, e->cur.fs, e->cur.gs};
	for (int i = 0; i < 6; i++)
		if (sel[i] != e->seg_sel[i] || (i == 1 && force_cs)) {
			e->seg_sel[i] = sel[i];
			e->seg_base[i] = seg_base_of(e, sel[i]);
		}
	e->cur.cs_base = e->seg_base[1];
}

/* ---- decoding ------------------------------------------------------------------------------- */

static void render_rel(struct decoded *d, uint32_t eip)
{
	char m[sizeof d->mnem];
	memcpy(m, d->mnem, sizeof m);
	snprintf(d->text, sizeof d->text, "%s 0x%" PRIx32, m, eip + (uint32_t)d->rel_off);
	d->eip = eip;
}

/* Relative branches print their target: keep the displacement instead, when rendering it
 * gives back Capstone's own text; any other dependence on eip (decoded again elsewhere and
 * compared) binds the entry to its eip. */
static void classify_text(struct engine *e, struct decoded *d, const cs_insn *insn, uint32_t eip)
{
	const cs_x86 *x = &insn->detail->x86;
	bool relative = false;
	for (int i = 0; i < insn->detail->groups_count; i++)
		relative |= insn->detail->groups[i] == X86_GRP_BRANCH_RELATIVE;
	if (relative && x->op_count == 1 && x->operands[0].type == X86_OP_IMM && strlen(insn->mnemonic) < sizeof d->mnem) {
		char keep[sizeof d->text];
		memcpy(keep, d->text, sizeof keep);
		snprintf(d->mnem, sizeof d->mnem, "%s", insn->mnemonic);
		d->rel_off = (int32_t)((uint32_t)x->operands[0].imm - eip);
		render_rel(d, eip);
		if (strcmp(keep, d->text) == 0) {
			d->rel = true;
			return;
		}
		memcpy(d->text, keep, sizeof keep);
	}
	cs_insn *other = NULL;
	size_t n = cs_disasm(e->cs, d->bytes, d->len, eip ^ 0x10000000u, 1, &other);
	d->eip_bound = n != 1 || strcmp(other->mnemonic, insn->mnemonic) != 0 || strcmp(other->op_str, insn->op_str) != 0;
	if (n)
		cs_free(other, n);
}

/* Decoded instructions by their bytes (what bytes decode to does not depend on where they
 * are, except the text, see classify_text): fuzzing puts the same code at a new address
 * in every scenario. Open addressing: a round trip runs a few hundred distinct
 * instructions, and with one slot per hash a dozen would collide and be decoded again on
 * every run. */
static const struct decoded *decode(struct engine *e, uint32_t eip, const uint8_t *bytes, uint8_t len)
{
	/* FNV-1a a byte at a time: the bytes were just copied in, and a wider load of them
	 * would wait for those stores (no store-to-load forwarding across several stores). */
	uint64_t h = fnv1a64(FNV64_INIT, bytes, len);
	h ^= h >> 29;
	struct decoded *d = NULL, *same = NULL; /* same: these bytes, rendered for another eip */
	for (unsigned i = 0; i < DECODE_PROBES; i++) {
		struct decoded *c = &e->cache[(h + i) % DECODE_CACHE];
		if (!c->valid) {
			d = c;
			break;
		}
		if (c->len == len && memcmp(c->bytes, bytes, len) == 0 && (!c->eip_bound || c->eip == eip)) {
			if (!c->rel || c->eip == eip)
				return c;
			if (!same)
				same = c;
		}
	}
	if (same) {
		/* A relative branch met at another address (`call .pc` is in every binary): its
		 * own entry, copied and rendered, so that neither is rendered on every run. */
		if (d)
			*d = *same;
		else
			d = same;
		render_rel(d, eip);
		return d;
	}
	if (!d)
		d = &e->cache[h % DECODE_CACHE]; /* a full probe sequence: evict its first entry */
	memset(d, 0, sizeof *d);
	d->eip = eip;
	d->len = len;
	memcpy(d->bytes, bytes, len);
	d->valid = true;
	d->dst_reg = X86_REG_INVALID;
	cs_insn *insn = NULL;
	size_t n = cs_disasm(e->cs, bytes, len, eip, 1, &insn);
	if (n == 0) {
		snprintf(d->text, sizeof d->text, "(bad)");
		d->id = X86_INS_INVALID;
		d->control = true;
		d->reread = RR_ALL;
		d->writes = EFF_ALL;
		d->finish = true;
		return d;
	}
	d->id = insn->id;
	d->size = (uint8_t)insn->size;
	snprintf(d->text, sizeof d->text, "%s%s%s", insn->mnemonic, insn->op_str[0] ? " " : "", insn->op_str);
	cs_x86 *x = &insn->detail->x86;
	/* What the instruction can change beyond GPRs, EIP and EFLAGS: read back only that. */
	switch (insn->id) {
	case X86_INS_LGDT: case X86_INS_LIDT: case X86_INS_LTR: case X86_INS_LLDT:
		d->reread = RR_TABLES;
		break;
	case X86_INS_LSS: case X86_INS_LDS: case X86_INS_LES: case X86_INS_LFS: case X86_INS_LGS:
	case X86_INS_LJMP: case X86_INS_LCALL: case X86_INS_RETF:
		d->reread = RR_SEG;
		break;
	case X86_INS_LMSW: case X86_INS_CLTS:
		d->reread = RR_CR;
		break;
	case X86_INS_IRET: case X86_INS_IRETD: case X86_INS_INT: case X86_INS_INT3: case X86_INS_INTO:
	case X86_INS_SYSENTER: case X86_INS_SYSEXIT: case X86_INS_RSM:
		d->reread = RR_ALL;
		break;
	default:
		break;
	}
	for (int i = 0; i < x->op_count; i++) {
		cs_x86_op *op = &x->operands[i];
		bool dst = i == 0; /* Intel syntax: the destination comes first (Capstone 4 leaves
				    * access flags off segment registers, so do not rely on them) */
		if (op->type == X86_OP_REG && dst && op->reg >= X86_REG_CR0 && op->reg <= X86_REG_CR15)
			d->reread |= RR_CR;
		if (op->type == X86_OP_REG && dst &&
		    (op->reg == X86_REG_CS || op->reg == X86_REG_SS || op->reg == X86_REG_DS || op->reg == X86_REG_ES ||
		     op->reg == X86_REG_FS || op->reg == X86_REG_GS))
			d->reread |= RR_SEG;
		if (op->type == X86_OP_REG && i == 0)
			d->dst_reg = op->reg;
		if (op->type == X86_OP_MEM && !d->has_mem) {
			d->has_mem = true;
			d->mem_seg = op->mem.segment;
			d->mem_base = op->mem.base;
			d->mem_index = op->mem.index;
			d->mem_scale = op->mem.scale;
			d->mem_disp = op->mem.disp;
			d->mem_size = op->size;
			d->mem_write = (op->access & CS_AC_WRITE) != 0;
		}
	}
	d->control = d->reread != 0;
	d->writes = (uint16_t)(d->reread == RR_ALL ? EFF_ALL : effects_writes(insn));
	read_ids(d);
	/* Events come only from the instructions finish_prev names; paging and segment state
	 * only changes after those Unicorn is asked about again (reread). */
	d->finish = d->reread != 0 || d->id == X86_INS_INVLPG || d->id == X86_INS_WRMSR;
	classify_text(e, d, insn, eip);
	cs_free(insn, n);
	return d;
}

static uint32_t reg32(const struct tr_cpu *c, int r)
{
	switch (r) {
	case X86_REG_EAX: return c->gpr[R_EAX];
	case X86_REG_ECX: return c->gpr[R_ECX];
	case X86_REG_EDX: return c->gpr[R_EDX];
	case X86_REG_EBX: return c->gpr[R_EBX];
	case X86_REG_ESP: return c->gpr[R_ESP];
	case X86_REG_EBP: return c->gpr[R_EBP];
	case X86_REG_ESI: return c->gpr[R_ESI];
	case X86_REG_EDI: return c->gpr[R_EDI];
	default: return 0;
	}
}

/* Linear address of the explicit memory operand of d, from the state before it ran. */
static uint32_t operand_lin(const struct engine *e, const struct decoded *d, const struct tr_cpu *c)
{
	uint32_t ea = reg32(c, d->mem_base) + reg32(c, d->mem_index) * (uint32_t)(d->mem_scale ? d->mem_scale : 1) +
		      (uint32_t)d->mem_disp;
	int seg = d->mem_seg;
	if (seg == X86_REG_INVALID)
		seg = (d->mem_base == X86_REG_ESP || d->mem_base == X86_REG_EBP) ? X86_REG_SS : X86_REG_DS;
	int idx = seg == X86_REG_ES ? 0 : seg == X86_REG_CS ? 1 : seg == X86_REG_SS ? 2 : seg == X86_REG_DS ? 3
		: seg == X86_REG_FS ? 4 : 5;
	return e->seg_base[idx] + ea;
}

/* ---- hooks --------------------------------------------------------------------------------- */

/* phys_ptr over the engine's own memory, inline: every instruction and access asks it. The
 * same subtractions (a pa near 2^64 cannot wrap past the check). */
static inline const uint8_t *live_ptr(const struct engine *e, uint64_t pa, uint64_t len)
{
	if (pa < e->base || len > e->size || pa - e->base > e->size - len)
		return NULL;
	return e->live + (pa - e->base);
}

static uint64_t fetch_pa(struct engine *e, uint32_t lin)
{
	return cached_pa(e, lin, ACC_FETCH);
}

/* The instruction bytes as the model's walk finds them (the second page walked on its own
 * when the instruction crosses into it). */
static void fetch_bytes(struct engine *e, uint32_t lin, uint8_t len, uint8_t *out, uint64_t first_pa)
{
	uint32_t first = PGSIZE - (lin & 0xFFF);
	const uint8_t *p0;
	if (len <= first && first_pa != UINT64_MAX && (p0 = live_ptr(e, first_pa, len))) {
		memcpy(out, p0, len); /* one page, already walked: the common case */
		return;
	}
	for (uint8_t done = 0; done < len;) {
		uint32_t at = lin + done;
		uint8_t n = (uint8_t)(len - done);
		if (done == 0 && n > first)
			n = (uint8_t)first;
		uint64_t pa = fetch_pa(e, at);
		const uint8_t *p = pa == UINT64_MAX ? NULL : phys_ptr(&e->pm, pa, n);
		if (p)
			memcpy(out + done, p, n);
		else
			memset(out + done, 0, n);
		done = (uint8_t)(done + n);
	}
}

static void stop(struct engine *e, enum tr_end why, const char *detail)
{
	if (!e->stopped) {
		e->stopped = true;
		e->t->end = why;
		snprintf(e->t->end_detail, sizeof e->t->end_detail, "%s", detail);
	}
	uc_emu_stop(e->uc);
}

/* Events of the previous instruction, now that its effects are visible in e->cur (only for
 * the instructions that raise any: finish_prev). */
static void finish_events(struct engine *e)
{
	struct trace *t = e->t;
	uint32_t k = t->n - 1;
	const struct tr_cpu *p = &t->insn[k].cpu, *c = &e->cur;
	const struct decoded *d = e->prev;
	struct tr_event *ev;
	switch (d->id) {
	case X86_INS_LGDT:
		if ((ev = trace_add_event(t, k, EV_LGDT)))
			ev->a = c->gdtr_base, ev->b = c->gdtr_limit;
		break;
	case X86_INS_LIDT:
		if ((ev = trace_add_event(t, k, EV_LIDT)))
			ev->a = c->idtr_base, ev->b = c->idtr_limit;
		break;
	case X86_INS_LTR:
		if ((ev = trace_add_event(t, k, EV_LTR)))
			ev->a = c->tr, ev->b = c->tr_base;
		break;
	case X86_INS_LSS:
		if ((ev = trace_add_event(t, k, EV_LSS)))
			ev->a = c->ss, ev->b = c->gpr[R_ESP];
		break;
	case X86_INS_LJMP:
		if ((ev = trace_add_event(t, k, EV_FAR_JMP)))
			ev->a = c->cs, ev->b = c->eip_off, ev->c = c->eip;
		break;
	case X86_INS_INVLPG:
		if ((ev = trace_add_event(t, k, EV_INVLPG)))
			ev->a = operand_lin(e, d, p) & PGMASK;
		break;
	case X86_INS_MOV:
		if (d->dst_reg == X86_REG_CR3 && (ev = trace_add_event(t, k, EV_MOV_CR3)))
			ev->a = p->cr3, ev->b = c->cr3;
		else if (d->dst_reg == X86_REG_CR0 && (ev = trace_add_event(t, k, EV_MOV_CR0)))
			ev->a = p->cr0, ev->b = c->cr0;
		else if (d->dst_reg == X86_REG_CR4 && (ev = trace_add_event(t, k, EV_MOV_CR4)))
			ev->a = p->cr4, ev->b = c->cr4;
		break;
	default:
		break;
	}
	/* MOV CR3 (and CR0/CR4 writes) load the PAE PDPTEs; nothing else does. */
	bool paging_write = d->id == X86_INS_MOV &&
			    (d->dst_reg == X86_REG_CR3 || d->dst_reg == X86_REG_CR0 || d->dst_reg == X86_REG_CR4);
	if (paging_write || p->cr3 != c->cr3 || p->cr0 != c->cr0 || p->cr4 != c->cr4)
		sync_paging(e, paging_write);
	if (d->id == X86_INS_WRMSR) {
		/* EFER.NXE decides whether bit 63 of a PAE entry is NX or reserved. */
		uc_x86_msr efer = {0xC0000080u, 0};
		if (uc_reg_read(e->uc, UC_X86_REG_MSR, &efer) == UC_ERR_OK && e->regs.efer != efer.value) {
			e->regs.efer = efer.value;
			walk_cache_flush(e);
		}
		e->cur.efer = (uint32_t)e->regs.efer;
	}
	if (d->reread & RR_SEG) /* only these change a selector (e->cur keeps the others) */
		sync_segs(e, d->id == X86_INS_LJMP);
}

static inline void finish_prev(struct engine *e)
{
	if (e->prev && e->prev->finish && e->t->n)
		finish_events(e);
}

/* SHIMCHECK_CHECK_READS: the partial read-back must equal a full one. A difference is the
 * write set's error (effects.c), and stops the run as an internal error naming it. */
static bool check_read(struct engine *e, uint64_t address)
{
	struct tr_cpu full = e->cur;
	read_cpu_fast(e, address, &full);
	static const char *names[8] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
	const char *bad = NULL;
	for (int i = 0; i < 8 && !bad; i++)
		if (full.gpr[i] != e->cur.gpr[i])
			bad = names[i];
	if (!bad && full.eflags != e->cur.eflags)
		bad = "eflags";
	if (!bad && full.eip_off != e->cur.eip_off)
		bad = "eip";
	if (!bad)
		return true;
	char d[160];
	snprintf(d, sizeof d, "register read-back: `%s` changed %s, which its write set leaves out", e->prev->text, bad);
	stop(e, END_INTERNAL, d);
	return false;
}

static void mark_bytes(struct engine *e, uint64_t pa, unsigned n)
{
	if (pa == UINT64_MAX || pa < e->base || pa + n > e->base + e->size)
		return;
	uint64_t page = (pa - e->base) >> PGSHIFT;
	e->exec[page] = 1;
	if (page >= e->exec_hi)
		e->exec_hi = page + 1;
	/* A bitmap byte at a time (an instruction spans at most three). */
	for (uint64_t b = pa - e->base, end = b + n; b < end;) {
		unsigned lo = (unsigned)(b & 7), k = (unsigned)(end - b) < 8 - lo ? (unsigned)(end - b) : 8 - lo;
		e->xbits[b >> 3] |= (uint8_t)(((1u << k) - 1) << lo);
		b += k;
	}
}

/* The bytes of an instruction that ran, on one page or two: the blocks Unicorn translated
 * hold exactly such bytes when every run ended normally (engine_load relies on it). */
static void mark_ran(struct engine *e, uint32_t lin, uint64_t pa, uint8_t len)
{
	uint32_t first = PGSIZE - (lin & 0xFFF);
	if (len <= first) {
		mark_bytes(e, pa, len);
		return;
	}
	mark_bytes(e, pa, first);
	mark_bytes(e, fetch_pa(e, lin + first), len - first);
}

static void hook_code(uc_engine *uc, uint64_t address, uint32_t size, void *ud)
{
	(void)uc;
	struct engine *e = ud;
	if (e->stopped)
		return;
	if (++e->count > e->bound) {
		char d[96];
		snprintf(d, sizeof d, "instruction bound %u reached at 0x%08" PRIx32, e->bound, (uint32_t)address);
		stop(e, END_BOUND, d);
		return;
	}
	if (!e->record)
		return;
	if (!e->prev || e->t->n == 0 || e->prev->reread == RR_ALL)
		read_cpu(e, address, &e->cur);
	else {
		read_cpu_some(e, address, &e->cur, e->prev->reread, e->prev);
		if (e->check_reads && !check_read(e, address))
			return;
	}
	finish_prev(e);
	struct trace *t = e->t;
	struct tr_insn *in = trace_add_insn(t);
	if (!in) {
		stop(e, END_INTERNAL, "out of memory recording the trace");
		return;
	}
	in->cpu = e->cur;
	in->space = space_of(e->img, e->cur.cr3);
	in->pa = fetch_pa(e, e->cur.eip);
	in->len = (uint8_t)(size > 15 ? 15 : size);
	fetch_bytes(e, e->cur.eip, in->len, in->bytes, in->pa);
	struct eip_memo *em = &e->em[(e->cur.eip ^ e->cur.eip >> 9) % EIP_MEMO];
	const struct decoded *md = em->eip == e->cur.eip ? em->d : NULL;
	if (md && md->valid && md->len == in->len && memcmp(md->bytes, in->bytes, in->len) == 0 &&
	    ((!md->eip_bound && !md->rel) || md->eip == e->cur.eip)) {
		e->prev = md; /* what decode() would return: the same test, without the hash */
	} else {
		e->prev = decode(e, e->cur.eip, in->bytes, in->len);
		em->eip = e->cur.eip;
		em->d = e->prev;
		em->xepoch = e->xepoch - 1;
	}
	in->op = (uint16_t)e->prev->id;
	/* An instruction that crosses into the next page is marked every time: the memo does
	 * not know where that page maps. */
	if (em->xepoch != e->xepoch || em->pa != in->pa || (e->cur.eip & 0xFFF) + in->len > PGSIZE) {
		mark_ran(e, e->cur.eip, in->pa, in->len);
		em->xepoch = e->xepoch;
		em->pa = in->pa;
	}
	in->len_model = e->prev->id == X86_INS_INVALID ? 0 : e->prev->size;
	memcpy(in->text, e->prev->text, sizeof in->text - 1);
	uint32_t k = t->n - 1;
	/* Markers: entering the shim page, and the guest getting control. */
	bool shim = (e->cur.eip & PGMASK) == e->img->shim_lin ||
		    (in->pa != UINT64_MAX && (in->pa & ~(uint64_t)0xFFF) == e->img->shim_pa);
	if (shim && !e->in_shim) {
		struct tr_event *ev = trace_add_event(t, k, EV_SHIM_ENTER);
		if (ev) {
			ev->a = e->cur.eip;
			ev->space = in->space == SP_HOST ? 1 : 0; /* entered from the host: h2m */
			ev->b = (uint64_t)ev->space;
		}
	}
	e->in_shim = shim;
	if (e->cur.eip == e->img->ep[EP_GUEST_RUN] && in->space == SP_MON)
		trace_add_event(t, k, EV_GUEST_RUN);
}

/* Which linear address maps pa for the current instruction: its explicit operand, the
 * stack, or the GDT (descriptor reads and busy-bit writes), walked under the CR3 in force. */
static bool attribute(struct engine *e, uint64_t pa, uint32_t *lin)
{
	const struct tr_insn *in = &e->t->insn[e->t->n - 1];
	const struct tr_cpu *c = &in->cpu;
	uint32_t cand[8];
	int n = 0;
	if (e->prev && e->prev->has_mem) {
		uint32_t l = operand_lin(e, e->prev, c);
		cand[n++] = l & PGMASK;
		cand[n++] = (l + (e->prev->mem_size ? e->prev->mem_size : 1) - 1) & PGMASK;
	}
	/* Two candidates can map the same page (a guest alias): try first the ones the
	 * instruction most likely meant: descriptor tables for segment and task loads, the
	 * stack for everything else. */
	uint32_t sp = e->seg_base[2] + c->gpr[R_ESP];
	uint32_t stack[3] = {(sp - 1) & PGMASK, sp & PGMASK, (sp + 64) & PGMASK};
	uint32_t gdt[2] = {c->gdtr_base & PGMASK, (c->gdtr_base + c->gdtr_limit) & PGMASK};
	bool tables_first = e->prev && e->prev->control;
	if (tables_first)
		cand[n++] = gdt[0], cand[n++] = gdt[1];
	for (int i = 0; i < 3; i++)
		cand[n++] = stack[i];
	if (!tables_first)
		cand[n++] = gdt[0], cand[n++] = gdt[1];
	for (int i = 0; i < n; i++) {
		uint64_t got = cached_pa(e, cand[i], ACC_READ);
		if (got != UINT64_MAX && (got & ~(uint64_t)0xFFF) == (pa & ~(uint64_t)0xFFF)) {
			*lin = cand[i] | (uint32_t)(pa & 0xFFF);
			return true;
		}
	}
	return false;
}

static uint64_t read_le(const uint8_t *p, int size)
{
	switch (size) { /* the sizes the CPU uses, each one load */
	case 1: return p[0];
	case 2: return get2(p);
	case 4: return get4(p);
	case 8: return get8(p);
	default: break;
	}
	uint64_t v = 0;
	for (int i = size - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define PDE_SCAN_MAX 16
_Static_assert(sizeof ((struct scan_cache_entry *)0)->idx == PDE_SCAN_MAX * sizeof(uint16_t) && PDE_SCAN_MAX <= 16,
	       "scan_cache_entry holds PDE_SCAN_MAX indexes and a 16-bit global mask");

static struct tr_event *pte_event(struct engine *e, int s, uint64_t pa, int size, uint64_t value, uint64_t old,
				  uint32_t lin, uint32_t lin_size)
{
	struct tr_event *ev = trace_add_event(e->t, e->t->n - 1, EV_PTE_WRITE);
	if (ev) {
		ev->a = pa, ev->b = old, ev->c = value, ev->space = s, ev->size = (uint8_t)size;
		ev->lin = lin, ev->lin_size = lin_size;
		ev->old_entry = e->old_entry;
	}
	return ev;
}

/* paging_reverse through the cache: an answer holds while the directory pages it scanned
 * keep their versions (pver, see scan_table), under the same CR3 and PDPTEs. */
static int cached_reverse(struct engine *e, const struct paging_regs *r, uint64_t entry_pa, struct lin_region *out)
{
	bool pae = (r->cr4 & CR4_PAE) != 0;
	uint64_t h = (entry_pa >> 2) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(r->cr3 >> 5) * 0xC2B2AE3D27D4EB4Full;
	struct rev_cache_entry *c = &e->rc[(h >> 40) % REV_CACHE];
	if (c->valid && c->epoch == e->epoch && c->entry_pa == entry_pa && c->cr3 == r->cr3 && c->pae == pae &&
	    (!pae || memcmp(c->pdpte, r->pdpte, sizeof c->pdpte) == 0)) {
		bool same = true;
		for (int i = 0; i < c->ndir && same; i++)
			same = e->pver[c->dir_page[i]] == c->dir_ver[i];
		if (same) {
			memcpy(out, c->reg, (size_t)c->n * sizeof out[0]);
			return c->n;
		}
	}
	int n = paging_reverse(&e->pm, r, entry_pa, out, 8);
	/* The directory pages it read (outside the window there is nothing to read). */
	uint64_t dirs[4];
	int nd = 0;
	if (!pae)
		dirs[nd++] = r->cr3 & PGMASK;
	else
		for (int j = 0; j < 4; j++)
			if (r->pdpte[j] & PTE_P)
				dirs[nd++] = r->pdpte[j] & PAE_ADDR_MASK;
	c->ndir = 0;
	for (int i = 0; i < nd; i++)
		if (dirs[i] >= e->base && dirs[i] < e->base + e->size) {
			c->dir_page[c->ndir] = (dirs[i] - e->base) >> PGSHIFT;
			c->dir_ver[c->ndir] = e->pver[c->dir_page[c->ndir]];
			c->ndir++;
		}
	c->valid = true;
	c->epoch = e->epoch;
	c->cr3 = r->cr3;
	c->pae = pae;
	memcpy(c->pdpte, r->pdpte, sizeof c->pdpte);
	c->entry_pa = entry_pa;
	c->n = n;
	memcpy(c->reg, out, (size_t)n * sizeof out[0]);
	return n;
}

/* The present entries of the page table at table_pa (up to PDE_SCAN_MAX + 1 of them), from
 * the cache while the page keeps its version; NULL when the table is outside the window. */
static const struct scan_cache_entry *scan_table(struct engine *e, uint64_t table_pa, bool pae)
{
	const uint8_t *table = phys_ptr(&e->pm, table_pa & ~(uint64_t)0xFFF, PGSIZE);
	if (!table)
		return NULL;
	uint64_t page = (table_pa - e->base) >> PGSHIFT;
	struct scan_cache_entry *c = &e->scan[(table_pa >> PGSHIFT) % SCAN_CACHE];
	if (c->valid && c->table_pa == table_pa && c->ver == e->pver[page] && c->epoch == e->epoch && c->pae == pae)
		return c;
	unsigned cnt = pae ? 512 : 1024, hits = 0;
	c->glob = 0;
	for (unsigned j = 0; j < cnt && hits <= PDE_SCAN_MAX; j++) {
		if (!pae && !(j & 1) && !(get8(table + 4 * j) & ((uint64_t)PTE_P << 32 | PTE_P))) {
			j++; /* two absent 32-bit entries at once: most of a table is empty */
			continue;
		}
		uint64_t pte = pae ? get8(table + 8 * j) : get4(table + 4 * j);
		if (!(pte & PTE_P))
			continue;
		if (hits < PDE_SCAN_MAX) {
			c->idx[hits] = (uint16_t)j;
			if (pte & PTE_G)
				c->glob |= (uint16_t)(1u << hits);
		}
		hits++;
	}
	c->valid = true;
	c->table_pa = table_pa;
	c->ver = e->pver[page];
	c->epoch = e->epoch;
	c->pae = pae;
	c->hits = hits;
	return c;
}

/* A write into paging structures of space s: one event per linear region whose translation
 * it changes, saying whether the old translation could be in a TLB. A PDE that pointed to a
 * page table is resolved into the pages that table mapped (up to PDE_SCAN_MAX), since only
 * present translations can be cached. Returns the number of events. */
static int pte_events(struct engine *e, int s, uint64_t pa, int size, uint64_t value, uint64_t old)
{
	const struct image *img = e->img;
	const struct paging_regs *r = space_of(img, e->cur.cr3) == s ? &e->regs : &img->w[s].regs;
	bool pae = (r->cr4 & CR4_PAE) != 0;
	uint64_t esz = pae ? 8 : 4, mask = pae ? PAE_ADDR_MASK : PGMASK;
	uint64_t entry_pa = pa & ~(esz - 1);
	uint64_t entry = 0;
	if (pae)
		phys_read8(&e->pm, entry_pa, &entry);
	else {
		uint32_t v32 = 0;
		phys_read4(&e->pm, entry_pa, &v32);
		entry = v32;
	}
	e->old_entry = entry;
	struct lin_region reg[8];
	int n = cached_reverse(e, r, entry_pa, reg), nev = 0;
	for (int i = 0; i < n; i++) {
		bool present = entry & PTE_P;
		bool large = reg[i].level == 1 && (entry & PTE_PS) && (pae || (r->cr4 & CR4_PSE));
		if (reg[i].level == 1 && present && !large) {
			/* Which pages did the old page table map? */
			const struct scan_cache_entry *sc = scan_table(e, entry & mask, pae);
			unsigned hits = sc ? sc->hits : 0;
			uint32_t lins[PDE_SCAN_MAX];
			bool glob[PDE_SCAN_MAX];
			for (unsigned j = 0; j < hits && j < PDE_SCAN_MAX; j++) {
				lins[j] = reg[i].lin + ((uint32_t)sc->idx[j] << PGSHIFT);
				glob[j] = (sc->glob >> j) & 1;
			}
			if (hits <= PDE_SCAN_MAX) {
				for (unsigned j = 0; j < hits; j++) {
					struct tr_event *ev = pte_event(e, s, pa, size, value, old, lins[j], PGSIZE);
					if (ev)
						ev->stale = true, ev->global = glob[j];
					nev++;
				}
				if (hits == 0 && pte_event(e, s, pa, size, value, old, reg[i].lin, reg[i].size))
					nev++; /* nothing was cached, but the entry did change */
				continue;
			}
		}
		struct tr_event *ev = pte_event(e, s, pa, size, value, old, reg[i].lin, reg[i].size);
		if (ev) {
			ev->stale = present;
			ev->global = present && (entry & PTE_G) && (reg[i].level == 2 || large);
			ev->large = large;
		}
		nev++;
	}
	return nev;
}

static void watch_write(struct engine *e, uint64_t pa, int size, uint64_t value, uint64_t old)
{
	struct trace *t = e->t;
	uint32_t k = t->n - 1;
	const struct image *img = e->img;
	struct tr_event *ev;
	uint64_t wpage = (pa - e->base) >> PGSHIFT; /* pa lies in the window (record_mem) */
	int pt_space = e->pts[wpage] - 1;
	if (pt_space >= 0) {
		int nev = 0;
		e->old_entry = 0;
		for (int s = 0; s < 2; s++)
			nev += pte_events(e, s, pa, size, value, old);
		if (nev == 0 && (ev = trace_add_event(t, k, EV_PTE_WRITE))) {
			ev->a = pa, ev->b = old, ev->c = value, ev->space = pt_space, ev->size = (uint8_t)size;
		}
	}
	for (int s = 0; s < 2; s++) {
		uint64_t hi = img->w[s].tss_desc_pa + 4;
		if (pa + (uint64_t)size <= hi || pa >= hi + 4)
			continue;
		uint8_t *p = phys_ptr(&e->pm, hi, 4);
		uint8_t now[4], after[4];
		memcpy(now, p, 4);
		memcpy(after, p, 4);
		for (int i = 0; i < size; i++) {
			uint64_t a = pa + (uint64_t)i;
			if (a >= hi && a < hi + 4)
				after[a - hi] = (uint8_t)(value >> (8 * i));
		}
		uint32_t o = get4(now), nw = get4(after);
		bool was_busy = ((o >> 8) & 0xF) == STS_T32B, is_busy = ((nw >> 8) & 0xF) == STS_T32B;
		enum ev_kind kind = was_busy && !is_busy ? EV_BUSY_CLEAR : !was_busy && is_busy ? EV_BUSY_SET : EV_DESC_WRITE;
		if (o == nw)
			continue;
		if (kind == EV_DESC_WRITE) {
			if ((ev = trace_add_event(t, k, kind)))
				ev->a = pa, ev->b = old, ev->c = value;
		} else if ((ev = trace_add_event(t, k, kind))) {
			ev->a = img->w[s].tss_desc_pa, ev->b = (uint64_t)s, ev->c = nw;
		}
		return;
	}
	for (int s = 0; s < 2; s++)
		if ((pa & ~(uint64_t)0xFFF) == img->w[s].obj_pa[OBJ_GDT] && (ev = trace_add_event(t, k, EV_DESC_WRITE)))
			ev->a = pa, ev->b = old, ev->c = value;
}

static void mark_dirty(struct engine *e, uint64_t page)
{
	if (!e->dirty[page]) {
		e->dirty[page] = 1;
		e->dirty_list[e->ndirty++] = (uint32_t)page;
	}
}

static void record_mem(struct engine *e, uc_mem_type type, uint64_t address, int size, int64_t value)
{
	if (address >= e->base && address < e->base + e->size) {
		uint64_t page = (address - e->base) >> PGSHIFT;
		if (type == UC_MEM_WRITE) {
			if (e->struct_gen[page] == e->wgen)
				walk_cache_flush(e); /* a paging structure a cached walk used */
			mark_dirty(e, page);
			if (address + (uint64_t)size - 1 < e->base + e->size)
				mark_dirty(e, (address + (uint64_t)size - 1 - e->base) >> PGSHIFT);
		}
	}
	if (!e->t || !e->record || e->stopped || e->t->n == 0)
		return; /* also: segment loads done by uc_reg_write outside a run */
	if (size < 1 || size > 8)
		size = size < 1 ? 1 : 8;
	struct tr_mem *m = trace_add_mem(e->t);
	if (!m) {
		stop(e, END_INTERNAL, "out of memory recording the trace");
		return;
	}
	m->write = type == UC_MEM_WRITE;
	m->size = (uint8_t)size;
	m->pa = address;
	m->value = m->write ? (uint64_t)value & (size == 8 ? UINT64_MAX : ((1ull << (8 * size)) - 1)) : 0;
	const uint8_t *p = live_ptr(e, address, (uint64_t)size);
	if (p) {
		if (m->write)
			m->old = read_le(p, size);
		else
			m->value = read_le(p, size);
	}
	m->lin_known = attribute(e, address, &m->lin);
	if (m->write && p)
		watch_write(e, address, size, m->value, m->old); /* hook_mem bumps the page's version after */
}

static void hook_mem(uc_engine *uc, uc_mem_type type, uint64_t address, int size, int64_t value, void *ud)
{
	(void)uc;
	struct engine *e = ud;
	record_mem(e, type, address, size, value);
	/* A new version of the page, once this write's events are out (the store itself lands
	 * after the hook: a scan done for the events saw the page before it, so it must not
	 * carry the version the page has after it). */
	if (type == UC_MEM_WRITE && address >= e->base && address < e->base + e->size) {
		uint64_t page = (address - e->base) >> PGSHIFT;
		e->pver[page]++;
		uint64_t last = (address + (uint64_t)(size > 0 ? size : 1) - 1 - e->base) >> PGSHIFT;
		if (last != page && last < (e->size >> PGSHIFT))
			e->pver[last]++;
	}
}

/* The error code the CPU pushed, as the model computes it (Unicorn does not expose it). */
static uint32_t model_error_code(struct engine *e, int vector, uint32_t cr2, bool *has)
{
	*has = vector == T_DF || (vector >= T_TS && vector <= T_PF) || vector == 17;
	if (!*has || e->t->n == 0)
		return 0;
	const struct tr_insn *in = &e->t->insn[e->t->n - 1];
	const struct decoded *d = e->prev;
	if (vector == T_PF) {
		bool fetch = cr2 - in->cpu.eip < 16u && in->pa == UINT64_MAX;
		/* Capstone 4 marks TEST/CMP/BT memory operands as written: they only read. */
		bool reads_only = d && (d->id == X86_INS_TEST || d->id == X86_INS_CMP || d->id == X86_INS_BT);
		enum access acc = fetch ? ACC_FETCH
				  : (d && d->has_mem && d->mem_write && !reads_only) ? ACC_WRITE : ACC_READ;
		if (d && (d->id == X86_INS_LTR || d->id == X86_INS_AND || d->id == X86_INS_OR) &&
		    paging_walk(&e->pm, &e->regs, cr2, ACC_READ, 0).status == WALK_OK)
			acc = ACC_WRITE; /* LTR's busy-bit write; read-modify-write */
		if (d && (d->id == X86_INS_PUSH || d->id == X86_INS_PUSHAL || d->id == X86_INS_PUSHFD ||
			  d->id == X86_INS_CALL || d->id == X86_INS_LCALL))
			acc = ACC_WRITE; /* stack stores */
		struct walk w = paging_walk(&e->pm, &e->regs, cr2, acc, 0);
		e->fault_walk_ok = w.status == WALK_OK;
		return w.status == WALK_FAULT ? w.err : 0;
	}
	if (vector >= T_TS && vector <= T_GP && d && d->has_mem) {
		/* Selector faults of LTR (its operand), far JMP and LSS (the m16:32's selector). */
		uint32_t lin = operand_lin(e, d, &in->cpu);
		if (d->id == X86_INS_LJMP || d->id == X86_INS_LSS)
			lin += 4;
		else if (d->id != X86_INS_LTR)
			return 0;
		struct walk w = paging_walk(&e->pm, &e->regs, lin, ACC_READ, 0);
		const uint8_t *p = w.status == WALK_OK ? phys_ptr(&e->pm, w.pa, 2) : NULL;
		return p ? (uint32_t)get2(p) & 0xFFFC : 0;
	}
	return 0;
}

static void hook_intr(uc_engine *uc, uint32_t intno, void *ud)
{
	struct engine *e = ud;
	uint64_t cr2 = 0, eip = 0;
	uc_reg_read(uc, UC_X86_REG_CR2, &cr2);
	uc_reg_read(uc, UC_X86_REG_EIP, &eip);
	struct trace *t = e->t;
	if (e->record) {
		uint32_t lin = (uint32_t)(eip + e->seg_base[1]);
		/* A fault on fetching a new instruction comes before its code hook: record it. */
		if (t->n == 0 || t->insn[t->n - 1].cpu.eip != lin) {
			read_cpu(e, lin, &e->cur);
			finish_prev(e);
			struct tr_insn *in = trace_add_insn(t);
			if (in) {
				in->cpu = e->cur;
				in->space = space_of(e->img, e->cur.cr3);
				in->pa = fetch_pa(e, lin);
				in->len = 0;
				e->prev = NULL;
			}
		}
		bool has;
		e->fault_walk_ok = false;
		uint32_t err = model_error_code(e, (int)intno, (uint32_t)cr2, &has);
		struct tr_event *ev = t->n ? trace_add_event(t, t->n - 1, EV_FAULT) : NULL;
		if (ev) {
			ev->a = intno;
			ev->b = err;
			ev->c = intno == T_PF ? cr2 : 0;
			ev->size = has;
			ev->walk_ok = intno == T_PF && e->fault_walk_ok;
		}
	}
	char d[96];
	snprintf(d, sizeof d, "exception %u at 0x%08" PRIx32, intno, (uint32_t)(eip + e->seg_base[1]));
	stop(e, END_FAULT, d);
}

/* ---- life cycle ------------------------------------------------------------------------------ */

/* The hooks of a floor engine with hooks (engine_open_bare(true)): they do nothing, so that
 * what they cost is Unicorn's alone (a call per instruction; with any memory hook every
 * load and store leaves the translated code's fast path). */
static void empty_code_hook(uc_engine *uc, uint64_t address, uint32_t size, void *ud)
{
	(void)uc, (void)address, (void)size, (void)ud;
}

static void empty_mem_hook(uc_engine *uc, uc_mem_type type, uint64_t address, int size, int64_t value, void *ud)
{
	(void)uc, (void)type, (void)address, (void)size, (void)value, (void)ud;
}

static struct engine *open_engine(bool bare, bool empty_hooks, char *err, size_t errlen)
{
	struct engine *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->bare = bare;
	const char *cr = getenv("SHIMCHECK_CHECK_READS");
	e->check_reads = cr && *cr && strcmp(cr, "0") != 0;
	const char *nk = getenv("SHIMCHECK_NO_TB_KEEP");
	e->no_keep = nk && *nk && strcmp(nk, "0") != 0;
	uc_err u = uc_open(UC_ARCH_X86, UC_MODE_32, &e->uc);
	if (u != UC_ERR_OK) {
		snprintf(err, errlen, "uc_open: %s", uc_strerror(u));
		free(e);
		return NULL;
	}
	/* One pinned CPU model on every engine (QEMU -cpu Penryn, Bochs core2_penryn_t9600):
	 * it has PSE, PAE, PGE and NX. */
	u = uc_ctl_set_cpu_model(e->uc, UC_CPU_X86_PENRYN);
	/* A few hundred instructions need a small translation cache; the 1 GiB default makes
	 * every uc_open slow and fat. */
	if (u == UC_ERR_OK)
		u = uc_ctl_set_tcg_buffer_size(e->uc, 8u << 20);
	if (u == UC_ERR_OK && bare && empty_hooks)
		u = uc_hook_add(e->uc, &e->h_code, UC_HOOK_CODE, (void *)empty_code_hook, e, 1, 0);
	if (u == UC_ERR_OK && bare && empty_hooks)
		u = uc_hook_add(e->uc, &e->h_mem, UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, (void *)empty_mem_hook, e, 1, 0);
	if (u == UC_ERR_OK && !bare)
		u = uc_hook_add(e->uc, &e->h_code, UC_HOOK_CODE, (void *)hook_code, e, 1, 0);
	if (u == UC_ERR_OK && !bare)
		u = uc_hook_add(e->uc, &e->h_mem, UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, (void *)hook_mem, e, 1, 0);
	if (u == UC_ERR_OK && !bare)
		u = uc_hook_add(e->uc, &e->h_intr, UC_HOOK_INTR, (void *)hook_intr, e, 1, 0);
	if (u == UC_ERR_OK)
		u = uc_context_alloc(e->uc, &e->clean);
	if (u == UC_ERR_OK)
		u = uc_context_alloc(e->uc, &e->pristine);
	/* Unicorn remembers a fault: the next one on the same engine comes out as #DF, later
	 * ones not at all. A context saved before any fault clears that when restored. */
	if (u == UC_ERR_OK)
		u = uc_context_save(e->uc, e->pristine);
	if (u != UC_ERR_OK) {
		snprintf(err, errlen, "unicorn set-up: %s", uc_strerror(u));
		uc_close(e->uc);
		free(e);
		return NULL;
	}
	if (cs_open(CS_ARCH_X86, CS_MODE_32, &e->cs) != CS_ERR_OK) {
		snprintf(err, errlen, "cs_open failed");
		uc_context_free(e->clean);
		uc_close(e->uc);
		free(e);
		return NULL;
	}
	cs_option(e->cs, CS_OPT_DETAIL, CS_OPT_ON);
	pthread_mutex_init(&e->wd_mu, NULL);
	pthread_cond_init(&e->wd_cv, NULL);
	if (pthread_create(&e->wd, NULL, watchdog, e) != 0) {
		snprintf(err, errlen, "cannot start the watchdog thread");
		cs_close(&e->cs);
		uc_context_free(e->clean);
		uc_close(e->uc);
		free(e);
		return NULL;
	}
	return e;
}

struct engine *engine_open(char *err, size_t errlen) { return open_engine(false, false, err, errlen); }

struct engine *engine_open_bare(bool empty_hooks, char *err, size_t errlen)
{
	return open_engine(true, empty_hooks, err, errlen);
}

bool engine_bare_pages(struct engine *e, const uint64_t *pa, uint32_t n)
{
	if (!e->bare || !e->live)
		return false;
	for (uint32_t k = 0; k < n; k++)
		if (pa[k] >= e->base && pa[k] < e->base + e->size)
			mark_dirty(e, (pa[k] - e->base) >> PGSHIFT);
	return true;
}

/* The physical window and everything kept per page of it. */
static void free_window(struct engine *e)
{
	free(e->live);
	free(e->dirty);
	free(e->dirty_list);
	free(e->exec);
	free(e->xbits);
	free(e->struct_gen);
	free(e->pver);
	free(e->pts);
	e->live = NULL;
	e->dirty = e->exec = e->xbits = e->pts = NULL;
	e->dirty_list = e->struct_gen = e->pver = NULL;
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->wd_mu);
	atomic_store(&e->wd_quit, true);
	pthread_cond_signal(&e->wd_cv);
	pthread_mutex_unlock(&e->wd_mu);
	pthread_join(e->wd, NULL);
	pthread_mutex_destroy(&e->wd_mu);
	pthread_cond_destroy(&e->wd_cv);
	cs_close(&e->cs);
	uc_context_free(e->clean);
	uc_context_free(e->pristine);
	uc_close(e->uc);
	free_window(e);
	free(e);
}

static bool set_seg(struct engine *e, int reg, uint16_t sel)
{
	UC_TRY(e, uc_reg_write(e->uc, reg, &sel));
	return true;
}

/* The image's initial CPU state, written into Unicorn in an order it accepts: tables and
 * paging first, so that segment loads find their descriptors. */
static bool set_initial(struct engine *e)
{
	const struct cpu_state *c = &e->img->init;
	uc_x86_mmr g = {0, c->gdtr.base, c->gdtr.limit, 0}, i = {0, c->idtr.base, c->idtr.limit, 0};
	uc_x86_mmr tr = {c->tr.sel, c->tr.base, c->tr.limit, c->tr.flags};
	uint64_t cr0 = c->cr0, cr3 = c->cr3, cr4 = c->cr4;
	uc_x86_msr efer = {0xC0000080u, c->efer};
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_GDTR, &g));
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_IDTR, &i));
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_MSR, &efer));
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_CR4, &cr4));
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_CR3, &cr3));
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_CR0, &cr0));
	/* The host GDT must be reachable now, or Unicorn dies on the segment writes below. */
	struct paging_regs r = e->img->w[SP_HOST].regs;
	struct walk w = paging_walk(&e->pm, &r, c->gdtr.base, ACC_READ, 0);
	if (w.status != WALK_OK) {
		snprintf(e->err, sizeof e->err, "the host GDT at 0x%08x is not mapped in the host space", c->gdtr.base);
		return false;
	}
	if (!set_seg(e, UC_X86_REG_CS, c->cs.sel) || !set_seg(e, UC_X86_REG_SS, c->ss.sel) ||
	    !set_seg(e, UC_X86_REG_DS, c->ds.sel) || !set_seg(e, UC_X86_REG_ES, c->es.sel) ||
	    !set_seg(e, UC_X86_REG_FS, c->fs.sel) || !set_seg(e, UC_X86_REG_GS, c->gs.sel))
		return false;
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_TR, &tr));
	uint32_t gpr[8] = {c->eax, c->ecx, c->edx, c->ebx, c->esp, c->ebp, c->esi, c->edi};
	const int ids[8] = {UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_EBX,
			    UC_X86_REG_ESP, UC_X86_REG_EBP, UC_X86_REG_ESI, UC_X86_REG_EDI};
	for (int k = 0; k < 8; k++)
		UC_TRY(e, uc_reg_write(e->uc, ids[k], &gpr[k]));
	uint32_t eip = c->eip, fl = c->eflags;
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_EIP, &eip));
	UC_TRY(e, uc_reg_write(e->uc, UC_X86_REG_EFLAGS, &fl));
	return true;
}

/* Where an image puts its code: the entry points (linear), the shim's page and the worlds'
 * code pages (physical). FNV-1a over them. */
static uint64_t placement_of(const struct image *img)
{
	uint64_t v[EP_N + 4];
	for (int i = 0; i < EP_N; i++)
		v[i] = img->ep[i];
	v[EP_N] = img->shim_lin;
	v[EP_N + 1] = img->shim_pa;
	v[EP_N + 2] = img->w[SP_HOST].obj_pa[OBJ_CODE];
	v[EP_N + 3] = img->w[SP_MON].obj_pa[OBJ_CODE];
	return fnv1a64(FNV64_INIT, v, sizeof v);
}

/* Do the bytes of page p that ran differ between the engine's memory and src? */
static bool ran_bytes_differ(const struct engine *e, uint64_t p, const uint8_t *src)
{
	const uint8_t *bits = e->xbits + (p << PGSHIFT >> 3), *live = e->live + (p << PGSHIFT);
	for (unsigned i = 0; i < PGSIZE / 8; i++) {
		if (!bits[i])
			continue;
		for (unsigned b = 0; b < 8; b++)
			if ((bits[i] >> b & 1) && live[i * 8 + b] != src[i * 8 + b])
				return true;
	}
	return false;
}

/* One page of engine_load: marks its blocks to go when the bytes that ran change, and brings
 * it to the new image (zero above what the image uses). */
static void load_page(struct engine *e, const struct image *img, uint64_t p, uint64_t used, bool drop_all)
{
	static const uint8_t zero[PGSIZE];
	uint64_t off = p << PGSHIFT;
	/* After a run without recording, which pages ran is not known: count as run every page
	 * either image used and every page the run wrote (all others stayed zero, and blocks
	 * translated from them still match). */
	if (e->exec_unknown && (off < used || off < e->used || e->dirty[p])) {
		e->exec[p] = 1;
		if (p >= e->exec_hi)
			e->exec_hi = p + 1;
	}
	if (off >= used && off >= e->used && !e->dirty[p]) {
		if (drop_all && e->exec[p])
			e->exec[p] = 2;
		return;
	}
	const uint8_t *src = off < used ? img->pm.bytes + off : zero;
	if (e->exec[p] && (drop_all || ran_bytes_differ(e, p, src)))
		e->exec[p] = 2; /* its blocks go */
	if (memcmp(e->live + off, src, PGSIZE) != 0)
		memcpy(e->live + off, src, PGSIZE);
}

bool engine_load(struct engine *e, const struct image *img, char *err, size_t errlen)
{
	e->img = img;
	e->epoch++; /* every cached page-table scan was of other memory */
	if (e->live && (e->base != img->pm.base || e->size != img->pm.size)) {
		uc_mem_unmap(e->uc, e->base, e->size);
		free_window(e);
	}
	bool fresh = !e->live;
	if (fresh) {
		e->base = img->pm.base;
		e->size = img->pm.size;
		e->live = aligned_alloc(4096, (size_t)e->size);
		e->dirty = calloc(1, (size_t)(e->size >> PGSHIFT));
		e->dirty_list = calloc((size_t)(e->size >> PGSHIFT), sizeof e->dirty_list[0]);
		e->ndirty = 0;
		e->exec = calloc(1, (size_t)(e->size >> PGSHIFT));
		e->xbits = calloc(1, (size_t)(e->size >> 3));
		e->struct_gen = calloc((size_t)(e->size >> PGSHIFT), sizeof e->struct_gen[0]);
		e->pver = calloc((size_t)(e->size >> PGSHIFT), sizeof e->pver[0]);
		e->pts = calloc((size_t)(e->size >> PGSHIFT), 1);
		e->npts = 0;
		if (!e->live || !e->dirty || !e->dirty_list || !e->exec || !e->xbits || !e->struct_gen || !e->pver || !e->pts) {
			snprintf(err, errlen, "out of memory for the physical window");
			return false;
		}
		memset(e->live, 0, (size_t)e->size);
		e->used = 0;
		uc_err u = uc_mem_map_ptr(e->uc, e->base, e->size, UC_PROT_ALL, e->live);
		if (u != UC_ERR_OK) {
			snprintf(err, errlen, "uc_mem_map_ptr(0x%" PRIx64 ", 0x%" PRIx64 "): %s", e->base, e->size,
				 uc_strerror(u));
			return false;
		}
	}
	/* Bring memory to the new image: pages the old or new image used, and pages the last run
	 * wrote; all others are zero on both sides. Code that ran and now changes invalidates
	 * the translated blocks (Unicorn did not see this write). */
	uint64_t used = image_used(img), npages = e->size >> PGSHIFT;
	bool flush = fresh;
	/* Which translated blocks can stay. Unicorn keys a block by its linear address and the
	 * physical page, and does not see these copies: a block stays right while the bytes
	 * it was translated from are unchanged. Those are the bytes that ran (xbits) when every
	 * run since ended normally; else, after an unrecorded run, or when the code moved to
	 * other addresses (blocks at the old ones would pile up on the same pages), every page
	 * that ran loses its blocks. Scenarios that keep the layout keep their translations. */
	uint64_t placement = placement_of(img);
	bool drop_all = e->exec_unknown || e->exec_partial || placement != e->placement || e->no_keep;
	e->placement = placement;
	e->exec_partial = false;
	/* Only pages below the larger of the two images' extents, pages marked as run, and the
	 * pages the last runs wrote can differ or hold blocks: the rest of the window is zero
	 * on both sides and never ran. */
	uint64_t hi = (used > e->used ? used : e->used) + PGSIZE - 1;
	hi >>= PGSHIFT;
	if (hi < e->exec_hi)
		hi = e->exec_hi;
	if (hi > npages)
		hi = npages;
	for (uint64_t p = 0; p < hi; p++)
		load_page(e, img, p, used, drop_all);
	for (uint32_t k = 0; k < e->ndirty; k++)
		if (e->dirty_list[k] >= hi)
			load_page(e, img, e->dirty_list[k], used, drop_all);
	e->used = used;
	for (uint32_t k = 0; k < e->npts; k++)
		e->pts[e->pts_pages[k]] = 0;
	e->npts = 0;
	for (int sp = 0; sp < 2; sp++)
		for (int i = 0; i < img->w[sp].npt; i++) {
			uint64_t pa = img->w[sp].pt_pages[i];
			if (pa < e->base || pa >= e->base + e->size || e->npts == sizeof e->pts_pages / sizeof e->pts_pages[0])
				continue;
			uint32_t pg = (uint32_t)((pa - e->base) >> PGSHIFT);
			if (!e->pts[pg]) { /* image_pt_space answers the first space that lists it */
				e->pts[pg] = (uint8_t)(sp + 1);
				e->pts_pages[e->npts++] = pg;
			}
		}
	for (uint32_t k = 0; k < e->ndirty; k++)
		e->dirty[e->dirty_list[k]] = 0;
	e->ndirty = 0;
	e->pm.base = e->base;
	e->pm.size = e->size;
	e->pm.bytes = e->live;
	/* Back to the state from before any run (faults included), then the new image's. */
	uc_err ur = uc_context_restore(e->uc, e->pristine);
	if (ur != UC_ERR_OK) {
		snprintf(err, errlen, "uc_context_restore: %s", uc_strerror(ur));
		return false;
	}
	if (flush) {
		uc_ctl_flush_tb(e->uc);
		memset(e->exec, 0, (size_t)npages);
		memset(e->xbits, 0, (size_t)(e->size >> 3));
		e->xepoch++;
		e->exec_hi = 0;
	} else {
		/* Drop the blocks of the pages marked 2, by physical address (paging is off in
		 * the pristine context, and its TLB is emptied first so that no translation of the
		 * last run is used to find them). Not a full flush: that clears the whole
		 * translation buffer, the largest cost of a fuzz scenario. */
		uc_ctl_flush_tlb(e->uc);
		for (uint64_t p = 0; p < e->exec_hi; p++)
			if (e->exec[p] == 2) {
				uint64_t pa = e->base + (p << PGSHIFT);
				uc_err ui = uc_ctl_remove_cache(e->uc, pa, pa + (uint64_t)PGSIZE);
				if (ui != UC_ERR_OK) {
					snprintf(err, errlen, "uc_ctl_remove_cache(0x%" PRIx64 "): %s", pa, uc_strerror(ui));
					return false;
				}
				e->exec[p] = 0;
				memset(e->xbits + (p << PGSHIFT >> 3), 0, PGSIZE >> 3);
				e->xepoch++;
			}
	}
	if (!set_initial(e)) {
		snprintf(err, errlen, "%s", e->err);
		return false;
	}
	e->exec_unknown = false;
	uc_ctl_flush_tlb(e->uc);
	uc_err u = uc_context_save(e->uc, e->clean);
	if (u != UC_ERR_OK) {
		snprintf(err, errlen, "uc_context_save: %s", uc_strerror(u));
		return false;
	}
	return true;
}

/* Put back every page the last run changed, and the paging structures (the CPU's page
 * walks set A/D bits without any hook seeing it). */
static void reset_memory(struct engine *e)
{
	const struct image *img = e->img;
	bool code = false;
	for (uint32_t k = 0; k < e->ndirty; k++) {
		uint64_t p = e->dirty_list[k];
		uint64_t off = p << PGSHIFT;
		uint64_t pa = e->base + off;
		/* Code changed behind the translated blocks (self-modifying code): flush them. The
		 * shim's data area shares its page and changes every run; it holds no code. */
		size_t code_len = pa == img->shim_pa ? SHIM_CODE_LEN : PGSIZE;
		if (pa == img->shim_pa || pa == img->w[SP_HOST].obj_pa[OBJ_CODE] || pa == img->w[SP_MON].obj_pa[OBJ_CODE])
			code |= memcmp(e->live + off, img->pm.bytes + off, code_len) != 0;
		memcpy(e->live + off, img->pm.bytes + off, PGSIZE);
		if (!e->bare) /* a bare engine sees no write: its list is the one it was given */
			e->dirty[p] = 0;
		e->pver[p]++;
	}
	if (!e->bare)
		e->ndirty = 0;
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < img->w[s].npt; i++) {
			uint64_t off = img->w[s].pt_pages[i] - e->base;
			memcpy(e->live + off, img->pm.bytes + off, PGSIZE);
		}
	if (code)
		uc_ctl_flush_tb(e->uc);
}

bool engine_run(struct engine *e, struct trace *t, const struct run_limits *lim)
{
	const struct image *img = e->img;
	reset_memory(e);
	uc_err u = uc_context_restore(e->uc, e->clean);
	if (u != UC_ERR_OK) {
		snprintf(t->end_detail, sizeof t->end_detail, "uc_context_restore: %s", uc_strerror(u));
		t->end = END_INTERNAL;
		return false;
	}
	uc_ctl_flush_tlb(e->uc); /* uc_context_restore keeps the TLB */
	trace_reset(t);
	e->t = t;
	e->record = lim->record;
	e->exec_unknown |= !lim->record;
	e->count = 0;
	e->bound = lim->max_insns ? lim->max_insns : 2000 + 400 * img->rounds;
	t->bound = e->bound;
	e->stopped = false;
	e->prev = NULL;
	e->in_shim = false;
	e->regs = img->w[SP_HOST].regs;
	walk_cache_flush(e); /* memory was reset under it */
	memset(&e->cur, 0, sizeof e->cur);
	e->cur.gdtr_base = img->init.gdtr.base;
	const uint16_t sel[6] = {img->init.es.sel, img->init.cs.sel, img->init.ss.sel,
				 img->init.ds.sel, img->init.fs.sel, img->init.gs.sel};
	const uint32_t base[6] = {img->init.es.base, img->init.cs.base, img->init.ss.base,
				  img->init.ds.base, img->init.fs.base, img->init.gs.base};
	memcpy(e->seg_sel, sel, sizeof sel);
	memcpy(e->seg_base, base, sizeof base);

	wd_arm(e, lim->wall_ms ? lim->wall_ms : 2000);
	u = uc_emu_start(e->uc, img->init.eip, img->ep[EP_HOST_DONE], 0, 0);
	bool fired = wd_disarm(e);
	t->uc_err = (int)u;
	uint64_t eip = 0;
	uc_reg_read(e->uc, UC_X86_REG_EIP, &eip);
	uint32_t lin = (uint32_t)(eip + e->seg_base[1]);
	if (u == UC_ERR_INSN_INVALID && !e->stopped && e->record && t->n) {
		/* Unicorn ends the run on an invalid opcode instead of raising #UD: record it as the
		 * fault it is on a CPU. */
		struct tr_event *ev = trace_add_event(t, t->n - 1, EV_FAULT);
		if (ev)
			ev->a = T_UD;
		char d[96];
		snprintf(d, sizeof d, "invalid opcode (#UD) at 0x%08" PRIx32, lin);
		stop(e, END_FAULT, d);
	}
	if (e->stopped || u != UC_ERR_OK || lin != img->ep[EP_HOST_DONE])
		e->exec_partial = true; /* may have stopped inside a translated block */
	if (e->record) {
		read_cpu(e, lin, &e->cur);
		/* The last instruction's effects count only if it completed. */
		if (u == UC_ERR_OK && t->end != END_FAULT)
			finish_prev(e);
		t->final = e->cur;
	}
	if (fired && !e->stopped)
		stop(e, END_TIMEOUT, "the wall-clock watchdog stopped the run");
	if (!e->stopped) {
		if (u != UC_ERR_OK) {
			char d[128];
			snprintf(d, sizeof d, "%s at 0x%08" PRIx32, uc_strerror(u), lin);
			e->stopped = true;
			t->end = END_STOPPED;
			snprintf(t->end_detail, sizeof t->end_detail, "%s", d);
		} else if (lin == img->ep[EP_HOST_DONE]) {
			t->end = END_DONE; /* reports say how many instructions; no formatting on the hot path */
			memcpy(t->end_detail, "reached host_done", sizeof "reached host_done");
		} else {
			t->end = END_STOPPED;
			snprintf(t->end_detail, sizeof t->end_detail, "stopped at 0x%08" PRIx32 " (not host_done)", lin);
		}
	}
	e->t = NULL;
	return t->end != END_INTERNAL;
}
