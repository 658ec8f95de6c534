/*
 * phys.c: bounds-checked access to the modelled physical memory window.
 */
#include "phys.h"

/*
 * Written as subtractions rather than pa + len <= base + size so that a guest-controlled
 * pa near 2^64 cannot wrap around and pass the check.
 */
bool phys_in(const struct physmem *pm, uint64_t pa, uint64_t len)
{
	if (pm == NULL || pm->bytes == NULL)
		return false;
	if (pa < pm->base || len > pm->size)
		return false;
	return pa - pm->base <= pm->size - len;
}

uint8_t *phys_ptr(const struct physmem *pm, uint64_t pa, uint64_t len)
{
	if (!phys_in(pm, pa, len))
		return NULL;
	return pm->bytes + (pa - pm->base);
}

bool phys_read4(const struct physmem *pm, uint64_t pa, uint32_t *v)
{
	const uint8_t *p = phys_ptr(pm, pa, 4);

	if (p == NULL)
		return false;
	*v = get4(p);
	return true;
}

bool phys_read8(const struct physmem *pm, uint64_t pa, uint64_t *v)
{
	const uint8_t *p = phys_ptr(pm, pa, 8);

	if (p == NULL)
		return false;
	*v = get8(p);
	return true;
}

bool phys_write4(struct physmem *pm, uint64_t pa, uint32_t v)
{
	uint8_t *p = phys_ptr(pm, pa, 4);

	if (p == NULL)
		return false;
	put4(p, v);
	return true;
}

bool phys_write8(struct physmem *pm, uint64_t pa, uint64_t v)
{
	uint8_t *p = phys_ptr(pm, pa, 8);

	if (p == NULL)
		return false;
	put8(p, v);
	return true;
}
