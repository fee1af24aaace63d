/* virtio-vsock packets for the test guests: the header and its ops. A
 * guest that defines RXBUF and TXBUF before including this also gets one
 * connection's worth of plumbing: the three queues, its CID, the bytes it
 * consumed (fwd) and one-packet-at-a-time post_rx/send. */
#ifndef VSOCK_H
#define VSOCK_H
#include "virtio.h"

#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQUEST 7

struct hdr {
	u64 src_cid, dst_cid;
	u32 src_port, dst_port, len;
	u16 type, op;
	u32 flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

#if defined(RXBUF) && defined(TXBUF)
static struct vq rx, tx, ev;
static u64 cid;
static u32 fwd;

/* Give receive buffer `i` (8 KiB at RXBUF) to the device. */
static void post_rx(u16 i) {
	vq_desc(&rx, i, RXBUF + 8192UL * i, 8192, D_WRITE, 0);
	vq_kick(&rx, i);
}

/* Send one packet (payload `data`, NUL-terminated, or none) to the host. */
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

/* The first virtio-mmio slot holding a vsock device (slot 0 unless other
 * devices come first). */
static u64 vsock_base(void) {
	for (int n = 0; n < 8; n++) {
		u64 base = VIRTIO_SLOT(n);
		if (mmio_r32(base + R_MAGIC) != 0x74726976) break;
		if (mmio_r32(base + R_DEVICE_ID) == 19) return base;
	}
	fail("no vsock device");
	return 0;
}

/* The vsock device live, its queues at QMEM(0..2), `rx_buffers` receive
 * buffers given. */
static void setup(u16 rx_buffers) {
	u64 base = vsock_base();
	vdev_begin(base, 19);
	cid = mmio_r32(base + R_CONFIG) | ((u64)mmio_r32(base + R_CONFIG + 4) << 32);
	vq_init(&rx, base, 0, 8, QMEM(0));
	vq_init(&tx, base, 1, 8, QMEM(1));
	vq_init(&ev, base, 2, 8, QMEM(2));
	vdev_live(base);
	for (u16 i = 0; i < rx_buffers; i++) post_rx(i);
}

/* True if a packet came within ~`ms` ms. */
static int wait_rx(u64 ms) {
	u64 deadline = rdtsc() + ms * 1000000UL * 3;
	while (rx.used->idx == rx.last_used) {
		barrier();
		if (rdtsc() > deadline) return 0;
	}
	return 1;
}

/* The next packet other than a credit update; its payload, NUL-terminated,
 * in `data`. The buffer goes back to the device if `repost`. */
static struct hdr recv_(char *data, int repost) {
	for (;;) {
		if (!wait_rx(20000)) fail("no vsock packet");
		volatile struct used_elem *u = &rx.used->ring[rx.last_used % rx.size];
		u16 id = (u16)u->id;
		rx.last_used++;
		u8 *b = (u8 *)(RXBUF + 8192UL * id);
		struct hdr h = *(struct hdr *)b;
		u32 n = h.len < 255 ? h.len : 255;
		for (u32 i = 0; i < n; i++) data[i] = (char)b[sizeof(struct hdr) + i];
		data[n] = 0;
		if (h.op == OP_RW) fwd += h.len;
		if (repost) post_rx(id);
		if (h.op != OP_CREDIT_UPDATE) return h;
	}
}
/* The next packet other than a credit update, its buffer given back. */
static struct hdr recv(char *data) { return recv_(data, 1); }
#endif
#endif
