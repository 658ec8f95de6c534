/*
 * tss.h: the 104-byte 32-bit TSS (SDM vol. 3, figure 7-2), serialized field by field.
 */
#ifndef SHIMCHECK_MODEL_TSS_H
#define SHIMCHECK_MODEL_TSS_H

#include <stdint.h>

#define TSS32_SIZE 104u

/* Byte offsets inside the TSS. */
#define TSS_LINK 0x00
#define TSS_ESP0 0x04
#define TSS_SS0 0x08
#define TSS_ESP1 0x0C
#define TSS_SS1 0x10
#define TSS_ESP2 0x14
#define TSS_SS2 0x18
#define TSS_CR3 0x1C
#define TSS_EIP 0x20
#define TSS_EFLAGS 0x24
#define TSS_EAX 0x28
#define TSS_ECX 0x2C
#define TSS_EDX 0x30
#define TSS_EBX 0x34
#define TSS_ESP 0x38
#define TSS_EBP 0x3C
#define TSS_ESI 0x40
#define TSS_EDI 0x44
#define TSS_ES 0x48
#define TSS_CS 0x4C
#define TSS_SS 0x50
#define TSS_DS 0x54
#define TSS_FS 0x58
#define TSS_GS 0x5C
#define TSS_LDT 0x60
#define TSS_T 0x64     /* bit 0: debug trap */
#define TSS_IOMAP 0x66 /* I/O map base */

struct tss32 {
	uint16_t link;
	uint32_t esp0;
	uint16_t ss0;
	uint32_t esp1;
	uint16_t ss1;
	uint32_t esp2;
	uint16_t ss2;
	uint32_t cr3, eip, eflags;
	uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
	uint16_t es, cs, ss, ds, fs, gs, ldt;
	uint16_t trap; /* bit 0 = T */
	uint16_t iomap;
};

/* Write exactly TSS32_SIZE bytes at p; reserved halves are written as zero. */
void tss_put(uint8_t *p, const struct tss32 *t);
/* Read TSS32_SIZE bytes at p (reserved halves ignored). */
struct tss32 tss_get(const uint8_t *p);

#endif
