/*
 * bench.c: `shimcheck bench`: how fast the checker runs, on this machine, in one run.
 *
 *   raw      the same round trips in Unicorn with recording off (the engine floor)
 *   checked  full recording and every checker
 *   cold     a fresh engine each time (uc_open, map, load, run, check, close)
 *
 * Each figure is the median of several timed batches of one round trip set.
 */
#include "bench.h"

#include "fuzz.h"

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

static int raw_once(struct pipeline *p)
{
	struct run_limits lim = {0, 0, false};
	return engine_run(p->eng, &p->t, &lim) && p->t.end == END_DONE ? 0 : 1;
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

static long rss_mib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024;
}

int bench_run(struct pipeline *p, double seconds, const char *scenario_path)
{
	if (pl_run(p) != PL_OK) {
		fprintf(stderr, "shimcheck bench: the scenario does not pass, nothing to time: %s\n", p->err);
		return 1;
	}
	double share = seconds / 3;
	long nraw = 0, nchk = 0, ncold = 0;
	/* SHIMCHECK_BENCH_ONLY=checked|raw|cold times one measure alone (for a profiler). */
	const char *only = getenv("SHIMCHECK_BENCH_ONLY");
	if (only && strcmp(only, "checked") && strcmp(only, "raw") && strcmp(only, "cold")) {
		fprintf(stderr, "shimcheck bench: SHIMCHECK_BENCH_ONLY: '%s' is not checked, raw or cold\n", only);
		return 2;
	}
	/* SHIMCHECK_BENCH_RUNS=N with SHIMCHECK_BENCH_ONLY: exactly N calls, untimed, so that an
	 * instruction counter (valgrind --tool=callgrind) sees the same work every time. */
	const char *runs = getenv("SHIMCHECK_BENCH_RUNS");
	if (only && runs) {
		long n = strtol(runs, NULL, 10);
		int (*fn)(struct pipeline *) = !strcmp(only, "raw") ? raw_once : !strcmp(only, "checked") ? checked_once
												: cold_once;
		for (long i = 0; i < n; i++)
			if (fn(p) != 0) {
				fprintf(stderr, "shimcheck bench: run %ld failed: %s\n", i, p->err);
				return 3;
			}
		printf("%s: %ld runs\n", only, n);
		return 0;
	}
	double raw = !only || !strcmp(only, "raw") ? time_us(share, raw_once, p, &nraw) : 0;
	double chk = !only || !strcmp(only, "checked") ? time_us(share, checked_once, p, &nchk) : 0;
	double cold = !only || !strcmp(only, "cold") ? time_us(share / 4, cold_once, p, &ncold) : 0;
	if (only) {
		printf("%s: %.2f us/run\n", only, raw + chk + cold);
		return 0;
	}
	if (raw < 0 || chk < 0 || cold < 0) {
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
	if (mkdtemp(scratch)) {
		struct fuzz_opts fo = {share / 2, 1, 1, scratch, true, &f1};
		fuzz_run(&fo, p);
		fo.jobs = 2;
		fo.rate = &f2;
		fuzz_run(&fo, p);
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", scratch);
		if (system(cmd) != 0)
			fprintf(stderr, "shimcheck bench: could not remove %s\n", scratch);
	}
	printf("%-10s %12s %14s %10s\n", "measure", "us/run", "round trips/s", "runs");
	printf("%-10s %12.2f %14.0f %10ld\n", "raw", raw, rounds * 1e6 / raw, nraw);
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
	printf("checked_us=%.2f raw_us=%.2f overhead=%.2fx cold_us=%.2f fuzz_per_s=%.0f jobs2_speedup=%.2fx qemu_ratio=%s "
	       "rss_mib=%ld\n", chk / rounds, raw / rounds, chk / raw, cold / rounds, f1, f1 > 0 ? f2 / f1 : 0.0, qemu,
	       rss_mib());
	return 0;
}
