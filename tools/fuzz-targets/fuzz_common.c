/*
 * fuzz_common.c: input decoders for the fuzz targets (see fuzz_common.h).
 *
 * Nothing here depends on a fuzzing engine: the same code runs under libFuzzer, AFL++, and
 * plain gcc in the corpus replay test.
 */
#include "fuzz_common.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../shim/shim_abi.h"
#include "code.h"
#include "gen.h"
#include "mmu.h"
#include "pipeline.h"

char fz_outcome[FZ_OUTCOME_MAX];

/* LeakSanitizer reads this at start-up: the same rule as tests/lsan.supp (Unicorn frees its
 * translation-block bookkeeping only at uc_close, or never), built in so that a fuzz target
 * copied to another machine (OSS-Fuzz, ClusterFuzzLite) needs no LSAN_OPTIONS. Our own
 * frames are always checked. Without a sanitizer nothing calls it. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libunicorn.so\n"; }

static void outcome(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fz_outcome, sizeof fz_outcome, fmt, ap);
	va_end(ap);
}

static void manifest_cleanup(void);

/* A contract broke: say what and on which input class, then abort() so that every engine
 * files the input as a crash. abort() skips atexit: fuzz_manifest's directory goes first. */
static void finding(const char *target, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: FINDING: ", target);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	manifest_cleanup();
	abort();
}

static bool terminated(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

void fz_shim_root(char *out, size_t n)
{
	const char *env = getenv("SHIMCHECK_SHIM_DIR");
	if (env && *env) {
		snprintf(out, n, "%s", env);
		return;
	}
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k > 0) {
		exe[k] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char probe[PATH_MAX + 64];
			snprintf(probe, sizeof probe, "%s/shim/hardened/manifest.json", exe);
			if (access(probe, R_OK) == 0) {
				snprintf(out, n, "%s/shim", exe);
				return;
			}
		}
	}
	snprintf(out, n, "%s", SHIMCHECK_SHIM_DIR);
}

/* ---- scenarios ------------------------------------------------------------------------------ */

static bool same_frame(const struct sc_frame *a, const struct sc_frame *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case FR_RAW: return a->raw == b->raw;
	case FR_WORLD: return a->sp == b->sp && a->obj == b->obj;
	case FR_GUEST: return a->obj == b->obj;
	case FR_SHIM:
	case FR_NONE: return true;
	}
	return false;
}

/* The fields a mapping carries in a file; the frame only when the entry is not raw. */
static bool same_map(const struct sc_map *a, const struct sc_map *b, const char *path, char *what, size_t n)
{
	const char *f = NULL;
	if (a->lin != b->lin)
		f = "linear";
	else if (a->large != b->large)
		f = "size";
	else if (a->has_raw != b->has_raw || (a->has_raw && a->raw != b->raw))
		f = "raw";
	else if (!a->has_raw && !same_frame(&a->to, &b->to))
		f = "to";
	else if (!a->has_raw && (a->flags != b->flags || a->flags_hi != b->flags_hi))
		f = "flags";
	else if (strcmp(a->field, b->field) != 0)
		f = "(field path used in messages)";
	if (f)
		snprintf(what, n, "%s.%s", path, f);
	return f == NULL;
}

bool fz_same_scenario(const struct scenario *a, const struct scenario *b, char *what, size_t n)
{
	char p[64];
#define DIFF(cond, ...)                                  \
	do {                                             \
		if (cond) {                              \
			snprintf(what, n, __VA_ARGS__);  \
			return false;                    \
		}                                        \
	} while (0)
	DIFF(strcmp(a->name, b->name) != 0, "name (\"%s\" vs \"%s\")", a->name, b->name);
	DIFF(a->rounds != b->rounds, "round_trips (%u vs %u)", a->rounds, b->rounds);
	DIFF(a->shim_lin != b->shim_lin, "shim");
	DIFF(a->cs_wrap != b->cs_wrap, "cs_wrap");
	DIFF(a->phys_base != b->phys_base || a->phys_size != b->phys_size, "phys_window");
	for (int s = 0; s < 2; s++) {
		const struct sc_world *x = &a->w[s], *y = &b->w[s];
		const char *sp = sc_space_name((enum sc_space)s);
		DIFF(x->state.paging != y->state.paging, "%s.state.paging", sp);
		DIFF(x->state.cr0_wp != y->state.cr0_wp, "%s.state.cr0_wp", sp);
		DIFF(x->state.cr4_pge != y->state.cr4_pge, "%s.state.cr4_pge", sp);
		DIFF(x->state.efer_nxe != y->state.efer_nxe, "%s.state.efer_nxe", sp);
		DIFF(x->state.ldtr != y->state.ldtr, "%s.state.ldtr", sp);
		int nobj = s == SP_HOST ? OBJ_NWORLD : OBJ_NMON;
		for (int i = 0; i < nobj; i++)
			DIFF(x->lin[i] != y->lin[i], "%s.layout.%s", sp, sc_obj_name(i));
		DIFF(x->sel_cs != y->sel_cs || x->sel_ds != y->sel_ds || x->sel_tss != y->sel_tss, "%s.selectors", sp);
		DIFF(x->nmaps != y->nmaps, "%s.maps (%d vs %d entries)", sp, x->nmaps, y->nmaps);
		for (int i = 0; i < x->nmaps; i++) {
			snprintf(p, sizeof p, "%s.maps[%d]", sp, i);
			if (!same_map(&x->maps[i], &y->maps[i], p, what, n))
				return false;
		}
	}
	if (!same_map(&a->guest_shim, &b->guest_shim, "guest.shim_pte", what, n))
		return false;
	DIFF(a->nguest != b->nguest, "guest.maps (%d vs %d entries)", a->nguest, b->nguest);
	for (int i = 0; i < a->nguest; i++) {
		snprintf(p, sizeof p, "guest.maps[%d]", i);
		if (!same_map(&a->guest[i], &b->guest[i], p, what, n))
			return false;
	}
	DIFF(a->ntouch != b->ntouch, "guest.touch (%d vs %d entries)", a->ntouch, b->ntouch);
	for (int i = 0; i < a->ntouch; i++)
		DIFF(a->touch[i] != b->touch[i], "guest.touch[%d]", i);
#undef DIFF
	return true;
}

/* The error a rejection carries must be well formed: it is printed as is by the CLI. */
static void check_error(const char *target, enum sc_reason r, const struct sc_error *err)
{
	if (r >= SC_NREASONS)
		finding(target, "scenario_parse returned %d, outside the closed list of reasons", (int)r);
	if (r != SC_OK && err->reason != r)
		finding(target, "returned reason %s but the error says %s", sc_reason_name(r), sc_reason_name(err->reason));
	if (!terminated(err->field, sizeof err->field) || !terminated(err->detail, sizeof err->detail))
		finding(target, "the error's field or detail is not NUL-terminated");
	/* An empty field is legitimate: "" is a valid JSON key, and an unknown one. */
}

void fz_scenario_one(const uint8_t *data, size_t size)
{
	/* static: a struct scenario is tens of KiB */
	static struct scenario a, b;
	struct sc_error err, err2;
	enum sc_reason r = scenario_parse((const char *)data, size, &a, &err);
	check_error("fuzz_scenario", r, &err);
	if (r != SC_OK) {
		outcome("rejected:%s", sc_reason_name(r));
		return;
	}
	/* What the fuzzer and the property tests write must read back as the same scenario:
	 * findings are only useful if `shimcheck run` replays exactly what was found. */
	char *json = scenario_to_json(&a, "fuzz_scenario round trip");
	if (!json)
		finding("fuzz_scenario", "scenario_to_json returned NULL for an accepted scenario");
	enum sc_reason r2 = scenario_parse(json, strlen(json), &b, &err2);
	if (r2 != SC_OK) {
		fprintf(stderr, "%s\n", json);
		finding("fuzz_scenario", "scenario_to_json wrote a file that is rejected: %s: %s: %s", sc_reason_name(r2),
			err2.field, err2.detail);
	}
	char what[160];
	if (!fz_same_scenario(&a, &b, what, sizeof what)) {
		fprintf(stderr, "%s\n", json);
		finding("fuzz_scenario", "scenario_to_json -> scenario_parse changes %s", what);
	}
	free(json);
	outcome("ok");
}

/* ---- manifests ------------------------------------------------------------------------------ */

static char mdir[PATH_MAX];
static bool mdir_made;
static pid_t mdir_owner; /* a forked child (the corpus replay's) must leave it to its parent */
static char mpath[PATH_MAX + 32];

/* Files the private code directory holds besides manifest.json: the three real binaries
 * and a few whose sizes sit on the loader's limits, so that a manifest naming them reaches
 * each size check (empty, shorter than the parameter block, no magic, one byte over). */
struct extra {
	const char *name;
	const char *copy_of; /* a hardened binary, or NULL */
	size_t size;         /* bytes to write: a prefix of copy_of, or that many 0xCC */
};
static const struct extra extras[] = {
	{"host.bin", "host.bin", 0},      {"monitor.bin", "monitor.bin", 0}, {"shim.bin", "shim.bin", 0},
	{"empty.bin", NULL, 0},           {"short.bin", "host.bin", PB_SIZE - 1}, {"nomagic.bin", NULL, 64},
	{"big.bin", NULL, SHIM_PAGE_SIZE + 1},
};

static void manifest_cleanup(void)
{
	if (!mdir_made || getpid() != mdir_owner)
		return;
	mdir_made = false;
	char p[PATH_MAX + 64];
	for (size_t i = 0; i < sizeof extras / sizeof extras[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", mdir, extras[i].name);
		unlink(p);
	}
	unlink(mpath);
	rmdir(mdir);
}

static bool write_all(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return false;
	bool ok = fwrite(buf, 1, n, f) == n;
	return fclose(f) == 0 && ok;
}

static bool make_extra(const char *src_dir, const struct extra *x)
{
	char src[PATH_MAX + 64], dst[PATH_MAX + 64];
	snprintf(dst, sizeof dst, "%s/%s", mdir, x->name);
	static uint8_t buf[2 * SHIM_PAGE_SIZE];
	size_t n = x->size;
	if (x->copy_of) {
		snprintf(src, sizeof src, "%s/%s", src_dir, x->copy_of);
		FILE *f = fopen(src, "rb");
		if (!f) {
			fprintf(stderr, "fuzz_manifest: %s: cannot read: %s\n", src, strerror(errno));
			return false;
		}
		size_t got = fread(buf, 1, sizeof buf, f);
		fclose(f);
		n = x->size && x->size < got ? x->size : got;
	} else {
		memset(buf, 0xCC, n);
	}
	if (!write_all(dst, buf, n)) {
		fprintf(stderr, "fuzz_manifest: %s: cannot write: %s\n", dst, strerror(errno));
		return false;
	}
	return true;
}

bool fz_manifest_init(void)
{
	char root[PATH_MAX], src[PATH_MAX + 16];
	fz_shim_root(root, sizeof root);
	snprintf(src, sizeof src, "%s/hardened", root);
	const char *tmp = getenv("TMPDIR");
	snprintf(mdir, sizeof mdir, "%s/shimcheck-fuzz-manifest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(mdir)) {
		fprintf(stderr, "fuzz_manifest: %s: mkdtemp: %s\n", mdir, strerror(errno));
		return false;
	}
	mdir_made = true;
	mdir_owner = getpid();
	snprintf(mpath, sizeof mpath, "%s/manifest.json", mdir);
	atexit(manifest_cleanup);
	for (size_t i = 0; i < sizeof extras / sizeof extras[0]; i++)
		if (!make_extra(src, &extras[i]))
			return false;
	return true;
}

/* An accepted code directory must keep what the rest of the tool relies on without
 * re-checking: every binary present and within its slot, entry points inside their
 * binaries, orders of known events, symbols inside their binaries. */
static void check_code(const struct shim_code *c)
{
	for (int k = 0; k < CB_N; k++) {
		const struct code_bin *b = &c->bin[k];
		if (!b->bytes || b->size == 0 || b->size > b->slot || b->slot > SHIM_PAGE_SIZE)
			finding("fuzz_manifest", "accepted binary %d: bytes %p, size %zu, slot %zu", k, (void *)b->bytes,
				b->size, b->slot);
	}
	if (c->bin[CB_SHIM].size != SHIM_PAGE_SIZE)
		finding("fuzz_manifest", "accepted a shim of %zu bytes", c->bin[CB_SHIM].size);
	/* ENTRY_ABSENT: an optional entry point the manifest leaves out (the loader decides which). */
	for (int e = 0; e < EP_N; e++)
		if (c->entry[e] != ENTRY_ABSENT && c->entry[e] >= c->bin[entry_bin((enum entry)e)].size)
			finding("fuzz_manifest", "entry point %s at %u lies outside its binary", entry_name((enum entry)e),
				c->entry[e]);
	for (int d = 0; d < 2; d++) {
		if (c->norder[d] < 1 || c->norder[d] > SWE_N)
			finding("fuzz_manifest", "order[%d] has %d events", d, c->norder[d]);
		for (int i = 0; i < c->norder[d]; i++)
			if ((unsigned)c->order[d][i] >= SWE_N)
				finding("fuzz_manifest", "order[%d][%d] = %d is no event", d, i, (int)c->order[d][i]);
	}
	if (c->nsyms < 0 || c->nsyms > CODE_MAX_SYMS)
		finding("fuzz_manifest", "%d symbols", c->nsyms);
	for (int i = 0; i < c->nsyms; i++)
		if ((unsigned)c->syms[i].bin >= CB_N || c->syms[i].off >= c->bin[c->syms[i].bin].size ||
		    !terminated(c->syms[i].name, sizeof c->syms[i].name))
			finding("fuzz_manifest", "symbol %d lies outside its binary", i);
	if (c->abi != SHIM_ABI_VERSION || !c->variant[0] || !terminated(c->variant, sizeof c->variant))
		finding("fuzz_manifest", "accepted abi %d, variant of %zu bytes", c->abi, strnlen(c->variant, sizeof c->variant));
}

void fz_manifest_one(const uint8_t *data, size_t size)
{
	static struct shim_code c; /* large */
	char err[640];
	if (!write_all(mpath, data, size)) {
		/* Not the loader's fault: the disk. Stop, rather than report inputs as findings. */
		fprintf(stderr, "fuzz_manifest: %s: cannot write: %s\n", mpath, strerror(errno));
		exit(3);
	}
	err[0] = '\0';
	if (code_load(mdir, &c, err, sizeof err)) {
		check_code(&c);
		code_free(&c);
		outcome("ok");
		return;
	}
	if (!err[0] || !terminated(err, sizeof err))
		finding("fuzz_manifest", "code_load failed without a message");
	/* code_load frees what it read before failing; a leak here would repeat on every load. */
	for (int k = 0; k < CB_N; k++)
		if (c.bin[k].bytes)
			finding("fuzz_manifest", "code_load failed and kept binary %d", k);
	/* "DIR/FILE: FIELD: what" -> "rejected:FILE:FIELD" */
	const char *file = err;
	size_t dl = strlen(mdir);
	if (strncmp(err, mdir, dl) == 0 && err[dl] == '/')
		file = err + dl + 1;
	const char *sep = strstr(file, ": ");
	if (!sep)
		finding("fuzz_manifest", "message \"%s\" is not FILE: FIELD: what", err);
	const char *field = sep + 2, *end = strstr(field, ": ");
	outcome("rejected:%.*s:%.*s", (int)(sep - file), file, end ? (int)(end - field) : (int)strlen(field), field);
}

/* ---- generated scenarios with overrides ------------------------------------------------------ */

struct rd {
	const uint8_t *p, *end;
};

static bool more(const struct rd *r) { return r->p < r->end; }
static uint32_t rd8(struct rd *r) { return r->p < r->end ? *r->p++ : 0; }
/* Little endian; one statement per byte, since the order of evaluation of a | b is unspecified. */
static uint32_t rd16(struct rd *r)
{
	uint32_t lo = rd8(r);
	return lo | rd8(r) << 8;
}
static uint32_t rd32(struct rd *r)
{
	uint32_t lo = rd16(r);
	return lo | rd16(r) << 16;
}
/* A linear page: 20 bits of page number. */
static uint32_t rd_page(struct rd *r)
{
	uint32_t lo = rd16(r);
	return ((lo | rd8(r) << 16) & 0xFFFFFu) << PGSHIFT;
}

/* A physical frame with a name in the file format: no host.shim_alias/pt_window (the host
 * has none), and monitor.shim_alias spelled as the shim itself. */
static void rd_frame(struct rd *r, struct sc_frame *fr)
{
	uint32_t k = rd8(r);
	memset(fr, 0, sizeof *fr);
	switch (k % 4) {
	case 0:
		fr->kind = FR_RAW;
		fr->raw = (uint64_t)rd_page(r) & 0xFFFFFFFFFull;
		break;
	case 1:
		fr->kind = FR_WORLD;
		fr->sp = (k >> 2) & 1 ? SP_MON : SP_HOST;
		fr->obj = (int)((k >> 3) % (fr->sp == SP_HOST ? OBJ_NWORLD : OBJ_NMON));
		if (fr->sp == SP_MON && fr->obj == MOBJ_SHIM_ALIAS)
			fr->kind = FR_SHIM, fr->sp = SP_HOST, fr->obj = 0;
		break;
	case 2: fr->kind = FR_SHIM; break;
	default:
		fr->kind = FR_GUEST;
		fr->obj = (int)((k >> 2) % SC_GUEST_PAGES);
		break;
	}
}

static uint32_t rd_flags(uint32_t b, uint32_t *hi)
{
	static const uint32_t bits[7] = {PTE_W, PTE_U, PTE_A, PTE_D, PTE_G, PTE_PWT, PTE_PCD};
	uint32_t f = 0;
	for (int i = 0; i < 7; i++)
		if (b & (1u << i))
			f |= bits[i];
	*hi = b & 0x80 ? PTE_NX_HI : 0;
	return f;
}

/* Rewrite one mapping from the input. field stays what it was (its place in the file). */
static void rd_map(struct rd *r, struct sc_map *m, bool with_lin)
{
	uint32_t ctl = rd8(r);
	char field[SC_NAME_MAX];
	memcpy(field, m->field, sizeof field);
	uint32_t lin = m->lin;
	memset(m, 0, sizeof *m);
	memcpy(m->field, field, sizeof field);
	m->lin = with_lin ? rd_page(r) : lin;
	m->large = ctl & 1;
	if (ctl & 2) {
		m->has_raw = true;
		m->raw = rd32(r);
		if (ctl & 4)
			m->raw |= (uint64_t)rd32(r) << 32;
		return;
	}
	rd_frame(r, &m->to);
	m->flags = rd_flags(rd8(r), &m->flags_hi);
}

static struct sc_map *pick_map(struct sc_map *maps, int *n, uint32_t b, const char *what, bool add)
{
	if (add && *n < SC_MAX_MAPS && b % (unsigned)(*n + 1) == (unsigned)*n) {
		struct sc_map *m = &maps[(*n)++];
		memset(m, 0, sizeof *m);
		snprintf(m->field, sizeof m->field, "%s[%d]", what, *n - 1);
		return m;
	}
	return *n ? &maps[b % (unsigned)*n] : NULL;
}

static void drop_map(struct sc_map *maps, int *n, uint32_t b, const char *what)
{
	if (*n == 0)
		return;
	int i = (int)(b % (unsigned)*n);
	memmove(&maps[i], &maps[i + 1], sizeof maps[0] * (size_t)(*n - i - 1));
	(*n)--;
	/* Later entries moved up: their paths in messages follow their new places. */
	for (int j = i; j < *n; j++)
		snprintf(maps[j].field, sizeof maps[j].field, "%s[%d]", what, j);
}

static void apply_overrides(struct rd *r, struct scenario *sc)
{
	static const char *const mname[2] = {"host.maps", "monitor.maps"};
	while (more(r)) {
		uint32_t op = rd8(r);
		uint32_t b = rd8(r);
		int s = (int)(b & 1);
		struct sc_world *w = &sc->w[s];
		struct sc_map *m;
		switch (op % 16) {
		case 0: sc->rounds = 1 + b % 8; break; /* more rounds only slow the run down */
		case 1: sc->shim_lin = rd_page(r); break;
		case 2: sc->cs_wrap = !sc->cs_wrap; break;
		case 3:
			switch ((b >> 1) % 5) {
			case 0: w->state.paging = (enum sc_paging)(rd8(r) % 3); break;
			case 1: w->state.cr0_wp = !w->state.cr0_wp; break;
			case 2: w->state.cr4_pge = !w->state.cr4_pge; break;
			case 3: w->state.efer_nxe = !w->state.efer_nxe; break;
			default: w->state.ldtr = (uint16_t)rd16(r); break;
			}
			break;
		case 4: w->lin[(b >> 1) % (s == SP_HOST ? OBJ_NWORLD : OBJ_NMON)] = rd_page(r); break;
		case 5: {
			uint16_t v = (uint16_t)rd16(r);
			uint16_t *sel[3] = {&w->sel_cs, &w->sel_ds, &w->sel_tss};
			*sel[(b >> 1) % 3] = v;
			break;
		}
		case 6:
			if ((m = pick_map(sc->guest, &sc->nguest, b, "guest.maps", true)))
				rd_map(r, m, true);
			break;
		case 7: drop_map(sc->guest, &sc->nguest, b, "guest.maps"); break;
		case 8: rd_map(r, &sc->guest_shim, false); break;
		case 9:
			if ((m = pick_map(w->maps, &w->nmaps, b >> 1, mname[s], true)))
				rd_map(r, m, true);
			break;
		case 10: drop_map(w->maps, &w->nmaps, b >> 1, mname[s]); break;
		case 11:
			if (sc->ntouch < SC_MAX_TOUCH && b % (unsigned)(sc->ntouch + 1) == (unsigned)sc->ntouch)
				sc->touch[sc->ntouch++] = rd32(r);
			else if (sc->ntouch)
				sc->touch[b % (unsigned)sc->ntouch] = rd32(r);
			break;
		case 12:
			if (sc->ntouch) {
				int i = (int)(b % (unsigned)sc->ntouch);
				memmove(&sc->touch[i], &sc->touch[i + 1], sizeof sc->touch[0] * (size_t)(sc->ntouch - i - 1));
				sc->ntouch--;
			}
			break;
		case 13:
			sc->phys_base = (uint64_t)(b % 8) << 22;
			sc->phys_size = (uint64_t)(rd8(r) % 8 + 1) << 22;
			break;
		case 14: {
			/* Collisions on purpose: put a mapping exactly on a layout object or the shim. */
			int obj = (int)((b >> 1) % (OBJ_NMON + 1));
			int from = (int)((b >> 4) & 1);
			if (from == SP_HOST && obj >= OBJ_NWORLD && obj < OBJ_NMON)
				obj = OBJ_NMON;
			uint32_t lin = obj == OBJ_NMON ? sc->shim_lin : sc->w[from].lin[obj];
			uint32_t k = rd8(r);
			if (k & 1)
				m = pick_map(sc->guest, &sc->nguest, k >> 1, "guest.maps", false);
			else
				m = pick_map(sc->w[(k >> 1) & 1].maps, &sc->w[(k >> 1) & 1].nmaps, k >> 2, mname[(k >> 1) & 1],
					     false);
			if (m)
				m->lin = lin;
			break;
		}
		default:
			/* The guest reads a page it maps: point a touch into the mapping just chosen. */
			if (sc->nguest && sc->ntouch) {
				uint32_t t = rd8(r) % (unsigned)sc->ntouch;
				sc->touch[t] = sc->guest[b % (unsigned)sc->nguest].lin + 4 * (rd16(r) % 1024);
			}
			break;
		}
	}
	/* The parser keeps the guest's shim entry at the shim address; so does every writer. */
	sc->guest_shim.lin = sc->shim_lin;
}

enum sc_reason fz_decode_scenario(const uint8_t *data, size_t size, struct scenario *sc, struct sc_error *err)
{
	size_t i = 0;
	while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
		i++;
	if (i < size && data[i] == '{')
		return scenario_parse((const char *)data, size, sc, err);
	uint64_t seed = 0;
	for (size_t k = 0; k < 8 && k < size; k++)
		seed |= (uint64_t)data[k] << (8 * k);
	struct rng g = {seed};
	static struct scenario made;
	gen_scenario(&g, &made);
	struct rd r = {data + (size < 8 ? size : 8), data + size};
	apply_overrides(&r, &made);
	/* Through the file format: the parser's own checks apply (some live only there, such
	 * as the frames it refuses to name), and every accepted input is a scenario file that
	 * `shimcheck run` replays as is. */
	char *json = scenario_to_json(&made, NULL);
	if (!json)
		finding("fz_decode_scenario", "scenario_to_json returned NULL");
	enum sc_reason rr = scenario_parse(json, strlen(json), sc, err);
	free(json);
	return rr;
}

/* ---- the pipeline ---------------------------------------------------------------------------- */

static struct pipeline P;
static char code_dir[PATH_MAX + 16];

static void print_verdict(const char *what, const struct pipeline *p, enum pl_status st)
{
	fprintf(stderr, "%s: status %d, %d violation(s)%s%s\n", what, (int)st, p->v.n, st == PL_INTERNAL ? ": " : "",
		st == PL_INTERNAL ? p->err : "");
	for (int i = 0; st == PL_VIOLATION && i < p->v.n && i < MAX_VIOLATIONS && i < 10; i++)
		fprintf(stderr, "%s %s\n", rule_id(p->v.v[i].rule), p->v.v[i].msg);
}

/* The same scenario on a new engine. The pipeline's engine lives across inputs, so a
 * verdict that differs here is a finding of its own: state leaking from earlier runs. */
static void rerun_fresh(const struct scenario *sc, enum pl_status st)
{
	static struct pipeline q;
	pl_init(&q);
	enum pl_status fs = pl_load_code(&q, code_dir);
	if (fs == PL_OK)
		fs = pl_set_scenario(&q, sc, "fuzz input");
	if (fs == PL_OK)
		fs = pl_run(&q);
	print_verdict("the same scenario on a fresh engine", &q, fs);
	bool same = fs == st && q.v.n == P.v.n && (st != PL_VIOLATION || q.v.v[0].rule == P.v.v[0].rule);
	pl_free(&q);
	if (!same)
		finding("fuzz_pipeline", "the verdict depends on the engine's history (reused: status %d, fresh: status %d)",
			(int)st, (int)fs);
}

static void report_run(const struct scenario *sc, enum pl_status st)
{
	char *json = scenario_to_json(sc, "fuzz_pipeline finding");
	fprintf(stderr, "scenario (replay: shimcheck run --variant hardened --scenario FILE):\n%s\n", json ? json : "(none)");
	free(json);
	print_verdict("hardened, on the engine reused across inputs", &P, st);
	rerun_fresh(sc, st);
	if (st == PL_VIOLATION)
		finding("fuzz_pipeline", "hardened reports %d violation(s) on an accepted scenario", P.v.n);
	finding("fuzz_pipeline", "pl_run status %d on an accepted scenario: %s", (int)st, P.err);
}

/* Returns the status that stops the process (77 no engine), else 0. */
static int run_one(const struct scenario *sc)
{
	enum pl_status st = pl_set_scenario(&P, sc, "fuzz input");
	if (st == PL_INPUT) {
		const char *why = strstr(P.err, "(rejected: ");
		if (!why)
			finding("fuzz_pipeline", "rejection without a reason: %s", P.err);
		outcome("rejected:%.*s", (int)strcspn(why + 11, ")"), why + 11);
		return 0;
	}
	if (st == PL_OK)
		st = pl_run(&P);
	if (st == PL_UNAVAILABLE)
		return 77;
	if (st != PL_OK)
		report_run(sc, st);
	outcome("pass");
	return 0;
}

int fz_pipeline_init(bool warm)
{
	char root[PATH_MAX];
	fz_shim_root(root, sizeof root);
	snprintf(code_dir, sizeof code_dir, "%s/hardened", root);
	pl_init(&P);
	if (pl_load_code(&P, code_dir) != PL_OK) {
		fprintf(stderr, "fuzz_pipeline: %s\n", P.err);
		return 2;
	}
	if (!warm)
		return 0;
	/* The first accepted generated scenario opens the engine. */
	static struct scenario sc;
	for (uint64_t seed = 1; seed < 64; seed++) {
		struct rng g = {seed};
		gen_scenario(&g, &sc);
		if (pl_set_scenario(&P, &sc, "warm-up") != PL_OK)
			continue;
		int rc = run_one(&sc);
		if (rc)
			fprintf(stderr, "fuzz_pipeline: %s\n", P.err);
		return rc;
	}
	fprintf(stderr, "fuzz_pipeline: no generated scenario accepted for the warm-up\n");
	return 3;
}

void fz_pipeline_one(const uint8_t *data, size_t size)
{
	static struct scenario sc;
	struct sc_error err;
	enum sc_reason r = fz_decode_scenario(data, size, &sc, &err);
	if (r != SC_OK) {
		outcome("rejected:%s", sc_reason_name(r));
		return;
	}
	if (run_one(&sc) == 77) {
		fprintf(stderr, "fuzz_pipeline: %s\n", P.err);
		exit(77);
	}
}
