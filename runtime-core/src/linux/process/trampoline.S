# The exec trampoline (see trampoline.rs). The runtime runs it with
# argv = [MARKER, path, program argv...] and it does
# execve(path, &argv[2], envp); on failure, "exec <path> failed: errno N"
# on stderr and exit status 127.
# Without the marker in argv[0] the kernel started it, not the runtime: a
# program whose interpreter is /proc/self/exe (#! or PT_INTERP) names the
# trampoline while it execs. Running on would exec itself forever; it
# says so ("exec <AT_EXECFN> failed: refused ...") and exits 126. The
# marker has a space, which the kernel never puts in an interpreter's
# argv[0] (a #! interpreter ends at the first blank).
# Assembled with `as` and embedded as bytes in trampoline.rs; the unit
# test there checks the bytes still match this file when `as` exists.
	.intel_syntax noprefix
	.globl _start
_start:
	mov rcx, [rsp]
	lea rdx, [rsp+rcx*8+16]
	cmp rcx, 2
	jb 5f
	mov rdi, [rsp+8]
	lea rsi, [rip+marker]
6:	mov al, [rsi]
	cmp al, [rdi]
	jne 5f
	inc rsi
	inc rdi
	test al, al
	jnz 6b
	mov rbx, [rsp+16]
	lea rsi, [rsp+24]
	mov rdi, rbx
	mov eax, 59
	syscall
	neg eax
	mov r12d, eax
	lea rsi, [rip+prefix]
	mov edx, 5
	call w
	call s
	lea rsi, [rip+mid]
	mov edx, 15
	call w
	sub rsp, 32
	lea rdi, [rsp+31]
	mov byte ptr [rdi], 10
	mov eax, r12d
	mov ecx, 10
4:	xor edx, edx
	div ecx
	add dl, 48
	dec rdi
	mov [rdi], dl
	test eax, eax
	jnz 4b
	mov rsi, rdi
	lea rdx, [rsp+32]
	sub rdx, rdi
	call w
	mov edi, 127
	jmp x
# Refused: the program's name is AT_EXECFN (31) of the auxiliary vector,
# which follows envp's NULL.
5:	mov rax, [rdx]
	add rdx, 8
	test rax, rax
	jnz 5b
	xor ebx, ebx
7:	mov rax, [rdx]
	test rax, rax
	jz 8f
	add rdx, 16
	cmp rax, 31
	jne 7b
	mov rbx, [rdx-8]
8:	lea rsi, [rip+prefix]
	mov edx, 5
	call w
	call s
	lea rsi, [rip+refused]
	mov edx, refused_end - refused
	call w
	mov edi, 126
x:	mov eax, 231
	syscall
# Write the NUL-terminated string at rbx (if any) to stderr.
s:	test rbx, rbx
	jz 2f
	mov rsi, rbx
	xor edx, edx
1:	cmp byte ptr [rbx+rdx], 0
	je w
	inc rdx
	jmp 1b
2:	ret
w:	mov edi, 2
	mov eax, 1
	syscall
	ret
prefix:	.ascii "exec "
mid:	.ascii " failed: errno "
refused: .ascii " failed: refused to run the runtime's exec trampoline as its interpreter (#!/proc/self/exe or PT_INTERP)\n"
refused_end:
marker:	.asciz "rpc exec-trampoline"
