/*
 * pipeline.c: the one path from inputs to a verdict.
 */
#include "pipeline.h"

#include <stdio.h>
#include <string.h>

#include "../model/mmu.h"
#include "window.h"

void pl_init(struct pipeline *p)
{
	memset(p, 0, sizeof *p);
	trace_init(&p->t);
}

void pl_free(struct pipeline *p)
{
	if (p->have_code)
		code_free(&p->code);
	image_free(&p->img);
	engine_close(p->eng);
	p->loaded = false;
	trace_free(&p->t);
	p->have_code = p->have_img = false;
	p->eng = NULL;
}

enum pl_status pl_load_code(struct pipeline *p, const char *dir)
{
	if (p->have_code)
		code_free(&p->code);
	p->have_code = code_load(dir, &p->code, p->err, sizeof p->err);
	p->loaded = false;
	return p->have_code ? PL_OK : PL_INPUT;
}

void pl_use_code(struct pipeline *p, struct shim_code *c)
{
	if (p->have_code)
		code_free(&p->code);
	p->code = *c;
	p->have_code = true;
	p->have_img = false; /* the image embeds the code: rebuild it */
	p->loaded = false;
}

enum pl_status pl_set_scenario(struct pipeline *p, const struct scenario *sc, const char *label)
{
	struct sc_error err;
	if (&p->sc != sc)
		p->sc = *sc;
	p->have_img = false; /* the buffer stays in p->img for image_rebuild */
	p->loaded = false;
	enum sc_reason r = scenario_validate(&p->sc, &err);
	if (r == SC_OK)
		r = scenario_check_unswitched(&p->sc, &p->code.sw, &err);
	if (r == SC_OK)
		p->have_img = (r = image_rebuild(&p->sc, &p->code, &p->img, &err)) == SC_OK;
	if (r != SC_OK) {
		snprintf(p->err, sizeof p->err, "%s: %s: %s (rejected: %s)", label, err.field, err.detail, sc_reason_name(r));
		return PL_INPUT;
	}
	return PL_OK;
}

enum pl_status pl_load_scenario(struct pipeline *p, const char *path)
{
	struct sc_error err;
	enum sc_reason r = scenario_load(path, &p->sc, &err);
	if (r != SC_OK) {
		snprintf(p->err, sizeof p->err, "%s: %s: %s (rejected: %s)", path, err.field, err.detail, sc_reason_name(r));
		return PL_INPUT;
	}
	return pl_set_scenario(p, &p->sc, path);
}

/* Open the engine on first use and give it the image. */
static enum pl_status ready(struct pipeline *p)
{
	char err[256];
	if (!p->have_img || !p->have_code) {
		snprintf(p->err, sizeof p->err, "internal: pl_run without a scenario and code");
		return PL_INTERNAL;
	}
	if (!p->eng && !(p->eng = engine_open(err, sizeof err))) {
		snprintf(p->err, sizeof p->err, "unicorn: %s", err);
		return PL_UNAVAILABLE;
	}
	if (!p->loaded && !engine_load(p->eng, &p->img, err, sizeof err)) {
		snprintf(p->err, sizeof p->err, "engine: %s", err);
		return PL_INTERNAL;
	}
	p->loaded = true; /* the engine keeps the image until the next scenario */
	return PL_OK;
}

enum pl_status pl_run(struct pipeline *p)
{
	enum pl_status s = ready(p);
	if (s != PL_OK)
		return s;
	struct run_limits lim = {0, 0, true};
	if (!engine_run(p->eng, &p->t, &lim)) {
		snprintf(p->err, sizeof p->err, "engine: %s", p->t.end_detail);
		return PL_INTERNAL;
	}
	check_all(&p->t, &p->img, &p->code, &p->v);
	if (p->code.nmi_safe && p->t.end == END_DONE) {
		/* The variant claims an NMI could arrive at any boundary of its switch: check it. */
		static struct wanalysis a;
		struct physmem mem = engine_memory(p->eng);
		window_analyse(&p->t, &p->img, T_NMI, &mem, &a);
		for (int i = 0; i < a.n; i++)
			if (a.b[i].verdict == WV_UNSAFE)
				verdict_add(&p->v, R_NMI, a.b[i].insn, "an NMI before `%s` would not be handled safely: %s",
					    p->t.insn[a.b[i].insn].text, a.b[i].reason);
	}
	return p->v.n ? PL_VIOLATION : PL_OK;
}
