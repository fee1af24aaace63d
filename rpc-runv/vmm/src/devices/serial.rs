//! The 8250 UART (COM1) from vm-superio, raising IRQ 4 through an irqfd.

use std::io::Write;
use std::os::fd::AsRawFd;

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// An irqfd as vm-superio's interrupt trigger.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// COM1: the guest console.
pub struct SerialConsole {
    uart: Serial<IrqTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>,
}

impl SerialConsole {
    pub fn new(irq: EventFd, out: Box<dyn Write + Send>) -> Self {
        SerialConsole { uart: Serial::new(IrqTrigger(irq), out) }
    }

    /// A guest read of register `offset` (0..8).
    pub fn read(&mut self, offset: u8) -> u8 {
        self.uart.read(offset)
    }

    /// A guest write; an error means the output or the IRQ failed.
    pub fn write(&mut self, offset: u8, value: u8) -> std::io::Result<()> {
        self.uart.write(offset, value).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        // Make the console visible as the guest writes it.
        if offset == 0 {
            self.uart.writer_mut().flush()?;
        }
        Ok(())
    }

    /// Host input for the guest; returns how many bytes the FIFO took.
    pub fn input(&mut self, bytes: &[u8]) -> usize {
        self.uart.enqueue_raw_bytes(bytes).unwrap_or(0)
    }

    pub fn flush(&mut self) {
        let _ = self.uart.writer_mut().flush();
    }
}

/// rpc-vmm's stdout as the serial console's output. A UART is slow when
/// its reader is: a vCPU writing to a full pipe waits, but only until the
/// VM stops (`stop` readable), then the output is dropped, so a reader
/// that stopped reading cannot keep the VMM from exiting on a signal.
/// Pieces of at most a page are written after poll() said the fd takes
/// data, so the write does not block either.
pub struct StdoutUntilStop {
    stop: EventFd,
}

impl StdoutUntilStop {
    pub fn new(stop: EventFd) -> Self {
        StdoutUntilStop { stop }
    }
}

impl Write for StdoutUntilStop {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let buf = &buf[..buf.len().min(4096)];
        loop {
            let mut fds = [
                libc::pollfd { fd: libc::STDOUT_FILENO, events: libc::POLLOUT, revents: 0 },
                libc::pollfd { fd: self.stop.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: poll on two valid pollfd structs.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if fds[1].revents != 0 {
                return Ok(buf.len());
            }
            if fds[0].revents == 0 {
                continue;
            }
            // SAFETY: write from a valid buffer of buf.len() bytes.
            let n = unsafe { libc::write(libc::STDOUT_FILENO, buf.as_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = std::io::Error::last_os_error();
            if !matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock) {
                return Err(e);
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
