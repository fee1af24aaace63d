/* Loads an empty IDT and faults: a triple fault (rpc-vmm exits 127). */
#include "guest.h"

void _start(void)
{
	struct { u16 limit; u64 base; } __attribute__((packed)) idt = { 0, 0 };
	puts_("triple fault next\n");
	__asm__ volatile("lidt %0; ud2" : : "m"(idt));
	guest_exit(1);
}
