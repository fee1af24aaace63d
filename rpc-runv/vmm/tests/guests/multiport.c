/* Drives a multiport virtio-console at slot 0 through its control
 * queues: DEVICE_READY, the DEVICE_ADDs, PORT_READY for ports 1 and 2
 * and their PORT_NAMEs; then writes on both named ports and waits for the
 * host's reply on port 1. */
#include "virtio.h"

#define QMEM(q) (0x200000UL + 0x10000UL * (q))
#define CTRLBUF 0x300000UL /* 8 x 64 bytes */
#define TXBUF 0x301000UL
#define RXBUF 0x302000UL

static struct vq q[8];

struct ctrl { u32 id; u16 event; u16 value; };

static void post_ctrl(u16 i) {
	vq_desc(&q[2], i, CTRLBUF + 64UL * i, 64, D_WRITE, 0);
	vq_kick(&q[2], i);
}

/* The next control message from the device; `name` gets PORT_NAME's text. */
static struct ctrl next_ctrl(char *name) {
	struct vq *c = &q[2];
	u64 deadline = rdtsc() + 5000UL * 1000000UL * 3;
	while (c->used->idx == c->last_used) {
		barrier();
		if (rdtsc() > deadline) fail("no control message");
	}
	volatile struct used_elem *u = &c->used->ring[c->last_used % c->size];
	u16 id = (u16)u->id;
	u32 len = u->len;
	c->last_used++;
	u8 *b = (u8 *)(CTRLBUF + 64UL * id);
	struct ctrl m = { *(u32 *)b, *(u16 *)(b + 4), *(u16 *)(b + 6) };
	u32 i = 0;
	for (; name && i + 8 < len && i < 31; i++) name[i] = (char)b[8 + i];
	if (name) name[i] = 0;
	post_ctrl(id);
	return m;
}

static void send_ctrl(u32 id, u16 event, u16 value) {
	struct ctrl *m = (struct ctrl *)(TXBUF + 0x800);
	m->id = id; m->event = event; m->value = value;
	vq_desc(&q[3], 0, (u64)m, 8, 0, 0);
	vq_kick(&q[3], 0);
	vq_wait(&q[3], 2000);
}

static void send(int queue, const char *s, u64 at) {
	u32 n = 0;
	for (; s[n]; n++) ((u8 *)at)[n] = s[n];
	vq_desc(&q[queue], 0, at, n, 0, 0);
	vq_kick(&q[queue], 0);
	vq_wait(&q[queue], 2000);
}

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	vdev_begin_features(base, 3, 1 << 1); /* VIRTIO_CONSOLE_F_MULTIPORT */
	u32 max_ports = mmio_r32(base + R_CONFIG + 4);
	puts_("max_nr_ports "); putdec(max_ports); putc_('\n');
	for (u32 i = 2; i < 8; i++) vq_init(&q[i], base, i, 8, QMEM(i));
	vdev_live(base);
	for (u16 i = 0; i < 8; i++) post_ctrl(i);

	send_ctrl(0, 0, 1); /* DEVICE_READY */
	for (int i = 0; i < 3; i++) {
		struct ctrl m = next_ctrl(0);
		puts_("event "); putdec(m.event); puts_(" port "); putdec(m.id); putc_('\n');
	}
	/* A repeated DEVICE_READY must not queue the DEVICE_ADDs again. */
	send_ctrl(0, 0, 1);
	{
		u64 deadline = rdtsc() + 200UL * 1000000UL * 3;
		while (q[2].used->idx == q[2].last_used && rdtsc() < deadline) barrier();
		if (q[2].used->idx == q[2].last_used) puts_("repeated DEVICE_READY ignored\n");
		else { struct ctrl m = next_ctrl(0); puts_("repeated DEVICE_READY: event "); putdec(m.event); putc_('\n'); }
	}
	char name[32];
	for (u32 p = 1; p <= 2; p++) {
		send_ctrl(p, 3, 1); /* PORT_READY */
		for (;;) {
			struct ctrl m = next_ctrl(name);
			if (m.event == 7) { puts_("port "); putdec(m.id); puts_(" name "); puts_(name); putc_('\n'); }
			if (m.event == 6 && m.id == p) break; /* PORT_OPEN ends the answer */
		}
	}

	memset_((void *)RXBUF, 0, 256);
	vq_desc(&q[4], 0, RXBUF, 255, D_WRITE, 0);
	vq_kick(&q[4], 0);
	send(5, "hello agent\n", TXBUF);
	send(7, "hello stdio\n", TXBUF + 0x100);
	u32 len = vq_wait(&q[4], 20000);
	((u8 *)RXBUF)[len] = 0;
	puts_("agent rx: "); puts_((const char *)RXBUF); putc_('\n');
	guest_exit(0);
}
