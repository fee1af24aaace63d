/* Floods virtio-vsock with CREDIT_REQUESTs (each queues a reply) while
 * giving no receive buffers: the device must stop taking the transmit
 * queue at its limit, and take it again once receive buffers drain the
 * replies. */
#include "vsock.h"

#define QMEM(q) (0x200000UL + 0x10000UL * (q))
#define RXBUF 0x300000UL /* 8 x 4 KiB */
#define TXBUF 0x310000UL

static struct vq rx, tx;

/* True if the next used element of `q` came within ~`ms` ms. */
static int used_within(struct vq *q, u64 ms) {
	u64 deadline = rdtsc() + ms * 1000000UL * 3;
	while (q->used->idx == q->last_used) {
		barrier();
		if (rdtsc() > deadline) return 0;
	}
	q->last_used++;
	return 1;
}

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 19);
	u64 cid = mmio_r32(base + R_CONFIG) | ((u64)mmio_r32(base + R_CONFIG + 4) << 32);
	vq_init(&rx, base, 0, 8, QMEM(0));
	vq_init(&tx, base, 1, 8, QMEM(1));
	vdev_live(base);

	struct hdr *h = (struct hdr *)TXBUF;
	h->src_cid = cid; h->dst_cid = 2; h->src_port = 7; h->dst_port = 9;
	h->len = 0; h->type = 1; h->op = OP_CREDIT_REQUEST; /* no connection */
	h->flags = 0; h->buf_alloc = 65536; h->fwd_cnt = 0;
	vq_desc(&tx, 0, TXBUF, sizeof(struct hdr), 0, 0);
	u32 sent = 0;
	for (; sent < 5000; sent++) {
		vq_kick(&tx, 0);
		if (!used_within(&tx, 200)) break;
	}
	puts_("tx stalled after "); putdec(sent); putc_('\n');

	/* Drain replies through 8 receive buffers until the stalled packet
	 * is taken. */
	u32 got = 0;
	for (u16 i = 0; i < 8; i++) {
		vq_desc(&rx, i, RXBUF + 4096UL * i, 4096, D_WRITE, 0);
		vq_kick(&rx, i);
	}
	while (tx.used->idx == tx.last_used && got < 5000) {
		if (!used_within(&rx, 2000)) fail("no reply");
		u16 id = (u16)rx.used->ring[(rx.last_used - 1) % rx.size].id;
		got++;
		vq_kick(&rx, id);
	}
	if (tx.used->idx == tx.last_used) fail("tx never resumed");
	puts_("tx resumed after "); putdec(got); puts_(" replies\n");
	guest_exit(0);
}
