//! virtio-blk backed by a host file, read-only or read-write. Requests
//! (read, write, flush, get-id) are bounds-checked against the disk's
//! capacity and the descriptor chain; a bad request gets an error status,
//! a chain too broken to answer is reported and returned empty.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use virtio_queue::Queue;
use vm_memory::ByteValued;

use super::queue::{self, Chain, Handled};
use super::{read_config_bytes, VirtioDevice, TYPE_BLOCK};
use crate::guest_fault;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;
use crate::{Error, Result};

const SECTOR_SIZE: u64 = 512;
const QUEUE_SIZE: u16 = 256;
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
const ID_LEN: usize = 20;
const CHUNK: usize = 64 * 1024;

/// Why a request's descriptor chain could not be answered: a guest
/// fault, reported, and the chain returned empty. (A host I/O error is
/// not one of these: the guest gets S_IOERR.)
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{0}")]
    Chain(#[from] virtio_queue::Error),
    #[error("header: {0}")]
    Header(#[source] std::io::Error),
    #[error("no status byte")]
    NoStatus,
    #[error("data: {0}")]
    Data(#[source] std::io::Error),
    #[error("status: {0}")]
    Status(#[source] std::io::Error),
    /// More bytes written into the chain than a used element can say
    /// (descriptors aliasing one buffer can add up past 4 GiB).
    #[error("{0} bytes written: more than a used element holds")]
    TooLong(usize),
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RequestHeader {
    type_: u32,
    reserved: u32,
    sector: u64,
}
// SAFETY: plain old data with no padding.
unsafe impl ByteValued for RequestHeader {}

/// A file-backed disk.
pub struct Block {
    file: File,
    capacity: u64,
    read_only: bool,
    id: [u8; ID_LEN],
    config: [u8; 8],
}

impl Block {
    pub fn new(path: &Path, read_only: bool, index: usize) -> Result<Self> {
        let file =
            OpenOptions::new().read(true).write(!read_only).open(path).map_err(|source| Error::File { path: path.to_owned(), source })?;
        let len = file.metadata().map_err(|source| Error::File { path: path.to_owned(), source })?.len();
        let capacity = len / SECTOR_SIZE;
        let mut id = [0u8; ID_LEN];
        let s = format!("rpc-vmm-blk{index}");
        id[..s.len().min(ID_LEN)].copy_from_slice(&s.as_bytes()[..s.len().min(ID_LEN)]);
        Ok(Block { file, capacity, read_only, id, config: capacity.to_le_bytes() })
    }

    /// The byte range of a transfer, if it lies within the disk.
    fn range(&self, sector: u64, len: usize) -> Option<u64> {
        let start = sector.checked_mul(SECTOR_SIZE)?;
        let end = start.checked_add(len as u64)?;
        (end <= self.capacity * SECTOR_SIZE).then_some(start)
    }

    /// Handles one request; returns the bytes written into the chain.
    fn request(&mut self, chain: Chain<'_>, mem: &GuestMemoryMmap, report: &Reporter) -> std::result::Result<u32, ChainError> {
        let mut reader = chain.clone().reader(mem)?;
        let mut writer = chain.writer(mem)?;
        let hdr: RequestHeader = reader.read_obj().map_err(ChainError::Header)?;
        let avail = writer.available_bytes();
        if avail == 0 {
            return Err(ChainError::NoStatus);
        }
        let mut status_w = writer.split_at(avail - 1)?;
        let (status, data_len) = match hdr.type_ {
            T_IN => {
                let len = writer.available_bytes();
                // Checked before any I/O: what a used element cannot say
                // is not read at all.
                used_len(len)?;
                match self.range(hdr.sector, len) {
                    None => {
                        guest_fault!(report, "virtio-blk request out of range", "read of {len} bytes at sector {}", hdr.sector);
                        (S_IOERR, 0)
                    }
                    Some(mut off) => {
                        let mut buf = vec![0u8; CHUNK.min(len)];
                        let mut done = 0;
                        let mut status = S_OK;
                        while done < len {
                            let n = (len - done).min(CHUNK);
                            if let Err(e) = self.file.read_exact_at(&mut buf[..n], off) {
                                report.host_error("virtio-blk host I/O error", format_args!("{e}"));
                                status = S_IOERR;
                                break;
                            }
                            std::io::Write::write_all(&mut writer, &buf[..n]).map_err(ChainError::Data)?;
                            off += n as u64;
                            done += n;
                        }
                        (status, done)
                    }
                }
            }
            T_OUT => {
                let len = reader.available_bytes();
                if self.read_only {
                    (S_IOERR, 0)
                } else {
                    match self.range(hdr.sector, len) {
                        None => {
                            guest_fault!(report, "virtio-blk request out of range", "write of {len} bytes at sector {}", hdr.sector);
                            (S_IOERR, 0)
                        }
                        Some(mut off) => {
                            let mut buf = vec![0u8; CHUNK.min(len)];
                            let mut done = 0;
                            let mut status = S_OK;
                            while done < len {
                                let n = (len - done).min(CHUNK);
                                std::io::Read::read_exact(&mut reader, &mut buf[..n]).map_err(ChainError::Data)?;
                                if let Err(e) = self.file.write_all_at(&buf[..n], off) {
                                    report.host_error("virtio-blk host I/O error", format_args!("{e}"));
                                    status = S_IOERR;
                                    break;
                                }
                                off += n as u64;
                                done += n;
                            }
                            (status, 0)
                        }
                    }
                }
            }
            T_FLUSH => {
                if self.read_only {
                    (S_OK, 0)
                } else {
                    match self.file.sync_data() {
                        Ok(()) => (S_OK, 0),
                        Err(_) => (S_IOERR, 0),
                    }
                }
            }
            T_GET_ID => {
                let n = writer.available_bytes().min(ID_LEN);
                std::io::Write::write_all(&mut writer, &self.id[..n]).map_err(ChainError::Data)?;
                (S_OK, n)
            }
            _ => (S_UNSUPP, 0),
        };
        status_w.write_obj(status).map_err(ChainError::Status)?;
        used_len(data_len)
    }
}

/// The used length of a request that wrote `data_len` bytes of data and
/// the status byte.
fn used_len(data_len: usize) -> std::result::Result<u32, ChainError> {
    data_len.checked_add(1).and_then(|n| u32::try_from(n).ok()).ok_or(ChainError::TooLong(data_len))
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }
    fn name(&self) -> &'static str {
        "virtio-blk"
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        VIRTIO_BLK_F_FLUSH | if self.read_only { VIRTIO_BLK_F_RO } else { 0 }
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool {
        read_config_bytes(&self.config, offset, data)
    }
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap, report: &Reporter) -> bool {
        let Some(queue) = queues.get_mut(index) else { return false };
        queue::process(queue, mem, report, "virtio-blk bad used ring", |chain| {
            let head = chain.head_index();
            Handled::Used(match self.request(chain, mem, report) {
                Ok(len) => len,
                Err(e) => {
                    guest_fault!(report, "virtio-blk bad descriptor chain", "head {head}: {e}");
                    0
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_length_never_wraps() {
        assert_eq!(used_len(0).ok(), Some(1));
        assert_eq!(used_len(u32::MAX as usize - 1).ok(), Some(u32::MAX));
        assert!(matches!(used_len(u32::MAX as usize), Err(ChainError::TooLong(_))));
        assert!(matches!(used_len(usize::MAX), Err(ChainError::TooLong(_))));
    }
}
