/*
 * boot_cmd.c: `shimcheck boot`: run the same physical image on a second engine and compare.
 *
 * The image file (`shimcheck image`) goes to the boot kernel as a multiboot module: QEMU
 * loads kernel and module itself (-kernel/-initrd); Bochs boots a GRUB ISO (mkiso.sh). The
 * kernel prints one JSON line per observation point of host_main (entry, after each round
 * trip, end) on port 0xE9 and COM1. The same scenario runs in Unicorn (pl_run); its trace
 * gives the state at the same points: the instruction at host_loop (right after OBSERVE 0),
 * each instruction at host_after_call (OBSERVE 1), and the final state at host_done
 * (OBSERVE 2). Memory at those points is the image replayed with the trace's writes.
 *
 * Both sides become lists of observations; the first field that differs is the divergence.
 */
#define _GNU_SOURCE /* mkdtemp, setpgid */
#include "boot_cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../../shim/shim_abi.h"
#include "image_export.h"
#include "mmu.h"
#include "paging.h"
#include "pipeline.h"

enum { B_OK = 0, B_DIVERGE = 1, B_INPUT = 2, B_INTERNAL = 3, B_UNAVAILABLE = 77 };

/* isa-debug-exit values the kernel writes (tools/boot/kernel/kernel.h): QEMU exits with
 * (value << 1) | 1. */
#define QEMU_EXIT_OK ((0x10 << 1) | 1)
#define QEMU_EXIT_FAULT ((0x11 << 1) | 1)
#define QEMU_EXIT_KERNEL ((0x12 << 1) | 1)

#define DEFAULT_VARIANT "hardened"
#define DEFAULT_TIMEOUT 20.0 /* QEMU needs ~0.2 s, Bochs ~1.3 s; a fault into a HLT loop never ends */

/* ---- observations ------------------------------------------------------------------------ */

/* Fields of an observation, named as in the simulator's JSONL where they overlap. A
 * divergence names the first differing field in this order: the specific ones (guest_seen)
 * before the checksum that covers them (shim_sum). */
#define OBS_FIELDS(X)                                                                      \
	X(F_CR0, "cr0") X(F_CR3, "cr3") X(F_CR4, "cr4") X(F_EFER, "efer")                   \
	X(F_GDTR, "gdtr") X(F_GDTR_LIMIT, "gdtr_limit") X(F_IDTR, "idtr")                    \
	X(F_IDTR_LIMIT, "idtr_limit") X(F_TR, "tr") X(F_TR_DESC, "tr_desc")                  \
	X(F_CS, "cs") X(F_SS, "ss") X(F_DS, "ds") X(F_ES, "es") X(F_FS, "fs") X(F_GS, "gs")  \
	X(F_EFLAGS, "eflags") X(F_EAX, "eax") X(F_ECX, "ecx") X(F_EDX, "edx")                \
	X(F_EBX, "ebx") X(F_ESP, "esp") X(F_EBP, "ebp") X(F_ESI, "esi") X(F_EDI, "edi")      \
	X(F_SHIM_ENTRY, "shim_entry") X(F_GUEST_SEEN, "guest_seen")                          \
	X(F_MONITOR_ROUNDS, "monitor_rounds") X(F_SHIM_SUM, "shim_sum")                      \
	X(F_VECTOR, "vector") X(F_ERROR, "error") X(F_EIP, "eip") X(F_CR2, "cr2")

#define F_ENUM(id, name) id,
enum ofield { OBS_FIELDS(F_ENUM) F_N };
#define F_NAME(id, name) name,
static const char *const field_name[F_N] = {OBS_FIELDS(F_NAME)};
_Static_assert(F_N <= 64, "struct obs keeps one bit per field in a uint64_t");

/* EFLAGS: the observer is reached after host.inc's `cmp dword [pb_observer], 0` with a
 * non-zero slot, the simulator's host_loop after the same CMP with 0: the arithmetic flags
 * (CF PF AF ZF SF OF) differ by construction. Everything else must match. */
#define EFLAGS_ARITH 0x8D5u

static uint64_t field_mask(enum ofield f) { return f == F_EFLAGS ? ~(uint64_t)EFLAGS_ARITH : ~(uint64_t)0; }

enum okind { O_ENTRY, O_ROUND, O_END, O_EXCEPTION, O_SHUTDOWN, O_TIMEOUT, O_STOPPED };
static const char *const okind_name[] = {"entry", "round", "end", "exception", "shutdown", "timeout", "stopped"};

struct obs {
	enum okind kind;
	int n;            /* entry 0; round k (1-based); the others: round trips seen before */
	uint64_t have;    /* bit f: field f is known */
	uint64_t v[F_N];
	char note[200];   /* how this side knows (shutdown: the engine's words; sim: why) */
};

#define MAX_OBS 80 /* entry + 64 round trips + end, with room */

struct obs_list {
	int n;
	struct obs o[MAX_OBS];
};

static struct obs *obs_add(struct obs_list *l, enum okind k)
{
	if (l->n == MAX_OBS)
		return NULL;
	struct obs *o = &l->o[l->n++];
	memset(o, 0, sizeof *o);
	o->kind = k;
	int rounds = 0;
	for (int i = 0; i < l->n - 1; i++)
		rounds += l->o[i].kind == O_ROUND;
	o->n = k == O_ROUND ? rounds + 1 : rounds;
	return o;
}

static void obs_set(struct obs *o, enum ofield f, uint64_t v)
{
	o->v[f] = v;
	o->have |= (uint64_t)1 << f;
}

static bool obs_has(const struct obs *o, enum ofield f) { return o->have & ((uint64_t)1 << f); }

static void obs_label(const struct obs *o, char *b, size_t n)
{
	if (o->kind == O_ROUND)
		snprintf(b, n, "round %d", o->n);
	else
		snprintf(b, n, "%s", okind_name[o->kind]);
}

/* One observation as a JSON line in the kernel's format, for --keep. */
static void obs_write(FILE *f, const struct obs *o, const char *engine)
{
	fprintf(f, "{\"type\":\"observation\",\"engine\":\"%s\",\"event\":\"%s\",\"n\":%d", engine, okind_name[o->kind], o->n);
	for (int k = 0; k < F_N; k++)
		if (obs_has(o, (enum ofield)k))
			fprintf(f, ",\"%s\":\"0x%" PRIx64 "\"", field_name[k], o->v[k]);
	if (o->note[0]) {
		json_t *s = json_string(o->note);
		char *t = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
		if (t)
			fprintf(f, ",\"note\":%s", t);
		free(t);
		json_decref(s);
	}
	fputs("}\n", f);
}

/* ---- the simulator's side ------------------------------------------------------------------ */

/* The observer's checksum of a page (observer.asm): h = rol(h, 5) + dword, in order. */
static uint32_t page_sum(const uint8_t *p)
{
	uint32_t h = 0;
	for (int i = 0; i < 1024; i++)
		h = ((h << 5) | (h >> 27)) + get4(p + 4 * i);
	return h;
}

static uint32_t sym_lin(const struct image *img, const char *name)
{
	for (int i = 0; i < img->nsyms; i++)
		if (!img->syms[i].both && img->syms[i].sp == SP_HOST && strcmp(img->syms[i].name, name) == 0)
			return img->syms[i].lin;
	return 0;
}

/* The state the observer would print, from a CPU state of the trace and the memory replayed
 * up to that point. */
static void obs_from_cpu(struct obs *o, const struct tr_cpu *c, const struct image *img, const struct physmem *pm)
{
	obs_set(o, F_CR0, c->cr0);
	obs_set(o, F_CR3, c->cr3);
	obs_set(o, F_CR4, c->cr4);
	obs_set(o, F_EFER, c->efer);
	obs_set(o, F_GDTR, c->gdtr_base);
	obs_set(o, F_GDTR_LIMIT, c->gdtr_limit);
	obs_set(o, F_IDTR, c->idtr_base);
	obs_set(o, F_IDTR_LIMIT, c->idtr_limit);
	obs_set(o, F_TR, c->tr);
	const uint16_t seg[6] = {c->cs, c->ss, c->ds, c->es, c->fs, c->gs};
	for (int i = 0; i < 6; i++)
		obs_set(o, (enum ofield)(F_CS + i), seg[i]);
	obs_set(o, F_EFLAGS, c->eflags);
	const enum ofield gpr[8] = {F_EAX, F_ECX, F_EDX, F_EBX, F_ESP, F_EBP, F_ESI, F_EDI};
	for (int i = 0; i < 8; i++)
		obs_set(o, gpr[i], c->gpr[i]);

	struct paging_regs r = {.cr0 = c->cr0, .cr3 = c->cr3, .cr4 = c->cr4, .efer = c->efer};
	bool paging_ok = !(c->cr4 & CR4_PAE) || paging_load_pdptes(pm, &r) == WALK_OK;
	/* The TR descriptor through the GDT, as the observer reads it (0 outside the limit). */
	uint32_t idx = c->tr & 0xFFF8u;
	uint64_t desc = 0;
	if (idx && idx + 7 <= c->gdtr_limit && paging_ok) {
		struct walk w = paging_walk(pm, &r, c->gdtr_base + idx, ACC_READ, 0);
		if (w.status != WALK_OK || !phys_read8(pm, w.pa, &desc))
			desc = UINT64_MAX; /* the observer would have faulted */
	}
	if (desc != UINT64_MAX)
		obs_set(o, F_TR_DESC, desc);
	uint64_t entry = 0;
	uint32_t lo = 0;
	if (img->pte_size == 8 ? phys_read8(pm, img->shim_pte_pa, &entry)
			       : (phys_read4(pm, img->shim_pte_pa, &lo) && ((entry = lo), true)))
		obs_set(o, F_SHIM_ENTRY, entry);
	if (paging_ok) {
		struct walk w = paging_walk(pm, &r, img->shim_lin, ACC_READ, 0);
		const uint8_t *page = w.status == WALK_OK ? phys_ptr(pm, w.pa & ~(uint64_t)0xFFF, 4096) : NULL;
		if (page) {
			obs_set(o, F_SHIM_SUM, page_sum(page));
			obs_set(o, F_GUEST_SEEN, get4(page + SHIM_DATA_OFF + D_GUEST_SEEN));
			obs_set(o, F_MONITOR_ROUNDS, get4(page + SHIM_DATA_OFF + D_ROUNDS));
		}
	}
}

/* Apply the trace's writes made by instructions before `upto` (all when UINT32_MAX). */
static void replay_until(const struct trace *t, struct physmem *pm, uint32_t *next, uint32_t upto)
{
	for (; *next < t->nmem && (upto == UINT32_MAX || t->mem[*next].insn < upto); (*next)++) {
		const struct tr_mem *m = &t->mem[*next];
		uint8_t *p = m->write ? phys_ptr(pm, m->pa, m->size) : NULL;
		for (int b = 0; p && b < m->size; b++)
			p[b] = (uint8_t)(m->value >> (8 * b));
	}
}

/* What an exception the simulator stops at becomes on the boot kernel's machine, by the
 * IDT in force (the image's gates, plus the kernel's in the host IDT):
 *   the host's IDT in the host space: the kernel's gates report it (exception);
 *   the monitor's IDT in the monitor space: monitor_trap, a HLT loop: no end (timeout);
 *   the hardened shim's own IDT: __shim_nmi notes an NMI and returns to the faulting
 *     instruction, again and again (timeout);
 *   an IDT, GDT or handler not mapped where the CPU looks: a triple fault (shutdown). */
static enum okind fault_kind(const struct tr_cpu *c, const struct image *img, uint32_t vector, const char **why)
{
	const struct world *h = &img->w[SP_HOST], *m = &img->w[SP_MON];
	if (vector < 32 && c->idtr_base == h->idtr.base && c->idtr_limit >= vector * 8 + 7 &&
	    c->cr3 == h->regs.cr3 && c->gdtr_base == h->gdtr.base) {
		*why = "in the host world: the boot kernel's host-IDT gate reports it";
		return O_EXCEPTION;
	}
	if (c->idtr_base == m->idtr.base && c->cr3 == m->regs.cr3 && c->gdtr_base == m->gdtr.base) {
		*why = "in the monitor world: its gate leads to monitor_trap, which halts for good";
		return O_TIMEOUT;
	}
	if (c->idtr_base == img->shim_lin + SHIM_IDT_OFF || c->idtr_base == img->shim_pa + SHIM_IDT_PHYS_OFF) {
		*why = "through the shim's own IDT: __shim_nmi returns to the faulting instruction, forever";
		return O_TIMEOUT;
	}
	*why = "no usable gate in the IDT in force: a triple fault";
	return O_SHUTDOWN;
}

static bool sim_observations(const struct pipeline *p, struct obs_list *l, char *err, size_t errlen)
{
	const struct trace *t = &p->t;
	const struct image *img = &p->img;
	struct physmem pm = img->pm;
	pm.bytes = malloc((size_t)pm.size);
	if (!pm.bytes) {
		snprintf(err, errlen, "out of memory replaying the trace");
		return false;
	}
	memcpy(pm.bytes, img->pm.bytes, (size_t)pm.size);
	uint32_t loop = sym_lin(img, "host_loop"), next = 0;
	bool entry_seen = false;
	l->n = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		if (in->space != SP_HOST)
			continue;
		/* Without a host_loop symbol (a user's code directory), the entry point is the first
		 * host_call, where EBX already holds its loop value: leave EBX out then. */
		bool entry = !entry_seen && in->cpu.eip == (loop ? loop : img->ep[EP_HOST_CALL]);
		bool round = in->cpu.eip == img->ep[EP_HOST_AFTER_CALL];
		if (!entry && !round)
			continue;
		replay_until(t, &pm, &next, i);
		struct obs *o = obs_add(l, entry ? O_ENTRY : O_ROUND);
		if (!o)
			break;
		obs_from_cpu(o, &in->cpu, img, &pm);
		if (entry && !loop)
			o->have &= ~((uint64_t)1 << F_EBX);
		entry_seen = true;
	}
	replay_until(t, &pm, &next, UINT32_MAX);
	struct obs *o = NULL;
	if (t->end == END_DONE) {
		if ((o = obs_add(l, O_END)))
			obs_from_cpu(o, &t->final, img, &pm);
	} else if (t->end == END_FAULT) {
		const struct tr_event *f = NULL;
		for (uint32_t k = 0; k < t->nev; k++)
			if (t->ev[k].kind == EV_FAULT)
				f = &t->ev[k];
		const struct tr_cpu *c = f && f->insn < t->n ? &t->insn[f->insn].cpu : &t->final;
		uint32_t vector = f ? (uint32_t)f->a : 0;
		const char *why = "";
		if (f && (o = obs_add(l, fault_kind(c, img, vector, &why)))) {
			obs_set(o, F_VECTOR, vector);
			obs_set(o, F_ERROR, f->size ? f->b : 0);
			obs_set(o, F_EIP, c->eip);
			if (vector == 14)
				obs_set(o, F_CR2, f->c);
			if (o->kind == O_EXCEPTION)
				obs_set(o, F_CR3, c->cr3);
			snprintf(o->note, sizeof o->note, "%s; %s", t->end_detail, why);
			if (o->kind == O_TIMEOUT)
				o->have = 0; /* nothing to compare with an engine that never reports */
		}
	} else if ((o = obs_add(l, O_STOPPED))) {
		snprintf(o->note, sizeof o->note, "%s: %s", tr_end_name(t->end), t->end_detail);
	}
	free(pm.bytes);
	return true;
}

/* ---- running programs ------------------------------------------------------------------------- */

struct proc {
	bool timed_out;
	int status;   /* exit status, or 128 + signal */
	double secs;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run argv in cwd with stdin from /dev/null and stdout+stderr into out_path, in its own
 * process group so that a timeout can kill it and whatever it started (and nothing else).
 * Returns false when it could not be started. */
static bool run(char *const argv[], const char *cwd, const char *out_path, double timeout, struct proc *r)
{
	memset(r, 0, sizeof *r);
	double t0 = now_s();
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		setpgid(0, 0);
		int in = open("/dev/null", O_RDONLY);
		int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (in < 0 || out < 0 || chdir(cwd) != 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	setpgid(pid, pid); /* also from here: no race with the first kill */
	int st = 0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return false;
		if (now_s() - t0 > timeout) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			r->timed_out = true;
			break;
		}
		struct timespec d = {0, 2 * 1000 * 1000};
		nanosleep(&d, NULL);
	}
	r->secs = now_s() - t0;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return r->status != 127 || r->timed_out;
}

/* The full path of an executable: name itself when it has a slash, else found in PATH. */
static bool find_exe(const char *name, char *out, size_t n)
{
	if (strchr(name, '/')) {
		snprintf(out, n, "%s", name);
		return access(out, X_OK) == 0;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *c = strchr(path, ':');
		size_t len = c ? (size_t)(c - path) : strlen(path);
		snprintf(out, n, "%.*s/%s", (int)len, len ? path : ".", name);
		if (access(out, X_OK) == 0)
			return true;
		path += len + (c ? 1 : 0);
	}
	return false;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *b = malloc(cap + 1);
	size_t k;
	while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
		n += k;
		if (n == cap) {
			char *nb = realloc(b, 2 * cap + 1);
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (b)
		b[n] = '\0';
	if (len)
		*len = n;
	return b;
}

/* The last lines of a file, to stderr: what an engine said before it failed. */
static void show_tail(const char *path, int lines)
{
	char *s = slurp(path, NULL);
	if (!s)
		return;
	size_t n = strlen(s);
	int seen = 0;
	size_t at = n;
	while (at > 0 && seen <= lines)
		if (s[--at] == '\n')
			seen++;
	fprintf(stderr, "--- %s (end) ---\n%s%s", path, s + (at ? at + 1 : 0), n && s[n - 1] != '\n' ? "\n" : "");
	free(s);
}

/* ---- the engine's side ------------------------------------------------------------------------ */

struct engine_run {
	const char *engine;
	char version[96];
	char cpu[160];        /* from the kernel's boot line */
	char loader[64];
	bool booted;          /* the kernel's boot line was seen */
	bool kernel_error;    /* the kernel refused the image */
	bool kernel_fault;    /* the kernel itself faulted */
	char message[300];
	struct proc proc;
	double prep_secs;     /* building the ISO (Bochs) */
	struct obs_list obs;
};

static bool parse_hex(json_t *v, uint64_t *out)
{
	const char *s = json_string_value(v);
	if (!s || strncmp(s, "0x", 2) != 0 || !s[2])
		return false;
	char *end;
	errno = 0;
	*out = strtoull(s + 2, &end, 16);
	return !*end && errno == 0;
}

/* The kernel's JSON lines. Anything else in the stream (Bochs mixes its own messages into
 * the E9 stream on stdout) is skipped. */
static void parse_kernel_lines(char *text, struct engine_run *er)
{
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *brace = strstr(line, "{\"type\":");
		if (!brace)
			continue;
		json_error_t jerr;
		json_t *o = json_loads(brace, 0, &jerr);
		if (!o)
			continue; /* a line cut short (the machine stopped mid-line) */
		const char *type = json_string_value(json_object_get(o, "type"));
		const char *phase = json_string_value(json_object_get(o, "phase"));
		if (type && strcmp(type, "boot") == 0) {
			er->booted = true;
			const char *brand = json_string_value(json_object_get(o, "cpu_brand"));
			const char *sig = json_string_value(json_object_get(o, "cpu_signature"));
			const char *ldr = json_string_value(json_object_get(o, "loader"));
			snprintf(er->cpu, sizeof er->cpu, "%s, signature %s", brand ? brand : "?", sig ? sig : "?");
			snprintf(er->loader, sizeof er->loader, "%s", ldr ? ldr : "?");
		} else if (type && strcmp(type, "observation") == 0) {
			const char *ev = json_string_value(json_object_get(o, "event"));
			enum okind k = ev && strcmp(ev, "entry") == 0 ? O_ENTRY
				       : ev && strcmp(ev, "round") == 0 ? O_ROUND
				       : ev && strcmp(ev, "end") == 0   ? O_END
									: O_STOPPED;
			struct obs *ob = obs_add(&er->obs, k);
			for (int f = 0; ob && f < F_N; f++) {
				uint64_t v;
				if (parse_hex(json_object_get(o, field_name[f]), &v))
					obs_set(ob, (enum ofield)f, v);
			}
			if (ob && k == O_STOPPED)
				snprintf(ob->note, sizeof ob->note, "the observer reported event '%s'", ev ? ev : "?");
		} else if (type && strcmp(type, "exception") == 0 && phase && strcmp(phase, "host") == 0) {
			struct obs *ob = obs_add(&er->obs, O_EXCEPTION);
			const enum ofield fs[] = {F_VECTOR, F_ERROR, F_EIP, F_CR2, F_CR3};
			for (size_t f = 0; ob && f < sizeof fs / sizeof fs[0]; f++) {
				uint64_t v;
				if (parse_hex(json_object_get(o, field_name[fs[f]]), &v))
					obs_set(ob, fs[f], v);
			}
			if (ob && ob->v[F_VECTOR] != 14)
				ob->have &= ~((uint64_t)1 << F_CR2); /* CR2 means something only for #PF */
			if (ob)
				snprintf(ob->note, sizeof ob->note, "the host IDT's gate reported it");
		} else if (type && strcmp(type, "exception") == 0) {
			er->kernel_fault = true;
			char *d = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
			snprintf(er->message, sizeof er->message, "%s", d ? d : "?");
			free(d);
		} else if (type && strcmp(type, "error") == 0) {
			er->kernel_error = true;
			const char *m = json_string_value(json_object_get(o, "message"));
			const char *v = json_string_value(json_object_get(o, "value"));
			snprintf(er->message, sizeof er->message, "%s (%s)", m ? m : "?", v ? v : "?");
		}
		json_decref(o);
	}
}

static bool ends(const struct obs_list *l)
{
	return l->n && (l->o[l->n - 1].kind == O_END || l->o[l->n - 1].kind == O_EXCEPTION);
}

/* QEMU's -d int log: the exception chain that ended in "Triple fault". Its first line after
 * "check_exception old: 0xffffffff" is the first exception: "v=0e e=0002 ... pc=c880103f
 * ... CR2=e0002035". */
static void qemu_triple_fault(const char *log, struct obs *o)
{
	char *s = slurp(log, NULL);
	if (!s)
		return;
	char *tf = strstr(s, "Triple fault");
	if (tf) {
		*tf = '\0';
		char *start = NULL, *p = s;
		while ((p = strstr(p, "check_exception old: 0xffffffff")))
			start = p++;
		char *v = start ? strstr(start, " v=") : NULL;
		unsigned vec = 0, err = 0;
		if (v && sscanf(v, " v=%x e=%x", &vec, &err) == 2) {
			obs_set(o, F_VECTOR, vec);
			obs_set(o, F_ERROR, err);
			char *pc = strstr(v, " pc=");
			char *nl = strchr(v, '\n');
			uint32_t x;
			if (pc && (!nl || pc < nl) && sscanf(pc, " pc=%x", &x) == 1)
				obs_set(o, F_EIP, x);
			char *cr2 = strstr(v, " CR2=");
			if (vec == 14 && cr2 && (!nl || cr2 < nl) && sscanf(cr2, " CR2=%x", &x) == 1)
				obs_set(o, F_CR2, x);
		}
		snprintf(o->note, sizeof o->note, "QEMU: triple fault (first exception of the chain from -d int)");
	}
	free(s);
}

/* Bochs: "exception(): 3rd (14) exception with no resolution" is its triple fault (with
 * reset_on_triple_fault=0 it stops there); the debugger's line before the message shows
 * the instruction: "(0).[51659616] [0x00000040003f] 0008:00000000c880103f (unk. ctxt): ...".
 * Bochs does not say which exception started the chain. */
static bool bochs_triple_fault(const char *out, struct obs *o)
{
	char *s = slurp(out, NULL);
	if (!s)
		return false;
	bool found = strstr(s, "exception with no resolution") != NULL;
	if (found) {
		char *p = s, *last = NULL;
		while ((p = strstr(p, "(0).[")))
			last = p++;
		char *colon = last ? strstr(last, "] ") : NULL;
		colon = colon ? strstr(colon + 2, "] ") : NULL; /* past "[0x<physical>]" */
		unsigned sel;
		unsigned long long eip;
		if (colon && sscanf(colon + 2, "%x:%llx", &sel, &eip) == 2)
			obs_set(o, F_EIP, (uint32_t)eip);
		snprintf(o->note, sizeof o->note, "Bochs: exception with no resolution (triple fault)");
	}
	free(s);
	return found;
}

struct boot_opts {
	const char *engine, *variant, *code_dir, *scenario, *keep, *kernel;
	double timeout;
	bool verbose;
};

static int run_qemu(const struct boot_opts *bo, const char *dir, const char *kernel, struct engine_run *er)
{
	char exe[PATH_MAX];
	const char *want = getenv("SHIMCHECK_QEMU") ? getenv("SHIMCHECK_QEMU") : "qemu-system-i386";
	if (!find_exe(want, exe, sizeof exe)) {
		fprintf(stderr, "shimcheck boot: %s: not found (Debian: qemu-system-x86); engine unavailable\n", want);
		return B_UNAVAILABLE;
	}
	char path[PATH_MAX + 32];
	{
		char *argv[] = {exe, "--version", NULL};
		struct proc pr;
		snprintf(path, sizeof path, "%s/qemu-version.txt", dir);
		if (run(argv, dir, path, 10, &pr) && pr.status == 0) {
			char *v = slurp(path, NULL);
			if (v) {
				v[strcspn(v, "\n")] = '\0';
				snprintf(er->version, sizeof er->version, "%s", v);
			}
			free(v);
		}
	}
	/* -kernel/-initrd: QEMU's own multiboot loader (no firmware boot menu, ~0.2 s). One
	 * pinned CPU model (Unicorn runs UC_CPU_X86_PENRYN). -d int,cpu_reset: the exception
	 * chain and "Triple fault", when the machine shuts down instead of reaching the end. */
	char *argv[] = {exe, "-accel", "tcg", "-cpu", "Penryn", "-m", "128", "-nodefaults", "-display", "none",
			"-no-reboot", "-monitor", "none", "-kernel", (char *)kernel, "-initrd", "image.bin",
			"-debugcon", "file:e9.log", "-serial", "file:com1.log",
			"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-d", "int,cpu_reset", "-D", "qemu-int.log", NULL};
	snprintf(path, sizeof path, "%s/qemu.out", dir);
	if (!run(argv, dir, path, bo->timeout, &er->proc)) {
		fprintf(stderr, "shimcheck boot: %s: cannot run it\n", exe);
		return B_INTERNAL;
	}
	snprintf(path, sizeof path, "%s/e9.log", dir);
	char *e9 = slurp(path, NULL);
	if (e9)
		parse_kernel_lines(e9, er);
	free(e9);
	if (!er->booted) {
		fprintf(stderr, "shimcheck boot: qemu: the boot kernel never ran (status %d%s)\n", er->proc.status,
			er->proc.timed_out ? ", timed out" : "");
		snprintf(path, sizeof path, "%s/qemu.out", dir);
		show_tail(path, 20);
		return B_INTERNAL;
	}
	/* The log decides; QEMU's status (from isa-debug-exit) only confirms it. A mismatch
	 * means the stream lost something: say so, the comparison will show what. */
	const struct obs *last = er->obs.n ? &er->obs.o[er->obs.n - 1] : NULL;
	int expect = er->kernel_error || er->kernel_fault ? QEMU_EXIT_KERNEL
		     : last && last->kind == O_END	     ? QEMU_EXIT_OK
		     : last && last->kind == O_EXCEPTION   ? QEMU_EXIT_FAULT
							     : -1;
	if (expect >= 0 && !er->proc.timed_out && er->proc.status != expect)
		fprintf(stderr, "shimcheck boot: qemu: exit status %d, but its log ends as if it were %d\n",
			er->proc.status, expect);
	if (!ends(&er->obs) && !er->kernel_error && !er->kernel_fault) {
		struct obs *o = obs_add(&er->obs, er->proc.timed_out ? O_TIMEOUT : O_SHUTDOWN);
		if (o && er->proc.timed_out) {
			snprintf(o->note, sizeof o->note, "no end after %.0f s", bo->timeout);
		} else if (o) {
			snprintf(o->note, sizeof o->note, "QEMU stopped with status %d before the end", er->proc.status);
			snprintf(path, sizeof path, "%s/qemu-int.log", dir);
			qemu_triple_fault(path, o);
		}
	}
	return B_OK;
}

#define BOCHS_BIOS "/usr/share/bochs/BIOS-bochs-latest"
#define BOCHS_VGA "/usr/share/vgabios/vgabios.bin"

/* Write bochsrc/bochs.rc into dir and run Bochs once; its stdout+stderr go to bochs.out
 * (bochs-debug.out with debug). debug: also log the CPU's debug messages, which name every
 * exception and its error code (slower: only to explain a triple fault). */
static bool bochs_once(const struct boot_opts *bo, const char *dir, const char *unshare, const char *ns,
		       const char *exe, bool debug, struct proc *pr)
{
	char path[PATH_MAX + 32];
	const char *rc = debug ? "bochsrc-debug" : "bochsrc";
	snprintf(path, sizeof path, "%s/%s", dir, rc);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "shimcheck boot: %s: %s\n", path, strerror(errno));
		return false;
	}
	/* The pinned CPU (Penryn, as QEMU and Unicorn); a triple fault stops Bochs (it reports
	 * it) instead of resetting; magic_break: the kernel's XCHG BX,BX at the end hands over
	 * to the rc file's `q`. clock sync=none and no sound: faster. megs: the window ends at
	 * 32 MiB at most. */
	fprintf(f, "megs: 64\n"
		   "romimage: file=%s\n"
		   "vgaromimage: file=%s\n"
		   "cpu: model=core2_penryn_t9600, count=1, ips=4000000, reset_on_triple_fault=0\n"
		   "ata0-master: type=cdrom, path=boot.iso, status=inserted\n"
		   "boot: cdrom\n"
		   "display_library: rfb, options=\"timeout=0\"\n"
		   "port_e9_hack: enabled=1\n"
		   "com1: enabled=1, mode=file, dev=com1.log\n"
		   "magic_break: enabled=1\n"
		   "panic: action=fatal\n"
		   "error: action=report\n"
		   "log: %s\n"
		   "%s"
		   "clock: sync=none\n"
		   "speaker: enabled=0\n"
		   "sound: driver=dummy\n",
		BOCHS_BIOS, BOCHS_VGA, debug ? "bochs-debug.log" : "bochs.log", debug ? "debug: action=ignore, cpu0=report\n" : "");
	if (fclose(f) != 0)
		return false;
	snprintf(path, sizeof path, "%s/bochs.rc", dir);
	if (!(f = fopen(path, "w")) || fputs("c\nq\n", f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "shimcheck boot: %s: cannot write\n", path);
		return false;
	}
	char *argv[] = {(char *)unshare, (char *)ns, (char *)exe, "-q", "-f", (char *)rc, "-rc", "bochs.rc", NULL};
	snprintf(path, sizeof path, "%s/%s", dir, debug ? "bochs-debug.out" : "bochs.out");
	if (!run(argv, dir, path, bo->timeout, pr)) {
		fprintf(stderr, "shimcheck boot: %s: cannot run it\n", exe);
		return false;
	}
	return true;
}

/* Bochs's CPU debug log: the exceptions of the chain that ended in the panic, all at the
 * panic's tick: "00051687664d[CPU0  ] exception(0x0e): error_code=0003". The first is the
 * one the simulator reports. */
static void bochs_first_exception(const char *log, struct obs *o)
{
	char *s = slurp(log, NULL);
	if (!s)
		return;
	char *panic = strstr(s, ">>PANIC<<");
	if (panic) {
		char *bol = panic;
		while (bol > s && bol[-1] != '\n')
			bol--;
		unsigned long long tick;
		if (sscanf(bol, "%llu", &tick) == 1) {
			char *p = s;
			while ((p = strstr(p, "] exception(0x"))) {
				char *b = p;
				while (b > s && b[-1] != '\n')
					b--;
				unsigned long long t;
				unsigned vec, err;
				if (sscanf(b, "%llu", &t) == 1 && t == tick &&
				    sscanf(p, "] exception(0x%x): error_code=%x", &vec, &err) == 2) {
					obs_set(o, F_VECTOR, vec);
					obs_set(o, F_ERROR, err);
					break;
				}
				p++;
			}
		}
	}
	free(s);
}

static int run_bochs(const struct boot_opts *bo, const char *dir, const char *kernel, struct engine_run *er)
{
	char exe[PATH_MAX], unshare[PATH_MAX], path[PATH_MAX + 32];
	const char *want = getenv("SHIMCHECK_BOCHS") ? getenv("SHIMCHECK_BOCHS") : "bochs";
	if (!find_exe(want, exe, sizeof exe)) {
		fprintf(stderr, "shimcheck boot: %s: not found (Debian: bochs, bochsbios, vgabios); engine unavailable\n", want);
		return B_UNAVAILABLE;
	}
	if (access(BOCHS_BIOS, R_OK) != 0 || access(BOCHS_VGA, R_OK) != 0) {
		fprintf(stderr, "shimcheck boot: bochs: %s or %s missing (Debian: bochsbios, vgabios)\n", BOCHS_BIOS, BOCHS_VGA);
		return B_INTERNAL;
	}
	/* Debian's Bochs has no `nogui`; its rfb display listens on port 5900 on every address.
	 * Run it in a network namespace of its own (unshare -n as root, else with a user
	 * namespace) so that nothing is exposed. */
	if (!find_exe("unshare", unshare, sizeof unshare)) {
		fprintf(stderr, "shimcheck boot: bochs: unshare not found (Debian: util-linux): Bochs's rfb port cannot be isolated\n");
		return B_INTERNAL;
	}
	const char *ns = NULL;
	snprintf(path, sizeof path, "%s/unshare.out", dir);
	const char *flags[] = {"-n", "-rn"};
	for (int i = 0; i < 2 && !ns; i++) {
		char *argv[] = {unshare, (char *)flags[i], "true", NULL};
		struct proc pr;
		if (run(argv, dir, path, 10, &pr) && pr.status == 0)
			ns = flags[i];
	}
	if (!ns) {
		fprintf(stderr, "shimcheck boot: bochs: neither `unshare -n` nor `unshare -rn` works here: "
			"Bochs's rfb port cannot be isolated, not running it\n");
		show_tail(path, 5);
		return B_INTERNAL;
	}

	/* Bochs cannot load a multiboot ELF itself: GRUB on an ISO does. */
	char mkiso[PATH_MAX];
	snprintf(mkiso, sizeof mkiso, "%s", getenv("SHIMCHECK_BOOT_MKISO") ? getenv("SHIMCHECK_BOOT_MKISO") : SHIMCHECK_BOOT_MKISO);
	char *iso_argv[] = {"/bin/sh", mkiso, "-o", "boot.iso", (char *)kernel, "image.bin", NULL};
	struct proc pr;
	snprintf(path, sizeof path, "%s/mkiso.out", dir);
	if (!run(iso_argv, dir, path, 60, &pr) || pr.status != 0 || pr.timed_out) {
		fprintf(stderr, "shimcheck boot: bochs: building the GRUB ISO failed (%s)\n", mkiso);
		show_tail(path, 20);
		return B_INTERNAL;
	}
	er->prep_secs = pr.secs;

	snprintf(path, sizeof path, "%s/bochs.out", dir);
	if (!bochs_once(bo, dir, unshare, ns, exe, false, &er->proc))
		return B_INTERNAL;
	char *out = slurp(path, NULL);
	if (out) {
		char *v = strstr(out, "Bochs x86 Emulator ");
		if (v) {
			size_t n = strcspn(v, "\n");
			snprintf(er->version, sizeof er->version, "%.*s", (int)n, v);
		}
	}
	free(out);
	/* COM1 is the clean stream; E9 text shares Bochs's stdout with its messages. */
	snprintf(path, sizeof path, "%s/com1.log", dir);
	char *com1 = slurp(path, NULL);
	if (com1)
		parse_kernel_lines(com1, er);
	free(com1);
	if (!ends(&er->obs) && !er->kernel_error && !er->kernel_fault) {
		/* COM1 lost its tail (or never worked): the E9 copy on stdout may have it. */
		static struct engine_run e9;
		memset(&e9, 0, sizeof e9);
		snprintf(path, sizeof path, "%s/bochs.out", dir);
		char *s = slurp(path, NULL);
		if (s)
			parse_kernel_lines(s, &e9);
		free(s);
		if (e9.booted && (e9.obs.n > er->obs.n || e9.kernel_error || e9.kernel_fault)) {
			er->booted = true;
			er->obs = e9.obs;
			er->kernel_error = e9.kernel_error;
			er->kernel_fault = e9.kernel_fault;
			memcpy(er->message, e9.message, sizeof er->message);
			memcpy(er->cpu, e9.cpu, sizeof er->cpu);
			memcpy(er->loader, e9.loader, sizeof er->loader);
		}
	}
	if (!er->booted) {
		fprintf(stderr, "shimcheck boot: bochs: the boot kernel never ran (status %d%s)\n", er->proc.status,
			er->proc.timed_out ? ", timed out" : "");
		snprintf(path, sizeof path, "%s/bochs.out", dir);
		show_tail(path, 20);
		return B_INTERNAL;
	}
	if (!ends(&er->obs) && !er->kernel_error && !er->kernel_fault) {
		struct obs *o = obs_add(&er->obs, er->proc.timed_out ? O_TIMEOUT : O_SHUTDOWN);
		snprintf(path, sizeof path, "%s/bochs.out", dir);
		if (o && er->proc.timed_out) {
			snprintf(o->note, sizeof o->note, "no end after %.0f s", bo->timeout);
		} else if (o && !bochs_triple_fault(path, o)) {
			snprintf(o->note, sizeof o->note, "Bochs stopped with status %d before the end", er->proc.status);
			show_tail(path, 10);
		} else if (o) {
			/* Bochs names the exceptions only in its CPU debug log: run the same
			 * (deterministic) boot once more with it, to learn the first one. */
			struct proc pr;
			snprintf(path, sizeof path, "%s/bochs-debug.log", dir);
			if (bochs_once(bo, dir, unshare, ns, exe, true, &pr) && !pr.timed_out)
				bochs_first_exception(path, o);
		}
	}
	return B_OK;
}

/* ---- comparing ------------------------------------------------------------------------------- */

/* Index of the first observation that differs, with the field (-1: the kinds or one side
 * is missing); -1 when both lists agree. */
static int first_difference(const struct obs_list *a, const struct obs_list *b, int *field)
{
	int n = a->n > b->n ? a->n : b->n;
	for (int i = 0; i < n; i++) {
		*field = -1;
		if (i >= a->n || i >= b->n || a->o[i].kind != b->o[i].kind)
			return i;
		for (int f = 0; f < F_N; f++) {
			enum ofield ff = (enum ofield)f;
			if (obs_has(&a->o[i], ff) && obs_has(&b->o[i], ff) && ((a->o[i].v[f] ^ b->o[i].v[f]) & field_mask(ff))) {
				*field = f;
				return i;
			}
		}
	}
	return -1;
}

static void cell(const struct obs *o, int f, char *b, size_t n)
{
	if (!o)
		snprintf(b, n, "(none)");
	else if (f < 0)
		obs_label(o, b, n);
	else if (obs_has(o, (enum ofield)f))
		snprintf(b, n, "0x%" PRIx64, o->v[f]);
	else
		snprintf(b, n, "-");
}

static void show_side_by_side(FILE *out, const char *engine, const struct obs *a, const struct obs *b, int diff_field)
{
	char x[48], y[48];
	fprintf(out, "  %-15s %-22s %s\n", "field", engine, "unicorn");
	cell(a, -1, x, sizeof x);
	cell(b, -1, y, sizeof y);
	fprintf(out, "  %-15s %-22s %-22s%s\n", "event", x, y, diff_field == -1 ? " <--" : "");
	for (int f = 0; f < F_N; f++) {
		if ((!a || !obs_has(a, (enum ofield)f)) && (!b || !obs_has(b, (enum ofield)f)))
			continue;
		cell(a, f, x, sizeof x);
		cell(b, f, y, sizeof y);
		fprintf(out, "  %-15s %-22s %-22s%s\n", field_name[f], x, y, f == diff_field ? " <--" : "");
	}
	if (a && a->note[0])
		fprintf(out, "  %s: %s\n", engine, a->note);
	if (b && b->note[0])
		fprintf(out, "  unicorn: %s\n", b->note);
}

static void write_obs_file(const char *dir, const char *engine, const struct obs_list *l)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/obs-%s.jsonl", dir, engine);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	for (int i = 0; i < l->n; i++)
		obs_write(f, &l->o[i], engine);
	fclose(f);
}

/* ---- paths and the command ---------------------------------------------------------------------- */

static bool readable(const char *p) { return access(p, R_OK) == 0; }

/* The built shim variants: build/tools/../shim next to shimcheck, else where CMake put them. */
static void shim_root(char *out, size_t n)
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

static void usage(FILE *f)
{
	fprintf(f, "usage: shimcheck boot --engine qemu|bochs [--scenario FILE] [--variant NAME | --code-dir DIR]\n"
		   "                      [--timeout SECONDS] [--keep DIR] [--kernel FILE] [--verbose]\n"
		   "\n"
		   "Boots the scenario's image with the boot kernel on QEMU (TCG, -cpu Penryn) or Bochs (GRUB ISO,\n"
		   "core2_penryn_t9600), runs the same scenario in Unicorn, and compares the observations at\n"
		   "host_main's entry, after each round trip and at the end.\n"
		   "  --keep DIR   keep the image, logs and both sides' observations (obs-*.jsonl) in DIR\n"
		   "  --verbose    print every observation side by side\n"
		   "exit status: 0 identical, 1 divergence or violation, 2 bad input, 3 internal error,\n"
		   "77 engine binary missing\n");
}

static int parse_args(int argc, char **argv, struct boot_opts *o)
{
	static const struct option longopts[] = {
		{"engine", required_argument, NULL, 'e'},  {"variant", required_argument, NULL, 'v'},
		{"code-dir", required_argument, NULL, 'c'}, {"scenario", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'}, {"keep", required_argument, NULL, 'k'},
		{"kernel", required_argument, NULL, 'K'},  {"verbose", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
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
		case 's': o->scenario = optarg; break;
		case 'k': o->keep = optarg; break;
		case 'K': o->kernel = optarg; break;
		case 'V': o->verbose = true; break;
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
	if (!o->engine || (strcmp(o->engine, "qemu") && strcmp(o->engine, "bochs"))) {
		fprintf(stderr, "shimcheck boot: command line: --engine qemu or --engine bochs is required\n");
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
	return B_OK;
}

/* The verdict: compare, print, exit status. */
static int report(const struct boot_opts *bo, const struct pipeline *p, const struct engine_run *er,
		  const struct obs_list *sim, enum pl_status sim_status)
{
	const char *eng = bo->engine;
	if (bo->verbose) {
		int n = er->obs.n > sim->n ? er->obs.n : sim->n;
		for (int i = 0; i < n; i++) {
			printf("observation %d:\n", i);
			show_side_by_side(stdout, eng, i < er->obs.n ? &er->obs.o[i] : NULL, i < sim->n ? &sim->o[i] : NULL, -2);
		}
	}
	int field;
	int at = first_difference(&er->obs, sim, &field);
	int rc = B_OK;
	if (at >= 0) {
		const struct obs *a = at < er->obs.n ? &er->obs.o[at] : NULL, *b = at < sim->n ? &sim->o[at] : NULL;
		char la[48], lb[48];
		cell(a, -1, la, sizeof la);
		cell(b, -1, lb, sizeof lb);
		if (field >= 0)
			printf("DIVERGENCE at observation %d (%s): %s: %s 0x%" PRIx64 ", unicorn 0x%" PRIx64 "\n", at, la,
			       field_name[field], eng, a->v[field], b->v[field]);
		else
			printf("DIVERGENCE at observation %d: %s says %s, unicorn says %s\n", at, eng, la, lb);
		show_side_by_side(stdout, eng, a, b, field);
		rc = B_DIVERGE;
	}
	if (sim_status == PL_VIOLATION) {
		for (int i = 0; i < p->v.n && i < MAX_VIOLATIONS; i++) {
			const struct violation *x = &p->v.v[i];
			if (x->insn < p->t.n)
				printf("%s #%u 0x%08" PRIx32 ": %s\n", rule_id(x->rule), x->insn, p->t.insn[x->insn].cpu.eip, x->msg);
			else
				printf("%s: %s\n", rule_id(x->rule), x->msg);
		}
		rc = B_DIVERGE;
	}
	int rounds = 0;
	for (int i = 0; i < er->obs.n; i++)
		rounds += er->obs.o[i].kind == O_ROUND;
	char last[48] = "nothing";
	if (er->obs.n)
		obs_label(&er->obs.o[er->obs.n - 1], last, sizeof last);
	printf("%s: engine %s (%s; %s; loader %s), variant %s, scenario %s: %d observation%s, %d round trip%s, ends with %s; "
	       "%s unicorn (%u instructions, %s); %d violation%s; boot %.2f s",
	       rc == B_OK ? "BOOT PASS" : "BOOT FAIL", eng, er->version[0] ? er->version : "?", er->cpu, er->loader,
	       p->code.variant, p->sc.name, er->obs.n, er->obs.n == 1 ? "" : "s", rounds, rounds == 1 ? "" : "s", last,
	       at < 0 ? "identical to" : "differs from", p->t.n, tr_end_name(p->t.end), p->v.n, p->v.n == 1 ? "" : "s",
	       er->proc.secs);
	if (er->prep_secs > 0)
		printf(" (+ ISO %.2f s)", er->prep_secs);
	printf("\n");
	return rc;
}

int boot_main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "boot") == 0) {
		argc--;
		argv++;
	}
	struct boot_opts bo;
	int rc = parse_args(argc, argv, &bo);
	if (rc != B_OK)
		return rc;

	char codedir[PATH_MAX + 64], root[PATH_MAX], scen[PATH_MAX + 32], kernel[PATH_MAX];
	if (bo.code_dir) {
		snprintf(codedir, sizeof codedir, "%s", bo.code_dir);
	} else {
		shim_root(root, sizeof root);
		snprintf(codedir, sizeof codedir, "%s/%s", root, bo.variant ? bo.variant : DEFAULT_VARIANT);
	}
	if (bo.scenario)
		snprintf(scen, sizeof scen, "%s", bo.scenario);
	else if (readable("scenarios/default.json"))
		snprintf(scen, sizeof scen, "scenarios/default.json");
	else
		snprintf(scen, sizeof scen, "%s/scenarios/default.json", SHIMCHECK_SOURCE_DIR);
	const char *k = bo.kernel ? bo.kernel : getenv("SHIMCHECK_BOOT_KERNEL") ? getenv("SHIMCHECK_BOOT_KERNEL")
										: SHIMCHECK_BOOT_KERNEL;
	if (!realpath(k, kernel)) {
		fprintf(stderr, "shimcheck boot: %s: the boot kernel is missing (build the boot_kernel target): %s\n", k,
			strerror(errno));
		return B_INTERNAL;
	}

	static struct pipeline p;
	pl_init(&p);
	enum pl_status st = pl_load_code(&p, codedir);
	if (st == PL_OK)
		st = pl_load_scenario(&p, scen);
	if (st != PL_OK) {
		fprintf(stderr, "shimcheck boot: %s\n", p.err);
		pl_free(&p);
		return (int)st;
	}

	/* The scratch directory: --keep's, or a temporary one removed at the end. */
	char dir[PATH_MAX];
	if (bo.keep) {
		if (mkdir(bo.keep, 0755) != 0 && errno != EEXIST) {
			fprintf(stderr, "shimcheck boot: --keep %s: %s\n", bo.keep, strerror(errno));
			pl_free(&p);
			return B_INPUT;
		}
		if (!realpath(bo.keep, dir)) {
			fprintf(stderr, "shimcheck boot: --keep %s: %s\n", bo.keep, strerror(errno));
			pl_free(&p);
			return B_INPUT;
		}
	} else {
		const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(dir, sizeof dir, "%s/shimcheck-boot.XXXXXX", tmp);
		if (!mkdtemp(dir)) {
			fprintf(stderr, "shimcheck boot: %s: %s\n", dir, strerror(errno));
			pl_free(&p);
			return B_INTERNAL;
		}
	}

	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/image.bin", dir);
	FILE *f = fopen(path, "wb");
	bool wrote = f && image_export(&p.img, &p.code, f) == 0;
	if (f && fclose(f) != 0)
		wrote = false;
	static struct engine_run er;
	memset(&er, 0, sizeof er);
	er.engine = bo.engine;
	if (!wrote) {
		fprintf(stderr, "shimcheck boot: %s: cannot write the image\n", path);
		rc = B_INTERNAL;
	} else {
		rc = strcmp(bo.engine, "qemu") == 0 ? run_qemu(&bo, dir, kernel, &er) : run_bochs(&bo, dir, kernel, &er);
	}
	if (rc == B_OK && er.kernel_error) {
		fprintf(stderr, "shimcheck boot: the boot kernel refused the image: %s\n", er.message);
		rc = B_INPUT;
	} else if (rc == B_OK && er.kernel_fault) {
		fprintf(stderr, "shimcheck boot: the boot kernel faulted before entering the host: %s\n", er.message);
		rc = B_INTERNAL;
	}

	static struct obs_list sim;
	if (rc == B_OK) {
		st = pl_run(&p);
		char err[160];
		if (st != PL_OK && st != PL_VIOLATION) {
			fprintf(stderr, "shimcheck boot: %s\n", p.err);
			rc = (int)st;
		} else if (!sim_observations(&p, &sim, err, sizeof err)) {
			fprintf(stderr, "shimcheck boot: %s\n", err);
			rc = B_INTERNAL;
		} else {
			if (bo.keep) {
				write_obs_file(dir, bo.engine, &er.obs);
				write_obs_file(dir, "unicorn", &sim);
			}
			rc = report(&bo, &p, &er, &sim, st);
		}
	}
	if (!bo.keep)
		remove_dir(dir);
	else if (rc != B_OK && rc != B_DIVERGE)
		fprintf(stderr, "shimcheck boot: files kept in %s\n", dir);
	pl_free(&p);
	return rc;
}
