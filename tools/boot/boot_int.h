/*
 * boot_int.h: the parts of `shimcheck boot` (tools/boot/boot_*.c) and what they share.
 *
 *   boot_obs.c     observations: the simulator's side (from the trace) and comparing them
 *   boot_log.c     reading the kernel's lines and the engines' logs (text in, structures out:
 *                  what the fuzz target tools/fuzz-targets/fuzz_bootlog.c runs)
 *   boot_engine.c  running QEMU (TCG) and Bochs on one or more images (a batch), reading what
 *                  the boot kernel and the engine say, per image
 *   boot_kvm.c     QEMU with KVM: no exec or exception log there, so QMP (events, registers)
 *   boot_step.c    --step: QEMU's gdbstub driven by gdb, EIP and CR3 per instruction
 *   boot_cmd.c     the command line and its modes: scenarios (one or a batch), mutants from
 *                  tests/mutants/catalogue.json, the interrupt-window experiment
 *   boot_compare.c `shimcheck compare LOG`: a serial log from a PC (or any engine) against
 *                  the simulator
 *
 * See docs/hardware.md.
 */
#ifndef SHIMCHECK_TOOLS_BOOT_INT_H
#define SHIMCHECK_TOOLS_BOOT_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "pipeline.h"

enum { B_OK = 0, B_DIVERGE = 1, B_INPUT = 2, B_INTERNAL = 3, B_UNAVAILABLE = 77 };

/* ---- observations -------------------------------------------------------------------------- */

/* Fields of an observation, named as in the simulator's JSONL where they overlap. A
 * divergence names the first differing field in this order: the specific ones (guest_seen)
 * before the checksum that covers them (shim_sum). dr6 comes from the engine only (never
 * compared); handler is the trap routine a run stopped in (kind "trap"). */
#define OBS_FIELDS(X)                                                                      \
	X(F_CR0, "cr0") X(F_CR3, "cr3") X(F_CR4, "cr4") X(F_EFER, "efer")                   \
	X(F_GDTR, "gdtr") X(F_GDTR_LIMIT, "gdtr_limit") X(F_IDTR, "idtr")                    \
	X(F_IDTR_LIMIT, "idtr_limit") X(F_TR, "tr") X(F_TR_DESC, "tr_desc")                  \
	X(F_CS, "cs") X(F_SS, "ss") X(F_DS, "ds") X(F_ES, "es") X(F_FS, "fs") X(F_GS, "gs")  \
	X(F_EFLAGS, "eflags") X(F_EAX, "eax") X(F_ECX, "ecx") X(F_EDX, "edx")                \
	X(F_EBX, "ebx") X(F_ESP, "esp") X(F_EBP, "ebp") X(F_ESI, "esi") X(F_EDI, "edi")      \
	X(F_SHIM_ENTRY, "shim_entry") X(F_GUEST_SEEN, "guest_seen")                          \
	X(F_MONITOR_ROUNDS, "monitor_rounds") X(F_NMI_PENDING, "nmi_pending")                \
	X(F_SHIM_SUM, "shim_sum") X(F_DR6, "dr6")                                            \
	X(F_VECTOR, "vector") X(F_ERROR, "error") X(F_EIP, "eip") X(F_CR2, "cr2")            \
	X(F_HANDLER, "handler")

#define F_ENUM(id, name) id,
enum ofield { OBS_FIELDS(F_ENUM) F_N };
extern const char *const field_name[F_N];

/* How a list of observations goes on or ends. trap: the run stopped in a trap routine of the
 * image (monitor_trap, host_trap: HLT loops; __shim_nmi, which returns to the faulting
 * instruction, so the engine is stopped at its first instruction). */
enum okind { O_ENTRY, O_ROUND, O_END, O_EXCEPTION, O_SHUTDOWN, O_TRAP, O_TIMEOUT, O_STOPPED, O_NOT_RUN };
extern const char *const okind_name[];

struct obs {
	enum okind kind;
	int n;            /* entry 0; round k (1-based); the others: round trips seen before */
	uint64_t have;    /* bit f: field f is known */
	uint64_t v[F_N];
	char note[200];   /* how this side knows (shutdown: the engine's words; sim: why) */
};

#define MAX_OBS 80 /* entry + 64 round trips + end, with room */

struct obs_list {
	int n;
	struct obs o[MAX_OBS];
};

struct obs *obs_add(struct obs_list *l, enum okind k);
void obs_set(struct obs *o, enum ofield f, uint64_t v);
bool obs_has(const struct obs *o, enum ofield f);
void obs_label(const struct obs *o, char *b, size_t n);
bool obs_ends(const struct obs_list *l); /* the last one is an end the kernel reported */
const struct obs *obs_last(const struct obs_list *l);

/* The trap routines of an image, by linear address (where the engine is stopped). */
#define MAX_TRAPS 4
struct trap_set {
	int n;
	uint32_t lin[MAX_TRAPS];
	const char *name[MAX_TRAPS];
};
void trap_set_of(const struct image *img, const struct shim_code *code, struct trap_set *ts);
const char *trap_name(const struct trap_set *ts, uint32_t lin); /* NULL: not one */

/* Does the guest read bytes the boot kernel changes (the observer blob in the host code page,
 * the host IDT's gates)? Then guest_seen and shim_sum differ by construction; why says where. */
bool guest_reads_kernel_bytes(const struct scenario *sc, const struct image *img, const struct shim_code *code, char *why,
			      size_t n);

/* The simulator's observations at the kernel's observation points (pl_run done). */
bool sim_observations(const struct pipeline *p, struct obs_list *l, char *err, size_t errlen);

/* Index of the first observation that differs, with the field (-1: the kinds or one side
 * is missing); -1 when both lists agree. */
int first_difference(const struct obs_list *a, const struct obs_list *b, int *field);
/* Print the divergence (the line starting with DIVERGENCE, then both sides). */
void print_divergence(FILE *out, const char *engine, const struct obs_list *a, const struct obs_list *b, int at,
		      int field);
void show_side_by_side(FILE *out, const char *engine, const struct obs *a, const struct obs *b, int diff_field);
void write_obs_file(const char *dir, const char *name, const struct obs_list *l);

/* ---- engines ------------------------------------------------------------------------------------- */

struct boot_opts {
	const char *engine, *variant, *code_dir, *keep, *kernel, *mutant, *catalogue, *trigger;
	const char *gdb_exe, *gdb_script; /* --nmi: QEMU under gdb running this script (dir-relative) */
	const char *scenario[64];
	int nscenario;
	int boundary[64];     /* --window: only these (trace indexes); none: every boundary */
	int nboundary;
	double timeout;
	bool verbose, window, no_batch, step, nmi;
};

/* One exception of a chain, from QEMU's -d int log. */
struct exc {
	unsigned vec, err;
	uint32_t pc, cr2;
	bool has_cr2;
};

#define MAX_CHAIN 8

/* What one image did on the engine. */
struct img_run {
	bool started;         /* the kernel's image line was seen */
	bool entered;         /* it reached kernel_enter (QEMU's exec marker) */
	bool kernel_error;    /* the kernel refused the image */
	char message[300];
	struct obs_list obs;
	int nchain;           /* QEMU: the exceptions after kernel_enter, in order, up to the */
	int chain_total;      /*   first arrival at a trap routine (its delivery) */
	struct exc chain[MAX_CHAIN];
	bool chain_known;
	uint32_t handler;     /* QEMU: that trap routine (0: none reached) */
	int nafter;           /* QEMU: exceptions after it (the handler's way back), how many */
	struct exc after[MAX_CHAIN];
	int after_total;
	bool triple;          /* QEMU said "Triple fault" in this image's part of the log */
	int ext_irq;          /* QEMU: the first external interrupt serviced in that part (-1: none) */
	bool frame_known;     /* Bochs: the stack at the trap routine (print-stack) */
	uint32_t frame[4];
	int boot;             /* which boot ran it (1-based) */
	int boot_images;      /* how many images that boot had */
	double secs;          /* that boot's time */
};

/* One image to boot: a file in the scratch directory, its arguments, its trap routines. */
struct job {
	char image[64];       /* file name inside the scratch directory */
	char label[96];       /* for messages: the scenario or the boundary */
	bool has_dr0;
	uint32_t dr0;
	struct trap_set traps;
	struct img_run r;
};

struct engine_info {
	const char *engine;
	char version[96];
	char cpu[160];        /* from the kernel's boot line: vendor, brand, signature */
	char loader[64];
	char cpu_note[160];   /* KVM: the CPU model asked for and what the host could not give */
	bool booted;
	int boots;
	double secs;          /* every boot, summed */
	double prep_secs;     /* building ISOs (Bochs), summed */
};

/* ---- the boot log (boot_log.c) ---------------------------------------------------------------------- */

#define KERNEL_ENTER 0x00100010u     /* kernel.ld pins kernel_enter there */
/* isa-debug-exit values the kernel writes (tools/boot/kernel/kernel.h): QEMU exits with
 * (value << 1) | 1. */
#define QEMU_EXIT_OK ((0x10 << 1) | 1)
#define QEMU_EXIT_FAULT ((0x11 << 1) | 1)
#define QEMU_EXIT_KERNEL ((0x12 << 1) | 1)
#define KLOG_MAX_IMAGES 128          /* the kernel's MAX_MODS */

/* One line the kernel prints, decoded. */
enum ktype { K_BOOT, K_MEMORY, K_IMAGE, K_OBS, K_EXC_HOST, K_EXC_KERNEL, K_ERROR, K_DONE, K_UNKNOWN };

struct kline {
	enum ktype type;
	char loader[64], vendor[16], brand[64];  /* boot */
	uint64_t signature;
	bool has_signature;
	int index;                               /* image; error (-1: no image named) */
	char args[100];
	uint64_t sum, module_size;
	bool has_sum, has_module_size;
	char event[16];                          /* observation */
	struct obs o;                            /* observation, exception (both phases) */
	bool has_image;                          /* error */
	char message[240];
	char text[240];                          /* exception: the line itself */
};

/* s[0..n) is one line: -1 it is not a kernel line (no {"type":...), 0 decoded into k,
 * 1 it is one but does not parse (why says what). */
int kline_parse(const char *s, size_t n, struct kline *k, char *why, size_t wn);

/* The kernel's lines in an engine's stream, per job (lenient: noise and cut lines skipped). */
struct kparse {
	struct engine_info *ei;
	struct job *jobs;
	int n;
	int cur;              /* the image the lines belong to (-1 before the first) */
	bool done;            /* the kernel's done line (a batch ran to its end) */
	bool kernel_error;    /* refused before any image: the command line, the modules */
	bool kernel_fault;    /* the kernel itself faulted */
	struct obs fault;     /* its vector, error, EIP */
	char message[300];
};
void parse_kernel_lines(char *text, struct kparse *kp);

/* A serial log (`shimcheck compare`): strict. */
struct klog_image {
	int index, line, obs_line;
	char args[100];
	char scenario[64], variant[48];          /* scenario=NAME variant=NAME in its module string */
	bool has_sum;
	uint32_t sum;
	uint64_t module_size;
	bool refused;
	char message[240];
	bool reset;                              /* the machine booted again before its end */
	struct obs_list obs;
};

struct klog {
	int lines, ignored, boot_line;
	int nboots, reset_line, after_reset;
	char loader[64], vendor[16], brand[64];
	uint64_t signature;
	bool has_signature;
	int nregions;
	int nimages, cap;
	struct klog_image *img;
	bool done, cut_short;
	bool kernel_error, kernel_fault;
	int fault_line;
	char fault[240];
};

/* text[0..n) from file: B_OK, B_INPUT (err: "file:line: why"), B_INTERNAL. klog_free after. */
int klog_parse(const char *text, size_t n, const char *file, struct klog *l, char *err, size_t errlen);
void klog_free(struct klog *l);

/* QEMU's -d int,exec log: per job, the exception chain after its kernel_enter. */
bool trace_addr(const char *line, uint32_t *at);
void qemu_chains_text(char *s, struct job *jobs, int n);
/* Bochs: its triple-fault panic (EIP), the first exception in its CPU debug log, a stop at a
 * debugger breakpoint (and print-stack's frame). */
bool bochs_triple_fault(const char *s, struct obs *o);
void bochs_first_exception_text(const char *s, struct obs *o);
bool bochs_breakpoint(const char *s, uint32_t *at, uint32_t frame[4], bool *frame_known);

/* ---- running things (boot_engine.c) ------------------------------------------------------------------ */

struct proc {
	bool timed_out;
	bool stopped;   /* the poll function asked to stop it */
	int status;     /* exit status, or 128 + signal */
	double secs;
};
typedef bool (*poll_fn)(void *ctx); /* true: stop the program now */

double now_s(void);
/* argv in cwd, stdin /dev/null, stdout+stderr into out_path, its own process group (killed
 * on timeout or when poll says so). false: it could not be started. */
bool run(char *const argv[], const char *cwd, const char *out_path, double timeout, struct proc *r, poll_fn poll,
	 void *ctx);
bool find_exe(const char *name, char *out, size_t n);
/* QEMU and gdb (SHIMCHECK_QEMU, SHIMCHECK_GDB name others) for --MODE, into qemu and gdb
 * (PATH_MAX each); false, with the line saying which is missing, when one is. */
bool find_qemu_gdb(const char *mode, char *qemu, char *gdb);
/* argv in the background (its own process group), and its end: reap_bg waits up to grace
 * seconds, then kills the group. */
pid_t spawn_bg(char *const argv[], const char *cwd, const char *out_path);
void reap_bg(pid_t pid, double grace);
char *slurp(const char *path, size_t *len);
void show_tail(const char *path, int lines);
unsigned megs_for(const char *dir, const struct job *jobs, int n, unsigned floor);
int last_started(const struct job *jobs, int n);
bool jobs_close(struct job *jobs, int l, int boot, int n, double secs);
/* QEMU's version line into ei (once). */
void qemu_version(const char *exe, const char *dir, struct engine_info *ei);
/* QEMU's -initrd for jobs[0..n): "image.bin dr0=0x...,image1.bin", a multiboot module per
 * comma, each with its own string (the kernel reads dr0= there). malloc'd; NULL: no memory. */
char *qemu_initrd(const struct job *jobs, int n);

/* Bochs booting one image with the debugger script rc (--step); output in dir/bochs.out. */
int bochs_script(const struct boot_opts *bo, const char *dir, const char *kernel, const struct job *j, const char *rc,
		 struct engine_info *ei, struct proc *pr);

/* KVM (boot_kvm.c): one boot of jobs[0..n), as qemu's; finished = how many images it settled. */
int kvm_once(const struct boot_opts *bo, const char *dir, const char *kernel, struct job *jobs, int n,
	     struct engine_info *ei, int *finished);

/* The simulator's verdict on one scenario (boot_cmd.c). */
struct scen_res {
	char path[PATH_MAX];
	char name[64];
	char variant[48];
	int load_rc;            /* B_OK when the scenario was loaded and run */
	enum pl_status st;
	struct obs_list sim;
	uint32_t ninsn;
	enum tr_end end;
	int nviol;
	char first_rule[24];
	char *violations;       /* the rule lines, as `shimcheck run` prints them */
	bool kernel_bytes;      /* the guest reads what only the boot kernel's machine has */
	char kernel_why[200];
	char fault_text[48];    /* the instruction the simulator's run faulted at */
};
/* Run the loaded scenario in Unicorn and keep what a report needs. */
int sim_run(struct pipeline *p, struct scen_res *r);

/* The pipeline's image into dir/name (boot_cmd.c). */
bool export_image(const struct pipeline *p, const char *dir, const char *name);
/* One scenario for a boot mode: p (pl_init'ed) gets the code and the scenario, the image
 * goes to DIR/image.bin, and with run the simulator runs it (a violation is fine: the
 * engine is compared with it). B_OK, or the status to exit with, its line on stderr. */
int boot_prepare(struct pipeline *p, const char *codedir, const char *scen, const char *dir, bool run);
/* --boundary/--after selection (boot_cmd.c), shared by --window and --nmi. */
bool boundary_selected(const struct boot_opts *bo, const struct trace *t, uint32_t insn, char after[][16], int nafter);
/* --nmi (boot_nmi.c): a real NMI at each selected boundary, QEMU's gdbstub and `monitor nmi`. */
int mode_nmi(const struct boot_opts *bo, const char *dir, const char *kernel, const char *codedir, const char *scen,
	     char after[][16], int nafter);
/* --step (boot_step.c): the round trips instruction by instruction on QEMU's gdbstub. */
int mode_step(const struct boot_opts *bo, const char *dir, const char *kernel, const char *codedir, const char *scen);

/* Boot jobs[0..n) on bo->engine, as few boots as possible (a batch goes on until an image
 * does not come back; the rest boot again). Fills every job's r. Returns B_OK, or
 * B_UNAVAILABLE / B_INPUT / B_INTERNAL with a message on stderr. */
int boot_jobs(const struct boot_opts *bo, const char *dir, const char *kernel, struct job *jobs, int n,
	      struct engine_info *ei);

#endif
