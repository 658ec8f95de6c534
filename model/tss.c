/*
 * tss.c: the 32-bit TSS as bytes (SDM vol. 3, figure 7-2).
 *
 * Serialized one field at a time so that struct tss32's host layout (padding, alignment)
 * never leaks into guest memory.
 */
#include "phys.h"
#include "tss.h"

/* The I/O map base is the last field; a hole or overlap in the offsets would show here. */
_Static_assert(TSS_IOMAP + 2 == TSS32_SIZE, "TSS_IOMAP must be the last 16-bit field");
_Static_assert(TSS32_SIZE == 104, "a 32-bit TSS is 104 bytes");
_Static_assert(TSS_T + 2 == TSS_IOMAP, "T and the I/O map base share the last dword");
_Static_assert(TSS_LDT + 4 == TSS_T, "LDT selector slot is a full dword");

/*
 * Selector-sized fields occupy the low half of a dword slot whose high half is reserved;
 * writing zeros there keeps images byte-identical whatever the buffer held before.
 */
static void put_sel(uint8_t *p, unsigned off, uint16_t v)
{
	put2(p + off, v);
	put2(p + off + 2, 0);
}

void tss_put(uint8_t *p, const struct tss32 *t)
{
	put_sel(p, TSS_LINK, t->link);
	put4(p + TSS_ESP0, t->esp0);
	put_sel(p, TSS_SS0, t->ss0);
	put4(p + TSS_ESP1, t->esp1);
	put_sel(p, TSS_SS1, t->ss1);
	put4(p + TSS_ESP2, t->esp2);
	put_sel(p, TSS_SS2, t->ss2);
	put4(p + TSS_CR3, t->cr3);
	put4(p + TSS_EIP, t->eip);
	put4(p + TSS_EFLAGS, t->eflags);
	put4(p + TSS_EAX, t->eax);
	put4(p + TSS_ECX, t->ecx);
	put4(p + TSS_EDX, t->edx);
	put4(p + TSS_EBX, t->ebx);
	put4(p + TSS_ESP, t->esp);
	put4(p + TSS_EBP, t->ebp);
	put4(p + TSS_ESI, t->esi);
	put4(p + TSS_EDI, t->edi);
	put_sel(p, TSS_ES, t->es);
	put_sel(p, TSS_CS, t->cs);
	put_sel(p, TSS_SS, t->ss);
	put_sel(p, TSS_DS, t->ds);
	put_sel(p, TSS_FS, t->fs);
	put_sel(p, TSS_GS, t->gs);
	put_sel(p, TSS_LDT, t->ldt);
	/* T's word has no reserved partner: the I/O map base fills the other half. */
	put2(p + TSS_T, t->trap);
	put2(p + TSS_IOMAP, t->iomap);
}

struct tss32 tss_get(const uint8_t *p)
{
	struct tss32 t = {
		.link = get2(p + TSS_LINK),
		.esp0 = get4(p + TSS_ESP0),
		.ss0 = get2(p + TSS_SS0),
		.esp1 = get4(p + TSS_ESP1),
		.ss1 = get2(p + TSS_SS1),
		.esp2 = get4(p + TSS_ESP2),
		.ss2 = get2(p + TSS_SS2),
		.cr3 = get4(p + TSS_CR3),
		.eip = get4(p + TSS_EIP),
		.eflags = get4(p + TSS_EFLAGS),
		.eax = get4(p + TSS_EAX),
		.ecx = get4(p + TSS_ECX),
		.edx = get4(p + TSS_EDX),
		.ebx = get4(p + TSS_EBX),
		.esp = get4(p + TSS_ESP),
		.ebp = get4(p + TSS_EBP),
		.esi = get4(p + TSS_ESI),
		.edi = get4(p + TSS_EDI),
		.es = get2(p + TSS_ES),
		.cs = get2(p + TSS_CS),
		.ss = get2(p + TSS_SS),
		.ds = get2(p + TSS_DS),
		.fs = get2(p + TSS_FS),
		.gs = get2(p + TSS_GS),
		.ldt = get2(p + TSS_LDT),
		.trap = get2(p + TSS_T),
		.iomap = get2(p + TSS_IOMAP),
	};
	return t;
}
