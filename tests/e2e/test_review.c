/*
 * test_review: the review outputs on real runs of the real shims.
 *
 *  - listing: the NASM listing lines behind shim offsets (a macro expansion in hardened's
 *    shim, an included file in the host), every executed instruction mapped to a line, and
 *    a patched binary flagged as differing from its listing;
 *  - evidence: walk_evidence prints the entries paging_walk reads; violation_evidence names
 *    the #PF's CR2 and why the walk stops, from memory as it was at that instruction, and
 *    leaves the engine's memory as it found it;
 *  - diff: a JSONL trace (written by the real CLI) against itself and against the other
 *    variant's, the first divergence cross-checked against the traces in memory; unreadable
 *    input; the two variants' switch orders side by side;
 *  - timeline: well-formed SVG with the rule IDs of a failing run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../model/mmu.h"
#include "diff.h"
#include "evidence.h"
#include "listing.h"
#include "pipeline.h"
#include "timeline.h"

static struct pipeline P, Q;
static char tmpdir[] = "/tmp/test_review.XXXXXX";

static void run(struct pipeline *p, const char *variant, const char *scenario_path)
{
	pl_init(p);
	char dir[512];
	snprintf(dir, sizeof dir, "%s/%s", SHIMCHECK_SHIM_DIR, variant);
	if (pl_load_code(p, dir) != PL_OK || pl_load_scenario(p, scenario_path) != PL_OK)
		fail_msg("%s", p->err);
	enum pl_status st = pl_run(p);
	if (st != PL_OK && st != PL_VIOLATION)
		fail_msg("%s", p->err);
}

#define DEFAULT_SCENARIO SHIMCHECK_SOURCE_DIR "/scenarios/default.json"
#define HOST_LACKS SHIMCHECK_SOURCE_DIR "/tests/findings/host-lacks-monitor-gdt.json"

/* Everything a function wrote to a FILE, as a string (caller frees). */
struct capture {
	FILE *f;
	char *buf;
	size_t len;
};
static void cap_open(struct capture *c)
{
	c->buf = NULL;
	c->len = 0;
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
}
static char *cap_close(struct capture *c)
{
	assert_int_equal(fclose(c->f), 0);
	return c->buf;
}

/* ---- listing ---------------------------------------------------------------------------- */

static void listing_hardened(void **state)
{
	(void)state;
	struct shim_code c;
	char err[512];
	assert_true(code_load(SHIMCHECK_SHIM_DIR "/hardened", &c, err, sizeof err));
	struct listing l;
	assert_true(listing_load(&l, &c));

	/* __host2monitor is SWITCH M, H: its first instruction is the macro's LIDT of the shim's
	 * own IDT, shown with the macro line's comment and the invocation. */
	const char *s = listing_line(&l, CB_SHIM, c.entry[EP_SHIM_H2M]);
	assert_non_null(s);
	print_message("__host2monitor: %s\n", s);
	assert_non_null(strstr(s, "lidt [ebx + D_SHIM_IDTR]"));
	assert_non_null(strstr(s, "shim.asm:"));
	assert_non_null(strstr(s, "[SWITCH M, H at shim.asm:"));
	assert_non_null(strstr(s, "; gates, descriptors")); /* the comment NASM drops from expansions */
	/* A byte inside that 7-byte instruction maps to the same line. */
	assert_string_equal(listing_line(&l, CB_SHIM, c.entry[EP_SHIM_H2M] + 3), s);
	/* __monitor2host expands the same macro with the other arguments. */
	s = listing_line(&l, CB_SHIM, c.entry[EP_SHIM_M2H]);
	assert_non_null(s);
	assert_non_null(strstr(s, "[SWITCH H, M at shim.asm:"));

	/* host_call is in host.inc, included by host.asm. */
	s = listing_line(&l, CB_HOST, c.entry[EP_HOST_CALL]);
	assert_non_null(s);
	print_message("host_call: %s\n", s);
	assert_non_null(strstr(s, "call host2monitor"));
	assert_true(strncmp(s, "host.inc:", 9) == 0);
	/* A macro defined and expanded inside an included file (OBSERVE in host.inc). */
	s = listing_line(&l, CB_HOST, c.entry[EP_HOST_CALL] + 5);
	assert_non_null(s);
	assert_non_null(strstr(s, "[OBSERVE 1 at host.inc:"));
	assert_null(strstr(s, "monitor.inc")); /* not the monitor's file */

	/* The monitor's guest_run is in monitor.inc. */
	s = listing_line(&l, CB_MON, c.entry[EP_GUEST_RUN]);
	assert_non_null(s);
	assert_true(strncmp(s, "monitor.inc:", 12) == 0);
	/* Past the end of the host binary: nothing. */
	assert_null(listing_line(&l, CB_HOST, (uint32_t)c.bin[CB_HOST].size + 16));
	assert_null(listing_line(&l, CB_N, 0));
	listing_free(&l);

	/* A listing that cannot be read: that binary answers NULL, the others still answer. */
	snprintf(c.bin[CB_HOST].listing, sizeof c.bin[CB_HOST].listing, "/nonexistent/host.lst");
	assert_true(listing_load(&l, &c));
	assert_null(listing_line(&l, CB_HOST, c.entry[EP_HOST_CALL]));
	assert_non_null(listing_line(&l, CB_SHIM, c.entry[EP_SHIM_H2M]));
	assert_non_null(strstr(l.err, "/nonexistent/host.lst: cannot read"));
	listing_free(&l);
	/* None at all (a code directory whose manifest names no listings). */
	for (int b = 0; b < CB_N; b++)
		c.bin[b].listing[0] = '\0';
	assert_false(listing_load(&l, &c));
	assert_null(listing_line(&l, CB_SHIM, 0));
	listing_free(&l);
	code_free(&c);
}

/* Every instruction of a default run of hardened comes from a listed line, through the
 * physical page its fetch reached (the mode switch runs the shim at its physical address). */
static void listing_covers_run(void **state)
{
	(void)state;
	run(&P, "hardened", SHIMCHECK_SOURCE_DIR "/scenarios/modes.json");
	assert_int_equal(P.v.n, 0);
	struct listing l;
	assert_true(listing_load(&l, &P.code));
	unsigned at_identity = 0;
	for (uint32_t i = 0; i < P.t.n; i++) {
		const struct tr_insn *in = &P.t.insn[i];
		const char *s = listing_for_insn(&l, &P.img, in);
		if (!s)
			fail_msg("#%u %08" PRIx32 " `%s`: no listing line", i, in->cpu.eip, in->text);
		assert_null(strstr(s, "differs"));
		at_identity += (in->cpu.eip & PGMASK) == (uint32_t)P.img.shim_pa;
	}
	assert_true(at_identity > 0); /* the stretch at the identity address was mapped too */
	/* By linear address alone (no physical address known), in the host's space. */
	enum code_bin_id b;
	uint32_t off;
	assert_true(listing_locate(&P.img, SP_HOST, P.img.ep[EP_HOST_CALL], UINT64_MAX, &b, &off));
	assert_int_equal(b, CB_HOST);
	assert_int_equal(off, P.code.entry[EP_HOST_CALL]);
	assert_false(listing_locate(&P.img, SP_HOST, 0x00001000, UINT64_MAX, &b, &off));
	listing_free(&l);
	pl_free(&P);
}

/* Offset of the first listed line of binary b whose text contains needle. */
static uint32_t listed_offset(const struct listing *l, enum code_bin_id b, const char *needle)
{
	for (size_t k = 0; k < l->bin[b].n; k++)
		if (strstr(l->bin[b].e[k].text, needle))
			return l->bin[b].e[k].off;
	fail_msg("no listed line with `%s`", needle);
	return 0;
}

/* ---- evidence ---------------------------------------------------------------------------- */

static void walk_evidence_shim_page(void **state)
{
	(void)state;
	run(&P, "literal", DEFAULT_SCENARIO);
	const struct paging_regs *r = &P.img.w[SP_HOST].regs;
	uint32_t lin = P.img.shim_lin + 0x35;
	struct walk w = paging_walk(&P.img.pm, r, lin, ACC_FETCH, 0);
	assert_int_equal(w.status, WALK_OK);
	assert_int_equal(w.nlevels, 2);
	char out[800], want[160];
	assert_int_equal(walk_evidence(&P.img.pm, r, lin, ACC_FETCH, out, sizeof out), WALK_OK);
	print_message("%s\n", out);
	snprintf(want, sizeof want, "CR3 0x%08" PRIx32 " -> PDE[%u] @0x%" PRIx64 " = 0x%08" PRIx64 " (P W", r->cr3, PDX(lin),
		 w.level[0].entry_pa, w.level[0].value);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "-> PTE[%u] @0x%" PRIx64 " = 0x%08" PRIx64 " (P W", PTX(lin), w.level[1].entry_pa,
		 w.level[1].value);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "-> 0x%" PRIx64, P.img.shim_pa + 0x35);
	assert_true(strlen(out) > strlen(want));
	assert_string_equal(out + strlen(out) - strlen(want), want); /* the walk ends there */

	/* Where nothing is mapped: the walk stops at a PDE that is not present. */
	assert_int_equal(walk_evidence(&P.img.pm, r, 0x00001000, ACC_READ, out, sizeof out), WALK_FAULT);
	assert_non_null(strstr(out, "(not present) => #PF, error code 0x0 (not present, read)"));
	/* Paging off. */
	struct paging_regs off = *r;
	off.cr0 &= ~CR0_PG;
	walk_evidence(&P.img.pm, &off, 0x00401000, ACC_READ, out, sizeof out);
	assert_non_null(strstr(out, "CR0.PG=0"));
	pl_free(&P);
}

/* PAE: the PDPTE register comes first. */
static void walk_evidence_pae(void **state)
{
	(void)state;
	run(&P, "literal", SHIMCHECK_SOURCE_DIR "/scenarios/pae.json");
	const struct paging_regs *r = &P.img.w[SP_MON].regs;
	assert_true(r->cr4 & CR4_PAE);
	char out[800], want[96];
	assert_int_equal(walk_evidence(&P.img.pm, r, P.img.shim_lin, ACC_READ, out, sizeof out), WALK_OK);
	print_message("%s\n", out);
	snprintf(want, sizeof want, "-> PDPTE[%u] = 0x%016" PRIx64 " (P; the register CR3 loaded)", PAE_PDPX(P.img.shim_lin),
		 r->pdpte[PAE_PDPX(P.img.shim_lin)]);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "-> PDE["));
	pl_free(&P);
}

static void violation_evidence_fault(void **state)
{
	(void)state;
	run(&P, "literal", HOST_LACKS);
	const struct violation *fault = NULL, *order = NULL;
	for (int i = 0; i < P.v.n; i++) {
		if (P.v.v[i].rule == R_FAULT)
			fault = &P.v.v[i];
		if (P.v.v[i].rule == R_ORDER)
			order = &P.v.v[i];
	}
	assert_non_null(fault);
	assert_non_null(order);
	struct physmem em = engine_memory(P.eng);
	uint8_t *before = malloc(em.size);
	assert_non_null(before);
	memcpy(before, em.bytes, em.size);

	char out[2048];
	violation_evidence(&P, fault, out, sizeof out);
	print_message("%s\n", out);
	assert_non_null(strstr(out, "CR2 0xe0002035 (write)"));
	assert_non_null(strstr(out, "under the host's CR3"));
	assert_non_null(strstr(out, "not present"));
	assert_memory_equal(before, engine_memory(P.eng).bytes, em.size); /* a copy was wound back */
	free(before);
	/* ORDER names no address. */
	violation_evidence(&P, order, out, sizeof out);
	assert_string_equal(out, "");
	pl_free(&P);
}

/* A REACH shows the walk under both CR3s; the monitor's reaches the guest page. */
static void violation_evidence_reach(void **state)
{
	(void)state;
	run(&P, "literal", SHIMCHECK_SOURCE_DIR "/tests/findings/guest-at-host-gdt.json");
	const struct violation *reach = NULL;
	for (int i = 0; i < P.v.n && !reach; i++)
		if (P.v.v[i].rule == R_REACH)
			reach = &P.v.v[i];
	assert_non_null(reach);
	char out[2048];
	violation_evidence(&P, reach, out, sizeof out);
	print_message("%s\n", out);
	assert_non_null(strstr(out, "under the monitor's CR3"));
	assert_non_null(strstr(out, "\nunder the host's CR3"));
	/* the physical address REACH reports is where the monitor's walk ends */
	const char *phys = strstr(reach->msg, "reaches physical ");
	assert_non_null(phys);
	char want[48];
	snprintf(want, sizeof want, "-> %.*s\n", (int)strcspn(phys + 17, " "), phys + 17);
	assert_non_null(strstr(out, want));
	pl_free(&P);
}

/* The first INVLPG of the monitor prologue replaced by NOPs, in memory: the INVLPG violation
 * shows the entry as the fetch saw it and as it was before the write (the stale one), and
 * the listing says the bytes there are no longer what was assembled. */
static void invlpg_mutant_evidence_and_listing(void **state)
{
	(void)state;
	pl_init(&P);
	assert_int_equal(pl_load_code(&P, SHIMCHECK_SHIM_DIR "/literal"), PL_OK);
	struct listing l;
	assert_true(listing_load(&l, &P.code));
	uint32_t off = listed_offset(&l, CB_MON, "invlpg [edi]");
	listing_free(&l);
	memset(P.code.bin[CB_MON].bytes + off, 0x90, 3);
	assert_int_equal(pl_load_scenario(&P, DEFAULT_SCENARIO), PL_OK);
	assert_int_equal(pl_run(&P), PL_VIOLATION);
	const struct violation *inv = NULL;
	for (int i = 0; i < P.v.n && !inv; i++)
		if (P.v.v[i].rule == R_INVLPG)
			inv = &P.v.v[i];
	assert_non_null(inv);
	char out[2048];
	violation_evidence(&P, inv, out, sizeof out);
	print_message("%s\n", out);
	char want[64];
	snprintf(want, sizeof want, "fetch 0x%08" PRIx32 " at #%u", P.img.shim_lin, inv->insn);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "-> 0x%" PRIx64 "\n", P.img.shim_pa); /* now: the shim page */
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\nbefore the write at #"));
	snprintf(want, sizeof want, "-> 0x%" PRIx64, P.img.guest_pa[0]); /* then: the guest's page */
	assert_non_null(strstr(strstr(out, "\nbefore"), want));

	assert_true(listing_load(&l, &P.code));
	const char *s = listing_line(&l, CB_MON, off);
	assert_non_null(s);
	assert_non_null(strstr(s, "invlpg [edi]"));
	assert_non_null(strstr(s, "{the binary differs from these listed bytes}"));
	listing_free(&l);

	/* And the timeline of this run names the rule. */
	struct capture c;
	cap_open(&c);
	assert_int_equal(timeline_svg(c.f, &P), 0);
	char *svg = cap_close(&c);
	assert_non_null(strstr(svg, "INVLPG"));
	free(svg);
	pl_free(&P);
}

/* ---- diff ------------------------------------------------------------------------------- */

static void write_trace(const char *variant, const char *path)
{
	char cmd[1536];
	snprintf(cmd, sizeof cmd, "cd %s && %s run --variant %s --trace %s > /dev/null 2>&1", SHIMCHECK_SOURCE_DIR,
		 SHIMCHECK_BIN, variant, path);
	int st = system(cmd);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void trace_diff_jsonl(void **state)
{
	(void)state;
	char lit[600], hard[600], bad[600];
	snprintf(lit, sizeof lit, "%s/literal.jsonl", tmpdir);
	snprintf(hard, sizeof hard, "%s/hardened.jsonl", tmpdir);
	write_trace("literal", lit);
	write_trace("hardened", hard);

	struct capture c;
	cap_open(&c);
	assert_int_equal(trace_diff(c.f, lit, lit), 0);
	char *o = cap_close(&c);
	assert_non_null(strstr(o, "the traces are identical"));
	free(o);

	/* Where do the two variants part? Ask the traces in memory, then the diff. */
	run(&P, "literal", DEFAULT_SCENARIO);
	run(&Q, "hardened", DEFAULT_SCENARIO);
	uint32_t k = 0;
	while (k < P.t.n && k < Q.t.n && P.t.insn[k].cpu.eip == Q.t.insn[k].cpu.eip &&
	       P.t.insn[k].space == Q.t.insn[k].space && P.t.insn[k].cpu.cr3 == Q.t.insn[k].cpu.cr3 &&
	       strcmp(P.t.insn[k].text, Q.t.insn[k].text) == 0 && P.t.insn[k].len == Q.t.insn[k].len &&
	       memcmp(P.t.insn[k].bytes, Q.t.insn[k].bytes, P.t.insn[k].len) == 0)
		k++;
	assert_true(k < P.t.n);
	cap_open(&c);
	assert_int_equal(trace_diff(c.f, lit, hard), 1);
	o = cap_close(&c);
	print_message("%s", o);
	char want[160];
	snprintf(want, sizeof want, "control flow: first divergence at #%u", k);
	assert_non_null(strstr(o, want));
	assert_non_null(strstr(o, "variant              A \"literal\" | B \"hardened\""));
	snprintf(want, sizeof want, "!= #%-4u H %08" PRIx32 " %s", k, P.t.insn[k].cpu.eip, P.t.insn[k].text);
	assert_non_null(strstr(o, want)); /* side by side: A's instruction */
	snprintf(want, sizeof want, "| #%-4u H %08" PRIx32 " %s\n", k, Q.t.insn[k].cpu.eip, Q.t.insn[k].text);
	assert_non_null(strstr(o, want)); /* and B's */
	snprintf(want, sizeof want, "  instructions%29u %14u   !=", P.t.n, Q.t.n);
	assert_non_null(strstr(o, want));
	assert_non_null(strstr(o, "the traces differ"));
	free(o);

	/* Unreadable input: one line naming the file and line. */
	snprintf(bad, sizeof bad, "%s/bad.jsonl", tmpdir);
	FILE *f = fopen(bad, "w");
	assert_non_null(f);
	fprintf(f, "{\"type\":\"header\",\"schema\":1}\n{\"type\":\"insn\",\n");
	fclose(f);
	cap_open(&c);
	assert_int_equal(trace_diff(c.f, lit, bad), 2);
	o = cap_close(&c);
	snprintf(want, sizeof want, "%s:2: not JSON", bad);
	assert_true(strncmp(o, want, strlen(want)) == 0);
	assert_int_equal(strchr(o, '\n') - o + 1, (long)strlen(o)); /* one line */
	free(o);
	cap_open(&c);
	snprintf(bad, sizeof bad, "%s/missing.jsonl", tmpdir);
	assert_int_equal(trace_diff(c.f, bad, lit), 2);
	o = cap_close(&c);
	assert_non_null(strstr(o, "missing.jsonl:0: cannot read"));
	free(o);

	/* The same two runs in memory: literal's documented order against hardened's. */
	cap_open(&c);
	assert_int_equal(variant_diff(c.f, &P, &Q), 1);
	o = cap_close(&c);
	print_message("%.900s\n", o);
	assert_non_null(strstr(o, "window 0, host->monitor"));
	assert_non_null(strstr(o, "  order A: lgdt lidt busy_clear busy_set ltr mov_cr3 lss far_jmp\n"));
	assert_non_null(strstr(o, "  order B: lidt lgdt lss mov_cr4 mov_cr3 mov_cr4 mov_cr0 lgdt busy_clear busy_set ltr lss lidt far_jmp\n"));
	assert_non_null(strstr(o, "window 3, monitor->host"));
	assert_non_null(strstr(o, "order B: pte_write invlpg guest_run pte_write invlpg"));
	assert_non_null(strstr(o, "  A literal: none\n"));
	free(o);
	cap_open(&c);
	assert_int_equal(variant_diff(c.f, &P, &P), 0);
	o = cap_close(&c);
	assert_non_null(strstr(o, "the runs switch in the same order and violate the same rules"));
	free(o);
	pl_free(&P);
	pl_free(&Q);
}

/* ---- timeline --------------------------------------------------------------------------- */

/* Tags balance: every <name ...> has its </name>, in order; <.../> closes itself. */
static void assert_balanced(const char *x)
{
	char stack[64][24];
	int depth = 0;
	for (const char *p = strchr(x, '<'); p; p = strchr(p + 1, '<')) {
		const char *e = strchr(p, '>');
		assert_non_null(e);
		bool closing = p[1] == '/', selfclose = e[-1] == '/';
		const char *name = p + 1 + closing;
		size_t n = strcspn(name, " />");
		assert_true(n > 0 && n < sizeof stack[0]);
		if (closing) {
			assert_true(depth > 0);
			depth--;
			if (strlen(stack[depth]) != n || strncmp(stack[depth], name, n) != 0)
				fail_msg("</%.*s> closes <%s>", (int)n, name, stack[depth]);
		} else if (!selfclose) {
			assert_true(depth < 64);
			memcpy(stack[depth], name, n);
			stack[depth++][n] = '\0';
		}
		/* text between tags must not hold a raw '<' or '&' that is not an entity */
		const char *next = strchr(e, '<');
		for (const char *q = e + 1; next && q < next; q++)
			if (*q == '&')
				assert_true(strncmp(q, "&amp;", 5) == 0 || strncmp(q, "&lt;", 4) == 0 || strncmp(q, "&gt;", 4) == 0 ||
					    strncmp(q, "&quot;", 6) == 0);
	}
	assert_int_equal(depth, 0);
}

static void timeline_default_and_failing(void **state)
{
	(void)state;
	run(&P, "hardened", DEFAULT_SCENARIO);
	struct capture c;
	cap_open(&c);
	assert_int_equal(timeline_svg(c.f, &P), 0);
	char *svg = cap_close(&c);
	assert_true(strncmp(svg, "<svg", 4) == 0);
	assert_true(c.len > 7 && strcmp(svg + c.len - 7, "</svg>\n") == 0);
	assert_balanced(svg);
	assert_non_null(strstr(svg, "no violations: every rule held"));
	assert_non_null(strstr(svg, ">H-&gt;M 0</text>")); /* the first window, named */
	char want[96];
	snprintf(want, sizeof want, ">%08" PRIx32 " shim page</text>", P.img.shim_lin);
	assert_non_null(strstr(svg, want));
	snprintf(want, sizeof want, ">%" PRIx64 " guest.page0</text>", P.img.guest_pa[0]); /* the guest's PTE, restored */
	assert_non_null(strstr(svg, want));
	free(svg);
	pl_free(&P);

	run(&P, "literal", HOST_LACKS);
	cap_open(&c);
	assert_int_equal(timeline_svg(c.f, &P), 0);
	svg = cap_close(&c);
	assert_balanced(svg);
	assert_non_null(strstr(svg, ">FAULT,ORDER</text>"));
	assert_non_null(strstr(svg, "stroke=\"#d00000\""));
	assert_non_null(strstr(svg, ">e0002000 monitor gdt</text>")); /* in the host space ... */
	assert_non_null(strstr(svg, ">not mapped</text>"));              /* ... not mapped */
	assert_non_null(strstr(svg, ">#PF</text>"));
	free(svg);
	pl_free(&P);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listing_hardened),
		cmocka_unit_test(listing_covers_run),
		cmocka_unit_test(walk_evidence_shim_page),
		cmocka_unit_test(walk_evidence_pae),
		cmocka_unit_test(violation_evidence_fault),
		cmocka_unit_test(violation_evidence_reach),
		cmocka_unit_test(invlpg_mutant_evidence_and_listing),
		cmocka_unit_test(trace_diff_jsonl),
		cmocka_unit_test(timeline_default_and_failing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
