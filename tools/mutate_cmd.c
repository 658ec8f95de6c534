/*
 * mutate_cmd.c: `shimcheck mutate`: automatic mutants of a variant's binaries (each
 * instruction deleted, each pair of adjacent instructions swapped, each displacement and
 * immediate changed), each run through every checker on the variant's scenarios. A mutant
 * is killed when some scenario reports a violation; the rules that did it are listed, and
 * mutants killed by ORDER alone (the declared order, nothing else) are counted apart.
 */
#include "mutate_cmd.h"

#include <stdio.h>
#include <string.h>

#include "mutate.h"

enum mop { MOP_DELETE, MOP_SWAP, MOP_DISP, MOP_IMM };
static const char *const mop_names[] = {"delete", "swap", "disp+4", "imm^8"};

struct outcome {
	bool killed;
	bool rules[R_N];
};

static bool run_all(struct pipeline *p, const struct shim_code *mut, const char *const *scen, int nscen,
		    struct outcome *o)
{
	memset(o, 0, sizeof *o);
	for (int s = 0; s < nscen; s++) {
		struct shim_code c;
		if (!code_dup(&c, mut))
			return false;
		pl_use_code(p, &c);
		if (pl_load_scenario(p, scen[s]) != PL_OK)
			continue; /* a scenario this variant rejects says nothing about the mutant */
		enum pl_status st = pl_run(p);
		if (st == PL_VIOLATION) {
			o->killed = true;
			for (int r = 0; r < R_N; r++)
				o->rules[r] |= p->v.counts[r] > 0;
		} else if (st != PL_OK) {
			return false;
		}
	}
	return true;
}

int mutate_run(struct pipeline *p, const char *source_dir)
{
	struct shim_code orig;
	if (!code_dup(&orig, &p->code))
		return 3;
	/* every shipped scenario; those the variant rejects are skipped */
	static const char *const names[] = {"default", "pse", "pae", "cs-wrap", "modes", "differ", "global"};
	enum { NSCEN = sizeof names / sizeof names[0] };
	char paths[NSCEN][1024];
	const char *scen[NSCEN];
	for (int i = 0; i < NSCEN; i++) {
		snprintf(paths[i], sizeof paths[i], "%s/scenarios/%s.json", source_dir, names[i]);
		scen[i] = paths[i];
	}
	/* only scenarios the unmutated variant passes say anything about a mutant */
	int nscen = 0;
	for (int i = 0; i < NSCEN; i++) {
		struct shim_code c;
		if (!code_dup(&c, &orig))
			return 3;
		pl_use_code(p, &c);
		if (pl_load_scenario(p, scen[i]) == PL_OK && pl_run(p) == PL_OK)
			scen[nscen++] = scen[i];
	}
	printf("shimcheck mutate: variant %s; the %d shipped scenarios it passes:", orig.variant, nscen);
	for (int i = 0; i < nscen; i++)
		printf(" %s", strrchr(scen[i], '/') + 1);
	printf("\n");
	printf("%-8s %-7s %-6s  %-34s %s\n", "binary", "offset", "edit", "instruction", "verdict");
	int killed = 0, survived = 0, order_only = 0, total = 0;
	for (int b = 0; b < CB_N; b++) {
		static struct insn_ref list[1024];
		int n = mutate_list(&orig, (enum code_bin_id)b, list, 1024);
		for (int i = 0; i < n; i++)
			for (int op = MOP_DELETE; op <= MOP_IMM; op++) {
				struct shim_code mut;
				if (!code_dup(&mut, &orig))
					return 3;
				bool ok = false;
				struct insn_ref *r = &list[i];
				uint8_t *at = mut.bin[b].bytes + r->off;
				switch (op) {
				case MOP_DELETE: ok = mutate_nop(&mut, r); break;
				case MOP_SWAP: ok = i + 1 < n && mutate_swap_next(&mut, r, &list[i + 1]); break;
				case MOP_DISP: /* another field of the data area, or another byte of a table */
					if ((ok = r->has_disp))
						at[r->disp_off] = (uint8_t)(at[r->disp_off] + 4);
					break;
				case MOP_IMM: /* another selector, another mask */
					if ((ok = r->has_imm))
						at[r->imm_off] ^= 0x08;
					break;
				}
				if (!ok) {
					code_free(&mut);
					continue;
				}
				struct outcome o;
				if (!run_all(p, &mut, scen, nscen, &o)) {
					fprintf(stderr, "shimcheck mutate: internal error: %s\n", p->err);
					code_free(&mut);
					return 3;
				}
				code_free(&mut);
				total++;
				char rules[256] = "";
				int nr = 0;
				for (int k = 0; k < R_N; k++)
					if (o.rules[k]) {
						snprintf(rules + strlen(rules), sizeof rules - strlen(rules), "%s%s", nr ? " " : "",
							 rule_id((enum rule)k));
						nr++;
					}
				if (o.killed) {
					killed++;
					order_only += nr == 1 && o.rules[R_ORDER];
				} else {
					survived++;
				}
				printf("%-8s 0x%04x  %-6s  %-34.34s %s%s\n", code_bin_name((enum code_bin_id)b), r->off,
				       mop_names[op], r->text, o.killed ? "killed: " : "SURVIVED", rules);
			}
	}
	printf("\nmutants %d: killed %d (by ORDER alone: %d), survived %d\n", total, killed, order_only, survived);
	code_free(&orig);
	return 0;
}
