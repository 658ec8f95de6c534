/*
 * test_tss.c: the 32-bit TSS byte image against SDM figure 7-2.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "phys.h"
#include "tss.h"

#define SEED 0x7551DEADBEEF1234ull
#define ROUNDS 10000
#define GUARD 16

#include "seeded.h"

/* Every field distinct, so a field written to a neighbour's slot is caught. */
static struct tss32 sample(void)
{
	struct tss32 t = {
		.link = 0x1111, .esp0 = 0x22222222u, .ss0 = 0x3333,
		.esp1 = 0x44444444u, .ss1 = 0x5555, .esp2 = 0x66666666u, .ss2 = 0x7777,
		.cr3 = 0x00123000u, .eip = 0xC0DE0001u, .eflags = 0x00000202u,
		.eax = 0xA0A0A0A0u, .ecx = 0xC0C0C0C0u, .edx = 0xD0D0D0D0u, .ebx = 0xB0B0B0B0u,
		.esp = 0x5B5B5B5Bu, .ebp = 0xBBBBBBBBu, .esi = 0x51515151u, .edi = 0xD1D1D1D1u,
		.es = 0x0010, .cs = 0x0008, .ss = 0x0018, .ds = 0x0020, .fs = 0x0028, .gs = 0x0030,
		.ldt = 0x0038, .trap = 0x0001, .iomap = 0x0068,
	};
	return t;
}

static void fields_sit_at_sdm_offsets(void **state)
{
	struct tss32 t = sample();
	uint8_t b[TSS32_SIZE];

	(void)state;
	tss_put(b, &t);
	assert_int_equal(get2(b + 0x00), 0x1111);
	assert_int_equal(get4(b + 0x04), 0x22222222u);
	assert_int_equal(get2(b + 0x08), 0x3333);
	assert_int_equal(get4(b + 0x0C), 0x44444444u);
	assert_int_equal(get2(b + 0x10), 0x5555);
	assert_int_equal(get4(b + 0x14), 0x66666666u);
	assert_int_equal(get2(b + 0x18), 0x7777);
	assert_int_equal(get4(b + 0x1C), 0x00123000u);
	assert_int_equal(get4(b + 0x20), 0xC0DE0001u);
	assert_int_equal(get4(b + 0x24), 0x00000202u);
	assert_int_equal(get4(b + 0x28), 0xA0A0A0A0u);
	assert_int_equal(get4(b + 0x2C), 0xC0C0C0C0u);
	assert_int_equal(get4(b + 0x30), 0xD0D0D0D0u);
	assert_int_equal(get4(b + 0x34), 0xB0B0B0B0u);
	assert_int_equal(get4(b + 0x38), 0x5B5B5B5Bu);
	assert_int_equal(get4(b + 0x3C), 0xBBBBBBBBu);
	assert_int_equal(get4(b + 0x40), 0x51515151u);
	assert_int_equal(get4(b + 0x44), 0xD1D1D1D1u);
	assert_int_equal(get2(b + 0x48), 0x0010);
	assert_int_equal(get2(b + 0x4C), 0x0008);
	assert_int_equal(get2(b + 0x50), 0x0018);
	assert_int_equal(get2(b + 0x54), 0x0020);
	assert_int_equal(get2(b + 0x58), 0x0028);
	assert_int_equal(get2(b + 0x5C), 0x0030);
	assert_int_equal(get2(b + 0x60), 0x0038);
	/* T and the I/O map base share the last dword: 0x0068 << 16 | 1. */
	assert_int_equal(get4(b + 0x64), 0x00680001u);
}

static void little_endian_bytes_of_eip(void **state)
{
	struct tss32 t = sample();
	uint8_t b[TSS32_SIZE];

	(void)state;
	tss_put(b, &t);
	assert_int_equal(b[0x20], 0x01);
	assert_int_equal(b[0x21], 0x00);
	assert_int_equal(b[0x22], 0xDE);
	assert_int_equal(b[0x23], 0xC0);
}

static void reserved_halves_are_zero_over_ff_buffer(void **state)
{
	static const unsigned rsvd[] = {
		0x02, 0x0A, 0x12, 0x1A, 0x4A, 0x4E, 0x52, 0x56, 0x5A, 0x5E, 0x62,
	};
	struct tss32 t = sample();
	uint8_t b[TSS32_SIZE];
	size_t i;

	(void)state;
	memset(b, 0xFF, sizeof(b));
	tss_put(b, &t);
	for (i = 0; i < sizeof(rsvd) / sizeof(rsvd[0]); i++)
		assert_int_equal(get2(b + rsvd[i]), 0);
}

static void put_writes_exactly_104_bytes(void **state)
{
	struct tss32 t = sample();
	uint8_t b[GUARD + TSS32_SIZE + GUARD];
	size_t i;

	(void)state;
	memset(b, 0xA5, sizeof(b));
	tss_put(b + GUARD, &t);
	for (i = 0; i < GUARD; i++) {
		assert_int_equal(b[i], 0xA5);
		assert_int_equal(b[GUARD + TSS32_SIZE + i], 0xA5);
	}
	/* The last byte is the I/O map base's high byte. */
	assert_int_equal(b[GUARD + TSS32_SIZE - 1], 0x00);
	assert_int_equal(b[GUARD + TSS32_SIZE - 2], 0x68);
}

static void get_ignores_reserved_halves(void **state)
{
	struct tss32 t = sample(), u;
	uint8_t b[TSS32_SIZE];

	(void)state;
	tss_put(b, &t);
	put2(b + 0x02, 0xFFFF);
	put2(b + 0x4E, 0xFFFF);
	put2(b + 0x62, 0xFFFF);
	u = tss_get(b);
	assert_int_equal(u.link, 0x1111);
	assert_int_equal(u.cs, 0x0008);
	assert_int_equal(u.ldt, 0x0038);
}

static struct tss32 random_tss(void)
{
	struct tss32 t;

	t.link = (uint16_t)rnd();
	t.esp0 = (uint32_t)rnd();
	t.ss0 = (uint16_t)rnd();
	t.esp1 = (uint32_t)rnd();
	t.ss1 = (uint16_t)rnd();
	t.esp2 = (uint32_t)rnd();
	t.ss2 = (uint16_t)rnd();
	t.cr3 = (uint32_t)rnd();
	t.eip = (uint32_t)rnd();
	t.eflags = (uint32_t)rnd();
	t.eax = (uint32_t)rnd();
	t.ecx = (uint32_t)rnd();
	t.edx = (uint32_t)rnd();
	t.ebx = (uint32_t)rnd();
	t.esp = (uint32_t)rnd();
	t.ebp = (uint32_t)rnd();
	t.esi = (uint32_t)rnd();
	t.edi = (uint32_t)rnd();
	t.es = (uint16_t)rnd();
	t.cs = (uint16_t)rnd();
	t.ss = (uint16_t)rnd();
	t.ds = (uint16_t)rnd();
	t.fs = (uint16_t)rnd();
	t.gs = (uint16_t)rnd();
	t.ldt = (uint16_t)rnd();
	t.trap = (uint16_t)rnd();
	t.iomap = (uint16_t)rnd();
	return t;
}

static void assert_tss_equal(const struct tss32 *a, const struct tss32 *b)
{
	assert_int_equal(a->link, b->link);
	assert_int_equal(a->esp0, b->esp0);
	assert_int_equal(a->ss0, b->ss0);
	assert_int_equal(a->esp1, b->esp1);
	assert_int_equal(a->ss1, b->ss1);
	assert_int_equal(a->esp2, b->esp2);
	assert_int_equal(a->ss2, b->ss2);
	assert_int_equal(a->cr3, b->cr3);
	assert_int_equal(a->eip, b->eip);
	assert_int_equal(a->eflags, b->eflags);
	assert_int_equal(a->eax, b->eax);
	assert_int_equal(a->ecx, b->ecx);
	assert_int_equal(a->edx, b->edx);
	assert_int_equal(a->ebx, b->ebx);
	assert_int_equal(a->esp, b->esp);
	assert_int_equal(a->ebp, b->ebp);
	assert_int_equal(a->esi, b->esi);
	assert_int_equal(a->edi, b->edi);
	assert_int_equal(a->es, b->es);
	assert_int_equal(a->cs, b->cs);
	assert_int_equal(a->ss, b->ss);
	assert_int_equal(a->ds, b->ds);
	assert_int_equal(a->fs, b->fs);
	assert_int_equal(a->gs, b->gs);
	assert_int_equal(a->ldt, b->ldt);
	assert_int_equal(a->trap, b->trap);
	assert_int_equal(a->iomap, b->iomap);
}

static void random_tss_round_trip_and_reserved_zero(void **state)
{
	uint8_t b[TSS32_SIZE];
	int i;

	(void)state;
	for (i = 0; i < ROUNDS; i++) {
		struct tss32 t = random_tss(), u;

		memset(b, (int)(rnd() & 0xFF), sizeof(b));
		tss_put(b, &t);
		u = tss_get(b);
		assert_tss_equal(&t, &u);
		assert_int_equal(get2(b + TSS_SS0 + 2), 0);
		assert_int_equal(get2(b + TSS_GS + 2), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fields_sit_at_sdm_offsets),
		cmocka_unit_test(little_endian_bytes_of_eip),
		cmocka_unit_test(reserved_halves_are_zero_over_ff_buffer),
		cmocka_unit_test(put_writes_exactly_104_bytes),
		cmocka_unit_test(get_ignores_reserved_halves),
		cmocka_unit_test(random_tss_round_trip_and_reserved_zero),
	};

	return cmocka_run_group_tests(tests, seed_rng, NULL);
}
