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
;     D_NMI_PENDING for the target world to re-raise. The target's stack is loaded before its
;     IDT, so both are in place when the target IDT takes over.
; Caller's contract (docs/shim-abi.md): IF=0, EBX = linear address of the data area, a flat
; CS when D_MODESWITCH is set.

bits 32
%include "shim_abi.inc"

CR0_PG	equ 0x80000000
CR4_PGE	equ 0x00000080

; SWITCH target, source: one shim half. Target/source are H (host) or M (monitor).
%macro SWITCH 2
	lidt [ebx + D_SHIM_IDTR]		; gates, descriptors and stack of the shim's own, all in
	lgdt [ebx + D_SHIM_GDTR]		; this page (IDT first: its gate selector is in every GDT)
	lss esp, [ebx + D_SHIM_SSESP]		; an NMI now reaches __shim_nmi on this page's stack
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
