/*
 * code.h: a code directory (build/shim/<variant>/ or a user's --code-dir): manifest.json
 * plus the flat binaries it names, loaded and validated.
 */
#ifndef SHIMCHECK_MODEL_CODE_H
#define SHIMCHECK_MODEL_CODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scenario.h"

enum code_bin_id { CB_HOST = 0, CB_MON = 1, CB_SHIM = 2, CB_N };

/* The switch events a variant declares an order for. */
#define SWE_LIST(X)                    \
	X(SWE_LGDT, "lgdt")            \
	X(SWE_LIDT, "lidt")            \
	X(SWE_BUSY_CLEAR, "busy_clear") \
	X(SWE_LTR, "ltr")              \
	X(SWE_MOV_CR3, "mov_cr3")      \
	X(SWE_LSS, "lss")              \
	X(SWE_FAR_JMP, "far_jmp")
#define SWE_X_ENUM(id, name) id,
enum swe { SWE_LIST(SWE_X_ENUM) SWE_N };
const char *swe_name(enum swe e);

/* Directions: monitor->host and host->monitor. */
enum dir { DIR_M2H = 0, DIR_H2M = 1 };

/* Entry points, in the order of SHIM_ENTRY_POINTS in shim_abi.h. */
enum entry {
	EP_HOST_MAIN, EP_HOST_CALL, EP_HOST_AFTER_CALL, EP_HOST_DONE, EP_HOST2MONITOR, EP_RESTORE_TO_HOST,
	EP_MONITOR_START, EP_MONITOR_RESUME, EP_GUEST_RUN, EP_MONITOR2HOST, EP_SHIM_M2H, EP_SHIM_H2M,
	EP_HOST_TRAP, EP_MONITOR_TRAP, EP_SHIM_NMI, EP_N
};
const char *entry_name(enum entry e);

#define CODE_MAX_SYMS 256
#define ENTRY_ABSENT UINT32_MAX

struct code_sym {
	enum code_bin_id bin;
	uint32_t off;
	char name[48];
};

struct code_bin {
	uint8_t *bytes;
	size_t size;
	size_t slot;
	char path[512];
	char listing[512];
};

struct shim_code {
	char dir[512];
	char variant[48];
	int abi;
	struct code_bin bin[CB_N];
	uint32_t entry[EP_N];     /* offset inside its binary; ENTRY_ABSENT for an optional one */
	int norder[2];
	enum swe order[2][SWE_N]; /* per direction, the declared event order */
	int group[2][SWE_N];      /* order[d][k] belongs to group group[d][k]: events of one group
	                           * may come in any order among themselves (["lgdt", "lidt"]) */
	struct sc_switches sw;    /* state the variant switches beyond CR3/GDTR/IDTR/TR */
	bool nmi_safe;            /* the variant claims every window boundary can take an NMI */
	int nsyms;
	struct code_sym syms[CODE_MAX_SYMS];
};

/* Load dir/manifest.json and the binaries. On failure returns false and writes one line
 * "FILE: FIELD: what" into err. */
bool code_load(const char *dir, struct shim_code *c, char *err, size_t errlen);
void code_free(struct shim_code *c);
enum code_bin_id entry_bin(enum entry e);

#endif
