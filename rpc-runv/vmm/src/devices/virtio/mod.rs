//! virtio devices over the virtio-mmio transport (version 2), with split
//! virtqueues from the `virtio-queue` crate.

pub mod block;
pub mod console;
pub mod fs;
pub mod mmio;
pub mod net;
pub mod queue;
pub mod vsock;
pub mod watch;

use virtio_queue::Queue;

use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

/// VIRTIO_F_VERSION_1: the only transport version we offer.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

pub const TYPE_NET: u32 = 1;
pub const TYPE_BLOCK: u32 = 2;
pub const TYPE_CONSOLE: u32 = 3;

/// Why a device could not start ([`VirtioDevice::activate`]); the text
/// names the device.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The driver's setup is unusable (a guest fault).
    #[error("{0}")]
    Guest(String),
    /// The device's host backend failed (not the guest's doing).
    #[error("{0}")]
    Backend(String),
}

/// A device model behind a [`mmio::MmioTransport`].
pub trait VirtioDevice: Send {
    /// The virtio device id.
    fn device_type(&self) -> u32;
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// The maximum size of each of its queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits offered (VIRTIO_F_VERSION_1 is added by the transport).
    fn features(&self) -> u64;
    /// A read of its configuration space at `offset`; bytes past the end
    /// read as zero. Returns false if any byte was past the end (the
    /// transport reports it).
    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool;
    /// A write to its configuration space; returns whether the device
    /// took it (none of ours has a writable field: the default refuses,
    /// and the transport reports it).
    fn write_config(&mut self, _offset: u64, _data: &[u8]) -> bool {
        false
    }
    /// The driver notified queue `index`: process what it made available.
    /// Returns whether used buffers were added (an interrupt is due).
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool;
    /// The host side changed (data for the guest, room for the guest's
    /// data, a client came or went): take the queues on where they waited.
    /// `source` says which of the device's host ends it was, for devices
    /// with several (the console's ports); 0 for the others.
    fn host_event(&mut self, _source: usize, _queues: &mut [Queue], _mem: &GuestMemoryMmap, _report: &Reporter) -> bool {
        false
    }
    /// The driver set DRIVER_OK: the device may start (a vhost-user
    /// device hands its queues to the backend here). An error marks the
    /// device DEVICE_NEEDS_RESET, and is reported as the guest's fault or
    /// the host's, as it says.
    fn activate(&mut self, _queues: &[Queue], _mem: &GuestMemoryMmap, _driver_features: u64) -> Result<(), ActivateError> {
        Ok(())
    }
    /// The driver reset the device.
    fn reset(&mut self) {}
    /// The driver cannot take anything (not live, or broken until it
    /// resets the device): stop watching host input that would wake the
    /// event loop for nothing.
    fn host_blocked(&mut self) {}
}

/// Copies `src` into `data` from `offset`, zero past the end; returns
/// whether all of `data` came from `src`.
pub(crate) fn read_config_bytes(src: &[u8], offset: u64, data: &mut [u8]) -> bool {
    let mut inside = true;
    for (i, b) in data.iter_mut().enumerate() {
        let byte = usize::try_from(offset).ok().and_then(|o| o.checked_add(i)).and_then(|o| src.get(o)).copied();
        inside &= byte.is_some();
        *b = byte.unwrap_or(0);
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::read_config_bytes;

    #[test]
    fn config_reads_past_the_end_are_zero_and_flagged() {
        let src = [1u8, 2, 3, 4];
        let mut d = [0xffu8; 2];
        assert!(read_config_bytes(&src, 2, &mut d));
        assert_eq!(d, [3, 4]);
        let mut d = [0xffu8; 4];
        assert!(!read_config_bytes(&src, 2, &mut d));
        assert_eq!(d, [3, 4, 0, 0]);
        assert!(!read_config_bytes(&src, u64::MAX, &mut d));
        assert_eq!(d, [0; 4]);
    }
}
