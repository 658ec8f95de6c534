/*
 * boot_kvm.c: `shimcheck boot --engine kvm`: the same kernel, images and QEMU multiboot
 * loader as --engine qemu, with the CPU virtualised by KVM instead of emulated by TCG.
 *
 * QEMU's -d int and -d exec logs exist only under TCG, so KVM gives no exception chain and no
 * record of which code ran. What it does give, over QMP (QEMU's JSON monitor on a socket):
 *   - a triple fault: the guest's reset request, turned into a pause by
 *     -action reboot=shutdown,shutdown=pause, announced by a SHUTDOWN event with reason
 *     "guest-reset"; the paused vCPU's registers (EIP of the instruction whose exception
 *     could not be delivered: delivery never advanced it);
 *   - a trap routine: monitor_trap and host_trap halt (HLT with IF=0) and __shim_nmi loops;
 *     when the kernel's output stops growing and QEMU has not exited, the vCPU is stopped
 *     and its EIP sampled (KVM_SAMPLES times, running it a little in between); a sample in
 *     a trap routine ends the boot (at a HLT loop the exception frame is still on top of the
 *     stack and is read there), anything else runs on until the next quiet period.
 * Which exception started a chain is not known under KVM (as with Bochs's breakpoints, the
 * comparison then covers how the run ended and where).
 *
 * The CPU model is pinned as far as KVM lets it: Penryn with Intel's vendor string (QEMU
 * gives a KVM guest the host's vendor unless told); features the host lacks are dropped
 * with a warning, which is recorded (engine_info.cpu_note), and the kernel's boot line says
 * what the guest saw (vendor, brand, signature).
 *
 * SHIMCHECK_KVM_ACCEL=tcg runs this same path with TCG: a way to exercise the QMP machinery
 * on a machine whose KVM cannot run the images (docs/hardware.md says why that is so here).
 */
#define _GNU_SOURCE
#include "boot_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define KVM_QUIET 1.0     /* s without kernel output, QEMU still running: look at the vCPU */
#define KVM_SAMPLES 8     /* EIP samples per quiet period */
#define QMP_TIMEOUT 3.0   /* s for one QMP command */
#define HLT_LOOP_LEN 3    /* host_trap, monitor_trap: hlt; jmp short back */
#define NMI_LEN 32        /* __shim_nmi: push, call, pop, or, pop, iret (~17 bytes) */

/* kernel_enter (entry.asm), at KERNEL_ENTER: mov eax,[esp+4]; mov cr4,eax; mov eax,[esp+8];
 * mov cr3,eax; mov eax,[esp+12]; mov cr0,eax; jmp [esp+16]. Offsets of the three MOVs to
 * control registers, to name the one a CPU refuses. */
static const char *kernel_enter_insn(uint32_t eip)
{
	switch (eip - KERNEL_ENTER) {
	case 0x04: return "MOV CR4 (the image's CR4)";
	case 0x0b: return "MOV CR3 (the kernel's page tables)";
	case 0x12: return "MOV CR0 (the image's CR0: paging on)";
	default: return "an instruction of kernel_enter";
	}
}

/* ---- QMP ------------------------------------------------------------------------------------- */

struct qmp {
	int fd;
	char buf[1 << 16];
	size_t len;
	bool ready;          /* greeting read, capabilities negotiated */
	bool reset;          /* SHUTDOWN, reason guest-reset: a triple fault */
	char reason[40];
};

static void qmp_event(struct qmp *q, json_t *m)
{
	const char *ev = json_string_value(json_object_get(m, "event"));
	if (ev && strcmp(ev, "SHUTDOWN") == 0) {
		const char *r = json_string_value(json_object_get(json_object_get(m, "data"), "reason"));
		snprintf(q->reason, sizeof q->reason, "%s", r ? r : "?");
		q->reset = r && strcmp(r, "guest-reset") == 0;
	}
}

/* The next complete message (one JSON object per line), waiting up to deadline. Events are
 * noted and returned like anything else; NULL on timeout or a closed socket. */
static json_t *qmp_next(struct qmp *q, double deadline)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			size_t l = (size_t)(nl - q->buf) + 1;
			json_error_t e;
			json_t *m = json_loadb(q->buf, l, 0, &e);
			memmove(q->buf, q->buf + l, q->len - l);
			q->len -= l;
			if (m && json_object_get(m, "event"))
				qmp_event(q, m);
			if (m)
				return m;
			continue;
		}
		double left = deadline - now_s();
		if (left <= 0 || q->len == sizeof q->buf)
			return NULL;
		struct pollfd p = {q->fd, POLLIN, 0};
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		ssize_t k = read(q->fd, q->buf + q->len, sizeof q->buf - q->len);
		if (k <= 0)
			return NULL;
		q->len += (size_t)k;
	}
}

/* Send a command, return its "return" value (a new reference), NULL on error or timeout. */
static json_t *qmp_cmd(struct qmp *q, json_t *cmd)
{
	char *s = json_dumps(cmd, JSON_COMPACT);
	json_decref(cmd);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	/* QEMU may exit (the kernel's isa-debug-exit) while a command is on its way: MSG_NOSIGNAL,
	 * or the closed socket's SIGPIPE would kill shimcheck (seen under load: status 141) */
	bool ok = send(q->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n && send(q->fd, "\n", 1, MSG_NOSIGNAL) == 1;
	free(s);
	if (!ok)
		return NULL;
	double deadline = now_s() + QMP_TIMEOUT;
	for (json_t *m; (m = qmp_next(q, deadline));) {
		json_t *r = json_object_get(m, "return");
		if (r || json_object_get(m, "error")) {
			json_incref(r);
			json_decref(m);
			return r;
		}
		json_decref(m);
	}
	return NULL;
}

static json_t *qmp_simple(struct qmp *q, const char *name)
{
	return qmp_cmd(q, json_pack("{s:s}", "execute", name));
}

/* A human monitor command (`info registers`, `x/4xw ADDR`): its text, malloc'd. */
static char *qmp_hmp(struct qmp *q, const char *line)
{
	json_t *r = qmp_cmd(q, json_pack("{s:s, s:{s:s}}", "execute", "human-monitor-command", "arguments", "command-line", line));
	char *s = json_is_string(r) ? strdup(json_string_value(r)) : NULL;
	json_decref(r);
	return s;
}

static bool qmp_connect(struct qmp *q, const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (fd < 0 || strlen(path) >= sizeof a.sun_path) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return false;
	}
	q->fd = fd;
	q->len = 0;
	json_t *greet = qmp_next(q, now_s() + QMP_TIMEOUT); /* {"QMP": {...}} */
	bool ok = greet && json_object_get(greet, "QMP");
	json_decref(greet);
	json_t *r = ok ? qmp_simple(q, "qmp_capabilities") : NULL;
	q->ready = r != NULL;
	json_decref(r);
	return q->ready;
}

/* ---- the vCPU's registers -------------------------------------------------------------------- */

struct vregs {
	bool ok;
	uint32_t eip, lin, esp, cr0, cr2, cr3, cr4, cs_base, ss_base;
	bool halted;
};

static bool reg_hex(const char *s, const char *key, uint32_t *v)
{
	const char *p = strstr(s, key);
	unsigned long long x;
	if (!p || sscanf(p + strlen(key), "%llx", &x) != 1)
		return false;
	*v = (uint32_t)x;
	return true;
}

/* `info registers` of a stopped vCPU. "CS =0008 00000000 ffffffff 00cf9a00 ..." gives CS's
 * base: EIP is an offset in CS (the monitor's CS has a base under cs_wrap). */
static struct vregs read_regs(struct qmp *q)
{
	struct vregs v;
	memset(&v, 0, sizeof v);
	char *s = qmp_hmp(q, "info registers");
	if (!s)
		return v;
	uint32_t hlt = 0;
	unsigned sel;
	unsigned long long base;
	const char *cs = strstr(s, "\nCS =");
	const char *ss = strstr(s, "\nSS =");
	if (cs && sscanf(cs, "\nCS =%x %llx", &sel, &base) == 2)
		v.cs_base = (uint32_t)base;
	if (ss && sscanf(ss, "\nSS =%x %llx", &sel, &base) == 2)
		v.ss_base = (uint32_t)base;
	v.ok = reg_hex(s, "EIP=", &v.eip) && reg_hex(s, "ESP=", &v.esp) && reg_hex(s, "CR0=", &v.cr0) &&
	       reg_hex(s, "CR2=", &v.cr2) && reg_hex(s, "CR3=", &v.cr3) && reg_hex(s, "CR4=", &v.cr4);
	v.halted = reg_hex(s, "HLT=", &hlt) && hlt;
	v.lin = v.cs_base + v.eip;
	free(s);
	return v;
}

/* Four dwords at linear address a, through the vCPU's paging: "e0001ff4: 0xe0000010 ...". */
static bool read_frame(struct qmp *q, uint32_t a, uint32_t out[4])
{
	char cmd[40];
	snprintf(cmd, sizeof cmd, "x/4xw 0x%08" PRIx32, a);
	char *s = qmp_hmp(q, cmd);
	const char *colon = s ? strchr(s, ':') : NULL;
	unsigned long long v[4];
	bool ok = colon && sscanf(colon + 1, " %llx %llx %llx %llx", &v[0], &v[1], &v[2], &v[3]) == 4;
	for (int i = 0; ok && i < 4; i++)
		out[i] = (uint32_t)v[i];
	free(s);
	return ok;
}

/* ---- watching a boot ---------------------------------------------------------------------------- */

struct kwatch {
	char e9[PATH_MAX + 32], sock[PATH_MAX + 32];
	const struct job *jobs;
	int n;
	struct qmp q;
	long e9_size;
	double e9_changed;
	/* the outcome, when QEMU did not exit by itself */
	bool triple, sampled, trap, frame_known, qmp_failed;
	int job;                 /* the image running then (its last image line) */
	struct vregs regs;
	uint32_t handler, frame[4];
	int samples;
};

/* The trap routine whose code holds lin, and where it starts. */
static const char *trap_at(const struct trap_set *ts, uint32_t lin, uint32_t *start)
{
	for (int i = 0; i < ts->n; i++) {
		uint32_t len = strncmp(ts->name[i], "__shim_nmi", 10) == 0 ? NMI_LEN : HLT_LOOP_LEN;
		if (lin - ts->lin[i] < len) {
			*start = ts->lin[i];
			return ts->name[i];
		}
	}
	return NULL;
}

static int e9_current_image(const char *path)
{
	char *s = slurp(path, NULL);
	int cur = -1;
	static const char tag[] = "{\"type\":\"image\",\"index\":\"0x";
	for (char *p = s; p && (p = strstr(p, tag)); p++)
		cur = (int)strtol(p + sizeof tag - 1, NULL, 16);
	free(s);
	return cur;
}

static bool kvm_poll(void *ctx)
{
	struct kwatch *w = ctx;
	if (!w->q.ready) {
		if (w->q.fd >= 0 || access(w->sock, F_OK) != 0)
			return false;
		if (!qmp_connect(&w->q, w->sock)) {
			if (w->q.fd >= 0)
				close(w->q.fd);
			w->q.fd = -1;
			w->qmp_failed = now_s() - w->e9_changed > QMP_TIMEOUT;
			return w->qmp_failed;
		}
	}
	/* Events that came in meanwhile (a triple fault pauses the VM and says so). */
	for (json_t *m; (m = qmp_next(&w->q, now_s()));)
		json_decref(m);
	struct stat st;
	long size = stat(w->e9, &st) == 0 ? (long)st.st_size : 0;
	if (size != w->e9_size) {
		w->e9_size = size;
		w->e9_changed = now_s();
	}
	if (w->q.reset) {
		w->triple = true;
		w->job = e9_current_image(w->e9);
		w->regs = read_regs(&w->q);
		return true;
	}
	if (now_s() - w->e9_changed < KVM_QUIET)
		return false;
	w->job = e9_current_image(w->e9);
	if (w->job < 0 || w->job >= w->n)
		return false; /* still in the firmware or the kernel: only --timeout ends that */
	/* The kernel has been silent and QEMU runs on: stop the vCPU and see where it is. Only a
	 * trap routine ends the boot here; anything else may be a slow KVM still at work (every
	 * port write of the kernel exits to QEMU), so it runs on until the next quiet period or
	 * --timeout. */
	const struct trap_set *ts = &w->jobs[w->job].traps;
	for (int k = 0; k < KVM_SAMPLES; k++, w->samples++) {
		json_decref(qmp_simple(&w->q, "stop"));
		w->regs = read_regs(&w->q);
		const char *name = w->regs.ok ? trap_at(ts, w->regs.lin, &w->handler) : NULL;
		if (name) {
			w->trap = true;
			/* a HLT loop is entered by the exception and never moves ESP: the frame
			 * (EIP, CS, EFLAGS) is on top of the stack */
			if (strncmp(name, "__shim_nmi", 10) != 0)
				w->frame_known = read_frame(&w->q, w->regs.ss_base + w->regs.esp, w->frame);
			return true;
		}
		json_decref(qmp_simple(&w->q, "cont"));
		struct timespec d = {0, 20 * 1000 * 1000};
		nanosleep(&d, NULL);
	}
	w->sampled = true;
	w->e9_changed = now_s();
	return false;
}

/* "warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]" -> "pni". */
static void missing_features(const char *out, char *b, size_t n)
{
	size_t k = 0;
	b[0] = '\0';
	static const char tag[] = "requested feature: ";
	for (const char *p = out; p && (p = strstr(p, tag)); p++) {
		/* "CPUID.01H:ECX.sse4.1": the name follows the register's dot (names have dots too) */
		const char *f = p + sizeof tag - 1, *sp = f + strcspn(f, " \n"), *colon = memchr(f, ':', (size_t)(sp - f));
		const char *dot = colon ? memchr(colon, '.', (size_t)(sp - colon)) : NULL;
		if (dot++ && sp > dot && k < n)
			k += (size_t)snprintf(b + k, n - k, "%s%.*s", k ? " " : "", (int)(sp - dot), dot);
	}
}

int kvm_once(const struct boot_opts *bo, const char *dir, const char *kernel, struct job *jobs, int n,
	     struct engine_info *ei, int *finished)
{
	const char *accel = getenv("SHIMCHECK_KVM_ACCEL") && *getenv("SHIMCHECK_KVM_ACCEL") ? getenv("SHIMCHECK_KVM_ACCEL")
											: "kvm";
	if (strcmp(accel, "kvm") == 0) {
		int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "shimcheck boot: kvm: /dev/kvm: %s (cannot open it read-write); engine unavailable\n",
				strerror(errno));
			return B_UNAVAILABLE;
		}
		close(fd);
	}
	char exe[PATH_MAX];
	const char *want = getenv("SHIMCHECK_QEMU") ? getenv("SHIMCHECK_QEMU") : "qemu-system-i386";
	if (!find_exe(want, exe, sizeof exe)) {
		fprintf(stderr, "shimcheck boot: kvm: %s not found (Debian: qemu-system-x86); engine unavailable\n", want);
		return B_UNAVAILABLE;
	}
	qemu_version(exe, dir, ei);
	/* The first boot of a command takes one image: where this KVM cannot run the images at
	 * all (the #GP below), that is known after one small boot, not after the firmware has
	 * loaded a whole batch of modules (under a KVM that emulates the firmware instruction by
	 * instruction, as kvm_pvm here, 61 modules take longer than --timeout). The rest of the
	 * batch follows in the next boot; every image is laid out afresh either way. */
	if (ei->boots == 0 && n > 1)
		n = 1;
	char *initrd = qemu_initrd(jobs, n);
	if (!initrd)
		return B_INTERNAL;
	char mem[16], qmp_arg[PATH_MAX + 64];
	snprintf(mem, sizeof mem, "%u", megs_for(dir, jobs, n, 128));
	static struct kwatch w;
	memset(&w, 0, sizeof w);
	w.q.fd = -1;
	snprintf(w.e9, sizeof w.e9, "%s/e9.log", dir);
	snprintf(w.sock, sizeof w.sock, "%s/qmp.sock", dir);
	snprintf(qmp_arg, sizeof qmp_arg, "unix:%s,server=on,wait=off", w.sock);
	unlink(w.e9);
	unlink(w.sock);
	w.jobs = jobs;
	w.n = n;
	w.job = -1;
	w.e9_changed = now_s();
	/* the same machine as --engine qemu, except the accelerator and how a reset is taken:
	 * the VM pauses instead of exiting, so its registers can still be read */
	const char *cpu = "Penryn,vendor=GenuineIntel";
	char *argv[] = {exe, "-accel", (char *)accel, "-cpu", (char *)cpu, "-m", mem, "-nodefaults", "-display", "none",
			"-action", "reboot=shutdown,shutdown=pause", "-monitor", "none", "-qmp", qmp_arg,
			"-kernel", (char *)kernel, "-initrd", initrd, "-debugcon", "file:e9.log", "-serial", "file:com1.log",
			"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", NULL};
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/qemu.out", dir);
	struct proc pr;
	bool ran = run(argv, dir, path, bo->timeout, &pr, kvm_poll, &w);
	free(initrd);
	if (w.q.fd >= 0)
		close(w.q.fd);
	if (!ran) {
		fprintf(stderr, "shimcheck boot: %s: cannot run it\n", exe);
		return B_INTERNAL;
	}
	ei->boots++;
	ei->secs += pr.secs;
	char *out = slurp(path, NULL);
	char miss[120];
	missing_features(out, miss, sizeof miss);
	snprintf(ei->cpu_note, sizeof ei->cpu_note, "accel %s, -cpu %s%s%s", accel, cpu, miss[0] ? "; host lacks " : "", miss);

	struct kparse kp = {.ei = ei, .jobs = jobs, .n = n, .cur = -1};
	char *e9 = slurp(w.e9, NULL);
	if (e9)
		parse_kernel_lines(e9, &kp);
	free(e9);
	if (!ei->booted) {
		/* QEMU that will not use KVM stops before the guest runs: "Could not access KVM kernel
		 * module", "failed to initialize kvm" */
		const char *k = out ? strcasestr(out, "kvm") : NULL;
		if (k && !pr.timed_out) {
			const char *bol = k, *eol = strchr(k, '\n');
			while (bol > out && bol[-1] != '\n')
				bol--;
			fprintf(stderr, "shimcheck boot: kvm: QEMU refuses KVM: %.*s; engine unavailable\n",
				(int)(eol ? eol - bol : (long)strlen(bol)), bol);
			free(out);
			return B_UNAVAILABLE;
		}
		fprintf(stderr, "shimcheck boot: kvm: the boot kernel never ran (status %d%s%s)\n", pr.status,
			pr.timed_out ? ", timed out: a slow KVM may need a longer --timeout" : "", w.qmp_failed ? ", no QMP" : "");
		show_tail(path, 20);
		free(out);
		return B_INTERNAL;
	}
	free(out);
	if (kp.kernel_error) {
		fprintf(stderr, "shimcheck boot: the boot kernel refused the image: %s\n", kp.message);
		return B_INPUT;
	}
	if (kp.kernel_fault) {
		uint64_t vec = kp.fault.v[F_VECTOR], eip = kp.fault.v[F_EIP];
		if (strcmp(accel, "kvm") == 0 && vec == 13 && eip >= KERNEL_ENTER && eip < KERNEL_ENTER + 0x19) {
			/* The kernel checked CPUID for what the image's CR4/EFER need; a #GP here is this
			 * KVM refusing the paging mode itself (docs/hardware.md: PVM runs no 32-bit
			 * paging outside long mode). No image can run. */
			bool pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
			fprintf(stderr, "shimcheck boot: kvm: this KVM refuses the images' paging: #GP at 0x%" PRIx64 " in kernel_enter, "
				"%s; no 32-bit paging mode runs here%s; engine unavailable (the guest saw %s; %s)\n",
				eip, kernel_enter_insn((uint32_t)eip),
				pvm ? " (/dev/kvm is served by kvm_pvm, which pages only in long mode)" : "", ei->cpu, ei->cpu_note);
			return B_UNAVAILABLE;
		}
		fprintf(stderr, "shimcheck boot: the boot kernel faulted: %s\n", kp.message);
		return B_INTERNAL;
	}
	int l = last_started(jobs, n);
	if (l < 0) {
		fprintf(stderr, "shimcheck boot: kvm: the boot kernel started no image (status %d)\n", pr.status);
		show_tail(path, 20);
		return B_INTERNAL;
	}
	if (jobs_close(jobs, l, ei->boots, n, pr.secs)) {
		struct img_run *r = &jobs[l].r;
		struct obs *o;
		if (w.triple && (o = obs_add(&r->obs, O_SHUTDOWN))) {
			if (w.regs.ok)
				obs_set(o, F_EIP, w.regs.lin);
			snprintf(o->note, sizeof o->note,
				 "KVM: triple fault (QMP SHUTDOWN, reason %s); EIP of the paused vCPU%s; which exception began the "
				 "chain KVM does not say", w.q.reason, w.regs.ok ? "" : " not readable");
		} else if (w.trap && (o = obs_add(&r->obs, O_TRAP))) {
			obs_set(o, F_HANDLER, w.handler);
			r->frame_known = w.frame_known;
			memcpy(r->frame, w.frame, sizeof r->frame);
			snprintf(o->note, sizeof o->note, "KVM: the vCPU was in %s (EIP 0x%" PRIx32 ", sample %d%s)",
				 trap_name(&jobs[l].traps, w.handler), w.regs.lin, w.samples + 1, w.regs.halted ? ", halted" : "");
		} else if (pr.timed_out && (o = obs_add(&r->obs, O_TIMEOUT))) {
			if (w.sampled)
				snprintf(o->note, sizeof o->note, "no end after %.0f s; the vCPU was last seen at EIP 0x%" PRIx32 ", not in "
					 "a trap routine (%d samples)", bo->timeout, w.regs.lin, w.samples);
			else
				snprintf(o->note, sizeof o->note, "no end after %.0f s", bo->timeout);
		} else if ((o = obs_add(&r->obs, O_STOPPED))) {
			snprintf(o->note, sizeof o->note, "QEMU (KVM) stopped with status %d before the end", pr.status);
		}
	}
	*finished = l + 1;
	return B_OK;
}
