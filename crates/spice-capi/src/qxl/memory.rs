//! The one guest-memory accessor: copies bytes from host virtual addresses that
//! the memslot table has already translated and range-checked.

use spice_qxl::{GuestMemory, MemoryError};

/// Reads the host's address space directly, as the C server does.
///
/// Trust model: addresses reach this only through `MemSlots::translate`, so
/// they lie inside a slot the host registered with `spice_qxl_add_memslot`
/// (the guest's RAM/VRAM mapping, or the host's own memory for slot group 0,
/// where QEMU itself builds the commands).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HostMemory;

impl GuestMemory for HostMemory {
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), MemoryError> {
        if out.is_empty() {
            return Ok(());
        }
        let Ok(start) = usize::try_from(addr) else {
            return Err(MemoryError::Unmapped {
                addr,
                len: out.len() as u64,
            });
        };
        if start == 0 || start.checked_add(out.len()).is_none() {
            return Err(MemoryError::Unmapped {
                addr,
                len: out.len() as u64,
            });
        }
        // SAFETY: `[addr, addr + len)` was checked against a host-registered memslot by
        // `MemSlots::translate`; the host guarantees slots map readable memory while
        // registered. The guest may write concurrently: we copy once into our own
        // buffer and never keep references into its memory.
        unsafe { std::ptr::copy_nonoverlapping(start as *const u8, out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}
