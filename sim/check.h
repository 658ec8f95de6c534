/*
 * check.h: the rules, and the checkers that apply them to a trace.
 *
 * One table (RULES) drives `shimcheck rules`, docs/rules.md and every report. Checkers are
 * pure functions of (trace, image, code): unit tests feed them synthetic traces, the CLI
 * feeds them Unicorn's, the boot comparison feeds them other engines' observations.
 */
#ifndef SHIMCHECK_SIM_CHECK_H
#define SHIMCHECK_SIM_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/code.h"
#include "../model/image.h"
#include "trace.h"

/* X(id, "ID", "why the rule exists") */
#define RULES(X)                                                                                     \
	X(R_ORDER, "ORDER", "each shim half runs the switch events in the order its variant declares, each exactly once") \
	X(R_INVLPG, "INVLPG", "a page whose PTE changed is used only after INVLPG of it or a CR3 reload")           \
	X(R_STALE, "STALE-TLB", "when the guest gets control, no changed translation is left uninvalidated")        \
	X(R_GLOBAL, "TLB-GLOBAL", "no access can hit a global translation of the other space that survived MOV CR3 (CR4.PGE)") \
	X(R_TSS_BUSY, "TSS-BUSY", "LTR finds its TSS descriptor available (busy bit cleared), else #GP")           \
	X(R_SHIM_FETCH, "SHIM-FETCH", "from the jump into the shim to the far jump, every instruction comes from the shim page") \
	X(R_IF, "IF-WINDOW", "interrupts stay disabled (IF=0) throughout the switch window")                      \
	X(R_ARRIVAL, "ARRIVAL", "after the far jump, GDTR, IDTR, TR, CR3, CS:EIP and SS:ESP are the target world's") \
	X(R_REGS, "RESTORE-REGS", "host2monitor returns with every host register, segment and table unchanged")   \
	X(R_PTE, "RESTORE-PTE", "the guest finds its PTE at the shim address bit-exact whenever it runs")        \
	X(R_FAULT, "FAULT", "no exception is raised anywhere in a round trip")                                    \
	X(R_WALK, "WALK", "the model's page walk and the engine's agree on every access")                         \
	X(R_REACH, "REACH", "in a switch window, every access to a world's GDT, IDT, TSS or the shim page reaches that very page") \
	X(R_BOUND, "BOUND", "a round trip ends within its instruction bound (no loop)")                           \
	X(R_RETURN, "NO-RETURN", "the run comes back to host_done, the only way a run may end")                  \
	X(R_ROUNDS, "ROUNDS", "exactly the scenario's number of round trips happen, in both directions") \
	X(R_NMI, "NMI-WINDOW", "an NMI at any boundary of a switch window is delivered and returned from safely (variants that claim it; shimcheck window)")

#define RULE_X_ENUM(id, name, why) id,
enum rule { RULES(RULE_X_ENUM) R_N };
const char *rule_id(enum rule r);
const char *rule_why(enum rule r);

struct violation {
	enum rule rule;
	uint32_t insn;      /* index into the trace; UINT32_MAX: not tied to one instruction */
	char msg[320];
};

#define MAX_VIOLATIONS 256

struct verdict {
	int n;               /* violations found (may exceed MAX_VIOLATIONS; the rest are counted only) */
	struct violation v[MAX_VIOLATIONS];
	int windows[2];      /* switch windows seen per direction (DIR_M2H, DIR_H2M) */
	uint32_t counts[R_N];
};

/* A switch window: from the first instruction in the shim page to the far jump out of it. */
struct window {
	enum dir dir;
	uint32_t first, last;   /* instruction indices, inclusive */
	bool has_jmp;           /* last is the far jump */
};

/* Find the windows of a trace (at most max). */
int find_windows(const struct trace *t, const struct image *img, struct window *w, int max);

/* Add a violation (the checkers' own reporting, for analyses that live elsewhere). */
void verdict_add(struct verdict *v, enum rule r, uint32_t insn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Run every checker. */
void check_all(const struct trace *t, const struct image *img, const struct shim_code *code, struct verdict *v);

/* Individual checkers (each appends to v). */
void check_order(const struct trace *t, const struct image *img, const struct shim_code *code, struct verdict *v);
void check_tlb(const struct trace *t, const struct image *img, struct verdict *v);
void check_tss_busy(const struct trace *t, const struct image *img, struct verdict *v);
void check_window(const struct trace *t, const struct image *img, struct verdict *v);
void check_arrival(const struct trace *t, const struct image *img, struct verdict *v);
void check_restore(const struct trace *t, const struct image *img, struct verdict *v);
void check_faults(const struct trace *t, const struct image *img, struct verdict *v);
void check_end(const struct trace *t, const struct image *img, struct verdict *v);
void check_reach(const struct trace *t, const struct image *img, struct verdict *v);

#endif
