/* virtio-console at slot 0 whose host client dies while its input is
 * paused: says "ready", waits while the host fills the input and hangs
 * up, writes (the VMM drops the dead client), then takes input so the
 * VMM would resume reading the client, and exits 0 if the VMM lived. */
#include "virtio.h"

#define RXMEM 0x200000UL
#define TXMEM 0x210000UL
#define RXBUF 0x300000UL
#define TXBUF 0x301000UL

static struct vq rx, tx;

static void delay_ms(u64 ms) {
	u64 end = rdtsc() + ms * 1000000UL * 3;
	while (rdtsc() < end) barrier();
}

static void say(const char *s) {
	u32 n = 0;
	for (; s[n]; n++) ((u8 *)TXBUF)[n] = s[n];
	vq_desc(&tx, 0, TXBUF, n, 0, 0);
	vq_kick(&tx, 0);
	vq_wait(&tx, 2000);
}

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 3);
	vq_init(&rx, base, 0, 8, RXMEM);
	vq_init(&tx, base, 1, 8, TXMEM);
	vdev_live(base);

	say("ready\n");
	delay_ms(2000);
	say("after hangup\n");
	say("after hangup\n");
	for (u16 i = 0; i < 4; i++) {
		vq_desc(&rx, i, RXBUF + 4096UL * i, 4096, D_WRITE, 0);
		vq_kick(&rx, i);
	}
	u32 got = vq_wait(&rx, 2000);
	delay_ms(500);
	puts_("took "); putdec(got); puts_(" bytes, alive\n");
	guest_exit(0);
}
