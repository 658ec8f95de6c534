/*
 * boot_compare.c: `shimcheck compare LOG`: a serial log of the boot kernel (what the GRUB ISO
 * prints on a PC's COM1, or `qemu-system-i386 -cdrom shimcheck.iso -serial file:LOG`) against
 * the simulator.
 *
 * The log says which images it ran: each image line carries its module's string
 * ("/boot/image3.bin scenario=pae variant=literal", written by mkiso.sh -n / the ISO `make
 * iso` builds) and the FNV-1a checksum of the module's bytes. For each image this finds the
 * scenario (DIR/NAME.json), builds the image with the named variant as `shimcheck image`
 * would, checks the checksum (a log made from another build or scenario cannot be compared
 * observation by observation: it differs), runs Unicorn and compares the observations as
 * `shimcheck boot` does.
 *
 * What only an engine's logs tell (a triple fault's exception chain, which trap routine a
 * stuck machine sits in) a serial log does not have: an image that never printed its end is
 * compared as "shutdown" when the machine booted again after it (a PC resets on a triple
 * fault; QEMU without -no-reboot too), else as "stopped" (the log ends there).
 */
#define _GNU_SOURCE
#include "boot_cmd.h"
#include "boot_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_export.h"

#define FNV_INIT 2166136261u

static uint32_t fnv1a(const uint8_t *p, size_t n, uint32_t h)
{
	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* A scenario or variant name from the log becomes part of a path: letters, digits, '-',
 * '_', '.', and no "..". */
static bool safe_name(const char *s)
{
	if (!*s || strstr(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		      *s == '.'))
			return false;
	return true;
}

/* The image `shimcheck image` writes for the loaded pipeline, and its checksum. */
static bool image_sum(const struct pipeline *p, uint32_t *sum, size_t *size)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool ok = f && image_export(&p->img, &p->code, f) == 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (ok) {
		*sum = fnv1a((const uint8_t *)buf, len, FNV_INIT);
		*size = len;
	}
	free(buf);
	return ok;
}

struct copts {
	const char *log, *scen_dir, *scenario, *variant;
	bool verbose;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: shimcheck compare LOG [--scenarios DIR] [--scenario FILE --variant NAME] [--verbose]\n"
		   "\n"
		   "Compares a serial log of the boot kernel (the ISO on a PC's COM1, or QEMU's -serial file:LOG)\n"
		   "with the simulator: each image line names its scenario and variant (scenario=, variant= in\n"
		   "its module string, as `make iso` writes them) and its image checksum; the scenario is\n"
		   "DIR/NAME.json (default: scenarios/ here, else the source tree's). --scenario and --variant\n"
		   "name them for images whose module string does not.\n"
		   "exit status: 0 every image identical and no violation, 1 a difference (observations, image\n"
		   "checksum) or a violation, 2 a log that does not parse (file:line), an unknown scenario or\n"
		   "variant, a bad command line, 3 internal error, 77 Unicorn unavailable\n");
}

static int parse_args(int argc, char **argv, struct copts *o)
{
	static const struct option longopts[] = {{"scenarios", required_argument, NULL, 'd'},
						 {"scenario", required_argument, NULL, 's'},
						 {"variant", required_argument, NULL, 'v'},
						 {"verbose", no_argument, NULL, 'V'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	memset(o, 0, sizeof *o);
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o->scen_dir = optarg; break;
		case 's': o->scenario = optarg; break;
		case 'v': o->variant = optarg; break;
		case 'V': o->verbose = true; break;
		case 'h': usage(stdout); exit(B_OK);
		default:
			fprintf(stderr, "shimcheck compare: command line: %s: unknown option or missing argument (see --help)\n",
				argv[optind - 1]);
			return B_INPUT;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "shimcheck compare: command line: one LOG file wanted (see --help)\n");
		return B_INPUT;
	}
	o->log = argv[optind];
	if (o->variant && !safe_name(o->variant)) {
		fprintf(stderr, "shimcheck compare: command line: --variant: '%s' is not a variant name\n", o->variant);
		return B_INPUT;
	}
	return B_OK;
}

/* How the log's part of an image ends when the kernel printed no end for it. */
static void close_image(const struct klog *l, struct klog_image *im, bool last)
{
	struct obs_list *ol = &im->obs;
	struct obs *o;
	if (obs_ends(ol) || im->refused)
		return;
	if (im->reset && (o = obs_add(ol, O_SHUTDOWN)))
		snprintf(o->note, sizeof o->note, "the log shows the machine booting again (line %d) before this image's end: a "
			 "reset, as a PC's triple fault", l->reset_line);
	else if ((o = obs_add(ol, O_STOPPED)))
		snprintf(o->note, sizeof o->note, "%s", last ? (l->cut_short ? "the log ends mid-line before this image's end"
									     : "the log ends before this image's end")
							      : "the kernel went on to the next image without an end");
}

int compare_main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "compare") == 0) {
		argc--;
		argv++;
	}
	struct copts co;
	int rc = parse_args(argc, argv, &co);
	if (rc != B_OK)
		return rc;
	size_t len;
	char *text = slurp(co.log, &len);
	if (!text) {
		fprintf(stderr, "shimcheck compare: %s: %s\n", co.log, strerror(errno));
		return B_INPUT;
	}
	static struct klog l;
	char err[PATH_MAX + 300];
	rc = klog_parse(text, len, co.log, &l, err, sizeof err);
	free(text);
	if (rc != B_OK) {
		fprintf(stderr, "shimcheck compare: %s\n", err);
		klog_free(&l);
		return rc;
	}
	if (l.kernel_error || l.kernel_fault) {
		fprintf(stderr, "shimcheck compare: %s:%d: the boot kernel %s before running an image: %s\n", co.log, l.fault_line,
			l.kernel_error ? "refused its input" : "faulted", l.fault);
		if (!l.nimages) {
			klog_free(&l);
			return B_INPUT;
		}
	}
	if (!l.nimages) {
		fprintf(stderr, "shimcheck compare: %s:%d: the kernel booted but ran no image\n", co.log, l.lines);
		klog_free(&l);
		return B_INPUT;
	}

	char root[PATH_MAX], dir[PATH_MAX];
	shim_root(root, sizeof root);
	if (co.scen_dir)
		snprintf(dir, sizeof dir, "%s", co.scen_dir);
	else if (access("scenarios/default.json", R_OK) == 0)
		snprintf(dir, sizeof dir, "scenarios");
	else
		snprintf(dir, sizeof dir, "%s/scenarios", SHIMCHECK_SOURCE_DIR);

	printf("shimcheck compare: %s: %d line%s, booted by %s on %s%s%s, signature 0x%" PRIx64 "; %d image%s%s\n", co.log,
	       l.lines, l.lines == 1 ? "" : "s", l.loader[0] ? l.loader : "?", l.vendor, l.vendor[0] ? " " : "",
	       l.brand[0] ? l.brand : "?", l.signature, l.nimages, l.nimages == 1 ? "" : "s",
	       l.reset_line ? " (the machine booted again after that; later lines not compared)" : "");
	static struct pipeline p;
	int same = 0, violating = 0, differ = 0, bad = 0;
	for (int i = 0; i < l.nimages; i++) {
		struct klog_image *im = &l.img[i];
		close_image(&l, im, i == l.nimages - 1);
		const char *sname = im->scenario, *vname = im->variant[0] ? im->variant : co.variant;
		char spath[PATH_MAX + 80], cpath[PATH_MAX + 64];
		if (!sname[0] && co.scenario)
			snprintf(spath, sizeof spath, "%s", co.scenario);
		else
			snprintf(spath, sizeof spath, "%s/%s.json", dir, sname);
		if ((!sname[0] && !co.scenario) || !vname) {
			fprintf(stderr, "shimcheck compare: %s:%d: image %d names no %s in its module string ('%s'): give --scenario "
				"FILE and --variant NAME\n", co.log, im->line, i, !vname ? "variant" : "scenario", im->args);
			rc = rc == B_OK || rc == B_DIVERGE ? B_INPUT : rc;
			bad++;
			continue;
		}
		if ((sname[0] && !safe_name(sname)) || !safe_name(vname)) {
			fprintf(stderr, "shimcheck compare: %s:%d: image %d: scenario '%s', variant '%s': not names this tool looks "
				"up\n", co.log, im->line, i, sname, vname);
			rc = rc == B_OK || rc == B_DIVERGE ? B_INPUT : rc;
			bad++;
			continue;
		}
		if (im->refused) {
			printf("REFUSED: image %d (%s:%d), scenario %s, variant %s: the boot kernel refused it: %s\n", i, co.log,
			       im->line, sname[0] ? sname : spath, vname, im->message);
			rc = rc == B_OK || rc == B_DIVERGE ? B_INPUT : rc;
			bad++;
			continue;
		}
		snprintf(cpath, sizeof cpath, "%s/%s", root, vname);
		pl_init(&p);
		enum pl_status st = pl_load_code(&p, cpath);
		if (st == PL_OK)
			st = pl_load_scenario(&p, spath);
		if (st != PL_OK) {
			fprintf(stderr, "shimcheck compare: %s:%d: image %d: %s\n", co.log, im->line, i, p.err);
			pl_free(&p);
			rc = rc == B_OK || rc == B_DIVERGE ? (int)st : rc;
			bad++;
			continue;
		}
		uint32_t sum = 0;
		size_t size = 0;
		if (!image_sum(&p, &sum, &size)) {
			fprintf(stderr, "shimcheck compare: cannot export the image of %s\n", spath);
			pl_free(&p);
			rc = B_INTERNAL;
			break;
		}
		printf("-- image %d (%s:%d): scenario %s, variant %s\n", i, co.log, im->line, p.sc.name, p.code.variant);
		if (!im->has_sum || im->sum != sum || (im->module_size && im->module_size != size)) {
			printf("IMAGE DIFFERS: image %d: the log's module has checksum %s0x%08" PRIx32 " (%" PRIu64 " bytes), this "
			       "build's image of %s with %s 0x%08" PRIx32 " (%zu bytes): the log was made from another build, "
			       "scenario or variant; its observations are not compared\n",
			       i, im->has_sum ? "" : "(none) ", im->sum, im->module_size, spath, vname, sum, size);
			pl_free(&p);
			differ++;
			rc = rc == B_OK ? B_DIVERGE : rc;
			continue;
		}
		static struct scen_res sr;
		memset(&sr, 0, sizeof sr);
		int r = sim_run(&p, &sr);
		pl_free(&p);
		if (r != B_OK) {
			free(sr.violations);
			rc = r;
			break;
		}
		if (co.verbose) {
			int n = im->obs.n > sr.sim.n ? im->obs.n : sr.sim.n;
			for (int k = 0; k < n; k++) {
				printf("observation %d:\n", k);
				show_side_by_side(stdout, "log", k < im->obs.n ? &im->obs.o[k] : NULL, k < sr.sim.n ? &sr.sim.o[k] : NULL,
						  -2);
			}
		}
		int field = -1, at = first_difference(&im->obs, &sr.sim, &field);
		if (at >= 0) {
			print_divergence(stdout, "log", &im->obs, &sr.sim, at, field);
			if (sr.kernel_bytes && (field == F_GUEST_SEEN || field == F_SHIM_SUM))
				printf("EXPLAINED: %s: guest_seen and shim_sum cannot match the simulator's (docs/hardware.md)\n",
				       sr.kernel_why);
		}
		if (sr.st == PL_VIOLATION)
			fputs(sr.violations ? sr.violations : "", stdout);
		int rounds = 0;
		for (int k = 0; k < im->obs.n; k++)
			rounds += im->obs.o[k].kind == O_ROUND;
		char last[48] = "nothing";
		if (im->obs.n)
			obs_label(&im->obs.o[im->obs.n - 1], last, sizeof last);
		bool pass = at == -1 && sr.st != PL_VIOLATION;
		printf("%s: image %d, scenario %s, variant %s, image checksum 0x%08" PRIx32 " as this build's: %d observation%s, %d "
		       "round trip%s, ends with %s; %s unicorn (%u instructions, %s); %d violation%s\n",
		       pass ? "COMPARE PASS" : "COMPARE FAIL", i, sr.name, sr.variant, sum, im->obs.n, im->obs.n == 1 ? "" : "s",
		       rounds, rounds == 1 ? "" : "s", last, at == -1 ? "identical to" : "differs from", sr.ninsn, tr_end_name(sr.end),
		       sr.nviol, sr.nviol == 1 ? "" : "s");
		free(sr.violations);
		same += at == -1;
		violating += at == -1 && sr.st == PL_VIOLATION;
		differ += at != -1;
		if (!pass && rc == B_OK)
			rc = B_DIVERGE;
	}
	printf("COMPARE: %s: %d image%s: %d identical to the simulator (%d of them with violations it reports), %d differ, %d "
	       "not comparable%s\n", co.log, l.nimages, l.nimages == 1 ? "" : "s", same, violating, differ, bad,
	       l.done || l.nimages == 1 ? "" : "; the kernel's done line is missing (the run did not finish its batch)");
	klog_free(&l);
	return rc;
}
