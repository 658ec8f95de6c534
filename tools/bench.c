/*
 * bench.c: `shimcheck bench`: how fast the checker runs, on this machine, in one run.
 *
 *   raw      the same round trips in Unicorn with no hooks at all (the engine floor)
 *   hooked   the same with a code hook and a memory hook that do nothing: what observing
 *            every instruction and access through Unicorn's hooks costs by itself
 *   counted  the recording engine with recording off: its hooks only count instructions and
 *            note written pages, as every bounded run needs
 *   checked  full recording and every checker
 *   cold     a fresh engine each time (uc_open, map, load, run, check, close)
 *
 * Each figure is the median of several timed batches of one round trip set.
 */
#include "bench.h"

#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median microseconds per call of fn over batches filling about `seconds`. */
static double time_us(double seconds, int (*fn)(struct pipeline *), struct pipeline *p, long *calls)
{
	enum { BATCHES = 9 };
	double per[BATCHES];
	long total = 0;
	/* calibrate: how many calls fit in seconds/BATCHES */
	long n = 1;
	for (;;) {
		double t0 = now_s();
		for (long i = 0; i < n; i++)
			if (fn(p) != 0)
				return -1;
		double dt = now_s() - t0;
		total += n;
		if (dt > seconds / BATCHES / 4 || n > (1L << 24))
			break;
		n *= 2;
	}
	long per_batch = n * 4 > 0 ? n * 4 : 1;
	for (int b = 0; b < BATCHES; b++) {
		double t0 = now_s();
		for (long i = 0; i < per_batch; i++)
			if (fn(p) != 0)
				return -1;
		per[b] = (now_s() - t0) * 1e6 / (double)per_batch;
		total += per_batch;
	}
	qsort(per, BATCHES, sizeof per[0], cmp_d);
	if (calls)
		*calls = total;
	return per[BATCHES / 2];
}

static int counted_once(struct pipeline *p)
{
	struct run_limits lim = {0, 0, false};
	return engine_run(p->eng, &p->t, &lim) && p->t.end == END_DONE ? 0 : 1;
}

/* The floor: engines with no hooks and with empty hooks (engine_open_bare) on the same
 * image, restoring the pages the recorded run wrote. */
static struct engine *bare_eng[2];
static struct trace bare_t;

static int bare_run(int k)
{
	struct run_limits lim = {0, 0, false};
	return engine_run(bare_eng[k], &bare_t, &lim) && bare_t.end == END_DONE ? 0 : 1;
}

static int raw_once(struct pipeline *p)
{
	(void)p;
	return bare_run(0);
}

static int hooked_once(struct pipeline *p)
{
	(void)p;
	return bare_run(1);
}

static void bare_close(void)
{
	for (int k = 0; k < 2; k++) {
		if (bare_eng[k])
			engine_close(bare_eng[k]);
		bare_eng[k] = NULL;
	}
	trace_free(&bare_t);
}

/* Open and load the floor engines for p's image (p has just run it recorded). */
static bool bare_setup(struct pipeline *p, char *err, size_t n)
{
	static uint64_t pages[4096];
	uint32_t np = 0;
	for (uint32_t i = 0; i < p->t.nmem; i++) {
		const struct tr_mem *m = &p->t.mem[i];
		if (!m->write)
			continue;
		for (uint64_t pg = m->pa & ~(uint64_t)0xFFF; pg <= ((m->pa + m->size - 1) & ~(uint64_t)0xFFF); pg += 0x1000) {
			bool seen = false;
			for (uint32_t k = 0; k < np && !seen; k++)
				seen = pages[k] == pg;
			if (!seen && np < sizeof pages / sizeof pages[0])
				pages[np++] = pg;
		}
	}
	trace_init(&bare_t);
	for (int k = 0; k < 2; k++) {
		bare_eng[k] = engine_open_bare(k == 1, err, n);
		if (!bare_eng[k] || !engine_load(bare_eng[k], &p->img, err, n))
			return false;
		engine_bare_pages(bare_eng[k], pages, np);
		if (bare_run(k) != 0 || bare_run(k) != 0) {
			snprintf(err, n, "the run %s did not reach host_done: %s", k ? "with empty hooks" : "without hooks",
				 bare_t.end_detail);
			return false;
		}
	}
	return true;
}

static int checked_once(struct pipeline *p)
{
	return pl_run(p) == PL_OK ? 0 : 1;
}

static int cold_once(struct pipeline *p)
{
	engine_close(p->eng);
	p->eng = NULL;
	p->loaded = false;
	return pl_run(p) == PL_OK ? 0 : 1;
}

/* One QEMU boot of the same scenario, in microseconds per round trip (0: not measurable
 * here: no boot harness or no QEMU). */
static double bench_qemu_us(struct pipeline *p, const char *scenario_path, uint32_t rounds)
{
	char exe[1024], cmd[4096];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k <= 0 || access("/usr/bin/qemu-system-i386", X_OK) != 0)
		return 0;
	exe[k] = '\0';
	snprintf(cmd, sizeof cmd, "'%s' boot --engine qemu --code-dir '%s' --scenario '%s' > /dev/null 2>&1", exe,
		 p->code.dir, scenario_path);
	double t0 = now_s();
	int st = system(cmd);
	double dt = now_s() - t0;
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 0;
	return dt * 1e6 / rounds;
}

static long rss_mib(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return ru.ru_maxrss / 1024;
}

/* raw and hooked, timed in a child process, so that the floor engines' memory does not
 * count in this process's peak (nor in the fuzz jobs forked from it later). */
static bool floor_in_child(struct pipeline *p, double share, double *raw, double *hk, long *nraw, long *nhk, char *err,
			   size_t n)
{
	struct floor_result {
		bool ok;
		double raw, hk;
		long nraw, nhk;
		char err[200];
	} r = {0};
	int fd[2];
	if (pipe(fd) != 0) {
		snprintf(err, n, "pipe: %s", strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, n, "fork: %s", strerror(errno));
		close(fd[0]);
		close(fd[1]);
		return false;
	}
	if (pid == 0) {
		close(fd[0]);
		r.ok = bare_setup(p, r.err, sizeof r.err);
		if (r.ok) {
			r.raw = time_us(share, raw_once, p, &r.nraw);
			r.hk = time_us(share, hooked_once, p, &r.nhk);
			r.ok = r.raw > 0 && r.hk > 0;
			if (!r.ok)
				snprintf(r.err, sizeof r.err, "a timed run did not reach host_done: %s", bare_t.end_detail);
		}
		bare_close();
		ssize_t w = write(fd[1], &r, sizeof r);
		_exit(w == (ssize_t)sizeof r ? 0 : 3);
	}
	close(fd[1]);
	ssize_t got = read(fd[0], &r, sizeof r);
	close(fd[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	if (got != (ssize_t)sizeof r || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, n, "the measuring process failed");
		return false;
	}
	if (!r.ok) {
		snprintf(err, n, "%s", r.err);
		return false;
	}
	*raw = r.raw, *hk = r.hk, *nraw = r.nraw, *nhk = r.nhk;
	return true;
}

int bench_run(struct pipeline *p, double seconds, const char *scenario_path)
{
	if (pl_run(p) != PL_OK) {
		fprintf(stderr, "shimcheck bench: the scenario does not pass, nothing to time: %s\n", p->err);
		return 1;
	}
	double share = seconds / 5;
	long nraw = 0, nhk = 0, ncnt = 0, nchk = 0, ncold = 0;
	/* SHIMCHECK_BENCH_ONLY=raw|hooked|counted|checked|cold times one measure alone (for a profiler). */
	const char *only = getenv("SHIMCHECK_BENCH_ONLY");
	int (*only_fn)(struct pipeline *) = !only ? NULL
					    : !strcmp(only, "raw")     ? raw_once
					    : !strcmp(only, "hooked")  ? hooked_once
					    : !strcmp(only, "counted") ? counted_once
					    : !strcmp(only, "checked") ? checked_once
					    : !strcmp(only, "cold")    ? cold_once
								       : NULL;
	if (only && !only_fn) {
		fprintf(stderr, "shimcheck bench: SHIMCHECK_BENCH_ONLY: '%s' is not raw, hooked, counted, checked or cold\n",
			only);
		return 2;
	}
	/* SHIMCHECK_BENCH_RUNS=N with SHIMCHECK_BENCH_ONLY: exactly N calls, untimed, so that an
	 * instruction counter (valgrind --tool=callgrind) sees the same work every time. */
	const char *runs = getenv("SHIMCHECK_BENCH_RUNS");
	char berr[256];
	if (only && (only_fn == raw_once || only_fn == hooked_once) && !bare_setup(p, berr, sizeof berr)) {
		fprintf(stderr, "shimcheck bench: the floor engine: %s\n", berr);
		bare_close();
		return 3;
	}
	if (only && runs) {
		long n = strtol(runs, NULL, 10);
		for (long i = 0; i < n; i++)
			if (only_fn(p) != 0) {
				fprintf(stderr, "shimcheck bench: run %ld failed: %s\n", i, p->err);
				bare_close();
				return 3;
			}
		printf("%s: %ld runs\n", only, n);
		bare_close();
		return 0;
	}
	double raw = 0, hk = 0;
	if (only_fn == raw_once || only_fn == hooked_once) {
		raw = only_fn == raw_once ? time_us(share, raw_once, p, &nraw) : 0;
		hk = only_fn == hooked_once ? time_us(share, hooked_once, p, &nhk) : 0;
	} else if (!only && !floor_in_child(p, share, &raw, &hk, &nraw, &nhk, berr, sizeof berr)) {
		fprintf(stderr, "shimcheck bench: the floor engine: %s\n", berr);
		return 3;
	}
	double cnt = !only || only_fn == counted_once ? time_us(share, counted_once, p, &ncnt) : 0;
	double chk = !only || only_fn == checked_once ? time_us(share, checked_once, p, &nchk) : 0;
	double cold = !only || only_fn == cold_once ? time_us(share / 4, cold_once, p, &ncold) : 0;
	bare_close();
	if (only) {
		printf("%s: %.2f us/run\n", only, raw + hk + cnt + chk + cold);
		return 0;
	}
	if (raw < 0 || hk < 0 || cnt < 0 || chk < 0 || cold < 0) {
		fprintf(stderr, "shimcheck bench: a timed run failed: %s\n", p->err);
		return 3;
	}
	uint32_t rounds = p->img.rounds, insns = p->t.n;
	char scen_name[SC_NAME_MAX];
	snprintf(scen_name, sizeof scen_name, "%s", p->sc.name);
	/* Fuzzing: generated scenarios (image build, load, run, checks) with 1 and 2 processes.
	 * Findings would go to a scratch folder; a hardened variant has none. */
	char scratch[] = "/tmp/shimcheck-bench-XXXXXX";
	double f1 = 0, f2 = 0;
	long fuzz_rss = 0;
	if (mkdtemp(scratch)) {
		long k1 = 0, k2 = 0;
		struct fuzz_opts fo = {share / 2, 1, 1, scratch, true, &f1, &k1};
		fuzz_run(&fo, p);
		fo.jobs = 2;
		fo.rate = &f2;
		fo.rss_kib = &k2;
		fuzz_run(&fo, p);
		/* The fuzz loop's peak: the larger of the job run here (this process) and the two
		 * forked jobs (each with what it shares with this process). */
		fuzz_rss = (k1 > k2 ? k1 : k2) / 1024;
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", scratch);
		if (system(cmd) != 0)
			fprintf(stderr, "shimcheck bench: could not remove %s\n", scratch);
	}
	printf("%-10s %12s %14s %10s\n", "measure", "us/run", "round trips/s", "runs");
	printf("%-10s %12.2f %14.0f %10ld\n", "raw", raw, rounds * 1e6 / raw, nraw);
	printf("%-10s %12.2f %14.0f %10ld\n", "hooked", hk, rounds * 1e6 / hk, nhk);
	printf("%-10s %12.2f %14.0f %10ld\n", "counted", cnt, rounds * 1e6 / cnt, ncnt);
	printf("%-10s %12.2f %14.0f %10ld\n", "checked", chk, rounds * 1e6 / chk, nchk);
	printf("%-10s %12.2f %14.0f %10ld\n", "cold", cold, rounds * 1e6 / cold, ncold);
	printf("(one run = %u round trips, %u instructions; scenario %s, variant %s)\n", rounds, insns, scen_name,
	       p->code.variant);
	printf("%-10s %12.2f %14s %10s\n", "fuzz -j1", f1 > 0 ? 1e6 / f1 : 0.0, "(scenarios)", "");
	printf("%-10s %12.2f %14s %10s\n", "fuzz -j2", f2 > 0 ? 1e6 / f2 : 0.0, "(scenarios)", "");
	printf("(fuzz, scenarios/s: -j1 %.0f, -j2 %.0f; families of %d scenarios share a layout, docs/fuzzing.md)\n", f1,
	       f2, FUZZ_FAMILY);
	double qemu_us = bench_qemu_us(p, scenario_path, rounds);
	char qemu[32] = "na";
	if (qemu_us > 0)
		snprintf(qemu, sizeof qemu, "%.0fx", qemu_us / (chk / rounds));
	printf("(peak resident: a fuzz job %ld MiB, this process %ld MiB)\n", fuzz_rss, rss_mib(RUSAGE_SELF));
	printf("(raw: no hooks; hooked: a code and a memory hook that do nothing, %.2fx raw; counted: %.2fx raw;\n"
	       " checked: %.2fx hooked, %.2fx counted)\n", hk / raw, cnt / raw, chk / hk, chk / cnt);
	printf("checked_us=%.2f raw_us=%.2f overhead=%.2fx cold_us=%.2f fuzz_per_s=%.0f jobs2_speedup=%.2fx qemu_ratio=%s "
	       "rss_mib=%ld\n", chk / rounds, raw / rounds, chk / raw, cold / rounds, f1, f1 > 0 ? f2 / f1 : 0.0, qemu,
	       fuzz_rss);
	return 0;
}
