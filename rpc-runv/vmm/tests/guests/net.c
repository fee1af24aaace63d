/* Drives virtio-net at slot 0: asks "who has 10.0.2.1" (ARP) on the
 * transmit queue every ~200 ms until the host's kernel, behind the tap,
 * answers on the receive queue; prints the answer. */
#include "arp.h"

#define RXMEM 0x200000UL
#define TXMEM 0x210000UL
#define RXBUF 0x300000UL /* 4 buffers of 2 KiB */
#define TXBUF 0x310000UL
#define NRX 4

static struct vq rx, tx;

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 1);
	u8 mac[6];
	for (int i = 0; i < 6; i++) mac[i] = mmio_r8(base + R_CONFIG + i);
	vq_init(&rx, base, 0, 8, RXMEM);
	vq_init(&tx, base, 1, 8, TXMEM);
	vdev_live(base);
	for (u16 i = 0; i < NRX; i++) post_rx(&rx, RXBUF, i);
	arp_request((u8 *)TXBUF, mac);
	int id = arp_exchange(&rx, &tx, RXBUF, TXBUF, mac, 20000);
	if (id < 0) fail("no ARP reply");
	const u8 *r = (const u8 *)(RXBUF + 2048UL * id) + NET_HDR;
	puts_("arp reply: 10.0.2.1 is at"); put_mac(r + 22);
	puts_(" (frame to"); put_mac(r);
	puts_(")\n");
	guest_exit(0);
}
