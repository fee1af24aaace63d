//! The one loop every device runs over a virtqueue: pop an available
//! descriptor chain, handle it, put it in the used ring, and say whether
//! the driver wants an interrupt. A handler may also leave a chain
//! available (backpressure: the host side cannot take it now); the device
//! processes the queue again when the host side can.

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};

use crate::guest_fault;
use crate::memory::GuestMemoryMmap;
use crate::report::Reporter;

/// A chain as handlers get it.
pub type Chain<'a> = DescriptorChain<&'a GuestMemoryMmap>;

/// What a handler did with a chain.
pub enum Handled {
    /// Done: return it to the driver with this many bytes written into it.
    Used(u32),
    /// Not now: leave it (and everything after it) available and stop.
    Later,
}

/// Runs `handle` on each available chain of `queue` until the queue is
/// empty or a handler says [`Handled::Later`]. A used ring the device
/// cannot write is reported as `used_ring_fault` (the device's kind of
/// guest fault) and ends the loop. Returns whether chains were used and
/// the driver wants to be notified of it.
pub fn process(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    report: &Reporter,
    used_ring_fault: &'static str,
    mut handle: impl FnMut(Chain<'_>) -> Handled,
) -> bool {
    let mut used = false;
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        let len = match handle(chain) {
            Handled::Used(len) => len,
            Handled::Later => {
                queue.go_to_previous_position();
                break;
            }
        };
        if let Err(e) = queue.add_used(mem, head, len) {
            guest_fault!(report, used_ring_fault, "{e}");
            break;
        }
        used = true;
    }
    used && queue.needs_notification(mem).unwrap_or(true)
}
