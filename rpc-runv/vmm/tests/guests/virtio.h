/* A minimal virtio-mmio (version 2) driver for the test guests: split
 * virtqueues polled without interrupts. */
#ifndef VIRTIO_H
#define VIRTIO_H
#include "guest.h"

#define VIRTIO_SLOT(n) (VIRTIO_BASE + (u64)(n) * 0x1000)
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INT_STATUS 0x060
#define R_INT_ACK 0x064
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_AVAIL_LO 0x090
#define R_AVAIL_HI 0x094
#define R_USED_LO 0x0a0
#define R_USED_HI 0x0a4
#define R_CONFIG 0x100

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8

#define D_NEXT 1
#define D_WRITE 2

struct desc { u64 addr; u32 len; u16 flags; u16 next; };
struct avail { u16 flags; u16 idx; u16 ring[]; };
struct used_elem { u32 id; u32 len; };
struct used { u16 flags; u16 idx; struct used_elem ring[]; };

struct vq {
	u64 base;
	u32 index;
	u16 size;
	u16 next_avail;
	u16 last_used;
	volatile struct desc *desc;
	volatile struct avail *avail;
	volatile struct used *used;
};

static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }

static void fail(const char *why) { puts_("FAIL: "); puts_(why); putc_('\n'); guest_exit(99); }

/* Resets the device at `base`, checks it is a `type` device and
 * negotiates VIRTIO_F_VERSION_1 and the device features `lo` (bits 0-31). */
static void vdev_begin_features(u64 base, u32 type, u32 lo) {
	if (mmio_r32(base + R_MAGIC) != 0x74726976) fail("magic");
	if (mmio_r32(base + R_VERSION) != 2) fail("version");
	if (mmio_r32(base + R_DEVICE_ID) != type) fail("device id");
	mmio_w32(base + R_STATUS, 0);
	mmio_w32(base + R_STATUS, S_ACK);
	mmio_w32(base + R_STATUS, S_ACK | S_DRIVER);
	mmio_w32(base + R_DEV_FEATURES_SEL, 1);
	if (!(mmio_r32(base + R_DEV_FEATURES) & 1)) fail("no VERSION_1");
	mmio_w32(base + R_DRV_FEATURES_SEL, 1);
	mmio_w32(base + R_DRV_FEATURES, 1);
	mmio_w32(base + R_DRV_FEATURES_SEL, 0);
	mmio_w32(base + R_DRV_FEATURES, lo);
	mmio_w32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(mmio_r32(base + R_STATUS) & S_FEATURES_OK)) fail("FEATURES_OK refused");
}

static void vdev_begin(u64 base, u32 type) { vdev_begin_features(base, type, 0); }

/* Sets queue `index` up with `size` entries in guest memory at `mem`. */
static void vq_init(struct vq *q, u64 base, u32 index, u16 size, u64 mem) {
	q->base = base; q->index = index; q->size = size; q->next_avail = 0; q->last_used = 0;
	q->desc = (volatile struct desc *)mem;
	q->avail = (volatile struct avail *)(mem + 16UL * size);
	q->used = (volatile struct used *)(mem + 0x2000);
	memset_((void *)mem, 0, 0x3000);
	mmio_w32(base + R_QUEUE_SEL, index);
	if (mmio_r32(base + R_QUEUE_NUM_MAX) < size) fail("queue too small");
	mmio_w32(base + R_QUEUE_NUM, size);
	mmio_w32(base + R_DESC_LO, (u32)mem); mmio_w32(base + R_DESC_HI, (u32)(mem >> 32));
	mmio_w32(base + R_AVAIL_LO, (u32)(u64)q->avail); mmio_w32(base + R_AVAIL_HI, 0);
	mmio_w32(base + R_USED_LO, (u32)(u64)q->used); mmio_w32(base + R_USED_HI, 0);
	mmio_w32(base + R_QUEUE_READY, 1);
}

static void vdev_live(u64 base) {
	mmio_w32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static void vq_desc(struct vq *q, u16 i, u64 addr, u32 len, u16 flags, u16 next) {
	q->desc[i].addr = addr; q->desc[i].len = len; q->desc[i].flags = flags; q->desc[i].next = next;
}

/* Makes chain `head` available and notifies the device. */
static void vq_kick(struct vq *q, u16 head) {
	q->avail->ring[q->next_avail % q->size] = head;
	barrier();
	q->next_avail++;
	q->avail->idx = q->next_avail;
	barrier();
	mmio_w32(q->base + R_QUEUE_NOTIFY, q->index);
}

/* Waits (polling, at most ~`ms` milliseconds of TSC at >= 1 GHz) for the
 * next used element; returns its length, or fails. */
static u32 vq_wait(struct vq *q, u64 ms) {
	u64 deadline = rdtsc() + ms * 1000000UL * 3;
	while (q->used->idx == q->last_used) {
		barrier();
		if (rdtsc() > deadline) fail("timeout waiting for the device");
	}
	u32 len = q->used->ring[q->last_used % q->size].len;
	q->last_used++;
	mmio_w32(q->base + R_INT_ACK, mmio_r32(q->base + R_INT_STATUS));
	return len;
}
#endif
