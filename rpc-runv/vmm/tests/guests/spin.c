/* Prints a line and spins forever: the host stops it with a signal. */
#include "guest.h"

void _start(void)
{
	puts_("spinning\n");
	for (;;)
		__asm__ volatile("pause");
}
