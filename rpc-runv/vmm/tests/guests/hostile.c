/* A hostile guest: garbage to every register of every device (serial,
 * i8042, ports of nothing, virtio-mmio windows of a disk, a console and
 * a vsock,
 * MMIO of nothing), then virtqueues whose rings or descriptors point
 * outside memory, loop, or lie about lengths. The VMM must survive:
 * this guest then exits with status 42. */
#include "hostile.h"

#define QMEM 0x200000UL

static void bad_queues(u64 base, u32 type) {
	struct vq q;
	/* Rings outside guest memory. */
	vdev_begin(base, type);
	mmio_w32(base + R_QUEUE_SEL, 0);
	mmio_w32(base + R_QUEUE_NUM, 8);
	mmio_w32(base + R_DESC_LO, 0xfff00000); mmio_w32(base + R_DESC_HI, 0x7);
	mmio_w32(base + R_AVAIL_LO, 0xfff10000); mmio_w32(base + R_AVAIL_HI, 0);
	mmio_w32(base + R_USED_LO, 0x3); mmio_w32(base + R_USED_HI, 0);
	mmio_w32(base + R_QUEUE_READY, 1);
	vdev_live(base);
	mmio_w32(base + R_QUEUE_NOTIFY, 0);
	mmio_w32(base + R_QUEUE_NOTIFY, 7);

	/* Valid rings, poisonous descriptors. */
	vdev_begin(base, type);
	vq_init(&q, base, 0, 8, QMEM);
	if (type == 3 || type == 19) vq_init(&q, base, 1, 8, QMEM + 0x10000); /* transmit queue */
	vdev_live(base);
	vq_desc(&q, 0, 0xffffffff000UL, 0xffffffff, D_NEXT, 1);   /* outside memory, huge */
	vq_desc(&q, 1, 0x300000, 16, D_NEXT, 1);                    /* loops on itself */
	vq_desc(&q, 2, 0x300000, 0xfffffff0, D_WRITE, 0);           /* runs past the end of RAM */
	vq_desc(&q, 3, 0x300000, 16, D_NEXT, 200);                  /* next out of range */
	vq_desc(&q, 4, 0x300000, 0, 0, 0);                          /* empty request */
	for (u16 head = 0; head < 5; head++) vq_kick(&q, head);
	vq_kick(&q, 9);                                             /* head out of range */
	q.avail->idx = q.next_avail + 1000;                         /* avail index far ahead */
	mmio_w32(base + R_QUEUE_NOTIFY, q.index);
	mmio_w32(base + R_QUEUE_NOTIFY, 0xffffffff);
	mmio_w32(base + R_STATUS, 0xff);                            /* status garbage while live */
	mmio_w32(base + R_QUEUE_NUM, 3);                            /* reconfigure while live */
}

void _start(void)
{
	for (int round = 0; round < 4; round++)
		for (u16 p = 0x3f9; p < 0x400; p++) outb(p, (u8)rnd());
	outb(0x3fb, 0x03);                  /* leave the UART usable: 8n1, DLAB off */
	outb(0x3f9, 0x00);
	outb(0x3fc, 0x00);                  /* and out of loopback */
	outb(0x60, 0xff); outb(0x64, 0xd1); (void)inb(0x60); (void)inb(0x64);
	for (u16 p = 0x100; p < 0x3f0; p += 7) { outb(p, (u8)p); (void)inb(p); outl(p & ~3, rnd()); }
	puts_("ports done\n");

	mmio_w32(0xd0008000UL, 0xdeadbeef); (void)mmio_r32(0xd0008000UL);
	mmio_w32(0xe0000000UL, 1); (void)mmio_r8(0xefffffffUL);
	puts_("unmapped mmio done\n");

	garbage_window(VIRTIO_SLOT(0));
	garbage_window(VIRTIO_SLOT(1));
	garbage_window(VIRTIO_SLOT(2));
	puts_("registers done\n");

	bad_queues(VIRTIO_SLOT(0), 2);
	bad_queues(VIRTIO_SLOT(1), 3);
	bad_queues(VIRTIO_SLOT(2), 19);
	puts_("queues done\n");

	/* A console transmit chain of 255 descriptors that all point at the
	 * same 16 MiB: about 4 GiB if the VMM sums and buffers them. */
	{
		struct vq rxq, txq;
		u64 cbase = VIRTIO_SLOT(1);
		vdev_begin(cbase, 3);
		vq_init(&rxq, cbase, 0, 256, QMEM);
		vq_init(&txq, cbase, 1, 256, QMEM + 0x10000);
		vdev_live(cbase);
		for (u16 i = 0; i < 255; i++)
			vq_desc(&txq, i, 0x1000000, 0x1000000, i < 254 ? D_NEXT : 0, i + 1);
		vq_kick(&txq, 0);
		vq_wait(&txq, 2000);
		puts_("aliased console chain done\n");
	}

	/* The disk still works after a reset. */
	struct vq q;
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 2);
	vq_init(&q, base, 0, 8, QMEM);
	vdev_live(base);
	volatile u32 *hdr = (volatile u32 *)0x300000;
	hdr[0] = 0; hdr[1] = 0; hdr[2] = 0; hdr[3] = 0;
	*(volatile u8 *)0x302000 = 0xee;
	vq_desc(&q, 0, 0x300000, 16, D_NEXT, 1);
	vq_desc(&q, 1, 0x301000, 512, D_NEXT | D_WRITE, 2);
	vq_desc(&q, 2, 0x302000, 1, D_WRITE, 0);
	vq_kick(&q, 0);
	vq_wait(&q, 2000);
	puts_("disk after reset: status "); putdec(*(volatile u8 *)0x302000); putc_('\n');
	puts_("survived\n");
	guest_exit(42);
}
