/*
 * code.c: load and validate a code directory (manifest.json + flat binaries).
 */
#include "code.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../shim/shim_abi.h"
#include "phys.h"

#define X_SWE_NAME(id, name) name,
static const char *const swe_names[] = {SWE_LIST(X_SWE_NAME)};
const char *swe_name(enum swe e) { return e < SWE_N ? swe_names[e] : "?"; }

static const char *const bin_names[CB_N] = {"host", "monitor", "shim"};

#define X_EP_NAME(bin, sym, what) #sym,
#define X_EP_BIN(bin, sym, what) #bin,
static const char *const ep_names[EP_N] = {SHIM_ENTRY_POINTS(X_EP_NAME)};
static const char *const ep_bins[EP_N] = {SHIM_ENTRY_POINTS(X_EP_BIN)};
#define X_EP_COUNT(bin, sym, what) +1
_Static_assert(0 SHIM_ENTRY_POINTS(X_EP_COUNT) == EP_N, "enum entry follows SHIM_ENTRY_POINTS");
const char *entry_name(enum entry e) { return e < EP_N ? ep_names[e] : "?"; }

static int bin_index(const char *name)
{
	for (int i = 0; i < CB_N; i++)
		if (strcmp(name, bin_names[i]) == 0)
			return i;
	return -1;
}

enum code_bin_id entry_bin(enum entry e) { return (enum code_bin_id)bin_index(ep_bins[e]); }

static bool bad(char *err, size_t n, const char *file, const char *field, const char *fmt, ...)
{
	int k = snprintf(err, n, "%s: %s: ", file, field);
	if (k > 0 && (size_t)k < n) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + k, n - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return false;
}

static uint8_t *read_file(const char *path, size_t max, size_t *size, int *too_big)
{
	FILE *f = fopen(path, "rb");
	*too_big = 0;
	if (!f)
		return NULL;
	uint8_t *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	fclose(f);
	if (buf && n > max) {
		*too_big = 1;
		free(buf);
		return NULL;
	}
	*size = n;
	return buf;
}

static bool get_int(json_t *o, const char *key, long long lo, long long hi, long long *out)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		return false;
	long long x = json_integer_value(v);
	if (x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

static bool load_order(json_t *m, struct shim_code *c, const char *mf, char *err, size_t n)
{
	json_t *order = json_object_get(m, "order");
	if (!json_is_object(order))
		return bad(err, n, mf, "order", "must be an object with \"m2h\" and \"h2m\" arrays");
	static const char *const dirs[2] = {"m2h", "h2m"};
	for (int d = 0; d < 2; d++) {
		json_t *a = json_object_get(order, dirs[d]);
		char field[32];
		snprintf(field, sizeof field, "order.%s", dirs[d]);
		if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > SWE_N)
			return bad(err, n, mf, field, "must be an array of 1..%d event names (or arrays of them)", SWE_N);
		size_t i;
		json_t *e;
		int k = 0;
		json_array_foreach(a, i, e) {
			/* a name, or an array of names that may come in any order */
			json_t *one = json_array();
			if (json_is_array(e) && json_array_size(e) > 0)
				json_array_extend(one, e);
			else
				json_array_append(one, e);
			size_t j;
			json_t *x;
			json_array_foreach(one, j, x) {
				const char *s = json_is_string(x) ? json_string_value(x) : "";
				int id = -1;
				for (int q = 0; q < SWE_N; q++)
					if (strcmp(s, swe_names[q]) == 0)
						id = q;
				if (id < 0 || k >= SWE_N) {
					json_decref(one);
					return bad(err, n, mf, field,
						   "\"%.32s\" is not an event (lgdt lidt busy_clear ltr mov_cr3 lss far_jmp)", s);
				}
				for (int q = 0; q < k; q++)
					if (c->order[d][q] == (enum swe)id) {
						json_decref(one);
						return bad(err, n, mf, field, "\"%s\" appears twice", s);
					}
				c->order[d][k] = (enum swe)id;
				c->group[d][k] = (int)i;
				k++;
			}
			json_decref(one);
		}
		c->norder[d] = k;
	}
	return true;
}

static bool load_switches(json_t *m, struct shim_code *c, const char *mf, char *err, size_t n)
{
	json_t *a = json_object_get(m, "switches");
	memset(&c->sw, 0, sizeof c->sw);
	if (!json_is_array(a))
		return bad(err, n, mf, "switches", "must be an array of state names");
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		const char *s = json_is_string(e) ? json_string_value(e) : "";
		if (strcmp(s, "paging") == 0)
			c->sw.paging = true;
		else if (strcmp(s, "cr0_wp") == 0)
			c->sw.cr0_wp = true;
		else if (strcmp(s, "cr4_pge") == 0)
			c->sw.cr4_pge = true;
		else if (strcmp(s, "efer_nxe") == 0)
			c->sw.efer_nxe = true;
		else if (strcmp(s, "ldtr") == 0)
			c->sw.ldtr = true;
		else if (strcmp(s, "cr3") && strcmp(s, "gdtr") && strcmp(s, "idtr") && strcmp(s, "tr"))
			return bad(err, n, mf, "switches", "\"%.32s\" is not a state name", s);
	}
	return true;
}

static bool load_swap(json_t *m, struct shim_code *c, const char *mf, char *err, size_t n)
{
	json_t *nmi = json_object_get(m, "nmi_safe");
	if (nmi && !json_is_boolean(nmi))
		return bad(err, n, mf, "nmi_safe", "must be true or false");
	c->nmi_safe = json_is_true(nmi);
	json_t *v = json_object_get(m, "swap");
	const char *s = json_is_string(v) ? json_string_value(v) : "";
	if (strcmp(s, "pte") == 0)
		c->sw.pde_swap = false;
	else if (strcmp(s, "pde") == 0)
		c->sw.pde_swap = true;
	else
		return bad(err, n, mf, "swap", "must be \"pte\" or \"pde\" (which paging entry the monitor swaps)");
	return true;
}

static bool load_bins(json_t *m, struct shim_code *c, const char *dir, const char *mf, char *err, size_t n)
{
	json_t *bins = json_object_get(m, "binaries");
	if (!json_is_array(bins))
		return bad(err, n, mf, "binaries", "must be an array");
	size_t i;
	json_t *b;
	json_array_foreach(bins, i, b) {
		char field[64];
		snprintf(field, sizeof field, "binaries[%zu]", i);
		json_t *name = json_object_get(b, "name"), *file = json_object_get(b, "file");
		int k = json_is_string(name) ? bin_index(json_string_value(name)) : -1;
		if (k < 0)
			return bad(err, n, mf, field, "name must be host, monitor or shim");
		if (c->bin[k].bytes)
			return bad(err, n, mf, field, "binary \"%s\" listed twice", bin_names[k]);
		if (!json_is_string(file) || strchr(json_string_value(file), '/'))
			return bad(err, n, mf, field, "file must be a file name inside the code directory");
		long long slot;
		if (!get_int(b, "slot_size", 1, 4096, &slot))
			return bad(err, n, mf, field, "slot_size must be an integer 1..4096");
		if (k == CB_SHIM && slot != SHIM_PAGE_SIZE)
			return bad(err, n, mf, field, "the shim's slot is one page (4096)");
		struct code_bin *cb = &c->bin[k];
		char path[sizeof cb->path];
		snprintf(path, sizeof path, "%s/%s", dir, json_string_value(file));
		memcpy(cb->path, path, sizeof path);
		json_t *lst = json_object_get(b, "listing");
		if (json_is_string(lst) && !strchr(json_string_value(lst), '/')) {
			snprintf(path, sizeof path, "%s/%s", dir, json_string_value(lst));
			memcpy(cb->listing, path, sizeof path);
		}
		int too_big;
		cb->bytes = read_file(cb->path, (size_t)slot, &cb->size, &too_big);
		if (too_big)
			return bad(err, n, cb->path, "size", "larger than its slot of %lld bytes", slot);
		if (!cb->bytes)
			return bad(err, n, cb->path, "file", "cannot read: %s", strerror(errno));
		if (cb->size == 0)
			return bad(err, n, cb->path, "size", "empty binary");
		cb->slot = (size_t)slot;
		json_t *syms = json_object_get(b, "symbols");
		const char *sname;
		json_t *sv;
		json_object_foreach(syms, sname, sv) {
			if (!json_is_integer(sv) || c->nsyms >= CODE_MAX_SYMS)
				continue;
			long long off = json_integer_value(sv);
			if (off < 0 || (size_t)off >= cb->size)
				continue;
			struct code_sym *s = &c->syms[c->nsyms++];
			s->bin = (enum code_bin_id)k;
			s->off = (uint32_t)off;
			snprintf(s->name, sizeof s->name, "%s", sname);
		}
	}
	for (int k = 0; k < CB_N; k++)
		if (!c->bin[k].bytes)
			return bad(err, n, mf, "binaries", "no \"%s\" binary", bin_names[k]);
	if (c->bin[CB_SHIM].size != SHIM_PAGE_SIZE)
		return bad(err, n, c->bin[CB_SHIM].path, "size", "the shim binary must be exactly one page (%zu bytes)",
			   c->bin[CB_SHIM].size);
	for (int k = CB_HOST; k <= CB_MON; k++)
		if (c->bin[k].size < PB_SIZE || get4(c->bin[k].bytes + PB_MAGIC) != PB_MAGIC_VALUE)
			return bad(err, n, c->bin[k].path, "parameter block", "missing (the binary must start with the PB_MAGIC dword)");
	return true;
}

static bool load_entries(json_t *m, struct shim_code *c, const char *mf, char *err, size_t n)
{
	json_t *eps = json_object_get(m, "entry_points");
	if (!json_is_object(eps))
		return bad(err, n, mf, "entry_points", "must be an object");
	for (int e = 0; e < EP_N; e++) {
		char field[64];
		snprintf(field, sizeof field, "entry_points.%s", ep_names[e]);
		json_t *ep = json_object_get(eps, ep_names[e]);
		json_t *bin = json_object_get(ep, "binary");
		if (!ep && e == EP_SHIM_NMI) { /* optional: only shims that load their own IDT have it */
			c->entry[e] = ENTRY_ABSENT;
			continue;
		}
		if (!json_is_object(ep) || !json_is_string(bin) || strcmp(json_string_value(bin), ep_bins[e]) != 0)
			return bad(err, n, mf, field, "required, in binary \"%s\"", ep_bins[e]);
		long long off;
		int k = bin_index(ep_bins[e]);
		if (!get_int(ep, "offset", 0, (long long)c->bin[k].size - 1, &off))
			return bad(err, n, mf, field, "offset must lie inside %s (0..%zu)", ep_bins[e], c->bin[k].size - 1);
		if (k == CB_SHIM && off >= SHIM_DATA_OFF)
			return bad(err, n, mf, field, "offset 0x%llx lies in the shim's data area", off);
		c->entry[e] = (uint32_t)off;
	}
	return true;
}

bool code_load(const char *dir, struct shim_code *c, char *err, size_t n)
{
	memset(c, 0, sizeof *c);
	snprintf(c->dir, sizeof c->dir, "%s", dir);
	char mf[600];
	snprintf(mf, sizeof mf, "%s/manifest.json", dir);
	json_error_t jerr;
	json_t *m = json_load_file(mf, JSON_REJECT_DUPLICATES, &jerr);
	if (!m)
		return bad(err, n, mf, "(file)", "%s", jerr.text);
	bool ok = false;
	long long abi;
	json_t *variant = json_object_get(m, "variant");
	if (!json_is_object(m))
		bad(err, n, mf, "(top level)", "must be an object");
	else if (!get_int(m, "abi_version", 0, 1 << 30, &abi))
		bad(err, n, mf, "abi_version", "must be an integer");
	else if (abi != SHIM_ABI_VERSION)
		bad(err, n, mf, "abi_version", "%lld, but this shimcheck speaks ABI %d", abi, SHIM_ABI_VERSION);
	else if (!json_is_string(variant) || !*json_string_value(variant))
		bad(err, n, mf, "variant", "must be a non-empty string");
	else if (load_bins(m, c, dir, mf, err, n) && load_entries(m, c, mf, err, n) && load_order(m, c, mf, err, n) &&
		 load_switches(m, c, mf, err, n) && load_swap(m, c, mf, err, n))
		ok = true;
	if (ok) {
		c->abi = (int)abi;
		snprintf(c->variant, sizeof c->variant, "%s", json_string_value(variant));
	}
	json_decref(m);
	if (!ok)
		code_free(c);
	return ok;
}

void code_free(struct shim_code *c)
{
	for (int k = 0; k < CB_N; k++) {
		free(c->bin[k].bytes);
		c->bin[k].bytes = NULL;
	}
}
