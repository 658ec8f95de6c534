/*
 * boot_nmi.c: `shimcheck boot --engine qemu --nmi`: a real NMI at each boundary of the switch
 * windows, by execution, against the model's prediction (sim/window.c).
 *
 * --window raises a #DB from an instruction breakpoint, which shows the delivery but not an
 * NMI's way back: the CPU pushes that #DB's EFLAGS with RF clear, so an IRET meets the
 * breakpoint again, and nothing blocks further events. Here the event is the NMI itself:
 *
 *   1. QEMU (TCG, the machine of --engine qemu with its -d int,exec log) starts stopped (-S)
 *      with its gdbstub on a Unix socket in the scratch directory; boot_engine.c's qemu_once
 *      starts gdb on it once the socket exists.
 *   2. gdb breaks at the linear address of the instruction after the boundary (TCG's own
 *      breakpoint: no byte of the guest changes). A boundary whose address ran before (a
 *      later round) is the k-th execution of it: gdb stops k times and steps past each.
 *   3. There it deletes the breakpoint, sends `monitor nmi` (qRcmd: QEMU's HMP `nmi`, which
 *      raises LINT1 of every local APIC; SeaBIOS programs LINT1 as NMI) and continues. With
 *      no breakpoint left at that address gdb continues without a single step first (QEMU's
 *      single steps mask NMIs: the NMI would come one instruction late), and QEMU takes the
 *      pending NMI before the instruction: the boundary itself.
 *   4. The run goes on as it will: the kernel's stub reports it (host IDT), monitor_trap or
 *      host_trap halt (QEMU is stopped there, as in any boot), __shim_nmi IRETs and the round
 *      trips go on to the kernel's end, or the delivery faults into a triple fault.
 *
 * Then per boundary: was the NMI (QEMU's log: v=02 at the boundary's linear EIP) delivered,
 * to which handler, and what came of it; against the model's delivery verdict and its
 * judgement of the handler's return. Where __shim_nmi returned, the rest of the run must be
 * the simulator's (which saw no NMI) but for the shim page: D_NMI_PENDING is 1 from the round
 * of the NMI on (the observer prints it), and so the page checksum differs.
 */
#define _GNU_SOURCE
#include "boot_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "window.h"

/* What a real NMI did at one boundary. */
enum nres {
	N_RETURNED,   /* __shim_nmi ran, its IRET came back, the run went on to its end */
	N_STOPS,      /* delivered to a handler that does not return (kernel's stub, a trap) */
	N_RET_FAULT,  /* __shim_nmi ran, but its way back faulted or the run then differed */
	N_FAULTED,    /* another exception came before any handler ran */
	N_TRIPLE,     /* nothing could be delivered: a triple fault */
	N_NOT_TAKEN,  /* no NMI at this boundary (none at all, or later) */
	N_NOT_REACHED /* the breakpoint was never hit: no NMI sent */
};
static const char *const nres_name[] = {"delivered", "delivered", "delivered", "faulted", "triple fault",
					"not taken", "not reached"};

struct nrow {
	bool reached;
	uint32_t stop_pc, stop_cr3, stop_esp;
	enum nres res;
	char handler[40];  /* where it went */
	char back[96];     /* the way back and the end */
	char how[160];     /* the exception chain and details */
	bool agree;
	int diff_at, diff_field; /* N_RET_FAULT by a difference: the observation and field */
	uint32_t nmi_pending;    /* D_NMI_PENDING in the engine's last observation */
	bool has_pending;
};

/* The gdb script: skip the address's earlier executions, stop at the one after the boundary,
 * send the NMI, run on. A stop is stepped past by hand (delete, stepi until EIP moves,
 * break again) because gdb's own step-over needs $pc to equal the breakpoint's address, and
 * under a CS with a base $pc is the offset. QEMU's gdbstub may end a step without executing
 * anything (boot_step.c), hence the loop. gdb stops reading a batch script at its first
 * error (QEMU gone): a missing NMISTOP line says the breakpoint was never reached. */
static bool write_script(const char *path, const char *sock, uint32_t lin, uint32_t off, int skip)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f, "set pagination off\nset confirm off\nset width 0\nset architecture i386\n"
		   "target remote %s\n"
		   "break *0x%08" PRIx32 "\n"
		   "set $k = 0\n"
		   "while $k < %d\n"
		   "  continue\n"
		   "  delete\n"
		   "  set $s = 0\n"
		   "  while $pc == 0x%08" PRIx32 " && $s < 8\n"
		   "    stepi\n"
		   "    set $s = $s + 1\n"
		   "  end\n"
		   "  break *0x%08" PRIx32 "\n"
		   "  set $k = $k + 1\n"
		   "end\n"
		   "continue\n"
		   "printf \"NMISTOP %%x %%x %%x\\n\", $pc, $cr3, $esp\n"
		   "delete\n"
		   "monitor nmi\n"
		   "printf \"NMISENT\\n\"\n"
		   "continue\n",
		sock, lin, skip, off, lin);
	return fclose(f) == 0;
}

/* Compare the engine's observations with the simulator's, the shim page's checksum and
 * D_NMI_PENDING left out from observation `from` on (the NMI's round and after). */
static int masked_difference(const struct obs_list *e, const struct obs_list *s, int from, int *field)
{
	static struct obs_list a, b;
	a = *e;
	b = *s;
	uint64_t m = ~(((uint64_t)1 << F_SHIM_SUM) | ((uint64_t)1 << F_NMI_PENDING));
	for (int i = from; i < a.n; i++)
		a.o[i].have &= m;
	for (int i = from; i < b.n; i++)
		b.o[i].have &= m;
	return first_difference(&a, &b, field);
}

static void chain_words(const struct img_run *r, char *b, size_t n)
{
	size_t k = 0;
	b[0] = '\0';
	if (!r->chain_known) {
		snprintf(b, n, "[no exception log]");
		return;
	}
	k += (size_t)snprintf(b + k, n - k, "[");
	for (int i = 0; i < r->nchain && k < n; i++)
		k += (size_t)snprintf(b + k, n - k, "%s#%u", i ? " " : "", r->chain[i].vec);
	if (r->chain_total > r->nchain && k < n)
		k += (size_t)snprintf(b + k, n - k, " ...%d", r->chain_total);
	if (k < n)
		snprintf(b + k, n - k, "]");
}

/* What the run of one boundary shows. lin, off: the boundary's linear EIP (QEMU's log has
 * CS base + EIP) and its EIP in CS (the frame the kernel's stub reports); first: the
 * observation from which D_NMI_PENDING and the page checksum may differ. */
static void judge(const struct job *j, const struct scen_res *sim, uint32_t lin, uint32_t off, int first, struct nrow *w)
{
	const struct img_run *r = &j->r;
	const struct obs *o = obs_last(&r->obs);
	char chain[64];
	chain_words(r, chain, sizeof chain);
	w->diff_at = -1;
	w->diff_field = -1;
	snprintf(w->handler, sizeof w->handler, "-");
	snprintf(w->back, sizeof w->back, "-");
	if (o && obs_has(o, F_NMI_PENDING)) {
		w->has_pending = true;
		w->nmi_pending = (uint32_t)o->v[F_NMI_PENDING];
	}
	if (!w->reached) {
		w->res = N_NOT_REACHED;
		snprintf(w->how, sizeof w->how, "gdb never stopped there (the run: %s)", o ? okind_name[o->kind] : "nothing");
		return;
	}
	bool nmi_first = r->chain_known && r->nchain > 0 && r->chain[0].vec == 2;
	bool at_boundary = nmi_first && r->chain[0].pc == lin;
	if (!nmi_first) {
		w->res = r->triple ? N_TRIPLE : N_NOT_TAKEN;
		if (r->chain_known && r->nchain > 0)
			snprintf(w->how, sizeof w->how, "%s first: #%u at 0x%" PRIx32, chain, r->chain[0].vec, r->chain[0].pc);
		else
			snprintf(w->how, sizeof w->how, "%s no NMI in QEMU's log; the run: %s", chain, o ? okind_name[o->kind] : "nothing");
		return;
	}
	if (!at_boundary) {
		w->res = N_NOT_TAKEN;
		snprintf(w->how, sizeof w->how, "%s the NMI came at 0x%" PRIx32 ", not at the boundary", chain, r->chain[0].pc);
		return;
	}
	if (o && o->kind == O_SHUTDOWN) {
		w->res = N_TRIPLE;
		snprintf(w->how, sizeof w->how, "%s triple fault", chain);
		if (r->nchain > 1 && r->chain[1].has_cr2)
			snprintf(w->how + strlen(w->how), sizeof w->how - strlen(w->how), " (#14 cr2 0x%" PRIx32 ")", r->chain[1].cr2);
		return;
	}
	if (r->nchain > 1) {
		/* the NMI's delivery raised something else before a handler ran */
		w->res = N_FAULTED;
		snprintf(w->how, sizeof w->how, "%s then #%u e=%x at 0x%" PRIx32 " before a handler; the run: %s", chain,
			 r->chain[1].vec, r->chain[1].err, r->chain[1].pc, o ? okind_name[o->kind] : "nothing");
		return;
	}
	/* delivered: to the kernel's stub in the host IDT ... */
	if (o && o->kind == O_EXCEPTION) {
		bool ok = o->v[F_VECTOR] == 2 && o->v[F_EIP] == off;
		w->res = ok ? N_STOPS : N_FAULTED;
		snprintf(w->handler, sizeof w->handler, "kernel's stub");
		snprintf(w->back, sizeof w->back, "stops: the stub ends the image");
		snprintf(w->how, sizeof w->how, "%s host IDT gate 2 -> kernel's stub: #%" PRIu64 " at 0x%" PRIx64, chain,
			 o->v[F_VECTOR], o->v[F_EIP]);
		return;
	}
	const char *t = r->handler ? trap_name(&j->traps, r->handler) : NULL;
	snprintf(w->handler, sizeof w->handler, "%s", t ? t : r->handler ? "?" : "-");
	if (!t || strncmp(t, "__shim_nmi", 10) != 0) {
		/* ... to a trap routine that halts (QEMU stopped there), or nowhere known */
		w->res = t ? N_STOPS : N_FAULTED;
		snprintf(w->back, sizeof w->back, t ? "stops: HLT loop" : "-");
		snprintf(w->how, sizeof w->how, "%s -> %s; the run: %s", chain, t ? t : "no handler seen",
			 o ? okind_name[o->kind] : "nothing");
		return;
	}
	/* ... or to __shim_nmi, which IRETs: the rest of the run tells whether it came back */
	if (r->nafter > 0) {
		w->res = N_RET_FAULT;
		const struct exc *x = &r->after[0];
		snprintf(w->back, sizeof w->back, "IRET: #%u e=%x at 0x%" PRIx32, x->vec, x->err, x->pc);
		snprintf(w->how, sizeof w->how, "%s -> __shim_nmi, then #%u e=%x at 0x%" PRIx32 "%s", chain, x->vec, x->err, x->pc,
			 r->triple ? ", triple fault" : "");
		return;
	}
	int field = -1, at = masked_difference(&r->obs, &sim->sim, first, &field);
	int sums = 0, after = 0;
	for (int i = first; i < r->obs.n && i < sim->sim.n; i++) {
		after++;
		sums += obs_has(&r->obs.o[i], F_SHIM_SUM) && obs_has(&sim->sim.o[i], F_SHIM_SUM) &&
			r->obs.o[i].v[F_SHIM_SUM] != sim->sim.o[i].v[F_SHIM_SUM];
	}
	bool pending_ok = true;
	for (int i = first; i < r->obs.n; i++)
		pending_ok &= obs_has(&r->obs.o[i], F_NMI_PENDING) && (r->obs.o[i].v[F_NMI_PENDING] & 1);
	int rounds = 0;
	for (int i = 0; i < r->obs.n; i++)
		rounds += r->obs.o[i].kind == O_ROUND;
	if (at >= 0 || !pending_ok || !o || o->kind != O_END) {
		w->res = N_RET_FAULT;
		w->diff_at = at;
		w->diff_field = field;
		if (at >= 0)
			snprintf(w->back, sizeof w->back, "IRET, then differs: observation %d %s", at,
				 field >= 0 ? field_name[field] : "(kind)");
		else
			snprintf(w->back, sizeof w->back, "IRET, %s", pending_ok ? "no end" : "D_NMI_PENDING not set");
	} else {
		w->res = N_RETURNED;
		snprintf(w->back, sizeof w->back, "IRET, %d rounds, end identical; nmi_pending 0x%" PRIx32, rounds,
			 w->nmi_pending);
	}
	snprintf(w->how, sizeof w->how, "%s -> __shim_nmi; shim_sum differs in %d of %d observations from #%d", chain, sums,
		 after, first);
}

/* The model's prediction against what happened. Delivery: safe = some handler ran with the
 * NMI as the only exception; unsafe = faulted or a triple fault; inhibited = not taken
 * there. The return, where the model judges one (the shim's handler), against whether it
 * came back with the run intact; a handler the model says stops must not have returned. */
static bool nmi_agrees(const struct wboundary *b, const struct nrow *w)
{
	bool delivered = w->res == N_RETURNED || w->res == N_STOPS || w->res == N_RET_FAULT;
	switch (b->delivery) {
	case WV_SAFE:
		if (!delivered)
			return false;
		break;
	case WV_UNSAFE: return w->res == N_FAULTED || w->res == N_TRIPLE;
	case WV_INHIBITED: return w->res == N_NOT_TAKEN;
	}
	switch (b->ret) {
	case WRN_NONE: return w->res == N_STOPS;
	case WRN_RETURNS: return w->res == N_RETURNED;
	case WRN_FAULTS: return w->res == N_RET_FAULT;
	}
	return false;
}

static const char *model_words(const struct wboundary *b)
{
	if (b->delivery == WV_UNSAFE)
		return "UNSAFE";
	if (b->delivery == WV_INHIBITED)
		return "inhibited";
	return b->ret == WRN_RETURNS ? "safe, returns" : b->ret == WRN_FAULTS ? "UNSAFE return" : "safe, stops";
}

int mode_nmi(const struct boot_opts *bo, const char *dir, const char *kernel, const char *codedir, const char *scen,
	     char after[][16], int nafter)
{
	char qemu[PATH_MAX], gdb[PATH_MAX];
	if (!find_qemu_gdb("nmi", qemu, gdb))
		return B_UNAVAILABLE;
	static struct pipeline p;
	static struct scen_res sim;
	pl_init(&p);
	memset(&sim, 0, sizeof sim);
	int prc = boot_prepare(&p, codedir, scen, dir, false);
	if (prc != B_OK) {
		pl_free(&p);
		return prc;
	}
	int rc = sim_run(&p, &sim);
	if (rc != B_OK) {
		pl_free(&p);
		return rc;
	}
	static struct wanalysis a;
	struct physmem mem = engine_memory(p.eng);
	a.safe_reasons = true;
	window_analyse(&p.t, &p.img, 2, &mem, &a);

	struct nrow *rows = calloc((size_t)a.n + 1, sizeof *rows);
	if (!rows) {
		free(sim.violations);
		pl_free(&p);
		return B_INTERNAL;
	}
	struct boot_opts nb = *bo;
	nb.gdb_exe = gdb;
	nb.gdb_script = "nmi.gdb";
	nb.no_batch = true;
	struct engine_info ei;
	memset(&ei, 0, sizeof ei);
	static struct job j;
	static struct obs_list bad_obs; /* the first disagreeing boundary's observations */
	char script[PATH_MAX + 32], sock[PATH_MAX + 32], out[PATH_MAX + 32];
	snprintf(script, sizeof script, "%s/nmi.gdb", dir);
	snprintf(sock, sizeof sock, "%s/gdb.sock", dir);
	snprintf(out, sizeof out, "%s/gdb.out", dir);
	int tested = 0, agree = 0, first_bad = -1;
	int n_shim = 0, n_shim_back = 0, n_stub = 0, n_trap = 0, n_triple = 0, n_faulted = 0, n_not = 0;
	for (int i = 0; i < a.n && rc == B_OK; i++) {
		const struct wboundary *b = &a.b[i];
		if (!boundary_selected(bo, &p.t, b->insn, after, nafter))
			continue;
		const struct tr_cpu *c = &p.t.insn[b->insn].cpu;
		int skip = 0, rounds_before = 0;
		for (uint32_t k = 0; k < b->insn; k++) {
			skip += p.t.insn[k].cpu.eip == c->eip;
			rounds_before += p.t.insn[k].cpu.eip == p.img.ep[EP_HOST_AFTER_CALL];
		}
		if (!write_script(script, sock, c->eip, c->eip_off, skip)) {
			fprintf(stderr, "shimcheck boot: %s: cannot write\n", script);
			rc = B_INTERNAL;
			break;
		}
		unlink(out);
		memset(&j, 0, sizeof j);
		snprintf(j.image, sizeof j.image, "image.bin");
		snprintf(j.label, sizeof j.label, "NMI before #%u", b->insn);
		trap_set_of(&p.img, &p.code, &j.traps);
		rc = boot_jobs(&nb, dir, kernel, &j, 1, &ei);
		if (rc != B_OK)
			break;
		struct nrow *w = &rows[i];
		char *g = slurp(out, NULL);
		const char *s = g ? strstr(g, "NMISTOP ") : NULL;
		w->reached = s && sscanf(s, "NMISTOP %x %x %x", &w->stop_pc, &w->stop_cr3, &w->stop_esp) == 3 &&
			     strstr(s, "NMISENT");
		if (s && !strstr(s, "NMISENT")) {
			/* gdb stopped there but `monitor nmi` failed: the gdbstub's monitor is not this one */
			fprintf(stderr, "shimcheck boot: --nmi: gdb could not send `monitor nmi`:\n");
			show_tail(out, 6);
			free(g);
			rc = B_INTERNAL;
			break;
		}
		free(g);
		if (w->reached && (w->stop_pc != c->eip_off || w->stop_cr3 != c->cr3)) {
			/* stopped at the address, but not in the state the trace has there */
			snprintf(w->how, sizeof w->how, "gdb stopped at %x cr3 %x, the trace has %x cr3 %x", w->stop_pc,
				 w->stop_cr3, c->eip_off, c->cr3);
			w->res = N_NOT_REACHED;
		} else {
			judge(&j, &sim, c->eip, c->eip_off, 1 + rounds_before, w);
		}
		w->agree = nmi_agrees(b, w);
		tested++;
		agree += w->agree;
		if (!w->agree && first_bad < 0) {
			first_bad = i;
			bad_obs = j.r.obs;
		}
		n_shim += w->res == N_RETURNED || w->res == N_RET_FAULT;
		n_shim_back += w->res == N_RETURNED;
		n_stub += w->res == N_STOPS && strcmp(w->handler, "kernel's stub") == 0;
		n_trap += w->res == N_STOPS && strcmp(w->handler, "kernel's stub") != 0;
		n_triple += w->res == N_TRIPLE;
		n_faulted += w->res == N_FAULTED;
		n_not += w->res == N_NOT_TAKEN || w->res == N_NOT_REACHED;
		if (bo->keep) {
			/* each boundary's logs, for reading afterwards */
			const char *keep[] = {"gdb.out", "qemu-int.log", "e9.log"};
			for (int k = 0; k < 3; k++) {
				char from[PATH_MAX + 32], to[PATH_MAX + 48];
				snprintf(from, sizeof from, "%s/%s", dir, keep[k]);
				snprintf(to, sizeof to, "%s/nmi-%u-%s", dir, b->insn, keep[k]);
				rename(from, to);
			}
		}
	}
	if (rc != B_OK) {
		free(rows);
		free(sim.violations);
		pl_free(&p);
		return rc;
	}
	printf("shimcheck boot --nmi: engine qemu (%s; %s), variant %s, scenario %s.\n"
	       "At each boundary `shimcheck window` lists, QEMU is stopped by a gdbstub breakpoint on the next instruction\n"
	       "(its k-th execution for a later round), gdb sends `monitor nmi` and the run goes on: a real NMI, delivered\n"
	       "through the IDT in force, blocked until an IRET, returned from without RF. The model's prediction (delivery\n"
	       "and the handler's return) against what the engine did; where __shim_nmi returned, the run must end as the\n"
	       "simulator's but for the shim page (D_NMI_PENDING set, its checksum).\n\n",
	       ei.version[0] ? ei.version : "?", ei.cpu, p.code.variant, p.sc.name);
	printf("%-3s %-13s %6s  %-8s  %-6s %-32s %-13s %-12s %-5s %-13s %-44s %s\n", "win", "direction", "before", "eip", "after",
	       "next instruction", "model", "engine", "agree", "handler", "way back", "how ([QEMU: exceptions up to the handler])");
	for (int i = 0; i < a.n; i++) {
		const struct wboundary *b = &a.b[i];
		if (!boundary_selected(bo, &p.t, b->insn, after, nafter))
			continue;
		const struct tr_insn *in = &p.t.insn[b->insn];
		const struct nrow *w = &rows[i];
		char prev[8] = "-";
		if (b->insn > 0)
			snprintf(prev, sizeof prev, "%.*s", (int)strcspn(p.t.insn[b->insn - 1].text, " "), p.t.insn[b->insn - 1].text);
		printf("%-3d %-13s %6u  %08" PRIx32 "  %-6s %-32.32s %-13s %-12s %-5s %-13s %-44s %s\n", b->window,
		       b->dir == DIR_M2H ? "monitor->host" : "host->monitor", b->insn, in->cpu.eip, prev, in->text,
		       model_words(b), nres_name[w->res], w->agree ? "yes" : "NO", w->handler, w->back, w->how);
	}
	printf("\n%d boundaries tested on qemu, %d agree with the prediction, %d do not; the NMI went to __shim_nmi at %d "
	       "(%d returned, the run then identical but for the shim page), the kernel's stub (host IDT) at %d, a trap "
	       "routine at %d; %d triple faults, %d faulted, %d not taken; %d boots, %.1f s\n",
	       tested, agree, tested - agree, n_shim, n_shim_back, n_stub, n_trap, n_triple, n_faulted, n_not, ei.boots,
	       ei.secs);
	if (first_bad >= 0) {
		const struct wboundary *b = &a.b[first_bad];
		const struct nrow *w = &rows[first_bad];
		printf("FIRST DISAGREEMENT at boundary #%u (0x%08" PRIx32 ", window %d): the model says %s (%s); qemu: %s, %s; %s\n",
		       b->insn, p.t.insn[b->insn].cpu.eip, b->window, model_words(b), b->reason, nres_name[w->res], w->back,
		       w->how);
		if (w->diff_at >= 0)
			print_divergence(stdout, "qemu", &bad_obs, &sim.sim, w->diff_at, w->diff_field);
	}
	free(rows);
	free(sim.violations);
	pl_free(&p);
	return tested - agree ? B_DIVERGE : B_OK;
}
