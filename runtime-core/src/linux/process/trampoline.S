# The exec trampoline (see trampoline.rs): execve(argv[0], &argv[1], envp);
# on failure, "exec <path> failed: errno N" on stderr and exit status 127.
# Assembled with `as` and embedded as bytes in trampoline.rs; the unit
# test there checks the bytes still match this file when `as` exists.
	.intel_syntax noprefix
	.globl _start
_start:
	mov rbx, [rsp+8]
	mov rcx, [rsp]
	lea rsi, [rsp+16]
	lea rdx, [rsp+rcx*8+16]
	mov rdi, rbx
	mov eax, 59
	syscall
	neg eax
	mov r12d, eax
	lea rsi, [rip+prefix]
	mov edx, 5
	call w
	test rbx, rbx
	jz 2f
	mov rsi, rbx
	xor edx, edx
1:	cmp byte ptr [rbx+rdx], 0
	je 3f
	inc rdx
	jmp 1b
3:	call w
2:	lea rsi, [rip+mid]
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
	mov eax, 231
	syscall
w:	mov edi, 2
	mov eax, 1
	syscall
	ret
prefix:	.ascii "exec "
mid:	.ascii " failed: errno "
