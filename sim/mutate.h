/*
 * mutate.h: edits of a variant's binaries, one instruction at a time: the hand-written
 * mutant catalogue (tests/mutants/) and `shimcheck mutate` both build on it.
 */
#ifndef SHIMCHECK_SIM_MUTATE_H
#define SHIMCHECK_SIM_MUTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/code.h"

struct insn_ref {
	enum code_bin_id bin;
	uint32_t off;
	uint8_t len;
	unsigned id;       /* X86_INS_* */
	bool branch;       /* relative jump or call: moving it would change its target */
	bool has_imm, has_disp;
	uint8_t imm_off, disp_off, imm_size, disp_size; /* where they sit in the bytes */
	char text[64];
};

/* The instructions of one binary's code (host/monitor: after the parameter block; shim: up to
 * the data area; int3 padding excluded). Returns the count (at most max). */
int mutate_list(const struct shim_code *c, enum code_bin_id b, struct insn_ref *out, int max);

/* Find the nth (1-based) instruction whose text starts with prefix, at or after symbol
 * `from` (NULL: the start of the code). Returns false when there is none. */
bool mutate_find(const struct shim_code *c, enum code_bin_id b, const char *from, const char *prefix, int nth,
		 struct insn_ref *out);

/* Copy c (binaries duplicated) so that edits leave the original alone. */
bool code_dup(struct shim_code *dst, const struct shim_code *src);

/* The edits. Each returns false when it does not apply. */
bool mutate_nop(struct shim_code *c, const struct insn_ref *r);
bool mutate_replace(struct shim_code *c, const struct insn_ref *r, const uint8_t *bytes, size_t n);
/* Exchange r and the instruction right after it (neither may be a relative branch). */
bool mutate_swap_next(struct shim_code *c, const struct insn_ref *r, const struct insn_ref *next);
/* Move r so that it runs just before `before` (an earlier instruction): rotate the bytes. */
bool mutate_move_before(struct shim_code *c, const struct insn_ref *r, const struct insn_ref *before);

const char *code_bin_name(enum code_bin_id b);
/* The binary named s ("host", "monitor", "shim"); false when there is none. */
bool code_bin_id(const char *s, enum code_bin_id *out);

/* One edit of the mutant catalogue (tests/mutants/catalogue.json), its fields as strings:
 * the nth (>= 1) instruction starting with `find` at or after `from` in `bin`, and op "nop",
 * "replace" (bytes: hex pairs, spaces allowed), "swap_next" or "move_before" (before: the
 * instruction to move it ahead of). */
struct mutate_edit {
	enum code_bin_id bin;
	const char *from, *find, *op, *bytes, *before;
	int nth;
};

/* Apply ed to c. false + err (one line) when it finds nothing or does not apply; *done names
 * the instruction it edited. */
bool mutate_apply(struct shim_code *c, const struct mutate_edit *ed, struct insn_ref *done, char *err, size_t n);

#endif
