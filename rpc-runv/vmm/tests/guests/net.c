/* Drives virtio-net at slot 0: asks "who has 10.0.2.1" (ARP) on the
 * transmit queue every ~200 ms until the host's kernel, behind the tap,
 * answers on the receive queue; prints the answer. */
#include "virtio.h"

#define RXMEM 0x200000UL
#define TXMEM 0x210000UL
#define RXBUF 0x300000UL /* 4 buffers of 2 KiB */
#define TXBUF 0x310000UL
#define NRX 4

static struct vq rx, tx;

static void post_rx(u16 i) {
	vq_desc(&rx, i, RXBUF + 2048UL * i, 2048, D_WRITE, 0);
	vq_kick(&rx, i);
}

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 1);
	u8 mac[6];
	for (int i = 0; i < 6; i++) mac[i] = mmio_r8(base + R_CONFIG + i);
	vq_init(&rx, base, 0, 8, RXMEM);
	vq_init(&tx, base, 1, 8, TXMEM);
	vdev_live(base);
	for (u16 i = 0; i < NRX; i++) post_rx(i);

	u8 *f = (u8 *)TXBUF;
	memset_(f, 0, 12 + 42);
	u8 *e = f + 12;                                   /* after virtio_net_hdr_v1 */
	for (int i = 0; i < 6; i++) { e[i] = 0xff; e[6 + i] = mac[i]; }
	e[12] = 0x08; e[13] = 0x06;                       /* ARP */
	u8 *a = e + 14;
	a[1] = 1; a[2] = 0x08; a[4] = 6; a[5] = 4; a[7] = 1; /* Ethernet/IPv4, request */
	for (int i = 0; i < 6; i++) a[8 + i] = mac[i];
	a[14] = 10; a[15] = 0; a[16] = 2; a[17] = 15;     /* sender 10.0.2.15 */
	a[24] = 10; a[25] = 0; a[26] = 2; a[27] = 1;      /* target 10.0.2.1 */

	u64 deadline = rdtsc() + 20000UL * 1000000UL * 3;
	while (rdtsc() < deadline) {
		vq_desc(&tx, 0, TXBUF, 12 + 42, 0, 0);
		vq_kick(&tx, 0);
		vq_wait(&tx, 2000);
		u64 resend = rdtsc() + 200UL * 1000000UL * 3;
		while (rdtsc() < resend) {
			barrier();
			if (rx.used->idx == rx.last_used) continue;
			volatile struct used_elem *u = &rx.used->ring[rx.last_used % rx.size];
			u16 id = (u16)u->id;
			u32 len = u->len;
			rx.last_used++;
			u8 *r = (u8 *)(RXBUF + 2048UL * id) + 12;
			if (len >= 12 + 42 && r[12] == 0x08 && r[13] == 0x06 && r[21] == 2 &&
			    r[28] == 10 && r[29] == 0 && r[30] == 2 && r[31] == 1 && memeq(r + 32, mac, 6)) {
				puts_("arp reply: 10.0.2.1 is at");
				for (int i = 0; i < 6; i++) { putc_(i ? ':' : ' '); putc_("0123456789abcdef"[r[22 + i] >> 4]); putc_("0123456789abcdef"[r[22 + i] & 15]); }
				puts_(" (frame to");
				for (int i = 0; i < 6; i++) { putc_(i ? ':' : ' ' ); putc_("0123456789abcdef"[r[i] >> 4]); putc_("0123456789abcdef"[r[i] & 15]); }
				puts_(")\n");
				guest_exit(0);
			}
			post_rx(id);                              /* something else: reuse */
		}
	}
	fail("no ARP reply");
}
