/* Floods a virtio-console (slot 0) and a vsock connection to host port
 * 1234 (slot 1) at once: 160 chunks of 16 KiB on the console, 256
 * packets of 4 KiB on vsock (honouring the host's credit unless built as
 * floodnocredit.c, which expects the connection to be reset once it goes
 * over the credit: "vsock reset after N packets"). Each chunk
 * and packet starts with its index (u64) followed by a fixed pattern
 * (word w = w * 0x9e3779b97f4a7c15), so the host can check order and
 * content. A stream that makes no progress for 500 ms is reported once
 * ("... stalled after N"): the host is not reading. When everything is
 * sent, the guest shuts its vsock side down (SEND), says "all sent" and
 * waits for the host's acknowledgement on the console before it exits. */
#include "vsock.h"

#define CON_Q(q) (0x200000UL + 0x10000UL * (q))
#define VS_Q(q) (0x240000UL + 0x10000UL * (q))
#define CON_RXBUF 0x300000UL
#define CON_TXBUF 0x400000UL /* 8 x 16 KiB */
#define VS_RXBUF 0x500000UL  /* 8 x 4 KiB */
#define VS_TXBUF 0x600000UL  /* 8 x 8 KiB */
#define CON_CHUNK 16384
#define CON_CHUNKS 160
#define VS_PAYLOAD 4096
#define VS_PKTS 256
#define SLOTS 8
#define PATTERN 0x9e3779b97f4a7c15UL

static struct vq crx, ctx, vrx, vtx, vev;
static u64 cid;
static u32 peer_buf_alloc, peer_fwd, vs_tx_cnt;
static u16 vtx_kicks;
static int connected, shut, reset;

static u16 used_idx(struct vq *q) { barrier(); return q->used->idx; }

static void fill_pattern(u64 at, u32 bytes) {
	volatile u64 *w = (volatile u64 *)at;
	for (u32 i = 0; i < bytes / 8; i++) w[i] = i * PATTERN;
}

/* Queues a vsock packet (header, then `len` payload bytes already in the
 * slot) in the next transmit slot. */
static void vs_send(u16 op, u32 flags, u32 len) {
	u16 slot = vtx_kicks % SLOTS;
	struct hdr *h = (struct hdr *)(VS_TXBUF + 8192UL * slot);
	h->src_cid = cid; h->dst_cid = 2; h->src_port = 5000; h->dst_port = 1234;
	h->len = len; h->type = 1; h->op = op; h->flags = flags; h->buf_alloc = 65536; h->fwd_cnt = 0;
	vq_desc(&vtx, slot, (u64)h, sizeof(struct hdr) + len, 0, 0);
	vq_kick(&vtx, slot);
	vtx_kicks++;
}

static int vs_slot_free(void) { return (u16)(vtx_kicks - used_idx(&vtx)) < SLOTS; }

/* Takes the packets the device gave; returns how many. */
static int vs_poll_rx(void) {
	int n = 0;
	while (used_idx(&vrx) != vrx.last_used) {
		u16 id = (u16)vrx.used->ring[vrx.last_used % vrx.size].id;
		vrx.last_used++;
		struct hdr *h = (struct hdr *)(VS_RXBUF + 4096UL * id);
		if (h->src_port == 1234 && h->dst_port == 5000) {
#ifdef IGNORE_CREDIT
			if (h->op == OP_RST && !shut && !reset) {
				reset = 1;
				puts_("vsock reset after "); putdec(vs_tx_cnt / VS_PAYLOAD); puts_(" packets\n");
			}
#else
			if (h->op == OP_RST && !shut) fail("vsock connection reset");
#endif
			if (h->op == OP_RESPONSE) connected = 1;
			peer_buf_alloc = h->buf_alloc;
			peer_fwd = h->fwd_cnt;
		}
		vq_desc(&vrx, id, VS_RXBUF + 4096UL * id, 4096, D_WRITE, 0);
		vq_kick(&vrx, id);
		n++;
	}
	return n;
}

#ifdef IGNORE_CREDIT
/* A guest that ignores the host's credit: the device resets the
 * connection once it goes over. */
static u32 vs_credit(void) { return ~0u; }
#else
static u32 vs_credit(void) { return peer_buf_alloc - (vs_tx_cnt - peer_fwd); }
#endif

void _start(void)
{
	u64 cbase = VIRTIO_SLOT(0), vbase = VIRTIO_SLOT(1);
	vdev_begin(cbase, 3);
	vq_init(&crx, cbase, 0, 8, CON_Q(0));
	vq_init(&ctx, cbase, 1, SLOTS, CON_Q(1));
	vdev_live(cbase);
	vdev_begin(vbase, 19);
	cid = mmio_r32(vbase + R_CONFIG) | ((u64)mmio_r32(vbase + R_CONFIG + 4) << 32);
	vq_init(&vrx, vbase, 0, SLOTS, VS_Q(0));
	vq_init(&vtx, vbase, 1, SLOTS, VS_Q(1));
	vq_init(&vev, vbase, 2, SLOTS, VS_Q(2));
	vdev_live(vbase);
	for (u16 i = 0; i < SLOTS; i++) {
		vq_desc(&vrx, i, VS_RXBUF + 4096UL * i, 4096, D_WRITE, 0);
		vq_kick(&vrx, i);
	}
	memset_((void *)CON_RXBUF, 0, 256);
	vq_desc(&crx, 0, CON_RXBUF, 255, D_WRITE, 0);
	vq_kick(&crx, 0);
	for (u16 i = 0; i < SLOTS; i++) {
		fill_pattern(CON_TXBUF + (u64)CON_CHUNK * i, CON_CHUNK);
		fill_pattern(VS_TXBUF + 8192UL * i + sizeof(struct hdr), VS_PAYLOAD);
	}

	vs_send(OP_REQUEST, 0, 0);
	u64 deadline = rdtsc() + 20000UL * 1000000UL * 3;
	while (!connected) {
		vs_poll_rx();
		if (rdtsc() > deadline) fail("no vsock RESPONSE");
	}
	puts_("flooding\n");

	u32 con_sent = 0, vs_sent = 0;
	u16 con_done = 0, vs_done = used_idx(&vtx);
	int con_stall_said = 0, vs_stall_said = 0;
	u64 stall = 500UL * 1000000UL * 3;
	u64 con_progress = rdtsc(), vs_progress = rdtsc();
	for (;;) {
		/* Console: keep every slot busy. */
		while (con_sent < CON_CHUNKS && (u16)(con_sent - used_idx(&ctx)) < SLOTS) {
			u16 slot = con_sent % SLOTS;
			*(volatile u64 *)(CON_TXBUF + (u64)CON_CHUNK * slot) = con_sent;
			vq_desc(&ctx, slot, CON_TXBUF + (u64)CON_CHUNK * slot, CON_CHUNK, 0, 0);
			vq_kick(&ctx, slot);
			con_sent++;
		}
		if (used_idx(&ctx) != con_done) { con_done = used_idx(&ctx); con_progress = rdtsc(); }
		/* vsock: as far as the host's credit goes. */
		if (vs_poll_rx()) vs_progress = rdtsc();
		while (!reset && vs_sent < VS_PKTS && vs_slot_free() && vs_credit() >= VS_PAYLOAD) {
			u16 slot = vtx_kicks % SLOTS;
			*(volatile u64 *)(VS_TXBUF + 8192UL * slot + sizeof(struct hdr)) = vs_sent;
			vs_send(OP_RW, 0, VS_PAYLOAD);
			vs_tx_cnt += VS_PAYLOAD;
			vs_sent++;
#ifdef IGNORE_CREDIT
			vs_poll_rx(); /* see the reset as soon as it comes */
#endif
		}
		if (used_idx(&vtx) != vs_done) { vs_done = used_idx(&vtx); vs_progress = rdtsc(); }

		int con_all = con_sent == CON_CHUNKS && con_done == (u16)CON_CHUNKS;
		int vs_all = (reset || vs_sent == VS_PKTS) && vs_done == vtx_kicks;
		if (con_all && vs_all) break;
		u64 now = rdtsc();
		if (!con_all && !con_stall_said && now - con_progress > stall) {
			puts_("console stalled after "); putdec(con_done); puts_(" chunks\n");
			con_stall_said = 1;
		}
		if (!vs_all && !vs_stall_said && now - vs_progress > stall) {
			puts_("vsock stalled after "); putdec(vs_sent); puts_(" packets\n");
			vs_stall_said = 1;
		}
	}
	while (!vs_slot_free()) vs_poll_rx();
	shut = 1; /* from now on the connection may close (RST) */
	if (!reset) vs_send(OP_SHUTDOWN, 2, 0); /* we send no more */
	puts_("all sent\n");

	deadline = rdtsc() + 60000UL * 1000000UL * 3;
	while (used_idx(&crx) == crx.last_used) {
		vs_poll_rx();
		if (rdtsc() > deadline) fail("no acknowledgement");
	}
	u32 len = crx.used->ring[crx.last_used % crx.size].len;
	((u8 *)CON_RXBUF)[len] = 0;
	puts_("host says: "); puts_((const char *)CON_RXBUF);
	guest_exit(0);
}
