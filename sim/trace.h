/*
 * trace.h: what one run recorded, instruction by instruction, plus the control events
 * extracted from it. Checkers are pure functions of (trace, image, code): no engine handle.
 *
 * Every per-instruction record holds the CPU state *before* that instruction executes;
 * trace.final holds the state after the last one. Events are attributed to the
 * instruction that caused them.
 */
#ifndef SHIMCHECK_SIM_TRACE_H
#define SHIMCHECK_SIM_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/image.h"

#define TRACE_SCHEMA 1

/* The CPU state the checkers look at. */
struct tr_cpu {
	uint32_t eip;             /* linear (CS base + EIP, modulo 4 GiB) */
	uint32_t eip_off;         /* EIP as the CPU holds it (offset in CS) */
	uint32_t gpr[8];          /* eax ecx edx ebx esp ebp esi edi */
	uint32_t eflags;
	uint32_t cr0, cr3, cr4;
	uint32_t gdtr_base, idtr_base;
	uint16_t gdtr_limit, idtr_limit;
	uint16_t cs, ss, ds, es, fs, gs, tr;
	uint32_t tr_base;
	uint32_t cs_base;         /* hidden base of CS (cs_wrap) */
	uint32_t efer;            /* EFER, low half (NXE decides what bit 63 of a PAE entry means) */
};

enum { R_EAX, R_ECX, R_EDX, R_EBX, R_ESP, R_EBP, R_ESI, R_EDI };

#define EV_LIST(X)                                                                  \
	X(EV_LGDT, "lgdt")             /* a = base, b = limit */                    \
	X(EV_LIDT, "lidt")             /* a = base, b = limit */                    \
	X(EV_BUSY_CLEAR, "busy_clear") /* a = descriptor pa, b = world, c = new hi dword */ \
	X(EV_BUSY_SET, "busy_set")     /* a = descriptor pa, b = world, c = new hi dword */ \
	X(EV_DESC_WRITE, "desc_write") /* a = pa, b = old, c = new: other GDT writes */ \
	X(EV_LTR, "ltr")               /* a = selector, b = TR base */              \
	X(EV_MOV_CR3, "mov_cr3")       /* a = old, b = new */                       \
	X(EV_MOV_CR0, "mov_cr0")       /* a = old, b = new */                       \
	X(EV_MOV_CR4, "mov_cr4")       /* a = old, b = new */                       \
	X(EV_LSS, "lss")               /* a = SS, b = ESP */                        \
	X(EV_FAR_JMP, "far_jmp")       /* a = CS, b = EIP (offset), c = linear target */ \
	X(EV_INVLPG, "invlpg")         /* a = linear page */                        \
	X(EV_PTE_WRITE, "pte_write")   /* a = pa, b = old, c = new, space = whose tables, \
	                                * lin/lin_size = the linear region it maps there */ \
	X(EV_SHIM_ENTER, "shim_enter") /* a = linear, b = direction (0 m2h, 1 h2m) */ \
	X(EV_GUEST_RUN, "guest_run")   /* control is with the guest */              \
	X(EV_FAULT, "fault")           /* a = vector, b = error code, c = CR2 */

#define EV_X_ENUM(id, name) id,
enum ev_kind { EV_LIST(EV_X_ENUM) EV_N };
const char *ev_name(enum ev_kind k);

struct tr_event {
	uint32_t insn;
	enum ev_kind kind;
	int space;       /* EV_PTE_WRITE: SP_HOST/SP_MON; EV_SHIM_ENTER: direction */
	uint8_t size;    /* EV_PTE_WRITE: bytes written; EV_FAULT: 1 when b is an error code */
	uint64_t a, b, c;
	uint32_t lin, lin_size; /* EV_PTE_WRITE: the linear region whose translation changed */
	uint64_t old_entry;     /* EV_PTE_WRITE: the whole entry (4 or 8 bytes) before the write */
	bool stale;             /* EV_PTE_WRITE: the old translation was present (may be cached) */
	bool global;            /* ... and global */
	bool large;             /* ... and one large-page TLB entry */
	bool walk_ok;           /* EV_FAULT #PF: the model's walk of CR2 succeeds (they disagree) */
};

struct tr_mem {
	uint32_t insn;
	bool write;
	uint8_t size;
	bool lin_known;  /* the model found the linear address that maps pa */
	uint32_t lin;
	uint64_t pa;
	uint64_t value;  /* written value (writes) */
	uint64_t old;    /* memory before the write (writes) */
};

struct tr_insn {
	struct tr_cpu cpu;  /* state before this instruction */
	int space;          /* SP_HOST / SP_MON by CR3, or -1 */
	uint64_t pa;        /* the model walk of cpu.eip (fetch); UINT64_MAX if it faults */
	uint8_t len;        /* as the engine reports it */
	uint8_t len_model;  /* as Capstone decodes the bytes the model's walk finds (0: undecodable) */
	uint8_t bytes[16];
	uint16_t op;        /* Capstone X86_INS_* id (0: undecodable) */
	char text[48];      /* Capstone's "mnemonic operands" */
	uint32_t mem_first, mem_n;
	uint32_t ev_first, ev_n;
};

enum tr_end {
	END_DONE = 0,   /* reached host_done */
	END_FAULT,      /* an exception stopped it */
	END_BOUND,      /* the instruction bound */
	END_TIMEOUT,    /* the wall-clock watchdog */
	END_STOPPED,    /* emulation stopped elsewhere (HLT, unmapped physical memory, ...) */
	END_INTERNAL    /* the engine failed */
};

struct trace {
	uint32_t n, cap;
	struct tr_insn *insn;
	uint32_t nmem, capmem;
	struct tr_mem *mem;
	uint32_t nev, capev;
	struct tr_event *ev;
	struct tr_cpu final;
	enum tr_end end;
	char end_detail[160];
	int uc_err;         /* uc_err of uc_emu_start */
	uint32_t bound;     /* the instruction bound in force */
};

void trace_init(struct trace *t);
void trace_reset(struct trace *t);
void trace_free(struct trace *t);
/* Append; return NULL only when memory runs out. */
bool trace_grow(void **arr, uint32_t *cap, uint32_t n, size_t elem);

static inline struct tr_insn *trace_add_insn(struct trace *t)
{
	if (t->n >= t->cap && !trace_grow((void **)&t->insn, &t->cap, t->n, sizeof *t->insn))
		return NULL;
	struct tr_insn *i = &t->insn[t->n++];
	/* The engine fills cpu, space, pa, len, bytes, op and text; clear only the rest. */
	i->len = i->len_model = 0;
	i->op = 0;
	i->text[0] = '\0';
	i->mem_first = t->nmem;
	i->ev_first = t->nev;
	i->mem_n = i->ev_n = 0;
	return i;
}

/* Every field of the record is the caller's to fill but insn (and the count on it). */
static inline struct tr_mem *trace_add_mem(struct trace *t)
{
	if (t->nmem >= t->capmem && !trace_grow((void **)&t->mem, &t->capmem, t->nmem, sizeof *t->mem))
		return NULL;
	struct tr_mem *m = &t->mem[t->nmem++];
	*m = (struct tr_mem){0};
	if (t->n)
		t->insn[t->n - 1].mem_n++;
	m->insn = t->n ? t->n - 1 : 0;
	return m;
}

struct tr_event *trace_add_event(struct trace *t, uint32_t insn, enum ev_kind k);
const char *tr_end_name(enum tr_end e);

#endif
