/* Prints a line on the serial port and exits with status 7. */
#include "guest.h"

void _start(void)
{
	puts_("hello from a test guest\n");
	guest_exit(7);
}
