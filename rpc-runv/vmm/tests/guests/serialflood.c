/* Writes to the serial port forever: with nobody reading rpc-vmm's
 * stdout, the vCPU waits on the full pipe. */
#include "guest.h"

void _start(void)
{
	puts_("flooding\n");
	for (;;) puts_("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
}
