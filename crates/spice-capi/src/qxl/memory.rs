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

impl HostMemory {
    /// Writes `data` at `addr`: rendering into a surface's memory (the
    /// primary, or an off-screen surface), whose whole range was checked
    /// against a memslot just before.
    pub(crate) fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        if data.is_empty() {
            return Ok(());
        }
        let unmapped = MemoryError::Unmapped {
            addr,
            len: data.len() as u64,
        };
        let Ok(start) = usize::try_from(addr) else {
            return Err(unmapped);
        };
        if start == 0 || start.checked_add(data.len()).is_none() {
            return Err(unmapped);
        }
        // SAFETY: the destination lies inside a surface's memory, translated and
        // range-checked against a host-registered memslot just before: the primary
        // (`spice_qxl_create_primary_surface`) or an off-screen surface the guest
        // created for the server to render into (`QXL_SURFACE_CMD_CREATE`, as the C
        // server's canvas does); nothing borrows it here.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), start as *mut u8, data.len()) };
        Ok(())
    }
}

impl HostMemory {
    /// Encodes rows of `width` B, G, R, x pixels as a JPEG at `quality`,
    /// appended to `out`, with libjpeg reading each row where it lies (row
    /// `i` at host address `rows[i]`), as the C server's MJPEG encoder
    /// reads a frame's bitmap: no copy of the frame first.
    ///
    /// Every address must have been translated and range-checked for
    /// `width * 4` bytes against a memslot that is still registered (the
    /// caller checks that no memslot changed since).
    pub(crate) fn encode_jpeg_rows(
        &self,
        rows: &[u64],
        width: u32,
        quality: u8,
        out: &mut Vec<u8>,
    ) -> Result<usize, spice_codec::CodecError> {
        let len = width as usize * 4;
        let pointers: Option<Vec<*const u8>> = rows
            .iter()
            .map(|&addr| {
                let start = usize::try_from(addr).ok()?;
                (start != 0 && start.checked_add(len).is_some()).then_some(start as *const u8)
            })
            .collect();
        let Some(pointers) = pointers else {
            return Err(spice_codec::CodecError::InvalidImage(
                "frame rows outside the host's memory",
            ));
        };
        // SAFETY: each row's `width * 4` bytes were checked against a
        // host-registered memslot, which (the caller checked) is still
        // registered, and the host keeps slots mapped while registered. The
        // guest may write concurrently: libjpeg only reads the bytes, and no
        // Rust reference into the guest's memory is made.
        unsafe { crate::jpeg::encode_rows(&pointers, width, quality, out) }
    }
}

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

    fn read_append(&self, addr: u64, len: usize, out: &mut Vec<u8>) -> Result<(), MemoryError> {
        let unmapped = MemoryError::Unmapped {
            addr,
            len: len as u64,
        };
        if len == 0 {
            return Ok(());
        }
        let Ok(start) = usize::try_from(addr) else {
            return Err(unmapped);
        };
        if start == 0 || start.checked_add(len).is_none() {
            return Err(unmapped);
        }
        out.reserve(len);
        let filled = out.len();
        // SAFETY: the source range was checked against a host-registered memslot (as in
        // `read`); `reserve` made room for `len` bytes after `filled`, which the copy
        // initialises entirely before `set_len` exposes them.
        unsafe {
            std::ptr::copy_nonoverlapping(start as *const u8, out.as_mut_ptr().add(filled), len);
            out.set_len(filled + len);
        }
        Ok(())
    }
}
