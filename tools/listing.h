/*
 * listing.h: which NASM source line produced the bytes at an offset of a shim binary.
 *
 * A code directory's manifest names a listing (`nasm -l`) for each binary. The listing gives,
 * per source line, the offset and the bytes emitted; lines that come from %include'd files
 * or macro expansions carry a nesting-level column ("<1>", "<2>"...). listing_load() follows
 * the nesting to name the file and line each byte comes from, and for a macro expansion shows
 * the macro's own source line (comment included, which NASM drops from expansions) and the
 * invocation that expanded it, e.g.
 *
 *   shim.asm:42 mov cr3, eax ; the target space: ... [SWITCH M, H at shim.asm:100]
 *
 * When the binary's bytes at an entry differ from what the listing says were assembled
 * there (a hand-patched mutant in a copied code directory), the line says so.
 */
#ifndef SHIMCHECK_TOOLS_LISTING_H
#define SHIMCHECK_TOOLS_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/code.h"
#include "../model/image.h"
#include "trace.h"

struct listing_entry {
	uint32_t off, size;  /* bytes [off, off+size) of the binary */
	const char *text;    /* points into the owning listing_bin's strings */
};

struct listing_bin {
	bool loaded;
	size_t n, cap;
	struct listing_entry *e;  /* sorted by off (a flat binary lists in offset order) */
	size_t nstr, capstr;
	char **str;               /* owned texts (continuation lines share their line's) */
};

struct listing {
	struct listing_bin bin[CB_N];
	char err[600];            /* why a listing could not be read (the first one) */
};

/* Read the listings c names. Returns true when at least one was read; binaries without a
 * readable listing answer NULL. err names the first listing that failed. */
bool listing_load(struct listing *l, const struct shim_code *c);
/* The source text for the byte at off of binary b; NULL when unknown. */
const char *listing_line(const struct listing *l, enum code_bin_id b, uint32_t off);
void listing_free(struct listing *l);

/* Which binary and offset the instruction at linear eip comes from. pa is the physical
 * address the fetch reached (tr_insn.pa), UINT64_MAX when unknown: a known pa decides (it
 * tells apart the shim page from a guest page mapped at the shim's linear address, and
 * covers the shim running at its physical address); otherwise the linear code pages of the
 * space (SP_HOST, SP_MON, or -1 for transition tables: any) decide. */
bool listing_locate(const struct image *img, int space, uint32_t eip, uint64_t pa, enum code_bin_id *b,
		    uint32_t *off);
/* listing_locate + listing_line for one trace instruction; NULL when unknown. */
const char *listing_for_insn(const struct listing *l, const struct image *img, const struct tr_insn *in);

#endif
