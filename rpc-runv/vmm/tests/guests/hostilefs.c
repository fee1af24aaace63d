/* A hostile guest for virtio-fs (slot 0, a vhost-user frontend to
 * virtiofsd), run with 4 GiB of RAM so there is memory on both sides of
 * the MMIO gap: garbage in every register at every width (feature words,
 * queue selectors past the two queues, queue sizes 0 / not a power of
 * two / huge), DRIVER_OK before FEATURES_OK, rings outside memory, in
 * and straddling the MMIO gap, straddling the end of RAM or misaligned
 * (each start must be refused: DEVICE_NEEDS_RESET, and the backend never
 * told of such a ring), kicks of queues never set up, repeated
 * reset/DRIVER_OK cycles, the configuration space at every offset and
 * width. Then it resets the device and does one good FUSE_INIT round
 * trip, and exits 42. */
#include "fuse.h"
#include "hostile.h"

#define GAP 0xd0000000UL
#define HIGH 0x100000000UL           /* RAM above the gap: 768 MiB */
#define HIGH_END (HIGH + 0x30000000UL)

static const char *const why_names[] = {
	"desc in the gap", "avail in the gap", "used in the gap",
	"desc straddling the gap", "avail straddling the gap", "used straddling the gap",
	"desc past the end of RAM", "used straddling the end of RAM", "desc near 2^64",
	"desc at 64 GiB", "misaligned desc", "misaligned used",
};

/* Starts the device with queue 0 good and queue 1 at the given rings;
 * returns whether the start was refused (DEVICE_NEEDS_RESET). */
static int refused(u64 base, u64 desc, u64 avail, u64 used) {
	vdev_begin(base, 26);
	vq_init(&hiprio, base, 0, 8, QMEM0);
	vq_at(base, 1, 256, desc, avail, used);
	vdev_live(base);
	return (mmio_r32(base + R_STATUS) & 0x40) != 0;
}

void _start(void)
{
	u64 base = VIRTIO_SLOT(0);
	char tag[36];
	for (int i = 0; i < 36; i++) tag[i] = (char)mmio_r8(base + R_CONFIG + i);

	for (int round = 0; round < 2; round++) garbage_window(base);
	wide_registers(base);
	puts_("registers done\n");
	garbage_features(base, 26);
	puts_("features done\n");
	garbage_queue_regs(base, 26, 2);
	puts_("queue registers done\n");

	/* Kicks of queues never set up: 0 and 1 go to KVM's ioeventfds (the
	 * backend has no ring for them yet), the rest to rpc-vmm. */
	mmio_w32(base + R_STATUS, 0);
	for (u32 q = 0; q < 4; q++) mmio_w32(base + R_QUEUE_NOTIFY, q);
	mmio_w32(base + R_QUEUE_NOTIFY, 0xffffffff);
	mmio_w8(base + R_QUEUE_NOTIFY, 1);
	mmio_w16(base + R_QUEUE_NOTIFY, 0);
	vdev_begin(base, 26);
	vq_init(&hiprio, base, 0, 8, QMEM0);
	vdev_live(base);                             /* only hiprio is ready */
	for (u32 q = 0; q < 4; q++) mmio_w32(base + R_QUEUE_NOTIFY, q);
	puts_("kicks done\n");

	/* Rings the backend must never be told of. */
	const u64 bad[][3] = {
		{ GAP, QMEM1 + 0x1000, QMEM1 + 0x2000 },
		{ QMEM1, GAP + 0x10000, QMEM1 + 0x2000 },
		{ QMEM1, QMEM1 + 0x1000, GAP + 0x100000 },
		{ GAP - 0x800, QMEM1 + 0x1000, QMEM1 + 0x2000 },
		{ QMEM1, GAP - 0x100, QMEM1 + 0x2000 },
		{ QMEM1, QMEM1 + 0x1000, GAP - 0x400 },
		{ HIGH_END, QMEM1 + 0x1000, QMEM1 + 0x2000 },
		{ QMEM1, QMEM1 + 0x1000, HIGH_END - 0x400 },
		{ 0xfffffffffffff000UL, QMEM1 + 0x1000, QMEM1 + 0x2000 },
		{ 0x1000000000UL, QMEM1 + 0x1000, QMEM1 + 0x2000 },
		{ QMEM1 + 8, QMEM1 + 0x1000, QMEM1 + 0x2000 },
		{ QMEM1, QMEM1 + 0x1000, QMEM1 + 0x2002 },
	};
	u32 n = sizeof(bad) / sizeof(bad[0]), nrefused = 0;
	for (u32 i = 0; i < n; i++) {
		if (refused(base, bad[i][0], bad[i][1], bad[i][2])) nrefused++;
		else { puts_("accepted: "); puts_(why_names[i]); putc_('\n'); }
	}
	puts_("bad rings refused: "); putdec(nrefused); puts_(" of "); putdec(n); putc_('\n');
	/* Rings wholly above the gap are fine (the memory is zero: empty). */
	if (refused(base, HIGH, HIGH + 0x1000, HIGH + 0x2000)) fail("rings above the gap refused");
	if (refused(base, HIGH_END - 0x3000, HIGH_END - 0x2000, HIGH_END - 0x1000)) fail("rings at the end of RAM refused");
	puts_("rings above the gap accepted\n");

	/* Garbage while live: status, queue registers, features, resets in
	 * the middle of the setup, then reset/DRIVER_OK cycles. */
	fs_start(base);
	mmio_w32(base + R_QUEUE_SEL, 1);
	mmio_w32(base + R_QUEUE_NUM, 4);
	mmio_w32(base + R_DESC_HI, 0x10);
	mmio_w32(base + R_QUEUE_READY, 0);
	mmio_w32(base + R_DRV_FEATURES, 0);
	mmio_w32(base + R_STATUS, 0xff);
	mmio_w32(base + R_STATUS, S_ACK);
	for (int i = 0; i < 16; i++) {
		fs_start(base);
		if (mmio_r32(base + R_STATUS) & 0x40) fail("a good start refused");
		if (i % 4 == 1) { mmio_w32(base + R_STATUS, 0); vdev_live(base); }  /* DRIVER_OK right after a reset */
		if (i % 4 == 2) { vdev_begin(base, 26); vq_init(&req, base, 1, 8, QMEM1); } /* reset mid-setup */
		if (i % 4 == 3) { mmio_w32(base + R_STATUS, 0); mmio_w32(base + R_STATUS, 0); }
	}
	puts_("reset cycles done\n");

	garbage_config(base);
	vdev_begin(base, 26);
	for (int i = 0; i < 36; i++) if ((char)mmio_r8(base + R_CONFIG + i) != tag[i]) fail("tag changed");
	puts_("config done, tag unchanged\n");

	/* The device still works. */
	fs_start(base);
	if (mmio_r32(base + R_STATUS) & 0x40) fail("restart refused");
	struct init_in ii = { 7, 31, 0, 0 };
	int e = fuse(FUSE_INIT, 0, &ii, sizeof(ii), 0, 0, sizeof(struct init_out));
	struct init_out *io = (struct init_out *)(OUT + 16);
	if (e != 0 || io->major != 7) fail("init after the abuse");
	puts_("init after the abuse: ok\n");
	puts_("survived\n");
	guest_exit(42);
}
