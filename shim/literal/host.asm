; host.asm (variant literal): the host kernel module's side of the world switch.
;
; host_main plays the host: it loads every general register with a distinct value, calls
; host2monitor PB_ROUNDS times, and stops at host_done. host2monitor saves the host's
; segment and general registers on the host stack and its CR3/GDTR/IDTR/TR/SS:ESP in the
; shim data area, then enters the shim's __host2monitor. The shim comes back through a far
; jump to restore_to_host, which pops what host2monitor pushed and returns to the caller.
;
; Position independent: the only absolute address it uses is PB_DATA, which the image
; builder writes into the parameter block.

bits 32
%include "shim_abi.inc"

section .text
	; parameter block, filled by the image builder
	dd PB_MAGIC_VALUE
pb_data:	dd 0
pb_rounds:	dd 0
	times PB_SIZE - ($ - $$) db 0

host_main:
	call .pc
.pc:	pop ebp
	sub ebp, .pc			; ebp = this binary's start, as an offset in CS
	mov ecx, [cs:ebp + pb_rounds]
	mov eax, 0xA5A50001		; distinct values, so a lost register shows
	mov edx, 0xA5A50003
	mov esi, 0xA5A50006
	mov edi, 0xA5A50007
host_loop:
	mov ebx, 0xA5A50002
host_call:
	call host2monitor
host_after_call:
	dec ecx
	jnz host_loop
host_done:
	hlt

; host2monitor: save the host world, enter the shim. Interrupts stay off from here
; until restore_to_host's POPFD.
host2monitor:
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
	mov ebx, [cs:ebp + pb_data]	; ebx = shim data area (host linear = monitor linear)
	mov eax, cr3
	mov [ebx + D_H_CR3], eax
	sgdt [ebx + D_H_GDTR]
	sidt [ebx + D_H_IDTR]
	str word [ebx + D_H_TR]
	mov [ebx + D_H_SSESP], esp
	mov [ebx + D_H_SSESP + 4], ss
	lea eax, [ebp + restore_to_host]
	mov [ebx + D_H_TARGET], eax
	mov [ebx + D_H_TARGET + 4], cs
	jmp [ebx + D_H2M_ENTRY]		; into the shim, at its host linear address

; restore_to_host: the shim's far jump lands here with CS, SS:ESP, GDTR, IDTR, TR and CR3
; already the host's. Pop what host2monitor pushed and return to its caller.
restore_to_host:
	pop gs
	pop fs
	pop es
	pop ds
	popad
	popfd
	ret
