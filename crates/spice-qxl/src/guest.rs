//! Copy-once reads of guest structures through the memslots.
//!
//! Guest memory is racy: the guest may rewrite it while the host reads. So
//! every structure is copied out exactly once, fields are taken from the copy,
//! and variable-length data is gathered into owned buffers whose sizes are
//! checked against [`ParseLimits`] before anything is allocated.

use std::cell::Cell;
use std::collections::HashSet;

use crate::error::ParseError;
use crate::layout::{Fields, DATA_CHUNK_SIZE};
use crate::memory::GuestMemory;
use crate::memslot::MemSlots;

/// Bounds on everything a guest command can make the parser do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Surface ids must be below this (`QXLDevInitInfo.n_surfaces`; QEMU: 1024).
    pub n_surfaces: u32,
    /// Most `QXLDataChunk`s in one list (the C server: 2 GiB / 1 KiB).
    pub max_chunks: u32,
    /// Most bytes of one image (bitmap rows, QUIC stream) and, divided by 4,
    /// most pixels of one image.
    pub max_image_bytes: u64,
    /// Most bytes copied out of guest memory for one command, all fields together.
    pub max_command_bytes: u64,
    /// Most clip rectangles in one drawable.
    pub max_clip_rects: u32,
    /// Longest `QXL_CMD_MESSAGE` text scanned for its terminating NUL.
    pub max_message_len: u32,
    /// Widest and tallest cursor accepted.
    pub max_cursor_side: u16,
    /// Most bytes in a cursor's chunk list.
    pub max_cursor_bytes: u64,
    /// Most segments in one `QXLPath` (a STROKE's path).
    pub max_path_segments: u32,
    /// Most points in one `QXLPath`, all segments together.
    pub max_path_points: u32,
    /// Most glyphs in one `QXLString` (a TEXT's string).
    pub max_glyphs: u32,
}

/// Default [`ParseLimits::n_surfaces`], QEMU's default.
pub const DEFAULT_N_SURFACES: u32 = 1024;
/// Default [`ParseLimits::max_image_bytes`] and [`ParseLimits::max_command_bytes`]: 256 MiB.
pub const MAX_DATA_BYTES: u64 = 256 << 20;
/// Default [`ParseLimits::max_chunks`]: one chunk per KiB of [`MAX_DATA_BYTES`], the C server's ratio.
pub const MAX_CHUNKS: u32 = (MAX_DATA_BYTES >> 10) as u32;
/// Default [`ParseLimits::max_clip_rects`].
pub const MAX_CLIP_RECTS: u32 = 1 << 16;
/// Default [`ParseLimits::max_message_len`], as in the C server.
pub const MAX_MESSAGE_LEN: u32 = 100_000;
/// Default [`ParseLimits::max_cursor_side`], matching the display's limit.
pub const MAX_CURSOR_SIDE: u16 = 512;
/// Default [`ParseLimits::max_cursor_bytes`]: a full-size ARGB cursor and its masks, with room.
pub const MAX_CURSOR_BYTES: u64 = 4 << 20;
/// Default [`ParseLimits::max_path_segments`]: far more than a GDI path holds
/// (the C server has no limit but its 2 GiB chunk total).
pub const MAX_PATH_SEGMENTS: u32 = 1 << 16;
/// Default [`ParseLimits::max_path_points`]: 8 MiB of points, far more than a
/// GDI path holds.
pub const MAX_PATH_POINTS: u32 = 1 << 20;
/// Default [`ParseLimits::max_glyphs`]: every count `QXLString.length` (a
/// `u16`) can carry, so no well-formed string is refused; the glyphs' pixels
/// are bounded by [`ParseLimits::max_image_bytes`] and the command budget.
pub const MAX_GLYPHS: u32 = u16::MAX as u32;

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            n_surfaces: DEFAULT_N_SURFACES,
            max_chunks: MAX_CHUNKS,
            max_image_bytes: MAX_DATA_BYTES,
            max_command_bytes: MAX_DATA_BYTES,
            max_clip_rects: MAX_CLIP_RECTS,
            max_message_len: MAX_MESSAGE_LEN,
            max_cursor_side: MAX_CURSOR_SIDE,
            max_cursor_bytes: MAX_CURSOR_BYTES,
            max_path_segments: MAX_PATH_SEGMENTS,
            max_path_points: MAX_PATH_POINTS,
            max_glyphs: MAX_GLYPHS,
        }
    }
}

/// Guest memory as seen through one device's memslots.
#[derive(Clone, Copy)]
pub struct Guest<'a> {
    /// The device's memslot table.
    pub slots: &'a MemSlots,
    /// Host memory the slots point into.
    pub memory: &'a dyn GuestMemory,
    /// Bounds applied while parsing.
    pub limits: ParseLimits,
    /// Leave the rows of 32-bit top-down bitmaps in guest memory (see
    /// [`Guest::with_bitmap_rows_in_place`]).
    pub bitmap_rows_in_place: bool,
}

impl std::fmt::Debug for Guest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("slots", self.slots)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<'a> Guest<'a> {
    /// A view with the default [`ParseLimits`].
    pub fn new(slots: &'a MemSlots, memory: &'a dyn GuestMemory) -> Self {
        Self {
            slots,
            memory,
            limits: ParseLimits::default(),
            bitmap_rows_in_place: false,
        }
    }

    /// The same view, but the rows of 32-bit top-down bitmaps in one range of
    /// guest memory are not copied: the parsed [`crate::Bitmap`] names the
    /// checked range ([`crate::Bitmap::guest_rows`]) and the caller copies
    /// them once, straight to where they go, before it releases the command
    /// (a renderer draws them into its surface). Everything else is copied
    /// as usual.
    pub fn with_bitmap_rows_in_place(self) -> Self {
        Self {
            bitmap_rows_in_place: true,
            ..self
        }
    }

    /// The same view with other limits.
    pub fn with_limits(self, limits: ParseLimits) -> Self {
        Self { limits, ..self }
    }

    /// Copies `out.len()` bytes at `phys` in slot group `group`.
    pub fn read_into(&self, phys: u64, group: u32, out: &mut [u8]) -> Result<(), ParseError> {
        let what = "guest read";
        let host = self
            .slots
            .translate(phys, group, out.len() as u64)
            .map_err(|source| ParseError::Slot { what, source })?;
        self.memory
            .read(host, out)
            .map_err(|source| ParseError::Memory { what, source })
    }

    /// Copies `len` bytes at `phys` in slot group `group` into a new buffer;
    /// `len` must not exceed [`ParseLimits::max_image_bytes`].
    pub fn read_bytes(&self, phys: u64, group: u32, len: usize) -> Result<Vec<u8>, ParseError> {
        let limit = self.limits.max_image_bytes;
        if len as u64 > limit {
            return Err(ParseError::too_large("guest read", len as u64, limit));
        }
        let host = self
            .slots
            .translate(phys, group, len as u64)
            .map_err(|source| ParseError::Slot {
                what: "guest read",
                source,
            })?;
        let mut out = Vec::new();
        self.memory
            .read_append(host, len, &mut out)
            .map_err(|source| ParseError::Memory {
                what: "guest read",
                source,
            })?;
        Ok(out)
    }
}

/// A `QXLDataChunk` about to be gathered: its data starts `data_offset` bytes
/// after `phys` (the chunk header or the structure embedding it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkRef {
    pub(crate) phys: u64,
    pub(crate) data_offset: u64,
    pub(crate) size: u32,
    pub(crate) next: u64,
}

impl ChunkRef {
    /// The chunk header `QXLDataChunk` embedded at `header_offset` in the
    /// structure copied in `fields`, which lives at `phys`.
    pub(crate) fn embedded(fields: Fields<'_>, phys: u64, header_offset: usize) -> Self {
        let (size, next) = fields.chunk(header_offset);
        Self {
            phys,
            data_offset: (header_offset + DATA_CHUNK_SIZE) as u64,
            size,
            next,
        }
    }
}

/// State of one command's parse: its slot group, flags and remaining data budget.
pub(crate) struct Ctx<'g, 'a> {
    pub(crate) guest: &'g Guest<'a>,
    pub(crate) group: u32,
    pub(crate) flags: u32,
    budget: Cell<u64>,
}

impl<'g, 'a> Ctx<'g, 'a> {
    pub(crate) fn new(guest: &'g Guest<'a>, group: u32, flags: u32) -> Self {
        Self {
            guest,
            group,
            flags,
            budget: Cell::new(guest.limits.max_command_bytes),
        }
    }

    pub(crate) fn limits(&self) -> &ParseLimits {
        &self.guest.limits
    }

    pub(crate) fn translate_at(
        &self,
        what: &'static str,
        phys: u64,
        offset: u64,
        len: u64,
    ) -> Result<u64, ParseError> {
        self.guest
            .slots
            .translate_at(phys, self.group, offset, len)
            .map_err(|source| ParseError::Slot { what, source })
    }

    fn read_host(&self, what: &'static str, host: u64, out: &mut [u8]) -> Result<(), ParseError> {
        self.guest
            .memory
            .read(host, out)
            .map_err(|source| ParseError::Memory { what, source })
    }

    fn read_host_append(
        &self,
        what: &'static str,
        host: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ParseError> {
        self.guest
            .memory
            .read_append(host, len, out)
            .map_err(|source| ParseError::Memory { what, source })
    }

    /// Translates and copies the `N`-byte structure at `phys`; returns its host address too.
    pub(crate) fn read_struct<const N: usize>(
        &self,
        what: &'static str,
        phys: u64,
    ) -> Result<(u64, [u8; N]), ParseError> {
        let host = self.translate_at(what, phys, 0, N as u64)?;
        let mut out = [0; N];
        self.read_host(what, host, &mut out)?;
        Ok((host, out))
    }

    /// Takes `n` bytes from the command's data budget.
    pub(crate) fn charge(&self, n: u64) -> Result<(), ParseError> {
        let remaining = self.budget.get();
        if n > remaining {
            return Err(ParseError::CommandBudget { needed: n, remaining });
        }
        self.budget.set(remaining - n);
        Ok(())
    }

    /// Copies `len` bytes starting `offset` bytes after `phys` (same slot) into a new buffer.
    pub(crate) fn read_vec_at(
        &self,
        what: &'static str,
        phys: u64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, ParseError> {
        let host = self.translate_at(what, phys, offset, len)?;
        let size = usize::try_from(len).map_err(|_| ParseError::too_large(what, len, usize::MAX as u64))?;
        self.charge(len)?;
        let mut out = Vec::new();
        if let Err(e) = self.read_host_append(what, host, size, &mut out) {
            // Nothing is kept: give the bytes back (a terminator scan may retry smaller).
            self.budget.set(self.budget.get() + len);
            return Err(e);
        }
        Ok(out)
    }

    /// Gathers a `QXLDataChunk` list starting at `head` into one buffer.
    ///
    /// Fails if the list holds more than `limit` bytes or more than
    /// [`ParseLimits::max_chunks`] chunks, visits a chunk twice (a loop), or
    /// any chunk (header and data) is outside its slot. Empty chunks are
    /// allowed and counted.
    pub(crate) fn gather(
        &self,
        what: &'static str,
        head: ChunkRef,
        limit: u64,
    ) -> Result<Vec<u8>, ParseError> {
        let max_chunks = self.limits().max_chunks;
        let mut out = Vec::new();
        let mut visited = HashSet::new();
        let mut chunks = 1u32;
        let mut cur = head;
        loop {
            let size = u64::from(cur.size);
            let total = out.len() as u64 + size;
            if total > limit {
                return Err(ParseError::too_large(what, total, limit));
            }
            let host = self.translate_at(what, cur.phys, cur.data_offset, size)?;
            self.charge(size)?;
            self.read_host_append(what, host, cur.size as usize, &mut out)?;
            if cur.next == 0 {
                return Ok(out);
            }
            chunks += 1;
            if chunks > max_chunks {
                return Err(ParseError::too_large(what, chunks.into(), max_chunks.into()));
            }
            let (host, header) = self.read_struct::<DATA_CHUNK_SIZE>(what, cur.next)?;
            if !visited.insert(host) {
                return Err(ParseError::ChunkLoop { what, addr: host });
            }
            let (size, next) = Fields(&header).chunk(0);
            cur = ChunkRef {
                phys: cur.next,
                data_offset: DATA_CHUNK_SIZE as u64,
                size,
                next,
            };
        }
    }

    /// Gathers the chunk list `head` that must hold exactly `data_size` bytes
    /// (the size its structure's header announces), at most
    /// [`ParseLimits::max_image_bytes`].
    pub(crate) fn gather_exact(
        &self,
        what: &'static str,
        head: ChunkRef,
        data_size: u32,
    ) -> Result<Vec<u8>, ParseError> {
        let size = u64::from(data_size);
        let limit = self.limits().max_image_bytes;
        if size > limit {
            return Err(ParseError::too_large(what, size, limit));
        }
        let data = self.gather(what, head, size)?;
        if data.len() as u64 != size {
            return Err(ParseError::SizeMismatch {
                what,
                expected: size,
                actual: data.len() as u64,
            });
        }
        Ok(data)
    }

    /// Checks `id` against [`ParseLimits::n_surfaces`].
    pub(crate) fn surface_id(&self, what: &'static str, id: u32) -> Result<u32, ParseError> {
        check_surface_id(&self.guest.limits, what, id)
    }
}

/// Checks `id` against [`ParseLimits::n_surfaces`].
pub(crate) fn check_surface_id(limits: &ParseLimits, what: &'static str, id: u32) -> Result<u32, ParseError> {
    if id >= limits.n_surfaces {
        return Err(ParseError::SurfaceId {
            what,
            id: id.into(),
            limit: limits.n_surfaces,
        });
    }
    Ok(id)
}
