; shim.asm (variant literal): the one-page shim, mapped at the same linear address in the
; host's and the monitor's space. Each half follows the documented order exactly:
;   LGDT target, LIDT target, clear the busy bit of the target TSS descriptor, LTR,
;   MOV CR3 target, LSS target stack, far JMP into the target world.
; Caller's contract (docs/shim-abi.md): IF=0, EBX = linear address of the data area
; (shim page + SHIM_DATA_OFF), every D_* field of the target world filled in.
;
; The busy-bit clear and the LTR touch the target GDT through the *source* world's page
; tables (CR3 is switched last): that is the documented sequence, and what the checkers
; examine.

bits 32
%include "shim_abi.inc"

section .text

__monitor2host:
	lgdt [ebx + D_H_GDTR]
	lidt [ebx + D_H_IDTR]
	mov eax, [ebx + D_H_GDTR + 2]	; host GDT base
	movzx ecx, word [ebx + D_H_TR]
	and ecx, 0xFFF8
	and byte [eax + ecx + 5], 0xFD	; busy TSS (type 0xB) -> available (0x9)
	ltr word [ebx + D_H_TR]
	mov eax, [ebx + D_H_CR3]
	mov cr3, eax			; now in the host linear space
	lss esp, [ebx + D_H_SSESP]
	jmp far [ebx + D_H_TARGET]	; restore_to_host

__host2monitor:
	lgdt [ebx + D_M_GDTR]
	lidt [ebx + D_M_IDTR]
	mov eax, [ebx + D_M_GDTR + 2]	; monitor GDT base
	movzx ecx, word [ebx + D_M_TR]
	and ecx, 0xFFF8
	and byte [eax + ecx + 5], 0xFD
	ltr word [ebx + D_M_TR]
	mov eax, [ebx + D_M_CR3]
	mov cr3, eax			; now in the monitor linear space
	lss esp, [ebx + D_M_SSESP]
	jmp far [ebx + D_M_TARGET]	; monitor_start or monitor_resume

	; (a negative TIMES below is NASM's error for code running into the data area)
	times SHIM_DATA_OFF - ($ - $$) db 0xCC
shim_data:
	times SHIM_DATA_SIZE db 0
	times SHIM_PAGE_SIZE - ($ - $$) db 0xCC
