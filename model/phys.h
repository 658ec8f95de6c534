/*
 * phys.h: the modelled physical memory, a window [base, base+size) of host bytes.
 *
 * Every engine gets the same bytes: Unicorn maps this buffer, the boot kernel copies it.
 * Accessors are little-endian and byte-by-byte (SQLite's get4byte/put4byte style), so the
 * model never depends on host alignment or endianness.
 */
#ifndef SHIMCHECK_MODEL_PHYS_H
#define SHIMCHECK_MODEL_PHYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct physmem {
	uint64_t base; /* physical address of bytes[0]; page aligned */
	uint64_t size; /* bytes; multiple of 4096 */
	uint8_t *bytes;
};

/* True when [pa, pa+len) lies inside the window. */
bool phys_in(const struct physmem *pm, uint64_t pa, uint64_t len);
/* Host pointer for pa (NULL when [pa, pa+len) is outside). */
uint8_t *phys_ptr(const struct physmem *pm, uint64_t pa, uint64_t len);

/* Little-endian helpers over any byte pointer. */
static inline uint16_t get2(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get4(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get8(const uint8_t *p) { return (uint64_t)get4(p) | (uint64_t)get4(p + 4) << 32; }
static inline void put2(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void put4(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void put8(uint8_t *p, uint64_t v)
{
	put4(p, (uint32_t)v);
	put4(p + 4, (uint32_t)(v >> 32));
}

/* Checked physical reads/writes: return false (and leave *v untouched) outside the window. */
bool phys_read4(const struct physmem *pm, uint64_t pa, uint32_t *v);
bool phys_read8(const struct physmem *pm, uint64_t pa, uint64_t *v);
bool phys_write4(struct physmem *pm, uint64_t pa, uint32_t v);
bool phys_write8(struct physmem *pm, uint64_t pa, uint64_t v);

#endif
