/*
 * gen.c: random scenarios for property tests and the fuzzer, biased toward collisions.
 *
 * The guest owns its page tables, so it may put anything anywhere the monitor has not
 * claimed: at the host GDT/IDT/TSS/stack/code linear addresses, next to the shim (in its
 * page-directory region), with large pages, global pages, read-only pages, or entries that
 * alias the shim page, the descriptor tables or anything else in the window. The generator
 * picks those places far more often than chance would; the validator then rejects what no
 * real layout allows, with a reason from the closed list.
 */
#include "gen.h"

#include <stdio.h>
#include <string.h>

#include "mmu.h"

uint64_t rng_next(struct rng *r)
{
	/* splitmix64: a full-period 64-bit generator, fine for test-case generation */
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

uint32_t rng_below(struct rng *r, uint32_t n) { return n ? (uint32_t)(rng_next(r) % n) : 0; }
bool rng_chance(struct rng *r, unsigned percent) { return rng_below(r, 100) < percent; }

static uint32_t page(struct rng *r) { return (rng_below(r, 0xFFFFF - 1) + 1) << PGSHIFT; }

/* A linear page near a given one: same page-directory region, often adjacent. */
static uint32_t near(struct rng *r, uint32_t lin)
{
	if (rng_chance(r, 50))
		return (lin & PGMASK) + (rng_chance(r, 50) ? PGSIZE : (uint32_t)-PGSIZE);
	return (lin & 0xFFC00000u) | (rng_below(r, 1024) << PGSHIFT);
}

static void layout(struct rng *r, uint32_t *lin, int n, uint32_t shim)
{
	/* Usually contiguous (a kernel's data), sometimes scattered. */
	uint32_t base = page(r) & 0xFFF00000u;
	bool scatter = rng_chance(r, 25);
	for (int i = 0; i < n; i++) {
		lin[i] = scatter ? page(r) : base + ((uint32_t)i << PGSHIFT);
		if (lin[i] == shim)
			lin[i] += 64 * PGSIZE;
	}
}

static enum sc_paging paging(struct rng *r) { return (enum sc_paging)rng_below(r, 3); }

static uint32_t flags(struct rng *r, bool nx_ok)
{
	uint32_t f = PTE_A;
	if (rng_chance(r, 75))
		f |= PTE_W;
	if (rng_chance(r, 50))
		f |= PTE_U;
	if (rng_chance(r, 30))
		f |= PTE_D;
	if (rng_chance(r, 20))
		f |= PTE_G;
	if (rng_chance(r, 10))
		f &= ~PTE_A;
	(void)nx_ok;
	return f;
}

/* A physical frame for a guest mapping: a guest page, or (collisions) one of the image's
 * own frames: the shim page, a world's GDT/IDT/TSS/stack/code, or a raw page. */
static struct sc_frame frame(struct rng *r)
{
	struct sc_frame fr = {0};
	unsigned k = rng_below(r, 100);
	if (k < 55) {
		fr.kind = FR_GUEST;
		fr.obj = (int)rng_below(r, SC_GUEST_PAGES);
	} else if (k < 65) {
		fr.kind = FR_SHIM;
	} else if (k < 90) {
		fr.kind = FR_WORLD;
		fr.sp = rng_chance(r, 50) ? SP_HOST : SP_MON;
		fr.obj = (int)rng_below(r, OBJ_NWORLD);
	} else {
		fr.kind = FR_RAW;
		fr.raw = 0x00400000u + ((uint64_t)rng_below(r, 0xC00) << PGSHIFT);
	}
	return fr;
}

static void add_map(struct rng *r, struct sc_map *m, int *n, uint32_t lin, const char *what, bool pae, bool large_ok,
		    enum sc_paging pg)
{
	if (*n >= SC_MAX_MAPS)
		return;
	struct sc_map *x = &m[(*n)++];
	memset(x, 0, sizeof *x);
	snprintf(x->field, sizeof x->field, "%s[%d]", what, *n - 1);
	x->lin = lin & PGMASK;
	if (large_ok && pg != SC_4K && rng_chance(r, 10)) {
		uint32_t size = pg == SC_PAE ? PAE_LARGE : PSE_SIZE;
		x->large = true;
		x->lin &= ~(size - 1);
		x->to.kind = FR_RAW;
		x->to.raw = 0x00800000u + (rng_chance(r, 50) ? 0 : size); /* aligned, inside the default window */
		x->to.raw &= ~(uint64_t)(size - 1);
		x->flags = flags(r, pae);
		return;
	}
	if (rng_chance(r, 10)) {
		/* A verbatim entry: any bits, present or not. */
		x->has_raw = true;
		x->raw = rng_next(r) & (pae ? 0x800000000FFFFFFFull : 0xFFFFFFFFull);
		x->raw &= ~(uint64_t)PTE_PS;
		if (rng_chance(r, 50))
			x->raw &= ~(uint64_t)PTE_P;
		else /* keep the frame inside the window more often than not */
			x->raw = (x->raw & 0xFFF) | (0x00400000u + ((uint64_t)rng_below(r, 0xC00) << PGSHIFT)) | PTE_P;
		return;
	}
	x->to = frame(r);
	x->flags = flags(r, pae);
	if (pae && rng_chance(r, 20))
		x->flags_hi = PTE_NX_HI;
}

static void gen_guest(struct rng *r, struct scenario *sc);

void gen_scenario(struct rng *r, struct scenario *sc)
{
	memset(sc, 0, sizeof *sc);
	snprintf(sc->name, sizeof sc->name, "gen-%016llx", (unsigned long long)r->s);
	sc->rounds = 1 + rng_below(r, 3);
	sc->phys_base = 0x00400000;
	sc->phys_size = 0x00C00000;
	sc->shim_lin = page(r);

	enum sc_paging pg = paging(r);
	bool same = rng_chance(r, 70);
	bool pge = rng_chance(r, 40);
	bool wp = rng_chance(r, 70);
	for (int s = 0; s < 2; s++) {
		struct sc_world *w = &sc->w[s];
		w->state.paging = same || s == SP_HOST ? pg : paging(r);
		w->state.cr0_wp = rng_chance(r, 90) ? wp : !wp;
		w->state.cr4_pge = rng_chance(r, 85) ? pge : !pge;
		w->state.efer_nxe = w->state.paging == SC_PAE && rng_chance(r, 50);
		layout(r, w->lin, s == SP_HOST ? OBJ_NWORLD : OBJ_NMON, sc->shim_lin);
		unsigned a = 1 + rng_below(r, 40), b = 1 + rng_below(r, 40), c = 1 + rng_below(r, 40);
		if (a == b || b == c || a == c)
			a = 1, b = 2, c = 3;
		w->sel_cs = (uint16_t)(a << 3);
		w->sel_ds = (uint16_t)(b << 3);
		w->sel_tss = (uint16_t)(c << 3);
	}
	/* Both spaces agree on NXE more often than not (literal cannot switch it). */
	if (rng_chance(r, 80))
		sc->w[SP_MON].state.efer_nxe = sc->w[SP_HOST].state.efer_nxe &&
					       sc->w[SP_MON].state.paging == SC_PAE;

	bool hpae = sc->w[SP_HOST].state.paging == SC_PAE, mpae = sc->w[SP_MON].state.paging == SC_PAE;
	bool hnx = sc->w[SP_HOST].state.efer_nxe, mnx = sc->w[SP_MON].state.efer_nxe;
	struct sc_world *h = &sc->w[SP_HOST], *m = &sc->w[SP_MON];
	/* The host maps the monitor's GDT (the documented order needs it), and some of its own
	 * pages, often global (a kernel's are). */
	if (rng_chance(r, 85)) {
		add_map(r, h->maps, &h->nmaps, m->lin[OBJ_GDT], "host.maps", hpae && hnx, false, h->state.paging);
		struct sc_map *x = &h->maps[h->nmaps - 1];
		x->has_raw = false;
		x->large = false;
		x->to = (struct sc_frame){FR_WORLD, 0, SP_MON, OBJ_GDT};
		x->flags = PTE_W | PTE_A | (rng_chance(r, 30) ? PTE_G : 0);
		x->flags_hi = 0;
	}
	for (unsigned i = rng_below(r, 4); i > 0; i--)
		add_map(r, h->maps, &h->nmaps, rng_chance(r, 50) ? near(r, sc->shim_lin) : page(r), "host.maps",
			hpae && hnx, true, h->state.paging);
	/* The monitor maps the host GDT at its linear address only sometimes: the guest may want
	 * that address. */
	if (rng_chance(r, 50)) {
		add_map(r, m->maps, &m->nmaps, h->lin[OBJ_GDT], "monitor.maps", mpae && mnx, false, m->state.paging);
		struct sc_map *x = &m->maps[m->nmaps - 1];
		x->has_raw = false;
		x->large = false;
		x->to = (struct sc_frame){FR_WORLD, 0, SP_HOST, OBJ_GDT};
		x->flags = PTE_W | PTE_A;
		x->flags_hi = 0;
	}
	gen_guest(r, sc);
}

/* The guest's side of sc: its maps (collisions first), its own entry at the shim address,
 * the pages it reads. Everything else of sc stays. */
static void gen_guest(struct rng *r, struct scenario *sc)
{
	struct sc_world *h = &sc->w[SP_HOST], *m = &sc->w[SP_MON];
	bool mpae = m->state.paging == SC_PAE, mnx = m->state.efer_nxe;
	bool mon_maps_host_gdt = false;
	for (int i = 0; i < m->nmaps; i++)
		mon_maps_host_gdt |= m->maps[i].lin == (h->lin[OBJ_GDT] & PGMASK) && !m->maps[i].has_raw &&
				     m->maps[i].to.kind == FR_WORLD && m->maps[i].to.sp == SP_HOST &&
				     m->maps[i].to.obj == OBJ_GDT;
	sc->nguest = 0;
	memset(sc->guest, 0, sizeof sc->guest);
	memset(&sc->guest_shim, 0, sizeof sc->guest_shim);
	/* The guest: collisions first. */
	struct sc_map *gm = sc->guest;
	int *gn = &sc->nguest;
	for (int o = 0; o < OBJ_NWORLD; o++)
		if (rng_chance(r, o == OBJ_GDT ? 40 : 15) && !(o == OBJ_GDT && mon_maps_host_gdt))
			add_map(r, gm, gn, h->lin[o], "guest.maps", mpae && mnx, false, m->state.paging);
	for (unsigned i = rng_below(r, 4); i > 0; i--)
		add_map(r, gm, gn, near(r, sc->shim_lin), "guest.maps", mpae && mnx, false, m->state.paging);
	for (unsigned i = rng_below(r, 4); i > 0; i--)
		add_map(r, gm, gn, page(r), "guest.maps", mpae && mnx, true, m->state.paging);
	/* The guest's own entry at the shim address. */
	struct sc_map *gs = &sc->guest_shim;
	snprintf(gs->field, sizeof gs->field, "guest.shim_pte");
	gs->lin = sc->shim_lin;
	if (m->state.paging != SC_4K && rng_chance(r, 15)) {
		uint32_t size = m->state.paging == SC_PAE ? PAE_LARGE : PSE_SIZE;
		gs->large = true;
		gs->to.kind = FR_RAW;
		gs->to.raw = 0x00800000u & ~(uint64_t)(size - 1);
		gs->flags = flags(r, mpae && mnx);
	} else if (rng_chance(r, 15)) {
		gs->has_raw = true;
		gs->raw = rng_chance(r, 50) ? 0 : ((0x00400000u + ((uint64_t)rng_below(r, 0xC00) << PGSHIFT)) | PTE_P | PTE_A |
						   (rng_next(r) & 0x16E));
	} else {
		gs->to = frame(r);
		gs->flags = flags(r, mpae && mnx);
	}
	/* The guest reads its shim-address page when present, and some of its other pages. */
	sc->ntouch = 0;
	bool shim_present = gs->has_raw ? (gs->raw & PTE_P) != 0 : true;
	if (shim_present)
		sc->touch[sc->ntouch++] = sc->shim_lin + 4 * rng_below(r, 1024);
	for (int i = 0; i < sc->nguest && sc->ntouch < SC_MAX_TOUCH; i++) {
		const struct sc_map *x = &gm[i];
		if ((x->has_raw && !(x->raw & PTE_P)) || !rng_chance(r, 60))
			continue;
		sc->touch[sc->ntouch++] = x->lin + 4 * rng_below(r, 1024);
	}
	if (sc->ntouch == 0) {
		/* Nothing present to read: give the guest one page of its own. */
		add_map(r, gm, gn, page(r), "guest.maps", false, false, SC_4K);
		struct sc_map *x = &gm[*gn - 1];
		x->has_raw = false;
		x->large = false;
		x->to = (struct sc_frame){FR_GUEST, 0, SP_HOST, 15};
		x->flags = PTE_A | PTE_U;
		x->flags_hi = 0;
		sc->touch[sc->ntouch++] = x->lin;
	}
}

void gen_sibling(struct rng *r, const struct scenario *base, struct scenario *sc)
{
	if (sc != base)
		*sc = *base;
	snprintf(sc->name, sizeof sc->name, "gen-%016llx", (unsigned long long)r->s);
	sc->rounds = 1 + rng_below(r, 3);
	gen_guest(r, sc);
}
