/*
 * The test initramfs's /init: prints a marker on its console and reboots,
 * which with `reboot=k` is an i8042 reset that rpc-vmm (and QEMU with
 * -no-reboot) turns into a clean exit. Freestanding: no libc, so the
 * uncompressed initramfs stays a few KiB.
 */
static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

#define SYS_write 1
#define SYS_reboot 169
#define SYS_exit 60

static const char marker[] = "RPC-GUEST-INIT-OK\n";

void _start(void)
{
	sys3(SYS_write, 1, (long)marker, sizeof(marker) - 1);
	/* LINUX_REBOOT_MAGIC1, MAGIC2, LINUX_REBOOT_CMD_RESTART */
	sys3(SYS_reboot, 0xfee1dead, 672274793, 0x01234567);
	for (;;)
		sys3(SYS_exit, 1, 0, 0);
}
