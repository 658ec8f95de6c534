/*
 * scenario_write.c: struct scenario back to a scenario file, so that every generated or
 * shrunk scenario (fuzzer findings, property-test failures) replays with `shimcheck run`.
 * scenario_parse(scenario_to_json(x)) gives x back (tests/unit/test_scenario.c checks it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "mmu.h"
#include "scenario.h"

static json_t *hex(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof b, "0x%" PRIX64, v);
	return json_string(b);
}

static const char *const paging_names[] = {"4k", "pse", "pae"};

static json_t *frame_json(const struct sc_frame *fr)
{
	char b[48];
	switch (fr->kind) {
	case FR_RAW: return hex(fr->raw);
	case FR_SHIM: return json_string("shim");
	case FR_WORLD:
		snprintf(b, sizeof b, "%s.%s", sc_space_name(fr->sp), sc_obj_name(fr->obj));
		return json_string(b);
	case FR_GUEST:
		snprintf(b, sizeof b, "guest.page%d", fr->obj);
		return json_string(b);
	case FR_NONE: break;
	}
	return json_null();
}

static json_t *flags_json(uint32_t lo, uint32_t hi)
{
	char b[16];
	int n = 0;
	if (lo & PTE_W) b[n++] = 'w';
	if (lo & PTE_U) b[n++] = 'u';
	if (lo & PTE_A) b[n++] = 'a';
	if (lo & PTE_D) b[n++] = 'd';
	if (lo & PTE_G) b[n++] = 'g';
	if (lo & PTE_PWT) b[n++] = 't';
	if (lo & PTE_PCD) b[n++] = 'c';
	if (hi & PTE_NX_HI) b[n++] = 'n';
	b[n] = '\0';
	return json_string(b);
}

static json_t *map_json(const struct sc_map *m, bool with_linear)
{
	json_t *o = json_object();
	if (with_linear)
		json_object_set_new(o, "linear", hex(m->lin));
	if (m->large)
		json_object_set_new(o, "size", json_string("large"));
	if (m->has_raw) {
		json_object_set_new(o, "raw", hex(m->raw));
	} else {
		json_object_set_new(o, "to", frame_json(&m->to));
		json_object_set_new(o, "flags", flags_json(m->flags, m->flags_hi));
	}
	return o;
}

static json_t *maps_json(const struct sc_map *maps, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, map_json(&maps[i], true));
	return a;
}

static json_t *world_json(const struct scenario *sc, enum sc_space sp)
{
	const struct sc_world *w = &sc->w[sp];
	json_t *o = json_object(), *st = json_object(), *lay = json_object(), *sel = json_object();
	json_object_set_new(st, "paging", json_string(paging_names[w->state.paging]));
	json_object_set_new(st, "cr0_wp", json_boolean(w->state.cr0_wp));
	json_object_set_new(st, "cr4_pge", json_boolean(w->state.cr4_pge));
	json_object_set_new(st, "efer_nxe", json_boolean(w->state.efer_nxe));
	json_object_set_new(st, "ldtr", hex(w->state.ldtr));
	int nobj = sp == SP_HOST ? OBJ_NWORLD : OBJ_NMON;
	for (int i = 0; i < nobj; i++)
		json_object_set_new(lay, sc_obj_name(i), hex(w->lin[i]));
	json_object_set_new(sel, "cs", hex(w->sel_cs));
	json_object_set_new(sel, "ds", hex(w->sel_ds));
	json_object_set_new(sel, "tss", hex(w->sel_tss));
	json_object_set_new(o, "state", st);
	json_object_set_new(o, "layout", lay);
	json_object_set_new(o, "selectors", sel);
	json_object_set_new(o, "maps", maps_json(w->maps, w->nmaps));
	return o;
}

char *scenario_to_json(const struct scenario *sc, const char *description)
{
	json_t *o = json_object();
	json_object_set_new(o, "schema", json_integer(1));
	json_object_set_new(o, "name", json_string(sc->name));
	if (description)
		json_object_set_new(o, "description", json_string(description));
	json_object_set_new(o, "round_trips", json_integer(sc->rounds));
	json_object_set_new(o, "shim", hex(sc->shim_lin));
	json_object_set_new(o, "cs_wrap", json_boolean(sc->cs_wrap));
	json_t *win = json_object();
	json_object_set_new(win, "base", hex(sc->phys_base));
	json_object_set_new(win, "size", hex(sc->phys_size));
	json_object_set_new(o, "phys_window", win);
	json_object_set_new(o, "host", world_json(sc, SP_HOST));
	json_object_set_new(o, "monitor", world_json(sc, SP_MON));
	json_t *g = json_object();
	json_object_set_new(g, "shim_pte", map_json(&sc->guest_shim, false));
	json_object_set_new(g, "maps", maps_json(sc->guest, sc->nguest));
	json_t *touch = json_array();
	for (int i = 0; i < sc->ntouch; i++)
		json_array_append_new(touch, hex(sc->touch[i]));
	json_object_set_new(g, "touch", touch);
	json_object_set_new(o, "guest", g);
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}
