; observer.asm: the part of the boot kernel that runs inside the host's address space.
;
; The kernel copies this flat, position-independent blob into the host code page, right
; after host.bin (the only page of the host space we can execute from without changing the
; host's page tables), fills its parameter block, points host.bin's PB_OBSERVER at
; `observer` and the host IDT's first 32 gates at `stubs`, and jumps to `enter_host`.
;
;   enter_host  runs once, reached through the kernel's own page tables (which map this page
;               at its host linear address): loads the host GDTR/IDTR/CR3, then the host's
;               selectors, TR, ESP, EFLAGS, and jumps to host_main.
;   observer    host_main calls it with EAX = 0 (entry), 1 (after each round trip), 2 (end),
;               inside a PUSHAD/POPAD pair: it prints one JSON line per call and at the end
;               stops the machine.
;   stubs       one per vector 0..31: an exception in the host world prints a JSON line and
;               stops the machine.
;
; Everything here is ring 0 and touches nothing but this page, the host stack, the host's
; GDT (through the host's own mapping of it), the shim page (read only) and, for one
; instant, the kernel's page tables (see read_entry).
;
; Output goes to port 0xE9 (QEMU debugcon, Bochs port_e9_hack) and to COM1.

bits 32
%include "shim_abi.inc"		; SHIM_DATA_OFF, D_* (generated from shim/shim_abi.h)

BLOB_MAGIC	equ 0x424F4853		; "SHOB"
STUB_SIZE	equ 16
COM1		equ 0x3F8
DEBUG_EXIT	equ 0xF4		; QEMU isa-debug-exit: status = (value << 1) | 1
BOCHS_SHUTDOWN	equ 0x8900		; Bochs: "Shutdown" written here ends the simulation

; The parameter block the kernel fills. Same order and sizes as struct blob_params in
; kernel.h; the kernel refuses a blob whose P_size differs from sizeof(struct blob_params).
struc P
.gdtr_pad	resw 1
.gdtr		resw 1			; LGDT operand: limit word, then base dword
.gdtr_base	resd 1
.idtr_pad	resw 1
.idtr		resw 1
.idtr_base	resd 1
.cr3		resd 1			; host CR3
.far_off	resd 1			; far pointer to enter_host.host_cs (host linear, host CS)
.far_cs		resw 1
.ss		resw 1
.ds		resw 1
.es		resw 1
.fs		resw 1
.gs		resw 1
.tr		resw 1
.pad		resw 1
.esp		resd 1
.eflags		resd 1
.eip		resd 1			; host_main
.kpd		resd 1			; CR3 of the kernel's tables (they map the entry's page)
.entry_lin	resd 1			; the monitor's shim-address entry, in the kernel's tables
.entry_size	resd 1			; 4 or 8
.shim_lin	resd 1			; the shim page, mapped in the host space
.exit_ok	resd 1			; isa-debug-exit values: run complete
.exit_fault	resd 1			;   an exception in the host world
.resume		resd 1			; batch: kernel_resume (kernel linear = physical); 0: stop
.dr0		resd 1			; DR0 and DR7 loaded just before host_main (the window
.dr7		resd 1			;   experiment: an instruction breakpoint; DR7 0: none)
endstruc

section .text
blob:
	dd BLOB_MAGIC
	dd blob_end - blob		; size
	dd observer
	dd enter_host
	dd enter_host.host_cs
	dd stubs
	dd STUB_SIZE
	dd params
	dd P_size

; ---- enter_host ---------------------------------------------------------------------------
; Reached by a near jump from the kernel: paging is on with the kernel's tables, which map
; this page at its host linear address and the kernel (and its stack) at their physical
; addresses. CR0/CR4/EFER are already the host's, the host TSS descriptor is not busy.
enter_host:
	call .pc			; the kernel stack is still mapped here
.pc:	pop ebp
	sub ebp, .pc			; ebp = linear address of this blob
	lgdt [ebp + params + P.gdtr]
	lidt [ebp + params + P.idtr]
	mov eax, [ebp + params + P.cr3]
	mov cr3, eax			; the host space: this page is mapped at this linear address
	jmp far [ebp + params + P.far_off] ; host CS, from the host GDT
.host_cs:
	mov ax, [ebp + params + P.ss]
	mov ss, ax
	mov esp, [ebp + params + P.esp]	; no stack use before this: the kernel's is not mapped
	mov ax, [ebp + params + P.ds]
	mov ds, ax
	mov ax, [ebp + params + P.es]
	mov es, ax
	mov ax, [ebp + params + P.fs]
	mov fs, ax
	mov ax, [ebp + params + P.gs]
	mov gs, ax
	xor eax, eax
	lldt ax				; LDTs are not modelled: LDTR = 0 as in the image
	ltr [ebp + params + P.tr]	; the kernel cleared the busy bit; LTR sets it again
	mov eax, 0xFFFF0FF0
	mov dr6, eax			; no breakpoint seen yet (the observer reports DR6)
	mov eax, [ebp + params + P.dr0]
	mov dr0, eax
	mov eax, [ebp + params + P.dr7]
	mov dr7, eax			; armed from here on; this page is never the breakpoint
	push dword [ebp + params + P.eflags]
	popfd				; (the dword below the host's ESP is scratch)
	xor eax, eax			; the image starts host_main with zero registers
	xor ebx, ebx
	xor ecx, ecx
	xor edx, edx
	xor esi, esi
	xor edi, edi
	jmp [ebp + params + P.eip]	; host_main recomputes EBP before using it

; ---- observer -----------------------------------------------------------------------------
; EAX = event. The caller's PUSHAD frame lies above our return address; it holds the
; registers host_main had at that point, which is what we report.
observer:
	pushfd				; the caller's EFLAGS (CALL does not change them)
	pushad
	lea esi, [esp + 40]		; the caller's PUSHAD frame: ours (32), EFLAGS (4), return (4)
	sub esp, 8			; scratch for SGDT/SIDT
	call .pc
.pc:	pop ebp
	sub ebp, .pc

	lea edi, [ebp + s_obs]
	call puts
	mov eax, [esp + 8 + 28]		; our PUSHAD's EAX: the event
	lea edi, [ebp + s_entry]
	cmp eax, 0
	je .named
	lea edi, [ebp + s_round]
	cmp eax, 1
	je .named
	lea edi, [ebp + s_end]
	cmp eax, 2
	je .named
	lea edi, [ebp + s_unknown]
.named:
	call puts
	mov al, '"'
	call putc

	lea edi, [ebp + k_cr0]
	mov eax, cr0
	call putkv
	lea edi, [ebp + k_cr3]
	mov eax, cr3
	call putkv
	lea edi, [ebp + k_cr4]
	mov eax, cr4
	call putkv
	mov ecx, 0xC0000080		; EFER
	rdmsr
	lea edi, [ebp + k_efer]
	call putkv

	sgdt [esp + 2]
	lea edi, [ebp + k_gdtr]
	mov eax, [esp + 4]
	call putkv
	lea edi, [ebp + k_gdtr_limit]
	movzx eax, word [esp + 2]
	call putkv
	sidt [esp + 2]
	lea edi, [ebp + k_idtr]
	mov eax, [esp + 4]
	call putkv
	lea edi, [ebp + k_idtr_limit]
	movzx eax, word [esp + 2]
	call putkv

	; TR and its descriptor, read through the GDT as the CPU would find it now
	str eax
	movzx eax, ax
	lea edi, [ebp + k_tr]
	push eax
	call putkv
	pop ecx
	sgdt [esp + 2]
	and ecx, 0xFFF8
	xor eax, eax
	xor edx, edx
	lea ebx, [ecx + 7]
	movzx edi, word [esp + 2]
	cmp ebx, edi
	ja .no_desc			; outside the GDT limit (or TR = 0): print 0
	test ecx, ecx
	jz .no_desc
	add ecx, [esp + 4]
	mov eax, [ecx]
	mov edx, [ecx + 4]
.no_desc:
	lea edi, [ebp + k_tr_desc]
	call putkv64

	lea edi, [ebp + k_cs]
	mov eax, cs
	movzx eax, ax
	call putkv
	lea edi, [ebp + k_ss]
	mov eax, ss
	movzx eax, ax
	call putkv
	lea edi, [ebp + k_ds]
	mov eax, ds
	movzx eax, ax
	call putkv
	lea edi, [ebp + k_es]
	mov eax, es
	movzx eax, ax
	call putkv
	lea edi, [ebp + k_fs]
	mov eax, fs
	movzx eax, ax
	call putkv
	lea edi, [ebp + k_gs]
	mov eax, gs
	movzx eax, ax
	call putkv
	lea edi, [ebp + k_eflags]
	mov eax, [esi - 8]
	call putkv

	; the general registers host_main holds: what the shim promises to give back
	lea edi, [ebp + k_eax]
	mov eax, [esi + 28]
	call putkv
	lea edi, [ebp + k_ecx]
	mov eax, [esi + 24]
	call putkv
	lea edi, [ebp + k_edx]
	mov eax, [esi + 20]
	call putkv
	lea edi, [ebp + k_ebx]
	mov eax, [esi + 16]
	call putkv
	lea edi, [ebp + k_esp]
	mov eax, [esi + 12]
	call putkv
	lea edi, [ebp + k_ebp]
	mov eax, [esi + 8]
	call putkv
	lea edi, [ebp + k_esi]
	mov eax, [esi + 4]
	call putkv
	lea edi, [ebp + k_edi]
	mov eax, [esi]
	call putkv

	call read_entry
	lea edi, [ebp + k_shim_entry]
	call putkv64

	; two words of the shim's data area, through the host's mapping of the shim page: what
	; the guest read with its own PTE in place (a stale translation shows here), and the
	; monitor's count of round trips
	mov ebx, [ebp + params + P.shim_lin]
	lea edi, [ebp + k_guest_seen]
	mov eax, [ebx + SHIM_DATA_OFF + D_GUEST_SEEN]
	call putkv
	lea edi, [ebp + k_monitor_rounds]
	mov eax, [ebx + SHIM_DATA_OFF + D_ROUNDS]
	call putkv
	; the hardened shim's NMI handler sets this word (its gates: every vector); and DR6,
	; whose B0 says that the DR0 breakpoint fired at least once (DR6 is sticky)
	lea edi, [ebp + k_nmi_pending]
	mov eax, [ebx + SHIM_DATA_OFF + D_NMI_PENDING]
	call putkv
	lea edi, [ebp + k_dr6]
	mov eax, dr6
	call putkv

	; checksum of the page at the shim's linear address, as the host sees it:
	; h = rol(h, 5) + dword, over the 1024 dwords in order (boot_cmd.c computes the same)
	mov ebx, [ebp + params + P.shim_lin]
	xor eax, eax
	xor ecx, ecx
.sum:
	rol eax, 5
	add eax, [ebx + 4 * ecx]
	inc ecx
	cmp ecx, 1024
	jb .sum
	lea edi, [ebp + k_shim_sum]
	call putkv

	lea edi, [ebp + s_close]
	call puts

	cmp dword [esp + 8 + 28], 2
	jne .back
	mov eax, [ebp + params + P.exit_ok]
	jmp stop
.back:
	add esp, 8
	popad
	popfd
	ret

; read_entry: EDX:EAX = the monitor's paging entry for the shim address. It lives in the
; monitor's page tables, which the host space does not map; the kernel's tables map its page
; (at the identity address). Switch CR3 to them for three loads and back. No stack use in
; between: the host stack is not mapped there. The MOV CR3 pair flushes only non-global
; translations, which the host's next MOV CR3 (in the shim) flushes anyway; the host's page
; tables never change during a run, so refills give the same translations.
read_entry:
	mov ecx, [ebp + params + P.kpd]
	mov edi, [ebp + params + P.entry_lin]
	xor edx, edx
	mov ebx, cr3
	mov cr3, ecx
	mov eax, [edi]
	cmp dword [ebp + params + P.entry_size], 8
	jne .narrow
	mov edx, [edi + 4]
.narrow:
	mov cr3, ebx
	ret

; ---- output -------------------------------------------------------------------------------

; putc: AL to port 0xE9 and to COM1 (after the transmitter holding register is empty; the
; wait is bounded so a machine without a UART does not hang). Preserves all registers.
putc:
	push edx
	push ecx
	push eax
	mov dx, 0xE9
	out dx, al
	mov dx, COM1 + 5		; line status
	mov ecx, 100000
.wait:
	in al, dx
	test al, 0x20
	jnz .ready
	loop .wait
.ready:
	mov eax, [esp]
	mov dx, COM1
	out dx, al
	pop eax
	pop ecx
	pop edx
	ret

; puts: the zero-terminated string at EDI. Clobbers EAX, EDI.
puts:
	mov al, [edi]
	test al, al
	jz .done
	call putc
	inc edi
	jmp puts
.done:
	ret

; puthex: EAX in lower-case hex without leading zeros, like the simulator's "0x%x".
; puthex8: exactly 8 digits. Clobbers EAX.
puthex:
	push ecx
	push edx
	mov edx, eax
	mov ecx, 28
.skip:
	test ecx, ecx
	jz puthex_digits
	mov eax, edx
	shr eax, cl
	test eax, 0xF
	jnz puthex_digits
	sub ecx, 4
	jmp .skip
puthex8:
	push ecx
	push edx
	mov edx, eax
	mov ecx, 28
puthex_digits:
	mov eax, edx
	shr eax, cl
	and eax, 0xF
	mov al, [ebp + hexdigits + eax]
	call putc
	sub ecx, 4
	jns puthex_digits
	pop edx
	pop ecx
	ret

; putkv: the key string at EDI (it ends in `"0x`), EAX in hex, closing quote.
putkv:
	push eax
	call puts
	pop eax
	call puthex
	mov al, '"'
	jmp putc

; putkv64: the same for EDX:EAX.
putkv64:
	push eax
	call puts
	pop eax
	test edx, edx
	jz .low
	push eax
	mov eax, edx
	call puthex
	pop eax
	call puthex8
	jmp .close
.low:
	call puthex
.close:
	mov al, '"'
	jmp putc

; ---- the end ------------------------------------------------------------------------------

; stop: EAX = isa-debug-exit value. Let COM1 drain (LSR bit 0x40: shifter empty, or the
; last bytes are lost), then leave the machine whichever way this one understands.
stop:
	mov ecx, [ebp + params + P.resume]
	test ecx, ecx
	jz .machine
	mov edx, [ebp + params + P.kpd]	; batch: back to the kernel, which maps this page at
	mov cr3, edx			; this linear address and itself 1:1
	jmp ecx
.machine:
	mov ebx, eax
	mov dx, COM1 + 5
	mov ecx, 1000000
.drain:
	in al, dx
	test al, 0x40
	jnz .drained
	loop .drain
.drained:
	mov eax, ebx
	mov dx, DEBUG_EXIT
	out dx, al			; QEMU with isa-debug-exit ends here
	xchg bx, bx			; Bochs magic breakpoint: the rc file's `q` follows
	call .pc			; Bochs without magic_break: its shutdown port
.pc:	pop edi
	add edi, s_shutdown - .pc
	mov dx, BOCHS_SHUTDOWN
.say:
	mov al, [edi]
	test al, al
	jz .halt
	out dx, al
	inc edi
	jmp .say
.halt:
	cli
	hlt
	jmp .halt

; ---- exceptions in the host world ---------------------------------------------------------
; Each stub makes the same frame: vector, error code (0 when the CPU pushes none), EIP, CS,
; EFLAGS. Interrupt gates: IF is already 0 and stays 0.
	align STUB_SIZE
stubs:
%assign v 0
%rep 32
	align STUB_SIZE
%if v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30
	push byte v
%else
	push byte 0
	push byte v
%endif
	jmp fault
%assign v v + 1
%endrep

fault:
	call .pc
.pc:	pop ebp
	sub ebp, .pc
	mov esi, esp			; esi -> vector, error, EIP, CS, EFLAGS
	lea edi, [ebp + s_exc]
	call puts
	lea edi, [ebp + k_vector]
	mov eax, [esi]
	call putkv
	lea edi, [ebp + k_error]
	mov eax, [esi + 4]
	call putkv
	lea edi, [ebp + k_eip]
	mov eax, [esi + 8]
	call putkv
	lea edi, [ebp + k_cs]
	mov eax, [esi + 12]
	and eax, 0xFFFF
	call putkv
	lea edi, [ebp + k_eflags]
	mov eax, [esi + 16]
	call putkv
	lea edi, [ebp + k_cr2]
	mov eax, cr2
	call putkv
	lea edi, [ebp + k_cr3]
	mov eax, cr3
	call putkv
	lea edi, [ebp + k_esp]
	lea eax, [esi + 20]		; the ESP of the faulting code (no privilege change)
	call putkv
	lea edi, [ebp + s_close]
	call puts
	mov eax, [ebp + params + P.exit_fault]
	jmp stop

; ---- data ---------------------------------------------------------------------------------
hexdigits:	db "0123456789abcdef"
s_obs:		db '{"type":"observation","event":"', 0
s_entry:	db "entry", 0
s_round:	db "round", 0
s_end:		db "end", 0
s_unknown:	db "unknown", 0
s_exc:		db '{"type":"exception","phase":"host"', 0
s_close:	db "}", 10, 0
s_shutdown:	db "Shutdown", 0
k_cr0:		db ',"cr0":"0x', 0
k_cr2:		db ',"cr2":"0x', 0
k_cr3:		db ',"cr3":"0x', 0
k_cr4:		db ',"cr4":"0x', 0
k_efer:		db ',"efer":"0x', 0
k_gdtr:		db ',"gdtr":"0x', 0
k_gdtr_limit:	db ',"gdtr_limit":"0x', 0
k_idtr:		db ',"idtr":"0x', 0
k_idtr_limit:	db ',"idtr_limit":"0x', 0
k_tr:		db ',"tr":"0x', 0
k_tr_desc:	db ',"tr_desc":"0x', 0
k_cs:		db ',"cs":"0x', 0
k_ss:		db ',"ss":"0x', 0
k_ds:		db ',"ds":"0x', 0
k_es:		db ',"es":"0x', 0
k_fs:		db ',"fs":"0x', 0
k_gs:		db ',"gs":"0x', 0
k_eflags:	db ',"eflags":"0x', 0
k_eax:		db ',"eax":"0x', 0
k_ecx:		db ',"ecx":"0x', 0
k_edx:		db ',"edx":"0x', 0
k_ebx:		db ',"ebx":"0x', 0
k_esp:		db ',"esp":"0x', 0
k_ebp:		db ',"ebp":"0x', 0
k_esi:		db ',"esi":"0x', 0
k_edi:		db ',"edi":"0x', 0
k_shim_entry:	db ',"shim_entry":"0x', 0
k_shim_sum:	db ',"shim_sum":"0x', 0
k_guest_seen:	db ',"guest_seen":"0x', 0
k_monitor_rounds: db ',"monitor_rounds":"0x', 0
k_nmi_pending:	db ',"nmi_pending":"0x', 0
k_dr6:		db ',"dr6":"0x', 0
k_vector:	db ',"vector":"0x', 0
k_error:	db ',"error":"0x', 0
k_eip:		db ',"eip":"0x', 0

	align 4
params:
	times P_size db 0
blob_end:
