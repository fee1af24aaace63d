/* Checks what the VMM left for the guest: the zero page (%rsi) with its
 * command line and e820 map, and the MP table in the EBDA. */
#include "guest.h"

u64 zero_page;

void __attribute__((noreturn)) main_(void)
{
	u8 *zp = (u8 *)zero_page;
	u32 cmdline = *(u32 *)(zp + 0x228);
	u8 e820_entries = zp[0x1e8];
	puts_("cmdline: "); puts_((const char *)(u64)cmdline); putc_('\n');
	puts_("e820:");
	for (int i = 0; i < e820_entries; i++) {
		u8 *e = zp + 0x2d0 + 20 * i;
		putc_(' '); puthex(*(u64 *)e); putc_('+'); puthex(*(u64 *)(e + 8)); putc_('/'); putdec(*(u32 *)(e + 16));
	}
	putc_('\n');
	u8 *mpf = (u8 *)0x9fc00;
	if (!memeq(mpf, "_MP_", 4)) { puts_("no MP floating pointer\n"); guest_exit(1); }
	u8 sum = 0;
	for (int i = 0; i < 16; i++) sum += mpf[i];
	u8 *t = (u8 *)(u64)*(u32 *)(mpf + 4);
	u16 len = *(u16 *)(t + 4);
	u8 tsum = 0;
	for (int i = 0; i < len; i++) tsum += t[i];
	int cpus = 0;
	u8 *e = t + 44;
	while (e < t + len) {
		if (*e == 0) { cpus++; e += 20; } else e += 8;
	}
	puts_("mptable: checksums "); putdec(sum); putc_(' '); putdec(tsum); puts_(" cpus "); putdec(cpus); putc_('\n');
	guest_exit(0);
}

void __attribute__((naked)) _start(void)
{
	__asm__("mov %rsi, zero_page(%rip)\n\tjmp main_");
}
