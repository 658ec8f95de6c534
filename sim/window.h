/*
 * window.h: could an NMI, a #MC or a fault be delivered safely at each instruction boundary
 * of a switch window? A prediction from the model: Unicorn delivers no interrupts, so the
 * analysis replays the trace's memory writes over the image and asks, at every boundary,
 * what a CPU would read to deliver vector 2 through the IDT in force:
 *
 *   - the gate, at IDTR.base + 8*vector, through the CR3 in force: readable, inside the
 *     IDT limit, present, a 32-bit interrupt or trap gate (task gates: not modelled);
 *   - the handler's code descriptor from the GDT in force: present, executable;
 *   - the handler's first byte: mapped for fetch, and reaching the trap routine of the world
 *     that owns that IDT (not some other page at that linear address);
 *   - the stack: CPL 0 to a DPL 0 handler is no privilege change, so the CPU pushes EFLAGS,
 *     CS, EIP at SS:ESP-12 and reads no TSS: those bytes must be writable and reach the stack
 *     page of a world (not the guest's memory);
 *   - after MOV SS or POP SS, delivery waits one instruction (the boundary is inhibited).
 *
 * Then the way back, for a handler that returns. The handler's bytes are followed from the
 * state the delivery leaves (every general register as the trace has it at the boundary,
 * the frame on the stack) up to HLT (it stops: the world traps, host_trap and monitor_trap,
 * are HLT loops and never come back) or IRET (__shim_nmi). Every data access of the
 * handler must be mapped, and its writes must land on its own data or a stack. Its IRET
 * pops EIP, CS, EFLAGS (CPL 0 to CPL 0: no SS:ESP) and reloads CS from the GDT in force as
 * the handler leaves it: the descriptor must be inside the GDT limit, readable through the
 * paging in force (and writable if its accessed bit is still clear), a present 32-bit code
 * segment of DPL 0, with the popped EIP inside its limit; and CS base + EIP must be the
 * interrupted instruction, with every general register as it was. The shim's handler must
 * also have written D_NMI_PENDING (the target world re-raises the NMI from it).
 *
 * A boundary is safe when the delivery and (for a handler that returns) the return are.
 * Boundaries run from the jump into the shim to the first instruction after the far jump.
 */
#ifndef SHIMCHECK_SIM_WINDOW_H
#define SHIMCHECK_SIM_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/image.h"
#include "trace.h"

enum wverdict { WV_SAFE = 0, WV_UNSAFE = 1, WV_INHIBITED = 2 };

/* What the handler's way back does (judged only when the delivery is safe). */
enum wreturn {
	WRN_NONE = 0,   /* nothing to judge: not delivered, or the handler stops (HLT) */
	WRN_RETURNS,    /* its IRET returns to the interrupted instruction, state intact */
	WRN_FAULTS      /* it does not: its IRET (or an access on the way) faults, it comes back
			 * with the state changed or (the shim's handler) without noting the NMI
			 * in D_NMI_PENDING, or the model cannot follow it */
};

struct wboundary {
	uint32_t insn;          /* the boundary is just before this instruction */
	int window;             /* index of the switch window */
	int dir;                /* DIR_M2H / DIR_H2M */
	enum wverdict verdict;  /* the whole: UNSAFE when the delivery or the return is */
	enum wverdict delivery; /* the delivery alone (what a #DB at the boundary shows) */
	enum wreturn ret;       /* the handler's return */
	char reason[256];
};

#define WINDOW_MAX_BOUNDARIES 2048

struct wanalysis {
	bool safe_reasons;      /* set by the caller: also describe safe boundaries (slower) */
	int n;
	struct wboundary b[WINDOW_MAX_BOUNDARIES];
	int unsafe;             /* boundaries whose verdict is WV_UNSAFE */
	int unsafe_delivery;    /* ... because the delivery faults */
	int unsafe_return;      /* ... because the delivery is safe but the return is not */
};

/* Analyse every window of t. mem must hold physical memory as it was at the end of the
 * trace (the engine's memory after the run, or the image with the trace's writes applied):
 * the analysis winds it back through the recorded writes to each boundary and leaves it as
 * it found it. */
void window_analyse(const struct trace *t, const struct image *img, unsigned vector, struct physmem *mem,
		    struct wanalysis *out);

#endif
