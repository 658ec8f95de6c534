/*
 * timeline.h: one picture of a run, for review.
 *
 * A standalone SVG, about 1600 px wide, written directly (no Graphviz). Top panel: x is the
 * instruction index; one lane per address space by CR3 (host, monitor, and transition
 * tables or anything else); the switch windows shaded; one row per kind of control event
 * (LGDT/LIDT, TSS busy bit and LTR, MOV CR3, MOV CR0/CR4, LSS, PTE writes, INVLPG, far JMP,
 * the guest running, faults, other GDT writes) with a short label per marker and the full
 * event in its tooltip; violations as red lines with their rule IDs. Bottom panel, on the
 * same x axis: for each space, the linear pages that matter (the shim page, each world's
 * code, stack, GDT, IDT and TSS, the monitor's alias pages, every page a PTE write
 * retargets) and which physical page each maps to at the start and after each PTE write.
 */
#ifndef SHIMCHECK_TOOLS_TIMELINE_H
#define SHIMCHECK_TOOLS_TIMELINE_H

#include <stdio.h>

#include "pipeline.h"

/* p must have run (pl_run). Returns 0, or -1 when out of memory or a write failed. */
int timeline_svg(FILE *out, const struct pipeline *p);

#endif
