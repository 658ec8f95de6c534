/*
 * scenario.c: scenario files (JSON, via libjansson) to struct scenario, and validation.
 *
 * Parsing is strict: unknown fields are rejected, numbers are JSON integers or "0x..."
 * strings, and every error names the field's JSON path.
 */
#include "scenario.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mmu.h"
#include "../shim/shim_abi.h"

#define X_NAME(id, name, why) name,
#define X_WHY(id, name, why) why,
static const char *const reason_names[] = {SC_REASONS(X_NAME)};
static const char *const reason_whys[] = {SC_REASONS(X_WHY)};

const char *sc_reason_name(enum sc_reason r) { return r < SC_NREASONS ? reason_names[r] : "?"; }
const char *sc_reason_why(enum sc_reason r) { return r < SC_NREASONS ? reason_whys[r] : "?"; }

static const char *const obj_names[OBJ_NMON] = {"code", "stack", "gdt", "idt", "tss", "shim_alias",
						 "pt_window"};
const char *sc_obj_name(int obj) { return obj >= 0 && obj < OBJ_NMON ? obj_names[obj] : "?"; }
const char *sc_space_name(enum sc_space sp) { return sp == SP_HOST ? "host" : "monitor"; }

static enum sc_reason fail(struct sc_error *err, enum sc_reason r, const char *field, const char *fmt, ...)
{
	err->reason = r;
	snprintf(err->field, sizeof err->field, "%s", field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof err->detail, fmt, ap);
	va_end(ap);
	return r;
}

/* ---- JSON helpers --------------------------------------------------------------------- */

struct ctx {
	struct scenario *sc;
	struct sc_error *err;
};

static char *join(char *buf, size_t n, const char *a, const char *b)
{
	snprintf(buf, n, "%s%s%s", a, *a ? "." : "", b);
	return buf;
}

/* "a.b.c", for a failure's field. */
static char *field2(char *buf, size_t n, const char *a, const char *b, const char *c)
{
	snprintf(buf, n, "%s.%s.%s", a, b, c);
	return buf;
}

static char *touch_field(char *buf, size_t n, int i)
{
	snprintf(buf, n, "guest.touch[%d]", i);
	return buf;
}

/* Reject keys of obj not in the NULL-terminated list. */
static enum sc_reason only_keys(struct ctx *c, json_t *obj, const char *path, const char *const *keys)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		int ok = 0;
		for (const char *const *p = keys; *p; p++)
			ok |= strcmp(*p, k) == 0;
		if (!ok) {
			char f[128];
			return fail(c->err, SC_UNKNOWN, join(f, sizeof f, path, k), "not a field of %s",
				    *path ? path : "the scenario");
		}
	}
	return SC_OK;
}

static enum sc_reason want_object(struct ctx *c, json_t *v, const char *path)
{
	if (!json_is_object(v))
		return fail(c->err, SC_TYPE, path, "must be an object");
	return SC_OK;
}

/* A number: JSON integer, or a string "0x..."/decimal; at most max. */
static enum sc_reason get_num(struct ctx *c, json_t *v, const char *path, uint64_t max, uint64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0 || (uint64_t)i > max)
			return fail(c->err, SC_RANGE, path, "%" JSON_INTEGER_FORMAT " is out of range (0..0x%" PRIx64 ")",
				    i, max);
		*out = (uint64_t)i;
		return SC_OK;
	}
	if (!json_is_string(v))
		return fail(c->err, SC_TYPE, path, "must be a number or a \"0x...\" string");
	const char *s = json_string_value(v);
	if (!*s || strlen(s) > 20 || *s == '-' || *s == '+' || *s == ' ')
		return fail(c->err, SC_TYPE, path, "\"%.40s\" is not a number", s);
	errno = 0;
	char *end;
	/* "0x..." is hexadecimal, anything else decimal ("010" is ten, not octal eight) */
	bool hexa = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	unsigned long long n = strtoull(hexa ? s + 2 : s, &end, hexa ? 16 : 10);
	if (hexa && end == s + 2)
		end = (char *)"x"; /* "0x" alone */
	if (*end || errno)
		return fail(c->err, SC_TYPE, path, "\"%.40s\" is not a number", s);
	if (n > max)
		return fail(c->err, SC_RANGE, path, "%s is out of range (0..0x%" PRIx64 ")", s, max);
	*out = n;
	return SC_OK;
}

static enum sc_reason get_bool(struct ctx *c, json_t *v, const char *path, bool *out)
{
	if (!json_is_boolean(v))
		return fail(c->err, SC_TYPE, path, "must be true or false");
	*out = json_is_true(v);
	return SC_OK;
}

#define TRY(x)                               \
	do {                                 \
		enum sc_reason r_ = (x);     \
		if (r_ != SC_OK)             \
			return r_;           \
	} while (0)

/* ---- names ------------------------------------------------------------------------------ */

static int obj_index(const char *name, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, obj_names[i]) == 0)
			return i;
	return -1;
}

/* "host.gdt", "monitor.pt_window" -> space + object. */
static bool parse_world_obj(const char *s, enum sc_space *sp, int *obj)
{
	const char *dot = strchr(s, '.');
	if (!dot)
		return false;
	size_t n = (size_t)(dot - s);
	if (n == 4 && strncmp(s, "host", 4) == 0) {
		*sp = SP_HOST;
		*obj = obj_index(dot + 1, OBJ_NWORLD);
	} else if (n == 7 && strncmp(s, "monitor", 7) == 0) {
		*sp = SP_MON;
		*obj = obj_index(dot + 1, OBJ_NMON);
	} else {
		return false;
	}
	return *obj >= 0;
}

static enum sc_reason get_frame(struct ctx *c, json_t *v, const char *path, struct sc_frame *fr)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		enum sc_space sp;
		int obj;
		if (strcmp(s, "shim") == 0 || strcmp(s, "monitor.shim_alias") == 0) {
			fr->kind = FR_SHIM;
			return SC_OK;
		}
		if (strncmp(s, "guest.page", 10) == 0) {
			char *end;
			long n = strtol(s + 10, &end, 10);
			if (*end || s[10] == '\0' || s[10] < '0' || s[10] > '9')
				return fail(c->err, SC_TYPE, path, "\"%.40s\" names no guest page (guest.page0..guest.page%d)", s,
					    SC_GUEST_PAGES - 1);
			if (n < 0 || n >= SC_GUEST_PAGES)
				return fail(c->err, SC_RANGE, path, "\"%.40s\": guest pages are guest.page0..guest.page%d",
					    s, SC_GUEST_PAGES - 1);
			fr->kind = FR_GUEST;
			fr->obj = (int)n;
			return SC_OK;
		}
		if (parse_world_obj(s, &sp, &obj)) {
			if (obj == MOBJ_PT_WINDOW)
				return fail(c->err, SC_RANGE, path, "monitor.pt_window is a window onto a page table, not a frame");
			fr->kind = FR_WORLD;
			fr->sp = sp;
			fr->obj = obj;
			return SC_OK;
		}
		if (strncmp(s, "0x", 2) != 0 && (s[0] < '0' || s[0] > '9'))
			return fail(c->err, SC_TYPE, path, "\"%.40s\" names no frame (host.X, monitor.X, shim, guest.pageN, or an address)", s);
	}
	uint64_t pa;
	TRY(get_num(c, v, path, 0xFFFFFFFFFull, &pa));
	fr->kind = FR_RAW;
	fr->raw = pa;
	return SC_OK;
}

/* A linear address: number, or "host.X"/"monitor.X" meaning that object's linear address. */
static enum sc_reason get_linear(struct ctx *c, json_t *v, const char *path, uint32_t *lin)
{
	if (json_is_string(v)) {
		enum sc_space sp;
		int obj;
		const char *s = json_string_value(v);
		if (strcmp(s, "shim") == 0) {
			*lin = c->sc->shim_lin;
			return SC_OK;
		}
		if (parse_world_obj(s, &sp, &obj)) {
			*lin = c->sc->w[sp].lin[obj];
			return SC_OK;
		}
	}
	uint64_t n;
	TRY(get_num(c, v, path, 0xFFFFFFFFull, &n));
	*lin = (uint32_t)n;
	return SC_OK;
}

static enum sc_reason get_flags(struct ctx *c, json_t *v, const char *path, uint32_t *lo, uint32_t *hi)
{
	if (!json_is_string(v))
		return fail(c->err, SC_TYPE, path, "must be a string of flag letters (w u a d g n c t)");
	*lo = 0;
	*hi = 0;
	for (const char *p = json_string_value(v); *p; p++) {
		switch (*p) {
		case 'w': *lo |= PTE_W; break;
		case 'u': *lo |= PTE_U; break;
		case 'a': *lo |= PTE_A; break;
		case 'd': *lo |= PTE_D; break;
		case 'g': *lo |= PTE_G; break;
		case 't': *lo |= PTE_PWT; break;
		case 'c': *lo |= PTE_PCD; break;
		case 'n': *hi |= PTE_NX_HI; break;
		default:
			return fail(c->err, SC_TYPE, path, "unknown flag '%c' (w u a d g n c t)", *p);
		}
	}
	return SC_OK;
}

static const char *const map_keys[] = {"linear", "to", "flags", "size", "raw", NULL};

/* A mapping object. need_linear: entries in maps[]; the guest's shim_pte has none. */
static enum sc_reason get_map(struct ctx *c, json_t *v, const char *path, bool need_linear, struct sc_map *m)
{
	char f[128];
	memset(m, 0, sizeof *m);
	snprintf(m->field, sizeof m->field, "%s", path);
	TRY(want_object(c, v, path));
	TRY(only_keys(c, v, path, map_keys));
	json_t *lin = json_object_get(v, "linear");
	if (need_linear) {
		if (!lin)
			return fail(c->err, SC_MISSING, join(f, sizeof f, path, "linear"), "required");
		TRY(get_linear(c, lin, join(f, sizeof f, path, "linear"), &m->lin));
	} else if (lin) {
		return fail(c->err, SC_UNKNOWN, join(f, sizeof f, path, "linear"), "the shim PTE's address is \"shim\"");
	}
	json_t *size = json_object_get(v, "size");
	if (size) {
		const char *s = json_is_string(size) ? json_string_value(size) : "";
		if (strcmp(s, "4k") == 0)
			m->large = false;
		else if (strcmp(s, "large") == 0)
			m->large = true;
		else
			return fail(c->err, SC_TYPE, join(f, sizeof f, path, "size"), "must be \"4k\" or \"large\"");
	}
	json_t *raw = json_object_get(v, "raw");
	if (raw) {
		if (json_object_get(v, "to") || json_object_get(v, "flags"))
			return fail(c->err, SC_TYPE, join(f, sizeof f, path, "raw"), "a raw entry excludes \"to\" and \"flags\"");
		m->has_raw = true;
		return get_num(c, raw, join(f, sizeof f, path, "raw"), UINT64_MAX, &m->raw);
	}
	json_t *to = json_object_get(v, "to");
	if (!to)
		return fail(c->err, SC_MISSING, join(f, sizeof f, path, "to"), "required (or \"raw\")");
	TRY(get_frame(c, to, join(f, sizeof f, path, "to"), &m->to));
	json_t *flags = json_object_get(v, "flags");
	if (flags)
		TRY(get_flags(c, flags, join(f, sizeof f, path, "flags"), &m->flags, &m->flags_hi));
	return SC_OK;
}

static enum sc_reason get_maps(struct ctx *c, json_t *v, const char *path, struct sc_map *maps, int *n)
{
	if (!json_is_array(v))
		return fail(c->err, SC_TYPE, path, "must be an array");
	if (json_array_size(v) > SC_MAX_MAPS)
		return fail(c->err, SC_RANGE, path, "at most %d mappings", SC_MAX_MAPS);
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		char f[128];
		snprintf(f, sizeof f, "%s[%zu]", path, i);
		TRY(get_map(c, e, f, true, &maps[i]));
	}
	*n = (int)json_array_size(v);
	return SC_OK;
}

static enum sc_reason get_paging(struct ctx *c, json_t *v, const char *path, enum sc_paging *p)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	if (s && strcmp(s, "4k") == 0)
		*p = SC_4K;
	else if (s && strcmp(s, "pse") == 0)
		*p = SC_PSE;
	else if (s && strcmp(s, "pae") == 0)
		*p = SC_PAE;
	else
		return fail(c->err, SC_TYPE, path, "must be \"4k\", \"pse\" or \"pae\"");
	return SC_OK;
}

static const char *const state_keys[] = {"paging", "cr0_wp", "cr4_pge", "efer_nxe", "ldtr", NULL};

static enum sc_reason get_state(struct ctx *c, json_t *v, const char *path, struct sc_state *st)
{
	char f[128];
	TRY(want_object(c, v, path));
	TRY(only_keys(c, v, path, state_keys));
	json_t *x;
	if ((x = json_object_get(v, "paging")))
		TRY(get_paging(c, x, join(f, sizeof f, path, "paging"), &st->paging));
	if ((x = json_object_get(v, "cr0_wp")))
		TRY(get_bool(c, x, join(f, sizeof f, path, "cr0_wp"), &st->cr0_wp));
	if ((x = json_object_get(v, "cr4_pge")))
		TRY(get_bool(c, x, join(f, sizeof f, path, "cr4_pge"), &st->cr4_pge));
	if ((x = json_object_get(v, "efer_nxe")))
		TRY(get_bool(c, x, join(f, sizeof f, path, "efer_nxe"), &st->efer_nxe));
	if ((x = json_object_get(v, "ldtr"))) {
		uint64_t n;
		TRY(get_num(c, x, join(f, sizeof f, path, "ldtr"), 0xFFFF, &n));
		st->ldtr = (uint16_t)n;
	}
	return SC_OK;
}

static const char *const world_keys[] = {"state", "layout", "selectors", "maps", NULL};
static const char *const sel_keys[] = {"cs", "ds", "tss", NULL};

/* First pass over a world: everything but maps (which may name the other world's objects). */
static enum sc_reason get_world(struct ctx *c, json_t *v, enum sc_space sp)
{
	const char *path = sc_space_name(sp);
	struct sc_world *w = &c->sc->w[sp];
	char f[128], g[128];
	TRY(want_object(c, v, path));
	TRY(only_keys(c, v, path, world_keys));
	json_t *x;
	if ((x = json_object_get(v, "state")))
		TRY(get_state(c, x, join(f, sizeof f, path, "state"), &w->state));
	json_t *layout = json_object_get(v, "layout");
	join(f, sizeof f, path, "layout");
	if (!layout)
		return fail(c->err, SC_MISSING, f, "required");
	TRY(want_object(c, layout, f));
	int nobj = sp == SP_HOST ? OBJ_NWORLD : OBJ_NMON;
	const char *lkeys[OBJ_NMON + 1] = {0};
	for (int i = 0; i < nobj; i++)
		lkeys[i] = obj_names[i];
	TRY(only_keys(c, layout, f, lkeys));
	for (int i = 0; i < nobj; i++) {
		json_t *a = json_object_get(layout, obj_names[i]);
		join(g, sizeof g, f, obj_names[i]);
		if (!a)
			return fail(c->err, SC_MISSING, g, "required");
		uint64_t n;
		TRY(get_num(c, a, g, 0xFFFFFFFFull, &n));
		w->lin[i] = (uint32_t)n;
	}
	json_t *sels = json_object_get(v, "selectors");
	join(f, sizeof f, path, "selectors");
	if (!sels)
		return fail(c->err, SC_MISSING, f, "required");
	TRY(want_object(c, sels, f));
	TRY(only_keys(c, sels, f, sel_keys));
	uint16_t *dst[3] = {&w->sel_cs, &w->sel_ds, &w->sel_tss};
	for (int i = 0; i < 3; i++) {
		json_t *s = json_object_get(sels, sel_keys[i]);
		join(g, sizeof g, f, sel_keys[i]);
		if (!s)
			return fail(c->err, SC_MISSING, g, "required");
		uint64_t n;
		TRY(get_num(c, s, g, 0xFFFF, &n));
		*dst[i] = (uint16_t)n;
	}
	return SC_OK;
}

static const char *const top_keys[] = {"schema", "name", "description", "paging", "round_trips", "shim",
				       "cs_wrap", "phys_window", "host", "monitor", "guest", NULL};
static const char *const window_keys[] = {"base", "size", NULL};
static const char *const guest_keys[] = {"shim_pte", "maps", "touch", NULL};

static void defaults(struct scenario *sc)
{
	memset(sc, 0, sizeof *sc);
	snprintf(sc->name, sizeof sc->name, "unnamed");
	sc->rounds = 2;
	sc->phys_base = 0x00400000;
	sc->phys_size = 0x00C00000;
	for (int s = 0; s < 2; s++)
		sc->w[s].state.cr0_wp = true;
}

static enum sc_reason parse_root(struct ctx *c, json_t *root)
{
	struct scenario *sc = c->sc;
	char f[128];
	TRY(want_object(c, root, "(top level)"));
	TRY(only_keys(c, root, "", top_keys));
	json_t *x;
	uint64_t n;
	if ((x = json_object_get(root, "schema"))) {
		TRY(get_num(c, x, "schema", 1000, &n));
		if (n != 1)
			return fail(c->err, SC_RANGE, "schema", "schema %" PRIu64 " is not supported (1 is)", n);
	}
	if ((x = json_object_get(root, "name"))) {
		if (!json_is_string(x))
			return fail(c->err, SC_TYPE, "name", "must be a string");
		if (json_string_length(x) >= sizeof sc->name) /* no cut inside a UTF-8 character */
			return fail(c->err, SC_RANGE, "name", "at most %zu bytes", sizeof sc->name - 1);
		snprintf(sc->name, sizeof sc->name, "%s", json_string_value(x));
	}
	if ((x = json_object_get(root, "description")) && !json_is_string(x))
		return fail(c->err, SC_TYPE, "description", "must be a string");
	if ((x = json_object_get(root, "round_trips"))) {
		TRY(get_num(c, x, "round_trips", 0xFFFFFFFFull, &n));
		sc->rounds = (uint32_t)n;
	}
	if ((x = json_object_get(root, "cs_wrap")))
		TRY(get_bool(c, x, "cs_wrap", &sc->cs_wrap));
	x = json_object_get(root, "shim");
	if (!x)
		return fail(c->err, SC_MISSING, "shim", "required: the shim page's linear address");
	TRY(get_num(c, x, "shim", 0xFFFFFFFFull, &n));
	sc->shim_lin = (uint32_t)n;
	if ((x = json_object_get(root, "phys_window"))) {
		TRY(want_object(c, x, "phys_window"));
		TRY(only_keys(c, x, "phys_window", window_keys));
		json_t *b = json_object_get(x, "base"), *s = json_object_get(x, "size");
		if (!b || !s)
			return fail(c->err, SC_MISSING, b ? "phys_window.size" : "phys_window.base", "required");
		TRY(get_num(c, b, "phys_window.base", 0xFFFFFFFFull, &sc->phys_base));
		TRY(get_num(c, s, "phys_window.size", 0xFFFFFFFFull, &sc->phys_size));
	}
	enum sc_paging pg = SC_4K;
	bool have_pg = false;
	if ((x = json_object_get(root, "paging"))) {
		TRY(get_paging(c, x, "paging", &pg));
		have_pg = true;
	}
	for (int s = 0; s < 2; s++) {
		sc->w[s].state.paging = pg;
		json_t *wv = json_object_get(root, sc_space_name((enum sc_space)s));
		if (!wv)
			return fail(c->err, SC_MISSING, sc_space_name((enum sc_space)s), "required");
		TRY(get_world(c, wv, (enum sc_space)s));
	}
	(void)have_pg;
	/* Second pass: maps, which may name any world's objects. */
	for (int s = 0; s < 2; s++) {
		json_t *wv = json_object_get(root, sc_space_name((enum sc_space)s));
		json_t *maps = json_object_get(wv, "maps");
		if (maps)
			TRY(get_maps(c, maps, join(f, sizeof f, sc_space_name((enum sc_space)s), "maps"),
				     sc->w[s].maps, &sc->w[s].nmaps));
	}
	json_t *guest = json_object_get(root, "guest");
	if (!guest)
		return fail(c->err, SC_MISSING, "guest", "required");
	TRY(want_object(c, guest, "guest"));
	TRY(only_keys(c, guest, "guest", guest_keys));
	x = json_object_get(guest, "shim_pte");
	if (!x)
		return fail(c->err, SC_MISSING, "guest.shim_pte", "required: the guest's entry at the shim address");
	TRY(get_map(c, x, "guest.shim_pte", false, &sc->guest_shim));
	sc->guest_shim.lin = sc->shim_lin;
	if ((x = json_object_get(guest, "maps")))
		TRY(get_maps(c, x, "guest.maps", sc->guest, &sc->nguest));
	/* What the guest reads when it runs: by default its page at the shim address. */
	sc->ntouch = 1;
	sc->touch[0] = sc->shim_lin;
	if ((x = json_object_get(guest, "touch"))) {
		if (!json_is_array(x) || json_array_size(x) < 1 || json_array_size(x) > SC_MAX_TOUCH)
			return fail(c->err, SC_TYPE, "guest.touch", "must be an array of 1..%d linear addresses", SC_MAX_TOUCH);
		size_t i;
		json_t *e;
		json_array_foreach(x, i, e) {
			char f[64];
			snprintf(f, sizeof f, "guest.touch[%zu]", i);
			TRY(get_linear(c, e, f, &sc->touch[i]));
		}
		sc->ntouch = (int)json_array_size(x);
	}
	return SC_OK;
}

enum sc_reason scenario_parse(const char *text, size_t len, struct scenario *sc, struct sc_error *err)
{
	struct ctx c = {sc, err};
	memset(err, 0, sizeof *err);
	defaults(sc);
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		char where[64];
		snprintf(where, sizeof where, "line %d, column %d", jerr.line, jerr.column);
		return fail(err, SC_JSON, where, "%s", jerr.text);
	}
	enum sc_reason r = parse_root(&c, root);
	json_decref(root);
	if (r != SC_OK)
		return r;
	return scenario_validate(sc, err);
}

enum sc_reason scenario_load(const char *path, struct scenario *sc, struct sc_error *err)
{
	memset(err, 0, sizeof *err);
	FILE *f = fopen(path, "rb");
	if (!f)
		return fail(err, SC_JSON, "(file)", "cannot open: %s", strerror(errno));
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len == cap) {
			if (cap >= (16u << 20)) {
				free(buf);
				fclose(f);
				return fail(err, SC_RANGE, "(file)", "larger than 16 MiB");
			}
			char *nb = realloc(buf, cap *= 2);
			if (!nb)
				free(buf);
			buf = nb;
		}
	}
	fclose(f);
	if (!buf)
		return fail(err, SC_JSON, "(file)", "out of memory");
	enum sc_reason r = scenario_parse(buf, len, sc, err);
	free(buf);
	return r;
}

/* ---- validation ------------------------------------------------------------------------- */

static uint32_t large_size(const struct scenario *sc, enum sc_space sp)
{
	return sc->w[sp].state.paging == SC_PAE ? PAE_LARGE : PSE_SIZE;
}

static bool covers(const struct sc_map *m, uint32_t lsize, uint32_t lin)
{
	uint32_t size = m->large ? lsize : PGSIZE;
	return (lin & ~(size - 1)) == m->lin;
}

static enum sc_reason check_frame(const struct scenario *sc, const struct sc_map *m, uint32_t lsize,
				  struct sc_error *err)
{
	char f[128];
	if (m->has_raw && (m->raw & PTE_P)) {
		/* A present verbatim entry maps real memory: it must exist (nothing is modelled
		 * outside the window; Unicorn has none there either), and it must have no reserved
		 * bit set (the model's walk does not model reserved-bit faults). */
		uint64_t size = m->large ? lsize : PGSIZE;
		bool pae = lsize == PAE_LARGE;
		uint64_t rsvd = pae ? (0x7FF0000000000000ull | (0x000FFFFFFFFFFFFFull & ~0x0000000FFFFFFFFFull) |
				       (m->large ? 0x1FE000ull : 0))  /* 52-62, MAXPHYADDR 36..51, 2M: 13-20 */
				    : (m->large ? 0x200000ull : 0);   /* 4M: bit 21 */
		if (m->raw & rsvd)
			return fail(err, SC_RANGE, join(f, sizeof f, m->field, "raw"),
				    "present entry 0x%" PRIx64 " sets reserved bits 0x%" PRIx64, m->raw, m->raw & rsvd);
		uint64_t frame = m->raw & PAE_ADDR_MASK & ~(size - 1);
		if (!pae && m->large) /* PSE-36: bits 13-20 are physical address bits 32-39 */
			frame = (m->raw & 0xFFC00000u) | ((m->raw >> 13) & 0xFFu) << 32;
		if (frame < sc->phys_base || frame + size > sc->phys_base + sc->phys_size)
			return fail(err, SC_WINDOW, join(f, sizeof f, m->field, "raw"),
				    "present entry 0x%" PRIx64 " maps 0x%" PRIx64 ", outside the window 0x%" PRIx64 "-0x%" PRIx64,
				    m->raw, frame, sc->phys_base, sc->phys_base + sc->phys_size);
		return SC_OK;
	}
	if (m->has_raw || m->to.kind != FR_RAW) {
		if (m->large && !m->has_raw && m->to.kind != FR_RAW)
			return fail(err, SC_PAGING, join(f, sizeof f, m->field, "to"),
				    "a large page needs a raw, aligned physical address");
		return SC_OK;
	}
	uint64_t size = m->large ? lsize : PGSIZE;
	if (m->to.raw & (size - 1))
		return fail(err, SC_RANGE, join(f, sizeof f, m->field, "to"), "0x%" PRIx64 " is not aligned to 0x%" PRIx64,
			    m->to.raw, size);
	if (m->to.raw < sc->phys_base || m->to.raw + size > sc->phys_base + sc->phys_size)
		return fail(err, SC_WINDOW, join(f, sizeof f, m->field, "to"),
			    "0x%" PRIx64 "+0x%" PRIx64 " is outside the window 0x%" PRIx64 "-0x%" PRIx64, m->to.raw, size,
			    sc->phys_base, sc->phys_base + sc->phys_size);
	return SC_OK;
}

static enum sc_reason check_map(const struct scenario *sc, enum sc_space sp, const struct sc_map *m,
				struct sc_error *err)
{
	char f[128];
	uint32_t lsize = large_size(sc, sp);
	uint32_t align = m->large ? lsize : PGSIZE;
	if (m->large && sc->w[sp].state.paging == SC_4K)
		return fail(err, SC_PAGING, join(f, sizeof f, m->field, "size"), "large pages need paging \"pse\" or \"pae\"");
	if (m->lin & (align - 1))
		return fail(err, SC_RANGE, join(f, sizeof f, m->field, "linear"), "0x%08x is not aligned to 0x%x", m->lin,
			    align);
	if (!m->has_raw && (m->flags_hi & PTE_NX_HI) && sc->w[sp].state.paging != SC_PAE)
		return fail(err, SC_RANGE, join(f, sizeof f, m->field, "flags"), "'n' (NX) needs PAE paging");
	/* Bit 63 is NX only with EFER.NXE=1; otherwise it is reserved and every access faults. */
	if (!m->has_raw && (m->flags_hi & PTE_NX_HI) && !sc->w[sp].state.efer_nxe)
		return fail(err, SC_RANGE, join(f, sizeof f, m->field, "flags"), "'n' (NX) needs efer_nxe in this space");
	if (m->has_raw && (m->raw & PTE_P) && (m->raw >> 63) && !sc->w[sp].state.efer_nxe)
		return fail(err, SC_RANGE, join(f, sizeof f, m->field, "raw"),
			    "bit 63 (NX) is reserved while efer_nxe is off in this space");
	if (m->has_raw && sc->w[sp].state.paging != SC_PAE && m->raw > 0xFFFFFFFFull)
		return fail(err, SC_RANGE, join(f, sizeof f, m->field, "raw"), "a 32-bit paging entry has 32 bits");
	return check_frame(sc, m, lsize, err);
}

/* Does linear page lin collide with a layout object or the shim in space sp? */
static const char *layout_at(const struct scenario *sc, enum sc_space sp, uint32_t lin, uint32_t size)
{
	int nobj = sp == SP_HOST ? OBJ_NWORLD : OBJ_NMON;
	for (int i = 0; i < nobj; i++)
		if ((sc->w[sp].lin[i] & ~(size - 1)) == lin)
			return obj_names[i];
	if ((sc->shim_lin & ~(size - 1)) == lin)
		return "shim";
	return NULL;
}

enum sc_reason scenario_validate(const struct scenario *sc, struct sc_error *err)
{
	char f[128];
	if (sc->rounds < 1 || sc->rounds > SC_MAX_ROUNDS)
		return fail(err, SC_RANGE, "round_trips", "%u is outside 1..%d", sc->rounds, SC_MAX_ROUNDS);
	if (sc->phys_base & 0x3FFFFF || sc->phys_size & 0x3FFFFF || sc->phys_size == 0)
		return fail(err, SC_RANGE, "phys_window", "base and size must be non-zero multiples of 4 MiB");
	/* Below 32 MiB and clear of the legacy hole, so QEMU and Bochs can hold the same image. */
	if (sc->phys_base < 0x100000 || sc->phys_base + sc->phys_size > (32u << 20))
		return fail(err, SC_WINDOW, "phys_window", "must lie within 1 MiB..32 MiB");
	if (sc->shim_lin & (PGSIZE - 1))
		return fail(err, SC_RANGE, "shim", "0x%08x is not page aligned", sc->shim_lin);
	for (int s = 0; s < 2; s++) {
		const struct sc_world *w = &sc->w[s];
		const char *sp = sc_space_name((enum sc_space)s);
		int nobj = s == SP_HOST ? OBJ_NWORLD : OBJ_NMON;
		if (w->state.ldtr != 0)
			return fail(err, SC_RANGE, join(f, sizeof f, sp, "state.ldtr"),
				    "LDTs are not modelled: ldtr must be 0");
		/* Field names are written only for a failure: the fuzzer validates every scenario. */
		for (int i = 0; i < nobj; i++) {
			char g[64];
			if (w->lin[i] & (PGSIZE - 1))
				return fail(err, SC_RANGE, field2(g, sizeof g, sp, "layout", obj_names[i]),
					    "0x%08x is not page aligned", w->lin[i]);
			if (w->lin[i] == sc->shim_lin)
				return fail(err, SC_OVERLAP, field2(g, sizeof g, sp, "layout", obj_names[i]),
					    "0x%08x is the shim page", w->lin[i]);
			for (int j = 0; j < i; j++)
				if (w->lin[j] == w->lin[i])
					return fail(err, SC_OVERLAP, field2(g, sizeof g, sp, "layout", obj_names[i]),
						    "0x%08x is also %s.layout.%s", w->lin[i], sp, obj_names[j]);
		}
		uint16_t sels[3] = {w->sel_cs, w->sel_ds, w->sel_tss};
		const char *seln[3] = {"cs", "ds", "tss"};
		for (int i = 0; i < 3; i++) {
			if (SEL_INDEX(sels[i]) == 0 || (sels[i] & (SEL_TI | 3)))
				return fail(err, SC_RANGE, field2(f, sizeof f, sp, "selectors", seln[i]),
					    "0x%04x: must be a GDT selector (TI=0, RPL=0), not null", sels[i]);
			if (sels[i] >= SHIM_SS_SEL)
				return fail(err, SC_RANGE, field2(f, sizeof f, sp, "selectors", seln[i]),
					    "0x%04x: 0x%x and 0x%x are the shim's own selectors", sels[i], SHIM_SS_SEL,
					    SHIM_CS_SEL);
			for (int j = 0; j < i; j++)
				if (sels[j] == sels[i])
					return fail(err, SC_OVERLAP, field2(f, sizeof f, sp, "selectors", seln[i]),
						    "0x%04x is also the %s selector", sels[i], seln[j]);
		}
		for (int i = 0; i < w->nmaps; i++) {
			const struct sc_map *m = &w->maps[i];
			uint32_t size = m->large ? large_size(sc, (enum sc_space)s) : PGSIZE;
			TRY(check_map(sc, (enum sc_space)s, m, err));
			const char *hit = layout_at(sc, (enum sc_space)s, m->lin, size);
			if (hit)
				return fail(err, SC_OVERLAP, join(f, sizeof f, m->field, "linear"),
					    "0x%08x is %s's %s", m->lin, sp, hit);
			for (int j = 0; j < i; j++)
				if (covers(&w->maps[j], large_size(sc, (enum sc_space)s), m->lin) ||
				    covers(m, large_size(sc, (enum sc_space)s), w->maps[j].lin))
					return fail(err, SC_OVERLAP, join(f, sizeof f, m->field, "linear"),
						    "0x%08x is also mapped by %s", m->lin, w->maps[j].field);
		}
	}
	if (sc->ntouch < 1 || sc->ntouch > SC_MAX_TOUCH)
		return fail(err, SC_RANGE, "guest.touch", "1..%d addresses", SC_MAX_TOUCH);
	for (int i = 0; i < sc->ntouch; i++) {
		if ((sc->touch[i] & 0xFFF) > 0xFFC)
			return fail(err, SC_RANGE, touch_field(f, sizeof f, i), "0x%08x: a dword read there would cross a page",
				    sc->touch[i]);
		/* The guest reads only its own present memory. */
		const struct sc_map *m = NULL;
		if ((sc->touch[i] & ~(PGSIZE - 1)) == sc->shim_lin)
			m = &sc->guest_shim;
		for (int j = 0; j < sc->nguest && !m; j++)
			if (covers(&sc->guest[j], large_size(sc, SP_MON), sc->touch[i]))
				m = &sc->guest[j];
		if (!m || (m->has_raw && !(m->raw & PTE_P)))
			return fail(err, SC_RANGE, touch_field(f, sizeof f, i), "0x%08x is not in a present guest mapping",
				    sc->touch[i]);
	}
	/* The guest's mappings live in the monitor space next to the monitor's own. */
	const struct sc_world *mw = &sc->w[SP_MON];
	uint32_t lsize = large_size(sc, SP_MON);
	TRY(check_frame(sc, &sc->guest_shim, lsize, err));
	if (sc->guest_shim.large && mw->state.paging == SC_4K)
		return fail(err, SC_PAGING, "guest.shim_pte.size", "large pages need paging \"pse\" or \"pae\"");
	if (sc->guest_shim.large) {
		struct sc_map big = sc->guest_shim;
		big.lin = sc->shim_lin & ~(lsize - 1);
		for (int i = 0; i < sc->nguest; i++)
			if (covers(&big, lsize, sc->guest[i].lin) || covers(&sc->guest[i], lsize, big.lin))
				return fail(err, SC_PAGING, join(f, sizeof f, sc->guest[i].field, "linear"),
					    "0x%08x lies under the guest's large page at the shim address", sc->guest[i].lin);
		for (int i = 0; i < OBJ_NMON; i++)
			if ((mw->lin[i] & ~(lsize - 1)) == big.lin)
				return fail(err, SC_PAGING, "guest.shim_pte.size",
					    "the large page would cover monitor.layout.%s", sc_obj_name(i));
		for (int i = 0; i < mw->nmaps; i++)
			if (covers(&big, lsize, mw->maps[i].lin) || covers(&mw->maps[i], lsize, big.lin))
				return fail(err, SC_PAGING, "guest.shim_pte.size", "the large page would cover %s",
					    mw->maps[i].field);
	}
	if (sc->guest_shim.has_raw && mw->state.paging != SC_PAE && sc->guest_shim.raw > 0xFFFFFFFFull)
		return fail(err, SC_RANGE, "guest.shim_pte.raw", "a 32-bit paging entry has 32 bits");
	if (!sc->guest_shim.has_raw && (sc->guest_shim.flags_hi & PTE_NX_HI) && mw->state.paging != SC_PAE)
		return fail(err, SC_RANGE, "guest.shim_pte.flags", "'n' (NX) needs PAE paging");
	if (!sc->guest_shim.has_raw && (sc->guest_shim.flags_hi & PTE_NX_HI) && !mw->state.efer_nxe)
		return fail(err, SC_RANGE, "guest.shim_pte.flags", "'n' (NX) needs efer_nxe in the monitor space");
	if (sc->guest_shim.has_raw && (sc->guest_shim.raw & PTE_P) && (sc->guest_shim.raw >> 63) && !mw->state.efer_nxe)
		return fail(err, SC_RANGE, "guest.shim_pte.raw", "bit 63 (NX) is reserved while efer_nxe is off");
	for (int i = 0; i < sc->nguest; i++) {
		const struct sc_map *m = &sc->guest[i];
		uint32_t size = m->large ? lsize : PGSIZE;
		TRY(check_map(sc, SP_MON, m, err));
		const char *hit = layout_at(sc, SP_MON, m->lin, size);
		if (hit)
			return fail(err, SC_OVERLAP, join(f, sizeof f, m->field, "linear"), "0x%08x is the monitor's %s",
				    m->lin, hit);
		for (int j = 0; j < mw->nmaps; j++)
			if (covers(&mw->maps[j], lsize, m->lin) || covers(m, lsize, mw->maps[j].lin))
				return fail(err, SC_OVERLAP, join(f, sizeof f, m->field, "linear"),
					    "0x%08x is also mapped by %s", m->lin, mw->maps[j].field);
		for (int j = 0; j < i; j++)
			if (covers(&sc->guest[j], lsize, m->lin) || covers(m, lsize, sc->guest[j].lin))
				return fail(err, SC_OVERLAP, join(f, sizeof f, m->field, "linear"),
					    "0x%08x is also mapped by %s", m->lin, sc->guest[j].field);
	}
	/* A large page in any space must not cover layout objects or the shim: they need PTEs. */
	for (int s = 0; s < 2; s++) {
		const struct sc_world *w = &sc->w[s];
		int nobj = s == SP_HOST ? OBJ_NWORLD : OBJ_NMON;
		const struct sc_map *all[2 * SC_MAX_MAPS];
		int n = 0;
		for (int i = 0; i < w->nmaps; i++)
			all[n++] = &w->maps[i];
		if (s == SP_MON)
			for (int i = 0; i < sc->nguest; i++)
				all[n++] = &sc->guest[i];
		for (int i = 0; i < n; i++) {
			if (!all[i]->large)
				continue;
			for (int o = 0; o <= nobj; o++) {
				uint32_t lin = o == nobj ? sc->shim_lin : w->lin[o];
				if (covers(all[i], large_size(sc, (enum sc_space)s), lin))
					return fail(err, SC_PAGING, join(f, sizeof f, all[i]->field, "linear"),
						    "the large page at 0x%08x covers %s (0x%08x), which needs a PTE",
						    all[i]->lin, o == nobj ? "the shim" : obj_names[o], lin);
			}
			/* ... nor other 4 KiB mappings of the same space. */
			for (int j = 0; j < n; j++)
				if (j != i && !all[j]->large && covers(all[i], large_size(sc, (enum sc_space)s), all[j]->lin))
					return fail(err, SC_PAGING, join(f, sizeof f, all[j]->field, "linear"),
						    "0x%08x lies under the large page of %s", all[j]->lin, all[i]->field);
		}
	}
	return SC_OK;
}

enum sc_reason scenario_check_unswitched(const struct scenario *sc, const struct sc_switches *sw,
					 struct sc_error *err)
{
	const struct sc_state *h = &sc->w[SP_HOST].state, *m = &sc->w[SP_MON].state;
	static const char *const pg[] = {"4k", "pse", "pae"};
	if (!sw->paging && h->paging != m->paging)
		return fail(err, SC_UNSWITCHED, "monitor.state.paging",
			    "host pages with \"%s\", monitor with \"%s\": the variant does not switch CR4.PSE/PAE",
			    pg[h->paging], pg[m->paging]);
	if (!sw->cr0_wp && h->cr0_wp != m->cr0_wp)
		return fail(err, SC_UNSWITCHED, "monitor.state.cr0_wp", "host %d, monitor %d: the variant does not switch CR0.WP",
			    h->cr0_wp, m->cr0_wp);
	if (!sw->cr4_pge && h->cr4_pge != m->cr4_pge)
		return fail(err, SC_UNSWITCHED, "monitor.state.cr4_pge",
			    "host %d, monitor %d: the variant does not switch CR4.PGE", h->cr4_pge, m->cr4_pge);
	if (!sw->efer_nxe && h->efer_nxe != m->efer_nxe)
		return fail(err, SC_UNSWITCHED, "monitor.state.efer_nxe",
			    "host %d, monitor %d: the variant does not switch EFER.NXE", h->efer_nxe, m->efer_nxe);
	if (!sw->ldtr && h->ldtr != m->ldtr)
		return fail(err, SC_UNSWITCHED, "monitor.state.ldtr", "host 0x%x, monitor 0x%x: the variant does not switch LDTR",
			    h->ldtr, m->ldtr);
	if (!sw->pde_swap) {
		if (sc->guest_shim.large)
			return fail(err, SC_PAGING, "guest.shim_pte.size",
				    "the variant remaps the shim page by one PTE: a large guest page there needs a PDE swap");
		return SC_OK;
	}
	/* A PDE swap replaces everything the monitor space maps in the shim's PDE region. */
	uint32_t region = m->paging == SC_PAE ? PAE_LARGE : PSE_SIZE;
	uint32_t base = sc->shim_lin & ~(region - 1);
	const struct sc_world *mw = &sc->w[SP_MON];
	for (int i = 0; i < OBJ_NMON; i++)
		if ((mw->lin[i] & ~(region - 1)) == base) {
			char f[64];
			snprintf(f, sizeof f, "monitor.layout.%s", sc_obj_name(i));
			return fail(err, SC_OVERLAP, f, "0x%08x shares the page-directory entry of the shim (0x%08x), which the "
				    "variant swaps", mw->lin[i], sc->shim_lin);
		}
	for (int i = 0; i < mw->nmaps; i++) {
		uint32_t size = mw->maps[i].large ? region : PGSIZE;
		if (mw->maps[i].lin - base < region || base - mw->maps[i].lin < size) {
			char f[128];
			return fail(err, SC_OVERLAP, join(f, sizeof f, mw->maps[i].field, "linear"),
				    "0x%08x shares the page-directory entry of the shim (0x%08x), which the variant swaps",
				    mw->maps[i].lin, sc->shim_lin);
		}
	}
	return SC_OK;
}
