/* ARP over virtio-net for the test guests (net.c, hostilenet.c): the
 * guest is 10.0.2.15 and asks who has 10.0.2.1, the tap's address in the
 * test's network namespace. */
#ifndef ARP_H
#define ARP_H
#include "virtio.h"

/* virtio_net_hdr_v1 before every frame. */
#define NET_HDR 12
#define ARP_FRAME (NET_HDR + 42)

/* Writes the header and a broadcast "who has 10.0.2.1" from `mac` at `f`
 * (ARP_FRAME bytes). */
static void arp_request(u8 *f, const u8 *mac) {
	memset_(f, 0, ARP_FRAME);
	u8 *e = f + NET_HDR;
	for (int i = 0; i < 6; i++) { e[i] = 0xff; e[6 + i] = mac[i]; }
	e[12] = 0x08; e[13] = 0x06;                       /* ARP */
	u8 *a = e + 14;
	a[1] = 1; a[2] = 0x08; a[4] = 6; a[5] = 4; a[7] = 1; /* Ethernet/IPv4, request */
	for (int i = 0; i < 6; i++) a[8 + i] = mac[i];
	a[14] = 10; a[15] = 0; a[16] = 2; a[17] = 15;     /* sender 10.0.2.15 */
	a[24] = 10; a[25] = 0; a[26] = 2; a[27] = 1;      /* target 10.0.2.1 */
}

/* Whether the Ethernet frame `r` of `len` bytes (after the header) is
 * 10.0.2.1's ARP reply to `mac`. */
static int is_arp_reply(const u8 *r, u32 len, const u8 *mac) {
	return len >= 42 && r[12] == 0x08 && r[13] == 0x06 && r[21] == 2 &&
	       r[28] == 10 && r[29] == 0 && r[30] == 2 && r[31] == 1 && memeq(r + 32, mac, 6);
}

static void put_mac(const u8 *m) {
	for (int i = 0; i < 6; i++) { putc_(i ? ':' : ' '); putc_("0123456789abcdef"[m[i] >> 4]); putc_("0123456789abcdef"[m[i] & 15]); }
}

/* Gives receive buffer `i` (2 KiB at rxbuf + 2 KiB * i) to `rx`. */
static void post_rx(struct vq *rx, u64 rxbuf, u16 i) {
	vq_desc(rx, i, rxbuf + 2048UL * i, 2048, D_WRITE, 0);
	vq_kick(rx, i);
}

/* Sends the ARP request at `txbuf` on `tx` every ~200 ms, for at most
 * ~`ms` ms, until 10.0.2.1's reply to `mac` lands in one of the receive
 * buffers of `rx` (see post_rx; other frames' buffers are given back);
 * returns that buffer's index, or -1. */
static int arp_exchange(struct vq *rx, struct vq *tx, u64 rxbuf, u64 txbuf, const u8 *mac, u64 ms) {
	u64 deadline = rdtsc() + ms * 1000000UL * 3;
	while (rdtsc() < deadline) {
		vq_desc(tx, 0, txbuf, ARP_FRAME, 0, 0);
		vq_kick(tx, 0);
		vq_wait(tx, 2000);
		u64 resend = rdtsc() + 200UL * 1000000UL * 3;
		while (rdtsc() < resend) {
			barrier();
			if (rx->used->idx == rx->last_used) continue;
			volatile struct used_elem *u = &rx->used->ring[rx->last_used % rx->size];
			u16 id = (u16)u->id;
			u32 len = u->len;
			rx->last_used++;
			const u8 *r = (const u8 *)(rxbuf + 2048UL * id) + NET_HDR;
			if (len >= NET_HDR && is_arp_reply(r, len - NET_HDR, mac)) return id;
			post_rx(rx, rxbuf, id);
		}
	}
	return -1;
}
#endif
