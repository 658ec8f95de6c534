/*
 * listing.c: NASM listings -> offset-to-source maps (see listing.h).
 *
 * The listing format (NASM 2.x, listing.c): "%6d " line number, then either "%08X " offset
 * and the emitted bytes left-justified in 19 columns, or 28 blanks; then " <N>" for nesting
 * level N (an %include'd file or a macro expansion) or 4 blanks; then " " and the source
 * line, from column 40. Bytes that do not fit continue on the next listing line under the
 * same line number with no source text. Relocated fields are in [] or (), repetitions end in
 * "<rep Nh>", reserved space is "<res Nh>" or "??" per byte, and warnings put "****" where
 * the bytes go.
 *
 * Inside a macro expansion NASM numbers lines by the macro's definition (and drops
 * comments); inside an included file, by that file. The nesting column alone does not say
 * which of the two a level is, so the parser remembers the line that opened each level:
 * `%include "f"` opens file f, a line whose first word is a macro defined earlier opens an
 * expansion of it (whose lines belong to the file that defined it).
 */
#include "listing.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/mmu.h"

#define COL_ADDR 7
#define COL_DATA 16
#define COL_LEVEL 35
#define COL_TEXT 40
#define MAX_LEVELS 16
#define MAX_FILES 32
#define MAX_MACROS 128

/* ---- small owned-string helpers ---------------------------------------------------------- */

static char *dupstr(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* Tabs and runs of blanks to one space, no leading/trailing blanks: listing text is shown
 * in one column of a trace line, where the source's tab alignment means nothing. */
static void normalize(const char *in, char *out, size_t n)
{
	size_t k = 0;
	bool blank = false;
	while (*in && isspace((unsigned char)*in))
		in++;
	for (; *in && k + 1 < n; in++) {
		if (isspace((unsigned char)*in)) {
			blank = true;
			continue;
		}
		if (blank && k + 2 < n)
			out[k++] = ' ';
		blank = false;
		out[k++] = *in;
	}
	out[k] = '\0';
}

/* ---- what the parser remembers about the source ------------------------------------------ */

struct srcfile {
	char name[128];
	int nlines;
	char **line;  /* line[i] = normalized text of line i+1 as listed, NULL if unseen */
};

struct macro {
	char name[64];
	bool icase;   /* %imacro */
	int file;     /* index of the file that defines it */
};

struct frame {
	int file;          /* where this level's line numbers point (-1: unknown) */
	bool expansion;    /* a macro expansion (else a file) */
	char ctx[160];     /* for expansions: "[NAME args at file:line]" */
	unsigned parent;   /* sequence number of the line that opened it */
};

struct parser {
	struct srcfile file[MAX_FILES];
	int nfiles;
	struct macro mac[MAX_MACROS];
	int nmac;
	struct frame fr[MAX_LEVELS];
	int depth;
	/* the last line seen at each level: what opens the next level */
	struct {
		unsigned seq;
		int file, lineno;
		char text[256];
	} last[MAX_LEVELS];
	unsigned seq;
};

static int file_index(struct parser *p, const char *name)
{
	for (int i = 0; i < p->nfiles; i++)
		if (strcmp(p->file[i].name, name) == 0)
			return i;
	if (p->nfiles == MAX_FILES)
		return -1;
	struct srcfile *f = &p->file[p->nfiles];
	memset(f, 0, sizeof *f);
	snprintf(f->name, sizeof f->name, "%s", name);
	return p->nfiles++;
}

static void remember_line(struct parser *p, int file, int lineno, const char *text)
{
	if (file < 0 || lineno < 1 || lineno > 1000000)
		return;
	struct srcfile *f = &p->file[file];
	if (lineno > f->nlines) {
		int n = f->nlines ? f->nlines : 64;
		while (n < lineno)
			n *= 2;
		char **nl = realloc(f->line, (size_t)n * sizeof *nl);
		if (!nl)
			return;
		for (int i = f->nlines; i < n; i++)
			nl[i] = NULL;
		f->line = nl;
		f->nlines = n;
	}
	/* The first sighting is the definition itself; later ones at that number are
	 * expansions of it (comment-less), which must not replace it. */
	if (!f->line[lineno - 1])
		f->line[lineno - 1] = dupstr(text);
}

static const char *recall_line(const struct parser *p, int file, int lineno)
{
	if (file < 0 || lineno < 1 || lineno > p->file[file].nlines)
		return NULL;
	return p->file[file].line[lineno - 1];
}

static void parser_free(struct parser *p)
{
	for (int i = 0; i < p->nfiles; i++) {
		for (int k = 0; k < p->file[i].nlines; k++)
			free(p->file[i].line[k]);
		free(p->file[i].line);
	}
}

/* The first word of a source line, after an optional "label:". */
static void first_word(const char *text, char *w, size_t n)
{
	const char *s = text;
	for (int pass = 0; pass < 2; pass++) {
		while (*s == ' ')
			s++;
		size_t k = 0;
		const char *t = s;
		while (*t && !isspace((unsigned char)*t) && *t != ';' && k + 1 < n)
			w[k++] = *t++;
		w[k] = '\0';
		if (k && w[k - 1] == ':' && pass == 0) {
			s = t;
			continue;
		}
		return;
	}
}

static void note_macro_definition(struct parser *p, const char *text, int file)
{
	char w[64];
	first_word(text, w, sizeof w);
	bool icase = strcasecmp(w, "%imacro") == 0;
	if (!icase && strcasecmp(w, "%macro") != 0)
		return;
	const char *s = text + strspn(text, " ") + strlen(w);
	while (*s == ' ')
		s++;
	char name[64];
	size_t k = 0;
	while (s[k] && !isspace((unsigned char)s[k]) && k + 1 < sizeof name) {
		name[k] = s[k];
		k++;
	}
	name[k] = '\0';
	if (!k)
		return;
	for (int i = 0; i < p->nmac; i++)
		if (strcmp(p->mac[i].name, name) == 0) {
			p->mac[i].file = file; /* redefinition: the later one is in force */
			p->mac[i].icase = icase;
			return;
		}
	if (p->nmac < MAX_MACROS) {
		struct macro *m = &p->mac[p->nmac++];
		snprintf(m->name, sizeof m->name, "%s", name);
		m->icase = icase;
		m->file = file;
	}
}

static const struct macro *find_macro(const struct parser *p, const char *w)
{
	for (int i = 0; i < p->nmac; i++)
		if (p->mac[i].icase ? strcasecmp(p->mac[i].name, w) == 0 : strcmp(p->mac[i].name, w) == 0)
			return &p->mac[i];
	return NULL;
}

/* Open level `lvl` from the last line seen at level lvl-1. */
static void open_level(struct parser *p, int lvl)
{
	struct frame *f = &p->fr[lvl];
	const char *opener = p->last[lvl - 1].text;
	f->parent = p->last[lvl - 1].seq;
	f->file = -1;
	f->expansion = true;
	f->ctx[0] = '\0';
	char w[64];
	first_word(opener, w, sizeof w);
	if (strcasecmp(w, "%include") == 0) {
		const char *q = strpbrk(opener, "\"'<");
		if (q) {
			char close = *q == '<' ? '>' : *q;
			const char *e = strchr(q + 1, close);
			char name[128];
			size_t len = e ? (size_t)(e - q - 1) : strlen(q + 1);
			if (len >= sizeof name)
				len = sizeof name - 1;
			memcpy(name, q + 1, len);
			name[len] = '\0';
			const char *base = strrchr(name, '/');
			f->file = file_index(p, base ? base + 1 : name);
			f->expansion = false;
		}
		return;
	}
	const struct macro *m = find_macro(p, w);
	if (m)
		f->file = m->file;
	int of = p->last[lvl - 1].file;
	char what[96];
	normalize(opener, what, sizeof what);
	char *semi = strchr(what, ';'); /* the invocation's own comment is noise here */
	if (semi) {
		*semi = '\0';
		size_t k = strlen(what);
		while (k && what[k - 1] == ' ')
			what[--k] = '\0';
	}
	if (of >= 0)
		snprintf(f->ctx, sizeof f->ctx, "[%s at %s:%d]", what, p->file[of].name, p->last[lvl - 1].lineno);
	else
		snprintf(f->ctx, sizeof f->ctx, "[%s]", what);
}

/* ---- bytes of one listing line ----------------------------------------------------------- */

struct ldata {
	uint32_t size;
	uint8_t unit[16];   /* the listed bytes ('?' bytes and relocations included) */
	bool known[16];     /* false for "??" (reserved space) */
	unsigned nunit;
	uint32_t rep;       /* <rep N>: the unit repeats N times */
	bool reserve;       /* <res N>: N bytes, content not listed */
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)toupper((unsigned char)c);
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static bool parse_data(const char *s, size_t len, struct ldata *d)
{
	memset(d, 0, sizeof *d);
	d->rep = 1;
	size_t i = 0;
	int hi = -1;
	while (i < len) {
		char c = s[i];
		if (c == '<') {
			const char *e = memchr(s + i, '>', len - i);
			if (!e)
				return false;
			char tag[32];
			size_t tl = (size_t)(e - (s + i) - 1);
			if (tl >= sizeof tag)
				return false;
			memcpy(tag, s + i + 1, tl);
			tag[tl] = '\0';
			unsigned long n;
			if (sscanf(tag, "rep %lxh", &n) == 1) {
				d->rep = (uint32_t)n;
			} else if (sscanf(tag, "res %lxh", &n) == 1) {
				d->reserve = true;
				d->size = (uint32_t)n;
			} else {
				return false;
			}
			i = (size_t)(e - s) + 1;
			continue;
		}
		if (c == '[' || c == ']' || c == '(' || c == ')' || c == '-' || c == ' ') {
			i++;
			continue;
		}
		int v = c == '?' ? 0x100 : hexval(c);
		if (v < 0)
			return false;
		if (hi < 0) {
			hi = v;
		} else {
			if (d->nunit < sizeof d->unit) {
				d->known[d->nunit] = hi < 0x100 && v < 0x100;
				d->unit[d->nunit] = (uint8_t)((hi & 0xF) << 4 | (v & 0xF));
			}
			d->nunit++;
			hi = -1;
		}
		i++;
	}
	if (!d->reserve)
		d->size = d->nunit * d->rep;
	return d->size > 0;
}

/* ---- building one binary's map ----------------------------------------------------------- */

static const char *keep(struct listing_bin *b, const char *s)
{
	if (b->nstr == b->capstr) {
		size_t n = b->capstr ? 2 * b->capstr : 64;
		char **ns = realloc(b->str, n * sizeof *ns);
		if (!ns)
			return NULL;
		b->str = ns;
		b->capstr = n;
	}
	char *d = dupstr(s);
	if (d)
		b->str[b->nstr++] = d;
	return d;
}

static bool add_entry(struct listing_bin *b, uint32_t off, uint32_t size, const char *text)
{
	if (!text)
		return false;
	if (b->n == b->cap) {
		size_t n = b->cap ? 2 * b->cap : 128;
		struct listing_entry *ne = realloc(b->e, n * sizeof *ne);
		if (!ne)
			return false;
		b->e = ne;
		b->cap = n;
	}
	b->e[b->n++] = (struct listing_entry){off, size, text};
	return true;
}

/* Do the binary's bytes at off match what the listing says was assembled there? */
static bool bytes_match(const struct code_bin *cb, uint32_t off, const struct ldata *d)
{
	if (d->reserve || d->nunit == 0 || d->nunit > sizeof d->unit)
		return true; /* nothing (comparable) listed */
	for (uint32_t k = 0; k < d->size; k++) {
		unsigned u = k % d->nunit;
		if (!d->known[u])
			continue;
		if ((size_t)off + k >= cb->size)
			return false; /* the binary is shorter than what was assembled */
		if (cb->bytes[off + k] != d->unit[u])
			return false;
	}
	return true;
}

/* The default name of the top-level source: the listing's name with .asm. */
static void top_name(const char *listing, char *out, size_t n)
{
	const char *base = strrchr(listing, '/');
	base = base ? base + 1 : listing;
	snprintf(out, n, "%s", base);
	char *dot = strrchr(out, '.');
	if (dot && strcmp(dot, ".lst") == 0 && (size_t)(dot - out) + 5 <= n)
		strcpy(dot, ".asm");
}

static bool load_one(struct listing_bin *lb, const struct code_bin *cb, char *err, size_t errn)
{
	FILE *f = fopen(cb->listing, "r");
	if (!f) {
		snprintf(err, errn, "%s: cannot read the listing", cb->listing);
		return false;
	}
	struct parser *p = calloc(1, sizeof *p);
	if (!p) {
		fclose(f);
		snprintf(err, errn, "%s: out of memory", cb->listing);
		return false;
	}
	char top[128];
	top_name(cb->listing, top, sizeof top);
	p->fr[0].file = file_index(p, top);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	char prev_out[480];
	const char *prev_text = NULL; /* the entry text continuation lines inherit */
	int prev_lineno = -1;
	bool ok = true;
	while ((len = getline(&line, &cap, f)) > 0) {
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len < COL_ADDR)
			continue;
		char num[8];
		memcpy(num, line, 6);
		num[6] = '\0';
		char *end;
		long lineno = strtol(num, &end, 10);
		if (end == num || line[6] != ' ')
			continue; /* not a listing line (NASM prints none, but be lenient) */
		bool has_addr = len >= COL_DATA;
		uint32_t addr = 0;
		for (int k = COL_ADDR; has_addr && k < COL_ADDR + 8; k++) {
			int v = hexval(line[k]);
			if (v < 0)
				has_addr = false;
			else
				addr = addr << 4 | (uint32_t)v;
		}
		const char *data = len > COL_DATA ? line + COL_DATA : "";
		size_t datalen = len > COL_LEVEL ? (size_t)(COL_LEVEL - COL_DATA) : len > COL_DATA ? (size_t)(len - COL_DATA) : 0;
		while (datalen && data[datalen - 1] == ' ')
			datalen--;
		if (datalen && data[0] == '*')
			continue; /* a warning line, not source */
		int level = 0;
		if (len > COL_LEVEL) {
			const char *lt = memchr(line + COL_LEVEL, '<', (size_t)(len > COL_TEXT - 1 ? 4 : len - COL_LEVEL));
			if (lt)
				level = atoi(lt + 1);
		}
		if (level >= MAX_LEVELS)
			level = MAX_LEVELS - 1;
		const char *raw = len > COL_TEXT ? line + COL_TEXT : "";
		bool has_text = len > COL_TEXT - 1;
		char text[256];
		normalize(raw, text, sizeof text);

		/* Level bookkeeping: a deeper level is opened by the last line one level up; a
		 * level whose opener is no longer that line belongs to a newer opener. */
		if (level > p->depth + 1)
			level = p->depth + 1; /* cannot skip a level: treat as the next one */
		for (int k = 1; k <= level; k++)
			if (k > p->depth || p->fr[k].parent != p->last[k - 1].seq) {
				open_level(p, k);
				p->depth = k;
			}
		p->depth = level;
		struct frame *fr = &p->fr[level];

		bool continuation = !has_text && has_addr && lineno == prev_lineno;
		if (has_text) {
			p->seq++;
			p->last[level].seq = p->seq;
			p->last[level].file = fr->file;
			p->last[level].lineno = (int)lineno;
			snprintf(p->last[level].text, sizeof p->last[level].text, "%s", text);
			if (!fr->expansion) {
				remember_line(p, fr->file, (int)lineno, text);
				note_macro_definition(p, text, fr->file);
			}
		}
		prev_lineno = (int)lineno;
		if (!has_addr || !datalen)
			continue;
		struct ldata d;
		if (!parse_data(data, datalen, &d))
			continue;
		char out[480];
		if (continuation && prev_text) {
			snprintf(out, sizeof out, "%s", prev_text);
		} else {
			/* A macro line: the definition as written (with its comment) when it is
			 * the line NASM expanded, else the expansion text. */
			const char *src = text;
			if (fr->expansion) {
				const char *def = recall_line(p, fr->file, (int)lineno);
				char body[256];
				if (def) {
					normalize(def, body, sizeof body);
					char *semi = strchr(body, ';');
					if (semi)
						*semi = '\0';
					size_t bl = strlen(body);
					while (bl && body[bl - 1] == ' ')
						body[--bl] = '\0';
					if (bl && strncmp(body, text, bl) == 0)
						src = def;
				}
			}
			if (fr->file >= 0)
				snprintf(out, sizeof out, "%s:%ld %s", p->file[fr->file].name, lineno, src);
			else
				snprintf(out, sizeof out, "%s", src);
			if (fr->expansion && fr->ctx[0])
				snprintf(out + strlen(out), sizeof out - strlen(out), " %s", fr->ctx);
		}
		char full[560];
		if (!bytes_match(cb, addr, &d))
			snprintf(full, sizeof full, "%s {the binary differs from these listed bytes}", out);
		else
			snprintf(full, sizeof full, "%s", out);
		const char *kept = keep(lb, full);
		if (!add_entry(lb, addr, d.size, kept)) {
			ok = false;
			snprintf(err, errn, "%s: out of memory", cb->listing);
			break;
		}
		/* Continuations inherit the line's text, not the "differs" note of its first part. */
		if (!continuation) {
			snprintf(prev_out, sizeof prev_out, "%s", out);
			prev_text = prev_out;
		}
	}
	free(line);
	parser_free(p);
	free(p);
	fclose(f);
	if (ok && lb->n == 0) {
		snprintf(err, errn, "%s: no assembled lines in the listing", cb->listing);
		ok = false;
	}
	return ok;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct listing_entry *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

bool listing_load(struct listing *l, const struct shim_code *c)
{
	memset(l, 0, sizeof *l);
	bool any = false;
	for (int b = 0; b < CB_N; b++) {
		struct listing_bin *lb = &l->bin[b];
		if (!c->bin[b].listing[0]) {
			if (!l->err[0])
				snprintf(l->err, sizeof l->err, "%s: the manifest names no listing for binary %d", c->dir, b);
			continue;
		}
		char err[sizeof l->err];
		if (!load_one(lb, &c->bin[b], err, sizeof err)) {
			if (!l->err[0])
				snprintf(l->err, sizeof l->err, "%s", err);
			continue;
		}
		/* Stable order by offset, so lookup can bisect. */
		qsort(lb->e, lb->n, sizeof *lb->e, cmp_entry);
		lb->loaded = true;
		any = true;
	}
	return any;
}

const char *listing_line(const struct listing *l, enum code_bin_id b, uint32_t off)
{
	if ((unsigned)b >= CB_N || !l->bin[b].loaded)
		return NULL;
	const struct listing_bin *lb = &l->bin[b];
	/* The last entry starting at or before off. */
	size_t lo = 0, hi = lb->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (lb->e[mid].off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct listing_entry *e = &lb->e[lo - 1];
	return off - e->off < e->size ? e->text : NULL;
}

void listing_free(struct listing *l)
{
	for (int b = 0; b < CB_N; b++) {
		for (size_t k = 0; k < l->bin[b].nstr; k++)
			free(l->bin[b].str[k]);
		free(l->bin[b].str);
		free(l->bin[b].e);
	}
	memset(l, 0, sizeof *l);
}

bool listing_locate(const struct image *img, int space, uint32_t eip, uint64_t pa, enum code_bin_id *b,
		    uint32_t *off)
{
	if (pa != UINT64_MAX) {
		/* The physical page decides: each binary is loaded at the start of its page. */
		uint64_t page = pa & ~(uint64_t)0xFFF;
		if (page == img->shim_pa)
			*b = CB_SHIM;
		else if (page == img->w[SP_HOST].obj_pa[OBJ_CODE])
			*b = CB_HOST;
		else if (page == img->w[SP_MON].obj_pa[OBJ_CODE])
			*b = CB_MON;
		else
			return false;
		*off = (uint32_t)(pa & 0xFFF);
		return true;
	}
	/* No physical address (the fetch faults in the model): go by the linear pages. */
	uint32_t host = img->ep[EP_HOST_MAIN] & PGMASK, mon = img->ep[EP_MONITOR_START] & PGMASK;
	if (eip - img->shim_lin < PGSIZE) {
		*b = CB_SHIM;
		*off = eip - img->shim_lin;
	} else if (space != SP_MON && eip - host < PGSIZE) {
		*b = CB_HOST;
		*off = eip - host;
	} else if (space != SP_HOST && eip - mon < PGSIZE) {
		*b = CB_MON;
		*off = eip - mon;
	} else {
		return false;
	}
	return true;
}

const char *listing_for_insn(const struct listing *l, const struct image *img, const struct tr_insn *in)
{
	enum code_bin_id b;
	uint32_t off;
	if (!listing_locate(img, in->space, in->cpu.eip, in->pa, &b, &off))
		return NULL;
	return listing_line(l, b, off);
}
