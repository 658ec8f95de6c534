/*
 * diff.c: trace-to-trace and run-to-run comparison (see diff.h).
 *
 * The JSONL side works on the file only (json_equal per object), so it can compare traces
 * from other builds, other machines, or a golden file; the pipeline side reads the traces in
 * memory and the image, and so can find the switch windows.
 */
#include "diff.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define COLW 58 /* one side of a side-by-side row */

static void side(FILE *out, bool differ, const char *l, const char *r)
{
	fprintf(out, "%s %-*.*s | %s\n", differ ? "!=" : "  ", COLW, COLW, l, r);
}

/* ---- JSONL traces --------------------------------------------------------------------------- */

struct jev {
	size_t insn;
	json_t *ev; /* borrowed from the insn object */
};

struct jtrace {
	const char *path;
	json_t *header, *end;
	json_t **insn, **viol;
	size_t ninsn, capinsn, nviol, capviol;
	struct jev *ev;
	size_t nev, capev;
};

static bool grow(void **p, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return true;
	size_t c = *cap ? 2 * *cap : 256;
	void *q = realloc(*p, c * elem);
	if (!q)
		return false;
	*p = q;
	*cap = c;
	return true;
}

static void jt_free(struct jtrace *t)
{
	json_decref(t->header);
	json_decref(t->end);
	for (size_t i = 0; i < t->ninsn; i++)
		json_decref(t->insn[i]);
	for (size_t i = 0; i < t->nviol; i++)
		json_decref(t->viol[i]);
	free(t->insn);
	free(t->viol);
	free(t->ev);
	memset(t, 0, sizeof *t);
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* Read a trace; on failure print "FILE:LINE: what" and return false. */
static bool jt_load(struct jtrace *t, const char *path, FILE *out)
{
	memset(t, 0, sizeof *t);
	t->path = path;
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(out, "%s:0: cannot read: %s\n", path, strerror(errno));
		return false;
	}
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	bool ok = true;
	while (ok && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len == 0 || (len == 1 && line[0] == '\n'))
			continue;
		json_error_t je;
		json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &je);
		const char *type = o ? json_string_value(json_object_get(o, "type")) : NULL;
		ok = false;
		if (!o)
			fprintf(out, "%s:%zu: not JSON: %s\n", path, lineno, je.text);
		else if (!json_is_object(o) || !type)
			fprintf(out, "%s:%zu: not a trace object (no \"type\")\n", path, lineno);
		else if (!t->header && strcmp(type, "header") != 0)
			fprintf(out, "%s:%zu: \"%s\" before the header line\n", path, lineno, type);
		else if (t->end)
			fprintf(out, "%s:%zu: \"%s\" after the end line\n", path, lineno, type);
		else
			ok = true;
		if (!ok) {
			json_decref(o);
			break;
		}
		if (strcmp(type, "header") == 0) {
			json_int_t schema = json_integer_value(json_object_get(o, "schema"));
			if (t->header || schema != TRACE_SCHEMA) {
				fprintf(out, "%s:%zu: %s\n", path, lineno,
					t->header ? "a second header line" : "header schema is not " "1 (TRACE_SCHEMA)");
				ok = false;
				json_decref(o);
				break;
			}
			t->header = o;
		} else if (strcmp(type, "insn") == 0) {
			json_int_t i = json_integer_value(json_object_get(o, "i"));
			if (i < 0 || (size_t)i != t->ninsn) {
				fprintf(out, "%s:%zu: insn \"i\" is %" JSON_INTEGER_FORMAT ", expected %zu\n", path, lineno, i,
					t->ninsn);
				ok = false;
				json_decref(o);
				break;
			}
			if (!grow((void **)&t->insn, &t->capinsn, t->ninsn, sizeof *t->insn)) {
				fprintf(out, "%s:%zu: out of memory\n", path, lineno);
				ok = false;
				json_decref(o);
				break;
			}
			t->insn[t->ninsn] = o;
			json_t *evs = json_object_get(o, "events");
			for (size_t k = 0; k < json_array_size(evs); k++) {
				if (!grow((void **)&t->ev, &t->capev, t->nev, sizeof *t->ev)) {
					fprintf(out, "%s:%zu: out of memory\n", path, lineno);
					ok = false;
					break;
				}
				t->ev[t->nev++] = (struct jev){t->ninsn, json_array_get(evs, k)};
			}
			t->ninsn++;
		} else if (strcmp(type, "violation") == 0) {
			if (!grow((void **)&t->viol, &t->capviol, t->nviol, sizeof *t->viol)) {
				fprintf(out, "%s:%zu: out of memory\n", path, lineno);
				ok = false;
				json_decref(o);
				break;
			}
			t->viol[t->nviol++] = o;
		} else if (strcmp(type, "end") == 0) {
			t->end = o;
		} else {
			fprintf(out, "%s:%zu: unknown type \"%s\"\n", path, lineno, type);
			ok = false;
			json_decref(o);
		}
	}
	free(line);
	fclose(f);
	if (ok && !t->header) {
		fprintf(out, "%s:1: empty: no header line\n", path);
		ok = false;
	} else if (ok && !t->end) {
		fprintf(out, "%s:%zu: no end line (a truncated trace?)\n", path, lineno);
		ok = false;
	}
	if (!ok)
		jt_free(t);
	return ok;
}

/* Keys of a and b (one level, or "obj.key" one level down) whose values differ. */
static void differing_keys(const json_t *a, const json_t *b, const char *prefix, char *out, size_t n)
{
	const char *key;
	json_t *va;
	json_object_foreach((json_t *)a, key, va) {
		json_t *vb = json_object_get(b, key);
		if (vb && json_equal(va, vb))
			continue;
		if (vb && json_is_object(va) && json_is_object(vb)) {
			char p[64];
			snprintf(p, sizeof p, "%s%s.", prefix, key);
			differing_keys(va, vb, p, out, n);
			continue;
		}
		snprintf(out + strlen(out), n - strlen(out), "%s%s%s", out[0] ? " " : "", prefix, key);
	}
	json_t *vb;
	json_object_foreach((json_t *)b, key, vb) {
		if (!json_object_get(a, key))
			snprintf(out + strlen(out), n - strlen(out), "%s%s%s", out[0] ? " " : "", prefix, key);
	}
}

static void value_str(const json_t *v, char *out, size_t n)
{
	if (!v) {
		snprintf(out, n, "(absent)");
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	snprintf(out, n, "%s", s ? s : "?");
	free(s);
}

/* Look up "a.b" paths as differing_keys names them. */
static const json_t *path_get(const json_t *o, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof buf, "%s", path);
	const json_t *cur = o;
	for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
		cur = json_object_get(cur, tok);
	return cur;
}

static char space_letter(const json_t *in)
{
	const char *s = jstr(in, "space");
	return strcmp(s, "host") == 0 ? 'H' : strcmp(s, "monitor") == 0 ? 'M' : '?';
}

static unsigned long hexval(const json_t *o, const char *key)
{
	const char *s = jstr(o, key);
	return strtoul(s, NULL, 0);
}

static void insn_cell(const struct jtrace *t, size_t i, char *out, size_t n)
{
	if (i >= t->ninsn) {
		snprintf(out, n, "%s", i == t->ninsn ? "(end of trace)" : "");
		return;
	}
	const json_t *in = t->insn[i];
	snprintf(out, n, "#%-4zu %c %08lx %s", i, space_letter(in), hexval(in, "eip"),
		 jstr(in, "text")[0] ? jstr(in, "text") : "(not fetched)");
}

static const char *const FLOW_KEYS[] = {"eip", "bytes", "text", "space", "cr3"};

static bool flow_equal(const json_t *a, const json_t *b, char *which, size_t n)
{
	bool eq = true;
	if (which)
		which[0] = '\0';
	for (size_t k = 0; k < sizeof FLOW_KEYS / sizeof FLOW_KEYS[0]; k++)
		if (!json_equal(json_object_get(a, FLOW_KEYS[k]), json_object_get(b, FLOW_KEYS[k]))) {
			eq = false;
			if (which)
				snprintf(which + strlen(which), n - strlen(which), "%s%s", which[0] ? " " : "", FLOW_KEYS[k]);
		}
	return eq;
}

/* Instructions from-2 .. from+4 of both sides, rows marked where control flow differs. */
static void insn_context(FILE *out, const struct jtrace *a, const struct jtrace *b, size_t from)
{
	size_t lo = from >= 2 ? from - 2 : 0;
	for (size_t i = lo; i <= from + 4; i++) {
		if (i > a->ninsn && i > b->ninsn)
			break;
		char l[160], r[160];
		insn_cell(a, i, l, sizeof l);
		insn_cell(b, i, r, sizeof r);
		bool differ = i >= a->ninsn || i >= b->ninsn || !flow_equal(a->insn[i], b->insn[i], NULL, 0);
		side(out, differ, l, r);
	}
}

static const char *hexdigits(const char *s) { return strncmp(s, "0x", 2) == 0 ? s + 2 : s; }

static void event_cell(const struct jtrace *t, size_t e, char *out, size_t n)
{
	if (e >= t->nev) {
		snprintf(out, n, "%s", e == t->nev ? "(no more events)" : "");
		return;
	}
	const json_t *ev = t->ev[e].ev;
	/* Hex without "0x": the column is narrow and every value is hex. */
	const char *a = hexdigits(jstr(ev, "a")), *b = hexdigits(jstr(ev, "b")), *c = hexdigits(jstr(ev, "c"));
	if (strcmp(jstr(ev, "kind"), "pte_write") == 0) { /* the entry's old -> new, and what it maps */
		snprintf(out, n, "#%-4zu pte_write %s: %s->%s %s@%s", t->ev[e].insn, a, b, c, jstr(ev, "space"),
			 hexdigits(jstr(ev, "lin")));
		return;
	}
	/* a, then b and c when they say something (most kinds leave them 0) */
	snprintf(out, n, "#%-4zu %s %s", t->ev[e].insn, jstr(ev, "kind"), a);
	if (strcmp(b, "0") || strcmp(c, "0"))
		snprintf(out + strlen(out), n - strlen(out), " %s", b);
	if (strcmp(c, "0"))
		snprintf(out + strlen(out), n - strlen(out), " %s", c);
}

static bool viol_in(const struct jtrace *t, const json_t *v)
{
	for (size_t i = 0; i < t->nviol; i++)
		if (json_equal(t->viol[i], v))
			return true;
	return false;
}

static void count_row(FILE *out, const char *label, long long a, long long b)
{
	fprintf(out, "  %-26s %14lld %14lld%s\n", label, a, b, a != b ? "   !=" : "");
}

int trace_diff(FILE *out, const char *a_jsonl, const char *b_jsonl)
{
	struct jtrace a, b;
	if (!jt_load(&a, a_jsonl, out))
		return 2;
	if (!jt_load(&b, b_jsonl, out)) {
		jt_free(&a);
		return 2;
	}
	bool differ = false;
	fprintf(out, "trace diff\n  A %s: variant %s, scenario %s\n  B %s: variant %s, scenario %s\n\n", a_jsonl,
		jstr(a.header, "variant"), jstr(a.header, "scenario"), b_jsonl, jstr(b.header, "variant"),
		jstr(b.header, "scenario"));

	/* Header. */
	char keys[1024] = "";
	differing_keys(a.header, b.header, "", keys, sizeof keys);
	if (keys[0]) {
		differ = true;
		fprintf(out, "header: differs in %s\n", keys);
		char buf[1024];
		snprintf(buf, sizeof buf, "%s", keys);
		for (char *save = NULL, *k = strtok_r(buf, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
			char va[200], vb[200];
			value_str(path_get(a.header, k), va, sizeof va);
			value_str(path_get(b.header, k), vb, sizeof vb);
			fprintf(out, "  %-20s A %s | B %s\n", k, va, vb);
		}
	} else {
		fprintf(out, "header: identical\n");
	}

	/* Instructions: first object difference, and the first control-flow difference. */
	size_t nmin = a.ninsn < b.ninsn ? a.ninsn : b.ninsn, first = SIZE_MAX, flow = SIZE_MAX;
	for (size_t i = 0; i < nmin && (first == SIZE_MAX || flow == SIZE_MAX); i++) {
		if (first == SIZE_MAX && !json_equal(a.insn[i], b.insn[i]))
			first = i;
		if (flow == SIZE_MAX && !flow_equal(a.insn[i], b.insn[i], NULL, 0))
			flow = i;
	}
	if (first == SIZE_MAX && a.ninsn != b.ninsn)
		first = nmin;
	if (flow == SIZE_MAX && a.ninsn != b.ninsn)
		flow = nmin;
	if (first == SIZE_MAX) {
		fprintf(out, "\ninstructions: identical (%zu)\n", a.ninsn);
	} else {
		differ = true;
		if (first < nmin) {
			char k[512] = "";
			differing_keys(a.insn[first], b.insn[first], "", k, sizeof k);
			fprintf(out, "\ninstructions: first difference at #%zu, in %s\n", first, k);
		} else {
			fprintf(out, "\ninstructions: identical for %zu; %s has %zu more\n", nmin, a.ninsn > nmin ? "A" : "B",
				(a.ninsn > nmin ? a.ninsn : b.ninsn) - nmin);
		}
		if (flow == SIZE_MAX) {
			fprintf(out, "control flow (eip, bytes, text, space, cr3): identical throughout\n");
			if (first < nmin) {
				const char *key;
				json_t *va;
				fprintf(out, "  at #%zu:\n", first);
				json_object_foreach(a.insn[first], key, va) {
					json_t *vb = json_object_get(b.insn[first], key);
					if (vb && json_equal(va, vb))
						continue;
					char sa[300], sb[300];
					value_str(va, sa, sizeof sa);
					value_str(vb, sb, sizeof sb);
					fprintf(out, "  %-8s A %s\n  %-8s B %s\n", key, sa, "", sb);
				}
			}
		} else {
			char which[128] = "";
			if (flow < nmin)
				flow_equal(a.insn[flow], b.insn[flow], which, sizeof which);
			fprintf(out, "control flow: first divergence at #%zu%s%s%s\n", flow, which[0] ? " (" : "", which,
				which[0] ? ")" : "");
			char l[80], r[80];
			snprintf(l, sizeof l, "   A %s", jstr(a.header, "variant"));
			snprintf(r, sizeof r, "B %s", jstr(b.header, "variant"));
			side(out, false, l, r);
			insn_context(out, &a, &b, flow);
		}
	}

	/* Events, in order, wherever they happen. */
	size_t emin = a.nev < b.nev ? a.nev : b.nev, efirst = SIZE_MAX;
	for (size_t e = 0; e < emin && efirst == SIZE_MAX; e++)
		if (!json_equal(a.ev[e].ev, b.ev[e].ev))
			efirst = e;
	if (efirst == SIZE_MAX && a.nev != b.nev)
		efirst = emin;
	if (efirst == SIZE_MAX) {
		bool same_insn = true;
		for (size_t e = 0; e < a.nev; e++)
			same_insn &= a.ev[e].insn == b.ev[e].insn;
		fprintf(out, "\nevents: identical sequence (%zu)%s\n", a.nev,
			same_insn ? "" : ", at different instruction indices");
	} else {
		differ = true;
		char wa[32] = "none left", wb[32] = "none left";
		if (efirst < a.nev)
			snprintf(wa, sizeof wa, "at #%zu", a.ev[efirst].insn);
		if (efirst < b.nev)
			snprintf(wb, sizeof wb, "at #%zu", b.ev[efirst].insn);
		fprintf(out, "\nevents: first difference at event %zu (A %s, B %s)\n", efirst, wa, wb);
		size_t lo = efirst >= 2 ? efirst - 2 : 0;
		for (size_t e = lo; e <= efirst + 3; e++) {
			if (e > a.nev && e > b.nev)
				break;
			char l[200], r[200];
			event_cell(&a, e, l, sizeof l);
			event_cell(&b, e, r, sizeof r);
			side(out, e >= a.nev || e >= b.nev || !json_equal(a.ev[e].ev, b.ev[e].ev), l, r);
		}
	}

	/* Violations one side has and the other not. */
	bool vhead = false;
	for (int s = 0; s < 2; s++) {
		const struct jtrace *x = s ? &b : &a, *y = s ? &a : &b;
		for (size_t i = 0; i < x->nviol; i++) {
			if (viol_in(y, x->viol[i]))
				continue;
			if (!vhead)
				fprintf(out, "\nviolations on one side only:\n");
			vhead = true;
			differ = true;
			const json_t *ins = json_object_get(x->viol[i], "insn");
			char at[32] = "";
			if (json_is_integer(ins))
				snprintf(at, sizeof at, " #%" JSON_INTEGER_FORMAT, json_integer_value(ins));
			fprintf(out, "  %s %s%s: %s\n", s ? "B" : "A", jstr(x->viol[i], "rule"), at, jstr(x->viol[i], "message"));
		}
	}
	if (!vhead)
		fprintf(out, "\nviolations: %s\n", a.nviol ? "the same on both sides" : "none on either side");
	if (!json_equal(a.end, b.end))
		differ = true;

	/* Summary. */
	fprintf(out, "\n%-28s %14s %14s\n", "summary", "A", "B");
	count_row(out, "instructions", (long long)a.ninsn, (long long)b.ninsn);
	fprintf(out, "  %-26s %14s %14s\n", "end", jstr(a.end, "end"), jstr(b.end, "end"));
	count_row(out, "events", (long long)a.nev, (long long)b.nev);
	for (int k = 0; k < EV_N; k++) {
		long long ca = 0, cb = 0;
		for (size_t e = 0; e < a.nev; e++)
			ca += strcmp(jstr(a.ev[e].ev, "kind"), ev_name((enum ev_kind)k)) == 0;
		for (size_t e = 0; e < b.nev; e++)
			cb += strcmp(jstr(b.ev[e].ev, "kind"), ev_name((enum ev_kind)k)) == 0;
		if (ca || cb) {
			char label[48];
			snprintf(label, sizeof label, "  %s", ev_name((enum ev_kind)k));
			count_row(out, label, ca, cb);
		}
	}
	count_row(out, "violations", json_integer_value(json_object_get(a.end, "violations")),
		  json_integer_value(json_object_get(b.end, "violations")));
	for (int r = 0; r < R_N; r++) {
		long long ca = 0, cb = 0;
		for (size_t i = 0; i < a.nviol; i++)
			ca += strcmp(jstr(a.viol[i], "rule"), rule_id((enum rule)r)) == 0;
		for (size_t i = 0; i < b.nviol; i++)
			cb += strcmp(jstr(b.viol[i], "rule"), rule_id((enum rule)r)) == 0;
		if (ca || cb) {
			char label[48];
			snprintf(label, sizeof label, "  %s", rule_id((enum rule)r));
			count_row(out, label, ca, cb);
		}
	}
	fprintf(out, "  %-26s %14s %14s\n", "verdict", jstr(a.end, "verdict"), jstr(b.end, "verdict"));
	fprintf(out, "\n%s\n", differ ? "the traces differ" : "the traces are identical");
	jt_free(&a);
	jt_free(&b);
	return differ ? 1 : 0;
}

/* ---- two runs in memory --------------------------------------------------------------------- */

static const char *world_word(uint64_t w) { return w == SP_HOST ? "host" : w == SP_MON ? "monitor" : "?"; }

/* A short form of one event for a column. */
static void ev_short(const struct tr_event *ev, char *out, size_t n)
{
	switch (ev->kind) {
	case EV_LGDT:
	case EV_LIDT: snprintf(out, n, "%s %08" PRIx64 "/%" PRIx64, ev_name(ev->kind), ev->a, ev->b); break;
	case EV_BUSY_CLEAR:
	case EV_BUSY_SET: snprintf(out, n, "%s %s TSS", ev_name(ev->kind), world_word(ev->b)); break;
	case EV_LTR: snprintf(out, n, "ltr %04" PRIx64, ev->a); break;
	case EV_MOV_CR3:
	case EV_MOV_CR0:
	case EV_MOV_CR4: snprintf(out, n, "%s %08" PRIx64 "->%08" PRIx64, ev_name(ev->kind), ev->a, ev->b); break;
	case EV_LSS: snprintf(out, n, "lss %04" PRIx64 ":%08" PRIx64, ev->a, ev->b); break;
	case EV_FAR_JMP: snprintf(out, n, "far_jmp %04" PRIx64 ":%08" PRIx64, ev->a, ev->b); break;
	case EV_INVLPG: snprintf(out, n, "invlpg %08" PRIx64, ev->a); break;
	case EV_PTE_WRITE:
		snprintf(out, n, "pte_write %s %08" PRIx32 ": %" PRIx64 "->%" PRIx64, world_word((uint64_t)ev->space), ev->lin,
			 ev->b, ev->c);
		break;
	case EV_DESC_WRITE: snprintf(out, n, "desc_write pa %" PRIx64, ev->a); break;
	case EV_FAULT: snprintf(out, n, "fault vector %" PRIu64 " cr2 %08" PRIx64, ev->a, ev->c); break;
	default: snprintf(out, n, "%s", ev_name(ev->kind)); break;
	}
}

#define VD_MAX_WINDOWS (2 * SC_MAX_ROUNDS + 8)

struct seg {
	bool window;
	enum dir dir;
	uint32_t first, last; /* inclusive; first > last: empty */
};

/* Alternate stretches: outside, window 0, outside, window 1, ..., outside. */
static int segments(const struct pipeline *p, struct seg *s, int max)
{
	struct window w[VD_MAX_WINDOWS];
	int nw = find_windows(&p->t, &p->img, w, VD_MAX_WINDOWS);
	int n = 0;
	uint32_t at = 0;
	for (int x = 0; x < nw && n + 2 < max; x++) {
		s[n++] = (struct seg){false, DIR_M2H, at, w[x].first - 1};
		if (w[x].first == 0)
			s[n - 1].last = 0, s[n - 1].first = 1; /* empty */
		s[n++] = (struct seg){true, w[x].dir, w[x].first, w[x].last};
		at = w[x].last + 1;
	}
	if (n < max)
		s[n++] = (struct seg){false, DIR_M2H, at, p->t.n ? p->t.n - 1 : 0};
	if (p->t.n == 0)
		s[n - 1].first = 1;
	return n;
}

/* Events of a stretch (shim_enter left out: the window's start says it). */
static int seg_events(const struct pipeline *p, const struct seg *s, const struct tr_event **ev, uint32_t *at, int max)
{
	int n = 0;
	for (uint32_t i = s->first; i <= s->last && i < p->t.n; i++) {
		const struct tr_insn *in = &p->t.insn[i];
		for (uint32_t k = 0; k < in->ev_n && n < max; k++) {
			const struct tr_event *e = &p->t.ev[in->ev_first + k];
			if (e->kind == EV_SHIM_ENTER)
				continue;
			ev[n] = e;
			at[n++] = i;
		}
	}
	return n;
}

static void order_line(const struct tr_event *const *ev, int n, char *out, size_t cap)
{
	out[0] = '\0';
	for (int k = 0; k < n; k++)
		snprintf(out + strlen(out), cap - strlen(out), "%s%s", k ? " " : "", ev_name(ev[k]->kind));
}

#define SEG_EVENTS 128

int variant_diff(FILE *out, struct pipeline *a, struct pipeline *b)
{
	struct pipeline *pp[2] = {a, b};
	static struct seg sg[2][2 * VD_MAX_WINDOWS + 2];
	int ns[2];
	for (int s = 0; s < 2; s++)
		ns[s] = segments(pp[s], sg[s], (int)(sizeof sg[s] / sizeof sg[s][0]));
	bool differ = false;
	fprintf(out, "variant diff: scenario %s%s%s\n  A %s: %u instructions, %s, %d violation%s\n"
		"  B %s: %u instructions, %s, %d violation%s\n",
		a->sc.name, strcmp(a->sc.name, b->sc.name) ? " vs " : "", strcmp(a->sc.name, b->sc.name) ? b->sc.name : "",
		a->code.variant, a->t.n, tr_end_name(a->t.end), a->v.n, a->v.n == 1 ? "" : "s", b->code.variant, b->t.n,
		tr_end_name(b->t.end), b->v.n, b->v.n == 1 ? "" : "s");
	int nmax = ns[0] > ns[1] ? ns[0] : ns[1];
	for (int x = 0; x < nmax; x++) {
		const struct tr_event *ev[2][SEG_EVENTS];
		uint32_t at[2][SEG_EVENTS];
		int ne[2] = {0, 0};
		const struct seg *sx[2] = {x < ns[0] ? &sg[0][x] : NULL, x < ns[1] ? &sg[1][x] : NULL};
		for (int s = 0; s < 2; s++)
			if (sx[s])
				ne[s] = seg_events(pp[s], sx[s], ev[s], at[s], SEG_EVENTS);
		bool is_window = x % 2 == 1;
		if (!is_window && ne[0] == 0 && ne[1] == 0)
			continue; /* host code between round trips: nothing switched there */
		char range[2][48];
		for (int s = 0; s < 2; s++) {
			if (!sx[s])
				snprintf(range[s], sizeof range[s], "(none)");
			else if (sx[s]->first > sx[s]->last)
				snprintf(range[s], sizeof range[s], "(empty)");
			else
				snprintf(range[s], sizeof range[s], "#%u..#%u", sx[s]->first, sx[s]->last);
		}
		const struct seg *any = sx[0] ? sx[0] : sx[1];
		if (is_window)
			fprintf(out, "\nwindow %d, %s: A %s | B %s\n", x / 2,
				any->dir == DIR_H2M ? "host->monitor" : "monitor->host", range[0], range[1]);
		else
			fprintf(out, "\noutside the windows%s: A %s | B %s\n", x == 0 ? " (before the first)" : "", range[0],
				range[1]);
		char oa[512], ob[512];
		order_line(ev[0], ne[0], oa, sizeof oa);
		order_line(ev[1], ne[1], ob, sizeof ob);
		bool same = strcmp(oa, ob) == 0;
		if (is_window && (!same || !sx[0] || !sx[1] || sx[0]->dir != sx[1]->dir))
			differ = true;
		fprintf(out, "  order A: %s\n  order B: %s%s\n", oa[0] ? oa : "(no events)", ob[0] ? ob : "(no events)",
			same ? "   (same)" : "");
		int rows = ne[0] > ne[1] ? ne[0] : ne[1];
		for (int r = 0; r < rows; r++) {
			char l[160] = "", rr[160] = "";
			for (int s = 0; s < 2; s++)
				if (r < ne[s]) {
					char e[120];
					ev_short(ev[s][r], e, sizeof e);
					snprintf(s ? rr : l, 160, "#%-4u %s", at[s][r], e);
				}
			bool kinds_differ = r >= ne[0] || r >= ne[1] || ev[0][r]->kind != ev[1][r]->kind;
			side(out, kinds_differ, l, rr);
		}
	}
	/* Violations: each side's, and whether the rules agree. */
	fprintf(out, "\nviolations\n");
	for (int s = 0; s < 2; s++) {
		const struct pipeline *p = pp[s];
		if (p->v.n == 0)
			fprintf(out, "  %s %s: none\n", s ? "B" : "A", p->code.variant);
		for (int i = 0; i < p->v.n && i < MAX_VIOLATIONS; i++) {
			const struct violation *v = &p->v.v[i];
			if (v->insn < p->t.n)
				fprintf(out, "  %s %s #%u 0x%08" PRIx32 ": %s\n", s ? "B" : "A", rule_id(v->rule), v->insn,
					p->t.insn[v->insn].cpu.eip, v->msg);
			else
				fprintf(out, "  %s %s: %s\n", s ? "B" : "A", rule_id(v->rule), v->msg);
		}
	}
	for (int r = 0; r < R_N; r++)
		if ((a->v.counts[r] != 0) != (b->v.counts[r] != 0)) {
			differ = true;
			fprintf(out, "  %s: A %u | B %u\n", rule_id((enum rule)r), a->v.counts[r], b->v.counts[r]);
		}
	fprintf(out, "\n%s\n", differ ? "the runs differ" : "the runs switch in the same order and violate the same rules");
	return differ ? 1 : 0;
}
