/* Drives virtio-console at slot 0: sends "ping from guest\n" on the
 * transmit queue, then waits for the host's reply on the receive queue
 * and prints it on the serial port. */
#include "virtio.h"

#define RXMEM 0x200000UL
#define TXMEM 0x210000UL
#define RXBUF 0x300000UL
#define TXBUF 0x301000UL

static struct vq rx, tx;

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 3);
	vq_init(&rx, base, 0, 8, RXMEM);
	vq_init(&tx, base, 1, 8, TXMEM);
	vdev_live(base);

	memset_((void *)RXBUF, 0, 256);
	vq_desc(&rx, 0, RXBUF, 255, D_WRITE, 0);
	vq_kick(&rx, 0);

	const char *msg = "ping from guest\n";
	u32 n = 0;
	for (; msg[n]; n++) ((u8 *)TXBUF)[n] = msg[n];
	vq_desc(&tx, 0, TXBUF, n, 0, 0);
	vq_kick(&tx, 0);
	vq_wait(&tx, 2000);

	u32 len = vq_wait(&rx, 20000);
	((u8 *)RXBUF)[len] = 0;
	puts_("rx "); putdec(len); puts_(": "); puts_((const char *)RXBUF); putc_('\n');
	guest_exit(0);
}
