/* virtio-vsock at slot 0, two connections: host port 1234, whose peer
 * never reads, and host port 1235, which echoes. The guest fills the
 * first exactly to the credit the host gives (asking for it with
 * CREDIT_REQUEST), so the host buffers a full BUF_ALLOC of its data;
 * the second must still work. One byte over the credit then resets the
 * first connection only, and the second still works. */

#define QMEM(q) (0x200000UL + 0x10000UL * (q))
#define RXBUF 0x300000UL /* 4 x 8 KiB */
#define TXBUF 0x400000UL /* header + up to 64 KiB */
#include "vsock.h"

#define CHUNK 65536U

/* Sends a packet of `len` bytes (whatever is at TXBUF past the header). */
static void send_len(u32 sport, u32 dport, u16 op, u32 len) {
	struct hdr *h = (struct hdr *)TXBUF;
	h->src_cid = cid; h->dst_cid = 2; h->src_port = sport; h->dst_port = dport;
	h->len = len; h->type = 1; h->op = op; h->flags = 0; h->buf_alloc = 65536; h->fwd_cnt = fwd;
	vq_desc(&tx, 0, TXBUF, sizeof(struct hdr) + len, 0, 0);
	vq_kick(&tx, 0);
	vq_wait(&tx, 2000);
}

/* The next packet of any kind (its payload, NUL-terminated, in `data`),
 * or op 0 if none came within ~`ms` ms. */
static struct hdr next_pkt(char *data, u64 ms) {
	struct hdr h = { 0 };
	if (!wait_rx(ms)) return h;
	volatile struct used_elem *u = &rx.used->ring[rx.last_used % rx.size];
	u16 id = (u16)u->id;
	rx.last_used++;
	u8 *b = (u8 *)(RXBUF + 8192UL * id);
	h = *(struct hdr *)b;
	u32 n = h.len < 255 ? h.len : 255;
	for (u32 i = 0; i < n; i++) data[i] = (char)b[sizeof(struct hdr) + i];
	data[n] = 0;
	if (h.op == OP_RW) fwd += h.len;
	post_rx(id);
	return h;
}

/* The next packet for guest port `port` other than a credit update. */
static struct hdr expect(u32 port, char *data) {
	for (int i = 0; i < 1000; i++) {
		struct hdr h = next_pkt(data, 20000);
		if (h.op == 0) fail("no vsock packet");
		if (h.dst_port == port && h.op != OP_CREDIT_UPDATE) return h;
	}
	fail("too many other packets");
	return (struct hdr){ 0 };
}

static void connect(u32 sport, u32 dport) {
	char data[256];
	send(sport, dport, OP_REQUEST, 0, 0);
	struct hdr h = expect(sport, data);
	if (h.op != OP_RESPONSE || h.src_port != dport) fail("no RESPONSE");
}

static void ping(const char *what) {
	char data[256];
	send(5002, 1235, OP_RW, 0, "ping\n");
	struct hdr h = expect(5002, data);
	if (h.op != OP_RW) fail("no echo");
	puts_(what); puts_(": "); puts_(data);
}

void _start(void)
{
	char data[256];
	setup(4);
	connect(5001, 1234);
	connect(5002, 1235);

	/* Fill 5001 to the byte. The credit update answering a
	 * CREDIT_REQUEST is queued after anything else the host had, so the
	 * last one seen is the current state. */
	u32 sent = 0;
	for (int round = 0;; round++) {
		if (round > 200) fail("the host never stopped taking data");
		send_len(5001, 1234, OP_CREDIT_REQUEST, 0);
		u32 buf_alloc = 0, fwd_cnt = 0;
		int got = 0;
		for (;;) {
			struct hdr h = next_pkt(data, got ? 50 : 2000);
			if (h.op == 0) break;
			if (h.dst_port != 5001) continue;
			if (h.op != OP_CREDIT_UPDATE) fail("unexpected packet on the full connection");
			buf_alloc = h.buf_alloc; fwd_cnt = h.fwd_cnt; got = 1;
		}
		if (!got) fail("no credit update");
		u32 credit = buf_alloc - (sent - fwd_cnt);
		if (credit == 0) break;
		u32 n = credit < CHUNK ? credit : CHUNK;
		send_len(5001, 1234, OP_RW, n);
		sent += n;
	}
	puts_("first connection full, within credit\n");
	ping("second connection");

	/* One byte over: that connection is reset, no other. */
	send_len(5001, 1234, OP_RW, 1);
	struct hdr h = expect(5001, data);
	puts_(h.op == OP_RST ? "over credit: rst\n" : "over credit: no rst\n");
	ping("second connection after the reset");
	guest_exit(0);
}
