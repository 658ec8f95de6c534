/*
 * evidence.h: the page walk behind an address, as a reviewer reads it next to a violation.
 *
 * A rule like FAULT or REACH says *that* an access went wrong; the walk says *why*: which
 * entries the CPU read under the CR3 in force, their values and flags, and where the walk
 * stopped ("not present", "read-only with CR0.WP=1", ...) or which physical page it reached.
 * violation_evidence() rebuilds memory as it was when the instruction ran (the trace records
 * every write with its old value), so the entries shown are the ones the CPU saw, not what a
 * later instruction of the round trip wrote over them.
 */
#ifndef SHIMCHECK_SIM_EVIDENCE_H
#define SHIMCHECK_SIM_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../model/paging.h"
#include "pipeline.h"

/* One line: "CR3 0x... -> PDE[i] @0x<pa> = 0x<value> (P W U A) -> PTE[j] @0x<pa> = 0x<value>
 * (P W A D) -> 0x<pa>", or where the walk stops and why. For PAE the PDPTE register value
 * used comes after CR3. Supervisor access (CPL 0), as every access of a round trip is.
 * Returns the walk's status (WALK_OK, WALK_FAULT, WALK_BADPHYS, WALK_BADPDPTE). */
int walk_evidence(const struct physmem *mem, const struct paging_regs *r, uint32_t lin, enum access acc, char *out,
		  size_t n);

/* For a violation that concerns a linear address (FAULT with #PF, REACH, INVLPG, TLB-GLOBAL,
 * WALK, SHIM-FETCH, STALE-TLB): which address and access (the #PF's CR2, the access named
 * by the message in the instruction's recorded memory accesses, or the fetch), then the
 * walk under the CR3 in force at that instruction with memory as it was then. For REACH
 * and TLB-GLOBAL a second line gives the walk under the other world's CR3 (where the page
 * was meant to be, or where the surviving global entry came from). Lines are separated by
 * '\n' (no final newline). out is "" when there is no address to explain, or the pipeline's
 * engine memory is not available. The engine's memory is not changed (a copy is wound back). */
void violation_evidence(const struct pipeline *p, const struct violation *v, char *out, size_t n);

/* Print text (as violation_evidence writes it) one line at a time, each after prefix. */
void evidence_fprint(FILE *f, const char *prefix, const char *text);

#endif
