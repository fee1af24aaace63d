/* flood.c with a vsock driver that ignores the host's credit. */
#define IGNORE_CREDIT
#include "flood.c"
