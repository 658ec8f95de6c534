/*
 * report.c: verdicts and traces, as text for review and as JSON/JSONL for tools.
 */
#include "report.h"

#include <inttypes.h>
#include <string.h>

#include <jansson.h>

#include "../model/mmu.h"
#include "evidence.h"
#include "listing.h"

static const char *space_tag(int sp) { return sp == SP_HOST ? "H" : sp == SP_MON ? "M" : "?"; }
static const char *space_word(int sp) { return sp == SP_HOST ? "host" : sp == SP_MON ? "monitor" : "?"; }

static int status_of(const struct pipeline *p) { return p->v.n ? PL_VIOLATION : PL_OK; }

void report_verdict_text(FILE *f, const struct report_ctx *r)
{
	const struct pipeline *p = r->p;
	const struct verdict *v = &p->v;
	for (int i = 0; i < v->n && i < MAX_VIOLATIONS; i++) {
		const struct violation *x = &v->v[i];
		if (x->insn < p->t.n)
			fprintf(f, "%s #%u 0x%08" PRIx32 ": %s\n", rule_id(x->rule), x->insn, p->t.insn[x->insn].cpu.eip, x->msg);
		else
			fprintf(f, "%s: %s\n", rule_id(x->rule), x->msg);
		char ev[2048];
		violation_evidence(p, x, ev, sizeof ev);
		evidence_fprint(f, "    walk: ", ev);
	}
	if (v->n > MAX_VIOLATIONS)
		fprintf(f, "(%d more violations not listed)\n", v->n - MAX_VIOLATIONS);
	fprintf(f, "%s: variant %s, scenario %s: %u round trip%s, %u instructions, %s; %d violation%s\n",
		v->n ? "FAIL" : "PASS", p->code.variant, p->sc.name, p->img.rounds, p->img.rounds == 1 ? "" : "s", p->t.n,
		tr_end_name(p->t.end), v->n, v->n == 1 ? "" : "s");
}

static json_t *hex(uint64_t x)
{
	char b[24];
	snprintf(b, sizeof b, "0x%" PRIx64, x);
	return json_string(b);
}

static json_t *violations_json(const struct pipeline *p)
{
	json_t *a = json_array();
	for (int i = 0; i < p->v.n && i < MAX_VIOLATIONS; i++) {
		const struct violation *x = &p->v.v[i];
		json_t *o = json_object();
		json_object_set_new(o, "rule", json_string(rule_id(x->rule)));
		if (x->insn < p->t.n) {
			json_object_set_new(o, "insn", json_integer(x->insn));
			json_object_set_new(o, "eip", hex(p->t.insn[x->insn].cpu.eip));
		}
		json_object_set_new(o, "message", json_string(x->msg));
		json_array_append_new(a, o);
	}
	return a;
}

void report_verdict_json(FILE *f, const struct report_ctx *r, int status)
{
	const struct pipeline *p = r->p;
	json_t *o = json_object();
	json_object_set_new(o, "schema", json_integer(TRACE_SCHEMA));
	json_object_set_new(o, "verdict", json_string(status == 0 ? "pass" : status == 1 ? "violation"
						      : status == 2 ? "bad-input" : status == 77 ? "unavailable" : "internal-error"));
	json_object_set_new(o, "exit", json_integer(status));
	if (status == PL_OK || status == PL_VIOLATION) {
		json_object_set_new(o, "variant", json_string(p->code.variant));
		json_object_set_new(o, "scenario", json_string(p->sc.name));
		json_object_set_new(o, "round_trips", json_integer(p->img.rounds));
		json_object_set_new(o, "instructions", json_integer(p->t.n));
		json_object_set_new(o, "end", json_string(tr_end_name(p->t.end)));
		json_object_set_new(o, "violations", violations_json(p));
	} else {
		json_object_set_new(o, "error", json_string(p->err));
	}
	json_dumpf(o, f, JSON_COMPACT);
	fputc('\n', f);
	json_decref(o);
}

/* ---- text trace ----------------------------------------------------------------------------- */

static void bytes_str(const struct tr_insn *in, char *out, size_t n)
{
	out[0] = '\0';
	for (int i = 0; i < in->len && strlen(out) + 4 < n; i++)
		snprintf(out + strlen(out), n - strlen(out), "%02x ", in->bytes[i]);
}

static void event_str(const struct tr_event *ev, char *out, size_t n)
{
	switch (ev->kind) {
	case EV_LGDT: snprintf(out, n, "GDTR=%08" PRIx64 "/%" PRIx64, ev->a, ev->b); break;
	case EV_LIDT: snprintf(out, n, "IDTR=%08" PRIx64 "/%" PRIx64, ev->a, ev->b); break;
	case EV_LTR: snprintf(out, n, "TR=%04" PRIx64 " (base %08" PRIx64 ")", ev->a, ev->b); break;
	case EV_MOV_CR3: snprintf(out, n, "CR3 %08" PRIx64 "->%08" PRIx64, ev->a, ev->b); break;
	case EV_MOV_CR0: snprintf(out, n, "CR0 %08" PRIx64 "->%08" PRIx64, ev->a, ev->b); break;
	case EV_MOV_CR4: snprintf(out, n, "CR4 %08" PRIx64 "->%08" PRIx64, ev->a, ev->b); break;
	case EV_LSS: snprintf(out, n, "SS:ESP=%04" PRIx64 ":%08" PRIx64, ev->a, ev->b); break;
	case EV_FAR_JMP: snprintf(out, n, "far jmp -> %04" PRIx64 ":%08" PRIx64, ev->a, ev->b); break;
	case EV_INVLPG: snprintf(out, n, "INVLPG %08" PRIx64, ev->a); break;
	case EV_BUSY_CLEAR: snprintf(out, n, "busy bit cleared: %s TSS descriptor (pa %" PRIx64 ")", space_word((int)ev->b), ev->a); break;
	case EV_BUSY_SET: snprintf(out, n, "busy bit set: %s TSS descriptor (pa %" PRIx64 ")", space_word((int)ev->b), ev->a); break;
	case EV_DESC_WRITE: snprintf(out, n, "GDT write at pa %" PRIx64 ": %" PRIx64 "->%" PRIx64, ev->a, ev->b, ev->c); break;
	case EV_PTE_WRITE:
		if (ev->lin_size)
			snprintf(out, n, "%s PTE (pa %" PRIx64 ") for %08" PRIx32 "+%" PRIx32 ": %" PRIx64 "->%" PRIx64,
				 space_word(ev->space), ev->a, ev->lin, ev->lin_size, ev->b, ev->c);
		else
			snprintf(out, n, "%s paging entry (pa %" PRIx64 "): %" PRIx64 "->%" PRIx64, space_word(ev->space), ev->a, ev->b, ev->c);
		break;
	case EV_SHIM_ENTER: snprintf(out, n, "enters the shim (%s)", ev->b ? "host->monitor" : "monitor->host"); break;
	case EV_GUEST_RUN: snprintf(out, n, "the guest has control"); break;
	case EV_FAULT: snprintf(out, n, "FAULT vector %" PRIu64 " err %" PRIx64 " cr2 %08" PRIx64, ev->a, ev->b, ev->c); break;
	case EV_N: out[0] = '\0'; break;
	}
}

void report_trace_text(FILE *f, const struct report_ctx *r)
{
	const struct pipeline *p = r->p;
	const struct trace *t = &p->t;
	fprintf(f, "shimcheck trace: variant %s (%s), scenario %s (%s), engine unicorn %s\n", p->code.variant, r->code_dir,
		p->sc.name, r->scenario_path, engine_version());
	fprintf(f, "shim page: linear %08" PRIx32 " = physical %" PRIx64 " in both spaces; host CR3 %08" PRIx32
		", monitor CR3 %08" PRIx32 "\n", p->img.shim_lin, p->img.shim_pa, p->img.w[SP_HOST].regs.cr3,
		p->img.w[SP_MON].regs.cr3);
	fprintf(f, "columns: #, space (H host, M monitor, by CR3), linear EIP, bytes, disassembly; "
		"then memory (R/W linear->physical =value) and events\n\n");
	struct listing lst;
	listing_load(&lst, &p->code); /* binaries without a listing just show no source line */
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		const char *sym = image_sym_at(&p->img, in->space == SP_MON ? SP_MON : SP_HOST, in->cpu.eip);
		if (sym)
			fprintf(f, "%*s<%s>\n", 16, "", sym);
		char b[64];
		bytes_str(in, b, sizeof b);
		fprintf(f, "%5u %s %08" PRIx32 "  %-24s %s\n", i, space_tag(in->space), in->cpu.eip, b,
			in->text[0] ? in->text : "(not fetched)");
		const char *src = listing_for_insn(&lst, &p->img, in);
		if (src)
			fprintf(f, "%16s ; %s\n", "", src);
		for (uint32_t m = 0; m < in->mem_n; m++) {
			const struct tr_mem *a = &t->mem[in->mem_first + m];
			char lin[16] = "????????";
			if (a->lin_known)
				snprintf(lin, sizeof lin, "%08" PRIx32, a->lin);
			fprintf(f, "%16s %c %s->%06" PRIx64 " %u =%" PRIx64 "%s\n", "", a->write ? 'W' : 'R', lin, a->pa, a->size,
				a->value, a->write ? "" : "");
		}
		for (uint32_t k = 0; k < in->ev_n; k++) {
			char e[200];
			event_str(&t->ev[in->ev_first + k], e, sizeof e);
			fprintf(f, "%16s * %s\n", "", e);
		}
		for (int x = 0; x < p->v.n && x < MAX_VIOLATIONS; x++)
			if (p->v.v[x].insn == i)
				fprintf(f, "%16s ! %s: %s\n", "", rule_id(p->v.v[x].rule), p->v.v[x].msg);
	}
	listing_free(&lst);
	fprintf(f, "\nend: %s (%s)\n", tr_end_name(t->end), t->end_detail);
	report_verdict_text(f, r);
}

/* ---- JSONL ----------------------------------------------------------------------------------- */

static int put_line(FILE *f, json_t *o)
{
	int rc = json_dumpf(o, f, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (rc != 0 || fputc('\n', f) == EOF)
		return -1;
	return 0;
}

static json_t *world_json(const struct world *w)
{
	json_t *o = json_object();
	json_object_set_new(o, "cr3", hex(w->regs.cr3));
	json_object_set_new(o, "cr0", hex(w->regs.cr0));
	json_object_set_new(o, "cr4", hex(w->regs.cr4));
	json_object_set_new(o, "gdtr", hex(w->gdtr.base));
	json_object_set_new(o, "gdtr_limit", hex(w->gdtr.limit));
	json_object_set_new(o, "idtr", hex(w->idtr.base));
	json_object_set_new(o, "idtr_limit", hex(w->idtr.limit));
	json_object_set_new(o, "cs", hex(w->cs));
	json_object_set_new(o, "ss", hex(w->ds));
	json_object_set_new(o, "tr", hex(w->tr));
	json_object_set_new(o, "tss_desc_pa", hex(w->tss_desc_pa));
	return o;
}

int report_trace_jsonl(FILE *f, const struct report_ctx *r)
{
	const struct pipeline *p = r->p;
	const struct trace *t = &p->t;
	json_t *h = json_object();
	json_object_set_new(h, "type", json_string("header"));
	json_object_set_new(h, "schema", json_integer(TRACE_SCHEMA));
	json_object_set_new(h, "tool", json_string("shimcheck"));
	json_object_set_new(h, "engine", json_string("unicorn"));
	json_object_set_new(h, "engine_version", json_string(engine_version()));
	json_object_set_new(h, "variant", json_string(p->code.variant));
	json_object_set_new(h, "scenario", json_string(p->sc.name));
	json_object_set_new(h, "round_trips", json_integer(p->img.rounds));
	json_object_set_new(h, "shim_lin", hex(p->img.shim_lin));
	json_object_set_new(h, "shim_pa", hex(p->img.shim_pa));
	json_object_set_new(h, "host", world_json(&p->img.w[SP_HOST]));
	json_object_set_new(h, "monitor", world_json(&p->img.w[SP_MON]));
	if (put_line(f, h))
		return -1;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct tr_insn *in = &t->insn[i];
		const struct tr_cpu *c = &in->cpu;
		json_t *o = json_object();
		json_object_set_new(o, "type", json_string("insn"));
		json_object_set_new(o, "i", json_integer(i));
		json_object_set_new(o, "space", json_string(space_word(in->space)));
		json_object_set_new(o, "eip", hex(c->eip));
		json_object_set_new(o, "eip_off", hex(c->eip_off));
		json_object_set_new(o, "cs_base", hex(c->cs_base));
		json_object_set_new(o, "pa", in->pa == UINT64_MAX ? json_null() : hex(in->pa));
		char b[40] = "";
		for (int k = 0; k < in->len; k++)
			snprintf(b + 2 * k, sizeof b - 2 * (size_t)k, "%02x", in->bytes[k]);
		json_object_set_new(o, "bytes", json_string(b));
		json_object_set_new(o, "text", json_string(in->text));
		const char *sym = image_sym_at(&p->img, in->space == SP_MON ? SP_MON : SP_HOST, c->eip);
		if (sym)
			json_object_set_new(o, "sym", json_string(sym));
		json_object_set_new(o, "cr3", hex(c->cr3));
		json_object_set_new(o, "gdtr", hex(c->gdtr_base));
		json_object_set_new(o, "idtr", hex(c->idtr_base));
		json_object_set_new(o, "tr", hex(c->tr));
		json_object_set_new(o, "cs", hex(c->cs));
		json_object_set_new(o, "ss", hex(c->ss));
		json_object_set_new(o, "esp", hex(c->gpr[R_ESP]));
		json_object_set_new(o, "eflags", hex(c->eflags));
		json_object_set_new(o, "if", json_boolean(c->eflags & FL_IF));
		if (in->mem_n) {
			json_t *ma = json_array();
			for (uint32_t m = 0; m < in->mem_n; m++) {
				const struct tr_mem *a = &t->mem[in->mem_first + m];
				json_t *x = json_object();
				json_object_set_new(x, "rw", json_string(a->write ? "w" : "r"));
				json_object_set_new(x, "lin", a->lin_known ? hex(a->lin) : json_null());
				json_object_set_new(x, "pa", hex(a->pa));
				json_object_set_new(x, "size", json_integer(a->size));
				json_object_set_new(x, "value", hex(a->value));
				json_array_append_new(ma, x);
			}
			json_object_set_new(o, "mem", ma);
		}
		if (in->ev_n) {
			json_t *ea = json_array();
			for (uint32_t k = 0; k < in->ev_n; k++) {
				const struct tr_event *ev = &t->ev[in->ev_first + k];
				json_t *x = json_object();
				json_object_set_new(x, "kind", json_string(ev_name(ev->kind)));
				json_object_set_new(x, "a", hex(ev->a));
				json_object_set_new(x, "b", hex(ev->b));
				json_object_set_new(x, "c", hex(ev->c));
				if (ev->kind == EV_FAULT)
					json_object_set_new(x, "has_error_code", json_boolean(ev->size));
				if (ev->kind == EV_PTE_WRITE) {
					json_object_set_new(x, "size", json_integer(ev->size));
					json_object_set_new(x, "old_entry", hex(ev->old_entry));
					json_object_set_new(x, "space", json_string(space_word(ev->space)));
					json_object_set_new(x, "lin", hex(ev->lin));
					json_object_set_new(x, "lin_size", hex(ev->lin_size));
				}
				json_array_append_new(ea, x);
			}
			json_object_set_new(o, "events", ea);
		}
		if (put_line(f, o))
			return -1;
	}
	for (int i = 0; i < p->v.n && i < MAX_VIOLATIONS; i++) {
		const struct violation *x = &p->v.v[i];
		json_t *o = json_object();
		json_object_set_new(o, "type", json_string("violation"));
		json_object_set_new(o, "rule", json_string(rule_id(x->rule)));
		json_object_set_new(o, "insn", x->insn < t->n ? json_integer(x->insn) : json_null());
		json_object_set_new(o, "message", json_string(x->msg));
		if (put_line(f, o))
			return -1;
	}
	json_t *e = json_object();
	json_object_set_new(e, "type", json_string("end"));
	json_object_set_new(e, "end", json_string(tr_end_name(t->end)));
	json_object_set_new(e, "detail", json_string(t->end_detail));
	json_object_set_new(e, "instructions", json_integer(t->n));
	json_object_set_new(e, "violations", json_integer(p->v.n));
	json_object_set_new(e, "verdict", json_string(status_of(p) ? "violation" : "pass"));
	return put_line(f, e);
}
