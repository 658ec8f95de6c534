; shim.asm (variant hardened): the one-page shim, in the order that survives what the
; fuzzer and the checkers find in the documented sequence:
;
;  1. CR4.PGE off first: MOV to CR4 that clears PGE flushes every translation, global ones
;     included, so nothing of the source space can be used in the target (TLB-GLOBAL).
;  2. MOV CR3 target *before* LGDT/LIDT/busy clear/LTR (as plex86's nexus and VirtualBox's
;     switchers do): the target GDT is then read and written through the target's own page
;     tables, so the source space needs nothing mapped but this page (no guest collision at
;     the target GDT's linear address can break the switch).
;  3. When the two spaces page in different modes (CR4.PAE differs), MOV CR4 cannot change
;     PAE with paging on: go through transition tables of each mode that map this page at its
;     linear address and at its physical address, turn paging off at the identity address,
;     switch CR4 and CR3, turn paging on, and come back to the linear address.
;  4. The target's CR4 (PGE included), EFER (NXE) and CR0 (WP), then LGDT, busy clear,
;     LTR, LSS, LIDT, far JMP.
;  0. And first of all, a GDT, an IDT and a stack of the shim's own, inside this page (mapped at the
;     same linear address in both spaces; at the identity address a second IDT and stack by
;     physical address): an NMI or #MC at any boundary of the switch finds a present gate, a
;     handler and a stack in whatever space is in force. The handler only notes the NMI in
;     D_NMI_PENDING for the target world to re-raise, and IRETs. The target's stack is loaded
;     before its IDT, so both are in place when the target IDT takes over.
;
;     The handler's IRET reloads the interrupted CS from the GDT in force, so the shim runs on
;     SHIM_CS_SEL (flat code, in the shim's GDT and in every world's) from before its own LGDT
;     until the far jump: it moves there by a RETF while the source's GDT is still loaded (and
;     mapped: still the source's CR3). With the source's CS kept instead, an NMI's IRET faults
;     from the shim's LGDT on: the shim's GDT holds only 0xFF0/0xFF8, and the descriptor the
;     source's selector names lies below this page, unmapped (#PF); after the target's LGDT
;     that selector is no code segment of the target's GDT (#GP). QEMU showed both (50 of 61
;     boundaries, docs/findings.md); so does `shimcheck window` on the old order. Copying the
;     worlds' code descriptors into the shim's GDT cannot work in general: their selectors
;     are the scenario's (any value below 0xFF0), and a GDT whose 0xFF0/0xFF8 lie in this
;     page's 0xA00..0xBFF cannot also hold low selectors inside the page; and under cs_wrap the
;     monitor's CS has a non-zero base that a copy would have to track. SHIM_CS_SEL needs none
;     of that: it is flat, and the shim's code is position independent, so the same linear
;     EIP runs on. A far JMP would do too, but it is the switch's far_jmp event (the ORDER
;     and ARRIVAL checkers end the window at the first one); RETF is not.
; Caller's contract (docs/shim-abi.md): IF=0, EBX = linear address of the data area. (The
; identity-address stretch of a mode switch jumps to physical addresses: it runs on the flat
; SHIM_CS_SEL too, whatever the caller's CS base.)

bits 32
%include "shim_abi.inc"

CR0_PG	equ 0x80000000
CR4_PGE	equ 0x00000080

; SWITCH target, source: one shim half. Target/source are H (host) or M (monitor).
%macro SWITCH 2
	lidt [ebx + D_SHIM_IDTR]		; gates, descriptors and stack of the shim's own, all in
					; this page; the gates first (their selector is in every
					; GDT): an NMI now reaches __shim_nmi, on the source's
					; stack, and its IRET returns to the source's CS
	push dword SHIM_CS_SEL		; on the source's stack, where the caller just pushed (an
	lea eax, [ebx - SHIM_DATA_OFF + %%flat]	; NMI here pushes there too): this page's
	push eax			; linear address, whatever the source CS's base
	retf				; CS = SHIM_CS_SEL, flat: an NMI's IRET can reload it from
%%flat:					; the source's, the shim's and the target's GDT alike
	lgdt [ebx + D_SHIM_GDTR]
	lss esp, [ebx + D_SHIM_SSESP]		; from here an NMI pushes on this page's stack
	mov eax, cr4
	and eax, ~CR4_PGE
	mov cr4, eax			; flush all translations, global ones too
	cmp dword [ebx + D_MODESWITCH], 0
	jne %%modeswitch
	mov eax, [ebx + D_%1_CR3]
	mov cr3, eax			; the target space: from here on only its tables are used
	jmp %%in_target
%%modeswitch:
	mov eax, [ebx + D_%2_XCR3]
	mov cr3, eax			; source-mode transition tables: this page, linear and identity
	mov esi, [ebx + D_SHIM_PA]
	lea eax, [esi + %%identity]
	jmp eax				; continue at this page's physical address
%%identity:
	add esi, SHIM_DATA_OFF		; the data area, by its physical address
	lidt [esi + D_SHIM_IDTR_PHYS]	; the shim's tables and stack by physical address, valid
	lgdt [esi + D_SHIM_GDTR_PHYS]	; with paging off and in both transition tables
	mov esp, [esi + D_SHIM_SSESP_PHYS]	; (SS keeps its flat cached descriptor)
	mov eax, cr0
	and eax, ~CR0_PG
	mov cr0, eax			; paging off: linear = physical
	mov eax, [esi + D_%1_CR4]
	and eax, ~CR4_PGE
	mov cr4, eax			; the target's paging mode (PSE/PAE)
	mov eax, [esi + D_%1_XCR3]
	mov cr3, eax			; target-mode transition tables
	mov eax, cr0
	or eax, CR0_PG
	mov cr0, eax			; paging on, in the target's mode, still at the identity address
	lea eax, [ebx - SHIM_DATA_OFF + %%linear]
	jmp eax				; back to the linear address
%%linear:
	lidt [ebx + D_SHIM_IDTR]
	lgdt [ebx + D_SHIM_GDTR]
	mov esp, [ebx + D_SHIM_SSESP]
	mov eax, [ebx + D_%1_CR3]
	mov cr3, eax			; the target space
%%in_target:
	mov eax, [ebx + D_%1_CR4]
	mov cr4, eax			; the target's CR4, PGE included
	mov ecx, 0xC0000080
	rdmsr
	mov eax, [ebx + D_%1_EFER]
	wrmsr				; the target's EFER (NXE)
	mov eax, [ebx + D_%1_CR0]
	mov cr0, eax			; the target's CR0 (WP)
	lgdt [ebx + D_%1_GDTR]		; the shim's gate selector is in every GDT
	mov eax, [ebx + D_%1_GDTR + 2]	; target GDT base, mapped in the target space
	movzx ecx, word [ebx + D_%1_TR]
	and ecx, 0xFFF8
	and byte [eax + ecx + 5], 0xFD	; busy TSS (type 0xB) -> available (0x9)
	ltr word [ebx + D_%1_TR]
	lss esp, [ebx + D_%1_SSESP]	; the target's stack, then its IDT
	lidt [ebx + D_%1_IDTR]
	jmp far [ebx + D_%1_TARGET]
%endmacro

section .text

__monitor2host:
	SWITCH H, M

__host2monitor:
	SWITCH M, H

; __shim_nmi: every gate of the shim's IDTs. Position independent (it runs at the linear or
; the physical address), touches only its own stack and the data area through SS (flat in
; every world, and the shim's own SS is flat too).
__shim_nmi:
	push eax
	call .pc
.pc:	pop eax
	or byte [ss:eax - .pc + SHIM_DATA_OFF + D_NMI_PENDING], 1
	pop eax
	iret

	; (a negative TIMES below is NASM's error for code running into the data area)
	times SHIM_DATA_OFF - ($ - $$) db 0xCC
shim_data:
	times SHIM_DATA_SIZE db 0
	times SHIM_PAGE_SIZE - ($ - $$) db 0xCC
