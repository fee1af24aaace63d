/* Garbage for the hostile test guests (hostile.c, hostilefs.c,
 * hostilenet.c): a pseudo-random source, register windows filled with
 * random values at every offset and width, and the kinds of register
 * abuse every virtio-mmio device must survive. */
#ifndef HOSTILE_H
#define HOSTILE_H
#include "virtio.h"

static u32 rnd_state = 0x12345678;
static u32 rnd(void) { rnd_state ^= rnd_state << 13; rnd_state ^= rnd_state >> 17; rnd_state ^= rnd_state << 5; return rnd_state; }

static inline void mmio_w16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline u16 mmio_r16(u64 a) { return *(volatile u16 *)a; }
static inline void mmio_w64(u64 a, u64 v) { *(volatile u64 *)a = v; }
static inline u64 mmio_r64(u64 a) { return *(volatile u64 *)a; }

/* Random values at every offset of the register window and the start
 * of the configuration space, 1, 2 and 4 bytes wide. */
static void garbage_window(u64 base) {
	for (u64 off = 0; off < 0x180; off++) {
		u32 v = rnd();
		switch (off % 3) {
		case 0: mmio_w8(base + off, (u8)v); (void)mmio_r8(base + off); break;
		case 1: mmio_w16(base + off, (u16)v); (void)mmio_r16(base + off); break;
		default: mmio_w32(base + (off & ~3UL), v); (void)mmio_r32(base + (off & ~3UL)); break;
		}
	}
}

/* Every register 8 bytes wide, and each write-only one read. */
static void wide_registers(u64 base) {
	for (u64 off = 0; off < 0x100; off += 4) {
		(void)mmio_r64(base + off);
		mmio_w64(base + off, ((u64)rnd() << 32) | rnd());
	}
	static const u16 write_only[] = { R_DEV_FEATURES_SEL, R_DRV_FEATURES, R_DRV_FEATURES_SEL, R_QUEUE_SEL,
		R_QUEUE_NUM, R_QUEUE_NOTIFY, R_INT_ACK, R_DESC_LO, R_DESC_HI, R_AVAIL_LO, R_AVAIL_HI, R_USED_LO, R_USED_HI };
	for (unsigned i = 0; i < sizeof(write_only) / sizeof(write_only[0]); i++) (void)mmio_r32(base + write_only[i]);
}

/* Feature words: device and driver pages past the two there are, all
 * bits asked for, features written after FEATURES_OK. */
static void garbage_features(u64 base, u32 type) {
	static const u32 sels[] = { 0, 1, 2, 3, 0x80000000, 0xffffffff };
	vdev_begin(base, type);
	for (unsigned i = 0; i < sizeof(sels) / sizeof(sels[0]); i++) {
		mmio_w32(base + R_DEV_FEATURES_SEL, sels[i]);
		u32 f = mmio_r32(base + R_DEV_FEATURES);
		if (sels[i] > 1 && f) fail("device features past page 1");
		mmio_w32(base + R_DRV_FEATURES_SEL, sels[i]);
		mmio_w32(base + R_DRV_FEATURES, 0xffffffff);
	}
	mmio_w32(base + R_STATUS, 0);
	mmio_w32(base + R_STATUS, S_ACK | S_DRIVER);
	mmio_w32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);   /* without VERSION_1 */
	if (mmio_r32(base + R_STATUS) & S_FEATURES_OK) fail("FEATURES_OK without VERSION_1");
	vdev_begin(base, type);
	mmio_w32(base + R_DRV_FEATURES_SEL, 0);
	mmio_w32(base + R_DRV_FEATURES, 0xffffffff);                  /* after FEATURES_OK */
}

/* Queue selectors past the device's `nq` queues, sizes 0, not a power of
 * two, past the maximum; DRIVER_OK before FEATURES_OK; status bits taken
 * back. */
static void garbage_queue_regs(u64 base, u32 type, u32 nq) {
	static const u32 sels[] = { 2, 3, 7, 255, 0xffff, 0x80000000, 0xffffffff };
	static const u32 sizes[] = { 0, 3, 255, 257, 512, 0x8000, 0x10000, 0xffffffff };
	vdev_begin(base, type);
	for (unsigned i = 0; i < sizeof(sels) / sizeof(sels[0]); i++) {
		if (sels[i] < nq) continue;
		mmio_w32(base + R_QUEUE_SEL, sels[i]);
		if (mmio_r32(base + R_QUEUE_NUM_MAX) != 0) fail("a queue past the last");
		(void)mmio_r32(base + R_QUEUE_READY);
		mmio_w32(base + R_QUEUE_NUM, 8);
		mmio_w32(base + R_DESC_LO, 0x200000);
		mmio_w32(base + R_QUEUE_READY, 1);
	}
	for (u32 q = 0; q < nq; q++) {
		mmio_w32(base + R_QUEUE_SEL, q);
		for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) mmio_w32(base + R_QUEUE_NUM, sizes[i]);
		mmio_w32(base + R_QUEUE_READY, 0xffffffff);   /* not 1: not ready */
	}
	mmio_w32(base + R_STATUS, 0);
	mmio_w32(base + R_STATUS, S_ACK | S_DRIVER);
	mmio_w32(base + R_STATUS, S_ACK | S_DRIVER | S_DRIVER_OK);     /* before FEATURES_OK */
	if (mmio_r32(base + R_STATUS) & S_DRIVER_OK) fail("DRIVER_OK before FEATURES_OK accepted");
	mmio_w32(base + R_STATUS, S_ACK);                               /* a bit taken back */
	mmio_w32(base + R_STATUS, 0xffffffff);
	mmio_w32(base + R_STATUS, 0);
}

/* The configuration space at every offset of its first 256 bytes and
 * every width, and sparsely up to the end of the window, where an
 * 8-byte access runs into the next slot. */
static void garbage_config(u64 base) {
	for (u64 off = 0x100; off < 0x200; off++) {
		(void)mmio_r8(base + off); mmio_w8(base + off, (u8)rnd());
		(void)mmio_r16(base + off); mmio_w16(base + off, (u16)rnd());
		(void)mmio_r32(base + off); mmio_w32(base + off, rnd());
		(void)mmio_r64(base + off); mmio_w64(base + off, ((u64)rnd() << 32) | rnd());
	}
	for (u64 off = 0x200; off < 0x1000; off += 0xf8) { (void)mmio_r32(base + off); mmio_w32(base + off, rnd()); }
	(void)mmio_r64(base + 0xffc);
	mmio_w64(base + 0xffc, 0xdeadbeefdeadbeefUL);
	(void)mmio_r64(base + 0xff8);
}

/* Sets queue `q` up with rings at the given guest addresses (no memset:
 * they may be anywhere). */
static void vq_at(u64 base, u32 q, u16 size, u64 desc, u64 avail, u64 used) {
	mmio_w32(base + R_QUEUE_SEL, q);
	mmio_w32(base + R_QUEUE_NUM, size);
	mmio_w32(base + R_DESC_LO, (u32)desc); mmio_w32(base + R_DESC_HI, (u32)(desc >> 32));
	mmio_w32(base + R_AVAIL_LO, (u32)avail); mmio_w32(base + R_AVAIL_HI, (u32)(avail >> 32));
	mmio_w32(base + R_USED_LO, (u32)used); mmio_w32(base + R_USED_HI, (u32)(used >> 32));
	mmio_w32(base + R_QUEUE_READY, 1);
}
#endif
