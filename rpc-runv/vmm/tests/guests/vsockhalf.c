/* virtio-vsock at slot 0: RST for an unknown connection, half-close both
 * ways, RST on a write to a host socket that is gone, and a device reset
 * that drops connections and queued packets. The host side (tests/vsock.rs)
 * listens on ports 1234..1237. */

#define QMEM(q) (0x200000UL + 0x10000UL * (q))
#define RXBUF 0x300000UL /* 4 x 8 KiB */
#define TXBUF 0x310000UL
#include "vsock.h"


static void say_op(const char *what, struct hdr h) {
	puts_(what); puts_(": ");
	switch (h.op) {
	case OP_RST: puts_("rst"); break;
	case OP_SHUTDOWN: puts_("shutdown flags "); putdec(h.flags); break;
	case OP_RW: puts_("rw"); break;
	default: puts_("op "); putdec(h.op);
	}
	putc_('\n');
}

static void connect(u32 sport, u32 dport, int repost) {
	char data[256];
	fwd = 0;
	send(sport, dport, OP_REQUEST, 0, 0);
	struct hdr h = recv_(data, repost);
	if (h.op != OP_RESPONSE || h.dst_port != sport || h.src_port != dport) fail("no RESPONSE");
}

static void delay_ms(u64 ms) {
	u64 end = rdtsc() + ms * 1000000UL * 3;
	while (rdtsc() < end) barrier();
}

void _start(void)
{
	char data[256];
	struct hdr h;
	setup(4);

	/* Data for a connection that does not exist. */
	send(6000, 1234, OP_RW, 0, "nobody");
	say_op("unknown connection", recv(data));

	/* The host shuts its write side: we can still send. */
	connect(5001, 1234, 1);
	say_op("host half-closed", recv(data));
	send(5001, 1234, OP_RW, 0, "still sending\n");
	send(5001, 1234, OP_SHUTDOWN, 2, 0);
	say_op("after our shutdown", recv(data));

	/* We shut our write side: the host can still send. */
	connect(5002, 1235, 1);
	send(5002, 1235, OP_RW, 0, "bye\n");
	send(5002, 1235, OP_SHUTDOWN, 2, 0);
	h = recv(data);
	if (h.op != OP_RW) fail("no data after our shutdown");
	puts_("host says: "); puts_(data);
	say_op("then", recv(data));
	say_op("then", recv(data));

	/* The host closes: our next write gets an RST. */
	connect(5003, 1236, 1);
	say_op("host closed", recv(data));
	send(5003, 1236, OP_RW, 0, "anyone?\n");
	say_op("write after host close", recv(data));

	/* A reset drops the connection and the packet queued for it. */
	setup(1);
	connect(5004, 1237, 0); /* no receive buffer left: the host's data waits */
	delay_ms(300);
	setup(4);
	puts_(wait_rx(300) ? "stale packet after reset\n" : "nothing after reset\n");
	send(5004, 1237, OP_RW, 0, "old connection");
	say_op("old connection after reset", recv(data));
	guest_exit(0);
}
