/* A hostile guest for virtio-net (slot 0, on a tap in the test's network
 * namespace): garbage in every register at every width, feature words,
 * queue selectors and sizes, DRIVER_OK before FEATURES_OK, the
 * configuration space; rings outside memory; transmit chains pointing
 * outside memory, looping, write-only, shorter than the header or
 * larger than any frame (one 64 KiB descriptor, and 255 descriptors
 * aliasing the same 16 MiB); receive chains outside memory, read-only,
 * too small or looping, which the host's ARP replies then land on. Then
 * it resets the device, gets one good ARP reply, and exits 42. */
#include "arp.h"
#include "hostile.h"

#define RXMEM 0x200000UL
#define TXMEM 0x210000UL
#define RXBUF 0x300000UL
#define TXBUF 0x310000UL
#define BIG 0x400000UL               /* a 64 KiB + frame */
#define FRAME_MAX 65550              /* rpc-vmm's largest frame */

static struct vq rx, tx;

static void start(u64 base, u16 txsize) {
	vdev_begin_features(base, 1, 1 << 5 /* MAC */);
	vq_init(&rx, base, 0, 8, RXMEM);
	vq_init(&tx, base, 1, txsize, TXMEM);
	vdev_live(base);
}

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	u8 mac[6];
	for (int i = 0; i < 6; i++) mac[i] = mmio_r8(base + R_CONFIG + i);

	for (int round = 0; round < 2; round++) garbage_window(base);
	wide_registers(base);
	garbage_features(base, 1);
	garbage_queue_regs(base, 1, 2);
	garbage_config(base);
	puts_("registers done\n");

	/* Notifies before DRIVER_OK, rings outside memory. */
	vdev_begin(base, 1);
	mmio_w32(base + R_QUEUE_NOTIFY, 0);
	vq_at(base, 0, 8, 0xfff00000, 0x7fff10000UL, 3);
	vq_at(base, 1, 8, 0xd0000000UL - 0x40, 0x10000000000UL, 0xfffffffffffffff0UL);
	vdev_live(base);
	for (u32 q = 0; q < 3; q++) mmio_w32(base + R_QUEUE_NOTIFY, q);
	mmio_w32(base + R_QUEUE_NOTIFY, 0xffffffff);
	/* A queue never made ready, notified while live. */
	vdev_begin(base, 1);
	vq_init(&rx, base, 0, 8, RXMEM);
	vdev_live(base);
	mmio_w32(base + R_QUEUE_NOTIFY, 1);
	puts_("bad rings done\n");

	/* Poisonous transmit chains. */
	start(base, 256);
	u8 *big = (u8 *)BIG;
	for (u32 i = 0; i < FRAME_MAX + NET_HDR + 16; i++) big[i] = (u8)rnd();
	memset_(big, 0, NET_HDR);
	vq_desc(&tx, 0, 0xffffffff000UL, 0xffffffff, D_NEXT, 1);   /* outside memory, huge */
	vq_desc(&tx, 1, TXBUF, 16, D_NEXT, 1);                       /* loops on itself */
	vq_desc(&tx, 2, TXBUF, 64, D_WRITE, 0);                      /* write-only */
	vq_desc(&tx, 3, TXBUF, 8, 0, 0);                             /* shorter than the header */
	vq_desc(&tx, 4, TXBUF, 16, D_NEXT, 200 + 256);               /* next out of range */
	vq_desc(&tx, 5, BIG, NET_HDR + FRAME_MAX + 1, 0, 0);         /* one byte too many */
	vq_desc(&tx, 6, BIG, NET_HDR + FRAME_MAX, 0, 0);             /* the largest, too large for the tap */
	vq_desc(&tx, 7, BIG, NET_HDR + 1514, 0, 0);                  /* random bytes, a frame's size */
	vq_desc(&tx, 8, 0xcffff000UL, 0x2000, 0, 0);                 /* straddles the end of RAM */
	for (u16 head = 0; head < 9; head++) vq_kick(&tx, head);
	/* 255 descriptors on the same 16 MiB: 4 GiB if summed and buffered. */
	for (u16 i = 0; i < 255; i++) vq_desc(&tx, 9 + i, 0x1000000, 0x1000000, i < 254 ? D_NEXT : 0, 10 + i);
	vq_kick(&tx, 9);
	vq_kick(&tx, 300);                                          /* head out of range */
	vq_wait(&tx, 2000);
	tx.avail->idx = tx.next_avail + 1000;                       /* avail index far ahead */
	mmio_w32(base + R_QUEUE_NOTIFY, 1);
	mmio_w32(base + R_STATUS, 0xff);                            /* status garbage while live */
	mmio_w32(base + R_QUEUE_NUM, 4);                            /* reconfigure while live */
	puts_("transmit chains done\n");

	/* Poisonous receive chains, then ARP requests whose replies land on
	 * them: each is dropped and the chain given back empty. */
	start(base, 8);
	vq_desc(&rx, 0, 0xffffffff000UL, 2048, D_WRITE, 0);         /* outside memory */
	vq_desc(&rx, 1, RXBUF, 2048, 0, 0);                          /* read-only */
	vq_desc(&rx, 2, RXBUF, 8, D_WRITE, 0);                       /* too small */
	vq_desc(&rx, 3, RXBUF, 256, D_WRITE | D_NEXT, 3);            /* loops on itself */
	vq_desc(&rx, 4, 0xcfffff00UL, 0x1000, D_WRITE, 0);           /* straddles the end of RAM */
	for (u16 head = 0; head < 5; head++) vq_kick(&rx, head);
	arp_request((u8 *)TXBUF, mac);
	u64 deadline = rdtsc() + 20000UL * 1000000UL * 3;
	while (rx.used->idx != 5 && rdtsc() < deadline) {
		vq_desc(&tx, 0, TXBUF, ARP_FRAME, 0, 0);
		vq_kick(&tx, 0);
		vq_wait(&tx, 2000);
		u64 next = rdtsc() + 100UL * 1000000UL * 3;
		while (rx.used->idx != 5 && rdtsc() < next) barrier();
	}
	/* All five come back; the looping one (8 times the same 256 bytes,
	 * as far as the queue size lets a chain go) takes a frame. */
	u32 empty = 0;
	for (u16 i = 0; i < rx.used->idx && i < 5; i++) if (rx.used->ring[i].len == 0) empty++;
	puts_("bad receive chains returned: "); putdec(rx.used->idx); puts_(", empty: "); putdec(empty); putc_('\n');

	/* The device still works after a reset. */
	start(base, 8);
	for (u16 i = 0; i < 4; i++) post_rx(&rx, RXBUF, i);
	if (arp_exchange(&rx, &tx, RXBUF, TXBUF, mac, 20000) < 0) fail("no ARP reply after the abuse");
	puts_("arp reply after the abuse\n");
	puts_("survived\n");
	guest_exit(42);
}
