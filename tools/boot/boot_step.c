/*
 * boot_step.c: `shimcheck boot --engine qemu --step`: the round trips one instruction at a
 * time on QEMU, against Unicorn's trace of the same scenario.
 *
 * QEMU (TCG) boots the kernel and the image stopped (-S) with its gdbstub on a Unix socket in
 * the scratch directory; gdb in batch mode connects, breaks at host2monitor (the host half
 * host_main calls, a linear address in the host space: TCG's breakpoints are QEMU's own, no
 * byte of the guest is changed) and, from there to host_after_call, prints EIP and CR3
 * (QEMU's i386 target description has cr0..cr4) and steps: the whole round trip, both
 * halves, the shim page, the monitor and the guest. Once per round trip. The simulator's
 * trace gives the same sequence: from each instruction at host2monitor to the next at
 * host_after_call.
 *
 * EIP is compared as the CPU holds it (an offset in CS: gdb's $pc), which is the trace's
 * eip_off; where CS has a base (cs_wrap) the linear address differs from it by that base on
 * both sides alike.
 *
 * The observer (the kernel's code between round trips) runs outside these stretches, so the
 * sequences must be equal instruction for instruction: any difference is the engine and
 * Unicorn executing differently (or a breakpoint gdb could not place).
 */
#define _GNU_SOURCE
#include "boot_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEP_SLACK 64    /* steps past the simulator's length before a round is given up */
#define STEP_AFTER_END 8 /* steps shown past where the simulator's run ended (a fault) */
/* Bochs: its script cannot stop at a HLT, and a second step into a trap routine's HLT loop
 * with interrupts off never ends (until --timeout): two steps show where it went */
#define STEP_AFTER_END_BOCHS 2

struct step {
	uint32_t eip, cr3;
	int32_t insn; /* the trace index (simulator side); -1 on the engine's */
};

struct seq {
	int n, cap;
	struct step *s;
	bool complete; /* it reached host_after_call */
};

static bool seq_add(struct seq *q, uint32_t eip, uint32_t cr3, int32_t insn)
{
	if (q->n == q->cap) {
		int cap = q->cap ? 2 * q->cap : 256;
		struct step *b = realloc(q->s, (size_t)cap * sizeof *b);
		if (!b)
			return false;
		q->s = b;
		q->cap = cap;
	}
	q->s[q->n++] = (struct step){eip, cr3, insn};
	return true;
}

/* The simulator's rounds: each from an instruction at host2monitor to the next one at
 * host_after_call (included). A round cut by a fault ends there, incomplete. */
static int sim_rounds(const struct pipeline *p, struct seq *rounds, int max)
{
	uint32_t entry = p->img.ep[EP_HOST2MONITOR], after = p->img.ep[EP_HOST_AFTER_CALL];
	int nr = 0;
	struct seq *cur = NULL;
	for (uint32_t i = 0; i < p->t.n; i++) {
		const struct tr_cpu *c = &p->t.insn[i].cpu;
		if (!cur && c->eip == entry && nr < max)
			cur = &rounds[nr++];
		if (!cur)
			continue;
		if (!seq_add(cur, c->eip_off, c->cr3, (int32_t)i))
			return -1;
		if (c->eip == after) {
			cur->complete = true;
			cur = NULL;
		}
	}
	return nr;
}

/* The gdb script: per round, continue to the breakpoint, then print and step until
 * host_after_call (or the limit). gdb stops reading a batch script at the first error
 * (QEMU gone), which ends the sequences where they are. */
/* Code segments with a base (cs_wrap's monitor CS), as the trace saw them: gdb's $pc is the
 * offset, its memory reads take linear addresses. */
struct csbase {
	int n;
	uint16_t sel[4];
	uint32_t base[4];
};

static void cs_bases(const struct trace *t, struct csbase *cb)
{
	cb->n = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_cpu *c = &t->insn[i].cpu;
		bool seen = false;
		for (int k = 0; k < cb->n; k++)
			seen |= cb->sel[k] == c->cs;
		if (c->cs_base && !seen && cb->n < 4) {
			cb->sel[cb->n] = c->cs;
			cb->base[cb->n++] = c->cs_base;
		}
	}
}

/* The gdb script: per round, continue to the breakpoint, then print and step until
 * host_after_call, the limit, or a HLT (a trap routine's loop: with interrupts off a HLT
 * never completes a single step, and gdb would wait for ever). gdb stops reading a batch
 * script at the first error (QEMU gone), which ends the sequences where they are. */
static bool write_script(const char *path, const char *sock, uint32_t entry, uint32_t after, int rounds, int limit,
			 const struct csbase *cb)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f, "set pagination off\nset confirm off\nset width 0\nset architecture i386\n"
		   "target remote %s\n"
		   "break *0x%08" PRIx32 "\n"
		   "set $round = 0\n"
		   "while $round < %d\n"
		   "  continue\n"
		   "  set $n = 0\n"
		   "  while $n < %d\n"
		   "    printf \"STEP %%d %%x %%x %%x %%x %%x %%x %%x %%x %%x %%x %%x\\n\", $round, $pc, $cr3, $esp, $eflags, "
		   "$eax, $ecx, $edx, $ebx, $ebp, $esi, $edi\n"
		   "    if $pc == 0x%08" PRIx32 "\n"
		   "      loop_break\n"
		   "    end\n"
		   "    set $lin = (unsigned int)$pc\n",
		sock, entry, rounds, limit, after);
	for (int k = 0; k < cb->n; k++)
		fprintf(f, "    if $cs == 0x%x\n      set $lin = ((unsigned int)$pc + 0x%08" PRIx32 "U) & 0xffffffffU\n    end\n", cb->sel[k],
			cb->base[k]);
	fprintf(f, "    if *(unsigned char *)$lin == 0xf4\n"
		   "      printf \"HALT %%d\\n\", $round\n"
		   "      loop_break\n"
		   "    end\n"
		   "    stepi\n"
		   "    set $n = $n + 1\n"
		   "  end\n"
		   "  set $round = $round + 1\n"
		   "end\n"
		   "printf \"STEPS DONE\\n\"\n"
		   "kill\n");
	return fclose(f) == 0;
}

static void show_steps(const struct pipeline *p, const char *eng, const struct seq *e, const struct seq *s, int at)
{
	char head[32];
	snprintf(head, sizeof head, "%s eip/cr3", eng);
	printf("  %-5s %-21s %-21s %s\n", "step", head, "unicorn eip/cr3", "unicorn's instruction");
	int from = at > 3 ? at - 3 : 0, to = at + 3;
	for (int k = from; k <= to && (k < e->n || k < s->n); k++) {
		char a[32] = "(none)", b[32] = "(none)";
		if (k < e->n)
			snprintf(a, sizeof a, "%08" PRIx32 " %08" PRIx32, e->s[k].eip, e->s[k].cr3);
		if (k < s->n)
			snprintf(b, sizeof b, "%08" PRIx32 " %08" PRIx32, s->s[k].eip, s->s[k].cr3);
		const char *text = k < s->n ? p->t.insn[s->s[k].insn].text : "";
		printf("  %-5d %-21s %-21s %-40s%s\n", k, a, b, text, k == at ? " <--" : "");
	}
}

/* QEMU: gdb drives its gdbstub (write_script). Fills er[0..nr) from gdb's STEP lines. */
static int step_qemu(const struct boot_opts *bo, const char *dir, const char *kernel, const struct pipeline *p, struct seq *er,
		     int nr, int limit, struct engine_info *ei, int *steps, int *null_steps, double *tool_secs)
{
	char qemu[PATH_MAX], gdb[PATH_MAX], path[PATH_MAX + 32], sock[PATH_MAX + 32], script[PATH_MAX + 32];
	if (!find_qemu_gdb("step", qemu, gdb))
		return B_UNAVAILABLE;
	qemu_version(qemu, dir, ei);
	snprintf(sock, sizeof sock, "%s/gdb.sock", dir);
	snprintf(script, sizeof script, "%s/step.gdb", dir);
	unlink(sock);
	struct csbase cb;
	cs_bases(&p->t, &cb);
	if (!write_script(script, sock, p->img.ep[EP_HOST2MONITOR], p->img.ep[EP_HOST_AFTER_CALL], nr, limit, &cb)) {
		fprintf(stderr, "shimcheck boot: %s: cannot write\n", script);
		return B_INTERNAL;
	}
	char gdbarg[PATH_MAX + 64], mem[16];
	snprintf(gdbarg, sizeof gdbarg, "unix:%s,server=on,wait=off", sock);
	struct job j;
	memset(&j, 0, sizeof j);
	snprintf(j.image, sizeof j.image, "image.bin");
	snprintf(mem, sizeof mem, "%u", megs_for(dir, &j, 1, 128));
	char *qargv[] = {qemu, "-accel", "tcg", "-cpu", "Penryn", "-m", mem, "-nodefaults", "-display", "none", "-no-reboot",
			 "-monitor", "none", "-kernel", (char *)kernel, "-initrd", "image.bin", "-debugcon", "file:e9.log",
			 "-serial", "file:com1.log", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-gdb", gdbarg, "-S", NULL};
	snprintf(path, sizeof path, "%s/qemu.out", dir);
	double t0 = now_s();
	pid_t qpid = spawn_bg(qargv, dir, path);
	if (qpid < 0) {
		fprintf(stderr, "shimcheck boot: %s: cannot run it\n", qemu);
		return B_INTERNAL;
	}
	while (access(sock, F_OK) != 0 && now_s() - t0 < 10 && waitpid(qpid, NULL, WNOHANG) == 0) {
		struct timespec d = {0, 5 * 1000 * 1000};
		nanosleep(&d, NULL);
	}
	if (access(sock, F_OK) != 0) {
		fprintf(stderr, "shimcheck boot: --step: QEMU made no gdbstub socket\n");
		show_tail(path, 10);
		reap_bg(qpid, 0);
		return B_INTERNAL;
	}
	char *gargv[] = {gdb, "-batch", "-nx", "-x", script, NULL};
	snprintf(path, sizeof path, "%s/gdb.out", dir);
	struct proc pr;
	bool ran = run(gargv, dir, path, bo->timeout * 3, &pr, NULL, NULL);
	reap_bg(qpid, 0);
	if (!ran) {
		fprintf(stderr, "shimcheck boot: %s: cannot run it\n", gdb);
		return B_INTERNAL;
	}
	ei->boots = 1;
	ei->secs = now_s() - t0;
	*tool_secs = pr.secs;
	char *outp = slurp(path, NULL);
	unsigned prev[12] = {0};
	for (char *line = outp ? strtok(outp, "\n") : NULL; line; line = strtok(NULL, "\n")) {
		int r;
		unsigned v[11];
		if (sscanf(line, "STEP %d %x %x %x %x %x %x %x %x %x %x %x", &r, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
			   &v[6], &v[7], &v[8], &v[9], &v[10]) != 12 ||
		    r < 0 || r >= nr)
			continue;
		/* QEMU's gdbstub now and then ends a single step without executing anything
		 * (seen right after MOV CR3: TCG leaves its execution loop to flush, and the step
		 * is reported done): the same EIP with every register the same. No instruction
		 * of these windows does that (no REP, no jump to itself). */
		if (er[r].n && (unsigned)r == prev[0] && memcmp(prev + 1, v, sizeof v) == 0) {
			(*null_steps)++;
			continue;
		}
		prev[0] = (unsigned)r;
		memcpy(prev + 1, v, sizeof v);
		if (!seq_add(&er[r], v[0], v[1], -1)) {
			free(outp);
			return B_INTERNAL;
		}
		(*steps)++;
	}
	free(outp);
	if (*steps == 0) {
		fprintf(stderr, "shimcheck boot: --step: gdb recorded no step (status %d%s)\n", pr.status,
			pr.timed_out ? ", timed out" : "");
		show_tail(path, 15);
		return B_INTERNAL;
	}
	return B_OK;
}

/* Bochs: its debugger's rc script has no conditions, so each round is a fixed count: the
 * simulator's length of that round, `creg` (CR3) before each `s`. A breakpoint stop starts a
 * round ("(0) Breakpoint 1, ..."); each "(0) [0xPHYS] CS:EIP (unk. ctxt): ..." line is the
 * next instruction, and the CR3 line of the `creg` after it its CR3. If Bochs went elsewhere,
 * the recorded EIPs say so. */
static int step_bochs(const struct boot_opts *bo, const char *dir, const char *kernel, const struct pipeline *p,
		      const struct seq *sr, struct seq *er, int nr, struct engine_info *ei, int *steps, double *tool_secs)
{
	size_t cap = 64, len = 0;
	for (int r = 0; r < nr; r++)
		cap += (size_t)(sr[r].n + STEP_AFTER_END_BOCHS) * 8 + 8;
	char *rc = malloc(cap);
	if (!rc)
		return B_INTERNAL;
	len += (size_t)snprintf(rc + len, cap - len, "lb 0x%08" PRIx32 "\n", p->img.ep[EP_HOST2MONITOR]);
	for (int r = 0; r < nr; r++) {
		len += (size_t)snprintf(rc + len, cap - len, "c\n");
		/* a round the simulator's run ends in (a fault): a few steps more, to show what
		 * the engine does where Unicorn stopped */
		int n = sr[r].n + (sr[r].complete ? 0 : STEP_AFTER_END_BOCHS);
		for (int k = 0; k < n; k++)
			len += (size_t)snprintf(rc + len, cap - len, k + 1 < n ? "creg\ns\n" : "creg\n");
	}
	snprintf(rc + len, cap - len, "q\n");
	struct job j;
	memset(&j, 0, sizeof j);
	snprintf(j.image, sizeof j.image, "image.bin");
	struct proc pr;
	int st = bochs_script(bo, dir, kernel, &j, rc, ei, &pr);
	free(rc);
	if (st != B_OK)
		return st;
	*tool_secs = pr.secs;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/bochs.out", dir);
	char *out = slurp(path, NULL);
	int r = -1;
	bool want_cr3 = false;
	uint32_t eip = 0;
	for (char *line = out ? strtok(out, "\n") : NULL; line; line = strtok(NULL, "\n")) {
		unsigned long long phys, off, cr3;
		unsigned sel;
		if (strstr(line, ") Breakpoint ") && r + 1 < nr) {
			r++;
			want_cr3 = false;
		} else if (r >= 0 && sscanf(line, "(0) [0x%llx] %x:%llx", &phys, &sel, &off) == 3) {
			eip = (uint32_t)off;
			want_cr3 = true;
		} else if (r >= 0 && want_cr3 && sscanf(line, "CR3=0x%llx", &cr3) == 1) {
			want_cr3 = false;
			if (!seq_add(&er[r], eip, (uint32_t)cr3, -1)) {
				free(out);
				return B_INTERNAL;
			}
			(*steps)++;
		}
	}
	free(out);
	if (*steps == 0) {
		fprintf(stderr, "shimcheck boot: --step: Bochs recorded no step (status %d%s)\n", pr.status,
			pr.timed_out ? ", timed out" : "");
		show_tail(path, 15);
		return B_INTERNAL;
	}
	return B_OK;
}

int mode_step(const struct boot_opts *bo, const char *dir, const char *kernel, const char *codedir, const char *scen)
{
	static struct pipeline p;
	pl_init(&p);
	int prc = boot_prepare(&p, codedir, scen, dir, true);
	if (prc != B_OK) {
		pl_free(&p);
		return prc;
	}
	enum { MAXR = 70 };
	static struct seq sr[MAXR], er[MAXR];
	memset(sr, 0, sizeof sr);
	memset(er, 0, sizeof er);
	int nr = sim_rounds(&p, sr, MAXR), longest = 0;
	for (int r = 0; r < nr; r++)
		longest = sr[r].n > longest ? sr[r].n : longest;
	int rc = B_OK, steps = 0, null_steps = 0;
	double tool_secs = 0;
	bool bochs = strcmp(bo->engine, "bochs") == 0;
	const char *eng = bo->engine;
	struct engine_info ei;
	memset(&ei, 0, sizeof ei);
	if (nr <= 0) {
		fprintf(stderr, "shimcheck boot: --step: the simulator's run never enters host2monitor (%s)\n",
			tr_end_name(p.t.end));
		rc = nr < 0 ? B_INTERNAL : B_INPUT;
		goto out;
	}
	rc = bochs ? step_bochs(bo, dir, kernel, &p, sr, er, nr, &ei, &steps, &tool_secs)
		   : step_qemu(bo, dir, kernel, &p, er, nr, longest + STEP_SLACK, &ei, &steps, &null_steps, &tool_secs);
	if (rc != B_OK)
		goto out;
	for (int r = 0; r < nr; r++)
		er[r].complete = er[r].n && er[r].s[er[r].n - 1].eip == p.img.ep[EP_HOST_AFTER_CALL];
	printf("shimcheck boot --step: engine %s (%s; %s), variant %s, scenario %s: EIP and CR3 before every instruction from "
	       "host2monitor (0x%08" PRIx32 ") to host_after_call (0x%08" PRIx32 "), per round trip\n",
	       eng, ei.version[0] ? ei.version : "?",
	       bochs ? "its debugger: lb, then creg and s, as many as the simulator's round has" : "TCG, gdbstub, gdb batch",
	       p.code.variant, p.sc.name, p.img.ep[EP_HOST2MONITOR], p.img.ep[EP_HOST_AFTER_CALL]);
	int same = 0;
	for (int r = 0; r < nr; r++) {
		const struct seq *e = &er[r], *s = &sr[r];
		int at = -1;
		for (int k = 0; k < e->n || k < s->n; k++) {
			if (!s->complete && k >= s->n)
				break; /* past the end of the simulator's run: nothing to compare with */
			if (k >= e->n || k >= s->n || e->s[k].eip != s->s[k].eip || e->s[k].cr3 != s->s[k].cr3) {
				at = k;
				break;
			}
		}
		/* Unicorn's trace holds the instruction that faulted; an engine that shuts down
		 * inside the step that leads to it (a fetch that faults while the exception cannot
		 * be delivered: Bochs's debugger never shows that instruction as reached) has
		 * one step less. The same run, not a divergence. */
		bool short_by_fault = !s->complete && at == s->n - 1 && e->n == s->n - 1;
		if (short_by_fault) {
			printf("round %d: %d instructions identical; the simulator's run ends with the next one (%s: %s), which %s "
			       "never showed as reached: it shut down stepping into it\n",
			       r + 1, e->n, tr_end_name(p.t.end), p.t.end_detail, eng);
			same++;
			continue;
		}
		if (at < 0 && !s->complete) {
			printf("round %d: %d instructions, identical up to where the simulator's run ends (%s: %s); %s went on:",
			       r + 1, s->n, tr_end_name(p.t.end), p.t.end_detail, eng);
			for (int k = s->n; k < e->n && k < s->n + STEP_AFTER_END; k++)
				printf(" %08" PRIx32, e->s[k].eip);
			printf("%s\n", e->n > s->n ? "" : " (nothing: it stopped there too)");
			same++;
			continue;
		}
		if (at < 0) {
			printf("round %d: %d instructions, identical\n", r + 1, s->n);
			same++;
			continue;
		}
		if (rc == B_DIVERGE) {
			printf("round %d: differs from step %d on (%d instructions on %s, %d in unicorn)\n", r + 1, at, e->n, eng, s->n);
			continue;
		}
		rc = B_DIVERGE;
		if (at < e->n && at < s->n)
			printf("DIVERGENCE at round %d, step %d (trace #%d): %s %s %08" PRIx32 "/%08" PRIx32 ", unicorn %08" PRIx32
			       "/%08" PRIx32 " (eip/cr3)\n",
			       r + 1, at, s->s[at].insn, e->s[at].eip != s->s[at].eip ? "eip:" : "cr3:", eng, e->s[at].eip,
			       e->s[at].cr3, s->s[at].eip, s->s[at].cr3);
		else
			printf("DIVERGENCE at round %d, step %d: %s\n", r + 1, at,
			       at >= e->n ? (e->n ? "the engine's round ends here, unicorn goes on" : "the engine never reached this round")
					  : "unicorn's round ends here, the engine goes on");
		show_steps(&p, eng, e, s, at);
	}
	/* a scenario the simulator finds violations in is never a pass, whatever the steps say */
	for (int i = 0; i < p.v.n && i < MAX_VIOLATIONS; i++) {
		const struct violation *x = &p.v.v[i];
		if (x->insn < p.t.n)
			printf("%s #%u 0x%08" PRIx32 ": %s\n", rule_id(x->rule), x->insn, p.t.insn[x->insn].cpu.eip, x->msg);
		else
			printf("%s: %s\n", rule_id(x->rule), x->msg);
	}
	if (rc == B_OK && p.v.n > 0)
		rc = B_DIVERGE;
	printf("%s: %d of %d round trips identical, %d steps on %s (+%d that executed nothing), %.2f s (%s %.2f s)%s%s\n",
	       rc == B_OK ? "STEP PASS" : "STEP FAIL", same, nr, steps, eng, null_steps, ei.secs + ei.prep_secs,
	       bochs ? "Bochs" : "gdb", tool_secs, p.t.end == END_DONE ? "" : "; the simulator's run does not end normally",
	       p.v.n > 0 ? "; the simulator reports violations" : "");
out:
	for (int r = 0; r < MAXR; r++) {
		free(sr[r].s);
		free(er[r].s);
	}
	pl_free(&p);
	return rc;
}
