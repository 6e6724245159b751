//! The guest-facing side of a SPICE QXL device, with no I/O, no threads and no `unsafe`.
//!
//! A QXL device (QEMU's `qxl`, or its simple display for `-vga std` and
//! virtio-gpu) hands the server `QXLCommandExt`s that point into guest memory.
//! This crate turns them into owned Rust values:
//!
//! - [`MemSlots`] translates `QXLPHYSICAL` addresses into host addresses,
//!   checking group, slot, generation and range;
//! - [`GuestMemory`] reads host memory (the C ABI layer implements it over
//!   raw pointers; [`FakeMemory`] serves tests and fuzzing);
//! - [`parse_command`] copies a command and everything it references out of
//!   guest memory exactly once, within [`ParseLimits`], and reports the
//!   release information even for rejected commands;
//! - [`read_monitors_config`] and [`validate_primary`] cover the other guest
//!   and host structures the device passes in;
//! - [`RingPoller`] decides when to look at a command ring (the notification
//!   handshake, with a periodic look so a lost wakeup never hangs a guest).
//!
//! Every guest-controlled size and count is checked before it is used, so
//! any guest memory yields a value or a [`ParseError`] naming the field.

pub mod command;
pub mod error;
pub mod fuzzing;
pub mod guest;
pub mod image;
mod layout;
pub mod memory;
pub mod memslot;
pub mod monitors;
pub mod ring;
pub mod surface;
pub mod testkit;

pub use command::{
    parse_command, AlphaBlend, Blend, Brush, Clip, Command, CommandExt, Composite, CopyOp, CursorCommand,
    CursorShape, DrawOp, Drawable, Fill, Glyph, LineAttr, Mask, Opaque, Parsed, PathSegment, Point, PointFix,
    Rect, ReleaseInfo, Rop3, Stroke, SurfaceCommand, Text, Transform, Transparent, UpdateCommand,
};
pub use error::{MemSlotError, MemoryError, ParseError};
pub use guest::{Guest, ParseLimits};
pub use image::{Bitmap, GuestRows, Image};
pub use memory::{FakeMemory, GuestMemory};
pub use memslot::{MemSlot, MemSlotConfig, MemSlots};
pub use monitors::{read_monitors_config, Head};
pub use ring::{Empty, RingPoller};
pub use surface::{translate_primary, validate_primary, PrimarySurface};
