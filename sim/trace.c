/*
 * trace.c: growable arrays of instructions, memory accesses and events.
 */
#include "trace.h"

#include <stdlib.h>
#include <string.h>

#define X_EV_NAME(id, name) name,
static const char *const ev_names[] = {EV_LIST(X_EV_NAME)};
const char *ev_name(enum ev_kind k) { return k < EV_N ? ev_names[k] : "?"; }

static const char *const end_names[] = {"done", "fault", "bound", "timeout", "stopped", "internal"};
const char *tr_end_name(enum tr_end e) { return e <= END_INTERNAL ? end_names[e] : "?"; }

void trace_init(struct trace *t) { memset(t, 0, sizeof *t); }

void trace_reset(struct trace *t)
{
	t->n = t->nmem = t->nev = 0;
	memset(&t->final, 0, sizeof t->final);
	t->end = END_DONE;
	t->end_detail[0] = '\0';
	t->uc_err = 0;
}

void trace_free(struct trace *t)
{
	free(t->insn);
	free(t->mem);
	free(t->ev);
	memset(t, 0, sizeof *t);
}

/* Grow *arr (of elem bytes) so that one more fits; false when out of memory. */
bool trace_grow(void **arr, uint32_t *cap, uint32_t n, size_t elem)
{
	if (n < *cap)
		return true;
	uint32_t ncap = *cap ? *cap * 2 : 256;
	void *p = realloc(*arr, (size_t)ncap * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

struct tr_event *trace_add_event(struct trace *t, uint32_t insn, enum ev_kind k)
{
	if (!trace_grow((void **)&t->ev, &t->capev, t->nev, sizeof *t->ev))
		return NULL;
	struct tr_event *e = &t->ev[t->nev++];
	memset(e, 0, sizeof *e);
	e->insn = insn;
	e->kind = k;
	if (insn < t->n)
		t->insn[insn].ev_n++;
	return e;
}
