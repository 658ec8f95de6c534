/*
 * desc.h: segment, system and gate descriptors, encoded and decoded with explicit shifts.
 *
 * Layout (SDM vol. 3, figure 3-8), as two little-endian dwords lo/hi:
 *   lo = base[15:0] << 16 | limit[15:0]
 *   hi = base[31:24] << 24 | G << 23 | D/B << 22 | L << 21 | AVL << 20 | limit[19:16] << 16
 *        | P << 15 | DPL << 13 | S << 12 | type << 8 | base[23:16]
 * Gates (figure 6-2): lo = selector << 16 | offset[15:0];
 *                     hi = offset[31:16] << 16 | P << 15 | DPL << 13 | type << 8.
 */
#ifndef SHIMCHECK_MODEL_DESC_H
#define SHIMCHECK_MODEL_DESC_H

#include <stdbool.h>
#include <stdint.h>

struct seg_desc {
	uint32_t base;
	uint32_t limit;  /* the raw 20-bit field */
	uint8_t type;    /* 4 bits */
	bool s;          /* 1 = code/data, 0 = system */
	uint8_t dpl;     /* 2 bits */
	bool p;
	bool avl;
	bool l;
	bool db;
	bool g;
};

struct gate_desc {
	uint16_t sel;
	uint32_t offset;
	uint8_t type; /* STS_IG32, STS_TG32, STS_TG */
	uint8_t dpl;
	bool p;
};

uint64_t desc_encode(const struct seg_desc *d);
struct seg_desc desc_decode(uint64_t raw);
/* The limit in bytes as the CPU applies it (G scales by 4 KiB and fills the low 12 bits). */
uint32_t desc_byte_limit(const struct seg_desc *d);
/* Hidden-part attribute word: hi & 0x00F0FF00 (type, S, DPL, P at 8..15; AVL, L, D/B, G at
 * 20..23), i.e. bits 8..23 minus limit[19:16]. Compare QEMU's flags under the same mask. */
uint32_t desc_attr_flags(uint64_t raw);

uint64_t gate_encode(const struct gate_desc *g);
struct gate_desc gate_decode(uint64_t raw);

/* Convenience constructors for flat 4 GiB ring-0 segments and a 32-bit TSS. */
struct seg_desc desc_flat_code(void);
struct seg_desc desc_flat_data(void);
struct seg_desc desc_tss32(uint32_t base, uint32_t limit, bool busy);

/* Predicates on a raw descriptor. */
static inline uint8_t desc_raw_type(uint64_t raw) { return (uint8_t)((raw >> 40) & 0xFu); }
static inline bool desc_raw_present(uint64_t raw) { return (raw >> 47) & 1u; }
static inline bool desc_raw_s(uint64_t raw) { return (raw >> 44) & 1u; }
static inline uint32_t desc_raw_base(uint64_t raw)
{
	return (uint32_t)(((raw >> 16) & 0xFFFFFFu) | ((raw >> 32) & 0xFF000000u));
}

#endif
