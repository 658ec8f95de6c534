/*
 * fnv.h: 64-bit FNV-1a (Fowler, Noll, Vo), a byte at a time: the engine's decode cache and
 * code-placement key, the fuzzer's outcome digest. Not for anything adversarial.
 */
#ifndef SHIMCHECK_SIM_FNV_H
#define SHIMCHECK_SIM_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV64_INIT 0xCBF29CE484222325ull

static inline uint64_t fnv1a64(uint64_t h, const void *data, size_t n)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001B3ull;
	}
	return h;
}

#endif
