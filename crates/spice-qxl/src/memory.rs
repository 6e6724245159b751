//! Access to host memory that backs guest RAM.
//!
//! The parser never holds references into guest memory: the guest can change
//! it at any time, so every field is copied out exactly once through
//! [`GuestMemory::read`] and only the copy is looked at.

use crate::error::MemoryError;

/// Reads host memory at addresses [`MemSlots`](crate::MemSlots) produced.
///
/// The C ABI layer implements this over raw host pointers; tests and fuzzing
/// use [`FakeMemory`].
pub trait GuestMemory {
    /// Copies `out.len()` bytes from host virtual address `addr` (already
    /// translated and range-checked by [`MemSlots`](crate::MemSlots)).
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), MemoryError>;

    /// Appends `len` bytes from `addr` to `out` (image data: large, so an
    /// implementation may copy straight into the vector's spare capacity
    /// instead of zeroing it first). On error `out` is as it was.
    fn read_append(&self, addr: u64, len: usize, out: &mut Vec<u8>) -> Result<(), MemoryError> {
        let start = out.len();
        out.resize(start + len, 0);
        let result = self.read(addr, &mut out[start..]);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

/// A byte vector mapped at a fixed base address, standing in for guest RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMemory {
    base: u64,
    bytes: Vec<u8>,
}

impl FakeMemory {
    /// `size` zero bytes mapped at `base`.
    pub fn new(base: u64, size: usize) -> Self {
        Self::from_bytes(base, vec![0; size])
    }

    /// `bytes` mapped at `base`.
    pub fn from_bytes(base: u64, bytes: Vec<u8>) -> Self {
        Self { base, bytes }
    }

    /// Address of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Number of bytes mapped.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Address one past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.bytes.len() as u64)
    }

    /// The mapped bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The mapped bytes, mutably (a guest rewriting its memory).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn range(&self, addr: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.bytes.len()).then_some(start..end)
    }

    /// Writes `data` at `addr`, or reports that the range is not mapped.
    pub fn try_write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let range = self.range(addr, data.len()).ok_or(MemoryError::Unmapped {
            addr,
            len: data.len() as u64,
        })?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }

    /// Writes `data` at `addr`.
    ///
    /// # Panics
    ///
    /// If `[addr, addr + data.len())` is not inside the mapping: this is a
    /// test helper, and a test writing outside its memory is a bug in the test.
    pub fn write(&mut self, addr: u64, data: &[u8]) {
        if let Err(e) = self.try_write(addr, data) {
            panic!("FakeMemory::write outside the mapping: {e}");
        }
    }
}

impl GuestMemory for FakeMemory {
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), MemoryError> {
        let range = self.range(addr, out.len()).ok_or(MemoryError::Unmapped {
            addr,
            len: out.len() as u64,
        })?;
        out.copy_from_slice(&self.bytes[range]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_rejects_outside() {
        let mut m = FakeMemory::new(0x1000, 16);
        m.write(0x1004, &[1, 2, 3]);
        let mut out = [0u8; 4];
        m.read(0x1003, &mut out).unwrap();
        assert_eq!(out, [0, 1, 2, 3]);
        assert!(m.read(0x0fff, &mut out).is_err());
        assert!(m.read(0x100d, &mut out).is_err());
        assert!(m.read(u64::MAX, &mut out).is_err());
        m.read(0x1010, &mut []).unwrap();
        assert!(m.try_write(0x100f, &[0, 0]).is_err());
        assert_eq!(m.end(), 0x1010);
    }
}
