/*
 * boot_engine.c: running the boot kernel on QEMU (TCG, its own multiboot loader) or Bochs
 * (a GRUB ISO from mkiso.sh) with one image or several (a batch: the kernel runs them one
 * after the other), and reading back, per image, what the kernel printed and how the run
 * ended.
 *
 * How a run that does not reach the kernel's end ends, and how we know:
 *   trap      the image's trap routine (monitor_trap, host_trap: HLT loops; __shim_nmi) was
 *             reached. QEMU logs executions of them (-d exec -dfilter); Bochs stops at a
 *             debugger breakpoint on them. The engine is stopped right there.
 *   shutdown  a triple fault: QEMU -no-reboot exits and its -d int log says "Triple fault";
 *             Bochs (reset_on_triple_fault=0) panics "exception with no resolution".
 *   timeout   none of these before --timeout.
 * QEMU's -d int log also gives, per image (each arrival at kernel_enter is logged and
 * marks where an image starts), the chain of exceptions the image raised.
 */
#define _GNU_SOURCE /* setpgid */
#include "boot_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QEMU_LOG_CAP (32u << 20)     /* an exception storm: stop QEMU when its log gets this big */
#define BATCH_MAX 100                /* modules per boot (the kernel takes 128) */

#define BOCHS_BIOS "/usr/share/bochs/BIOS-bochs-latest"
#define BOCHS_VGA "/usr/share/vgabios/vgabios.bin"

/* ---- running programs ------------------------------------------------------------------------- */

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* argv in the background, in cwd, stdin /dev/null, stdout+stderr into out_path, in a process
 * group of its own (reap_bg kills that group). -1: it could not be forked. */
pid_t spawn_bg(char *const argv[], const char *cwd, const char *out_path)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
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
	return pid;
}

/* After a boot that ran jobs[0..l]: every job that ran gets the boot's number, image count
 * and time; the ones before the last that have no end get "went on without an end". True
 * when job l still needs its end from the engine (it has none, and no kernel error). */
bool jobs_close(struct job *jobs, int l, int boot, int n, double secs)
{
	for (int i = 0; i <= l; i++) {
		struct img_run *r = &jobs[i].r;
		r->boot = boot;
		r->boot_images = n;
		r->secs = secs;
		struct obs *o;
		if (i < l && !obs_ends(&r->obs) && !r->kernel_error && (o = obs_add(&r->obs, O_STOPPED)))
			snprintf(o->note, sizeof o->note, "the kernel went on to the next image without an end");
	}
	return !obs_ends(&jobs[l].r.obs) && !jobs[l].r.kernel_error;
}

/* Run argv in cwd with stdin from /dev/null and stdout+stderr into out_path, in its own
 * process group so that a timeout (or poll) can kill it and whatever it started (and
 * nothing else). Returns false when it could not be started. */
bool run(char *const argv[], const char *cwd, const char *out_path, double timeout, struct proc *r, poll_fn poll,
	 void *ctx)
{
	memset(r, 0, sizeof *r);
	double t0 = now_s();
	pid_t pid = spawn_bg(argv, cwd, out_path);
	if (pid < 0)
		return false;
	int st = 0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return false;
		bool stop = poll && poll(ctx);
		if (stop || now_s() - t0 > timeout) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			r->stopped = stop;
			r->timed_out = !stop;
			break;
		}
		struct timespec d = {0, 2 * 1000 * 1000};
		nanosleep(&d, NULL);
	}
	r->secs = now_s() - t0;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return r->status != 127 || r->timed_out || r->stopped;
}


/* Wait up to grace seconds for a spawn_bg'd program to end by itself, then kill its group. */
void reap_bg(pid_t pid, double grace)
{
	if (pid <= 0)
		return;
	double t0 = now_s();
	while (now_s() - t0 < grace) {
		pid_t w = waitpid(pid, NULL, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			return;
		struct timespec d = {0, 2 * 1000 * 1000};
		nanosleep(&d, NULL);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The full path of an executable: name itself when it has a slash, else found in PATH. */
bool find_exe(const char *name, char *out, size_t n)
{
	if (strchr(name, '/')) {
		/* absolute: the programs run in the scratch directory, where a relative path
		 * (SHIMCHECK_QEMU=./my-qemu) would name nothing */
		char abs[PATH_MAX];
		if (!realpath(name, abs))
			return false;
		snprintf(out, n, "%s", abs);
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

bool find_qemu_gdb(const char *mode, char *qemu, char *gdb)
{
	const char *want = getenv("SHIMCHECK_QEMU") ? getenv("SHIMCHECK_QEMU") : "qemu-system-i386";
	const char *gwant = getenv("SHIMCHECK_GDB") ? getenv("SHIMCHECK_GDB") : "gdb";
	bool have_q = find_exe(want, qemu, PATH_MAX), have_g = find_exe(gwant, gdb, PATH_MAX);
	if (!have_q || !have_g)
		fprintf(stderr, "shimcheck boot: --%s: %s not found (Debian: %s); engine unavailable\n", mode,
			have_q ? gwant : want, have_q ? "gdb" : "qemu-system-x86");
	return have_q && have_g;
}

char *slurp(const char *path, size_t *len)
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
void show_tail(const char *path, int lines)
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

/* ---- what the kernel prints ------------------------------------------------------------------- */

/* The last image the kernel started in this boot (-1: none). */
int last_started(const struct job *jobs, int n)
{
	int l = -1;
	for (int i = 0; i < n; i++)
		if (jobs[i].r.started)
			l = i;
	return l;
}

/* ---- QEMU -------------------------------------------------------------------------------------- */

/* Watching QEMU's -d int,exec log while it runs: an execution of a trap routine of the
 * image being run stops it (they halt or loop); so does a log that keeps growing (an
 * exception storm). The image being run: the last image line in the E9 log. */
struct qwatch {
	char e9[PATH_MAX + 32], log[PATH_MAX + 32];
	const struct job *jobs;
	int n;
	long off;          /* how far the log was read */
	int hit_job;       /* -1: none */
	uint32_t hit_at;
	bool returns;      /* the routine hit returns (__shim_nmi): stop at the next exception */
	bool storm;
	/* --nmi: QEMU waits (-S) for gdb on its gdbstub; gdb starts once the socket exists */
	const char *gdb_exe, *gdb_script, *dir;
	char sock[PATH_MAX + 32];
	pid_t gdb_pid;     /* 0: not started yet; -1: could not be */
};

static int current_image(const char *e9path)
{
	char *s = slurp(e9path, NULL);
	if (!s)
		return -1;
	int cur = -1;
	for (char *p = s; (p = strstr(p, "{\"type\":\"image\",\"index\":\"0x")); p++)
		cur = (int)strtol(p + strlen("{\"type\":\"image\",\"index\":\"0x"), NULL, 16);
	free(s);
	return cur;
}

static bool qemu_poll(void *ctx)
{
	struct qwatch *w = ctx;
	struct stat st;
	if (w->gdb_script && w->gdb_pid == 0 && access(w->sock, F_OK) == 0) {
		char out[PATH_MAX + 32];
		char *argv[] = {(char *)w->gdb_exe, "-batch", "-nx", "-x", (char *)w->gdb_script, NULL};
		snprintf(out, sizeof out, "%s/gdb.out", w->dir);
		w->gdb_pid = spawn_bg(argv, w->dir, out);
		if (w->gdb_pid < 0)
			return true; /* QEMU would wait for ever: stop it, gdb.out says nothing */
	}
	if (stat(w->log, &st) != 0 || st.st_size <= w->off)
		return false;
	if ((unsigned long long)st.st_size > QEMU_LOG_CAP) {
		w->storm = true;
		return true;
	}
	FILE *f = fopen(w->log, "rb");
	if (!f)
		return false;
	bool stop = false;
	char line[512];
	if (fseek(f, w->off, SEEK_SET) == 0) {
		while (!stop && fgets(line, sizeof line, f)) {
			size_t len = strlen(line);
			if (len == 0 || line[len - 1] != '\n')
				break; /* a line still being written: read it next time */
			w->off += (long)len;
			uint32_t at;
			if (w->returns) {
				/* __shim_nmi IRETs: what its way back does is the next exception */
				unsigned vec, err, isint;
				char *v = strstr(line, " v=");
				if (v && sscanf(v, " v=%x e=%x i=%u", &vec, &err, &isint) == 3 && isint == 0)
					stop = true;
				continue;
			}
			if (strncmp(line, "Trace ", 6) != 0 || !trace_addr(line, &at) || at == KERNEL_ENTER)
				continue;
			int cur = current_image(w->e9);
			const char *name = cur >= 0 && cur < w->n ? trap_name(&w->jobs[cur].traps, at) : NULL;
			if (name) {
				w->hit_job = cur;
				w->hit_at = at;
				w->returns = strncmp(name, "__shim_nmi", 10) == 0;
				stop = !w->returns;
			}
		}
	}
	fclose(f);
	return stop;
}

/* The exception chains of QEMU's -d int log (boot_log.c reads them). */
static void qemu_chains(const char *log, struct job *jobs, int n)
{
	char *s = slurp(log, NULL);
	if (s)
		qemu_chains_text(s, jobs, n);
	free(s);
}

static void chain_to_obs(const struct img_run *r, struct obs *o)
{
	if (!r->chain_known || r->nchain == 0)
		return;
	const struct exc *e = &r->chain[0];
	obs_set(o, F_VECTOR, e->vec);
	obs_set(o, F_ERROR, e->err);
	obs_set(o, F_EIP, e->pc);
	if (e->vec == 14 && e->has_cr2)
		obs_set(o, F_CR2, e->cr2);
}

/* Memory for a boot: the largest window end and every module above it (the kernel's batch
 * staging), with room; never less than the default. */
unsigned megs_for(const char *dir, const struct job *jobs, int n, unsigned floor)
{
	uint64_t top = 16u << 20, mods = 0;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX + 96];
		snprintf(path, sizeof path, "%s/%s", dir, jobs[i].image);
		FILE *f = fopen(path, "rb");
		uint8_t h[40];
		if (f && fread(h, 1, sizeof h, f) == sizeof h) {
			uint64_t base = 0, size = 0;
			memcpy(&base, h + 16, 8);
			memcpy(&size, h + 24, 8);
			if (base + size > top)
				top = base + size;
		}
		if (f) {
			fseek(f, 0, SEEK_END);
			mods += (uint64_t)ftell(f) + 4096;
			fclose(f);
		}
	}
	uint64_t need = (top + 2 * mods + (8u << 20)) >> 20;
	unsigned m = floor;
	while (m < need && m < 2048)
		m *= 2;
	return m;
}

char *qemu_initrd(const struct job *jobs, int n)
{
	size_t cap = (size_t)n * 96 + 16, len = 0;
	char *initrd = malloc(cap);
	if (!initrd)
		return NULL;
	initrd[0] = '\0';
	for (int i = 0; i < n; i++) {
		len += (size_t)snprintf(initrd + len, cap - len, "%s%s", i ? "," : "", jobs[i].image);
		if (jobs[i].has_dr0)
			len += (size_t)snprintf(initrd + len, cap - len, " dr0=0x%08" PRIx32, jobs[i].dr0);
	}
	return initrd;
}

void qemu_version(const char *exe, const char *dir, struct engine_info *ei)
{
	char path[PATH_MAX + 32];
	if (ei->version[0])
		return;
	char *argv[] = {(char *)exe, "--version", NULL};
	struct proc pr;
	snprintf(path, sizeof path, "%s/qemu-version.txt", dir);
	if (run(argv, dir, path, 10, &pr, NULL, NULL) && pr.status == 0) {
		char *v = slurp(path, NULL);
		if (v) {
			v[strcspn(v, "\n")] = '\0';
			snprintf(ei->version, sizeof ei->version, "%s", v);
		}
		free(v);
	}
}

static int qemu_once(const struct boot_opts *bo, const char *dir, const char *kernel, struct job *jobs, int n,
		     struct engine_info *ei, int *finished)
{
	char exe[PATH_MAX];
	const char *want = getenv("SHIMCHECK_QEMU") ? getenv("SHIMCHECK_QEMU") : "qemu-system-i386";
	if (!find_exe(want, exe, sizeof exe)) {
		fprintf(stderr, "shimcheck boot: %s: not found (Debian: qemu-system-x86); engine unavailable\n", want);
		return B_UNAVAILABLE;
	}
	char path[PATH_MAX + 32];
	qemu_version(exe, dir, ei);
	char *initrd = qemu_initrd(jobs, n), *filter = malloc((size_t)n * MAX_TRAPS * 16 + 32);
	if (!initrd || !filter) {
		free(initrd);
		free(filter);
		return B_INTERNAL;
	}
	/* -dfilter: QEMU's exec log shows only kernel_enter (an image starts) and the trap
	 * routines of every image in the boot. */
	size_t fl = (size_t)sprintf(filter, "0x%x+1", KERNEL_ENTER);
	for (int i = 0; i < n; i++)
		for (int k = 0; k < jobs[i].traps.n; k++) {
			char one[24];
			snprintf(one, sizeof one, ",0x%" PRIx32 "+1", jobs[i].traps.lin[k]);
			if (!strstr(filter, one))
				fl += (size_t)sprintf(filter + fl, "%s", one);
		}
	char mem[16];
	snprintf(mem, sizeof mem, "%u", megs_for(dir, jobs, n, 128));
	/* -kernel/-initrd: QEMU's own multiboot loader (no firmware boot menu, ~0.2 s). One
	 * pinned CPU model (Unicorn runs UC_CPU_X86_PENRYN). -d int,cpu_reset: the exception
	 * chains and "Triple fault"; exec (filtered): where images start, trap routines. */
	/* --nmi (bo->gdb_script): stopped at the first instruction (-S), its gdbstub on a Unix
	 * socket in the scratch directory, for the gdb that qemu_poll starts */
	static struct qwatch w;
	memset(&w, 0, sizeof w);
	char gdbarg[PATH_MAX + 64];
	snprintf(w.sock, sizeof w.sock, "%s/gdb.sock", dir);
	snprintf(gdbarg, sizeof gdbarg, "unix:%s,server=on,wait=off", w.sock);
	char *argv[] = {exe, "-accel", "tcg", "-cpu", "Penryn", "-m", mem, "-nodefaults", "-display", "none",
			"-no-reboot", "-monitor", "none", "-kernel", (char *)kernel, "-initrd", initrd,
			"-debugcon", "file:e9.log", "-serial", "file:com1.log",
			"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-d", "int,cpu_reset,exec", "-dfilter", filter,
			"-D", "qemu-int.log", bo->gdb_script ? "-gdb" : NULL, gdbarg, "-S", NULL};
	if (bo->gdb_script) {
		unlink(w.sock);
		w.gdb_exe = bo->gdb_exe;
		w.gdb_script = bo->gdb_script;
		w.dir = dir;
	}
	snprintf(w.e9, sizeof w.e9, "%s/e9.log", dir);
	snprintf(w.log, sizeof w.log, "%s/qemu-int.log", dir);
	unlink(w.e9);
	unlink(w.log);
	w.jobs = jobs;
	w.n = n;
	w.hit_job = -1;
	struct proc pr;
	snprintf(path, sizeof path, "%s/qemu.out", dir);
	bool ran = run(argv, dir, path, bo->timeout, &pr, qemu_poll, &w);
	free(initrd);
	free(filter);
	/* gdb ends when QEMU closes the connection; a second is plenty */
	reap_bg(w.gdb_pid, 1.0);
	if (bo->gdb_script && w.gdb_pid <= 0) {
		fprintf(stderr, "shimcheck boot: %s: %s\n", bo->gdb_exe,
			w.gdb_pid < 0 ? "cannot run it" : "QEMU made no gdbstub socket");
		show_tail(path, 10);
		return B_INTERNAL;
	}
	if (!ran) {
		fprintf(stderr, "shimcheck boot: %s: cannot run it\n", exe);
		return B_INTERNAL;
	}
	ei->boots++;
	ei->secs += pr.secs;

	struct kparse kp = {.ei = ei, .jobs = jobs, .n = n, .cur = -1};
	char *e9 = slurp(w.e9, NULL);
	if (e9)
		parse_kernel_lines(e9, &kp);
	free(e9);
	if (!ei->booted) {
		fprintf(stderr, "shimcheck boot: qemu: the boot kernel never ran (status %d%s)\n", pr.status,
			pr.timed_out ? ", timed out" : "");
		show_tail(path, 20);
		return B_INTERNAL;
	}
	if (kp.kernel_error) {
		fprintf(stderr, "shimcheck boot: the boot kernel refused the image: %s\n", kp.message);
		return B_INPUT;
	}
	if (kp.kernel_fault) {
		fprintf(stderr, "shimcheck boot: the boot kernel faulted: %s\n", kp.message);
		return B_INTERNAL;
	}
	qemu_chains(w.log, jobs, n);
	int l = last_started(jobs, n);
	if (l < 0) {
		fprintf(stderr, "shimcheck boot: qemu: the boot kernel started no image (status %d)\n", pr.status);
		show_tail(path, 20);
		return B_INTERNAL;
	}
	/* The log decides; QEMU's status (from isa-debug-exit) only confirms it. A mismatch
	 * means the stream lost something: say so, the comparison will show what. */
	const struct obs *last = obs_last(&jobs[l].r.obs);
	int expect = n > 1 ? (kp.done ? QEMU_EXIT_OK : -1)
		     : jobs[l].r.kernel_error		 ? QEMU_EXIT_KERNEL
		     : last && last->kind == O_END	 ? QEMU_EXIT_OK
		     : last && last->kind == O_EXCEPTION ? QEMU_EXIT_FAULT
							 : -1;
	if (expect >= 0 && !pr.timed_out && !pr.stopped && pr.status != expect)
		fprintf(stderr, "shimcheck boot: qemu: exit status %d, but its log ends as if it were %d\n", pr.status, expect);
	if (jobs_close(jobs, l, ei->boots, n, pr.secs)) {
		struct img_run *r = &jobs[l].r;
		struct obs *o;
		if (w.hit_job == l || r->handler) {
			/* The log is what decides (the poll may have been too slow to stop QEMU there:
			 * __shim_nmi, for one, returns, and what follows can end in a triple fault). */
			uint32_t at = r->handler ? r->handler : w.hit_at;
			if ((o = obs_add(&r->obs, O_TRAP))) {
				obs_set(o, F_HANDLER, at);
				chain_to_obs(r, o);
				if (r->ext_irq >= 0)
					snprintf(o->note, sizeof o->note, "QEMU executed %s; the chain began with an external interrupt, vector 0x%02x",
						 trap_name(&jobs[l].traps, at), r->ext_irq);
				else
					snprintf(o->note, sizeof o->note, "QEMU executed %s (exec log)%s; the first exception after kernel_enter from -d int",
						 trap_name(&jobs[l].traps, at), r->triple ? ", then a triple fault" : "");
			}
		} else if (w.storm) {
			if ((o = obs_add(&r->obs, O_TIMEOUT)))
				snprintf(o->note, sizeof o->note, "an exception storm: QEMU's log passed %u MiB (%d exceptions)",
					 QEMU_LOG_CAP >> 20, r->chain_total);
		} else if (pr.timed_out) {
			if ((o = obs_add(&r->obs, O_TIMEOUT)))
				snprintf(o->note, sizeof o->note, "no end after %.0f s", bo->timeout);
		} else if (r->triple) {
			if ((o = obs_add(&r->obs, O_SHUTDOWN))) {
				chain_to_obs(r, o);
				if (r->ext_irq >= 0)
					snprintf(o->note, sizeof o->note,
						 "QEMU: triple fault; the chain began with an external interrupt, vector 0x%02x", r->ext_irq);
				else
					snprintf(o->note, sizeof o->note, "QEMU: triple fault (first exception of the chain from -d int)");
			}
		} else if ((o = obs_add(&r->obs, O_STOPPED))) {
			snprintf(o->note, sizeof o->note, "QEMU stopped with status %d before the end", pr.status);
		}
	}
	*finished = l + 1;
	return B_OK;
}

/* ---- Bochs ------------------------------------------------------------------------------------- */

/* Write bochsrc and run Bochs once; its stdout+stderr go to bochs.out (bochs-debug.out with
 * debug). debug: also log the CPU's debug messages, which name every exception and its
 * error code (slower: only to explain a triple fault). */
static bool bochs_run(const struct boot_opts *bo, const char *dir, const char *unshare, const char *ns, const char *exe,
		      unsigned megs, bool debug, struct proc *pr)
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
	 * to the rc file's next command. clock sync=none and no sound: faster. */
	fprintf(f, "megs: %u\n"
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
		megs, BOCHS_BIOS, BOCHS_VGA, debug ? "bochs-debug.log" : "bochs.log",
		debug ? "debug: action=ignore, cpu0=report\n" : "");
	if (fclose(f) != 0)
		return false;
	char *argv[] = {(char *)unshare, (char *)ns, (char *)exe, "-q", "-f", (char *)rc, "-rc", "bochs.rc", NULL};
	snprintf(path, sizeof path, "%s/%s", dir, debug ? "bochs-debug.out" : "bochs.out");
	if (!run(argv, dir, path, bo->timeout, pr, NULL, NULL)) {
		fprintf(stderr, "shimcheck boot: %s: cannot run it\n", exe);
		return false;
	}
	return true;
}

/* Bochs's CPU debug log (boot_log.c reads it). */
static void bochs_first_exception(const char *log, struct obs *o)
{
	char *s = slurp(log, NULL);
	if (s)
		bochs_first_exception_text(s, o);
	free(s);
}

/* Bochs's binary, its ROMs, and the way to hide its rfb port; B_OK or a status (said). */
static char bochs_exe[PATH_MAX], bochs_unshare[PATH_MAX];
static const char *bochs_ns;

static int bochs_setup(const char *dir)
{
	char path[PATH_MAX + 32];
	const char *want = getenv("SHIMCHECK_BOCHS") ? getenv("SHIMCHECK_BOCHS") : "bochs";
	if (!find_exe(want, bochs_exe, sizeof bochs_exe)) {
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
	if (!bochs_ns) {
		if (!find_exe("unshare", bochs_unshare, sizeof bochs_unshare)) {
			fprintf(stderr, "shimcheck boot: bochs: unshare not found (Debian: util-linux): Bochs's rfb port cannot be isolated\n");
			return B_INTERNAL;
		}
		snprintf(path, sizeof path, "%s/unshare.out", dir);
		const char *flags[] = {"-n", "-rn"};
		for (int i = 0; i < 2 && !bochs_ns; i++) {
			char *argv[] = {bochs_unshare, (char *)flags[i], "true", NULL};
			struct proc pr;
			if (run(argv, dir, path, 10, &pr, NULL, NULL) && pr.status == 0)
				bochs_ns = flags[i];
		}
		if (!bochs_ns) {
			fprintf(stderr, "shimcheck boot: bochs: neither `unshare -n` nor `unshare -rn` works here: "
				"Bochs's rfb port cannot be isolated, not running it\n");
			show_tail(path, 5);
			return B_INTERNAL;
		}
	}
	return B_OK;
}

/* Bochs cannot load a multiboot ELF itself: GRUB on an ISO (dir/boot.iso) does, one module
 * line per image (with its arguments). */
static int bochs_iso(const char *dir, const char *kernel, const struct job *jobs, int n, struct engine_info *ei)
{
	char mkiso[PATH_MAX], path[PATH_MAX + 32];
	snprintf(mkiso, sizeof mkiso, "%s", getenv("SHIMCHECK_BOOT_MKISO") ? getenv("SHIMCHECK_BOOT_MKISO") : SHIMCHECK_BOOT_MKISO);
	char **iso_argv = calloc((size_t)n + 8, sizeof *iso_argv);
	char *mods = calloc((size_t)n, 96);
	if (!iso_argv || !mods) {
		free(iso_argv);
		free(mods);
		return B_INTERNAL;
	}
	int k = 0;
	iso_argv[k++] = "/bin/sh";
	iso_argv[k++] = mkiso;
	iso_argv[k++] = "-o";
	iso_argv[k++] = "boot.iso";
	iso_argv[k++] = (char *)kernel;
	for (int i = 0; i < n; i++) {
		char *m = mods + 96 * i;
		if (jobs[i].has_dr0)
			snprintf(m, 96, "%s dr0=0x%08" PRIx32, jobs[i].image, jobs[i].dr0);
		else
			snprintf(m, 96, "%s", jobs[i].image);
		iso_argv[k++] = m;
	}
	iso_argv[k] = NULL;
	struct proc pr;
	snprintf(path, sizeof path, "%s/mkiso.out", dir);
	bool iso_ok = run(iso_argv, dir, path, 60, &pr, NULL, NULL) && pr.status == 0 && !pr.timed_out;
	free(iso_argv);
	free(mods);
	if (!iso_ok) {
		fprintf(stderr, "shimcheck boot: bochs: building the GRUB ISO failed (%s)\n", mkiso);
		show_tail(path, 20);
		return B_INTERNAL;
	}
	ei->prep_secs += pr.secs;
	return B_OK;
}

/* One Bochs boot of one image driven by the debugger script rc (boot_step.c's --step):
 * its output, both streams, in dir/bochs.out. */
int bochs_script(const struct boot_opts *bo, const char *dir, const char *kernel, const struct job *j, const char *rc,
		 struct engine_info *ei, struct proc *pr)
{
	int st = bochs_setup(dir);
	if (st == B_OK)
		st = bochs_iso(dir, kernel, j, 1, ei);
	if (st != B_OK)
		return st;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/bochs.rc", dir);
	FILE *f = fopen(path, "w");
	if (!f || fputs(rc, f) < 0) {
		if (f)
			fclose(f);
		fprintf(stderr, "shimcheck boot: %s: cannot write\n", path);
		return B_INTERNAL;
	}
	if (fclose(f) != 0)
		return B_INTERNAL;
	if (!bochs_run(bo, dir, bochs_unshare, bochs_ns, bochs_exe, megs_for(dir, j, 1, 64), false, pr))
		return B_INTERNAL;
	ei->boots++;
	ei->secs += pr->secs;
	snprintf(path, sizeof path, "%s/bochs.out", dir);
	char *out = slurp(path, NULL);
	char *v = out ? strstr(out, "Bochs x86 Emulator ") : NULL;
	if (v && !ei->version[0])
		snprintf(ei->version, sizeof ei->version, "%.*s", (int)strcspn(v, "\n"), v);
	free(out);
	return B_OK;
}

static int bochs_once(const struct boot_opts *bo, const char *dir, const char *kernel, struct job *jobs, int n,
		      struct engine_info *ei, int *finished, bool *solo)
{
	char path[PATH_MAX + 32];
	int st = bochs_setup(dir);
	if (st == B_OK)
		st = bochs_iso(dir, kernel, jobs, n, ei);
	if (st != B_OK)
		return st;
	const char *exe = bochs_exe, *unshare = bochs_unshare, *ns = bochs_ns;
	struct proc pr;

	/* The debugger script: a breakpoint on every trap routine of the boot's images, run,
	 * and after a stop (one of them, or the kernel's magic breakpoint at the end) the
	 * stack (the exception frame at a trap routine), then quit. */
	snprintf(path, sizeof path, "%s/bochs.rc", dir);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "shimcheck boot: %s: cannot write\n", path);
		return B_INTERNAL;
	}
	uint32_t seen[BATCH_MAX * MAX_TRAPS];
	int nseen = 0;
	for (int i = 0; i < n; i++)
		for (int t = 0; t < jobs[i].traps.n; t++) {
			bool dup = false;
			for (int s = 0; s < nseen; s++)
				dup |= seen[s] == jobs[i].traps.lin[t];
			if (!dup && nseen < (int)(sizeof seen / sizeof seen[0])) {
				seen[nseen++] = jobs[i].traps.lin[t];
				fprintf(f, "lb 0x%08" PRIx32 "\n", jobs[i].traps.lin[t]);
			}
		}
	fputs("c\nprint-stack 4\nq\n", f);
	if (fclose(f) != 0)
		return B_INTERNAL;

	unsigned megs = megs_for(dir, jobs, n, 64);
	snprintf(path, sizeof path, "%s/com1.log", dir);
	unlink(path);
	if (!bochs_run(bo, dir, unshare, ns, exe, megs, false, &pr))
		return B_INTERNAL;
	ei->boots++;
	ei->secs += pr.secs;
	snprintf(path, sizeof path, "%s/bochs.out", dir);
	char *out = slurp(path, NULL);
	if (out && !ei->version[0]) {
		char *v = strstr(out, "Bochs x86 Emulator ");
		if (v)
			snprintf(ei->version, sizeof ei->version, "%.*s", (int)strcspn(v, "\n"), v);
	}
	/* COM1 is the clean stream; E9 text shares Bochs's stdout with its messages. If COM1
	 * lost its tail (or never worked), the E9 copy on stdout may have more. */
	struct kparse kp = {.ei = ei, .jobs = jobs, .n = n, .cur = -1};
	snprintf(path, sizeof path, "%s/com1.log", dir);
	char *com1 = slurp(path, NULL);
	if (com1)
		parse_kernel_lines(com1, &kp);
	free(com1);
	int l = last_started(jobs, n);
	if (out && (l < 0 || (!obs_ends(&jobs[l].r.obs) && !jobs[l].r.kernel_error)) && !kp.done && !kp.kernel_error &&
	    !kp.kernel_fault) {
		static struct job copy[BATCH_MAX];
		struct engine_info e2 = *ei;
		e2.booted = false;
		for (int i = 0; i < n; i++) {
			copy[i] = jobs[i];
			memset(&copy[i].r, 0, sizeof copy[i].r);
		}
		struct kparse k2 = {.ei = &e2, .jobs = copy, .n = n, .cur = -1};
		char *dup = strdup(out);
		if (dup)
			parse_kernel_lines(dup, &k2);
		free(dup);
		int l2 = last_started(copy, n);
		bool more = l2 > l || (l2 == l && l2 >= 0 && copy[l2].r.obs.n > jobs[l2].r.obs.n) || k2.done ||
			    k2.kernel_error || k2.kernel_fault;
		if (e2.booted && more) {
			for (int i = 0; i < n; i++)
				jobs[i].r = copy[i].r;
			kp = k2;
			kp.ei = ei;
			ei->booted = true;
			memcpy(ei->cpu, e2.cpu, sizeof ei->cpu);
			memcpy(ei->loader, e2.loader, sizeof ei->loader);
			l = l2;
		}
	}
	snprintf(path, sizeof path, "%s/bochs.out", dir);
	if (!ei->booted) {
		fprintf(stderr, "shimcheck boot: bochs: the boot kernel never ran (status %d%s)\n", pr.status,
			pr.timed_out ? ", timed out" : "");
		show_tail(path, 20);
		free(out);
		return B_INTERNAL;
	}
	if (kp.kernel_error || kp.kernel_fault) {
		fprintf(stderr, "shimcheck boot: the boot kernel %s: %s\n", kp.kernel_error ? "refused the image" : "faulted",
			kp.message);
		free(out);
		return kp.kernel_error ? B_INPUT : B_INTERNAL;
	}
	if (l < 0) {
		fprintf(stderr, "shimcheck boot: bochs: the boot kernel started no image (status %d)\n", pr.status);
		show_tail(path, 20);
		free(out);
		return B_INTERNAL;
	}
	*finished = l + 1;
	*solo = false;
	if (jobs_close(jobs, l, ei->boots, n, pr.secs)) {
		struct img_run *r = &jobs[l].r;
		struct obs *o;
		uint32_t at = 0;
		if (out && bochs_breakpoint(out, &at, r->frame, &r->frame_known)) {
			if (!trap_name(&jobs[l].traps, at)) {
				/* another image's trap routine: this one again, alone */
				memset(r, 0, sizeof *r);
				*finished = l;
				*solo = true;
			} else if ((o = obs_add(&r->obs, O_TRAP))) {
				obs_set(o, F_HANDLER, at);
				snprintf(o->note, sizeof o->note, "Bochs stopped at its breakpoint on %s", trap_name(&jobs[l].traps, at));
			}
		} else if (pr.timed_out) {
			if ((o = obs_add(&r->obs, O_TIMEOUT)))
				snprintf(o->note, sizeof o->note, "no end after %.0f s", bo->timeout);
		} else if ((o = obs_add(&r->obs, O_SHUTDOWN))) {
			if (!out || !bochs_triple_fault(out, o)) {
				o->kind = O_STOPPED;
				snprintf(o->note, sizeof o->note, "Bochs stopped with status %d before the end", pr.status);
				show_tail(path, 10);
			} else {
				/* Bochs names the exceptions only in its CPU debug log: run the same
				 * (deterministic) boot once more with it, to learn the first one. */
				struct proc p2;
				char log[PATH_MAX + 32];
				snprintf(log, sizeof log, "%s/bochs-debug.log", dir);
				if (bochs_run(bo, dir, unshare, ns, exe, megs, true, &p2) && !p2.timed_out)
					bochs_first_exception(log, o);
				ei->secs += p2.secs;
			}
		}
	}
	free(out);
	return B_OK;
}

/* ---- the batch driver ------------------------------------------------------------------------------ */

int boot_jobs(const struct boot_opts *bo, const char *dir, const char *kernel, struct job *jobs, int n,
	      struct engine_info *ei)
{
	bool qemu = strcmp(bo->engine, "qemu") == 0, kvm = strcmp(bo->engine, "kvm") == 0;
	ei->engine = bo->engine;
	for (int i = 0; i < n; i++)
		memset(&jobs[i].r, 0, sizeof jobs[i].r);
	int start = 0;
	bool solo = bo->no_batch;
	while (start < n) {
		int cnt = solo ? 1 : n - start;
		if (cnt > BATCH_MAX)
			cnt = BATCH_MAX;
		for (int i = start; i < start + cnt; i++)
			memset(&jobs[i].r, 0, sizeof jobs[i].r);
		int done = 0;
		bool again_solo = false;
		int rc = kvm	? kvm_once(bo, dir, kernel, jobs + start, cnt, ei, &done)
			 : qemu ? qemu_once(bo, dir, kernel, jobs + start, cnt, ei, &done)
				: bochs_once(bo, dir, kernel, jobs + start, cnt, ei, &done, &again_solo);
		if (rc != B_OK)
			return rc;
		if (done <= 0 && !again_solo) {
			fprintf(stderr, "shimcheck boot: %s: no progress with image %d\n", bo->engine, start);
			return B_INTERNAL;
		}
		start += done;
		solo = bo->no_batch || again_solo;
	}
	return B_OK;
}
