/*
 * kernel.h: the boot kernel's shared definitions (C side).
 *
 * The boot kernel is a multiboot (v1) ELF32 loaded at 1 MiB. It gets the image file that
 * `shimcheck image` writes as its first multiboot module, lays it out in physical memory,
 * puts the CPU into the image's initial host state and runs host_main on the bare
 * (emulated) machine. See docs/hardware.md.
 */
#ifndef SHIMCHECK_BOOT_KERNEL_H
#define SHIMCHECK_BOOT_KERNEL_H

#include <stdint.h>

/* isa-debug-exit values (QEMU exits with (value << 1) | 1) and what they mean. */
#define KEXIT_OK 0x10        /* status 33: the run reached its end observation */
#define KEXIT_FAULT 0x11     /* status 35: an exception in the host world */
#define KEXIT_KERNEL 0x12    /* status 37: the kernel refused the image or faulted itself */

/* Offsets in the image file's header (model/image_export.h). */
#define IH_MAGIC 0
#define IH_VERSION 8
#define IH_SIZE 12
#define IH_WIN_BASE 16
#define IH_WIN_SIZE 24
#define IH_DATA 32
#define IH_CR0 40
#define IH_CR3 44
#define IH_CR4 48
#define IH_EFER 52
#define IH_GDTR_BASE 56
#define IH_GDTR_LIMIT 60
#define IH_IDTR_BASE 64
#define IH_IDTR_LIMIT 68
#define IH_SEL 72 /* cs ss ds es fs gs tr, u16 each */
#define IH_EIP 88
#define IH_ESP 92
#define IH_EFLAGS 96
#define IH_TSS_DESC_PA 100
#define IH_HOST_CODE_LIN 112
#define IH_HOST_CODE_PA 116
#define IH_HOST_SIZE 120
#define IH_ROUNDS 124
#define IH_SHIM_LIN 128
#define IH_SHIM_PA 132
#define IH_ENTRY_PA 144
#define IH_ENTRY_SIZE 148
#define IH_HDR_SIZE 256

/* The observer blob (observer.asm): its header, then code, then struct blob_params. */
#define BLOB_MAGIC 0x424F4853u

struct blob_header {
	uint32_t magic;
	uint32_t size;
	uint32_t observer;      /* offsets from the start of the blob */
	uint32_t enter;
	uint32_t enter_host_cs;
	uint32_t stubs;
	uint32_t stub_size;
	uint32_t params;
	uint32_t params_size;
};

/* Same order and sizes as struc P in observer.asm. */
struct blob_params {
	uint16_t gdtr_pad, gdtr_limit;
	uint32_t gdtr_base;
	uint16_t idtr_pad, idtr_limit;
	uint32_t idtr_base;
	uint32_t cr3;
	uint32_t far_off;
	uint16_t far_cs;
	uint16_t ss, ds, es, fs, gs, tr, pad;
	uint32_t esp, eflags, eip;
	uint32_t kpd;
	uint32_t entry_lin, entry_size;
	uint32_t shim_lin;
	uint32_t exit_ok, exit_fault;
	uint32_t resume;        /* batch: kernel_resume (physical = kernel linear); 0: stop at the end */
	uint32_t dr0, dr7;      /* loaded just before host_main (dr7 0: no breakpoint) */
};

_Static_assert(sizeof(struct blob_params) == 88, "struct blob_params must match struc P");

/* entry.asm */
extern const uint8_t observer_blob[], observer_blob_end[];
extern uint8_t kernel_start[], kernel_end[];
void kernel_enter(uint32_t cr4, uint32_t cr3, uint32_t cr0, uint32_t target) __attribute__((noreturn));
void kernel_stop(uint32_t exit_value) __attribute__((noreturn));
void kernel_resume(void) __attribute__((noreturn)); /* batch: back from the host world */
extern uint64_t kernel_idt[32];
extern const uint32_t kernel_stubs[32];

/* kmain.c */
struct kfault {
	uint32_t vector, error, eip, cs, eflags;
};
void kmain(uint32_t magic, uint32_t mbi);
void kmain_next(void) __attribute__((noreturn));
void kernel_fault(const struct kfault *f) __attribute__((noreturn));

#endif
