/*
 * scenario.h: what a scenario file describes, as a plain C value.
 *
 * A scenario is two address spaces (the host's, and the monitor's = guest mappings plus
 * monitor mappings), where each world keeps its code, stack, GDT, IDT and TSS, the linear
 * address of the shim page, the guest PTE that the shim page displaces in the monitor
 * space, and extra mappings. Everything physical is named ("host.gdt", "guest.page3") and
 * placed by the image builder, or given as a raw physical address inside the window.
 *
 * scenario_load() parses and validates; a rejection carries one reason from the closed list
 * below (docs/scenario.md explains each) plus the field it concerns.
 */
#ifndef SHIMCHECK_MODEL_SCENARIO_H
#define SHIMCHECK_MODEL_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SC_MAX_MAPS 64
#define SC_NAME_MAX 64
#define SC_MAX_ROUNDS 64
#define SC_GUEST_PAGES 16
#define SC_MAX_TOUCH 16

/* The closed list of reasons a scenario can be rejected. */
#define SC_REASONS(X)                                                                        \
	X(SC_OK, "ok", "accepted")                                                           \
	X(SC_JSON, "json", "the file is not readable JSON")                                  \
	X(SC_TYPE, "type", "a field has the wrong JSON type or an unparsable value")         \
	X(SC_UNKNOWN, "unknown-field", "a field the schema does not define")                 \
	X(SC_MISSING, "missing-field", "a required field is absent")                         \
	X(SC_RANGE, "range", "a value outside its range (alignment, count, size)")           \
	X(SC_OVERLAP, "overlap", "two objects of one space share a linear page")             \
	X(SC_WINDOW, "window", "a physical address outside the declared physical window")    \
	X(SC_UNSWITCHED, "unswitched-state",                                                 \
	  "the two spaces differ in state the variant does not switch")                      \
	X(SC_PAGING, "paging-conflict", "a mapping the page tables cannot express")           \
	X(SC_FULL, "image-full", "the physical window has no room left")

#define SC_X_ENUM(id, name, why) id,
enum sc_reason { SC_REASONS(SC_X_ENUM) SC_NREASONS };

const char *sc_reason_name(enum sc_reason r);
const char *sc_reason_why(enum sc_reason r);

enum sc_paging { SC_4K = 0, SC_PSE = 1, SC_PAE = 2 };

/* Layout objects every world has, in this order. */
enum sc_obj { OBJ_CODE, OBJ_STACK, OBJ_GDT, OBJ_IDT, OBJ_TSS, OBJ_NWORLD };
/* Monitor-only objects, indexed after the world objects. */
enum sc_mobj { MOBJ_SHIM_ALIAS = OBJ_NWORLD, MOBJ_PT_WINDOW, OBJ_NMON };

enum sc_space { SP_HOST = 0, SP_MON = 1 };

/* A physical reference: a named frame, or a raw physical address. */
enum sc_frame_kind { FR_NONE, FR_RAW, FR_WORLD, FR_SHIM, FR_GUEST };
struct sc_frame {
	enum sc_frame_kind kind;
	uint64_t raw;      /* FR_RAW: physical address */
	enum sc_space sp;  /* FR_WORLD: whose object */
	int obj;           /* FR_WORLD: OBJ_* / MOBJ_*; FR_GUEST: page number */
};

/* One mapping. Either a frame + flags, or a raw entry value (any bits, present or not). */
struct sc_map {
	uint32_t lin;
	bool large;         /* a 4 MiB (32-bit PSE) or 2 MiB (PAE) page */
	bool has_raw;
	uint64_t raw;       /* the entry, verbatim */
	struct sc_frame to;
	uint32_t flags;     /* PTE_* low bits (PTE_P implied) */
	uint32_t flags_hi;  /* PAE high bits (PTE_NX_HI) */
	char field[SC_NAME_MAX]; /* where it came from, for messages */
};

struct sc_state {
	enum sc_paging paging;
	bool cr0_wp, cr4_pge, efer_nxe;
	uint16_t ldtr;
};

struct sc_world {
	struct sc_state state;
	uint32_t lin[OBJ_NMON];      /* linear address of each layout object (monitor-only ones unused in the host) */
	uint16_t sel_cs, sel_ds, sel_tss;
	int nmaps;
	struct sc_map maps[SC_MAX_MAPS];
};

struct scenario {
	char name[SC_NAME_MAX];
	uint32_t rounds;
	uint32_t shim_lin;
	bool cs_wrap;             /* monitor enters the shim through a CS that wraps at 4 GiB */
	struct sc_world w[2];     /* SP_HOST, SP_MON */
	struct sc_map guest_shim; /* the guest's own entry at shim_lin in the monitor space */
	int ntouch;
	uint32_t touch[SC_MAX_TOUCH]; /* linear addresses the guest reads when it runs */
	int nguest;
	struct sc_map guest[SC_MAX_MAPS];
	uint64_t phys_base, phys_size; /* the physical window */
};

struct sc_error {
	enum sc_reason reason;
	char field[128];   /* JSON path, e.g. "monitor.layout.gdt" */
	char detail[160];
};

/* Parse file (JSON) into *sc. Returns SC_OK or the reason, with *err filled. */
enum sc_reason scenario_load(const char *path, struct scenario *sc, struct sc_error *err);
enum sc_reason scenario_parse(const char *text, size_t len, struct scenario *sc, struct sc_error *err);

/* Checks that need no JSON: alignment, overlaps, window, paging-expressibility. Also used
 * on generated scenarios (property tests, fuzzer). */
enum sc_reason scenario_validate(const struct scenario *sc, struct sc_error *err);

/* Variant-dependent checks: every piece of state the variant does not switch must agree
 * between the spaces (SC_UNSWITCHED); a PTE swap cannot displace a large guest page and a
 * PDE swap must not unmap the monitor's own pages (SC_PAGING, SC_OVERLAP). */
struct sc_switches {
	bool paging, cr0_wp, cr4_pge, efer_nxe, ldtr;
	bool pde_swap; /* the monitor swaps the whole PDE for the shim address, not its PTE */
};
enum sc_reason scenario_check_unswitched(const struct scenario *sc, const struct sc_switches *sw,
					 struct sc_error *err);

/* The scenario as a scenario file (malloc'd, NUL-terminated; NULL when out of memory). */
char *scenario_to_json(const struct scenario *sc, const char *description);

const char *sc_obj_name(int obj);
const char *sc_space_name(enum sc_space sp);

#endif
