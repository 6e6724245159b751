//! QXL commands (`QXLCommandExt`) parsed into owned values.
//!
//! [`parse_command`] is the entry point. It copies the command structure once,
//! then follows its pointers (images, palettes, chunk lists, clip rects), each
//! through the memslots and within [`ParseLimits`](crate::ParseLimits).

mod composite;
mod cursor;
mod draw;
mod stroke;
mod surface;
mod text;

pub use composite::{composite_flags, Composite, Transform};
pub use cursor::{cursor_type, CursorCommand, CursorShape};
pub use draw::{
    draw_type, AlphaBlend, Blend, Brush, Clip, CopyOp, DrawOp, Drawable, Fill, Mask, Opaque, Rop3,
    Transparent,
};
pub use stroke::{line_flags, path_flags, LineAttr, PathSegment, PointFix, Stroke};
pub use surface::{SurfaceCommand, UpdateCommand};
pub use text::{string_flags, Glyph, Text};

use crate::error::ParseError;
use crate::guest::{Ctx, Guest};

/// `QXL_CMD_NOP`.
pub const QXL_CMD_NOP: u32 = 0;
/// `QXL_CMD_DRAW`: a `QXLDrawable`.
pub const QXL_CMD_DRAW: u32 = 1;
/// `QXL_CMD_UPDATE`: a `QXLUpdateCmd`.
pub const QXL_CMD_UPDATE: u32 = 2;
/// `QXL_CMD_CURSOR`: a `QXLCursorCmd`.
pub const QXL_CMD_CURSOR: u32 = 3;
/// `QXL_CMD_MESSAGE`: a `QXLMessage`.
pub const QXL_CMD_MESSAGE: u32 = 4;
/// `QXL_CMD_SURFACE`: a `QXLSurfaceCmd`.
pub const QXL_CMD_SURFACE: u32 = 5;

/// `QXL_COMMAND_FLAG_COMPAT`: the drawable uses the qxl-1 `QXLCompatDrawable` layout.
pub const QXL_COMMAND_FLAG_COMPAT: u32 = 1;
/// `QXL_COMMAND_FLAG_COMPAT_16BPP`: palettes and solid colours are 16-bit 555.
pub const QXL_COMMAND_FLAG_COMPAT_16BPP: u32 = 2;

/// `QXLRect`: edges in pixels, `bottom` and `right` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// First row.
    pub top: i32,
    /// First column.
    pub left: i32,
    /// Row past the last.
    pub bottom: i32,
    /// Column past the last.
    pub right: i32,
}

impl Rect {
    /// Whether `left <= right` and `top <= bottom`.
    pub fn is_ordered(&self) -> bool {
        self.left <= self.right && self.top <= self.bottom
    }

    /// Whether the rectangle is ordered and inside `[0, width) × [0, height)`.
    pub fn is_within(&self, width: u32, height: u32) -> bool {
        self.is_ordered()
            && self.left >= 0
            && self.top >= 0
            && i64::from(self.right) <= i64::from(width)
            && i64::from(self.bottom) <= i64::from(height)
    }

    /// `right - left`, or 0 if not ordered.
    pub fn width(&self) -> u32 {
        (i64::from(self.right) - i64::from(self.left)).clamp(0, u32::MAX.into()) as u32
    }

    /// `bottom - top`, or 0 if not ordered.
    pub fn height(&self) -> u32 {
        (i64::from(self.bottom) - i64::from(self.top)).clamp(0, u32::MAX.into()) as u32
    }
}

/// `QXLPoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Point {
    /// Column.
    pub x: i32,
    /// Row.
    pub y: i32,
}

/// `QXLCommandExt`, as returned by `QXLInterface.get_command`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandExt {
    /// `cmd.data`: the `QXLPHYSICAL` of the command structure.
    pub data: u64,
    /// `cmd.type`: one of the `QXL_CMD_*` values.
    pub cmd_type: u32,
    /// Memslot group the command's pointers belong to.
    pub group_id: u32,
    /// `QXL_COMMAND_FLAG_*`.
    pub flags: u32,
}

/// A parsed command, owning all its data.
// A command is built once and moved to its consumer; boxing the drawable
// would cost an allocation per command for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `QXL_CMD_NOP`.
    Nop,
    /// `QXL_CMD_DRAW`.
    Draw(Drawable),
    /// `QXL_CMD_UPDATE` (legacy: render an area, then `notify_update(update_id)`).
    Update(UpdateCommand),
    /// `QXL_CMD_CURSOR`.
    Cursor(CursorCommand),
    /// `QXL_CMD_MESSAGE`: the guest's log text, without its terminating NUL.
    Message(Vec<u8>),
    /// `QXL_CMD_SURFACE`.
    Surface(SurfaceCommand),
}

/// What to hand back to the device once the command is no longer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// Host virtual address of the command's `QXLReleaseInfo` (its first field):
    /// the `info` of the `QXLReleaseInfoExt` passed to `release_resource`.
    pub addr: u64,
    /// The command's memslot group.
    pub group_id: u32,
}

/// The outcome of [`parse_command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The command, or why it was rejected.
    pub command: Result<Command, ParseError>,
    /// `Some` whenever the top-level command structure translated, even if the
    /// command was then rejected, so the caller releases it exactly once.
    /// `None` when the command pointer is outside every memslot (QEMU would
    /// dereference it), for `QXL_CMD_NOP` (no structure) and for unknown types.
    pub release: Option<ReleaseInfo>,
}

/// Parses one command.
///
/// `release` is `Some` whenever the top-level command structure itself
/// translated, so the caller can release it exactly once even if the command
/// is rejected; it is `None` only when there is nothing that may be released
/// (see [`Parsed::release`]).
pub fn parse_command(guest: &Guest<'_>, ext: &CommandExt) -> Parsed {
    let ctx = Ctx::new(guest, ext.group_id, ext.flags);
    let result = match ext.cmd_type {
        QXL_CMD_NOP => {
            return Parsed {
                command: Ok(Command::Nop),
                release: None,
            }
        }
        QXL_CMD_DRAW => draw::parse(&ctx, ext.data).map(|(h, r)| (h, r.map(Command::Draw))),
        QXL_CMD_UPDATE => surface::parse_update(&ctx, ext.data).map(|(h, r)| (h, r.map(Command::Update))),
        QXL_CMD_CURSOR => cursor::parse(&ctx, ext.data).map(|(h, r)| (h, r.map(Command::Cursor))),
        QXL_CMD_MESSAGE => parse_message(&ctx, ext.data).map(|(h, r)| (h, r.map(Command::Message))),
        QXL_CMD_SURFACE => surface::parse_surface(&ctx, ext.data).map(|(h, r)| (h, r.map(Command::Surface))),
        other => Err(ParseError::unsupported("command type", other)),
    };
    match result {
        Ok((addr, command)) => Parsed {
            command,
            release: Some(ReleaseInfo {
                addr,
                group_id: ext.group_id,
            }),
        },
        Err(e) => Parsed {
            command: Err(e),
            release: None,
        },
    }
}

/// What a per-type parser returns: `Err` when the top-level structure did not
/// translate (nothing to release), otherwise its host address and the result.
pub(crate) type TopLevel<T> = Result<(u64, Result<T, ParseError>), ParseError>;

/// `sizeof(QXLMessage)`: just the release info; the text follows.
const MESSAGE_SIZE: usize = 8;
/// Message text is read at most up to the next multiple of this host address:
/// memory protection is page-granular, so a read never touches a page past
/// the one holding the terminator (the host group's slot spans the whole
/// address space, where the next page may be unmapped).
const PAGE: u64 = 4096;

fn parse_message(ctx: &Ctx<'_, '_>, phys: u64) -> TopLevel<Vec<u8>> {
    let (host, _) = ctx.read_struct::<MESSAGE_SIZE>("message", phys)?;
    Ok((host, message_text(ctx, phys)))
}

/// The NUL-terminated text after the `QXLMessage` header, within its slot and
/// [`ParseLimits::max_message_len`](crate::ParseLimits).
fn message_text(ctx: &Ctx<'_, '_>, phys: u64) -> Result<Vec<u8>, ParseError> {
    let what = "message text";
    let off = MESSAGE_SIZE as u64;
    let available = ctx
        .guest
        .slots
        .available_at(phys, ctx.group, off)
        .map_err(|source| ParseError::Slot { what, source })?;
    let max = u64::from(ctx.limits().max_message_len).min(available);
    let mut text = Vec::new();
    let mut pos = 0u64;
    while pos < max {
        let host = ctx.translate_at(what, phys, off + pos, 1)?;
        let n = (PAGE - host % PAGE).min(max - pos);
        // FakeMemory need not end on a page boundary: on failure, fall back to single bytes.
        let block = match ctx.read_vec_at(what, phys, off + pos, n) {
            Ok(block) => block,
            Err(_) if n > 1 => ctx.read_vec_at(what, phys, off + pos, 1)?,
            Err(e) => return Err(e),
        };
        if let Some(nul) = block.iter().position(|&b| b == 0) {
            text.extend_from_slice(&block[..nul]);
            return Ok(text);
        }
        pos += block.len() as u64;
        text.extend_from_slice(&block);
    }
    Err(ParseError::invalid(
        "message text without nul terminator, bytes scanned",
        max,
    ))
}
