//! The 8250 UART (COM1) from vm-superio, raising IRQ 4 through an irqfd.

use std::io::Write;

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
