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
 * A boundary is safe when all of them hold. Boundaries run from the jump into the shim to
 * the first instruction after the far jump.
 */
#ifndef SHIMCHECK_SIM_WINDOW_H
#define SHIMCHECK_SIM_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/image.h"
#include "trace.h"

enum wverdict { WV_SAFE = 0, WV_UNSAFE = 1, WV_INHIBITED = 2 };

struct wboundary {
	uint32_t insn;          /* the boundary is just before this instruction */
	int window;             /* index of the switch window */
	int dir;                /* DIR_M2H / DIR_H2M */
	enum wverdict verdict;
	char reason[200];
};

#define WINDOW_MAX_BOUNDARIES 2048

struct wanalysis {
	bool safe_reasons;      /* set by the caller: also describe safe boundaries (slower) */
	int n;
	struct wboundary b[WINDOW_MAX_BOUNDARIES];
	int unsafe;
};

/* Analyse every window of t. mem must hold physical memory as it was at the end of the
 * trace (the engine's memory after the run, or the image with the trace's writes applied):
 * the analysis winds it back through the recorded writes to each boundary and leaves it as
 * it found it. */
void window_analyse(const struct trace *t, const struct image *img, unsigned vector, struct physmem *mem,
		    struct wanalysis *out);

#endif
