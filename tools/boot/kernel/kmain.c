/*
 * kmain.c: the boot kernel's C part. Between the boot loader and host_main it:
 *
 *   1. reads the image file (the first multiboot module) and checks its header;
 *   2. moves the image bytes to the window base and zeroes the rest of the window;
 *   3. installs the observer blob in the host code page after host.bin, points host.bin's
 *      PB_OBSERVER at it and the host IDT's first 32 gates at its exception stubs;
 *   4. builds its own page tables (same paging mode as the host) that map the kernel 1:1,
 *      the host code page at its host linear address and the monitor's shim-address entry
 *      at its physical address;
 *   5. clears the busy bit of the host TSS descriptor, sets EFER, and hands over to
 *      kernel_enter, which turns paging on and jumps into the blob's enter_host.
 *
 * Batch mode: with several modules (several images, or one image given several times with
 * different arguments), the kernel first copies every module above every window and above
 * the modules themselves, then runs them in order: the blob comes back through
 * kernel_resume after an image's last observation (or an exception in its host world), and
 * kmain_next starts the next one. An image that does not come back (a triple fault, a
 * handler that halts) ends the batch; `shimcheck boot` boots the rest again.
 *
 * Arguments (multiboot command line for every image, a module's own string for that image):
 *   dr0=0xADDR   an instruction breakpoint (DR0 = ADDR, DR7.L0, R/W 00, LEN 00) armed just
 *                before host_main: the interrupt-window experiment (docs/hardware.md)
 *
 * The host's and the monitor's page tables, GDTs, TSSs and code are the image's bytes,
 * untouched; what the kernel adds to the image is listed in docs/hardware.md.
 *
 * Everything the kernel says is one JSON line on port 0xE9 and COM1.
 */
#include <stddef.h>
#include <stdint.h>

#include "kernel.h"
#include "shim_abi.h" /* host.bin's parameter block: PB_MAGIC_VALUE, PB_OBSERVER */

#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_INFO_MEM (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODS (1u << 3)
#define MB_INFO_MMAP (1u << 6)
#define MB_INFO_LOADER (1u << 9)

#define COM1 0x3F8
#define PAGE 4096u
#define MIB (1024u * 1024u)

#define CR0_PE 0x00000001u
#define CR0_PG 0x80000000u
#define CR4_PSE 0x00000010u
#define CR4_PAE 0x00000020u
#define CR4_PGE 0x00000080u
#define EFER_MSR 0xC0000080u
#define EFER_NXE 0x800u

#define PTE_P 0x1u
#define PTE_W 0x2u
#define PTE_PS 0x80u

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	uint32_t syms[4], mmap_length, mmap_addr, drives_length, drives_addr, config_table, boot_loader_name;
};

struct mb_module {
	uint32_t start, end, string, reserved;
};

/* ---- freestanding basics (the compiler may call these) ------------------------------- */

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	if (p < q) {
		while (n--)
			*p++ = *q++;
	} else {
		while (n--)
			p[n] = q[n];
	}
	return d;
}

/* Zero a large range fast (the window is up to 28 MiB; byte loops are slow on Bochs). */
static void zero_dwords(uint32_t pa, uint32_t bytes)
{
	uint32_t n = bytes / 4;
	__asm__ volatile("cld; rep stosl" : "+D"(pa), "+c"(n) : "a"(0) : "memory");
}

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

/* Physical memory: paging is off until kernel_enter, so a physical address is a pointer. */
static inline uint8_t *phys(uint32_t pa) { return (uint8_t *)(uintptr_t)pa; }
static inline uint32_t rd32(uint32_t pa) { return *(volatile uint32_t *)phys(pa); }
static inline uint64_t rd64(uint32_t pa) { return *(volatile uint64_t *)phys(pa); }
static inline void wr32(uint32_t pa, uint32_t v) { *(volatile uint32_t *)phys(pa) = v; }
static inline void wr64(uint32_t pa, uint64_t v) { *(volatile uint64_t *)phys(pa) = v; }

/* ---- output --------------------------------------------------------------------------- */

static void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xC7); /* FIFO on, cleared */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void kputc(char c)
{
	outb(0xE9, (uint8_t)c);
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (uint8_t)c);
}

static void kputs(const char *s)
{
	while (*s)
		kputc(*s++);
}

/* Lower-case hex without leading zeros, as the simulator's JSON writes numbers. */
static void kputhex(uint64_t v)
{
	char b[17];
	int n = 0;
	do {
		b[n++] = "0123456789abcdef"[v & 0xF];
		v >>= 4;
	} while (v);
	while (n)
		kputc(b[--n]);
}

static void kv_hex(const char *key, uint64_t v)
{
	kputs(",\"");
	kputs(key);
	kputs("\":\"0x");
	kputhex(v);
	kputc('"');
}

/* A JSON string value from untrusted bytes (the loader's name): escape, cut at max. */
static void kv_str(const char *key, const char *s, int max)
{
	kputs(",\"");
	kputs(key);
	kputs("\":\"");
	for (int i = 0; s && s[i] && i < max; i++) {
		char c = s[i];
		if (c == '"' || c == '\\') {
			kputc('\\');
			kputc(c);
		} else if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7F) {
			kputc('?');
		} else {
			kputc(c);
		}
	}
	kputc('"');
}

/* batch: more than one module; the image being run, and whether one is (.bss only: an
 * initialised .data would make the loadable segment writable and executable) */
static int batch, cur_image, in_image;

static void __attribute__((noreturn)) fail(const char *msg, uint64_t value)
{
	kputs("{\"type\":\"error\",\"phase\":\"kernel\"");
	if (in_image)
		kv_hex("image", (uint32_t)cur_image);
	kv_str("message", msg, 200);
	kv_hex("value", value);
	kputs("}\n");
	if (batch && in_image)
		kernel_resume(); /* this image is refused; the next one may still run */
	kernel_stop(KEXIT_KERNEL);
}

void kernel_fault(const struct kfault *f)
{
	uint32_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	kputs("{\"type\":\"exception\",\"phase\":\"kernel\"");
	kv_hex("vector", f->vector);
	kv_hex("error", f->error);
	kv_hex("eip", f->eip);
	kv_hex("cs", f->cs & 0xFFFF);
	kv_hex("eflags", f->eflags);
	kv_hex("cr2", cr2);
	kputs("}\n");
	kernel_stop(KEXIT_KERNEL);
}

/* ---- the kernel's own IDT (its phase only; the host world gets gates in its own IDT) --- */

static uint64_t gate(uint32_t off, uint16_t sel)
{
	/* 32-bit interrupt gate, present, DPL 0 */
	return (off & 0xFFFFu) | ((uint64_t)sel << 16) | ((uint64_t)(0x8E00u | (off & 0xFFFF0000u)) << 32);
}

static void kernel_idt_load(void)
{
	for (int v = 0; v < 32; v++)
		kernel_idt[v] = gate(kernel_stubs[v], 0x08);
	struct __attribute__((packed)) {
		uint16_t limit;
		uint32_t base;
	} d = {sizeof(uint64_t) * 32 - 1, (uint32_t)(uintptr_t)kernel_idt};
	__asm__ volatile("lidt %0" : : "m"(d));
}

/* ---- the image's page tables ----------------------------------------------------------- */

/* Translate lin through the tables at cr3 in the mode cr4 selects (32-bit with or without
 * PSE, or PAE), reading physical memory. Returns 0 with *pa, or -1 when not mapped or the
 * tables point above 4 GiB. Permissions do not matter here: the kernel writes by physical
 * address. */
static int walk(uint32_t cr3, uint32_t cr4, uint32_t lin, uint32_t *pa)
{
	const uint64_t addr = 0x000FFFFFFFFFF000ull;
	if (cr4 & CR4_PAE) {
		uint64_t pdpte = rd64((cr3 & ~0x1Fu) + 8 * (lin >> 30));
		if (!(pdpte & PTE_P) || (pdpte & addr) >> 32)
			return -1;
		uint64_t pde = rd64((uint32_t)(pdpte & addr) + 8 * ((lin >> 21) & 511));
		if (!(pde & PTE_P) || (pde & addr) >> 32)
			return -1;
		if (pde & PTE_PS) {
			*pa = (uint32_t)(pde & 0xFFE00000u) + (lin & 0x1FFFFFu);
			return 0;
		}
		uint64_t pte = rd64((uint32_t)(pde & addr) + 8 * ((lin >> 12) & 511));
		if (!(pte & PTE_P) || (pte & addr) >> 32)
			return -1;
		*pa = (uint32_t)(pte & addr) + (lin & 0xFFFu);
		return 0;
	}
	uint32_t pde = rd32((cr3 & ~0xFFFu) + 4 * (lin >> 22));
	if (!(pde & PTE_P))
		return -1;
	if ((cr4 & CR4_PSE) && (pde & PTE_PS)) {
		if (pde & 0x001FE000u) /* PSE-36 bits: above 4 GiB */
			return -1;
		*pa = (pde & 0xFFC00000u) + (lin & 0x3FFFFFu);
		return 0;
	}
	uint32_t pte = rd32((pde & ~0xFFFu) + 4 * ((lin >> 12) & 1023));
	if (!(pte & PTE_P))
		return -1;
	*pa = (pte & ~0xFFFu) + (lin & 0xFFFu);
	return 0;
}

/* ---- the kernel's page tables ---------------------------------------------------------- */

#define POOL_PAGES 16
static uint8_t pool[POOL_PAGES][PAGE] __attribute__((aligned(PAGE)));
static int pool_used;
static uint32_t kpd;   /* the root: page directory, or the page holding the PDPT */
static int kpd_pae;

static uint32_t pool_page(void)
{
	if (pool_used == POOL_PAGES)
		fail("the kernel's page-table pool is exhausted", POOL_PAGES);
	return (uint32_t)(uintptr_t)pool[pool_used++]; /* .bss: zero */
}

/* Map the 4 KiB page lin -> pa (writable, supervisor) in the kernel's tables. A second
 * mapping of lin to a different page is a layout the kernel cannot build: say so. */
static void kmap(uint32_t lin, uint32_t pa)
{
	lin &= ~(PAGE - 1);
	pa &= ~(PAGE - 1);
	uint32_t pte_at;
	if (kpd_pae) {
		uint32_t pdpte_at = kpd + 8 * (lin >> 30);
		if (!(rd64(pdpte_at) & PTE_P))
			wr64(pdpte_at, pool_page() | PTE_P); /* PDPTEs have no R/W or U/S bits */
		uint32_t pde_at = (uint32_t)(rd64(pdpte_at) & ~0xFFFull) + 8 * ((lin >> 21) & 511);
		if (!(rd64(pde_at) & PTE_P))
			wr64(pde_at, pool_page() | PTE_P | PTE_W);
		pte_at = (uint32_t)(rd64(pde_at) & ~0xFFFull) + 8 * ((lin >> 12) & 511);
		uint64_t old = rd64(pte_at);
		if ((old & PTE_P) && (uint32_t)(old & ~0xFFFull) != pa)
			fail("the kernel cannot map this linear page twice (host code page vs kernel or entry page)", lin);
		wr64(pte_at, pa | PTE_P | PTE_W);
		return;
	}
	uint32_t pde_at = kpd + 4 * (lin >> 22);
	if (!(rd32(pde_at) & PTE_P))
		wr32(pde_at, pool_page() | PTE_P | PTE_W);
	pte_at = (rd32(pde_at) & ~0xFFFu) + 4 * ((lin >> 12) & 1023);
	uint32_t old = rd32(pte_at);
	if ((old & PTE_P) && (old & ~0xFFFu) != pa)
		fail("the kernel cannot map this linear page twice (host code page vs kernel or entry page)", lin);
	wr32(pte_at, pa | PTE_P | PTE_W);
}

/* ---- main ------------------------------------------------------------------------------ */

static uint8_t hdr[IH_HDR_SIZE];

/* The modules (images), with their own arguments. */
#define MAX_MODS 128
#define ARGS_MAX 96
static struct kmod {
	uint32_t start, len;
	uint32_t dr0;
	int has_dr0;
	uint32_t sum;          /* FNV-1a of the module as loaded (header and data) */
	char args[ARGS_MAX];   /* its string, copied: the loader's copy may be overwritten */
} mods[MAX_MODS];
static int nmods;
static uint64_t ram_end;

/* The loader's memory map (multiboot flag 6), copied for the same reason. */
#define MAX_REGIONS 64
static struct region {
	uint64_t base, size;
	uint32_t kind;         /* 1 available, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 bad */
} regions[MAX_REGIONS];
static int nregions;

/* Memory the kernel may overwrite: RAM that nothing after us needs. Besides available RAM
 * that is ACPI reclaimable (tables we never read) and ACPI NVS (the firmware's save area
 * for sleep states: this machine never sleeps or returns to its firmware; OVMF keeps such a
 * region at 8 MiB, inside the usual image window). Reserved ranges may be MMIO or SMRAM:
 * never. Without a memory map, the contiguous memory above 1 MiB the loader reported. */
static int ram_kind(uint32_t kind) { return kind == 1 || kind == 3 || kind == 4; }

static int usable(uint64_t base, uint64_t size)
{
	if (!nregions)
		return base >= MIB && base + size <= ram_end;
	/* Cover [base, base + size) with usable regions, any order, possibly overlapping. */
	uint64_t at = base, end = base + size;
	for (int progress = 1; at < end && progress;) {
		progress = 0;
		for (int i = 0; i < nregions; i++)
			if (ram_kind(regions[i].kind) && regions[i].base <= at && at < regions[i].base + regions[i].size) {
				at = regions[i].base + regions[i].size;
				progress = 1;
			}
	}
	return at >= end;
}

/* The lowest page-aligned address >= at where len bytes of usable memory start (at itself
 * when nothing better is found: the caller checks). Firmware maps have holes (OVMF's). */
static uint64_t next_usable(uint64_t at, uint64_t len)
{
	uint64_t best = at;
	int found = usable(at, len);
	for (int i = 0; i < nregions && !found; i++) {
		uint64_t b = (regions[i].base + PAGE - 1) & ~(uint64_t)(PAGE - 1);
		if (ram_kind(regions[i].kind) && b > at && usable(b, len) && (best == at || b < best))
			best = b;
	}
	return best;
}

/* The module's checksum, printed on its image line: `shimcheck compare` recomputes it from
 * the scenario it names, so a serial log from a PC is tied to the exact image it ran. */
static uint32_t fnv1a(const uint8_t *p, uint32_t n, uint32_t h)
{
	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}
#define FNV_INIT 2166136261u

static uint32_t h32(int off) { return *(const uint32_t *)(hdr + off); }
static uint64_t h64(int off) { return *(const uint64_t *)(hdr + off); }
static uint16_t h16(int off) { return *(const uint16_t *)(hdr + off); }

static void print_boot_line(const struct mb_info *mbi)
{
	uint32_t r[4], brand[13] = {0};
	kputs("{\"type\":\"boot\",\"kernel\":\"shimcheck-boot\"");
	if (mbi->flags & MB_INFO_LOADER)
		kv_str("loader", (const char *)phys(mbi->boot_loader_name), 60);
	cpuid(0, r);
	uint32_t vendor[4] = {r[1], r[3], r[2], 0};
	kv_str("cpu_vendor", (const char *)vendor, 12);
	cpuid(1, r);
	kv_hex("cpu_signature", r[0]);
	cpuid(0x80000000u, r);
	if (r[0] >= 0x80000004u) {
		for (uint32_t i = 0; i < 3; i++)
			cpuid(0x80000002u + i, brand + 4 * i);
		const char *b = (const char *)brand;
		while (*b == ' ')
			b++;
		kv_str("cpu_brand", b, 48);
	}
	kv_hex("modules", (uint32_t)nmods);
	kv_hex("mem_upper_kib", mbi->mem_upper);
	kputs("}\n");
}

/* The CPU features the image's control registers need; a missing one would #GP at the MOV
 * to CR4 or WRMSR, so name it instead. */
static void check_features(uint32_t cr4, uint32_t efer)
{
	uint32_t r[4];
	cpuid(1, r);
	if ((cr4 & CR4_PSE) && !(r[3] & (1u << 3)))
		fail("the image needs CR4.PSE; this CPU has no PSE", cr4);
	if ((cr4 & CR4_PAE) && !(r[3] & (1u << 6)))
		fail("the image needs CR4.PAE; this CPU has no PAE", cr4);
	if ((cr4 & CR4_PGE) && !(r[3] & (1u << 13)))
		fail("the image needs CR4.PGE; this CPU has no PGE", cr4);
	if (!(r[3] & (1u << 5)))
		fail("this CPU has no MSRs (EFER)", r[3]);
	cpuid(0x80000000u, r);
	uint32_t ext = r[0] >= 0x80000001u ? (cpuid(0x80000001u, r), r[3]) : 0;
	if ((efer & EFER_NXE) && !(ext & (1u << 20)))
		fail("the image needs EFER.NXE; this CPU has no NX", efer);
	if (efer & ~EFER_NXE)
		fail("the image sets EFER bits other than NXE", efer);
}

/* Lay out image i (module i), install the observer, and enter its host world. */
static void __attribute__((noreturn)) run_image(int i)
{
	cur_image = i;
	in_image = 1;
	uint32_t mod_start = mods[i].start, mod_len = mods[i].len;
	kputs("{\"type\":\"image\"");
	kv_hex("index", (uint32_t)i);
	kv_hex("count", (uint32_t)nmods);
	kv_hex("module", mod_start);
	kv_hex("module_size", mod_len);
	if (mods[i].has_dr0)
		kv_hex("dr0", mods[i].dr0);
	if (mods[i].args[0])
		kv_str("args", mods[i].args, ARGS_MAX);
	kv_hex("image_sum", mods[i].sum);
	if (mod_len >= IH_HDR_SIZE) {
		kv_hex("window", *(const uint64_t *)phys(mod_start + IH_WIN_BASE));
		kv_hex("window_size", *(const uint64_t *)phys(mod_start + IH_WIN_SIZE));
		kv_hex("image_bytes", *(const uint64_t *)phys(mod_start + IH_DATA));
	}
	kputs("}\n");
	if (mod_len < IH_HDR_SIZE)
		fail("the module is shorter than an image header", mod_len);
	memcpy(hdr, phys(mod_start), IH_HDR_SIZE);

	/* The header, checked before anything is written. */
	for (int k = 0; k < 8; k++)
		if (hdr[IH_MAGIC + k] != (uint8_t)"SHIMIMG1"[k])
			fail("the module is not a shimcheck image (magic SHIMIMG1)", h32(IH_MAGIC));
	if (h32(IH_VERSION) != 1 || h32(IH_SIZE) != IH_HDR_SIZE)
		fail("unsupported image version or header size", h32(IH_VERSION));
	uint64_t base = h64(IH_WIN_BASE), size = h64(IH_WIN_SIZE), data = h64(IH_DATA);
	uint32_t kend = ((uint32_t)(uintptr_t)kernel_end + PAGE - 1) & ~(PAGE - 1);
	if (base < kend || base % PAGE || size % PAGE || size == 0)
		fail("the physical window overlaps the kernel or is not page aligned", base);
	if (base + size > 0xFFFFFFFFull || !usable(base, size))
		fail("the physical window is not all RAM the kernel may use (see the memory lines)", base + size);
	if (batch) {
		for (int k = i + 1; k < nmods; k++)
			if (mods[k].start < base + size && base < (uint64_t)mods[k].start + mods[k].len)
				fail("the physical window overlaps a module still to run", base);
	}
	if (data > size || data > mod_len - IH_HDR_SIZE || data % 4)
		fail("the image's data is longer than the window or the module, or not whole dwords", data);
	uint32_t cr0 = h32(IH_CR0), cr4 = h32(IH_CR4), efer = h32(IH_EFER);
	if ((cr0 & (CR0_PE | CR0_PG)) != (CR0_PE | CR0_PG))
		fail("the image's CR0 does not enable protected mode and paging", cr0);
	check_features(cr4, efer);
	uint32_t code_lin = h32(IH_HOST_CODE_LIN), code_pa = h32(IH_HOST_CODE_PA), host_size = h32(IH_HOST_SIZE);
	if ((code_lin | code_pa) % PAGE || code_pa < base || code_pa + PAGE > base + size)
		fail("the host code page is not a page of the window", code_pa);
	uint32_t entry_pa = h32(IH_ENTRY_PA), entry_size = h32(IH_ENTRY_SIZE);
	if ((entry_size != 4 && entry_size != 8) || entry_pa < base || entry_pa + entry_size > base + size ||
	    entry_pa % entry_size)
		fail("the shim-address entry is not inside the window", entry_pa);
	uint32_t tss_desc = h32(IH_TSS_DESC_PA);
	if (tss_desc < base || tss_desc + 8 > base + size)
		fail("the host TSS descriptor is not inside the window", tss_desc);

	/* The image: its bytes at the window base, zero after them. memmove, because the loader
	 * may have put the module anywhere, the window included (batch mode moved every module
	 * above every window first). */
	memmove(phys((uint32_t)base), phys(mod_start + IH_HDR_SIZE), (size_t)data);
	zero_dwords((uint32_t)(base + data), (uint32_t)(size - data));
	/* Read it back: memory that is not RAM (a firmware's hole the map did not show) would
	 * not hold the bytes, and every observation would differ for no reason the shim has. */
	if (fnv1a(phys((uint32_t)base), (uint32_t)data, fnv1a(hdr, IH_HDR_SIZE, FNV_INIT)) != mods[i].sum)
		fail("the window does not hold the image's bytes after the copy (not RAM?)", base);

	/* The observer blob goes into the host code page, after host.bin. */
	const struct blob_header *bh = (const struct blob_header *)observer_blob;
	uint32_t blob_size = (uint32_t)(observer_blob_end - observer_blob);
	if (bh->magic != BLOB_MAGIC || bh->size > blob_size || bh->params_size != sizeof(struct blob_params))
		fail("the observer blob does not match this kernel", bh->params_size);
	uint32_t off = (host_size + 15) & ~15u;
	if (host_size > PAGE || off + bh->size > PAGE)
		fail("no room for the observer after host.bin in the host code page", host_size);
	if (rd32(code_pa) != PB_MAGIC_VALUE)
		fail("host.bin's parameter block is not at the start of the host code page", rd32(code_pa));
	uint32_t blob_pa = code_pa + off, blob_lin = code_lin + off;
	memcpy(phys(blob_pa), observer_blob, bh->size);

	/* Its own page tables, in the host's paging mode (CR4.PAE cannot change while paging
	 * is on, and the blob switches between them and the host's). A fresh pool per image. */
	pool_used = 0;
	memset(pool, 0, sizeof pool);
	kpd_pae = (cr4 & CR4_PAE) != 0;
	kpd = pool_page();
	for (uint32_t p = (uint32_t)(uintptr_t)kernel_start & ~(PAGE - 1); p < kend; p += PAGE)
		kmap(p, p);
	kmap(code_lin, code_pa);
	kmap(entry_pa, entry_pa);

	struct blob_params *bp = (struct blob_params *)phys(blob_pa + bh->params);
	bp->gdtr_limit = h16(IH_GDTR_LIMIT);
	bp->gdtr_base = h32(IH_GDTR_BASE);
	bp->idtr_limit = h16(IH_IDTR_LIMIT);
	bp->idtr_base = h32(IH_IDTR_BASE);
	bp->cr3 = h32(IH_CR3);
	bp->far_off = blob_lin + bh->enter_host_cs;
	bp->far_cs = h16(IH_SEL + 0);
	bp->ss = h16(IH_SEL + 2);
	bp->ds = h16(IH_SEL + 4);
	bp->es = h16(IH_SEL + 6);
	bp->fs = h16(IH_SEL + 8);
	bp->gs = h16(IH_SEL + 10);
	bp->tr = h16(IH_SEL + 12);
	bp->esp = h32(IH_ESP);
	bp->eflags = h32(IH_EFLAGS);
	bp->eip = h32(IH_EIP);
	bp->kpd = kpd;
	bp->entry_lin = entry_pa;
	bp->entry_size = entry_size;
	bp->shim_lin = h32(IH_SHIM_LIN);
	bp->exit_ok = KEXIT_OK;
	bp->exit_fault = KEXIT_FAULT;
	bp->resume = batch ? (uint32_t)(uintptr_t)kernel_resume : 0;
	bp->dr0 = mods[i].dr0;
	bp->dr7 = mods[i].has_dr0 ? 0x1u : 0; /* L0, R/W0 = 00 (execute), LEN0 = 00 */
	wr32(code_pa + PB_OBSERVER, blob_lin + bh->observer);

	/* Gates for vectors 0..31 in the host's IDT (the image's lead to host_trap, a HLT loop:
	 * these report the exception instead). The IDT register stays the image's. */
	uint32_t idt = h32(IH_IDTR_BASE), idt_limit = h16(IH_IDTR_LIMIT);
	for (uint32_t v = 0; v < 32 && v * 8 + 7 <= idt_limit; v++) {
		uint32_t pa;
		if (walk(h32(IH_CR3), cr4, idt + v * 8, &pa) != 0 || pa < base || pa + 8 > base + size)
			fail("the host IDT is not mapped in the host space", idt + v * 8);
		wr64(pa, gate(blob_lin + bh->stubs + v * bh->stub_size, h16(IH_SEL + 0)));
	}

	/* The image has both TSS descriptors busy (both worlds have run); LTR needs it clear. */
	phys(tss_desc)[5] &= (uint8_t)~0x02;

	wrmsr(EFER_MSR, efer); /* exactly the image's: no SCE or LME left by the firmware */
	/* An indirect call: QEMU logs every arrival at kernel_enter (-d exec), which marks the
	 * start of each image in its exception log; a direct call would be chained after the
	 * first image and logged no more. */
	void (*volatile enter)(uint32_t, uint32_t, uint32_t, uint32_t) = kernel_enter;
	enter(cr4, kpd, cr0, blob_lin + bh->enter);
	__builtin_unreachable();
}

/* "dr0=0x..." anywhere in an argument string (the command line starts with the kernel's
 * own name; a module's string with the module's). */
static void parse_args(const char *a, struct kmod *m)
{
	for (int i = 0; a && a[i]; i++) {
		if ((i == 0 || a[i - 1] == ' ') && a[i] == 'd' && a[i + 1] == 'r' && a[i + 2] == '0' && a[i + 3] == '=' &&
		    a[i + 4] == '0' && (a[i + 5] == 'x' || a[i + 5] == 'X')) {
			uint32_t v = 0;
			int k = i + 6, digits = 0;
			for (;; k++, digits++) {
				char c = a[k];
				uint32_t d = c >= '0' && c <= '9' ? (uint32_t)(c - '0')
					     : c >= 'a' && c <= 'f' ? (uint32_t)(c - 'a' + 10)
					     : c >= 'A' && c <= 'F' ? (uint32_t)(c - 'A' + 10)
								    : 16u;
				if (d == 16)
					break;
				v = (v << 4) | d;
			}
			if (digits == 0 || digits > 8 || (a[k] && a[k] != ' '))
				fail("bad argument: dr0=0x followed by 1 to 8 hex digits", (uint32_t)digits);
			m->dr0 = v;
			m->has_dr0 = 1;
		}
	}
}

void kmain(uint32_t magic, uint32_t mbi_pa)
{
	serial_init();
	kernel_idt_load();
	if (magic != MB_BOOT_MAGIC)
		fail("not started by a multiboot loader", magic);
	const struct mb_info *mbi = (const struct mb_info *)phys(mbi_pa);
	if (!(mbi->flags & MB_INFO_MODS) || mbi->mods_count < 1)
		fail("no multiboot module: give the image file as the first module (-initrd, GRUB module)", mbi->flags);
	if (!(mbi->flags & MB_INFO_MEM))
		fail("the loader gave no memory size", mbi->flags);
	if (mbi->mods_count > MAX_MODS)
		fail("too many modules (images) for one boot", mbi->mods_count);
	ram_end = (uint64_t)MIB + (uint64_t)mbi->mem_upper * 1024;
	if (mbi->flags & MB_INFO_MMAP) {
		/* entries: u32 size (of the rest), u64 base, u64 length, u32 type */
		for (uint32_t at = mbi->mmap_addr; at + 24 <= mbi->mmap_addr + mbi->mmap_length && nregions < MAX_REGIONS;
		     at += 4 + rd32(at)) {
			if (rd32(at) < 20)
				fail("a memory map entry shorter than 20 bytes", rd32(at));
			regions[nregions].base = rd64(at + 4);
			regions[nregions].size = rd64(at + 12);
			regions[nregions].kind = rd32(at + 20);
			nregions++;
		}
	}
	struct kmod all = {0};
	if (mbi->flags & MB_INFO_CMDLINE)
		parse_args((const char *)phys(mbi->cmdline), &all);
	const struct mb_module *mod = (const struct mb_module *)phys(mbi->mods_addr);
	nmods = (int)mbi->mods_count;
	for (int i = 0; i < nmods; i++) {
		if (mod[i].end < mod[i].start)
			fail("a module ends before it starts", mod[i].start);
		mods[i] = all;
		mods[i].start = mod[i].start;
		mods[i].len = mod[i].end - mod[i].start;
		if (mod[i].string) {
			const char *a = (const char *)phys(mod[i].string);
			parse_args(a, &mods[i]);
			int k = 0;
			for (; a[k] && k < ARGS_MAX - 1; k++)
				mods[i].args[k] = a[k];
			mods[i].args[k] = '\0';
		}
		mods[i].sum = fnv1a(phys(mods[i].start), mods[i].len, FNV_INIT);
	}
	print_boot_line(mbi);
	for (int r = 0; r < nregions; r++) {
		kputs("{\"type\":\"memory\"");
		kv_hex("base", regions[r].base);
		kv_hex("size", regions[r].size);
		kv_hex("kind", regions[r].kind);
		kputs("}\n");
	}
	batch = nmods > 1;

	if (batch) {
		/* Every module to a place above every window, module and the kernel, in order:
		 * each copy lands above all the sources, so none overwrites one still to copy.
		 * Nothing of the multiboot information is used after this. */
		uint64_t top = ((uint32_t)(uintptr_t)kernel_end + PAGE - 1) & ~(PAGE - 1);
		for (int i = 0; i < nmods; i++) {
			uint64_t e = (uint64_t)mods[i].start + mods[i].len;
			if (e > top)
				top = e;
			if (mods[i].len >= IH_HDR_SIZE) {
				const uint8_t *h = phys(mods[i].start);
				uint64_t wb = *(const uint64_t *)(h + IH_WIN_BASE), we = wb + *(const uint64_t *)(h + IH_WIN_SIZE);
				if (we > top && we > wb && usable(wb, we - wb))
					top = we; /* (a window that is not RAM is refused when its turn comes) */
			}
		}
		top = (top + PAGE - 1) & ~(uint64_t)(PAGE - 1);
		for (int i = 0; i < nmods; i++) {
			uint64_t len = ((uint64_t)mods[i].len + PAGE - 1) & ~(uint64_t)(PAGE - 1);
			top = next_usable(top, len);
			if (top + len > 0xFFFFFFFFull || !usable(top, len))
				fail("the batch's modules do not fit in this machine's memory above the windows", top + len);
			memmove(phys((uint32_t)top), phys(mods[i].start), mods[i].len);
			mods[i].start = (uint32_t)top;
			top += len;
		}
	}
	run_image(0);
}

void kmain_next(void)
{
	kernel_idt_load();
	if (cur_image + 1 >= nmods) {
		kputs("{\"type\":\"done\"");
		kv_hex("images", (uint32_t)nmods);
		kputs("}\n");
		kernel_stop(KEXIT_OK);
	}
	run_image(cur_image + 1);
}
