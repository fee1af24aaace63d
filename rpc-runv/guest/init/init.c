/*
 * The test initramfs's /init. Mounts devtmpfs, prints the first line of
 * /dev/vda if there is a disk, writes a marker to /dev/hvc0 if there is
 * a virtio console, mounts the virtio-fs tag "rpcfs" on /mnt if there is
 * one (printing the first line of /mnt/hello.txt and writing
 * /mnt/fromlinux.txt), prints RPC-GUEST-INIT-OK on its console, and reboots,
 * which with `reboot=k` is an i8042 reset that rpc-vmm (and QEMU with
 * -no-reboot) turns into a clean exit. Freestanding: no libc, so the
 * uncompressed initramfs stays a few KiB.
 *
 * With `rpc.vsock-echo` on the kernel command line it does not reboot:
 * after RPC-GUEST-INIT-OK it prints RPC-GUEST-VSOCK-ECHO, listens on vsock
 * port 1234 and echoes every connection, one after the other, until its
 * peer closes, for as long as the VM runs (the host's transport tests and
 * the tests that stop a running VM use it).
 */
static long sys5(long nr, long a, long b, long c, long d, long e)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_exit 60
#define SYS_socket 41
#define SYS_accept 43
#define SYS_bind 49
#define SYS_listen 50
#define SYS_mkdir 83
#define SYS_mount 165
#define SYS_reboot 169
#define O_RDONLY 0
#define O_WRONLY 1
#define O_NOCTTY 0400
#define O_CREAT 0100
#define O_TRUNC 01000
#define AF_VSOCK 40
#define SOCK_STREAM 1
#define VMADDR_CID_ANY 0xffffffffu
#define ECHO_PORT 1234

/* struct sockaddr_vm of <linux/vm_sockets.h>: 16 bytes. */
struct sockaddr_vm {
	unsigned short svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};

static unsigned long len(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static void say(int fd, const char *s)
{
	sys5(SYS_write, fd, (long)s, len(s), 0, 0);
}

/* Prints PREFIX and the first line of PATH, if it can be read. */
static void print_first_line(const char *prefix, const char *path)
{
	static char buf[80];
	long fd, n, i;

	fd = sys5(SYS_open, (long)path, O_RDONLY, 0, 0, 0);
	if (fd < 0)
		return;
	n = sys5(SYS_read, fd, (long)buf, sizeof(buf) - 1, 0, 0);
	for (i = 0; i < n && buf[i] != '\n' && buf[i] != 0; i++)
		;
	buf[i] = 0;
	say(1, prefix);
	say(1, buf);
	say(1, "\n");
	sys5(SYS_close, fd, 0, 0, 0, 0);
}

/* Whether WORD is a whole word of /proc/cmdline. Dotted parameters are
 * taken for module parameters and never reach init's argv or environment,
 * so the command line is read from /proc. */
static int cmdline_has(const char *word)
{
	static char buf[1024];
	long fd, n, i, j, wl = (long)len(word);

	fd = sys5(SYS_open, (long)"/proc/cmdline", O_RDONLY, 0, 0, 0);
	if (fd < 0)
		return 0;
	n = sys5(SYS_read, fd, (long)buf, sizeof(buf) - 1, 0, 0);
	sys5(SYS_close, fd, 0, 0, 0, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	for (i = 0; i + wl <= n; i++) {
		if (i > 0 && buf[i - 1] != ' ')
			continue;
		for (j = 0; j < wl && buf[i + j] == word[j]; j++)
			;
		if (j == wl && (buf[i + wl] == ' ' || buf[i + wl] == '\n' || buf[i + wl] == 0))
			return 1;
	}
	return 0;
}

/* Echoes every connection on vsock port ECHO_PORT until its peer closes,
 * one connection at a time; returns only if the socket cannot be set up. */
static void vsock_echo(void)
{
	static char buf[4096];
	struct sockaddr_vm addr = { AF_VSOCK, 0, ECHO_PORT, VMADDR_CID_ANY, 0, { 0, 0, 0 } };
	long s, c, n, off, w;

	s = sys5(SYS_socket, AF_VSOCK, SOCK_STREAM, 0, 0, 0);
	if (s < 0 || sys5(SYS_bind, s, (long)&addr, sizeof(addr), 0, 0) < 0 ||
	    sys5(SYS_listen, s, 4, 0, 0, 0) < 0) {
		say(1, "RPC-GUEST-VSOCK-ECHO-FAILED\n");
		return;
	}
	say(1, "RPC-GUEST-VSOCK-ECHO\n");
	for (;;) {
		c = sys5(SYS_accept, s, 0, 0, 0, 0);
		if (c < 0)
			continue;
		while ((n = sys5(SYS_read, c, (long)buf, sizeof(buf), 0, 0)) > 0) {
			for (off = 0; off < n; off += w) {
				w = sys5(SYS_write, c, (long)buf + off, n - off, 0, 0);
				if (w <= 0)
					break;
			}
			if (off < n)
				break;
		}
		sys5(SYS_close, c, 0, 0, 0, 0);
	}
}

void _start(void)
{
	long fd;

	sys5(SYS_mount, (long)"devtmpfs", (long)"/dev", (long)"devtmpfs", 0, 0);
	print_first_line("vda: ", "/dev/vda");
	sys5(SYS_mkdir, (long)"/mnt", 0755, 0, 0, 0);
	if (sys5(SYS_mount, (long)"rpcfs", (long)"/mnt", (long)"virtiofs", 0, 0) == 0) {
		print_first_line("virtiofs: ", "/mnt/hello.txt");
		fd = sys5(SYS_open, (long)"/mnt/fromlinux.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644, 0, 0);
		if (fd >= 0) {
			say(fd, "written by linux over virtiofs\n");
			sys5(SYS_close, fd, 0, 0, 0, 0);
		}
	}
	fd = sys5(SYS_open, (long)"/dev/hvc0", O_WRONLY | O_NOCTTY, 0, 0, 0);
	if (fd >= 0) {
		say(fd, "RPC-GUEST-HVC0-OK\n");
		sys5(SYS_close, fd, 0, 0, 0, 0);
	}
	say(1, "RPC-GUEST-INIT-OK\n");
	sys5(SYS_mount, (long)"proc", (long)"/proc", (long)"proc", 0, 0);
	if (cmdline_has("rpc.vsock-echo"))
		vsock_echo();
	/* LINUX_REBOOT_MAGIC1, MAGIC2, LINUX_REBOOT_CMD_RESTART */
	sys5(SYS_reboot, 0xfee1dead, 672274793, 0x01234567, 0, 0);
	for (;;)
		sys5(SYS_exit, 1, 0, 0, 0, 0);
}
