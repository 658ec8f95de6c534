; entry.asm: multiboot header, the kernel's own GDT and exception stubs, and the last step
; into the host world. The boot loader (QEMU -kernel, GRUB `multiboot`) enters _start in
; 32-bit protected mode, paging off, EAX = multiboot magic, EBX = multiboot info, with a
; GDT and a stack we must not rely on.

bits 32

MB_MAGIC	equ 0x1BADB002
MB_FLAGS	equ 0x00000003		; modules page aligned, memory information wanted

KCODE		equ 0x08
KDATA		equ 0x10

section .multiboot
	align 4
	dd MB_MAGIC
	dd MB_FLAGS
	dd -(MB_MAGIC + MB_FLAGS)

; kernel_enter comes first in .text, at a fixed address (kernel.ld asserts 0x100010):
; `shimcheck boot` has QEMU log every execution of it (-d exec -dfilter), which marks where
; each image's run starts in QEMU's exception log.
section .text.kenter progbits alloc exec nowrite align=16
; kernel_enter(cr4, cr3, cr0, target): paging on with the kernel's tables, then jump to the
; observer blob's enter_host at its host linear address. CR4 first (PAE/PSE/PGE only take
; effect with paging), CR3, then CR0: the image's CR0 turns paging on and also clears
; whatever the firmware left in CD/NW. This code runs at its physical address, which the
; kernel's tables map 1:1.
global kernel_enter
	align 16
kernel_enter:
	mov eax, [esp + 4]
	mov cr4, eax
	mov eax, [esp + 8]
	mov cr3, eax
	mov eax, [esp + 12]
	mov cr0, eax
	jmp [esp + 16]

section .text
global _start
extern kmain, kmain_next, kernel_fault, __bss_start, __bss_end

_start:
	cli
	cld
	; zero .bss before anything lives there (the stack, the page pool): not every loader
	; clears it
	mov esi, eax
	mov edi, __bss_start
	mov ecx, __bss_end
	sub ecx, edi
	shr ecx, 2
	xor eax, eax
	rep stosd
	mov eax, esi
	mov esp, stack_top
	lgdt [gdt_desc]
	jmp KCODE:.reload
.reload:
	mov cx, KDATA
	mov ds, cx
	mov es, cx
	mov fs, cx
	mov gs, cx
	mov ss, cx
	push ebx			; multiboot info
	push eax			; multiboot magic
	call kmain
	push dword 0x12			; kmain does not return; if it did, stop as a kernel error
	call kernel_stop

; kernel_resume: batch mode, the observer blob's way back after an image's last observation
; (or an exception in its host world). The blob jumps here with the kernel's page tables in
; CR3 (they map the kernel 1:1), the host's GDT, IDT, segments and stack still loaded, and
; the debug registers armed. Disarm them, take back the kernel's GDT, segments, stack and
; IDT (kmain_next), turn paging off (this code runs at its physical address) and clear CR4,
; which also drops every global translation, then let kmain_next run the next image.
global kernel_resume
kernel_resume:
	cli
	xor eax, eax
	mov dr7, eax
	lgdt [gdt_desc]			; DS is the host's flat data segment: base 0
	jmp KCODE:.reload
.reload:
	mov ax, KDATA
	mov ds, ax
	mov es, ax
	mov fs, ax
	mov gs, ax
	mov ss, ax
	mov esp, stack_top
	mov eax, cr0
	and eax, 0x7FFFFFFF
	mov cr0, eax			; paging off: linear = physical from here on
	xor eax, eax
	mov cr4, eax
	cld
	call kmain_next			; does not return
	push dword 0x12
	call kernel_stop

; kernel_stop(value): the kernel's own way out (the blob has its own copy: it cannot call
; into the kernel from the host space). Drain COM1, then QEMU's isa-debug-exit, Bochs's
; magic breakpoint, Bochs's shutdown port, and halt.
global kernel_stop
kernel_stop:
	mov ebx, [esp + 4]
	mov dx, 0x3FD
	mov ecx, 1000000
.drain:
	in al, dx
	test al, 0x40
	jnz .drained
	loop .drain
.drained:
	mov eax, ebx
	mov dx, 0xF4
	out dx, al
	xchg bx, bx
	mov esi, s_shutdown
	mov dx, 0x8900
.say:
	lodsb
	test al, al
	jz .halt
	out dx, al
	jmp .say
.halt:
	cli
	hlt
	jmp .halt

; Exception stubs for the kernel's own phase (before the host world is entered): the same
; frame as struct kfault (vector, error code or 0, EIP, CS, EFLAGS).
	align 16
kstub_common:
	mov ax, KDATA
	mov ds, ax
	mov es, ax
	mov eax, esp
	push eax
	call kernel_fault		; does not return

%macro KSTUB 1
kstub_%1:
%if %1 == 8 || (%1 >= 10 && %1 <= 14) || %1 == 17 || %1 == 21 || %1 == 29 || %1 == 30
	push dword %1
%else
	push dword 0
	push dword %1
%endif
	jmp kstub_common
%endmacro

%assign v 0
%rep 32
KSTUB %[v]
%assign v v + 1
%endrep

section .rodata
global kernel_stubs
	align 4
kernel_stubs:
%assign v 0
%rep 32
	dd kstub_%[v]
%assign v v + 1
%endrep

gdt:
	dq 0
	dq 0x00CF9A000000FFFF		; 0x08: code, base 0, 4 GiB, 32-bit
	dq 0x00CF92000000FFFF		; 0x10: data, base 0, 4 GiB
gdt_desc:
	dw gdt_desc - gdt - 1
	dd gdt

s_shutdown:	db "Shutdown", 0

; The observer blob (observer.asm, assembled flat), copied into the host code page at boot.
global observer_blob, observer_blob_end
	align 16
observer_blob:
	incbin "observer.bin"
observer_blob_end:

section .bss
global kernel_idt
	align 16
kernel_idt:
	resq 32
	align 16
	resb 16384
stack_top:

; no executable stack wanted (silences ld's warning about a missing note)
section .note.GNU-stack noalloc noexec nowrite progbits
