/*
 * shimcheck: prove an x86 world-switch sequence correct by running its real bytes.
 *
 *   shimcheck run    [options] [--trace FILE] [--format text|jsonl]
 *   shimcheck trace  [options]            review dump on stdout
 *   shimcheck rules                       rule IDs, one line each
 *
 * Exit status: 0 all checks held; 1 a violation (each line starts with its rule ID);
 * 2 input that cannot be loaded or validated; 3 internal error; 77 engine unavailable.
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "bench.h"
#include "boot_cmd.h"
#include "diff.h"
#include "fuzz.h"
#include "image_export.h"
#include "mutate_cmd.h"
#include "report.h"
#include "timeline.h"
#include "window.h"

#define DEFAULT_VARIANT "hardened"

enum { EXIT_OK = 0, EXIT_VIOLATION = 1, EXIT_INPUT = 2, EXIT_INTERNAL = 3 };

struct opts {
	const char *cmd;
	const char *variant;
	const char *code_dir;
	const char *scenario;
	const char *trace;
	const char *format;
	double seconds;
	const char *seed;
	const char *jobs;
	const char *out;
	const char *vector;
	int json;
	int fail_on_unsafe;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shimcheck COMMAND [options]\n"
		"\n"
		"commands:\n"
		"  run      run the round trips and check them (the default command)\n"
		"  trace    run and print the review trace: bytes, disassembly, state changes, verdicts\n"
		"  rules    list the rule IDs with what each one checks\n"
		"  bench    time the engine floor, the checked round trip and a cold start (--seconds N)\n"
		"  image    write the physical image + initial CPU state for other engines (--out FILE)\n"
		"  mutate   automatic mutants of the variant's binaries, run through every checker\n"
		"  boot     boot the same image on QEMU, Bochs or KVM and compare (shimcheck boot --help)\n"
		"  compare  LOG: a serial log of the boot kernel (a PC, the ISO) against the simulator\n"
		"  window   could an NMI be delivered at each boundary of the switch windows?\n"
		"           (--vector N, default 2; --fail-on-unsafe: exit 1 when a boundary is unsafe)\n"
		"  fuzz     random scenarios biased toward collisions; findings shrunk into --out\n"
		"           (--seconds N, --seed S, --jobs J, --out DIR, default build/findings)\n"
		"  diff     A.jsonl B.jsonl: where two JSONL traces part (exit 0 same, 1 different, 2 unreadable);\n"
		"           --variants A B [--scenario F]: two variants' switch orders side by side\n"
		"  timeline run and draw the run as an SVG picture (--out FILE.svg)\n"
		"\n"
		"options:\n"
		"  --variant NAME     shim variant under build/shim/ (default: %s)\n"
		"  --code-dir DIR     a code directory (manifest.json + binaries) instead of --variant\n"
		"  --scenario FILE    scenario JSON (default: scenarios/default.json)\n"
		"  --json             print one machine-readable verdict object on stdout\n"
		"  --trace FILE       (run) also write the trace to FILE ('-' for stdout)\n"
		"  --format FMT       (run --trace) text or jsonl (default: jsonl for files ending in .jsonl, else text)\n"
		"  --help, --version\n"
		"\n"
		"exit status: 0 all checks held, 1 a violation, 2 bad input, 3 internal error, 77 engine unavailable\n",
		DEFAULT_VARIANT);
}

static bool exists(const char *path) { return access(path, R_OK) == 0; }

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"variant", required_argument, NULL, 'v'}, {"code-dir", required_argument, NULL, 'c'},
		{"scenario", required_argument, NULL, 's'}, {"trace", required_argument, NULL, 't'},
		{"format", required_argument, NULL, 'f'},   {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},           {"version", no_argument, NULL, 'V'},
		{"seconds", required_argument, NULL, 'S'},  {"seed", required_argument, NULL, 'e'},
		{"jobs", required_argument, NULL, 'J'},     {"out", required_argument, NULL, 'o'},
		{"vector", required_argument, NULL, 'X'},   {"fail-on-unsafe", no_argument, NULL, 'F'},
		{NULL, 0, NULL, 0}};
	memset(o, 0, sizeof *o);
	o->cmd = "run";
	int first = 1;
	if (argc > 1 && argv[1][0] != '-') {
		o->cmd = argv[1];
		first = 2;
	}
	optind = first;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'v': o->variant = optarg; break;
		case 'c': o->code_dir = optarg; break;
		case 's': o->scenario = optarg; break;
		case 't': o->trace = optarg; break;
		case 'f': o->format = optarg; break;
		case 'j': o->json = 1; break;
		case 'e': o->seed = optarg; break;
		case 'J': o->jobs = optarg; break;
		case 'o': o->out = optarg; break;
		case 'X': o->vector = optarg; break;
		case 'F': o->fail_on_unsafe = 1; break;
		case 'S': {
			char *end;
			o->seconds = strtod(optarg, &end);
			if (*end || !(o->seconds > 0 && o->seconds <= 3600)) {
				fprintf(stderr, "shimcheck: command line: --seconds: '%s' is not a number of seconds (0..3600]\n", optarg);
				return EXIT_INPUT;
			}
			break;
		}
		case 'h': usage(stdout); exit(EXIT_OK);
		case 'V': printf("shimcheck %s (unicorn %s)\n", SHIMCHECK_VERSION, engine_version()); exit(EXIT_OK);
		default:
			fprintf(stderr, "shimcheck: command line: %s: unknown option or missing argument (see --help)\n",
				argv[optind - 1]);
			return EXIT_INPUT;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shimcheck: command line: unexpected argument '%s' (see --help)\n", argv[optind]);
		return EXIT_INPUT;
	}
	if (o->variant && o->code_dir) {
		fprintf(stderr, "shimcheck: command line: --variant and --code-dir exclude each other\n");
		return EXIT_INPUT;
	}
	if (o->format && strcmp(o->format, "text") && strcmp(o->format, "jsonl")) {
		fprintf(stderr, "shimcheck: command line: --format: '%s' is neither text nor jsonl\n", o->format);
		return EXIT_INPUT;
	}
	if (o->variant && (!*o->variant || strchr(o->variant, '/'))) {
		fprintf(stderr, "shimcheck: command line: --variant: '%s' is not a variant name\n", o->variant);
		return EXIT_INPUT;
	}
	return EXIT_OK;
}

static int cmd_rules(void)
{
	for (int r = 0; r < R_N; r++)
		printf("%-13s %s\n", rule_id((enum rule)r), rule_why((enum rule)r));
	return EXIT_OK;
}

static int write_trace(const struct report_ctx *r, const char *path, const char *format)
{
	bool jsonl = format ? strcmp(format, "jsonl") == 0
			    : (strlen(path) > 6 && strcmp(path + strlen(path) - 6, ".jsonl") == 0);
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	if (!f) {
		fprintf(stderr, "shimcheck: %s: --trace: cannot write: %s\n", path, strerror(errno));
		return EXIT_INPUT;
	}
	int rc = 0;
	if (jsonl)
		rc = report_trace_jsonl(f, r);
	else
		report_trace_text(f, r);
	if (f != stdout && fclose(f) != 0)
		rc = -1;
	if (rc != 0) {
		fprintf(stderr, "shimcheck: %s: --trace: write failed\n", path);
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

/* shimcheck diff A.jsonl B.jsonl | shimcheck diff --variants A B [--scenario F] */
static int cmd_diff(int argc, char **argv)
{
	if (argc == 3 && argv[1][0] != '-') {
		/* trace_diff prints an input error as one line on its stream: that goes to stderr */
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);
		if (!m)
			return EXIT_INTERNAL;
		int rc = trace_diff(m, argv[1], argv[2]);
		fclose(m);
		if (rc == 2)
			fprintf(stderr, "shimcheck: %s", buf);
		else
			fputs(buf, stdout);
		free(buf);
		return rc;
	}
	const char *var[2] = {NULL, NULL}, *scen_arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--variants") == 0 && i + 2 < argc) {
			var[0] = argv[++i];
			var[1] = argv[++i];
		} else if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc) {
			scen_arg = argv[++i];
		} else {
			fprintf(stderr, "shimcheck: command line: diff: '%s': expected A.jsonl B.jsonl, or --variants A B "
				"[--scenario FILE]\n", argv[i]);
			return EXIT_INPUT;
		}
	}
	if (!var[0]) {
		fprintf(stderr, "shimcheck: command line: diff: expected A.jsonl B.jsonl, or --variants A B [--scenario FILE]\n");
		return EXIT_INPUT;
	}
	char root[PATH_MAX], scen[PATH_MAX + 32];
	shim_root(root, sizeof root);
	if (scen_arg)
		snprintf(scen, sizeof scen, "%s", scen_arg);
	else if (exists("scenarios/default.json"))
		snprintf(scen, sizeof scen, "scenarios/default.json");
	else
		snprintf(scen, sizeof scen, "%s/scenarios/default.json", SHIMCHECK_SOURCE_DIR);
	static struct pipeline pp[2];
	pl_init(&pp[0]);
	pl_init(&pp[1]);
	enum pl_status st = PL_OK;
	for (int k = 0; k < 2; k++) {
		char dir[PATH_MAX + 64];
		if (strchr(var[k], '/'))
			snprintf(dir, sizeof dir, "%s", var[k]); /* a code directory */
		else
			snprintf(dir, sizeof dir, "%s/%s", root, var[k]);
		st = pl_load_code(&pp[k], dir);
		if (st == PL_OK)
			st = pl_load_scenario(&pp[k], scen);
		if (st == PL_OK)
			st = pl_run(&pp[k]);
		if (st != PL_OK && st != PL_VIOLATION) {
			fprintf(stderr, "shimcheck: %s\n", pp[k].err);
			break;
		}
	}
	int rc = st == PL_OK || st == PL_VIOLATION ? variant_diff(stdout, &pp[0], &pp[1]) : (int)st;
	pl_free(&pp[0]);
	pl_free(&pp[1]);
	return rc;
}

/* shimcheck window: the boundary table. */
static int window_report(const struct pipeline *p, const struct report_ctx *r, unsigned vector, int fail_on_unsafe)
{
	static struct wanalysis a;
	struct physmem mem = engine_memory(p->eng);
	a.safe_reasons = true;
	window_analyse(&p->t, &p->img, vector, &mem, &a);
	static const char *const verdicts[] = {"safe", "UNSAFE", "inhibited"};
	printf("shimcheck window: variant %s, scenario %s (%s): delivery of vector %u at each instruction boundary\n"
	       "from the jump into the shim to the first instruction after the far jump.\n"
	       "Unicorn delivers no interrupts: this is a prediction from the model (shimcheck boot checks it on\n"
	       "QEMU/Bochs). CPL 0 -> DPL 0 handler: no stack switch, no TSS read; pushes at SS:ESP-12.\n\n",
	       p->code.variant, p->sc.name, r->scenario_path, vector);
	printf("%-4s %-14s %6s  %-8s  %-36s %-9s %s\n", "win", "direction", "before", "eip", "next instruction", "verdict",
	       "why");
	for (int i = 0; i < a.n; i++) {
		const struct wboundary *b = &a.b[i];
		const struct tr_insn *in = &p->t.insn[b->insn];
		printf("%-4d %-14s %6u  %08" PRIx32 "  %-36.36s %-9s %s\n", b->window,
		       b->dir == DIR_M2H ? "monitor->host" : "host->monitor", b->insn, in->cpu.eip, in->text,
		       verdicts[b->verdict], b->reason);
	}
	printf("\n%d boundaries, %d unsafe\n", a.n, a.unsafe);
	if (fail_on_unsafe && a.unsafe) {
		for (int i = 0; i < a.n; i++)
			if (a.b[i].verdict == WV_UNSAFE)
				printf("%s #%u 0x%08" PRIx32 ": vector %u before `%s`: %s\n", rule_id(R_NMI), a.b[i].insn,
				       p->t.insn[a.b[i].insn].cpu.eip, vector, p->t.insn[a.b[i].insn].text, a.b[i].reason);
		return EXIT_VIOLATION;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	/* boot has options of its own (--engine, --window, --mutant...): tools/boot/boot_cmd.c parses them */
	if (argc > 1 && strcmp(argv[1], "boot") == 0)
		return boot_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "compare") == 0)
		return compare_main(argc - 1, argv + 1);
	/* diff takes file operands or two variant names, which parse() does not accept */
	if (argc > 1 && strcmp(argv[1], "diff") == 0)
		return cmd_diff(argc - 1, argv + 1);
	struct opts o;
	int rc = parse(argc, argv, &o);
	if (rc != EXIT_OK)
		return rc;
	if (strcmp(o.cmd, "rules") == 0)
		return cmd_rules();
	if (strcmp(o.cmd, "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	bool trace_cmd = strcmp(o.cmd, "trace") == 0, bench_cmd = strcmp(o.cmd, "bench") == 0;
	bool fuzz_cmd = strcmp(o.cmd, "fuzz") == 0, image_cmd = strcmp(o.cmd, "image") == 0;
	bool window_cmd = strcmp(o.cmd, "window") == 0, mutate_cmd = strcmp(o.cmd, "mutate") == 0;
	bool timeline_cmd = strcmp(o.cmd, "timeline") == 0;
	if (!trace_cmd && !bench_cmd && !fuzz_cmd && !image_cmd && !window_cmd && !mutate_cmd && !timeline_cmd &&
	    strcmp(o.cmd, "run") != 0) {
		fprintf(stderr, "shimcheck: command line: unknown command '%s' (see --help)\n", o.cmd);
		return EXIT_INPUT;
	}

	if (timeline_cmd && !o.out) {
		fprintf(stderr, "shimcheck: command line: timeline needs --out FILE.svg\n");
		return EXIT_INPUT;
	}
	char dir[PATH_MAX + 64], root[PATH_MAX], scen[PATH_MAX + 32];
	if (o.code_dir) {
		snprintf(dir, sizeof dir, "%s", o.code_dir);
	} else {
		shim_root(root, sizeof root);
		snprintf(dir, sizeof dir, "%s/%s", root, o.variant ? o.variant : DEFAULT_VARIANT);
	}
	if (o.scenario)
		snprintf(scen, sizeof scen, "%s", o.scenario);
	else if (exists("scenarios/default.json"))
		snprintf(scen, sizeof scen, "scenarios/default.json");
	else
		snprintf(scen, sizeof scen, "%s/scenarios/default.json", SHIMCHECK_SOURCE_DIR);

	static struct pipeline p;
	pl_init(&p);
	struct report_ctx r = {&p, scen, dir};
	enum pl_status st = pl_load_code(&p, dir);
	if (st == PL_OK && fuzz_cmd) {
		struct fuzz_opts fo = {o.seconds > 0 ? o.seconds : 10, 1, 1, o.out ? o.out : "build/findings", false, NULL, NULL};
		char *end;
		if (o.seed && (fo.seed = strtoull(o.seed, &end, 0), *end || !*o.seed)) {
			fprintf(stderr, "shimcheck: command line: --seed: '%s' is not a number\n", o.seed);
			return EXIT_INPUT;
		}
		if (o.jobs && (fo.jobs = (int)strtol(o.jobs, &end, 10), *end || fo.jobs < 1 || fo.jobs > 64)) {
			fprintf(stderr, "shimcheck: command line: --jobs: '%s' is not 1..64\n", o.jobs);
			return EXIT_INPUT;
		}
		rc = fuzz_run(&fo, &p);
		pl_free(&p);
		return rc;
	}
	if (st == PL_OK)
		st = pl_load_scenario(&p, scen);
	if (st == PL_OK && mutate_cmd) {
		char root[PATH_MAX];
		/* the shipped scenarios: next to the default one */
		snprintf(root, sizeof root, "%s", exists("scenarios/default.json") ? "." : SHIMCHECK_SOURCE_DIR);
		rc = mutate_run(&p, root);
		pl_free(&p);
		return rc;
	}
	if (st == PL_OK && image_cmd) {
		if (!o.out) {
			fprintf(stderr, "shimcheck: command line: image needs --out FILE\n");
			pl_free(&p);
			return EXIT_INPUT;
		}
		FILE *f = fopen(o.out, "wb");
		rc = f && image_export(&p.img, &p.code, f) == 0 ? EXIT_OK : EXIT_INTERNAL;
		if (f && fclose(f) != 0)
			rc = EXIT_INTERNAL;
		if (rc != EXIT_OK)
			fprintf(stderr, "shimcheck: %s: --out: cannot write: %s\n", o.out, strerror(errno));
		pl_free(&p);
		return rc;
	}
	if (st == PL_OK && bench_cmd) {
		rc = bench_run(&p, o.seconds > 0 ? o.seconds : 6, scen);
		pl_free(&p);
		return rc;
	}
	if (st == PL_OK)
		st = pl_run(&p);
	if (st != PL_OK && st != PL_VIOLATION) {
		if (o.json)
			report_verdict_json(stdout, &r, (int)st);
		fprintf(stderr, "shimcheck: %s\n", p.err);
		pl_free(&p);
		return (int)st;
	}
	if (window_cmd) {
		unsigned vector = 2;
		if (o.vector) {
			char *end;
			unsigned long v = strtoul(o.vector, &end, 0);
			if (*end || v > 31) {
				fprintf(stderr, "shimcheck: command line: --vector: '%s' is not 0..31\n", o.vector);
				pl_free(&p);
				return EXIT_INPUT;
			}
			vector = (unsigned)v;
		}
		rc = window_report(&p, &r, vector, o.fail_on_unsafe);
		pl_free(&p);
		return rc;
	}
	if (timeline_cmd) {
		FILE *f = fopen(o.out, "w");
		rc = f && timeline_svg(f, &p) == 0 ? (int)st : EXIT_INTERNAL;
		if (f && fclose(f) != 0)
			rc = EXIT_INTERNAL;
		if (rc == EXIT_INTERNAL)
			fprintf(stderr, "shimcheck: %s: --out: cannot write: %s\n", o.out, strerror(errno));
		else
			report_verdict_text(stdout, &r);
		pl_free(&p);
		return rc;
	}
	if (trace_cmd) {
		report_trace_text(stdout, &r);
	} else {
		if (o.trace && (rc = write_trace(&r, o.trace, o.format)) != EXIT_OK) {
			pl_free(&p);
			return rc;
		}
		if (o.json)
			report_verdict_json(stdout, &r, (int)st);
		else if (!(o.trace && strcmp(o.trace, "-") == 0))
			report_verdict_text(stdout, &r);
	}
	pl_free(&p);
	return (int)st;
}
