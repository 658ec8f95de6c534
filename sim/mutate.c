/*
 * mutate.c: disassemble a variant's binaries with Capstone and edit single instructions.
 */
#include "mutate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <capstone/capstone.h>

#include "../shim/shim_abi.h"

static const char *const names[CB_N] = {"host", "monitor", "shim"};
const char *code_bin_name(enum code_bin_id b) { return b < CB_N ? names[b] : "?"; }

bool code_bin_id(const char *s, enum code_bin_id *out)
{
	for (int b = 0; b < CB_N; b++)
		if (s && strcmp(s, names[b]) == 0) {
			*out = (enum code_bin_id)b;
			return true;
		}
	return false;
}

/* A jump or call with an immediate target is EIP-relative: moving it moves its target. */
static bool is_branch(const cs_insn *in)
{
	bool jump = false;
	for (int g = 0; g < in->detail->groups_count; g++)
		jump |= in->detail->groups[g] == CS_GRP_JUMP || in->detail->groups[g] == CS_GRP_CALL;
	return jump && in->detail->x86.op_count > 0 && in->detail->x86.operands[0].type == X86_OP_IMM;
}

int mutate_list(const struct shim_code *c, enum code_bin_id b, struct insn_ref *out, int max)
{
	csh cs;
	if (cs_open(CS_ARCH_X86, CS_MODE_32, &cs) != CS_ERR_OK)
		return 0;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	const struct code_bin *bin = &c->bin[b];
	size_t start = b == CB_SHIM ? 0 : PB_SIZE, end = b == CB_SHIM ? SHIM_DATA_OFF : bin->size;
	if (end > bin->size)
		end = bin->size;
	const uint8_t *p = bin->bytes + start;
	size_t left = end - start;
	uint64_t addr = start;
	cs_insn *in = cs_malloc(cs);
	int n = 0;
	while (left && n < max) {
		if (!cs_disasm_iter(cs, &p, &left, &addr, in)) {
			p++, left--, addr++; /* an undecodable byte: step over it */
			continue;
		}
		if (in->id == X86_INS_INT3)
			continue;
		struct insn_ref *r = &out[n++];
		memset(r, 0, sizeof *r);
		r->bin = b;
		r->off = (uint32_t)in->address;
		r->len = (uint8_t)in->size;
		r->id = in->id;
		r->branch = is_branch(in);
		const cs_x86 *x = &in->detail->x86;
		r->imm_off = x->encoding.imm_offset;
		r->imm_size = x->encoding.imm_size;
		r->disp_off = x->encoding.disp_offset;
		r->disp_size = x->encoding.disp_size;
		r->has_imm = r->imm_size && !r->branch;
		r->has_disp = r->disp_size != 0;
		snprintf(r->text, sizeof r->text, "%s%s%s", in->mnemonic, in->op_str[0] ? " " : "", in->op_str);
	}
	cs_free(in, 1);
	cs_close(&cs);
	return n;
}

static uint32_t sym_off(const struct shim_code *c, enum code_bin_id b, const char *name, bool *ok)
{
	*ok = true;
	if (!name)
		return 0;
	for (int i = 0; i < c->nsyms; i++)
		if (c->syms[i].bin == b && strcmp(c->syms[i].name, name) == 0)
			return c->syms[i].off;
	*ok = false;
	return 0;
}

bool mutate_find(const struct shim_code *c, enum code_bin_id b, const char *from, const char *prefix, int nth,
		 struct insn_ref *out)
{
	bool ok;
	uint32_t at = sym_off(c, b, from, &ok);
	if (!ok)
		return false;
	static struct insn_ref list[1024];
	int n = mutate_list(c, b, list, 1024);
	for (int i = 0; i < n; i++)
		if (list[i].off >= at && strncmp(list[i].text, prefix, strlen(prefix)) == 0 && --nth == 0) {
			*out = list[i];
			return true;
		}
	return false;
}

bool code_dup(struct shim_code *dst, const struct shim_code *src)
{
	*dst = *src;
	for (int b = 0; b < CB_N; b++) {
		dst->bin[b].bytes = malloc(src->bin[b].size);
		if (!dst->bin[b].bytes) {
			for (int k = 0; k < b; k++)
				free(dst->bin[k].bytes);
			return false;
		}
		memcpy(dst->bin[b].bytes, src->bin[b].bytes, src->bin[b].size);
	}
	return true;
}

bool mutate_nop(struct shim_code *c, const struct insn_ref *r)
{
	memset(c->bin[r->bin].bytes + r->off, 0x90, r->len);
	return true;
}

bool mutate_replace(struct shim_code *c, const struct insn_ref *r, const uint8_t *bytes, size_t n)
{
	if (n > r->len)
		return false;
	memcpy(c->bin[r->bin].bytes + r->off, bytes, n);
	memset(c->bin[r->bin].bytes + r->off + n, 0x90, r->len - n);
	return true;
}

/* Rotate [lo, hi) so that the bytes at [mid, hi) come first. */
static void rotate(uint8_t *lo, uint8_t *mid, uint8_t *hi)
{
	size_t a = (size_t)(mid - lo), b = (size_t)(hi - mid);
	uint8_t tmp[256];
	if (a + b > sizeof tmp)
		return;
	memcpy(tmp, mid, b);
	memcpy(tmp + b, lo, a);
	memcpy(lo, tmp, a + b);
}

bool mutate_swap_next(struct shim_code *c, const struct insn_ref *r, const struct insn_ref *next)
{
	if (r->branch || next->branch || next->off != r->off + r->len || r->bin != next->bin)
		return false;
	uint8_t *base = c->bin[r->bin].bytes;
	rotate(base + r->off, base + next->off, base + next->off + next->len);
	return true;
}

bool mutate_move_before(struct shim_code *c, const struct insn_ref *r, const struct insn_ref *before)
{
	if (r->branch || before->off >= r->off || r->bin != before->bin || r->off + r->len - before->off > 256)
		return false;
	uint8_t *base = c->bin[r->bin].bytes;
	rotate(base + before->off, base + r->off, base + r->off + r->len);
	return true;
}

/* Hex pairs (spaces between them allowed) into out; the count, 0 when s is not that. */
static size_t hex_bytes(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;
	while (s && *s && n < max) {
		unsigned v;
		if (*s == ' ') {
			s++;
			continue;
		}
		if (sscanf(s, "%2x", &v) != 1)
			return 0;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return s && *s ? 0 : n;
}

bool mutate_apply(struct shim_code *c, const struct mutate_edit *ed, struct insn_ref *done, char *err, size_t n)
{
	struct insn_ref r, r2;
	if (!ed->find || !ed->op) {
		snprintf(err, n, "an edit without find or op");
		return false;
	}
	if (!mutate_find(c, ed->bin, ed->from, ed->find, ed->nth > 0 ? ed->nth : 1, &r)) {
		snprintf(err, n, "no `%s` at or after %s in %s", ed->find, ed->from ? ed->from : "the start",
			 code_bin_name(ed->bin));
		return false;
	}
	bool ok = false;
	if (strcmp(ed->op, "nop") == 0) {
		ok = mutate_nop(c, &r);
	} else if (strcmp(ed->op, "replace") == 0) {
		uint8_t bytes[16];
		size_t k = hex_bytes(ed->bytes, bytes, sizeof bytes);
		ok = k > 0 && mutate_replace(c, &r, bytes, k);
	} else if (strcmp(ed->op, "swap_next") == 0) {
		static struct insn_ref list[1024];
		int k = mutate_list(c, ed->bin, list, 1024);
		for (int i = 0; i + 1 < k; i++)
			if (list[i].off == r.off)
				ok = mutate_swap_next(c, &list[i], &list[i + 1]);
	} else if (strcmp(ed->op, "move_before") == 0) {
		ok = ed->before && mutate_find(c, ed->bin, ed->from, ed->before, 1, &r2) && mutate_move_before(c, &r, &r2);
	}
	if (!ok) {
		snprintf(err, n, "edit %s on `%s` does not apply", ed->op, r.text);
		return false;
	}
	if (done)
		*done = r;
	return true;
}
