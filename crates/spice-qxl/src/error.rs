//! Errors of guest memory access, memslot translation and command parsing.
//!
//! Every message is lowercase and names the offending field or value, so one
//! log line says what the guest got wrong.

/// A read of host memory failed.
///
/// [`MemSlots`](crate::MemSlots) has already checked the range against a slot, so
/// with real guest RAM this means the slot table does not match the mapping;
/// with [`FakeMemory`](crate::FakeMemory) it means the address is not backed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// Some of `[addr, addr + len)` is not backed by memory.
    #[error("host memory {addr:#x}+{len:#x} is not mapped")]
    Unmapped {
        /// First byte of the read.
        addr: u64,
        /// Length of the read.
        len: u64,
    },
}

/// A memslot operation or a `QXLPHYSICAL` translation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemSlotError {
    /// The configuration from `QXLDevInitInfo` is unusable.
    #[error("invalid memslot config {what}: {value}")]
    InvalidConfig {
        /// The field (`num_groups`, `num_slots`, `generation_bits`, `id_bits`).
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The slot group index is not below the number of groups.
    #[error("memslot group {group} out of range (num_groups {num_groups})")]
    GroupOutOfRange {
        /// The group asked for.
        group: u32,
        /// Number of groups configured.
        num_groups: u32,
    },
    /// The slot index is not below the number of slots.
    #[error("memslot slot id {slot} out of range (num_slots {num_slots})")]
    SlotOutOfRange {
        /// The slot asked for (from the address's id bits, or from the host).
        slot: u64,
        /// Number of slots per group configured.
        num_slots: u32,
    },
    /// The slot was never added, or has been removed.
    #[error("memslot group {group} slot {slot} is not active")]
    SlotNotActive {
        /// Group of the slot.
        group: u32,
        /// Index of the slot.
        slot: u32,
    },
    /// The address's generation bits do not match the slot's generation.
    #[error("address generation {found} does not match memslot {slot} generation {expected}")]
    WrongGeneration {
        /// Index of the slot.
        slot: u32,
        /// The slot's generation.
        expected: u32,
        /// The generation carried by the address.
        found: u64,
    },
    /// A slot being added has a generation that its generation bits cannot carry.
    #[error("memslot generation {generation} does not fit in {bits} generation bits")]
    GenerationTooLarge {
        /// The generation given.
        generation: u32,
        /// The configured number of generation bits.
        bits: u8,
    },
    /// A slot being added has `virt_start > virt_end`.
    #[error("memslot range {start:#x}..{end:#x} is inverted")]
    InvertedRange {
        /// `virt_start`.
        start: u64,
        /// `virt_end`.
        end: u64,
    },
    /// `addr + len` wraps around the address space.
    #[error("address range {addr:#x}+{len:#x} overflows")]
    Overflow {
        /// Host virtual address of the first byte.
        addr: u64,
        /// Length asked for.
        len: u64,
    },
    /// The range does not lie inside the slot.
    #[error("address range {addr:#x}+{len:#x} is outside memslot {start:#x}..{end:#x}")]
    OutOfRange {
        /// Host virtual address of the first byte.
        addr: u64,
        /// Length asked for.
        len: u64,
        /// The slot's `virt_start`.
        start: u64,
        /// The slot's `virt_end` (exclusive).
        end: u64,
    },
}

/// A guest structure was rejected.
///
/// `what` is the path of the field, for example `"drawable.copy.src_bitmap"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A guest pointer did not translate through the memslots.
    #[error("{what}: {source}")]
    Slot {
        /// The pointer's field.
        what: &'static str,
        /// Why the translation failed.
        source: MemSlotError,
    },
    /// Reading translated memory failed.
    #[error("{what}: {source}")]
    Memory {
        /// The field being read.
        what: &'static str,
        /// Why the read failed.
        source: MemoryError,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {what}: {value}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// The offending value (signed values are sign-extended, then reinterpreted).
        value: u64,
    },
    /// A valid value this implementation does not handle.
    #[error("unsupported {what}: {value}")]
    Unsupported {
        /// The field.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A size or count exceeds a limit of [`ParseLimits`](crate::ParseLimits).
    #[error("{what} too large: {value} exceeds limit {limit}")]
    TooLarge {
        /// The field or the quantity derived from fields.
        what: &'static str,
        /// The value received or computed.
        value: u64,
        /// The largest accepted value.
        limit: u64,
    },
    /// Two sizes that must agree do not.
    #[error("{what} size mismatch: expected {expected}, got {actual}")]
    SizeMismatch {
        /// The data being sized.
        what: &'static str,
        /// The size the headers imply.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A rectangle is inverted or outside what it must lie in.
    #[error("invalid {what}: top {top} left {left} bottom {bottom} right {right}")]
    InvalidRect {
        /// The field.
        what: &'static str,
        /// `top`.
        top: i32,
        /// `left`.
        left: i32,
        /// `bottom`.
        bottom: i32,
        /// `right`.
        right: i32,
    },
    /// A `QXLDataChunk` list points back at a chunk already visited.
    #[error("{what} chunk list loops at {addr:#x}")]
    ChunkLoop {
        /// The data being gathered.
        what: &'static str,
        /// Host address of the repeated chunk.
        addr: u64,
    },
    /// A surface id is outside `0..n_surfaces`.
    #[error("{what} surface id {id} out of range (n_surfaces {limit})")]
    SurfaceId {
        /// The field.
        what: &'static str,
        /// The id (negative ids are shown as their `i64` value).
        id: i64,
        /// The configured number of surfaces.
        limit: u32,
    },
    /// The command asked for the qxl-1 `QXLCompatDrawable` layout.
    #[error("qxl-1 compat drawable layout (QXL_COMMAND_FLAG_COMPAT) is not supported")]
    CompatDrawable,
    /// The per-command data budget ([`ParseLimits::max_command_bytes`](crate::ParseLimits)) ran out.
    #[error("command data too large: {needed} more bytes with {remaining} of the budget left")]
    CommandBudget {
        /// Bytes the next field needs.
        needed: u64,
        /// Bytes left in the budget.
        remaining: u64,
    },
}

impl ParseError {
    pub(crate) fn invalid(what: &'static str, value: impl Into<u64>) -> Self {
        ParseError::Invalid {
            what,
            value: value.into(),
        }
    }

    pub(crate) fn unsupported(what: &'static str, value: impl Into<u64>) -> Self {
        ParseError::Unsupported {
            what,
            value: value.into(),
        }
    }

    pub(crate) fn too_large(what: &'static str, value: u64, limit: u64) -> Self {
        ParseError::TooLarge { what, value, limit }
    }
}
