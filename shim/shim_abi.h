/*
 * shim_abi.h: the one source of the constants shared by the C side and the NASM side.
 *
 * The X-macro lists below are expanded into C enums here and into a NASM %include by
 * shimgen (shim/shimgen.c), which also writes the data-area layout into each variant's
 * manifest.json. Change a value here and every consumer follows; nothing is copied by hand.
 *
 * Binaries of a variant (all position independent, 32-bit, flat):
 *   host.bin     host side: host_main (the test driver), host2monitor, restore_to_host
 *   monitor.bin  monitor side: monitor_start, the guest-PTE prologue/epilogue, monitor_resume
 *   shim.bin     the one-page shim: __monitor2host, __host2monitor, and its data area
 *
 * host.bin and monitor.bin begin with a parameter block (PB_*) that the image builder fills.
 */
#ifndef SHIMCHECK_SHIM_ABI_H
#define SHIMCHECK_SHIM_ABI_H

/* X(name, value) */
#define SHIM_ABI_CONSTANTS(X)                                                                  \
	X(SHIM_ABI_VERSION, 1)                                                                 \
	X(SHIM_PAGE_SIZE, 4096)                                                                \
	X(SHIM_DATA_OFF, 0x800)  /* the data area starts here inside the shim page */          \
	X(SHIM_DATA_SIZE, 0x200) /* bytes reserved for it; every D_* field lies inside */      \
	X(SHIM_GDT_OFF, 0xA00)      /* the shim's own two descriptors, SHIM_SS_SEL then CS_SEL */ \
	X(SHIM_IDT_OFF, 0xC00)      /* the shim's own IDT (32 gates), by linear address */      \
	X(SHIM_IDT_PHYS_OFF, 0xD00) /* the same, for use at the identity address */            \
	X(SHIM_STACK_TOP, 0x1000)   /* the shim's own stack: 0xE00..0xFFF of the page */        \
	X(SHIM_CS_SEL, 0xFF8)       /* flat code, in every world's GDT, for the shim's gates */ \
	X(SHIM_SS_SEL, 0xFF0)       /* flat data, in every world's GDT, for the shim's stack */ \
	X(SHIM_CODE_MAX, 0x800)  /* code must end before the data area */                      \
	X(PB_MAGIC_VALUE, 0x42504853) /* "SHPB" */                                             \
	X(PB_MAGIC, 0x00)  /* parameter block: magic */                                        \
	X(PB_DATA, 0x04)   /* linear address of the shim data area, in this binary's space */ \
	X(PB_ROUNDS, 0x08) /* host: round trips to run */                                      \
	X(PB_OBSERVER, 0x0C) /* host: 0, or a routine called at entry/after each round trip/end */ \
	X(PB_SIZE, 0x10)   /* code may start here */                                           \
	X(SHIM_TOUCH_MAX, 16)

/* Data-area fields: X(name, offset, size, what). Offsets are from the start of the data area.
 * Pseudo-descriptors (GDTR/IDTR) are 6 bytes: limit word, then base dword.
 * SSESP fields are m16:32 for LSS (offset dword, then selector word).
 * TARGET fields are m16:32 for a far JMP (EIP dword, then CS word). */
#define SHIM_DATA_FIELDS(X)                                                                      \
	X(D_H_CR3, 0x00, 4, "host CR3, saved by host2monitor")                                   \
	X(D_H_GDTR, 0x08, 6, "host GDTR, saved by host2monitor (SGDT)")                          \
	X(D_H_IDTR, 0x10, 6, "host IDTR, saved by host2monitor (SIDT)")                          \
	X(D_H_TR, 0x18, 2, "host TR selector, saved by host2monitor (STR)")                       \
	X(D_H_SSESP, 0x20, 6, "host ESP:SS after host2monitor pushed its frame")                  \
	X(D_H_TARGET, 0x28, 6, "far pointer to restore_to_host (EIP, CS)")                        \
	X(D_M_CR3, 0x30, 4, "monitor CR3 (set up once by the monitor)")                          \
	X(D_M_GDTR, 0x38, 6, "monitor GDTR")                                                     \
	X(D_M_IDTR, 0x40, 6, "monitor IDTR")                                                     \
	X(D_M_TR, 0x48, 2, "monitor TR selector")                                                \
	X(D_M_SSESP, 0x50, 6, "monitor ESP:SS, saved when the monitor leaves")                   \
	X(D_M_TARGET, 0x58, 6, "far pointer into the monitor (monitor_start, then monitor_resume)") \
	X(D_M_DS, 0x60, 2, "monitor data selector")                                              \
	X(D_SHIM_LIN, 0x64, 4, "linear address of the shim page (same in both spaces)")          \
	X(D_PTE_LIN, 0x68, 4, "monitor-space linear address of the PTE that maps the shim page")  \
	X(D_PTE_SIZE, 0x6C, 4, "4 (32-bit paging) or 8 (PAE)")                                   \
	X(D_SHIM_PTE, 0x70, 8, "the PTE value that maps the shim page in the monitor space")     \
	X(D_GUEST_PTE, 0x78, 8, "the guest PTE saved by the monitor prologue")                   \
	X(D_ROUNDS, 0x80, 4, "round trips completed (the monitor counts)")                       \
	X(D_GUEST_SEEN, 0x84, 4, "dword the monitor read at the shim address with the guest PTE in place") \
	X(D_M2H_ENTRY, 0x88, 4, "linear address of __monitor2host (from the manifest)")          \
	X(D_H2M_ENTRY, 0x8C, 4, "linear address of __host2monitor (from the manifest)")          \
	X(D_H_CR4, 0x90, 4, "host CR4 (saved by host2monitor in variants that switch CR4)")        \
	X(D_M_CR4, 0x94, 4, "monitor CR4")                                                        \
	X(D_H_XCR3, 0x98, 4, "host-mode transition tables: shim page + identity map (0: none)")   \
	X(D_M_XCR3, 0x9C, 4, "monitor-mode transition tables: shim page + identity map (0: none)") \
	X(D_SHIM_PA, 0xA0, 4, "physical address of the shim page")                               \
	X(D_MODESWITCH, 0xA4, 4, "1 when the two spaces page in different modes (PAE differs)")   \
	X(D_TOUCH_N, 0xA8, 4, "how many linear addresses the guest reads when it runs")           \
	X(D_TOUCH, 0xAC, 64, "those addresses (at most SHIM_TOUCH_MAX dwords)")                  \
	X(D_H_CR0, 0xEC, 4, "host CR0 (saved by host2monitor in variants that switch CR0.WP)")     \
	X(D_M_CR0, 0xF0, 4, "monitor CR0")                                                        \
	X(D_H_EFER, 0xF4, 4, "host EFER, low half (saved in variants that switch EFER.NXE)")       \
	X(D_M_EFER, 0xF8, 4, "monitor EFER, low half")                                           \
	X(D_SHIM_IDTR, 0x100, 6, "IDTR of the shim's own IDT (limit, linear base)")               \
	X(D_SHIM_IDTR_PHYS, 0x108, 6, "IDTR of the shim's IDT for the identity address")         \
	X(D_SHIM_SSESP, 0x110, 6, "ESP:SS of the shim's own stack, by linear address")           \
	X(D_SHIM_SSESP_PHYS, 0x118, 6, "ESP:SS of the shim's stack at the identity address")     \
	X(D_NMI_PENDING, 0x120, 4, "set by the shim's NMI handler: the target world must re-raise it") \
	X(D_SHIM_GDTR, 0x128, 6, "GDTR whose entries SHIM_SS_SEL and SHIM_CS_SEL lie in this page")  \
	X(D_SHIM_GDTR_PHYS, 0x130, 6, "the same by physical address")

#define SHIM_X_ENUM(name, value) name = (value),
#define SHIM_X_FIELD_ENUM(name, off, size, what) name = (off), name##_SIZE = (size),

enum shim_abi_constant { SHIM_ABI_CONSTANTS(SHIM_X_ENUM) };
enum shim_data_field { SHIM_DATA_FIELDS(SHIM_X_FIELD_ENUM) };

/* Entry points every variant exports (names of labels in the NASM sources), per binary. */
#define SHIM_ENTRY_POINTS(X)                                                                    \
	X(host, host_main, "initial EIP: runs PB_ROUNDS round trips, then reaches host_done")      \
	X(host, host_call, "the CALL host2monitor instruction inside host_main")                   \
	X(host, host_after_call, "the instruction after that CALL")                                 \
	X(host, host_done, "the run ends when EIP reaches this address")                           \
	X(host, host2monitor, "host half: saves host state, jumps to __host2monitor")              \
	X(host, restore_to_host, "far-jump target in the host: pops the frame, returns")            \
	X(monitor, monitor_start, "first far-jump target in the monitor")                           \
	X(monitor, monitor_resume, "later far-jump targets in the monitor")                         \
	X(monitor, guest_run, "control is with the guest here: its PTEs must be in force")         \
	X(monitor, monitor2host, "monitor half: prologue (save/remap/INVLPG), jumps to __monitor2host") \
	X(shim, __monitor2host, "shim half: world switch monitor to host")                          \
	X(shim, __host2monitor, "shim half: world switch host to monitor")                          \
	X(host, host_trap, "handler every host IDT gate points to (the window analysis checks it is reachable)") \
	X(monitor, monitor_trap, "handler every monitor IDT gate points to")                        \
	X(shim, __shim_nmi, "(optional) handler of the shim's own IDT, for variants that load it")

#endif
