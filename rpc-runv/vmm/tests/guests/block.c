/* Drives virtio-blk at slot 0: reads sector 1 (the host filled sector n
 * with byte n), writes sector 2, asks the id, reads past the end, and
 * prints what it saw. A read-only disk refuses the write. */
#include "virtio.h"

struct req { u32 type; u32 reserved; u64 sector; };
#define QMEM 0x200000UL
#define HDR 0x300000UL
#define DATA 0x301000UL
#define STATUS 0x302000UL

static struct vq q;

static u8 request(u32 type, u64 sector, u32 len, int device_writes) {
	volatile struct req *r = (volatile struct req *)HDR;
	r->type = type; r->reserved = 0; r->sector = sector;
	*(volatile u8 *)STATUS = 0xee;
	vq_desc(&q, 0, HDR, sizeof(struct req), D_NEXT, 1);
	if (len) {
		vq_desc(&q, 1, DATA, len, D_NEXT | (device_writes ? D_WRITE : 0), 2);
		vq_desc(&q, 2, STATUS, 1, D_WRITE, 0);
	} else {
		vq_desc(&q, 1, STATUS, 1, D_WRITE, 0);
	}
	vq_kick(&q, 0);
	vq_wait(&q, 2000);
	return *(volatile u8 *)STATUS;
}

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 2);
	u64 capacity = mmio_r32(base + R_CONFIG) | ((u64)mmio_r32(base + R_CONFIG + 4) << 32);
	mmio_w32(base + R_DEV_FEATURES_SEL, 0);
	int ro = (mmio_r32(base + R_DEV_FEATURES) >> 5) & 1;
	vq_init(&q, base, 0, 8, QMEM);
	vdev_live(base);
	puts_("capacity "); putdec(capacity); puts_(ro ? " ro\n" : " rw\n");

	u8 st = request(0, 1, 512, 1);
	u8 *d = (u8 *)DATA;
	int same = 1;
	for (int i = 0; i < 512; i++) if (d[i] != 1) same = 0;
	puts_("read sector 1: status "); putdec(st); puts_(same ? " all ones\n" : " WRONG DATA\n");

	const char *msg = "written by the guest";
	memset_(d, 0, 512);
	for (int i = 0; msg[i]; i++) d[i] = msg[i];
	st = request(1, 2, 512, 0);
	puts_("write sector 2: status "); putdec(st); putc_('\n');

	st = request(4, 0, 0, 0);
	puts_("flush: status "); putdec(st); putc_('\n');

	memset_(d, 0, 64);
	st = request(8, 0, 20, 1);
	puts_("id: status "); putdec(st); puts_(" "); puts_((const char *)d); putc_('\n');

	st = request(0, capacity, 512, 1);
	puts_("read past end: status "); putdec(st); putc_('\n');

	st = request(0x77, 0, 0, 0);
	puts_("unknown request: status "); putdec(st); putc_('\n');
	guest_exit(0);
}
