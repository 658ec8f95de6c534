/*
 * desc.c: segment and gate descriptors (SDM vol. 3, 3.4.5 and 6.11), field by field.
 *
 * Everything is done on the 64-bit value as two dwords lo/hi so that the code reads like
 * the figures in the SDM; the caller moves the value to and from guest memory with put8/get8.
 */
#include "desc.h"
#include "mmu.h"

/* Single-bit attribute positions inside the high dword. */
#define DESC_HI_AVL (1u << 20)
#define DESC_HI_L (1u << 21)
#define DESC_HI_DB (1u << 22)
#define DESC_HI_G (1u << 23)
#define DESC_HI_P (1u << 15)
#define DESC_HI_S (1u << 12)

static uint64_t join(uint32_t lo, uint32_t hi)
{
	return (uint64_t)hi << 32 | lo;
}

static uint32_t flag(bool b, uint32_t bit)
{
	return b ? bit : 0;
}

uint64_t desc_encode(const struct seg_desc *d)
{
	uint32_t limit = d->limit & 0xFFFFFu;
	uint32_t lo, hi;

	lo = (d->base & 0xFFFFu) << 16 | (limit & 0xFFFFu);
	hi = (d->base & 0xFF000000u) | (d->base >> 16 & 0xFFu) | (limit & 0xF0000u)
	     | (uint32_t)(d->type & 0xFu) << 8 | (uint32_t)(d->dpl & 0x3u) << 13
	     | flag(d->s, DESC_HI_S) | flag(d->p, DESC_HI_P) | flag(d->avl, DESC_HI_AVL)
	     | flag(d->l, DESC_HI_L) | flag(d->db, DESC_HI_DB) | flag(d->g, DESC_HI_G);
	return join(lo, hi);
}

struct seg_desc desc_decode(uint64_t raw)
{
	uint32_t lo = (uint32_t)raw, hi = (uint32_t)(raw >> 32);
	struct seg_desc d;

	d.base = lo >> 16 | (hi & 0xFFu) << 16 | (hi & 0xFF000000u);
	d.limit = (lo & 0xFFFFu) | (hi & 0xF0000u);
	d.type = (uint8_t)(hi >> 8 & 0xFu);
	d.s = (hi & DESC_HI_S) != 0;
	d.dpl = (uint8_t)(hi >> 13 & 0x3u);
	d.p = (hi & DESC_HI_P) != 0;
	d.avl = (hi & DESC_HI_AVL) != 0;
	d.l = (hi & DESC_HI_L) != 0;
	d.db = (hi & DESC_HI_DB) != 0;
	d.g = (hi & DESC_HI_G) != 0;
	return d;
}

uint32_t desc_byte_limit(const struct seg_desc *d)
{
	uint32_t limit = d->limit & 0xFFFFFu;

	return d->g ? limit << 12 | 0xFFFu : limit;
}

/*
 * The mask keeps hi bits 8..15 (type, S, DPL, P) and 20..23 (AVL, L, D/B, G) and drops the
 * limit nibble 16..19 and the base bytes: those live in the hidden base/limit registers, so
 * comparing them again through the flags word would report one mismatch twice. QEMU itself
 * often stores the whole hi dword as flags (cpu_x86_load_seg_cache(..., e2)), so the other
 * side of a comparison must be masked the same way.
 */
uint32_t desc_attr_flags(uint64_t raw)
{
	return (uint32_t)(raw >> 32) & 0x00F0FF00u;
}

/* Bits 0..7 of a gate's hi dword (the call-gate parameter count) and S (=0) are not kept. */
uint64_t gate_encode(const struct gate_desc *g)
{
	uint32_t lo, hi;

	lo = (uint32_t)g->sel << 16 | (g->offset & 0xFFFFu);
	hi = (g->offset & 0xFFFF0000u) | flag(g->p, DESC_HI_P) | (uint32_t)(g->dpl & 0x3u) << 13
	     | (uint32_t)(g->type & 0xFu) << 8;
	return join(lo, hi);
}

struct gate_desc gate_decode(uint64_t raw)
{
	uint32_t lo = (uint32_t)raw, hi = (uint32_t)(raw >> 32);
	struct gate_desc g;

	g.sel = (uint16_t)(lo >> 16);
	g.offset = (hi & 0xFFFF0000u) | (lo & 0xFFFFu);
	g.type = (uint8_t)(hi >> 8 & 0xFu);
	g.dpl = (uint8_t)(hi >> 13 & 0x3u);
	g.p = (hi & DESC_HI_P) != 0;
	return g;
}

/* Type A set up front: a descriptor the CPU loads gets A written anyway, and a preset A
 * spares a descriptor-table write that would differ between engines. */
static struct seg_desc flat(uint8_t type)
{
	struct seg_desc d = {
		.base = 0,
		.limit = 0xFFFFFu,
		.type = type,
		.s = true,
		.dpl = 0,
		.p = true,
		.db = true,
		.g = true,
	};
	return d;
}

struct seg_desc desc_flat_code(void)
{
	return flat(STA_X | STA_R | STA_A);
}

struct seg_desc desc_flat_data(void)
{
	return flat(STA_W | STA_A);
}

struct seg_desc desc_tss32(uint32_t base, uint32_t limit, bool busy)
{
	struct seg_desc d = {
		.base = base,
		.limit = limit & 0xFFFFFu,
		.type = busy ? STS_T32B : STS_T32A,
		.s = false,
		.p = true,
	};
	return d;
}
