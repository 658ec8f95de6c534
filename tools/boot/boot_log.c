/*
 * boot_log.c: reading what the engines and the boot kernel write, with nothing else: no
 * processes, no files. The kernel's JSON lines (one per line, on port 0xE9 and COM1), QEMU's
 * -d int,exec log, Bochs's debugger and CPU log. Everything here takes text and fills
 * structures, so the fuzz target (tools/fuzz-targets/fuzz_bootlog.c) runs exactly what
 * `shimcheck boot` and `shimcheck compare` run.
 *
 * Two readers of the kernel's lines:
 *   parse_kernel_lines  lenient, for an engine's stream (Bochs mixes its own messages into
 *                       the E9 text; a machine may stop mid-line): what is not a kernel line,
 *                       or is cut, is skipped
 *   klog_parse          strict, for a serial log a person hands to `shimcheck compare`: a
 *                       kernel line that does not parse is named (file:line), because a log
 *                       that says less than it seems to must not pass
 */
#include "boot_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* "0x" and 1 to 16 hex digits, as the kernel writes every number. */
static bool hex_str(const char *s, uint64_t *out)
{
	if (!s || s[0] != '0' || s[1] != 'x' || !s[2] || strlen(s + 2) > 16)
		return false;
	uint64_t v = 0;
	for (const char *p = s + 2; *p; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return true;
}

/* A copy cut to fit must not end inside a UTF-8 character: the text is printed, and written
 * back into JSON, where a lone lead byte makes the line unreadable (an image's module
 * string of 98 bytes, then "é": seen reading fuzz_bootlog's round trip, reproduced by it,
 * tests/corpus/bootlog/crash-args-cut-inside-utf8.log). */
static void utf8_trim(char *s)
{
	size_t n = strlen(s), i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

static void copy_str(char *dst, size_t n, const char *s)
{
	if (snprintf(dst, n, "%s", s ? s : "") >= (int)n)
		utf8_trim(dst);
}

static enum okind event_kind(const char *ev)
{
	return !ev ? O_STOPPED
	       : strcmp(ev, "entry") == 0 ? O_ENTRY
	       : strcmp(ev, "round") == 0 ? O_ROUND
	       : strcmp(ev, "end") == 0   ? O_END
					  : O_STOPPED;
}

/* A field that is present must be a hex string; one that is absent is simply unknown.
 * Returns false (with why) for a present field of another form. */
static bool opt_hex(json_t *o, const char *key, uint64_t *v, bool *has, char *why, size_t wn)
{
	json_t *x = json_object_get(o, key);
	*has = false;
	if (!x)
		return true;
	if (!hex_str(json_string_value(x), v)) {
		snprintf(why, wn, "\"%s\" is not a hex string \"0x...\"", key);
		return false;
	}
	*has = true;
	return true;
}

static bool opt_str(json_t *o, const char *key, char *dst, size_t n, char *why, size_t wn)
{
	json_t *x = json_object_get(o, key);
	dst[0] = '\0';
	if (!x)
		return true;
	if (!json_is_string(x)) {
		snprintf(why, wn, "\"%s\" is not a string", key);
		return false;
	}
	copy_str(dst, n, json_string_value(x));
	return true;
}

int kline_parse(const char *s, size_t n, struct kline *k, char *why, size_t wn)
{
	static const char tag[] = "{\"type\":";
	const size_t tl = sizeof tag - 1;
	memset(k, 0, sizeof *k);
	why[0] = '\0';
	const char *brace = NULL;
	for (size_t i = 0; i + tl <= n && !brace; i++)
		if (s[i] == '{' && memcmp(s + i, tag, tl) == 0)
			brace = s + i;
	if (!brace)
		return -1;
	size_t len = n - (size_t)(brace - s);
	while (len && (brace[len - 1] == '\r' || brace[len - 1] == ' ' || brace[len - 1] == '\t'))
		len--;
	json_error_t jerr;
	json_t *o = json_loadb(brace, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		snprintf(why, wn, "not JSON: %s (column %d)", jerr.text, jerr.column);
		return 1;
	}
	int rc = 0;
	const char *type = json_string_value(json_object_get(o, "type"));
	bool has;
	uint64_t v;
	if (!json_is_object(o) || !type) {
		snprintf(why, wn, "\"type\" is not a string");
		rc = 1;
	} else if (strcmp(type, "boot") == 0) {
		k->type = K_BOOT;
		if (!opt_str(o, "loader", k->loader, sizeof k->loader, why, wn) ||
		    !opt_str(o, "cpu_vendor", k->vendor, sizeof k->vendor, why, wn) ||
		    !opt_str(o, "cpu_brand", k->brand, sizeof k->brand, why, wn) ||
		    !opt_hex(o, "cpu_signature", &k->signature, &k->has_signature, why, wn))
			rc = 1;
	} else if (strcmp(type, "memory") == 0) {
		k->type = K_MEMORY;
	} else if (strcmp(type, "image") == 0) {
		k->type = K_IMAGE;
		if (!opt_hex(o, "index", &v, &has, why, wn) || !opt_str(o, "args", k->args, sizeof k->args, why, wn) ||
		    !opt_hex(o, "image_sum", &k->sum, &k->has_sum, why, wn) ||
		    !opt_hex(o, "module_size", &k->module_size, &k->has_module_size, why, wn)) {
			rc = 1;
		} else if (!has || v >= KLOG_MAX_IMAGES) {
			snprintf(why, wn, "an image line without an \"index\" below %d", KLOG_MAX_IMAGES);
			rc = 1;
		} else {
			k->index = (int)v;
		}
	} else if (strcmp(type, "done") == 0) {
		k->type = K_DONE;
	} else if (strcmp(type, "observation") == 0) {
		k->type = K_OBS;
		json_t *ev = json_object_get(o, "event");
		if (!json_is_string(ev)) {
			snprintf(why, wn, "an observation without an \"event\" string");
			rc = 1;
		} else {
			copy_str(k->event, sizeof k->event, json_string_value(ev));
			k->o.kind = event_kind(k->event);
			for (int f = 0; f < F_N && rc == 0; f++)
				if (!opt_hex(o, field_name[f], &v, &has, why, wn))
					rc = 1;
				else if (has)
					obs_set(&k->o, (enum ofield)f, v);
			if (rc == 0 && k->o.kind == O_STOPPED)
				snprintf(k->o.note, sizeof k->o.note, "the observer reported event '%s'", k->event);
		}
	} else if (strcmp(type, "exception") == 0) {
		const char *phase = json_string_value(json_object_get(o, "phase"));
		k->type = phase && strcmp(phase, "host") == 0 ? K_EXC_HOST : K_EXC_KERNEL;
		k->o.kind = O_EXCEPTION;
		const enum ofield fs[] = {F_VECTOR, F_ERROR, F_EIP, F_CR2, F_CR3};
		for (size_t f = 0; f < sizeof fs / sizeof fs[0] && rc == 0; f++)
			if (!opt_hex(o, field_name[fs[f]], &v, &has, why, wn))
				rc = 1;
			else if (has)
				obs_set(&k->o, fs[f], v);
		if (obs_has(&k->o, F_VECTOR) && k->o.v[F_VECTOR] != 14)
			k->o.have &= ~((uint64_t)1 << F_CR2); /* CR2 means something only for #PF */
		snprintf(k->o.note, sizeof k->o.note, "the host IDT's gate reported it");
		char *d = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		copy_str(k->text, sizeof k->text, d ? d : "?");
		free(d);
	} else if (strcmp(type, "error") == 0) {
		k->type = K_ERROR;
		char val[40];
		if (!opt_str(o, "message", k->message, sizeof k->message, why, wn) ||
		    !opt_str(o, "value", val, sizeof val, why, wn) ||
		    !opt_hex(o, "image", &v, &k->has_image, why, wn)) {
			rc = 1;
		} else {
			k->index = k->has_image && v < KLOG_MAX_IMAGES ? (int)v : -1;
			size_t m = strlen(k->message);
			if (snprintf(k->message + m, sizeof k->message - m, " (%s)", val[0] ? val : "?") >= (int)(sizeof k->message - m))
				utf8_trim(k->message);
		}
	} else {
		k->type = K_UNKNOWN; /* a later kernel's line: not an error */
	}
	json_decref(o);
	return rc;
}

/* ---- an engine's stream (lenient) ---------------------------------------------------------------- */

void parse_kernel_lines(char *text, struct kparse *kp)
{
	static struct kline k; /* ~1 KiB: not on the stack of every caller */
	char why[160];
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (kline_parse(line, strlen(line), &k, why, sizeof why) != 0)
			continue; /* not the kernel's, or cut short (the machine stopped mid-line) */
		struct img_run *r = kp->cur >= 0 && kp->cur < kp->n ? &kp->jobs[kp->cur].r : NULL;
		struct obs *ob;
		switch (k.type) {
		case K_BOOT:
			kp->ei->booted = true;
			snprintf(kp->ei->cpu, sizeof kp->ei->cpu, "%s%s%s, signature 0x%" PRIx64, k.vendor,
				 k.vendor[0] ? " " : "", k.brand[0] ? k.brand : "?", k.signature);
			snprintf(kp->ei->loader, sizeof kp->ei->loader, "%s", k.loader[0] ? k.loader : "?");
			break;
		case K_IMAGE:
			kp->cur = k.index < kp->n ? k.index : -1;
			if (kp->cur >= 0)
				kp->jobs[kp->cur].r.started = true;
			break;
		case K_DONE:
			kp->done = true;
			break;
		case K_OBS:
		case K_EXC_HOST:
			if (r && (ob = obs_add(&r->obs, k.o.kind))) {
				int n = ob->n;
				*ob = k.o;
				ob->n = n;
			}
			break;
		case K_EXC_KERNEL:
			kp->kernel_fault = true;
			kp->fault = k.o;
			snprintf(kp->message, sizeof kp->message, "%s", k.text);
			break;
		case K_ERROR:
			if (k.index >= 0 && k.index < kp->n) {
				struct img_run *e = &kp->jobs[k.index].r;
				e->kernel_error = true;
				snprintf(e->message, sizeof e->message, "%s", k.message);
			} else {
				kp->kernel_error = true;
				snprintf(kp->message, sizeof kp->message, "%s", k.message);
			}
			break;
		default:
			break;
		}
	}
}

/* ---- a serial log (strict) ------------------------------------------------------------------------- */

/* module string -> key=value (the words after the file name, as mkiso.sh writes them) */
static void arg_value(const char *args, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	out[0] = '\0';
	for (const char *p = args; p && *p; p++) {
		if ((p == args || p[-1] == ' ') && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t l = strcspn(p + kl + 1, " ");
			snprintf(out, n, "%.*s", (int)(l < n ? l : n - 1), p + kl + 1);
		}
	}
}

static struct klog_image *klog_new_image(struct klog *l)
{
	if (l->nimages == l->cap) {
		int cap = l->cap ? 2 * l->cap : 8;
		struct klog_image *b = realloc(l->img, (size_t)cap * sizeof *b);
		if (!b)
			return NULL;
		l->img = b;
		l->cap = cap;
	}
	struct klog_image *im = &l->img[l->nimages++];
	memset(im, 0, sizeof *im);
	return im;
}

void klog_free(struct klog *l)
{
	free(l->img);
	memset(l, 0, sizeof *l);
}

int klog_parse(const char *text, size_t n, const char *file, struct klog *l, char *err, size_t errlen)
{
	static struct kline k;
	char why[160];
	memset(l, 0, sizeof *l);
	err[0] = '\0';
	int line = 0, first_bad = 0;
	struct klog_image *cur = NULL;
	for (size_t at = 0; at < n;) {
		const char *nl = memchr(text + at, '\n', n - at);
		size_t len = nl ? (size_t)(nl - (text + at)) : n - at;
		const char *s = text + at;
		at += len + (nl ? 1 : 0);
		line++;
		l->lines = line;
		if (l->reset_line) {
			l->after_reset++;
			continue; /* a second boot: a PC that reset (a triple fault); only the first counts */
		}
		int rc = kline_parse(s, len, &k, why, sizeof why);
		if (rc < 0) {
			l->ignored++;
			if (!first_bad && memchr(s, '\0', len))
				first_bad = line; /* binary junk: remembered for the message if nothing else is found */
			continue;
		}
		if (rc > 0) {
			if (!nl) {
				/* the last line, cut short: the machine stopped (or the capture did) mid-line */
				l->cut_short = true;
				break;
			}
			snprintf(err, errlen, "%s:%d: a kernel line that does not parse: %s", file, line, why);
			return B_INPUT;
		}
		switch (k.type) {
		case K_BOOT:
			if (l->nboots++) {
				l->reset_line = line;
				if (cur && !obs_ends(&cur->obs) && !cur->refused)
					cur->reset = true;
				break;
			}
			l->boot_line = line;
			copy_str(l->loader, sizeof l->loader, k.loader);
			copy_str(l->vendor, sizeof l->vendor, k.vendor);
			copy_str(l->brand, sizeof l->brand, k.brand);
			l->signature = k.signature;
			l->has_signature = k.has_signature;
			break;
		case K_MEMORY:
			l->nregions++;
			break;
		case K_IMAGE:
			if (k.index != l->nimages) {
				snprintf(err, errlen, "%s:%d: image %d where image %d was due (the kernel runs them in order)", file, line,
					 k.index, l->nimages);
				return B_INPUT;
			}
			if (!(cur = klog_new_image(l))) {
				snprintf(err, errlen, "%s:%d: out of memory", file, line);
				return B_INTERNAL;
			}
			cur->index = k.index;
			cur->line = line;
			copy_str(cur->args, sizeof cur->args, k.args);
			arg_value(k.args, "scenario", cur->scenario, sizeof cur->scenario);
			arg_value(k.args, "variant", cur->variant, sizeof cur->variant);
			cur->has_sum = k.has_sum;
			cur->sum = (uint32_t)k.sum;
			cur->module_size = k.module_size;
			break;
		case K_OBS:
		case K_EXC_HOST: {
			if (!cur) {
				snprintf(err, errlen, "%s:%d: an %s line before any image line", file, line,
					 k.type == K_OBS ? "observation" : "exception");
				return B_INPUT;
			}
			if (obs_ends(&cur->obs) || cur->refused) {
				snprintf(err, errlen, "%s:%d: an %s line after image %d ended", file, line,
					 k.type == K_OBS ? "observation" : "exception", cur->index);
				return B_INPUT;
			}
			struct obs *ob = obs_add(&cur->obs, k.o.kind);
			if (!ob) {
				snprintf(err, errlen, "%s:%d: more than %d observations for image %d", file, line, MAX_OBS, cur->index);
				return B_INPUT;
			}
			int nn = ob->n;
			*ob = k.o;
			ob->n = nn;
			if (!cur->obs_line)
				cur->obs_line = line;
			break;
		}
		case K_EXC_KERNEL:
			l->kernel_fault = true;
			l->fault_line = line;
			copy_str(l->fault, sizeof l->fault, k.text);
			break;
		case K_ERROR:
			if (k.has_image) {
				if (!cur || k.index != cur->index) {
					snprintf(err, errlen, "%s:%d: an error for image %d, which is not the one running", file, line, k.index);
					return B_INPUT;
				}
				cur->refused = true;
				copy_str(cur->message, sizeof cur->message, k.message);
			} else {
				l->kernel_error = true;
				l->fault_line = line;
				copy_str(l->fault, sizeof l->fault, k.message);
			}
			break;
		case K_DONE:
			l->done = true;
			break;
		default:
			break;
		}
	}
	if (!l->nboots && !l->nimages) {
		snprintf(err, errlen, "%s:%d: not a boot log of shimcheck's kernel: no {\"type\":\"boot\"...} line in %d line%s%s",
			 file, first_bad ? first_bad : line ? line : 1, line, line == 1 ? "" : "s",
			 first_bad ? " (binary data from this line on)" : "");
		return B_INPUT;
	}
	return B_OK;
}

/* ---- QEMU's -d int,exec log ------------------------------------------------------------------------ */

/* "Trace 0: 0x7f... [00000000/e00000e1/000000b0/ff000201] ": the second field is the
 * linear address of the code executed. */
bool trace_addr(const char *line, uint32_t *at)
{
	const char *b = strchr(line, '[');
	const char *slash = b ? strchr(b, '/') : NULL;
	char *end;
	if (!slash)
		return false;
	unsigned long long v = strtoull(slash + 1, &end, 16);
	if (end == slash + 1 || *end != '/')
		return false;
	*at = (uint32_t)v;
	return true;
}

/* Split the log at each arrival at kernel_enter (one per image that got that far, in order)
 * and give each such image the exceptions logged after it: "     2: v=08 e=0000 i=0 cpl=0
 * IP=0008:c8801032 pc=c8801032 SP=... [CR2=...]" (i=0: not a software interrupt). */
void qemu_chains_text(char *s, struct job *jobs, int n)
{
	int seg = -1;          /* index into jobs of the image whose part this is */
	int next = 0;          /* the next candidate image for a marker */
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		uint32_t at;
		if (strncmp(line, "Trace ", 6) == 0 && trace_addr(line, &at) && at == KERNEL_ENTER) {
			while (next < n && (!jobs[next].r.started || jobs[next].r.kernel_error))
				next++;
			seg = next < n ? next++ : -1;
			if (seg >= 0) {
				jobs[seg].r.entered = true;
				jobs[seg].r.chain_known = true;
				jobs[seg].r.ext_irq = -1;
			}
			continue;
		}
		if (seg < 0)
			continue;
		struct img_run *r = &jobs[seg].r;
		unsigned irq;
		if (sscanf(line, "Servicing hardware INT=0x%x", &irq) == 1) {
			if (r->ext_irq < 0 && !r->handler && r->nchain == 0)
				r->ext_irq = (int)irq;
			continue;
		}
		if (strncmp(line, "Trace ", 6) == 0 && trace_addr(line, &at)) {
			if (!r->handler && trap_name(&jobs[seg].traps, at))
				r->handler = at;
			continue;
		}
		if (strstr(line, "Triple fault")) {
			r->triple = true;
			continue;
		}
		char *v = strstr(line, " v=");
		unsigned vec, err, isint;
		if (!v || sscanf(v, " v=%x e=%x i=%u", &vec, &err, &isint) != 3 || isint != 0)
			continue;
		int *cnt = r->handler ? &r->nafter : &r->nchain;
		(*(r->handler ? &r->after_total : &r->chain_total))++;
		if (*cnt == MAX_CHAIN)
			continue;
		struct exc *e = r->handler ? &r->after[(*cnt)++] : &r->chain[(*cnt)++];
		memset(e, 0, sizeof *e);
		e->vec = vec;
		e->err = err;
		char *pc = strstr(v, " pc=");
		unsigned long long x;
		if (pc && sscanf(pc, " pc=%llx", &x) == 1)
			e->pc = (uint32_t)x;
		char *cr2 = strstr(v, " CR2=");
		if (cr2 && sscanf(cr2, " CR2=%llx", &x) == 1) {
			e->cr2 = (uint32_t)x;
			e->has_cr2 = true;
		}
	}
}

/* ---- Bochs ------------------------------------------------------------------------------------------ */

/* Bochs: "exception(): 3rd (14) exception with no resolution" is its triple fault (with
 * reset_on_triple_fault=0 it stops there); the debugger's line before the message shows
 * the instruction: "(0).[51659616] [0x00000040003f] 0008:00000000c880103f (unk. ctxt): ...".
 * Bochs does not say which exception started the chain. */
bool bochs_triple_fault(const char *s, struct obs *o)
{
	if (!strstr(s, "exception with no resolution"))
		return false;
	const char *p = s, *last = NULL;
	while ((p = strstr(p, "(0).[")))
		last = p++;
	const char *colon = last ? strstr(last, "] ") : NULL;
	colon = colon ? strstr(colon + 2, "] ") : NULL; /* past "[0x<physical>]" */
	unsigned sel;
	unsigned long long eip;
	if (colon && sscanf(colon + 2, "%x:%llx", &sel, &eip) == 2)
		obs_set(o, F_EIP, (uint32_t)eip);
	snprintf(o->note, sizeof o->note, "Bochs: exception with no resolution (triple fault)");
	return true;
}

/* Bochs's CPU debug log: the exceptions of the chain that ended in the panic, all at the
 * panic's tick: "00051687664d[CPU0  ] exception(0x0e): error_code=0003". The first is the
 * one the simulator reports. */
void bochs_first_exception_text(const char *s, struct obs *o)
{
	const char *panic = strstr(s, ">>PANIC<<");
	if (!panic)
		return;
	const char *bol = panic;
	while (bol > s && bol[-1] != '\n')
		bol--;
	unsigned long long tick;
	if (sscanf(bol, "%llu", &tick) != 1)
		return;
	const char *p = s;
	while ((p = strstr(p, "] exception(0x"))) {
		const char *b = p;
		while (b > s && b[-1] != '\n')
			b--;
		unsigned long long t;
		unsigned vec, err;
		if (sscanf(b, "%llu", &t) == 1 && t == tick && sscanf(p, "] exception(0x%x): error_code=%x", &vec, &err) == 2) {
			obs_set(o, F_VECTOR, vec);
			obs_set(o, F_ERROR, err);
			break;
		}
		p++;
	}
	/* An external interrupt at the same tick, before those: "interrupt(): vector = 08,
	 * TYPE = 0, EXT = 1" (TYPE 0: external) started the chain. */
	const char *irq = s;
	while ((irq = strstr(irq, "] interrupt(): vector = "))) {
		const char *b = irq;
		while (b > s && b[-1] != '\n')
			b--;
		unsigned long long t;
		unsigned vec, type;
		if (sscanf(b, "%llu", &t) == 1 && t == tick && sscanf(irq, "] interrupt(): vector = %x, TYPE = %u", &vec, &type) == 2) {
			if (type == 0)
				snprintf(o->note, sizeof o->note, "Bochs: triple fault; the chain began with an external interrupt, vector 0x%02x",
					 vec);
			break;
		}
		irq++;
	}
}

/* The debugger stopped at one of our breakpoints: "(0) Breakpoint 2, 0x00000000e00000e1 in
 * ?? ()", then print-stack's "| STACK 0xe0001ff4 [0xe0000010] ..." lines. */
bool bochs_breakpoint(const char *s, uint32_t *at, uint32_t frame[4], bool *frame_known)
{
	const char *b = strstr(s, ") Breakpoint ");
	unsigned num;
	unsigned long long a;
	if (!b || sscanf(b, ") Breakpoint %u, 0x%llx", &num, &a) != 2)
		return false;
	*at = (uint32_t)a;
	*frame_known = false;
	const char *p = b;
	for (int k = 0; k < 4; k++) {
		p = strstr(p, "| STACK 0x");
		unsigned long long addr, val;
		if (!p || sscanf(p, "| STACK 0x%llx [0x%llx]", &addr, &val) != 2)
			return true;
		frame[k] = (uint32_t)val;
		p++;
	}
	*frame_known = true;
	return true;
}
