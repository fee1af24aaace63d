/* FUSE over virtio-fs for the test guests: the request layouts and one
 * synchronous request on the request queue (queue 1; queue 0 is hiprio),
 * with its reply checked against the relayed InterruptStatus bit. Used by
 * fs.c and hostilefs.c. */
#ifndef FUSE_H
#define FUSE_H
#include "virtio.h"

#define FUSE_LOOKUP 1
#define FUSE_OPEN 14
#define FUSE_READ 15
#define FUSE_WRITE 16
#define FUSE_RELEASE 18
#define FUSE_INIT 26
#define FUSE_CREATE 35

struct in_header { u32 len; u32 opcode; u64 unique; u64 nodeid; u32 uid; u32 gid; u32 pid; u16 total_extlen; u16 padding; };
struct out_header { u32 len; int error; u64 unique; };
struct init_in { u32 major; u32 minor; u32 max_readahead; u32 flags; };
struct init_out { u32 major; u32 minor; u32 max_readahead; u32 flags; u16 max_background; u16 congestion_threshold; u32 max_write; u32 time_gran; u16 max_pages; u16 map_alignment; u32 flags2; u32 unused[7]; };
struct attr { u64 ino, size, blocks, atime, mtime, ctime; u32 atimensec, mtimensec, ctimensec, mode, nlink, uid, gid, rdev, blksize, flags; };
struct entry_out { u64 nodeid, generation, entry_valid, attr_valid; u32 entry_valid_nsec, attr_valid_nsec; struct attr attr; };
struct open_in { u32 flags; u32 open_flags; };
struct open_out { u64 fh; u32 open_flags; int backing_id; };
struct rw_in { u64 fh; u64 offset; u32 size; u32 rw_flags; u64 lock_owner; u32 flags; u32 padding; };
struct write_out { u32 size; u32 padding; };
struct create_in { u32 flags; u32 mode; u32 umask; u32 open_flags; };
struct release_in { u64 fh; u32 flags; u32 release_flags; u64 lock_owner; };

#define QMEM0 0x200000UL
#define QMEM1 0x204000UL
#define IN 0x300000UL
#define OUT 0x310000UL

static struct vq hiprio, req;
static u64 unique = 1;

static u64 slen(const char *s) { u64 n = 0; while (s[n]) n++; return n; }

/* Sends a request (header + `arg` of `arg_len` bytes + `data`) and waits
 * for the reply; returns the reply's error (0 or -errno), the reply body
 * after the out header at OUT + 16. */
static int fuse(u32 opcode, u64 nodeid, const void *arg, u32 arg_len, const void *data, u32 data_len, u32 out_len)
{
	struct in_header *h = (struct in_header *)IN;
	memset_(h, 0, sizeof(*h));
	h->len = sizeof(*h) + arg_len + data_len;
	h->opcode = opcode;
	h->unique = unique++;
	h->nodeid = nodeid;
	u8 *p = (u8 *)(IN + sizeof(*h));
	for (u32 i = 0; i < arg_len; i++) *p++ = ((const u8 *)arg)[i];
	for (u32 i = 0; i < data_len; i++) *p++ = ((const u8 *)data)[i];
	struct out_header *o = (struct out_header *)OUT;
	memset_(o, 0xaa, sizeof(*o) + out_len);
	vq_desc(&req, 0, IN, h->len, D_NEXT, 1);
	vq_desc(&req, 1, OUT, sizeof(*o) + out_len, D_WRITE, 0);
	vq_kick(&req, 0);
	/* Polls the used ring, then InterruptStatus: the backend's call,
	 * relayed by rpc-vmm, must have set the used-ring bit. */
	u64 deadline = rdtsc() + 20000 * 1000000UL * 3;
	while (req.used->idx == req.last_used) {
		barrier();
		if (rdtsc() > deadline) fail("timeout waiting for the reply");
	}
	u32 used = req.used->ring[req.last_used % req.size].len;
	req.last_used++;
	while (!(mmio_r32(req.base + R_INT_STATUS) & 1))
		if (rdtsc() > deadline) fail("reply without the used-ring interrupt status");
	mmio_w32(req.base + R_INT_ACK, 1);
	if (o->unique != h->unique) fail("reply for another request");
	if (used < sizeof(*o) || o->len != used) fail("reply length");
	return o->error;
}

/* Resets the virtio-fs device at `base` and starts it with both queues. */
static void fs_start(u64 base)
{
	vdev_begin(base, 26);
	vq_init(&hiprio, base, 0, 8, QMEM0);
	vq_init(&req, base, 1, 8, QMEM1);
	vdev_live(base);
}
#endif
