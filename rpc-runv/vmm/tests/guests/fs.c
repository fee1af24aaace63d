/* Drives virtio-fs at slot 0, served by virtiofsd over vhost-user: FUSE
 * requests on the request queue (queue 1; queue 0 is hiprio): INIT,
 * LOOKUP of hello.txt (the host test wrote HOST_TEXT into it), OPEN +
 * READ compared with HOST_TEXT, CREATE of fromguest.txt + WRITE of
 * GUEST_TEXT + RELEASE (the host test reads it back). Exits 0 when all
 * went as expected, 1.. on the first failed step. First, a start with a
 * ring outside memory must be refused and the device work after a reset.
 *
 * With "fs-wait-disconnect" on the command line it then says so and waits
 * for the device to report DEVICE_NEEDS_RESET (the test kills the
 * backend), tries a reset and restart (which must be refused, not hang),
 * and exits 0. With "fs-stall", the test stalls the backend instead and
 * the reset and restart must end (refused) within the VMM's timeout. */
#include "fuse.h"

u64 zero_page;

#define HOST_TEXT "hello from the host over virtio-fs\n"
#define GUEST_TEXT "written by the guest over virtio-fs\n"

static void step(int ok, const char *what, u8 status)
{
	if (!ok) { puts_("FAIL: "); puts_(what); putc_('\n'); guest_exit(status); }
}

static int has_word(const char *s, const char *w)
{
	u64 n = slen(w);
	for (; *s; s++) if (memeq(s, w, n)) return 1;
	return 0;
}

/* Waits (polling) up to ~`ms` ms for status bit `bit`. */
static int wait_status(u64 base, u32 bit, u64 ms)
{
	u64 deadline = rdtsc() + ms * 1000000UL * 3;
	while (!(mmio_r32(base + R_STATUS) & bit))
		if (rdtsc() > deadline) return 0;
	return 1;
}

void __attribute__((noreturn)) main_(void)
{
	u64 base = VIRTIO_SLOT(0);
	vdev_begin(base, 26);
	char tag[37];
	for (int i = 0; i < 36; i++) tag[i] = (char)mmio_r8(base + R_CONFIG + i);
	tag[36] = 0;
	u32 nreq = mmio_r32(base + R_CONFIG + 36);
	puts_("tag "); puts_(tag); puts_(" request queues "); putdec(nreq); putc_('\n');
	/* A request queue whose descriptor table lies outside memory: the
	 * device must refuse to start (DEVICE_NEEDS_RESET), and work after a
	 * reset (the hiprio ring it had started is stopped then). */
	vq_init(&hiprio, base, 0, 8, QMEM0);
	vq_init(&req, base, 1, 8, QMEM1);
	mmio_w32(base + R_QUEUE_SEL, 1);
	mmio_w32(base + R_DESC_HI, 0x10);
	vdev_live(base);
	step(mmio_r32(base + R_STATUS) & 0x40, "device started with a ring outside memory", 13);
	puts_("ring outside memory: refused\n");
	fs_start(base);
	step(!(mmio_r32(base + R_STATUS) & 0x40), "device refused DRIVER_OK", 2);

	struct init_in ii = { 7, 31, 0, 0 };
	int e = fuse(FUSE_INIT, 0, &ii, sizeof(ii), 0, 0, sizeof(struct init_out));
	struct init_out *io = (struct init_out *)(OUT + 16);
	step(e == 0 && io->major == 7, "init", 3);
	puts_("init: ok\n");

	e = fuse(FUSE_LOOKUP, 1, "hello.txt", 10, 0, 0, sizeof(struct entry_out));
	struct entry_out *eo = (struct entry_out *)(OUT + 16);
	step(e == 0, "lookup hello.txt", 4);
	u64 node = eo->nodeid, size = eo->attr.size;
	puts_("lookup hello.txt: size "); putdec(size); putc_('\n');

	struct open_in oi = { 0 /* O_RDONLY */, 0 };
	e = fuse(FUSE_OPEN, node, &oi, sizeof(oi), 0, 0, sizeof(struct open_out));
	step(e == 0, "open hello.txt", 5);
	u64 fh = ((struct open_out *)(OUT + 16))->fh;
	struct rw_in ri = { fh, 0, 4096, 0, 0, 0, 0 };
	e = fuse(FUSE_READ, node, &ri, sizeof(ri), 0, 0, 4096);
	u32 got = ((struct out_header *)OUT)->len - 16;
	step(e == 0, "read hello.txt", 6);
	int same = got == slen(HOST_TEXT) && memeq((void *)(OUT + 16), HOST_TEXT, got);
	puts_("read: "); putdec(got); puts_(same ? " bytes, as written by the host\n" : " bytes, WRONG CONTENT\n");
	step(same, "content of hello.txt", 7);
	struct release_in rl = { fh, 0, 0, 0 };
	e = fuse(FUSE_RELEASE, node, &rl, sizeof(rl), 0, 0, 0);
	step(e == 0, "release hello.txt", 8);

	struct { struct create_in c; char name[16]; } ci = { { 0101 /* O_WRONLY|O_CREAT */, 0100644, 0, 0 }, "fromguest.txt" };
	e = fuse(FUSE_CREATE, 1, &ci, sizeof(ci.c) + 14, 0, 0, sizeof(struct entry_out) + sizeof(struct open_out));
	step(e == 0, "create fromguest.txt", 9);
	node = ((struct entry_out *)(OUT + 16))->nodeid;
	fh = ((struct open_out *)(OUT + 16 + sizeof(struct entry_out)))->fh;
	puts_("create fromguest.txt: ok\n");
	struct rw_in wi = { fh, 0, (u32)slen(GUEST_TEXT), 0, 0, 0, 0 };
	e = fuse(FUSE_WRITE, node, &wi, sizeof(wi), GUEST_TEXT, (u32)slen(GUEST_TEXT), sizeof(struct write_out));
	step(e == 0, "write fromguest.txt", 10);
	puts_("write: "); putdec(((struct write_out *)(OUT + 16))->size); puts_(" bytes\n");
	rl.fh = fh;
	e = fuse(FUSE_RELEASE, node, &rl, sizeof(rl), 0, 0, 0);
	step(e == 0, "release fromguest.txt", 11);

	e = fuse(FUSE_LOOKUP, 1, "missing", 8, 0, 0, sizeof(struct entry_out));
	puts_("lookup missing: error "); putdec((u64)-e); putc_('\n');
	step(e == -2, "lookup of a missing file", 12);

	const char *cmdline = (const char *)(u64) * (u32 *)(zero_page + 0x228);
	if (has_word(cmdline, "fs-wait-disconnect")) {
		puts_("waiting for the backend to go\n");
		step(wait_status(base, 0x40, 60000), "no DEVICE_NEEDS_RESET after the backend went", 20);
		puts_("device needs reset\n");
		/* Restarting without a backend is refused, promptly. */
		fs_start(base);
		step(mmio_r32(base + R_STATUS) & 0x40, "restart without a backend accepted", 21);
		puts_("restart refused\n");
	}
	if (has_word(cmdline, "fs-stall")) {
		/* The test stops the backend (SIGSTOP), then sends a byte on
		 * the serial port: the reset's GET_VRING_BASE gets no answer,
		 * the VMM's watchdog must cut it off, and the restart is then
		 * refused. */
		puts_("stall the backend now\n");
		u64 deadline = rdtsc() + 60000 * 1000000UL * 3;
		while (!(inb(SERIAL + 5) & 1))
			step(rdtsc() < deadline, "no go from the host", 22);
		(void)inb(SERIAL);
		fs_start(base);
		step(mmio_r32(base + R_STATUS) & 0x40, "restart with a stalled backend accepted", 23);
		puts_("stalled backend cut off\n");
	}
	guest_exit(0);
}

void __attribute__((naked)) _start(void)
{
	__asm__("mov %rsi, zero_page(%rip)\n\tjmp main_");
}
