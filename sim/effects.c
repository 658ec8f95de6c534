/*
 * effects.c: the GPR/EFLAGS write set of the instructions a switch shim is made of.
 *
 * Explicit destinations come from Capstone's operands (Intel order: operand 0 is the
 * destination); implicit ones (ESP for the stack, EDX:EAX for CDQ) from the SDM. The list
 * is short on purpose: an instruction missing here costs a full read, a wrong entry would
 * leave a stale register in the trace.
 */
#include "effects.h"

#include "trace.h"

int effects_gpr_index(unsigned r)
{
	switch (r) {
	case X86_REG_AL: case X86_REG_AH: case X86_REG_AX: case X86_REG_EAX: return R_EAX;
	case X86_REG_CL: case X86_REG_CH: case X86_REG_CX: case X86_REG_ECX: return R_ECX;
	case X86_REG_DL: case X86_REG_DH: case X86_REG_DX: case X86_REG_EDX: return R_EDX;
	case X86_REG_BL: case X86_REG_BH: case X86_REG_BX: case X86_REG_EBX: return R_EBX;
	case X86_REG_SP: case X86_REG_ESP: return R_ESP;
	case X86_REG_BP: case X86_REG_EBP: return R_EBP;
	case X86_REG_SI: case X86_REG_ESI: return R_ESI;
	case X86_REG_DI: case X86_REG_EDI: return R_EDI;
	default: return -1;
	}
}

/* The register operand i, if it is a general register. */
static unsigned reg_operand(const cs_x86 *x, int i)
{
	if (i >= x->op_count || x->operands[i].type != X86_OP_REG)
		return 0;
	int g = effects_gpr_index(x->operands[i].reg);
	return g < 0 ? 0 : EFF_GPR(g);
}

unsigned effects_writes(const cs_insn *insn)
{
	if (!insn->detail)
		return EFF_ALL;
	const cs_x86 *x = &insn->detail->x86;
	/* REP/REPNE string forms change ECX, ESI, EDI in ways not worth listing. */
	for (int i = 0; i < 4; i++)
		if (x->prefix[i] == X86_PREFIX_REP || x->prefix[i] == X86_PREFIX_REPNE)
			return EFF_ALL;
	const unsigned sp = EFF_GPR(R_ESP);
	switch (insn->id) {
	/* destination and flags */
	case X86_INS_ADD: case X86_INS_ADC: case X86_INS_SUB: case X86_INS_SBB:
	case X86_INS_AND: case X86_INS_OR: case X86_INS_XOR:
	case X86_INS_INC: case X86_INS_DEC: case X86_INS_NEG:
	case X86_INS_SHL: case X86_INS_SHR: case X86_INS_SAR:
	case X86_INS_ROL: case X86_INS_ROR: case X86_INS_RCL: case X86_INS_RCR:
		return EFF_FLAGS | reg_operand(x, 0);
	/* flags only */
	case X86_INS_CMP: case X86_INS_TEST: case X86_INS_BT:
	case X86_INS_CLC: case X86_INS_STC: case X86_INS_CMC: case X86_INS_CLD: case X86_INS_STD:
	case X86_INS_CLI: case X86_INS_STI:
		return EFF_FLAGS;
	/* destination only */
	case X86_INS_MOV: case X86_INS_MOVZX: case X86_INS_MOVSX: case X86_INS_LEA:
	case X86_INS_NOT: case X86_INS_BSWAP:
		return reg_operand(x, 0);
	case X86_INS_STR: /* to a register or memory */
		return reg_operand(x, 0);
	/* a register and a segment register (which the engine reads as a control group) */
	case X86_INS_LSS: case X86_INS_LDS: case X86_INS_LES: case X86_INS_LFS: case X86_INS_LGS:
		return reg_operand(x, 0);
	case X86_INS_XCHG:
		return reg_operand(x, 0) | reg_operand(x, 1);
	/* the stack */
	case X86_INS_PUSH: case X86_INS_PUSHFD: case X86_INS_PUSHAL:
	case X86_INS_CALL: case X86_INS_RET:
		return sp;
	case X86_INS_POP:
		return sp | reg_operand(x, 0);
	case X86_INS_POPAL:
		return EFF_GPRS;
	case X86_INS_POPFD:
		return sp | EFF_FLAGS;
	case X86_INS_LEAVE:
		return sp | EFF_GPR(R_EBP);
	/* implicit registers */
	case X86_INS_CDQ:
		return EFF_GPR(R_EDX);
	case X86_INS_CWDE:
		return EFF_GPR(R_EAX);
	case X86_INS_RDMSR:
		return EFF_GPR(R_EAX) | EFF_GPR(R_EDX);
	case X86_INS_CPUID:
		return EFF_GPR(R_EAX) | EFF_GPR(R_EBX) | EFF_GPR(R_ECX) | EFF_GPR(R_EDX);
	/* nothing but EIP */
	case X86_INS_JMP: case X86_INS_NOP: case X86_INS_HLT: case X86_INS_PAUSE:
	case X86_INS_JAE: case X86_INS_JA: case X86_INS_JBE: case X86_INS_JB: case X86_INS_JE:
	case X86_INS_JGE: case X86_INS_JG: case X86_INS_JLE: case X86_INS_JL: case X86_INS_JNE:
	case X86_INS_JNO: case X86_INS_JNP: case X86_INS_JNS: case X86_INS_JO: case X86_INS_JP:
	case X86_INS_JS: case X86_INS_JECXZ: case X86_INS_JCXZ:
	case X86_INS_LGDT: case X86_INS_LIDT: case X86_INS_LTR: case X86_INS_INVLPG: case X86_INS_WRMSR:
	case X86_INS_SGDT: case X86_INS_SIDT: case X86_INS_LJMP:
		return 0;
	case X86_INS_LOOP:
		return EFF_GPR(R_ECX);
	default:
		return EFF_ALL;
	}
}
