/*
 * Helpers for the freestanding test guests: entered by rpc-vmm in 64-bit
 * long mode (first 4 GiB identity-mapped, %rsi = zero page, interrupts
 * off), at _start, linked at 1 MiB. Ring 0 runs emulated on some hosts:
 * keep them short.
 */
#ifndef GUEST_H
#define GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

#define SERIAL 0x3f8
#define EXIT_PORT 0x510
#define VIRTIO_BASE 0xd0000000UL

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void mmio_w32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline u32 mmio_r32(u64 a) { return *(volatile u32 *)a; }
static inline void mmio_w8(u64 a, u8 v) { *(volatile u8 *)a = v; }
static inline u8 mmio_r8(u64 a) { return *(volatile u8 *)a; }
static inline void barrier(void) { __asm__ volatile("mfence" ::: "memory"); }

static void putc_(char c) { outb(SERIAL, (u8)c); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void puthex(u64 v) {
	puts_("0x");
	for (int i = 60; i >= 0; i -= 4) putc_("0123456789abcdef"[(v >> i) & 0xf]);
}
static void putdec(u64 v) {
	char b[24]; int i = 0;
	do { b[i++] = '0' + v % 10; v /= 10; } while (v);
	while (i) putc_(b[--i]);
}
/* Stops the VM: rpc-vmm exits with `status`. */
static void __attribute__((noreturn)) guest_exit(u8 status) {
	outb(EXIT_PORT, status);
	for (;;) __asm__ volatile("hlt");
}
static void *memset_(void *d, int c, u64 n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
static int memeq(const void *a, const void *b, u64 n) {
	const u8 *x = a, *y = b;
	while (n--) if (*x++ != *y++) return 0;
	return 1;
}
#endif
