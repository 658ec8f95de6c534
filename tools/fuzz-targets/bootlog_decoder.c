/*
 * bootlog_decoder.c: the fuzz_bootlog decoder (fuzz_common.h): arbitrary bytes through every
 * reader of tools/boot/boot_log.c, as `shimcheck compare` and `shimcheck boot` call them.
 *
 *   klog_parse            the strict serial-log reader of `shimcheck compare`; an accepted log
 *                         is written back in the kernel's format and read again: it must give
 *                         the same images, observations and fields (what compare compares is
 *                         what the log said, nothing more or less)
 *   parse_kernel_lines    the lenient reader of an engine's stream, into four jobs
 *   qemu_chains_text      QEMU's -d int,exec log, into the same jobs
 *   bochs_*               Bochs's triple-fault message, CPU log, breakpoint stop
 *
 * Outcome: "ok:images=N" (klog_parse accepted, N images) or "rejected:line=N" (the line its
 * message names; 0 when it names none). A reader that leaves a structure outside its bounds
 * (counts, kinds, unterminated strings) or a round trip that changes anything aborts.
 *
 * Kept apart from fuzz_common.c: the other targets' corpus tests link that file without the
 * boot library.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot_int.h"
#include "fuzz_common.h"

static void finding(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fuzz_bootlog: FINDING: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

static void check_str(const char *s, size_t n, const char *what)
{
	if (!memchr(s, '\0', n))
		finding("%s is not NUL-terminated", what);
}

static void check_obs_list(const struct obs_list *l, const char *who)
{
	if (l->n < 0 || l->n > MAX_OBS)
		finding("%s: %d observations (limit %d)", who, l->n, MAX_OBS);
	for (int i = 0; i < l->n; i++) {
		const struct obs *o = &l->o[i];
		if ((unsigned)o->kind > O_NOT_RUN)
			finding("%s: observation %d has kind %d", who, i, (int)o->kind);
		if (o->have >> F_N)
			finding("%s: observation %d has field bits beyond F_N", who, i);
		check_str(o->note, sizeof o->note, "an observation's note");
	}
}

/* ---- writing a parsed log back in the kernel's format ------------------------------------------ */

static void put_str(FILE *f, const char *key, const char *s)
{
	fprintf(f, ",\"%s\":\"", key);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void put_obs(FILE *f, const struct obs *o)
{
	if (o->kind == O_EXCEPTION) {
		fputs("{\"type\":\"exception\",\"phase\":\"host\"", f);
	} else {
		const char *ev = o->kind == O_ENTRY ? "entry" : o->kind == O_ROUND ? "round" : o->kind == O_END ? "end" : "stopped";
		fprintf(f, "{\"type\":\"observation\",\"event\":\"%s\"", ev);
	}
	for (int k = 0; k < F_N; k++)
		if (obs_has(o, (enum ofield)k))
			fprintf(f, ",\"%s\":\"0x%llx\"", field_name[k], (unsigned long long)o->v[k]);
	fputs("}\n", f);
}

static char *write_back(const struct klog *l, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	fputs("{\"type\":\"boot\",\"kernel\":\"shimcheck-boot\"", f);
	put_str(f, "loader", l->loader);
	put_str(f, "cpu_vendor", l->vendor);
	if (l->has_signature)
		fprintf(f, ",\"cpu_signature\":\"0x%llx\"", (unsigned long long)l->signature);
	put_str(f, "cpu_brand", l->brand);
	fputs("}\n", f);
	for (int i = 0; i < l->nimages; i++) {
		const struct klog_image *im = &l->img[i];
		fprintf(f, "{\"type\":\"image\",\"index\":\"0x%x\"", i);
		put_str(f, "args", im->args);
		if (im->has_sum)
			fprintf(f, ",\"image_sum\":\"0x%x\"", im->sum);
		if (im->module_size)
			fprintf(f, ",\"module_size\":\"0x%llx\"", (unsigned long long)im->module_size);
		fputs("}\n", f);
		for (int k = 0; k < im->obs.n; k++)
			put_obs(f, &im->obs.o[k]);
		if (im->refused)
			fprintf(f, "{\"type\":\"error\",\"phase\":\"kernel\",\"image\":\"0x%x\",\"message\":\"refused\"}\n", i);
	}
	if (l->done)
		fputs("{\"type\":\"done\"}\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void same_log(const struct klog *a, const struct klog *b)
{
	if (a->nimages != b->nimages)
		finding("round trip: %d images, then %d", a->nimages, b->nimages);
	if (strcmp(a->loader, b->loader) || strcmp(a->vendor, b->vendor) || strcmp(a->brand, b->brand) ||
	    a->has_signature != b->has_signature || a->signature != b->signature)
		finding("round trip: the boot line changed");
	if (a->done != b->done)
		finding("round trip: the done line changed");
	for (int i = 0; i < a->nimages; i++) {
		const struct klog_image *x = &a->img[i], *y = &b->img[i];
		if (strcmp(x->args, y->args) || strcmp(x->scenario, y->scenario) || strcmp(x->variant, y->variant))
			finding("round trip: image %d's module string changed", i);
		if (x->has_sum != y->has_sum || x->sum != y->sum || x->module_size != y->module_size)
			finding("round trip: image %d's checksum or size changed", i);
		if (x->refused != y->refused || x->obs.n != y->obs.n)
			finding("round trip: image %d: %d observations, then %d", i, x->obs.n, y->obs.n);
		for (int k = 0; k < x->obs.n; k++) {
			const struct obs *p = &x->obs.o[k], *q = &y->obs.o[k];
			if (p->kind != q->kind || p->n != q->n || p->have != q->have)
				finding("round trip: image %d observation %d: kind, number or fields changed", i, k);
			for (int f = 0; f < F_N; f++)
				if (obs_has(p, (enum ofield)f) && p->v[f] != q->v[f])
					finding("round trip: image %d observation %d: %s changed", i, k, field_name[f]);
		}
	}
}

/* ---- the decoder ------------------------------------------------------------------------------- */

#define NJOBS 4

static void engine_readers(const uint8_t *data, size_t size)
{
	/* every reader gets its own NUL-terminated copy: strtok writes into it */
	char *s = malloc(size + 1);
	if (!s)
		return;
	static struct job jobs[NJOBS];
	static struct engine_info ei;
	memset(jobs, 0, sizeof jobs);
	memset(&ei, 0, sizeof ei);
	for (int i = 0; i < NJOBS; i++) {
		/* trap routines where the shipped images have them, and one at kernel_enter */
		jobs[i].traps.n = 3;
		jobs[i].traps.lin[0] = 0xe00000e1;
		jobs[i].traps.name[0] = "monitor_trap";
		jobs[i].traps.lin[1] = 0xc8801200 + (uint32_t)i;
		jobs[i].traps.name[1] = "__shim_nmi";
		jobs[i].traps.lin[2] = KERNEL_ENTER;
		jobs[i].traps.name[2] = "host_trap";
	}
	memcpy(s, data, size);
	s[size] = '\0';
	struct kparse kp = {.ei = &ei, .jobs = jobs, .n = NJOBS, .cur = -1};
	parse_kernel_lines(s, &kp);
	if (kp.cur < -1 || kp.cur >= NJOBS)
		finding("parse_kernel_lines left cur at %d", kp.cur);
	check_str(kp.message, sizeof kp.message, "kparse.message");
	check_str(ei.cpu, sizeof ei.cpu, "engine_info.cpu");
	check_str(ei.loader, sizeof ei.loader, "engine_info.loader");
	for (int i = 0; i < NJOBS; i++) {
		check_obs_list(&jobs[i].r.obs, "parse_kernel_lines");
		check_str(jobs[i].r.message, sizeof jobs[i].r.message, "img_run.message");
	}

	memcpy(s, data, size);
	s[size] = '\0';
	for (int i = 0; i < NJOBS; i++)
		jobs[i].r.started = i != 2; /* a refused or unstarted image is skipped by the markers */
	qemu_chains_text(s, jobs, NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		const struct img_run *r = &jobs[i].r;
		if (r->nchain < 0 || r->nchain > MAX_CHAIN || r->nafter < 0 || r->nafter > MAX_CHAIN ||
		    r->chain_total < r->nchain || r->after_total < r->nafter)
			finding("qemu_chains_text: job %d chain %d/%d after %d/%d", i, r->nchain, r->chain_total, r->nafter,
				r->after_total);
		if (r->handler && !trap_name(&jobs[i].traps, r->handler))
			finding("qemu_chains_text: job %d's handler 0x%x is not a trap routine", i, r->handler);
	}

	memcpy(s, data, size);
	s[size] = '\0';
	struct obs o;
	memset(&o, 0, sizeof o);
	bochs_triple_fault(s, &o);
	bochs_first_exception_text(s, &o);
	check_str(o.note, sizeof o.note, "bochs note");
	uint32_t at, frame[4];
	bool fk;
	bochs_breakpoint(s, &at, frame, &fk);
	free(s);
}

void fz_bootlog_one(const uint8_t *data, size_t size)
{
	static struct klog a, b;
	char err[512];
	int rc = klog_parse((const char *)data, size, "input", &a, err, sizeof err);
	check_str(err, sizeof err, "klog_parse's message");
	if (rc != B_OK && rc != B_INPUT)
		finding("klog_parse returned %d on %zu bytes: %s", rc, size, err);
	if (rc == B_INPUT) {
		/* "input:LINE: why": the line must be one of the input's */
		int line = 0;
		if (sscanf(err, "input:%d:", &line) != 1 || line < 1 || line > a.lines + 1)
			finding("klog_parse's message names no line of the input (%d lines): %s", a.lines, err);
		snprintf(fz_outcome, sizeof fz_outcome, "rejected:line=%d", line);
	} else {
		if (a.nimages < 0 || a.nimages > KLOG_MAX_IMAGES || a.nimages > a.cap)
			finding("klog_parse: %d images (cap %d)", a.nimages, a.cap);
		check_str(a.loader, sizeof a.loader, "klog.loader");
		check_str(a.fault, sizeof a.fault, "klog.fault");
		for (int i = 0; i < a.nimages; i++) {
			const struct klog_image *im = &a.img[i];
			if (im->index != i)
				finding("klog_parse: image %d has index %d", i, im->index);
			check_str(im->args, sizeof im->args, "image args");
			check_str(im->scenario, sizeof im->scenario, "image scenario");
			check_str(im->variant, sizeof im->variant, "image variant");
			check_str(im->message, sizeof im->message, "image message");
			check_obs_list(&im->obs, "klog_parse");
		}
		size_t len = 0;
		char *text = write_back(&a, &len);
		if (!text)
			finding("writing the log back failed");
		int rc2 = klog_parse(text, len, "again", &b, err, sizeof err);
		if (rc2 != B_OK)
			finding("round trip: the log written back does not parse: %s\n%s", err, text);
		same_log(&a, &b);
		free(text);
		klog_free(&b);
		snprintf(fz_outcome, sizeof fz_outcome, "ok:images=%d", a.nimages);
	}
	klog_free(&a);
	engine_readers(data, size);
}
