/*
 * timeline.c: the run as an SVG picture (see timeline.h).
 *
 * Everything is placed on one x scale (instruction index -> pixels) so a reader can follow
 * a vertical line from a violation down through the events and the page mappings in force
 * at that instruction. Labels that would overlap their neighbours move to a second or third
 * line, and are dropped when there is no room: every marker keeps its full text in a
 * <title> tooltip, so nothing is lost in a browser.
 */
#include "timeline.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../model/mmu.h"

#define W 1600
#define LEFT 210          /* room for row labels such as "M e0005000 monitor shim_alias" */
#define RIGHT 20
#define PW (W - LEFT - RIGHT)
#define CHAR_W 6.1        /* width of one character at font-size 10 (monospace) */

#define TITLE_H 52
#define VIOL_H 30
#define WSTRIP_H 12       /* window names, between the violation labels and the lanes */
#define LANE_H 22
#define NLANES 3
#define EVROW_H 24
#define AXIS_H 34
#define PAGE_H 17
#define LEVELS 3

enum { LANE_HOST, LANE_MON, LANE_OTHER };
static const char *const lane_label[NLANES] = {"host space", "monitor space", "transition / other"};
static const char *const lane_color[NLANES] = {"#4a7fc1", "#4f9a4f", "#9a9a9a"};

enum {
	ROW_TABLES, ROW_TSS, ROW_CR3, ROW_CRX, ROW_LSS, ROW_PTE, ROW_INVLPG, ROW_JMP, ROW_GUEST, ROW_FAULT, ROW_GDTW,
	NROWS
};
static const char *const row_label[NROWS] = {"lgdt / lidt", "TSS busy / ltr", "mov cr3", "mov cr0 / cr4", "lss",
					     "pte write", "invlpg", "far jmp", "guest runs", "fault", "other GDT write"};
static const char *const row_color[NROWS] = {"#1f6fb2", "#8c564b", "#d62728", "#e377c2", "#17becf", "#ff7f0e",
					     "#2ca02c", "#9467bd", "#7f7f7f", "#b00000", "#bcbd22"};

static int row_of(enum ev_kind k)
{
	switch (k) {
	case EV_LGDT:
	case EV_LIDT: return ROW_TABLES;
	case EV_BUSY_CLEAR:
	case EV_BUSY_SET:
	case EV_LTR: return ROW_TSS;
	case EV_MOV_CR3: return ROW_CR3;
	case EV_MOV_CR0:
	case EV_MOV_CR4: return ROW_CRX;
	case EV_LSS: return ROW_LSS;
	case EV_PTE_WRITE: return ROW_PTE;
	case EV_INVLPG: return ROW_INVLPG;
	case EV_FAR_JMP: return ROW_JMP;
	case EV_GUEST_RUN: return ROW_GUEST;
	case EV_FAULT: return ROW_FAULT;
	case EV_DESC_WRITE: return ROW_GDTW;
	default: return -1; /* shim_enter: the shaded window says it */
	}
}

/* ---- output helpers --------------------------------------------------------------------- */

struct svg {
	FILE *f;
	const struct pipeline *p;
	double scale;   /* pixels per instruction */
	uint32_t n;
	int top_panel_end, bottom_end;
};

static double X(const struct svg *s, double i) { return LEFT + i * s->scale; }

/* XML text: & < > " escaped; anything outside printable ASCII becomes '?' (the output is
 * declared nowhere, so it stays plain ASCII). */
static void esc(FILE *f, const char *t)
{
	for (; *t; t++) {
		switch (*t) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*t >= 0x20 && *t < 0x7f ? *t : '?', f); break;
		}
	}
}

static void text(const struct svg *s, double x, double y, const char *attrs, const char *t)
{
	fprintf(s->f, "<text x=\"%.1f\" y=\"%.1f\"%s%s>", x, y, attrs[0] ? " " : "", attrs);
	esc(s->f, t);
	fputs("</text>\n", s->f);
}

/* Which of LEVELS label lines at this row has room from x on; -1: none. */
static int place(double end[LEVELS], double x, double width)
{
	for (int l = 0; l < LEVELS; l++)
		if (x >= end[l] + 3) {
			end[l] = x + width;
			return l;
		}
	return -1;
}

/* ---- naming worlds and pages ---------------------------------------------------------- */

static const char *world_tag(const struct image *img, uint64_t v, int what)
{
	for (int s = 0; s < 2; s++) {
		const struct world *w = &img->w[s];
		uint64_t x = what == 0 ? w->regs.cr3 : what == 1 ? w->gdtr.base : what == 2 ? w->idtr.base
			: what == 3 ? w->cs : what == 4 ? w->tr : w->ds;
		if (v == x)
			return s == SP_HOST ? "H" : "M";
	}
	return what == 0 ? "xcr3" : "own";
}

static void ev_label(const struct image *img, const struct tr_event *ev, char *out, size_t n)
{
	switch (ev->kind) {
	case EV_LGDT: snprintf(out, n, "G:%s", world_tag(img, ev->a, 1)); break;
	case EV_LIDT: snprintf(out, n, "I:%s", world_tag(img, ev->a, 2)); break;
	case EV_BUSY_CLEAR: snprintf(out, n, "clr %s", ev->b == SP_HOST ? "H" : "M"); break;
	case EV_BUSY_SET: snprintf(out, n, "set %s", ev->b == SP_HOST ? "H" : "M"); break;
	case EV_LTR: snprintf(out, n, "ltr %s", world_tag(img, ev->a, 4)); break;
	case EV_MOV_CR3: snprintf(out, n, "->%s", world_tag(img, ev->b, 0)); break;
	case EV_MOV_CR0: snprintf(out, n, "cr0%s", (ev->a ^ ev->b) & CR0_PG ? (ev->b & CR0_PG ? " PG+" : " PG-") : ""); break;
	case EV_MOV_CR4: snprintf(out, n, "cr4%s", (ev->a ^ ev->b) & CR4_PGE ? (ev->b & CR4_PGE ? " PGE+" : " PGE-") : ""); break;
	case EV_LSS: snprintf(out, n, "ss %s", world_tag(img, ev->a, 5)); break;
	case EV_PTE_WRITE: snprintf(out, n, "%s %05" PRIx32, ev->space == SP_HOST ? "H" : "M", ev->lin >> 12); break;
	case EV_INVLPG: snprintf(out, n, "%05" PRIx64, ev->a >> 12); break;
	case EV_FAR_JMP: snprintf(out, n, "->%s", world_tag(img, ev->a, 3)); break;
	case EV_GUEST_RUN: snprintf(out, n, "guest"); break;
	case EV_FAULT: snprintf(out, n, "%s", ev->a == T_PF ? "#PF" : ev->a == T_GP ? "#GP" : ev->a == T_UD ? "#UD" : "#?"); break;
	case EV_DESC_WRITE: snprintf(out, n, "gdt"); break;
	default: snprintf(out, n, "%s", ev_name(ev->kind)); break;
	}
}

static void ev_full(const struct tr_event *ev, char *out, size_t n)
{
	switch (ev->kind) {
	case EV_PTE_WRITE:
		snprintf(out, n, "pte_write %s tables, pa 0x%" PRIx64 ": 0x%" PRIx64 " -> 0x%" PRIx64 " (maps 0x%08" PRIx32
			 "+0x%" PRIx32 ")", ev->space == SP_HOST ? "host" : "monitor", ev->a, ev->b, ev->c, ev->lin, ev->lin_size);
		break;
	case EV_FAULT:
		snprintf(out, n, "fault vector %" PRIu64 " error 0x%" PRIx64 " cr2 0x%08" PRIx64, ev->a, ev->b, ev->c);
		break;
	default:
		snprintf(out, n, "%s a=0x%" PRIx64 " b=0x%" PRIx64 " c=0x%" PRIx64, ev_name(ev->kind), ev->a, ev->b, ev->c);
		break;
	}
}

enum { CAT_NONE, CAT_SHIM, CAT_GUEST, CAT_HOST, CAT_MON, CAT_PT, CAT_OTHER, NCAT };
static const char *const cat_color[NCAT] = {"#ffffff", "#f4a261", "#c3a6f0", "#a8c8ee", "#a8dba8", "#dddddd", "#eeeeee"};
static const char *const cat_label[NCAT] = {"not mapped", "shim page", "guest page", "host object", "monitor object",
					    "paging structure", "other"};

static int phys_name(const struct image *img, uint64_t page, char *out, size_t n)
{
	if (page == img->shim_pa) {
		snprintf(out, n, "shim");
		return CAT_SHIM;
	}
	for (int s = 0; s < 2; s++)
		for (int k = 0; k < OBJ_NWORLD; k++)
			if (img->w[s].obj_pa[k] == page) {
				snprintf(out, n, "%s %s", s == SP_HOST ? "host" : "monitor", sc_obj_name(k));
				return s == SP_HOST ? CAT_HOST : CAT_MON;
			}
	for (int g = 0; g < SC_GUEST_PAGES; g++)
		if (img->guest_pa[g] && img->guest_pa[g] == page) {
			snprintf(out, n, "guest.page%d", g);
			return CAT_GUEST;
		}
	int sp = image_pt_space(img, page);
	if (sp >= 0) {
		snprintf(out, n, "%s paging structure", sp == SP_HOST ? "host" : "monitor");
		return CAT_PT;
	}
	out[0] = '\0';
	return CAT_OTHER;
}

/* ---- the page panel's data ------------------------------------------------------------ */

struct change {
	uint32_t after;   /* holds from instruction after+1 on; UINT32_MAX: from the start */
	bool mapped;
	bool global;      /* G=1: survives MOV CR3 while CR4.PGE=1 */
	uint64_t page;
};

#define MAX_PAGE_ROWS (3 * SC_MAX_MAPS)
#define MAX_CHANGES (4 * SC_MAX_ROUNDS + 8)

struct prow {
	int sp;
	uint32_t lin;
	char name[96];
	int nch;
	struct change ch[MAX_CHANGES];
};

static struct prow *add_row(struct prow *rows, int *nr, int sp, uint32_t lin, const char *name)
{
	lin &= PGMASK;
	for (int i = 0; i < *nr; i++)
		if (rows[i].sp == sp && rows[i].lin == lin) {
			if (!strstr(rows[i].name, name) && strlen(rows[i].name) + strlen(name) + 3 < sizeof rows[i].name)
				snprintf(rows[i].name + strlen(rows[i].name), sizeof rows[i].name - strlen(rows[i].name), ", %s", name);
			return &rows[i];
		}
	if (*nr == MAX_PAGE_ROWS)
		return NULL;
	struct prow *r = &rows[(*nr)++];
	memset(r, 0, sizeof *r);
	r->sp = sp;
	r->lin = lin;
	snprintf(r->name, sizeof r->name, "%s", name);
	return r;
}

static struct change walk_now(const struct physmem *pm, const struct image *img, const struct prow *r, uint32_t after)
{
	struct walk w = paging_walk(pm, &img->w[r->sp].regs, r->lin, ACC_READ, 0);
	bool ok = w.status == WALK_OK;
	return (struct change){after, ok, ok && w.global, ok ? w.pa & ~(uint64_t)0xFFF : 0};
}

/* Rows for both spaces, then the mapping of each at the start and after every instruction
 * that wrote a paging structure (memory replayed forward from the image). */
static int page_rows(const struct pipeline *p, struct prow *rows)
{
	const struct image *img = &p->img;
	const struct scenario *sc = &p->sc;
	const struct trace *t = &p->t;
	int nr = 0;
	for (int s = 0; s < 2; s++) {
		add_row(rows, &nr, s, img->shim_lin, "shim page");
		for (int k = 0; k < OBJ_NWORLD; k++) {
			char nm[48];
			snprintf(nm, sizeof nm, "%s %s", s == SP_HOST ? "host" : "monitor", sc_obj_name(k));
			add_row(rows, &nr, s, sc->w[s].lin[k], nm);
		}
		if (s == SP_MON)
			for (int k = MOBJ_SHIM_ALIAS; k < OBJ_NMON; k++) {
				char nm[48];
				snprintf(nm, sizeof nm, "monitor %s", sc_obj_name(k));
				add_row(rows, &nr, s, sc->w[s].lin[k], nm);
			}
		/* The other world's tables as seen from here: REACH is about exactly these. */
		int o = 1 - s;
		for (int k = OBJ_GDT; k <= OBJ_TSS; k++) {
			char nm[48];
			snprintf(nm, sizeof nm, "%s %s", o == SP_HOST ? "host" : "monitor", sc_obj_name(k));
			add_row(rows, &nr, s, sc->w[o].lin[k], nm);
		}
	}
	for (uint32_t e = 0; e < t->nev; e++) {
		const struct tr_event *ev = &t->ev[e];
		if (ev->kind == EV_PTE_WRITE && ev->lin_size && (ev->space == SP_HOST || ev->space == SP_MON))
			add_row(rows, &nr, ev->space, ev->lin, "pte write target");
	}
	/* The scenario's own mappings and what the guest reads: where a collision or a
	 * surviving global entry (TLB-GLOBAL) shows. Large pages by their first 4 KiB page. */
	for (int s = 0; s < 2; s++)
		for (int k = 0; k < sc->w[s].nmaps; k++)
			add_row(rows, &nr, s, sc->w[s].maps[k].lin, s == SP_HOST ? "host map" : "monitor map");
	for (int k = 0; k < sc->nguest; k++)
		add_row(rows, &nr, SP_MON, sc->guest[k].lin, "guest map");
	for (int k = 0; k < sc->ntouch; k++)
		add_row(rows, &nr, SP_MON, sc->touch[k], "guest reads");
	for (int i = 0; i < nr; i++)
		rows[i].ch[rows[i].nch++] = walk_now(&img->pm, img, &rows[i], UINT32_MAX);

	struct physmem m = img->pm;
	m.bytes = malloc(img->pm.size);
	if (!m.bytes)
		return -1;
	memcpy(m.bytes, img->pm.bytes, img->pm.size);
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		for (uint32_t k = 0; k < in->mem_n; k++) {
			const struct tr_mem *a = &t->mem[in->mem_first + k];
			uint8_t *q = a->write ? phys_ptr(&m, a->pa, a->size) : NULL;
			for (unsigned b = 0; q && b < a->size; b++)
				q[b] = (uint8_t)(a->value >> (8 * b));
		}
		bool pte = false;
		for (uint32_t k = 0; k < in->ev_n; k++)
			pte |= t->ev[in->ev_first + k].kind == EV_PTE_WRITE;
		if (!pte)
			continue;
		for (int r = 0; r < nr; r++) {
			struct change c = walk_now(&m, img, &rows[r], i);
			const struct change *last = &rows[r].ch[rows[r].nch - 1];
			if ((c.mapped != last->mapped || c.page != last->page || c.global != last->global) &&
			    rows[r].nch < MAX_CHANGES)
				rows[r].ch[rows[r].nch++] = c;
		}
	}
	free(m.bytes);
	/* Drop the other world's pages that this space never maps: noise, except that a
	 * missing mapping of a GDT/IDT/TSS is itself what a FAULT or REACH is about, so those
	 * stay when the run has such a violation. */
	bool reach = p->v.counts[R_REACH] || p->v.counts[R_FAULT];
	int k = 0;
	for (int i = 0; i < nr; i++) {
		bool never = rows[i].nch == 1 && !rows[i].ch[0].mapped;
		bool foreign = strncmp(rows[i].name, rows[i].sp == SP_HOST ? "monitor" : "host",
				       rows[i].sp == SP_HOST ? 7 : 4) == 0;
		if (never && foreign && !reach)
			continue;
		rows[k++] = rows[i];
	}
	return k;
}

/* ---- drawing ------------------------------------------------------------------------------ */

static void draw_header(struct svg *s, int nw)
{
	const struct pipeline *p = s->p;
	char b[400];
	snprintf(b, sizeof b, "shimcheck timeline: variant %s, scenario %s: %u instructions, %u round trip%s, end %s, %d violation%s",
		 p->code.variant, p->sc.name, p->t.n, p->img.rounds, p->img.rounds == 1 ? "" : "s", tr_end_name(p->t.end),
		 p->v.n, p->v.n == 1 ? "" : "s");
	text(s, 10, 20, "font-size=\"15\" font-weight=\"bold\"", b);
	snprintf(b, sizeof b, "x: instruction index; shaded: the %d switch window%s (H->M host to monitor, M->H back); "
		 "lanes: address space by CR3; red: violations. Hover a marker for the full event.", nw, nw == 1 ? "" : "s");
	text(s, 10, 38, "font-size=\"11\" fill=\"#444\"", b);
}

/* The windows, shaded from y0 (a strip above the lanes holds their names) down to y1. */
static void draw_windows(struct svg *s, const struct window *w, int nw, int y0, int y1)
{
	double end[LEVELS] = {-1e9, -1e9, -1e9};
	for (int x = 0; x < nw; x++) {
		double a = X(s, w[x].first), b = X(s, w[x].last + 1);
		fprintf(s->f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#ffe9a8\" fill-opacity=\"0.55\">"
			"<title>window %d %s: #%u..#%u</title></rect>\n", a, y0, b - a > 1 ? b - a : 1, y1 - y0, x,
			w[x].dir == DIR_H2M ? "host->monitor" : "monitor->host", w[x].first, w[x].last);
		char lbl[32];
		snprintf(lbl, sizeof lbl, "%s %d", w[x].dir == DIR_H2M ? "H->M" : "M->H", x);
		/* Only on the first line: a narrow window next to another loses its name, not
		 * the picture its order. */
		double wdt = strlen(lbl) * CHAR_W * 0.9;
		if (a + 1 + wdt <= W - 2 && place(end, a + 1, wdt) == 0)
			text(s, a + 1, y0 + 9, "font-size=\"9\" fill=\"#8a6d00\"", lbl);
		else
			end[0] = end[0] > b ? end[0] : b;
	}
}

static void draw_lanes(struct svg *s, int y)
{
	const struct trace *t = &s->p->t;
	for (int l = 0; l < NLANES; l++) {
		int ly = y + l * LANE_H;
		text(s, 10, ly + LANE_H / 2 + 4, "font-size=\"11\"", lane_label[l]);
		fprintf(s->f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ccc\"/>\n", LEFT, ly + LANE_H, W - RIGHT,
			ly + LANE_H);
	}
	/* One bar per run of instructions in the same space. */
	uint32_t i = 0;
	while (i < t->n) {
		int sp = t->insn[i].space;
		uint32_t j = i;
		while (j + 1 < t->n && t->insn[j + 1].space == sp)
			j++;
		int l = sp == SP_HOST ? LANE_HOST : sp == SP_MON ? LANE_MON : LANE_OTHER;
		double a = X(s, i), b = X(s, j + 1);
		fprintf(s->f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>#%u..#%u in the %s"
			" (CR3 %08" PRIx32 ")</title></rect>\n", a, y + l * LANE_H + 4, b - a > 0.8 ? b - a : 0.8, LANE_H - 8,
			lane_color[l], i, j, lane_label[l], t->insn[i].cpu.cr3);
		i = j + 1;
	}
}

/* has: n * NROWS flags, filled here: which instructions have a marker in which row, to keep
 * labels off the markers (allocated by the caller before any output). */
static void draw_events(struct svg *s, int y, bool *has)
{
	const struct trace *t = &s->p->t;
	double end[NROWS][LEVELS];
	for (int r = 0; r < NROWS; r++) {
		int ry = y + r * EVROW_H;
		text(s, 10, ry + EVROW_H / 2 + 4, "font-size=\"11\"", row_label[r]);
		fprintf(s->f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eee\"/>\n", LEFT, ry + EVROW_H / 2,
			W - RIGHT, ry + EVROW_H / 2);
		for (int l = 0; l < LEVELS; l++)
			end[r][l] = -1e9;
	}
	for (uint32_t i = 0; i < t->n; i++)
		for (uint32_t k = 0; k < t->insn[i].ev_n; k++) {
			int r = row_of(t->ev[t->insn[i].ev_first + k].kind);
			if (r >= 0)
				has[(size_t)i * NROWS + r] = true;
		}
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		for (int r = 0; r < NROWS; r++) {
			/* All of this instruction's events of this row: one marker. */
			int cnt = 0;
			char tip[1200] = "", first[32] = "";
			for (uint32_t k = 0; k < in->ev_n; k++) {
				const struct tr_event *ev = &t->ev[in->ev_first + k];
				if (row_of(ev->kind) != r)
					continue;
				if (!cnt)
					ev_label(&s->p->img, ev, first, sizeof first);
				char full[200];
				ev_full(ev, full, sizeof full);
				snprintf(tip + strlen(tip), sizeof tip - strlen(tip), "\n%s", full);
				cnt++;
			}
			if (!cnt)
				continue;
			double cx = X(s, i + 0.5);
			int cy = y + r * EVROW_H + EVROW_H / 2;
			fprintf(s->f, "<g><title>#%u %08" PRIx32 " ", i, in->cpu.eip);
			esc(s->f, in->text);
			esc(s->f, tip);
			fprintf(s->f, "</title><circle cx=\"%.1f\" cy=\"%d\" r=\"3.2\" fill=\"%s\"/></g>\n", cx, cy, row_color[r]);
			char lbl[48];
			if (cnt > 1)
				snprintf(lbl, sizeof lbl, "%s+%d", first, cnt - 1);
			else
				snprintf(lbl, sizeof lbl, "%s", first);
			double wdt = strlen(lbl) * CHAR_W * 0.9;
			double lx = cx + 4 + wdt <= W - 2 ? cx + 4 : cx - 4 - wdt; /* at the right edge: left of it */
			/* The inline line runs through the markers: use it only when no marker of
			 * this row comes before the label ends, else a line above or below. */
			bool clear = true;
			for (uint32_t j = i + 1; j < t->n && X(s, j + 0.5) - 4 < lx + wdt && clear; j++)
				clear = !has[(size_t)j * NROWS + r];
			double skip0 = end[r][0];
			if (!clear)
				end[r][0] = 1e9;
			int lv = place(end[r], lx, wdt);
			if (!clear)
				end[r][0] = skip0;
			if (lv < 0)
				continue;
			static const int dy[LEVELS] = {4, -5, 13};
			char attrs[64];
			snprintf(attrs, sizeof attrs, "font-size=\"9\" fill=\"%s\"", row_color[r]);
			text(s, lx, cy + dy[lv], attrs, lbl);
		}
	}
}

static void draw_axis(struct svg *s, int y)
{
	fprintf(s->f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", LEFT, y, W - RIGHT, y);
	static const uint32_t steps[] = {1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000};
	uint32_t step = steps[sizeof steps / sizeof steps[0] - 1];
	for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
		if (s->n / steps[k] <= 24) {
			step = steps[k];
			break;
		}
	for (uint32_t i = 0; i <= s->n; i += step) {
		double x = X(s, i);
		fprintf(s->f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n", x, y, x, y + 5);
		char b[16];
		snprintf(b, sizeof b, "%u", i);
		text(s, x - strlen(b) * CHAR_W / 2, y + 17, "font-size=\"10\"", b);
	}
	text(s, 10, y + 17, "font-size=\"11\"", "instruction #");
}

static void draw_pages(struct svg *s, const struct prow *rows, int nr, int y)
{
	const struct image *img = &s->p->img;
	text(s, 10, y + 14, "font-size=\"13\" font-weight=\"bold\"",
	     "linear pages -> physical pages, per space (at the start, and after each PTE write)");
	y += 24;
	for (int sp = 0; sp < 2; sp++) {
		char h[128];
		snprintf(h, sizeof h, "%s space (CR3 %08" PRIx32 "%s)", sp == SP_HOST ? "host" : "monitor", img->w[sp].regs.cr3,
			 img->w[sp].regs.cr4 & CR4_PAE ? ", PAE" : img->w[sp].regs.cr4 & CR4_PSE ? ", PSE" : "");
		text(s, 10, y + 12, "font-size=\"11\" font-weight=\"bold\"", h);
		y += PAGE_H;
		for (int r = 0; r < nr; r++) {
			const struct prow *pr = &rows[r];
			if (pr->sp != sp)
				continue;
			char lbl[140];
			snprintf(lbl, sizeof lbl, "%08" PRIx32 " %s", pr->lin, pr->name);
			if (strlen(lbl) > 33)
				memcpy(lbl + 30, "...", 4);
			/* The label may be cut: its tooltip has the whole name. */
			fprintf(s->f, "<text x=\"14\" y=\"%d\" font-size=\"10\"><title>%s linear page %08" PRIx32 ": ", y + 12,
				sp == SP_HOST ? "host" : "monitor", pr->lin);
			esc(s->f, pr->name);
			fputs("</title>", s->f);
			esc(s->f, lbl);
			fputs("</text>\n", s->f);
			for (int c = 0; c < pr->nch; c++) {
				const struct change *ch = &pr->ch[c];
				double a = ch->after == UINT32_MAX ? LEFT : X(s, ch->after + 1);
				double b = c + 1 < pr->nch ? X(s, pr->ch[c + 1].after + 1) : W - RIGHT;
				char nm[64] = "", seg[96];
				int cat = ch->mapped ? phys_name(img, ch->page, nm, sizeof nm) : CAT_NONE;
				if (ch->mapped)
					snprintf(seg, sizeof seg, "%" PRIx64 "%s%s%s", ch->page, nm[0] ? " " : "", nm,
						 ch->global ? " (global)" : "");
				else
					snprintf(seg, sizeof seg, "not mapped");
				fprintf(s->f, "<g><title>%s %08" PRIx32 " from %s: ", sp == SP_HOST ? "host" : "monitor", pr->lin,
					ch->after == UINT32_MAX ? "the start" : "after #");
				if (ch->after != UINT32_MAX)
					fprintf(s->f, "%u", ch->after);
				fputs(" -&gt; ", s->f);
				esc(s->f, seg);
				fprintf(s->f, "</title><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" stroke=\"%s\"%s/></g>\n",
					a, y + 2, b - a > 0.8 ? b - a : 0.8, PAGE_H - 4, cat_color[cat], ch->mapped ? "#888" : "#bbb",
					ch->mapped ? "" : " stroke-dasharray=\"3,2\"");
				if (b - a > strlen(seg) * CHAR_W * 0.9 + 4)
					text(s, a + 3, y + 12, "font-size=\"9\"", seg);
				else if (b - a > 40) {
					char shortseg[24];
					snprintf(shortseg, sizeof shortseg, "%" PRIx64, ch->page);
					if (ch->mapped && b - a > strlen(shortseg) * CHAR_W * 0.9 + 4)
						text(s, a + 3, y + 12, "font-size=\"9\"", shortseg);
				}
				if (ch->after != UINT32_MAX) /* the write itself */
					fprintf(s->f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ff7f0e\" "
						"stroke-width=\"2\"/>\n", a, y + 1, a, y + PAGE_H - 1);
			}
			y += PAGE_H;
		}
		y += 6;
	}
	s->bottom_end = y;
}

static void draw_violations(struct svg *s, int label_y, int y0, int y1)
{
	const struct pipeline *p = s->p;
	double end[LEVELS] = {-1e9, -1e9, -1e9};
	text(s, 10, label_y + 14, "font-size=\"11\" fill=\"#d00000\"", "violations");
	for (uint32_t i = 0; i < p->t.n; i++) {
		char ids[160] = "", tip[2000] = "";
		int cnt = 0;
		for (int k = 0; k < p->v.n && k < MAX_VIOLATIONS; k++) {
			const struct violation *v = &p->v.v[k];
			if (v->insn != i)
				continue;
			if (!strstr(ids, rule_id(v->rule)))
				snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", ids[0] ? "," : "", rule_id(v->rule));
			snprintf(tip + strlen(tip), sizeof tip - strlen(tip), "%s%s: %s", cnt ? "\n" : "", rule_id(v->rule), v->msg);
			cnt++;
		}
		if (!cnt)
			continue;
		double x = X(s, i + 0.5);
		fprintf(s->f, "<g><title>#%u: ", i);
		esc(s->f, tip);
		fprintf(s->f, "</title><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d00000\" stroke-width=\"1.5\" "
			"stroke-opacity=\"0.8\"/></g>\n", x, y0, x, y1);
		double wdt = strlen(ids) * CHAR_W;
		int lv = x + 3 + wdt <= W - 2 ? place(end, x + 3, wdt) : -1;
		if (lv < 0) { /* no room to the right: try left of the line */
			lv = place(end, x - 3 - wdt, wdt);
			if (lv < 0)
				continue;
			x -= 6 + wdt;
		}
		text(s, x + 3, label_y + 12 + lv * 10, "font-size=\"10\" font-weight=\"bold\" fill=\"#d00000\"", ids);
	}
}

static int draw_legend(struct svg *s, int y)
{
	double x = 10;
	text(s, x, y + 12, "font-size=\"11\" font-weight=\"bold\"", "physical pages:");
	x += 110;
	for (int c = 0; c < NCAT; c++) {
		fprintf(s->f, "<rect x=\"%.1f\" y=\"%d\" width=\"14\" height=\"10\" fill=\"%s\" stroke=\"#888\"%s/>\n", x, y + 3,
			cat_color[c], c == CAT_NONE ? " stroke-dasharray=\"3,2\"" : "");
		text(s, x + 18, y + 12, "font-size=\"10\"", cat_label[c]);
		x += 18 + strlen(cat_label[c]) * CHAR_W + 16;
	}
	fprintf(s->f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>\n", x,
		y + 2, x, y + 13);
	text(s, x + 6, y + 12, "font-size=\"10\"", "a PTE write changed it here");
	y += 20;
	text(s, 10, y + 12, "font-size=\"10\" fill=\"#444\"",
	     "labels: G:/I: LGDT/LIDT of the H(ost), M(onitor) or shim's own table; clr/set: TSS busy bit of that world; "
	     "->H/->M: MOV CR3 or far JMP into that world (xcr3: transition tables);");
	text(s, 10, y + 26, "font-size=\"10\" fill=\"#444\"",
	     "ss H/M/own: LSS to that world's or the shim's stack; H/M nnnnn: PTE write in that space for linear page "
	     "nnnnn000; invlpg nnnnn: that page; +N: N more events at that instruction");
	return y + 34;
}

static int draw_violation_list(struct svg *s, int y)
{
	const struct pipeline *p = s->p;
	if (p->v.n == 0) {
		text(s, 10, y + 12, "font-size=\"11\" fill=\"#2a7a2a\"", "no violations: every rule held");
		return y + 20;
	}
	for (int k = 0; k < p->v.n && k < MAX_VIOLATIONS && k < 14; k++) {
		const struct violation *v = &p->v.v[k];
		char b[420];
		if (v->insn < p->t.n)
			snprintf(b, sizeof b, "%s #%u 0x%08" PRIx32 ": %s", rule_id(v->rule), v->insn, p->t.insn[v->insn].cpu.eip,
				 v->msg);
		else
			snprintf(b, sizeof b, "%s: %s", rule_id(v->rule), v->msg);
		if (strlen(b) > 250)
			memcpy(b + 247, "...", 4);
		text(s, 10, y + 12, "font-size=\"10\" fill=\"#d00000\"", b);
		y += 15;
	}
	if (p->v.n > 14) {
		char b[64];
		snprintf(b, sizeof b, "(%d more)", p->v.n - 14);
		text(s, 10, y + 12, "font-size=\"10\" fill=\"#d00000\"", b);
		y += 15;
	}
	return y + 6;
}

int timeline_svg(FILE *out, const struct pipeline *p)
{
	struct svg s = {out, p, 0, p->t.n, 0, 0};
	s.scale = p->t.n ? (double)PW / p->t.n : PW;
	struct prow *rows = calloc(MAX_PAGE_ROWS, sizeof *rows);
	if (!rows)
		return -1;
	int nr = page_rows(p, rows);
	bool *has = calloc((size_t)p->t.n * NROWS + 1, sizeof *has);
	if (nr < 0 || !has) {
		free(rows);
		free(has);
		return -1;
	}
	static struct window w[2 * SC_MAX_ROUNDS + 8];
	int nw = find_windows(&p->t, &p->img, w, (int)(sizeof w / sizeof w[0]));

	/* Layout, top to bottom. */
	int viol_y = TITLE_H, lane_y = viol_y + VIOL_H + WSTRIP_H, ev_y = lane_y + NLANES * LANE_H + 6;
	int axis_y = ev_y + NROWS * EVROW_H + 4, pages_y = axis_y + AXIS_H;
	int page_lines = 0;
	for (int sp = 0; sp < 2; sp++) {
		page_lines++;
		for (int r = 0; r < nr; r++)
			page_lines += rows[r].sp == sp;
	}
	int legend_y = pages_y + 24 + page_lines * PAGE_H + 2 * 6 + 10; /* as draw_pages advances */
	int nlist = p->v.n == 0 ? 1 : (p->v.n > 14 ? 15 : p->v.n);
	int height = legend_y + 54 + nlist * 15 + 20; /* legend: 20 + 34, then the list */

	fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\">\n", W, height, W, height);
	fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, height);
	draw_header(&s, nw);
	draw_windows(&s, w, nw, lane_y - WSTRIP_H, axis_y);
	draw_lanes(&s, lane_y);
	draw_events(&s, ev_y, has);
	draw_axis(&s, axis_y);
	draw_pages(&s, rows, nr, pages_y);
	/* The windows again, faintly, over the page panel: a write inside a window shows as such. */
	for (int x = 0; x < nw; x++) {
		double a = X(&s, w[x].first), b = X(&s, w[x].last + 1);
		fprintf(out, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#ffe9a8\" fill-opacity=\"0.25\"/>\n",
			a, pages_y + 24, b - a > 1 ? b - a : 1, s.bottom_end - pages_y - 24);
	}
	draw_violations(&s, viol_y, viol_y + 4, s.bottom_end);
	int y = draw_legend(&s, legend_y);
	draw_violation_list(&s, y);
	fputs("</svg>\n", out);
	free(rows);
	free(has);
	return ferror(out) ? -1 : 0;
}
