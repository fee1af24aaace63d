/* Drives virtio-vsock at slot 0: connects to host port 1234 (a unix
 * socket on the host), says hello and prints the reply; shuts down; then
 * accepts the host's connection to guest port 4000, prints what comes and
 * answers "pong". */
#include "virtio.h"

#define QMEM(q) (0x200000UL + 0x10000UL * (q))
#define RXBUF 0x300000UL /* 4 x 8 KiB */
#define TXBUF 0x310000UL

struct hdr {
	u64 src_cid, dst_cid;
	u32 src_port, dst_port, len;
	u16 type, op;
	u32 flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

static struct vq rx, tx, ev;
static u64 cid;
static u32 fwd;

static void post_rx(u16 i) {
	vq_desc(&rx, i, RXBUF + 8192UL * i, 8192, D_WRITE, 0);
	vq_kick(&rx, i);
}

static void send(u32 sport, u32 dport, u16 op, u32 flags, const char *data) {
	struct hdr *h = (struct hdr *)TXBUF;
	u32 n = 0;
	if (data) for (; data[n]; n++) ((u8 *)TXBUF)[sizeof(struct hdr) + n] = data[n];
	h->src_cid = cid; h->dst_cid = 2; h->src_port = sport; h->dst_port = dport;
	h->len = n; h->type = 1; h->op = op; h->flags = flags; h->buf_alloc = 65536; h->fwd_cnt = fwd;
	vq_desc(&tx, 0, TXBUF, sizeof(struct hdr) + n, 0, 0);
	vq_kick(&tx, 0);
	vq_wait(&tx, 2000);
}

/* The next packet; its payload, NUL-terminated, in `data`. */
static struct hdr recv(char *data) {
	u64 deadline = rdtsc() + 20000UL * 1000000UL * 3;
	while (rx.used->idx == rx.last_used) {
		barrier();
		if (rdtsc() > deadline) fail("no vsock packet");
	}
	volatile struct used_elem *u = &rx.used->ring[rx.last_used % rx.size];
	u16 id = (u16)u->id;
	rx.last_used++;
	u8 *b = (u8 *)(RXBUF + 8192UL * id);
	struct hdr h = *(struct hdr *)b;
	u32 n = h.len < 255 ? h.len : 255;
	for (u32 i = 0; i < n; i++) data[i] = (char)b[sizeof(struct hdr) + i];
	data[n] = 0;
	if (h.op == 5) fwd += h.len;
	post_rx(id);
	return h;
}

void _start(void)
{
	char data[256];
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 19);
	cid = mmio_r32(base + R_CONFIG) | ((u64)mmio_r32(base + R_CONFIG + 4) << 32);
	vq_init(&rx, base, 0, 8, QMEM(0));
	vq_init(&tx, base, 1, 8, QMEM(1));
	vq_init(&ev, base, 2, 8, QMEM(2));
	vdev_live(base);
	for (u16 i = 0; i < 4; i++) post_rx(i);
	puts_("cid "); putdec(cid); putc_('\n');

	send(5000, 1234, 1, 0, 0); /* REQUEST */
	struct hdr h = recv(data);
	if (h.op != 2 || h.dst_port != 5000 || h.src_port != 1234) fail("no RESPONSE");
	puts_("connected to host port 1234\n");
	send(5000, 1234, 5, 0, "hello vsock\n");
	do h = recv(data); while (h.op == 6);
	if (h.op != 5) fail("no RW");
	puts_("rx: "); puts_(data); putc_('\n');
	send(5000, 1234, 4, 3, 0); /* SHUTDOWN */
	h = recv(data);
	puts_(h.op == 3 ? "closed\n" : "no RST\n");

	h = recv(data);
	if (h.op != 1 || h.dst_port != 4000) fail("no REQUEST from the host");
	u32 hport = h.src_port;
	fwd = 0; /* credit counts per connection */
	puts_("request to port 4000\n");
	send(4000, hport, 2, 0, 0); /* RESPONSE */
	do h = recv(data); while (h.op == 6);
	if (h.op != 5) fail("no RW from the host");
	puts_("host says: "); puts_(data); putc_('\n');
	send(4000, hport, 5, 0, "pong\n");
	guest_exit(0);
}
