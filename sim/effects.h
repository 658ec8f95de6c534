/*
 * effects.h: which general registers and EFLAGS an instruction can change.
 *
 * Unicorn has no hook after an instruction, so the engine reads the CPU back before the
 * next one. Reading all of EAX..EDI, EIP and EFLAGS every time is most of the recording's
 * cost; for the instructions whose effect on them is simple and well known (SDM vol. 2),
 * the read-back is limited to what they can write. Any instruction not listed here, and
 * any instruction that can change more than GPRs and EFLAGS, gets EFF_ALL: read everything.
 * The engine can check the claim at run time (SHIMCHECK_CHECK_READS=1, docs/engine.md).
 */
#ifndef SHIMCHECK_SIM_EFFECTS_H
#define SHIMCHECK_SIM_EFFECTS_H

#include <stdint.h>

#include <capstone/capstone.h>

#define EFF_GPR(i) (1u << (i)) /* i: R_EAX .. R_EDI (trace.h order) */
#define EFF_GPRS 0xFFu
#define EFF_FLAGS 0x100u       /* EFLAGS */
#define EFF_ALL 0x1FFu         /* every GPR and EFLAGS: the safe answer */

/* insn must carry Capstone's detail (CS_OPT_DETAIL on). */
unsigned effects_writes(const cs_insn *insn);

/* R_EAX .. R_EDI for a general register of any width (al, ax, eax: R_EAX), else -1. */
int effects_gpr_index(unsigned x86_reg);

#endif
