/* virtio-vsock (after a console, if any): opens connections to host port 1234 until one
 * is refused (the device's connection cap, or the VMM out of file
 * descriptors), says how many it got, then holds them until the host
 * closes one (a SHUTDOWN comes). It then resets them all, takes the
 * host's connection to guest port 4000 (answering "pong" to what it
 * says), and connects to port 1234 once more. */

#define QMEM(q) (0x200000UL + 0x10000UL * (q))
#define RXBUF 0x300000UL /* 4 x 8 KiB */
#define TXBUF 0x310000UL
#include "vsock.h"

#define BASE_PORT 10000
#define MAX_TRY 100000

/* The next packet other than a credit update, within ~60 s. */
static struct hdr next(char *data) {
	for (int i = 0; i < 3; i++)
		if (wait_rx(20000)) return recv(data);
	fail("no vsock packet");
	return (struct hdr){ 0 };
}

void _start(void)
{
	char data[256];
	struct hdr h;
	setup(4);

	u32 n = 0;
	for (;; n++) {
		if (n == MAX_TRY) fail("no connection refused");
		send(BASE_PORT + n, 1234, OP_REQUEST, 0, 0);
		h = next(data);
		if (h.dst_port != BASE_PORT + n) fail("packet for another connection");
		if (h.op == OP_RST) break;
		if (h.op != OP_RESPONSE) fail("no RESPONSE");
	}
	puts_("connections: "); putdec(n); putc_('\n');
	puts_("full\n");

	/* Until the host closes one of them. */
	do h = next(data);
	while (h.op != OP_SHUTDOWN);
	for (u32 i = 0; i < n; i++) send(BASE_PORT + i, 1234, OP_RST, 0, 0);
	puts_("released\n");

	do h = next(data);
	while (h.op != OP_REQUEST || h.dst_port != 4000);
	u32 hport = h.src_port;
	fwd = 0;
	send(4000, hport, OP_RESPONSE, 0, 0);
	h = next(data);
	if (h.op != OP_RW || h.dst_port != 4000) fail("no RW from the host");
	puts_("host says: "); puts_(data); putc_('\n');
	send(4000, hport, OP_RW, 0, "pong\n");

	send(BASE_PORT, 1234, OP_REQUEST, 0, 0);
	do h = next(data);
	while (h.dst_port != BASE_PORT);
	puts_(h.op == OP_RESPONSE ? "connected again\n" : "refused again\n");
	guest_exit(0);
}
