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
#endif
#endif
