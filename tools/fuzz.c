/*
 * fuzz.c: `shimcheck fuzz`: random scenarios, biased toward collisions, through the whole
 * pipeline; every violation shrunk to a minimal scenario file that `shimcheck run` replays.
 *
 * With --jobs J, J processes run side by side (each its own engine and seed stream: seed
 * + job) and the parent adds up their counts.
 */
#include "fuzz.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fnv.h"
#include "gen.h"
#include "mmu.h"

#define KEEP_PER_RULE 3

struct fuzz_stats {
	uint64_t scenarios, rejected, findings;
	uint64_t per_rule[R_N];
	uint64_t per_reason[SC_NREASONS];
	uint64_t internal;
	uint64_t digest;     /* of every run's outcome (SHIMCHECK_FUZZ_DIGEST prints it) */
	bool deep;           /* SHIMCHECK_FUZZ_DIGEST: fold in every event and violation too */
	long maxrss_kib;     /* the job's peak resident set */
};

/* Fold one run's outcome into the digest (FNV-1a): how it ended, how much it recorded,
 * what the checkers said. Two engines that run the same scenarios must agree on it. */
static void digest_run(struct fuzz_stats *st, uint64_t n, const struct pipeline *p, enum pl_status s)
{
	uint64_t v[8] = {n, (uint64_t)s, p->t.n, p->t.nmem, p->t.nev, (uint64_t)p->t.end, (uint64_t)p->v.n,
			 p->v.n ? (uint64_t)p->v.v[0].rule << 32 | p->v.v[0].insn : 0};
	st->digest = fnv1a64(st->digest ? st->digest : FNV64_INIT, v, sizeof v);
	if (!st->deep)
		return;
	/* SHIMCHECK_FUZZ_DIGEST: every event and every violation too, field by field, so that
	 * an engine change that moves one event's contents (not only their number) shows. */
	for (uint32_t i = 0; i < p->t.nev; i++) {
		const struct tr_event *ev = &p->t.ev[i];
		uint64_t f[9] = {ev->insn, (uint64_t)ev->kind, (uint64_t)(uint32_t)ev->space, ev->a, ev->b, ev->c,
				 (uint64_t)ev->lin << 32 | ev->lin_size, ev->old_entry,
				 (uint64_t)ev->stale | (uint64_t)ev->global << 1 | (uint64_t)ev->large << 2 |
					 (uint64_t)ev->size << 8 | (uint64_t)ev->walk_ok << 16};
		st->digest = fnv1a64(st->digest, f, sizeof f);
	}
	for (int i = 0; i < p->v.n; i++) {
		uint64_t f[2] = {(uint64_t)p->v.v[i].rule, p->v.v[i].insn};
		st->digest = fnv1a64(st->digest, f, sizeof f);
		st->digest = fnv1a64(st->digest, p->v.v[i].msg, strlen(p->v.v[i].msg));
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Does sc still produce a violation of rule? */
static bool still_fails(struct pipeline *p, const struct scenario *sc, enum rule rule)
{
	if (pl_set_scenario(p, sc, "shrink") != PL_OK)
		return false;
	if (pl_run(p) != PL_VIOLATION)
		return false;
	return p->v.counts[rule] > 0;
}

static void drop_touch_of(struct scenario *sc, const struct sc_map *m, uint32_t lsize)
{
	uint32_t size = m->large ? lsize : PGSIZE;
	for (int i = 0; i < sc->ntouch; i++)
		if (sc->touch[i] - m->lin < size) {
			sc->touch[i] = sc->touch[--sc->ntouch];
			i--;
		}
}

/* Greedy shrinking: drop what the violation does not need. */
static void shrink(struct pipeline *p, struct scenario *sc, enum rule rule)
{
	struct scenario t;
	bool progress = true;
	for (int pass = 0; pass < 4 && progress; pass++) {
		progress = false;
		if (sc->rounds > 1) {
			t = *sc;
			t.rounds = 1;
			if (still_fails(p, &t, rule))
				*sc = t, progress = true;
		}
		uint32_t lsize = sc->w[SP_MON].state.paging == SC_PAE ? PAE_LARGE : PSE_SIZE;
		for (int i = sc->nguest - 1; i >= 0; i--) {
			t = *sc;
			drop_touch_of(&t, &t.guest[i], lsize);
			t.guest[i] = t.guest[--t.nguest];
			if (t.ntouch > 0 && still_fails(p, &t, rule))
				*sc = t, progress = true;
		}
		for (int i = sc->ntouch - 1; i >= 0 && sc->ntouch > 1; i--) {
			t = *sc;
			t.touch[i] = t.touch[--t.ntouch];
			if (still_fails(p, &t, rule))
				*sc = t, progress = true;
		}
		for (int s = 0; s < 2; s++)
			for (int i = sc->w[s].nmaps - 1; i >= 0; i--) {
				t = *sc;
				t.w[s].maps[i] = t.w[s].maps[--t.w[s].nmaps];
				if (still_fails(p, &t, rule))
					*sc = t, progress = true;
			}
		for (int s = 0; s < 2; s++) {
			t = *sc;
			if (t.w[s].state.cr4_pge) {
				t.w[s].state.cr4_pge = false;
				if (still_fails(p, &t, rule))
					*sc = t, progress = true;
			}
		}
	}
}

static void write_finding(const struct fuzz_opts *o, struct pipeline *p, struct scenario *sc, enum rule rule,
			  uint64_t seed, int job, int nth)
{
	char name[96], path[1200], desc[640];
	snprintf(name, sizeof name, "%s-%016" PRIx64, rule_id(rule), seed);
	snprintf(sc->name, sizeof sc->name, "%s", name);
	/* The message of the shrunk scenario's violation, for the file's description. */
	const char *msg = "";
	if (still_fails(p, sc, rule))
		for (int i = 0; i < p->v.n && i < MAX_VIOLATIONS; i++)
			if (p->v.v[i].rule == rule) {
				msg = p->v.v[i].msg;
				break;
			}
	snprintf(desc, sizeof desc, "shimcheck fuzz finding (variant %s, job %d, #%d for this rule): %s: %s",
		 p->code.variant, job, nth, rule_id(rule), msg);
	char *json = scenario_to_json(sc, desc);
	snprintf(path, sizeof path, "%s/%s.json", o->out, name);
	FILE *f = json ? fopen(path, "w") : NULL;
	if (!f || fputs(json, f) == EOF || fputc('\n', f) == EOF || fclose(f) != 0)
		fprintf(stderr, "shimcheck fuzz: %s: cannot write the finding: %s\n", path, strerror(errno));
	else if (!o->quiet)
		fprintf(stderr, "finding: %s %s\n", path, msg);
	free(json);
}

static void fuzz_job(const struct fuzz_opts *o, struct pipeline *p, int job, struct fuzz_stats *st)
{
	struct rng r = {o->seed + (uint64_t)job * 0x9E3779B97F4A7C15ull};
	double end = now_s() + o->seconds;
	st->deep = getenv("SHIMCHECK_FUZZ_DIGEST") != NULL;
	static struct scenario sc; /* large: not on the stack */
	/* SHIMCHECK_FUZZ_COUNT=N: stop after N scenarios (the same work every time, for an
	 * instruction counter; docs/performance.md). */
	const char *cnt = getenv("SHIMCHECK_FUZZ_COUNT");
	uint64_t max = cnt ? strtoull(cnt, NULL, 10) : UINT64_MAX;
	/* Families: a generated scenario, then FUZZ_FAMILY - 1 siblings that keep its host, monitor
	 * and shim and draw another guest (gen_sibling). The code stays where it was, so the
	 * engine keeps its translations across a family, where otherwise Unicorn would
	 * translate the code anew for every scenario; the guest's collisions, the point of
	 * fuzzing, vary in every one. A rejected first member starts the next family at once. */
	static struct scenario base;
	unsigned member = 0;
	while (now_s() < end && st->scenarios < max) {
		uint64_t seed = r.s;
		if (member == 0) {
			gen_scenario(&r, &base);
			sc = base;
		} else {
			gen_sibling(&r, &base, &sc);
		}
		st->scenarios++;
		enum pl_status s = pl_set_scenario(p, &sc, "generated");
		member = s == PL_INPUT && member == 0 ? 0 : (member + 1) % FUZZ_FAMILY;
		if (s == PL_INPUT) {
			st->rejected++;
			struct sc_error err;
			enum sc_reason why = scenario_validate(&sc, &err);
			if (why == SC_OK)
				why = scenario_check_unswitched(&sc, &p->code.sw, &err);
			st->per_reason[why == SC_OK ? SC_FULL : why]++;
			continue;
		}
		s = pl_run(p);
		digest_run(st, st->scenarios, p, s);
		if (s == PL_OK)
			continue;
		if (s != PL_VIOLATION) {
			st->internal++;
			fprintf(stderr, "shimcheck fuzz: internal error on seed 0x%016" PRIx64 ": %s\n", seed, p->err);
			continue;
		}
		st->findings++;
		enum rule rule = p->v.v[0].rule;
		if (st->per_rule[rule]++ < KEEP_PER_RULE) {
			shrink(p, &sc, rule);
			write_finding(o, p, &sc, rule, seed, job, (int)st->per_rule[rule]);
		}
	}
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		st->maxrss_kib = ru.ru_maxrss;
}

static void add(struct fuzz_stats *a, const struct fuzz_stats *b)
{
	a->scenarios += b->scenarios;
	a->rejected += b->rejected;
	a->findings += b->findings;
	a->internal += b->internal;
	for (int i = 0; i < R_N; i++)
		a->per_rule[i] += b->per_rule[i];
	for (int i = 0; i < SC_NREASONS; i++)
		a->per_reason[i] += b->per_reason[i];
	a->digest ^= b->digest; /* jobs in any order */
	if (b->maxrss_kib > a->maxrss_kib)
		a->maxrss_kib = b->maxrss_kib;
}

int fuzz_run(const struct fuzz_opts *o, struct pipeline *p)
{
	if (mkdir(o->out, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "shimcheck fuzz: %s: --out: cannot create: %s\n", o->out, strerror(errno));
		return 2;
	}
	struct fuzz_stats total = {0};
	double t0 = now_s();
	if (o->jobs <= 1) {
		fuzz_job(o, p, 0, &total);
	} else {
		int fds[64][2];
		pid_t pids[64];
		int jobs = o->jobs > 64 ? 64 : o->jobs;
		for (int j = 0; j < jobs; j++) {
			if (pipe(fds[j]) != 0 || (pids[j] = fork()) < 0) {
				fprintf(stderr, "shimcheck fuzz: cannot start job %d: %s\n", j, strerror(errno));
				return 3;
			}
			if (pids[j] == 0) {
				close(fds[j][0]);
				/* The parent's engine came along as a copy-on-write image whose watchdog
				 * thread did not: leave it, and let this job open its own. */
				p->eng = NULL;
				p->loaded = false;
				struct fuzz_stats st = {0};
				fuzz_job(o, p, j, &st);
				ssize_t w = write(fds[j][1], &st, sizeof st);
				_exit(w == (ssize_t)sizeof st ? 0 : 3);
			}
			close(fds[j][1]);
		}
		for (int j = 0; j < jobs; j++) {
			struct fuzz_stats st;
			ssize_t n = read(fds[j][0], &st, sizeof st);
			int status = 0;
			waitpid(pids[j], &status, 0);
			close(fds[j][0]);
			if (n != (ssize_t)sizeof st || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "shimcheck fuzz: job %d failed\n", j);
				total.internal++;
				continue;
			}
			add(&total, &st);
		}
	}
	double dt = now_s() - t0;
	if (o->rate)
		*o->rate = dt > 0 ? (double)total.scenarios / dt : 0;
	if (o->rss_kib)
		*o->rss_kib = total.maxrss_kib;
	int distinct = 0;
	for (int i = 0; i < R_N; i++)
		if (total.per_rule[i]) {
			distinct++;
			if (!o->quiet)
				printf("  %-13s %" PRIu64 "\n", rule_id((enum rule)i), total.per_rule[i]);
		}
	for (int i = 1; i < SC_NREASONS && !o->quiet; i++)
		if (total.per_reason[i])
			printf("  rejected: %-17s %" PRIu64 "\n", sc_reason_name((enum sc_reason)i), total.per_reason[i]);
	if (!o->quiet)
		printf("fuzz: variant %s, seed 0x%" PRIx64 ", %d job%s: %" PRIu64 " scenarios in %.1f s (%.0f/s), rejected %.1f%%, "
	       "findings %" PRIu64 ", distinct rules %d, internal errors %" PRIu64 "\n",
	       p->code.variant, o->seed, o->jobs, o->jobs == 1 ? "" : "s", total.scenarios, dt,
	       dt > 0 ? (double)total.scenarios / dt : 0.0,
	       total.scenarios ? 100.0 * (double)total.rejected / (double)total.scenarios : 0.0, total.findings, distinct,
	       total.internal);
	if (getenv("SHIMCHECK_FUZZ_DIGEST"))
		printf("fuzz: verdict digest 0x%016" PRIx64 "\n", total.digest);
	if (total.internal)
		return 3;
	return total.findings ? 1 : 0;
}
