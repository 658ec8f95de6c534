/*
 * boot_cmd.c: `shimcheck boot`: run the same physical image on a second engine and compare.
 *
 * The image file (`shimcheck image`) goes to the boot kernel as a multiboot module: QEMU
 * loads kernel and module itself (-kernel/-initrd); Bochs boots a GRUB ISO (mkiso.sh). The
 * kernel prints one JSON line per observation point of host_main (entry, after each round
 * trip, end) on port 0xE9 and COM1; boot_obs.c computes the same observations from the
 * simulator's trace, boot_engine.c runs the engines.
 *
 * Modes:
 *   scenarios  one scenario, or several (repeated --scenario, or a directory of them): a
 *              batch, several images in one boot (the kernel runs them in turn)
 *   --mutant   a mutant of tests/mutants/catalogue.json (or all of them): its edits applied
 *              to its variant, booted, compared: does the engine fail as the simulator does?
 *   --window   the interrupt window by execution: a #DB instruction breakpoint at each
 *              boundary `shimcheck window` reports, delivered or not, against its prediction
 *   --nmi      the same boundaries with a real NMI (QEMU: gdbstub and `monitor nmi`,
 *              boot_nmi.c), the handler's return included
 */
#define _GNU_SOURCE /* mkdtemp */
#include "boot_cmd.h"
#include "boot_int.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "image_export.h"
#include "mutate.h"
#include "window.h"

#define DEFAULT_VARIANT "hardened"
#define DEFAULT_TIMEOUT 20.0 /* QEMU needs ~0.2 s, Bochs ~1.3 s */
#define MAX_SCEN 512

/* ---- paths ------------------------------------------------------------------------------------ */

static bool readable(const char *p) { return access(p, R_OK) == 0; }

/* The built shim variants: build/tools/../shim next to shimcheck, else where CMake put them.
 * shimcheck's own commands use it too (boot_cmd.h). */
void shim_root(char *out, size_t n)
{
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k > 0) {
		exe[k] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char probe[PATH_MAX + 64];
			snprintf(probe, sizeof probe, "%s/../shim/" DEFAULT_VARIANT "/manifest.json", exe);
			if (readable(probe)) {
				snprintf(out, n, "%s/../shim", exe);
				return;
			}
		}
	}
	snprintf(out, n, "%s", SHIMCHECK_SHIM_DIR);
}

/* Remove the files of a scratch directory we made (flat: mkiso.sh cleans its own). */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[PATH_MAX + 300];
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(dir);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* --scenario FILE or DIR (every *.json in it, sorted by name) into list. */
static int expand_scenario(const char *arg, char **list, int *n)
{
	struct stat st;
	if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
		DIR *d = opendir(arg);
		if (!d) {
			fprintf(stderr, "shimcheck boot: %s: %s\n", arg, strerror(errno));
			return B_INPUT;
		}
		int first = *n;
		struct dirent *e;
		while ((e = readdir(d))) {
			size_t len = strlen(e->d_name);
			if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0 || e->d_name[0] == '.')
				continue;
			if (*n == MAX_SCEN) {
				closedir(d);
				fprintf(stderr, "shimcheck boot: %s: more than %d scenarios\n", arg, MAX_SCEN);
				return B_INPUT;
			}
			if (asprintf(&list[*n], "%s/%s", arg, e->d_name) < 0)
				return B_INTERNAL;
			(*n)++;
		}
		closedir(d);
		if (*n == first) {
			fprintf(stderr, "shimcheck boot: %s: no *.json scenario in this directory\n", arg);
			return B_INPUT;
		}
		qsort(list + first, (size_t)(*n - first), sizeof *list, cmp_str);
		return B_OK;
	}
	if (*n == MAX_SCEN)
		return B_INPUT;
	list[(*n)++] = strdup(arg);
	return B_OK;
}

int boot_prepare(struct pipeline *p, const char *codedir, const char *scen, const char *dir, bool run)
{
	enum pl_status st = pl_load_code(p, codedir);
	if (st == PL_OK)
		st = pl_load_scenario(p, scen);
	if (st == PL_OK && !export_image(p, dir, "image.bin"))
		return B_INTERNAL;
	if (st == PL_OK && run && (st = pl_run(p)) == PL_VIOLATION)
		st = PL_OK;
	if (st != PL_OK)
		fprintf(stderr, "shimcheck boot: %s\n", p->err);
	return (int)st;
}

bool export_image(const struct pipeline *p, const char *dir, const char *name)
{
	char path[PATH_MAX + 96];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	bool ok = f && image_export(&p->img, &p->code, f) == 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok)
		fprintf(stderr, "shimcheck boot: %s: cannot write the image\n", path);
	return ok;
}

/* ---- the simulator's verdict on one scenario ------------------------------------------------------ */


/* Run the loaded scenario in Unicorn and keep what the report needs. */
int sim_run(struct pipeline *p, struct scen_res *r)
{
	snprintf(r->name, sizeof r->name, "%s", p->sc.name);
	snprintf(r->variant, sizeof r->variant, "%s", p->code.variant);
	r->st = pl_run(p);
	if (r->st != PL_OK && r->st != PL_VIOLATION) {
		fprintf(stderr, "shimcheck boot: %s\n", p->err);
		return (int)r->st;
	}
	char err[160];
	if (!sim_observations(p, &r->sim, err, sizeof err)) {
		fprintf(stderr, "shimcheck boot: %s\n", err);
		return B_INTERNAL;
	}
	r->kernel_bytes = guest_reads_kernel_bytes(&p->sc, &p->img, &p->code, r->kernel_why, sizeof r->kernel_why);
	r->ninsn = p->t.n;
	r->end = p->t.end;
	r->fault_text[0] = '\0';
	for (uint32_t k = 0; k < p->t.nev; k++)
		if (p->t.ev[k].kind == EV_FAULT && p->t.ev[k].insn < p->t.n)
			snprintf(r->fault_text, sizeof r->fault_text, "%s", p->t.insn[p->t.ev[k].insn].text);
	r->nviol = p->v.n;
	r->first_rule[0] = '\0';
	size_t cap = 0;
	FILE *m = open_memstream(&r->violations, &cap);
	for (int i = 0; m && r->st == PL_VIOLATION && i < p->v.n && i < MAX_VIOLATIONS; i++) {
		const struct violation *x = &p->v.v[i];
		if (i == 0)
			snprintf(r->first_rule, sizeof r->first_rule, "%s", rule_id(x->rule));
		if (x->insn < p->t.n)
			fprintf(m, "%s #%u 0x%08" PRIx32 ": %s\n", rule_id(x->rule), x->insn, p->t.insn[x->insn].cpu.eip, x->msg);
		else
			fprintf(m, "%s: %s\n", rule_id(x->rule), x->msg);
	}
	if (m)
		fclose(m);
	return B_OK;
}

/* ---- reporting one image ------------------------------------------------------------------------ */

/* QEMU's TCG performs a read-modify-write instruction's load and store as two accesses: a
 * #PF on a page the space does not map comes from the load (error code W clear), where the
 * CPU (Bochs, the model) checks the operand for writing first (W set). */
static bool qemu_rmw_pf(const char *engine, const struct obs_list *e, const struct obs_list *s, int at, int field,
			const char *text)
{
	static const char *const rmw[] = {"and ", "or ", "xor ", "add ", "sub ", "adc ", "sbb ", "inc ", "dec ",
					  "not ", "neg ", "bts ", "btr ", "btc ", NULL};
	if (strcmp(engine, "qemu") != 0 || field != F_ERROR || at < 0 || at >= e->n || at >= s->n)
		return false;
	const struct obs *a = &e->o[at], *b = &s->o[at];
	if (a->v[F_VECTOR] != 14 || (a->v[F_ERROR] ^ b->v[F_ERROR]) != 2 || (a->v[F_ERROR] & 2))
		return false;
	for (int i = 0; rmw[i]; i++)
		if (strncmp(text, rmw[i], strlen(rmw[i])) == 0 && strstr(text, "ptr [") && strchr(text, ',') > strstr(text, "ptr ["))
			return true;
	return false;
}

static uint64_t a_v(const struct img_run *r, int at, int f) { return r->obs.o[at].v[f]; }
static uint64_t a_v2(const struct scen_res *s, int at, int f) { return s->sim.o[at].v[f]; }

/* Compare, print, return B_OK / B_DIVERGE. quiet_violations: a mutant's violations are
 * expected; list only the first rule. */
static int report_one(const struct boot_opts *bo, const struct engine_info *ei, const struct job *j,
		      const struct scen_res *s, bool mutant, int *diff_at, int *diff_field, char *explained, size_t en)
{
	explained[0] = '\0';
	const char *eng = bo->engine;
	const struct img_run *r = &j->r;
	if (bo->verbose) {
		int n = r->obs.n > s->sim.n ? r->obs.n : s->sim.n;
		for (int i = 0; i < n; i++) {
			printf("observation %d:\n", i);
			show_side_by_side(stdout, eng, i < r->obs.n ? &r->obs.o[i] : NULL, i < s->sim.n ? &s->sim.o[i] : NULL, -2);
		}
	}
	int field = -1;
	int at = r->kernel_error ? -2 : first_difference(&r->obs, &s->sim, &field);
	*diff_at = at;
	*diff_field = field;
	int rc = B_OK;
	if (r->kernel_error) {
		printf("REFUSED: the boot kernel refused the image of %s: %s\n", s->name, r->message);
		rc = B_INPUT;
	} else if (at >= 0) {
		print_divergence(stdout, eng, &r->obs, &s->sim, at, field);
		if (s->kernel_bytes && (field == F_GUEST_SEEN || field == F_SHIM_SUM)) {
			printf("EXPLAINED: %s: guest_seen and shim_sum cannot match the simulator's (docs/hardware.md)\n",
			       s->kernel_why);
			snprintf(explained, en, "the guest reads what the boot kernel adds");
		}
		if (field >= F_EAX && field <= F_EDI && ((a_v(r, at, field) ^ a_v2(s, at, field)) & ~(uint64_t)0x8D5) == 0 &&
		    (a_v(r, at, field) & 2) && (a_v2(s, at, field) & 2))
		{
			printf("EXPLAINED: %s holds an EFLAGS image that differs only in the arithmetic flags, which differ by "
			       "construction (the observer's slot is compared with 0 before the switch: docs/hardware.md)\n",
			       field_name[field]);
			snprintf(explained, en, "EFLAGS arithmetic flags in %s", field_name[field]);
		}
		const struct obs *eo = obs_last(&r->obs);
		const char *viol = s->violations ? s->violations : "";
		if (eo && strstr(eo->note, "external interrupt") && strstr(viol, "IF-WINDOW")) {
			printf("EXPLAINED: %s, delivered in the switch window the simulator reports as IF-WINDOW (Unicorn "
			       "delivers no interrupts) (docs/hardware.md)\n",
			       eo->note);
			snprintf(explained, en, "an interrupt taken in the IF=1 window");
		}
		if (!explained[0] && (strstr(viol, "INVLPG") || strstr(viol, "STALE-TLB") || strstr(viol, "TLB-GLOBAL"))) {
			printf("EXPLAINED: the run depends on a stale translation the simulator reports (INVLPG/STALE-TLB/"
			       "TLB-GLOBAL): whether a CPU uses it depends on its TLB (Unicorn and QEMU: one softmmu TLB filled "
			       "for every access kind at once; Bochs: split, direct-mapped ITLB/DTLB) (docs/hardware.md)\n");
			snprintf(explained, en, "stale-translation outcome (TLB organisation)");
		}
		if (qemu_rmw_pf(eng, &r->obs, &s->sim, at, field, s->fault_text)) {
			printf("EXPLAINED: `%s` is a read-modify-write: QEMU's TCG reports its #PF from the load (W clear), the "
			       "model and Bochs from the write check (W set) (docs/hardware.md)\n",
			       s->fault_text);
			snprintf(explained, en, "QEMU's #PF error code of a read-modify-write");
		}
		rc = B_DIVERGE;
	}
	if (s->st == PL_VIOLATION && !mutant) {
		fputs(s->violations ? s->violations : "", stdout);
		if (rc == B_OK)
			rc = B_DIVERGE;
	}
	int rounds = 0;
	for (int i = 0; i < r->obs.n; i++)
		rounds += r->obs.o[i].kind == O_ROUND;
	char last[48] = "nothing";
	if (r->obs.n)
		obs_label(&r->obs.o[r->obs.n - 1], last, sizeof last);
	printf("%s: engine %s (%s; %s%s%s; loader %s), variant %s, scenario %s: %d observation%s, %d round trip%s, ends with %s; "
	       "%s unicorn (%u instructions, %s); %d violation%s; boot %.2f s",
	       rc == B_OK ? "BOOT PASS" : "BOOT FAIL", eng, ei->version[0] ? ei->version : "?", ei->cpu,
	       ei->cpu_note[0] ? "; " : "", ei->cpu_note, ei->loader, s->variant,
	       s->name, r->obs.n, r->obs.n == 1 ? "" : "s", rounds, rounds == 1 ? "" : "s", last,
	       at == -1 ? "identical to" : "differs from", s->ninsn, tr_end_name(s->end), s->nviol, s->nviol == 1 ? "" : "s",
	       r->secs);
	if (r->boot_images > 1)
		printf(" (boot %d: %d images)", r->boot, r->boot_images);
	else if (ei->prep_secs > 0 && ei->boots == 1)
		printf(" (+ ISO %.2f s)", ei->prep_secs);
	printf("\n");
	return rc;
}

/* ---- mutants ------------------------------------------------------------------------------------ */

/* One edit of the catalogue (tests/mutants/test_mutants.c applies them the same way). */
static bool apply_edit(struct shim_code *c, json_t *e, const char *name)
{
	json_t *nth = json_object_get(e, "nth");
	struct mutate_edit ed = {CB_HOST, json_string_value(json_object_get(e, "from")),
				 json_string_value(json_object_get(e, "find")), json_string_value(json_object_get(e, "op")),
				 json_string_value(json_object_get(e, "bytes")), json_string_value(json_object_get(e, "before")),
				 nth ? (int)json_integer_value(nth) : 1};
	char err[256];
	if (!code_bin_id(json_string_value(json_object_get(e, "binary")), &ed.bin)) {
		fprintf(stderr, "shimcheck boot: mutant %s: an edit without binary, find or op\n", name);
		return false;
	}
	if (!mutate_apply(c, &ed, NULL, err, sizeof err)) {
		fprintf(stderr, "shimcheck boot: mutant %s: %s\n", name, err);
		return false;
	}
	return true;
}

/* The mutated code as a code directory: the original's files, the edited binaries. */
static bool write_code_dir(const struct shim_code *orig, const struct shim_code *mut, const char *out)
{
	if (mkdir(out, 0755) != 0 && errno != EEXIST)
		return false;
	DIR *d = opendir(orig->dir);
	if (!d)
		return false;
	struct dirent *e;
	char from[PATH_MAX + 300], to[PATH_MAX + 300];
	bool ok = true;
	while ((e = readdir(d))) {
		snprintf(from, sizeof from, "%s/%s", orig->dir, e->d_name);
		struct stat st;
		if (e->d_name[0] == '.' || stat(from, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		snprintf(to, sizeof to, "%s/%s", out, e->d_name);
		FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
		char buf[8192];
		size_t k;
		while (a && b && (k = fread(buf, 1, sizeof buf, a)) > 0)
			ok &= fwrite(buf, 1, k, b) == k;
		ok &= a && b;
		if (a)
			fclose(a);
		if (b && fclose(b) != 0)
			ok = false;
	}
	closedir(d);
	for (int b = 0; b < CB_N && ok; b++) {
		const char *base = strrchr(mut->bin[b].path, '/');
		snprintf(to, sizeof to, "%s/%s", out, base ? base + 1 : mut->bin[b].path);
		FILE *f = fopen(to, "wb");
		ok = f && fwrite(mut->bin[b].bytes, 1, mut->bin[b].size, f) == mut->bin[b].size;
		if (f && fclose(f) != 0)
			ok = false;
	}
	return ok;
}

/* How a run ended, in a few words: "fault #14 err 0x2 at 0xc880103f (triple fault)". */
static void end_words(const struct obs_list *l, char *b, size_t n)
{
	const struct obs *o = obs_last(l);
	if (!o) {
		snprintf(b, n, "nothing");
		return;
	}
	char lab[48];
	obs_label(o, lab, sizeof lab);
	size_t k = (size_t)snprintf(b, n, "%s", lab);
	if (obs_has(o, F_VECTOR) && k < n)
		k += (size_t)snprintf(b + k, n - k, " #%" PRIu64, o->v[F_VECTOR]);
	if (obs_has(o, F_ERROR) && o->v[F_VECTOR] < 32 && ((1u << o->v[F_VECTOR]) & 0x60227D00u) && k < n)
		k += (size_t)snprintf(b + k, n - k, " err 0x%" PRIx64, o->v[F_ERROR]);
	if (obs_has(o, F_EIP) && k < n)
		k += (size_t)snprintf(b + k, n - k, " at 0x%" PRIx64, o->v[F_EIP]);
	if (obs_has(o, F_HANDLER) && k < n)
		k += (size_t)snprintf(b + k, n - k, " -> 0x%" PRIx64, o->v[F_HANDLER]);
}

struct mutant {
	char name[64], variant[48], expect[32], scen[96], why[200];
};

static int mode_mutants(const struct boot_opts *bo, const char *dir, const char *kernel, const char *root)
{
	char cat_path[PATH_MAX];
	snprintf(cat_path, sizeof cat_path, "%s",
		 bo->catalogue ? bo->catalogue : SHIMCHECK_SOURCE_DIR "/tests/mutants/catalogue.json");
	json_error_t jerr;
	json_t *cat = json_load_file(cat_path, 0, &jerr);
	json_t *list = cat ? json_object_get(cat, "mutants") : NULL;
	if (!json_is_array(list)) {
		fprintf(stderr, "shimcheck boot: %s: %s\n", cat_path, cat ? "no \"mutants\" array" : jerr.text);
		json_decref(cat);
		return B_INPUT;
	}
	bool all = strcmp(bo->mutant, "all") == 0;
	size_t nm = json_array_size(list);
	struct mutant *mu = calloc(nm + 1, sizeof *mu);
	struct scen_res *res = calloc(nm + 1, sizeof *res);
	struct job *jobs = calloc(nm + 1, sizeof *jobs);
	if (!mu || !res || !jobs) {
		free(mu);
		free(res);
		free(jobs);
		json_decref(cat);
		return B_INTERNAL;
	}
	static struct pipeline p;
	int rc = B_OK, n = 0;
	size_t i;
	json_t *m;
	/* Every mutant: its edits on a copy of its variant, its scenario, the image, Unicorn's run. */
	json_array_foreach(list, i, m) {
		const char *name = json_string_value(json_object_get(m, "name"));
		const char *variant = json_string_value(json_object_get(m, "variant"));
		const char *expect = json_string_value(json_object_get(m, "expect"));
		const char *sj = json_string_value(json_object_get(m, "scenario"));
		const char *why = json_string_value(json_object_get(m, "why"));
		if (!name || !variant || (!all && strcmp(name, bo->mutant) != 0))
			continue;
		struct mutant *x = &mu[n];
		snprintf(x->name, sizeof x->name, "%s", name);
		snprintf(x->variant, sizeof x->variant, "%s", variant);
		snprintf(x->expect, sizeof x->expect, "%s", expect ? expect : "?");
		snprintf(x->scen, sizeof x->scen, "%s", bo->nscenario ? bo->scenario[0] : sj ? sj : "scenarios/default.json");
		snprintf(x->why, sizeof x->why, "%s", why ? why : "");
		char codedir[PATH_MAX + 64], scen[PATH_MAX + 128];
		snprintf(codedir, sizeof codedir, "%s/%s", root, variant);
		if (bo->nscenario)
			snprintf(scen, sizeof scen, "%s", bo->scenario[0]);
		else
			snprintf(scen, sizeof scen, "%s/%s", SHIMCHECK_SOURCE_DIR, x->scen);
		pl_init(&p);
		enum pl_status st = pl_load_code(&p, codedir);
		struct shim_code mut;
		bool ok = st == PL_OK && code_dup(&mut, &p.code);
		if (st != PL_OK)
			fprintf(stderr, "shimcheck boot: %s\n", p.err);
		size_t k;
		json_t *e;
		json_array_foreach(json_object_get(m, "edits"), k, e) ok = ok && apply_edit(&mut, e, name);
		if (!ok) {
			pl_free(&p);
			rc = B_INPUT;
			continue;
		}
		if (bo->keep) {
			char out[PATH_MAX + 96];
			snprintf(out, sizeof out, "%s/code-%s", dir, name);
			if (!write_code_dir(&p.code, &mut, out))
				fprintf(stderr, "shimcheck boot: %s: cannot write the mutant's code directory\n", out);
		}
		pl_use_code(&p, &mut);
		if (pl_load_scenario(&p, scen) != PL_OK) {
			fprintf(stderr, "shimcheck boot: %s\n", p.err);
			pl_free(&p);
			rc = B_INPUT;
			continue;
		}
		snprintf(res[n].path, sizeof res[n].path, "%s", scen);
		struct job *j = &jobs[n];
		snprintf(j->image, sizeof j->image, "mutant-%d.bin", n);
		snprintf(j->label, sizeof j->label, "%s", name);
		trap_set_of(&p.img, &p.code, &j->traps);
		int r = export_image(&p, dir, j->image) ? sim_run(&p, &res[n]) : B_INTERNAL;
		pl_free(&p);
		if (r != B_OK) {
			rc = r;
			break;
		}
		n++;
	}
	json_decref(cat);
	if (rc == B_OK && n == 0) {
		fprintf(stderr, "shimcheck boot: %s: no mutant named %s\n", cat_path, bo->mutant);
		rc = B_INPUT;
	}
	struct engine_info ei;
	memset(&ei, 0, sizeof ei);
	if (rc == B_OK)
		rc = boot_jobs(bo, dir, kernel, jobs, n, &ei);
	int same = 0, explained = 0;
	char (*table)[320] = calloc((size_t)n + 1, sizeof *table);
	for (int t = 0; rc != B_INTERNAL && rc != B_UNAVAILABLE && rc != B_INPUT && t < n && table; t++) {
		struct mutant *x = &mu[t];
		struct scen_res *sr = &res[t];
		if (bo->keep) {
			char nm2[128];
			snprintf(nm2, sizeof nm2, "%s-%s", bo->engine, x->name);
			write_obs_file(dir, nm2, &jobs[t].r.obs);
			snprintf(nm2, sizeof nm2, "unicorn-%s", x->name);
			write_obs_file(dir, nm2, &sr->sim);
		}
		printf("-- mutant %s (%s, %s): %s\n", x->name, x->variant, x->scen, x->why);
		int at, field;
		char expl[96];
		int one = report_one(bo, &ei, &jobs[t], sr, true, &at, &field, expl, sizeof expl);
		char se[96], ee[96];
		end_words(&sr->sim, se, sizeof se);
		end_words(&jobs[t].r.obs, ee, sizeof ee);
		bool caught = sr->st == PL_VIOLATION;
		bool eq = at == -1, fine = eq || expl[0];
		same += eq;
		explained += !eq && expl[0];
		const char *how = eq ? "same" : expl[0] ? "explained" : "DIFFERS";
		char diff[160] = "";
		if (!eq && at >= 0)
			snprintf(diff, sizeof diff, ": observation %d%s%s%s%s", at, field >= 0 ? " " : " (kind)",
				 field >= 0 ? field_name[field] : "", expl[0] ? ", " : "", expl);
		/* the rule the catalogue expects, when the simulator reported it; else its first */
		char rule[32];
		snprintf(rule, sizeof rule, "%s", caught ? sr->first_rule : "pass");
		if (caught && strstr(sr->violations ? sr->violations : "", x->expect))
			snprintf(rule, sizeof rule, "%s", x->expect);
		printf("MUTANT %s: simulator %s (expected %s), ends with %s; %s ends with %s; %s%s\n", x->name, rule, x->expect,
		       se, bo->engine, ee, how, diff);
		snprintf(table[t], sizeof table[0], "%-28s %-9s %-13s %-44s %-44s %s%s", x->name, x->variant, rule, se, ee, how,
			 diff);
		if (one == B_INPUT || one == B_INTERNAL)
			rc = one;
		else if (!fine && rc == B_OK)
			rc = B_DIVERGE;
	}
	if (n > 1 && table && (rc == B_OK || rc == B_DIVERGE)) {
		printf("\n%-28s %-9s %-13s %-44s %-44s %s\n", "mutant", "variant", "simulator", "simulator's end", bo->engine,
		       "engine vs simulator");
		for (int t = 0; t < n; t++)
			printf("%s\n", table[t]);
		printf("\n%d mutants: %d fail the same way on %s as in the simulator, %d differ in an explained way, %d "
		       "otherwise; %d boots, engine %.1f s%s\n",
		       n, same, bo->engine, explained, n - same - explained, ei.boots, ei.secs,
		       ei.prep_secs > 0 ? " (+ ISOs)" : "");
	}
	for (int t = 0; t < n; t++)
		free(res[t].violations);
	free(table);
	free(mu);
	free(res);
	free(jobs);
	return rc;
}

/* ---- scenarios (one, or a batch) ------------------------------------------------------------------ */

static int mode_scenarios(const struct boot_opts *bo, const char *dir, const char *kernel, const char *codedir)
{
	static char *paths[MAX_SCEN];
	int np = 0, rc = B_OK;
	if (bo->nscenario == 0) {
		const char *d = readable("scenarios/default.json") ? "scenarios/default.json"
								    : SHIMCHECK_SOURCE_DIR "/scenarios/default.json";
		paths[np++] = strdup(d);
	}
	for (int i = 0; i < bo->nscenario && rc == B_OK; i++)
		rc = expand_scenario(bo->scenario[i], paths, &np);
	if (rc != B_OK)
		return rc;

	static struct pipeline p;
	pl_init(&p);
	enum pl_status st = pl_load_code(&p, codedir);
	if (st != PL_OK) {
		fprintf(stderr, "shimcheck boot: %s\n", p.err);
		pl_free(&p);
		return (int)st;
	}
	struct scen_res *res = calloc((size_t)np, sizeof *res);
	struct job *jobs = calloc((size_t)np, sizeof *jobs);
	int *of = calloc((size_t)np, sizeof *of); /* job -> scenario */
	int nj = 0;
	if (!res || !jobs || !of) {
		free(res);
		free(jobs);
		free(of);
		pl_free(&p);
		return B_INTERNAL;
	}
	for (int i = 0; i < np; i++) {
		snprintf(res[i].path, sizeof res[i].path, "%s", paths[i]);
		st = pl_load_scenario(&p, paths[i]);
		if (st != PL_OK) {
			fprintf(stderr, "shimcheck boot: %s\n", p.err);
			res[i].load_rc = (int)st;
			rc = rc == B_OK || rc == B_DIVERGE ? (int)st : rc;
			continue;
		}
		struct job *j = &jobs[nj];
		if (nj == 0)
			snprintf(j->image, sizeof j->image, "image.bin");
		else
			snprintf(j->image, sizeof j->image, "image%d.bin", nj);
		snprintf(j->label, sizeof j->label, "%s", p.sc.name);
		trap_set_of(&p.img, &p.code, &j->traps);
		int r = export_image(&p, dir, j->image) ? sim_run(&p, &res[i]) : B_INTERNAL;
		if (r != B_OK) {
			res[i].load_rc = r;
			rc = r;
			continue;
		}
		of[nj++] = i;
	}
	struct engine_info ei;
	memset(&ei, 0, sizeof ei);
	int brc = nj ? boot_jobs(bo, dir, kernel, jobs, nj, &ei) : B_OK;
	int pass = 0;
	if (brc != B_OK) {
		rc = brc;
	} else {
		for (int k = 0; k < nj; k++) {
			const struct scen_res *s = &res[of[k]];
			if (bo->keep) {
				char nm[96];
				snprintf(nm, sizeof nm, "%s%s%s", bo->engine, nj > 1 ? "-" : "", nj > 1 ? s->name : "");
				write_obs_file(dir, nm, &jobs[k].r.obs);
				snprintf(nm, sizeof nm, "unicorn%s%s", nj > 1 ? "-" : "", nj > 1 ? s->name : "");
				write_obs_file(dir, nm, &s->sim);
			}
			int at, field;
			char expl[96];
			int one = report_one(bo, &ei, &jobs[k], s, false, &at, &field, expl, sizeof expl);
			pass += one == B_OK;
			if (one != B_OK && (rc == B_OK || (rc == B_DIVERGE && one != B_DIVERGE)))
				rc = one;
		}
		if (np > 1)
			printf("BOOT BATCH: engine %s, %d scenarios (%d booted) in %d boot%s: %d pass, %d fail; engine %.2f s\n",
			       bo->engine, np, nj, ei.boots, ei.boots == 1 ? "" : "s", pass, np - pass, ei.secs);
		if (np > 1 && ei.prep_secs > 0)
			printf("  (+ building ISOs %.2f s)\n", ei.prep_secs);
	}
	for (int i = 0; i < np; i++) {
		free(res[i].violations);
		free(paths[i]);
	}
	free(res);
	free(jobs);
	free(of);
	pl_free(&p);
	return rc;
}

/* ---- the interrupt window by execution -------------------------------------------------------------- */

enum wres { WR_DELIVERED, WR_FAULTED, WR_TRIPLE, WR_NOT_HIT, WR_UNKNOWN };
static const char *const wres_name[] = {"delivered", "faulted", "triple fault", "not delivered", "unknown"};

/* What happened to the #DB of a job, in words, and its class; ret: what its handler's way
 * back did, when it has one (__shim_nmi IRETs; the kernel's stub and monitor_trap stop). */
enum wret { WRET_NONE, WRET_REFIRE, WRET_FAULT, WRET_UNKNOWN };

/* off: the boundary's EIP in CS (the kernel's stub and a frame report that; j->dr0 is linear,
 * which differs under a CS with a base: the monitor's with cs_wrap). */
static enum wres window_result(const struct job *j, uint32_t off, char *b, size_t n, enum wret *ret, char *rb,
			       size_t rn)
{
	const struct img_run *r = &j->r;
	const struct obs *o = obs_last(&r->obs);
	size_t k = 0;
	b[0] = '\0';
	*ret = WRET_NONE;
	snprintf(rb, rn, "-");
	if (r->chain_known && r->nchain > 0) {
		k += (size_t)snprintf(b + k, n - k, "[");
		for (int i = 0; i < r->nchain && k < n; i++)
			k += (size_t)snprintf(b + k, n - k, "%s#%u", i ? " " : "", r->chain[i].vec);
		if (r->chain_total > r->nchain && k < n)
			k += (size_t)snprintf(b + k, n - k, " ...%d", r->chain_total);
		if (k < n)
			k += (size_t)snprintf(b + k, n - k, "] ");
	}
	/* A handler reached with no exception in QEMU's log means the log lost its end (QEMU is
	 * killed once the handler is seen; seen once in CI): count the chain as unknown then,
	 * as when there is no log, rather than as a fault. */
	bool lost = r->chain_known && r->nchain == 0 && o && (o->kind == O_TRAP || o->kind == O_EXCEPTION);
	bool chain = r->chain_known && !lost;
	bool one_db = chain ? r->nchain == 1 && r->chain[0].vec == 1 && r->chain[0].pc == j->dr0 : true;
	if (!o) {
		snprintf(b + k, n - k, "no observation");
		return WR_UNKNOWN;
	}
	switch (o->kind) {
	case O_EXCEPTION: {
		uint64_t v = o->v[F_VECTOR], eip = o->v[F_EIP];
		snprintf(b + k, n - k, "host IDT gate %" PRIu64 " -> kernel's stub: #%" PRIu64 " at 0x%" PRIx64, v, v, eip);
		return v == 1 && eip == off && one_db ? WR_DELIVERED : WR_FAULTED;
	}
	case O_TRAP: {
		const char *t = trap_name(&j->traps, (uint32_t)o->v[F_HANDLER]);
		bool frame_ok = !r->frame_known || r->frame[0] == off;
		if (r->frame_known)
			snprintf(b + k, n - k, "-> %s, frame [eip 0x%x cs 0x%x eflags 0x%x]", t ? t : "?", r->frame[0], r->frame[1],
				 r->frame[2]);
		else
			snprintf(b + k, n - k, "-> %s", t ? t : "?");
		if (t && strncmp(t, "__shim_nmi", 10) == 0) {
			/* It IRETs to the breakpointed instruction. QEMU's log shows what came next. */
			if (!chain) {
				*ret = WRET_UNKNOWN;
				snprintf(rb, rn, "? (no exception log)");
			} else if (r->nafter == 0) {
				*ret = WRET_UNKNOWN;
				snprintf(rb, rn, "? (stopped before)");
			} else if (r->after[0].vec == 1 && r->after[0].pc == j->dr0) {
				*ret = WRET_REFIRE;
				snprintf(rb, rn, "IRET ok, #DB again");
			} else {
				*ret = WRET_FAULT;
				if (r->after[0].has_cr2 && r->after[0].vec == 14)
					snprintf(rb, rn, "IRET: #%u e=%x cr2 %x", r->after[0].vec, r->after[0].err, r->after[0].cr2);
				else
					snprintf(rb, rn, "IRET: #%u e=%x", r->after[0].vec, r->after[0].err);
			}
		}
		return one_db && frame_ok ? WR_DELIVERED : WR_FAULTED;
	}
	case O_SHUTDOWN:
		if (!r->chain_known && obs_has(o, F_VECTOR))
			snprintf(b + k, n - k, "triple fault, the chain began with #%" PRIu64 " (Bochs's CPU log)", o->v[F_VECTOR]);
		else
			snprintf(b + k, n - k, "triple fault");
		return WR_TRIPLE;
	case O_END: {
		bool hit = obs_has(o, F_DR6) && (o->v[F_DR6] & 1);
		snprintf(b + k, n - k, "run ended normally, DR6.B0 %d", hit);
		return hit ? WR_DELIVERED : WR_NOT_HIT;
	}
	default:
		snprintf(b + k, n - k, "%s: %s", okind_name[o->kind], o->note);
		return WR_UNKNOWN;
	}
}

static bool window_agrees(enum wverdict v, enum wres r)
{
	switch (v) {
	case WV_SAFE: return r == WR_DELIVERED;
	case WV_UNSAFE: return r == WR_FAULTED || r == WR_TRIPLE;
	case WV_INHIBITED: return r == WR_NOT_HIT;
	}
	return false;
}

/* --boundary N / --after MNEMONIC (--window, --nmi): is the boundary before trace index insn
 * one of those asked for? (none asked: all) */
bool boundary_selected(const struct boot_opts *bo, const struct trace *t, uint32_t insn, char after[][16], int nafter)
{
	if (bo->nboundary == 0 && nafter == 0)
		return true;
	for (int i = 0; i < bo->nboundary; i++)
		if ((uint32_t)bo->boundary[i] == insn)
			return true;
	for (int i = 0; i < nafter && insn > 0; i++)
		if (strncmp(t->insn[insn - 1].text, after[i], strlen(after[i])) == 0 &&
		    (t->insn[insn - 1].text[strlen(after[i])] == ' ' || t->insn[insn - 1].text[strlen(after[i])] == '\0'))
			return true;
	return false;
}

static int mode_window(const struct boot_opts *bo, const char *dir, const char *kernel, const char *codedir,
		       char after[][16], int nafter)
{
	const unsigned vector = 1; /* #DB: the same delivery path as an NMI (gate, CS, handler, stack) */
	static struct pipeline p;
	pl_init(&p);
	const char *scen = bo->nscenario ? bo->scenario[0]
					 : readable("scenarios/default.json") ? "scenarios/default.json"
									      : SHIMCHECK_SOURCE_DIR "/scenarios/default.json";
	int prc = boot_prepare(&p, codedir, scen, dir, true);
	if (prc != B_OK) {
		pl_free(&p);
		return prc;
	}
	static struct wanalysis a;
	struct physmem mem = engine_memory(p.eng);
	a.safe_reasons = true;
	window_analyse(&p.t, &p.img, vector, &mem, &a);

	/* A DR0 breakpoint fires at the first execution of its address: a boundary whose
	 * instruction ran before (an earlier round, or before the window) is tested at that
	 * first execution instead, if that is a boundary too. */
	struct job *jobs = calloc((size_t)a.n + 1, sizeof *jobs);
	int *job_of = calloc((size_t)a.n + 1, sizeof *job_of);
	if (!jobs || !job_of) {
		free(jobs);
		free(job_of);
		pl_free(&p);
		return B_INTERNAL;
	}
	struct trap_set traps;
	trap_set_of(&p.img, &p.code, &traps);
	int nj = 0;
	for (int i = 0; i < a.n; i++) {
		const struct wboundary *b = &a.b[i];
		uint32_t lin = p.t.insn[b->insn].cpu.eip, first = b->insn;
		for (uint32_t k = 0; k < b->insn; k++)
			if (p.t.insn[k].cpu.eip == lin) {
				first = k;
				break;
			}
		job_of[i] = -1;
		if (first != b->insn || !boundary_selected(bo, &p.t, b->insn, after, nafter))
			continue;
		struct job *j = &jobs[nj];
		snprintf(j->image, sizeof j->image, "image.bin");
		snprintf(j->label, sizeof j->label, "before #%u", b->insn);
		j->has_dr0 = true;
		j->dr0 = lin;
		j->traps = traps;
		job_of[i] = nj++;
	}
	struct engine_info ei;
	memset(&ei, 0, sizeof ei);
	int rc = nj ? boot_jobs(bo, dir, kernel, jobs, nj, &ei) : B_OK;
	if (rc != B_OK) {
		free(jobs);
		free(job_of);
		pl_free(&p);
		return rc;
	}
	static const char *const verdicts[] = {"safe", "UNSAFE", "inhibited"};
	printf("shimcheck boot --window: engine %s (%s; %s), variant %s, scenario %s.\n"
	       "At each boundary `shimcheck window --vector 1` lists, a #DB instruction breakpoint (DR0 = linear EIP of\n"
	       "the next instruction, DR7.L0, R/W 00, LEN 00, armed by the boot kernel before host_main) is delivered\n"
	       "through the IDT in force there, as an NMI would be; the model's prediction against what the engine did.\n"
	       "A breakpoint fires at the first execution of its address: boundaries whose instruction ran earlier\n"
	       "are shown as '= #N' (tested there).\n\n",
	       bo->engine, ei.version[0] ? ei.version : "?", ei.cpu, p.code.variant, p.sc.name);
	printf("%-3s %-13s %6s  %-8s  %-6s %-34s %-9s %-13s %-5s %-28s %s\n", "win", "direction", "before", "eip", "after",
	       "next instruction", "predicted", "engine", "agree", "handler's IRET", "how ([QEMU: exceptions up to the handler])");
	int tested = 0, agree = 0, disagree = 0, repeats = 0, ret_fault = 0, ret_ok = 0;
	for (int i = 0; i < a.n; i++) {
		const struct wboundary *b = &a.b[i];
		const struct tr_insn *in = &p.t.insn[b->insn];
		if (!boundary_selected(bo, &p.t, b->insn, after, nafter))
			continue;
		char how[200] = "", res[24], rb[64] = "";
		const char *ag = "";
		if (job_of[i] >= 0) {
			enum wret ret;
			enum wres w = window_result(&jobs[job_of[i]], in->cpu.eip_off, how, sizeof how, &ret, rb, sizeof rb);
			ret_fault += ret == WRET_FAULT;
			ret_ok += ret == WRET_REFIRE;
			/* Delivery against delivery (b->verdict also counts the handler's return); the
			 * return, where the engine shows it, against the model's judgement of it. */
			bool ok = window_agrees(b->delivery, w) &&
				  !(ret == WRET_REFIRE && b->ret == WRN_FAULTS) && !(ret == WRET_FAULT && b->ret == WRN_RETURNS);
			snprintf(res, sizeof res, "%s", wres_name[w]);
			ag = ok ? "yes" : "NO";
			tested++;
			agree += ok;
			disagree += !ok;
		} else {
			uint32_t first = b->insn;
			for (uint32_t k = 0; k < b->insn; k++)
				if (p.t.insn[k].cpu.eip == in->cpu.eip) {
					first = k;
					break;
				}
			snprintf(res, sizeof res, "= #%u", first);
			repeats++;
		}
		char prev[8] = "-";
		if (b->insn > 0)
			snprintf(prev, sizeof prev, "%.*s", (int)strcspn(p.t.insn[b->insn - 1].text, " "), p.t.insn[b->insn - 1].text);
		printf("%-3d %-13s %6u  %08" PRIx32 "  %-6s %-34.34s %-9s %-13s %-5s %-28s %s\n", b->window,
		       b->dir == DIR_M2H ? "monitor->host" : "host->monitor", b->insn, in->cpu.eip, prev, in->text,
		       verdicts[b->verdict], res, ag, rb, how);
	}
	printf("\n%d boundaries tested on %s, %d agree with the prediction, %d do not; %d repeat an earlier address; "
	       "%d boots, %.1f s\n",
	       tested, bo->engine, agree, disagree, repeats, ei.boots, ei.secs + ei.prep_secs);
	if (ret_ok || ret_fault)
		printf("__shim_nmi's IRET back to the interrupted instruction: %d fine (the #DB fires again: nothing sets RF), "
		       "%d fault (the interrupted CS is not in the GDT in force)\n",
		       ret_ok, ret_fault);
	free(jobs);
	free(job_of);
	pl_free(&p);
	return disagree ? B_DIVERGE : B_OK;
}

/* ---- the command line ------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f, "usage: shimcheck boot --engine qemu|kvm|bochs [--scenario FILE|DIR]... [--variant NAME | --code-dir DIR]\n"
		   "                      [--timeout SECONDS] [--keep DIR] [--kernel FILE] [--verbose] [--no-batch]\n"
		   "       shimcheck boot --engine qemu|kvm|bochs --mutant NAME|all [--catalogue FILE] [--scenario FILE]\n"
		   "       shimcheck boot --engine qemu|kvm|bochs --window [--variant NAME] [--scenario FILE]\n"
		   "                      [--after MNEMONIC]... [--boundary N]...\n"
		   "       shimcheck boot --engine qemu|bochs --step [--variant NAME | --code-dir DIR] [--scenario FILE]\n"
		   "       shimcheck boot --engine qemu --nmi [--variant NAME | --code-dir DIR] [--scenario FILE]\n"
		   "                      [--after MNEMONIC]... [--boundary N]...\n"
		   "\n"
		   "Boots the scenario's image with the boot kernel on QEMU (TCG, -cpu Penryn), QEMU with KVM\n"
		   "(-cpu Penryn,vendor=GenuineIntel as far as the host allows) or Bochs (GRUB ISO,\n"
		   "core2_penryn_t9600), runs the same scenario in Unicorn, and compares the observations at\n"
		   "host_main's entry, after each round trip and at the end.\n"
		   "  --scenario    repeatable; a directory means every *.json in it. Several scenarios boot as a\n"
		   "                batch: one boot runs them all (--no-batch: one boot each)\n"
		   "  --mutant      a mutant of tests/mutants/catalogue.json (or all): does the engine fail as the\n"
		   "                simulator does? (violations are expected: exit 1 only on a divergence)\n"
		   "  --window      a #DB instruction breakpoint at each boundary `shimcheck window` lists (or those\n"
		   "                right after an instruction starting with MNEMONIC, or trace index N), delivered\n"
		   "                or not, against the model's prediction; exit 1 when one disagrees\n"
		   "  --step        QEMU's gdbstub (gdb) or Bochs's debugger: EIP and CR3 before every instruction\n"
		   "                of each round trip (host2monitor to host_after_call) against Unicorn's trace;\n"
		   "                exit 1 at the first difference\n"
		   "  --nmi         a real NMI at each boundary (or those --after/--boundary select): QEMU stopped\n"
		   "                there by its gdbstub, `monitor nmi`, run on; delivery, the handler's way back\n"
		   "                and the end against the model's prediction; exit 1 when one disagrees\n"
		   "  --keep DIR    keep the images, logs and both sides' observations (obs-*.jsonl) in DIR\n"
		   "  --verbose     print every observation side by side\n"
		   "exit status: 0 identical, 1 divergence or violation, 2 bad input, 3 internal error,\n"
		   "77 engine unavailable (binary missing, gdb for --step/--nmi; kvm: /dev/kvm missing or unusable)\n");
}

static int parse_args(int argc, char **argv, struct boot_opts *o, char after[][16], int *nafter)
{
	static const struct option longopts[] = {
		{"engine", required_argument, NULL, 'e'},  {"variant", required_argument, NULL, 'v'},
		{"code-dir", required_argument, NULL, 'c'}, {"scenario", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'}, {"keep", required_argument, NULL, 'k'},
		{"kernel", required_argument, NULL, 'K'},  {"verbose", no_argument, NULL, 'V'},
		{"mutant", required_argument, NULL, 'm'},  {"catalogue", required_argument, NULL, 'C'},
		{"window", no_argument, NULL, 'w'},        {"after", required_argument, NULL, 'a'},
		{"boundary", required_argument, NULL, 'b'}, {"no-batch", no_argument, NULL, 'n'},
		{"step", no_argument, NULL, 'S'},          {"help", no_argument, NULL, 'h'},
		{"nmi", no_argument, NULL, 'N'},
		{NULL, 0, NULL, 0}};
	memset(o, 0, sizeof *o);
	o->timeout = DEFAULT_TIMEOUT;
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'e': o->engine = optarg; break;
		case 'v': o->variant = optarg; break;
		case 'c': o->code_dir = optarg; break;
		case 's':
			if (o->nscenario == (int)(sizeof o->scenario / sizeof o->scenario[0])) {
				fprintf(stderr, "shimcheck boot: command line: too many --scenario (use a directory)\n");
				return B_INPUT;
			}
			o->scenario[o->nscenario++] = optarg;
			break;
		case 'k': o->keep = optarg; break;
		case 'K': o->kernel = optarg; break;
		case 'V': o->verbose = true; break;
		case 'm': o->mutant = optarg; break;
		case 'C': o->catalogue = optarg; break;
		case 'w': o->window = true; break;
		case 'n': o->no_batch = true; break;
		case 'S': o->step = true; break;
		case 'N': o->nmi = true; break;
		case 'a':
			if (*nafter == 16 || strlen(optarg) >= 16 || !*optarg) {
				fprintf(stderr, "shimcheck boot: command line: --after: '%s': at most 16, each a mnemonic\n", optarg);
				return B_INPUT;
			}
			snprintf(after[(*nafter)++], 16, "%s", optarg);
			break;
		case 'b': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || o->nboundary == 64) {
				fprintf(stderr, "shimcheck boot: command line: --boundary: '%s' is not a trace index\n", optarg);
				return B_INPUT;
			}
			o->boundary[o->nboundary++] = (int)v;
			break;
		}
		case 't': {
			char *end;
			o->timeout = strtod(optarg, &end);
			if (*end || !(o->timeout > 0 && o->timeout <= 3600)) {
				fprintf(stderr, "shimcheck boot: command line: --timeout: '%s' is not a number of seconds (0..3600]\n", optarg);
				return B_INPUT;
			}
			break;
		}
		case 'h': usage(stdout); exit(B_OK);
		default:
			fprintf(stderr, "shimcheck boot: command line: %s: unknown option or missing argument (see --help)\n",
				argv[optind - 1]);
			return B_INPUT;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shimcheck boot: command line: unexpected argument '%s'\n", argv[optind]);
		return B_INPUT;
	}
	if (!o->engine || (strcmp(o->engine, "qemu") && strcmp(o->engine, "kvm") && strcmp(o->engine, "bochs"))) {
		fprintf(stderr, "shimcheck boot: command line: --engine qemu, kvm or bochs is required\n");
		return B_INPUT;
	}
	if (o->variant && o->code_dir) {
		fprintf(stderr, "shimcheck boot: command line: --variant and --code-dir exclude each other\n");
		return B_INPUT;
	}
	if (o->variant && (!*o->variant || strchr(o->variant, '/'))) {
		fprintf(stderr, "shimcheck boot: command line: --variant: '%s' is not a variant name\n", o->variant);
		return B_INPUT;
	}
	if (o->mutant && (o->window || o->variant || o->code_dir || o->nscenario > 1)) {
		fprintf(stderr, "shimcheck boot: command line: --mutant takes its variant from the catalogue; "
			"at most one --scenario, no --window\n");
		return B_INPUT;
	}
	if (o->window && o->nscenario > 1) {
		fprintf(stderr, "shimcheck boot: command line: --window takes one scenario\n");
		return B_INPUT;
	}
	if (o->step && (o->window || o->mutant || o->nscenario > 1 || strcmp(o->engine, "kvm") == 0)) {
		fprintf(stderr, "shimcheck boot: command line: --step goes with --engine qemu or bochs and at most one "
			"--scenario, no --window or --mutant\n");
		return B_INPUT;
	}
	if (o->nmi && (o->window || o->step || o->mutant || o->nscenario > 1 || strcmp(o->engine, "qemu") != 0)) {
		fprintf(stderr, "shimcheck boot: command line: --nmi goes with --engine qemu (its gdbstub and monitor) and at "
			"most one --scenario, no --window, --step or --mutant\n");
		return B_INPUT;
	}
	if ((*nafter || o->nboundary) && !o->window && !o->nmi) {
		fprintf(stderr, "shimcheck boot: command line: --after and --boundary go with --window or --nmi\n");
		return B_INPUT;
	}
	return B_OK;
}

int boot_main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "boot") == 0) {
		argc--;
		argv++;
	}
	struct boot_opts bo;
	char after[16][16];
	int nafter = 0;
	int rc = parse_args(argc, argv, &bo, after, &nafter);
	if (rc != B_OK)
		return rc;

	char codedir[PATH_MAX + 64], root[PATH_MAX], kernel[PATH_MAX];
	shim_root(root, sizeof root);
	if (bo.code_dir)
		snprintf(codedir, sizeof codedir, "%s", bo.code_dir);
	else
		snprintf(codedir, sizeof codedir, "%s/%s", root, bo.variant ? bo.variant : DEFAULT_VARIANT);
	const char *k = bo.kernel ? bo.kernel : getenv("SHIMCHECK_BOOT_KERNEL") ? getenv("SHIMCHECK_BOOT_KERNEL")
										: SHIMCHECK_BOOT_KERNEL;
	if (!realpath(k, kernel)) {
		fprintf(stderr, "shimcheck boot: %s: the boot kernel is missing (build the boot_kernel target): %s\n", k,
			strerror(errno));
		return B_INTERNAL;
	}

	/* The scratch directory: --keep's, or a temporary one removed at the end. */
	char dir[PATH_MAX];
	if (bo.keep) {
		if (mkdir(bo.keep, 0755) != 0 && errno != EEXIST) {
			fprintf(stderr, "shimcheck boot: --keep %s: %s\n", bo.keep, strerror(errno));
			return B_INPUT;
		}
		if (!realpath(bo.keep, dir)) {
			fprintf(stderr, "shimcheck boot: --keep %s: %s\n", bo.keep, strerror(errno));
			return B_INPUT;
		}
	} else {
		const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(dir, sizeof dir, "%s/shimcheck-boot.XXXXXX", tmp);
		if (!mkdtemp(dir)) {
			fprintf(stderr, "shimcheck boot: %s: %s\n", dir, strerror(errno));
			return B_INTERNAL;
		}
	}

	if (bo.nmi)
		rc = mode_nmi(&bo, dir, kernel, codedir,
			      bo.nscenario		    ? bo.scenario[0]
			      : readable("scenarios/default.json") ? "scenarios/default.json"
								    : SHIMCHECK_SOURCE_DIR "/scenarios/default.json",
			      after, nafter);
	else if (bo.step)
		rc = mode_step(&bo, dir, kernel, codedir,
			       bo.nscenario		     ? bo.scenario[0]
			       : readable("scenarios/default.json") ? "scenarios/default.json"
								     : SHIMCHECK_SOURCE_DIR "/scenarios/default.json");
	else if (bo.mutant)
		rc = mode_mutants(&bo, dir, kernel, root);
	else if (bo.window)
		rc = mode_window(&bo, dir, kernel, codedir, after, nafter);
	else
		rc = mode_scenarios(&bo, dir, kernel, codedir);

	if (!bo.keep)
		remove_dir(dir);
	else if (rc != B_OK && rc != B_DIVERGE)
		fprintf(stderr, "shimcheck boot: files kept in %s\n", dir);
	return rc;
}
