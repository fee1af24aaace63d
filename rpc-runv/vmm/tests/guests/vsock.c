/* Drives virtio-vsock at slot 0: connects to host port 1234 (a unix
 * socket on the host), says hello and prints the reply; shuts down; then
 * accepts the host's connection to guest port 4000, prints what comes and
 * answers "pong". */

#define QMEM(q) (0x200000UL + 0x10000UL * (q))
#define RXBUF 0x300000UL /* 4 x 8 KiB */
#define TXBUF 0x310000UL
#include "vsock.h"

void _start(void)
{
	char data[256];
	setup(4);
	puts_("cid "); putdec(cid); putc_('\n');

	send(5000, 1234, OP_REQUEST, 0, 0);
	struct hdr h = recv(data);
	if (h.op != OP_RESPONSE || h.dst_port != 5000 || h.src_port != 1234) fail("no RESPONSE");
	puts_("connected to host port 1234\n");
	send(5000, 1234, OP_RW, 0, "hello vsock\n");
	do h = recv(data); while (h.op == OP_CREDIT_UPDATE);
	if (h.op != OP_RW) fail("no RW");
	puts_("rx: "); puts_(data); putc_('\n');
	send(5000, 1234, OP_SHUTDOWN, 3, 0);
	h = recv(data);
	puts_(h.op == OP_RST ? "closed\n" : "no RST\n");

	h = recv(data);
	if (h.op != OP_REQUEST || h.dst_port != 4000) fail("no REQUEST from the host");
	u32 hport = h.src_port;
	fwd = 0; /* credit counts per connection */
	puts_("request to port 4000\n");
	send(4000, hport, OP_RESPONSE, 0, 0);
	do h = recv(data); while (h.op == OP_CREDIT_UPDATE);
	if (h.op != OP_RW) fail("no RW from the host");
	puts_("host says: "); puts_(data); putc_('\n');
	send(4000, hport, OP_RW, 0, "pong\n");
	guest_exit(0);
}
