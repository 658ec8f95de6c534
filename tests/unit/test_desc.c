/*
 * test_desc.c: descriptor encodings against values worked out by hand from SDM figure 3-8.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "desc.h"
#include "mmu.h"

#define SEED 0x5EED0D35C0FFEEull
#define ROUNDS 10000

#include "seeded.h"

static void assert_desc_equal(const struct seg_desc *a, const struct seg_desc *b)
{
	assert_int_equal(a->base, b->base);
	assert_int_equal(a->limit, b->limit);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->s, b->s);
	assert_int_equal(a->dpl, b->dpl);
	assert_int_equal(a->p, b->p);
	assert_int_equal(a->avl, b->avl);
	assert_int_equal(a->l, b->l);
	assert_int_equal(a->db, b->db);
	assert_int_equal(a->g, b->g);
}

static void flat_code_is_00CF9B000000FFFF(void **state)
{
	struct seg_desc d = desc_flat_code();

	(void)state;
	assert_int_equal(desc_encode(&d), 0x00CF9B000000FFFFull);
	assert_int_equal(desc_byte_limit(&d), 0xFFFFFFFFu);
}

static void flat_data_is_00CF93000000FFFF(void **state)
{
	struct seg_desc d = desc_flat_data();

	(void)state;
	assert_int_equal(desc_encode(&d), 0x00CF93000000FFFFull);
}

/* lo = 0x5678 << 16 | 0x0067; hi = 0x12 << 24 | P(0x8000) | 9 << 8 | 0x34. */
static void tss_base_12345678_limit_67_available_is_1200893456780067(void **state)
{
	struct seg_desc d = desc_tss32(0x12345678u, 0x67, false);
	uint64_t raw = desc_encode(&d);

	(void)state;
	assert_int_equal(raw, 0x1200893456780067ull);
	assert_int_equal(desc_raw_type(raw), STS_T32A);
	assert_true(desc_raw_present(raw));
	assert_false(desc_raw_s(raw));
	assert_int_equal(desc_raw_base(raw), 0x12345678u);
	assert_int_equal(desc_byte_limit(&d), 0x67u);
}

static void tss_busy_flips_type_9_to_B_and_nothing_else(void **state)
{
	struct seg_desc avail = desc_tss32(0x12345678u, 0x67, false);
	struct seg_desc busy = desc_tss32(0x12345678u, 0x67, true);
	uint64_t a = desc_encode(&avail), b = desc_encode(&busy);

	(void)state;
	assert_int_equal(b, 0x12008B3456780067ull);
	assert_int_equal(a ^ b, (uint64_t)STS_BUSY << 40);
	assert_int_equal(desc_raw_type(b), STS_T32B);
}

static void decode_splits_base_and_limit_fields(void **state)
{
	/* base 0xAB_CD_EF01 spread over bits 16..39 and 56..63; limit 0x5_4321; hi nibble
	 * pattern: G=1 D/B=0 L=1 AVL=0; P=1 DPL=2 S=1 type=0xA. */
	uint64_t raw = 0xABA5DACDEF014321ull;
	struct seg_desc d = desc_decode(raw);

	(void)state;
	assert_int_equal(d.base, 0xABCDEF01u);
	assert_int_equal(d.limit, 0x54321u);
	assert_int_equal(d.type, 0xA);
	assert_true(d.s);
	assert_int_equal(d.dpl, 2);
	assert_true(d.p);
	assert_false(d.avl);
	assert_true(d.l);
	assert_false(d.db);
	assert_true(d.g);
	assert_int_equal(desc_byte_limit(&d), 0x54321FFFu);
}

static void byte_limit_without_g_is_raw_limit(void **state)
{
	struct seg_desc d = { .limit = 0xFFFFF, .g = false };

	(void)state;
	assert_int_equal(desc_byte_limit(&d), 0xFFFFFu);
	d.g = true;
	d.limit = 0;
	assert_int_equal(desc_byte_limit(&d), 0xFFFu);
}

static void attr_flags_keep_bits_8_to_23_minus_limit_nibble(void **state)
{
	(void)state;
	assert_int_equal(desc_attr_flags(0x00CF9B000000FFFFull), 0x00C09B00u);
	assert_int_equal(desc_attr_flags(0x1200893456780067ull), 0x00008900u);
	/* Every base and limit bit set, no attribute bit: nothing survives. */
	assert_int_equal(desc_attr_flags(0xFF0F00FFFFFFFFFFull), 0);
	assert_int_equal(desc_attr_flags(~0ull), 0x00F0FF00u);
}

/* lo = 0x0008 << 16 | 0x5678; hi = 0x1234 << 16 | P | DPL 3 << 13 | 0xE << 8. */
static void interrupt_gate_sel_08_offset_12345678_dpl3_is_1234EE0000085678(void **state)
{
	struct gate_desc g = {
		.sel = 0x08, .offset = 0x12345678u, .type = STS_IG32, .dpl = 3, .p = true,
	};
	uint64_t raw = gate_encode(&g);
	struct gate_desc back = gate_decode(raw);

	(void)state;
	assert_int_equal(raw, 0x1234EE0000085678ull);
	assert_int_equal(back.sel, 0x08);
	assert_int_equal(back.offset, 0x12345678u);
	assert_int_equal(back.type, STS_IG32);
	assert_int_equal(back.dpl, 3);
	assert_true(back.p);
}

static void task_gate_keeps_selector_and_type_5(void **state)
{
	struct gate_desc g = { .sel = 0x28, .offset = 0, .type = STS_TG, .dpl = 0, .p = true };

	(void)state;
	assert_int_equal(gate_encode(&g), 0x0000850000280000ull);
}

static void random_gates_round_trip(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < ROUNDS; i++) {
		uint64_t x = rnd();
		struct gate_desc g = {
			.sel = (uint16_t)x,
			.offset = (uint32_t)(x >> 16),
			.type = (uint8_t)(x >> 48 & 0xF),
			.dpl = (uint8_t)(x >> 52 & 0x3),
			.p = (x >> 54) & 1,
		};
		struct gate_desc b = gate_decode(gate_encode(&g));

		assert_int_equal(b.sel, g.sel);
		assert_int_equal(b.offset, g.offset);
		assert_int_equal(b.type, g.type);
		assert_int_equal(b.dpl, g.dpl);
		assert_int_equal(b.p, g.p);
	}
}

static struct seg_desc random_desc(void)
{
	uint64_t x = rnd(), y = rnd();
	struct seg_desc d = {
		.base = (uint32_t)x,
		.limit = (uint32_t)(x >> 32) & 0xFFFFF,
		.type = (uint8_t)(x >> 52 & 0xF),
		.dpl = (uint8_t)(x >> 56 & 0x3),
		.s = y & 1,
		.p = y >> 1 & 1,
		.avl = y >> 2 & 1,
		.l = y >> 3 & 1,
		.db = y >> 4 & 1,
		.g = y >> 5 & 1,
	};
	return d;
}

static void random_descs_decode_of_encode_is_identity(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < ROUNDS; i++) {
		struct seg_desc d = random_desc();
		struct seg_desc b = desc_decode(desc_encode(&d));

		assert_desc_equal(&d, &b);
	}
}

static void random_raw_encode_of_decode_is_identity(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < ROUNDS; i++) {
		uint64_t raw = rnd();
		struct seg_desc d = desc_decode(raw);

		assert_int_equal(desc_encode(&d), raw);
		assert_int_equal(desc_raw_base(raw), d.base);
		assert_int_equal(desc_raw_type(raw), d.type);
		assert_int_equal(desc_raw_present(raw), d.p);
		assert_int_equal(desc_raw_s(raw), d.s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(flat_code_is_00CF9B000000FFFF),
		cmocka_unit_test(flat_data_is_00CF93000000FFFF),
		cmocka_unit_test(tss_base_12345678_limit_67_available_is_1200893456780067),
		cmocka_unit_test(tss_busy_flips_type_9_to_B_and_nothing_else),
		cmocka_unit_test(decode_splits_base_and_limit_fields),
		cmocka_unit_test(byte_limit_without_g_is_raw_limit),
		cmocka_unit_test(attr_flags_keep_bits_8_to_23_minus_limit_nibble),
		cmocka_unit_test(interrupt_gate_sel_08_offset_12345678_dpl3_is_1234EE0000085678),
		cmocka_unit_test(task_gate_keeps_selector_and_type_5),
		cmocka_unit_test(random_gates_round_trip),
		cmocka_unit_test(random_descs_decode_of_encode_is_identity),
		cmocka_unit_test(random_raw_encode_of_decode_is_identity),
	};

	return cmocka_run_group_tests(tests, seed_rng, NULL);
}
