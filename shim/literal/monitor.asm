; monitor.asm (variant literal): the monitor's side of the world switch.
;
; The monitor reaches the shim data area through its own alias of the shim page (PB_DATA:
; "the shim code really lives amongst our other monitor code"), because the shim's linear
; address belongs to the guest whenever the guest runs.
;
; monitor2host is the documented prologue: (1) save the guest PTE at the shim's linear
; address, (2) remap that page to the shim's physical page, (3) INVLPG it, (4) jump into the
; shim. restore_guest_pte is the epilogue: once the monitor runs again, put the saved guest
; PTE back and INVLPG, before the guest can touch that address.
;
; Position independent, and CS-base independent: with the scenario option cs_wrap the
; monitor's CS has base = its code's linear address and a 4 GiB limit, so reaching the shim
; wraps around 4 GiB. EIP-relative values (far-jump targets) stay offsets in CS, and the
; parameter block is read through CS; data goes through the flat DS.

bits 32
%include "shim_abi.inc"

section .text
	dd PB_MAGIC_VALUE
pb_data:	dd 0
pb_rounds:	dd 0
	times PB_SIZE - ($ - $$) db 0

; monitor_start: the first far jump into the monitor lands here (CS = monitor code,
; SS:ESP = the monitor stack, DS/ES/FS/GS still hold the host's selectors).
monitor_start:
	mov ax, ss
	mov ds, ax
	mov es, ax
	mov fs, ax
	mov gs, ax
	call .pc
.pc:	pop ebp
	sub ebp, .pc
	mov esi, [cs:ebp + pb_data]	; esi = shim data area through the monitor's alias
monitor_loop:
	call restore_guest_pte
guest_run:
	; "the guest": reads each address of its touch list (by default its own page at the
	; shim address), folding what it sees into D_GUEST_SEEN
	xor eax, eax
	xor ecx, ecx
.touch:
	mov edi, [esi + D_TOUCH + 4 * ecx]
	xor eax, [edi]
	inc ecx
	cmp ecx, [esi + D_TOUCH_N]
	jb .touch
	mov [esi + D_GUEST_SEEN], eax
	inc dword [esi + D_ROUNDS]
	call monitor2host
	jmp monitor_loop

; monitor2host: save the monitor world, run the documented prologue, enter the shim.
monitor2host:
	pushfd
	cli
	pushad
	push ds
	push es
	push fs
	push gs
	call .pc
.pc:	pop ebp
	sub ebp, .pc
	mov esi, [cs:ebp + pb_data]
	mov [esi + D_M_SSESP], esp
	mov [esi + D_M_SSESP + 4], ss
	lea eax, [ebp + monitor_resume]
	mov [esi + D_M_TARGET], eax
	mov [esi + D_M_TARGET + 4], cs
	mov edx, [esi + D_PTE_LIN]	; the PTE for the shim's linear page
	cmp dword [esi + D_PTE_SIZE], 8
	jne .pte32
	mov eax, [edx + 4]		; PAE: (1) save and (2) replace the high half first
	mov [esi + D_GUEST_PTE + 4], eax
	mov eax, [esi + D_SHIM_PTE + 4]
	mov [edx + 4], eax
.pte32:
	; (1) save the guest PTE
	mov eax, [edx]
	mov [esi + D_GUEST_PTE], eax
	; (2) remap the page to the shim's physical page
	mov eax, [esi + D_SHIM_PTE]
	mov [edx], eax
	; (3) INVLPG the shim's linear page
	mov edi, [esi + D_SHIM_LIN]
	invlpg [edi]
	; (4) jump into the shim at the same linear address it has in the host
	mov ebx, edi
	add ebx, SHIM_DATA_OFF
	jmp [esi + D_M2H_ENTRY]

; monitor_resume: later far jumps into the monitor land here; pop monitor2host's frame.
monitor_resume:
	pop gs
	pop fs
	pop es
	pop ds
	popad
	popfd
	ret

; restore_guest_pte: the epilogue. Put back the PTE the prologue saved, then INVLPG.
restore_guest_pte:
	mov edx, [esi + D_PTE_LIN]
	cmp dword [esi + D_PTE_SIZE], 8
	jne .pte32
	mov eax, [esi + D_GUEST_PTE + 4]
	mov [edx + 4], eax
.pte32:
	mov eax, [esi + D_GUEST_PTE]
	mov [edx], eax
	mov edi, [esi + D_SHIM_LIN]
	invlpg [edi]
	ret
