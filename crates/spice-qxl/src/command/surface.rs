//! `QXL_CMD_SURFACE` (`QXLSurfaceCmd`) and `QXL_CMD_UPDATE` (`QXLUpdateCmd`).

use super::{Rect, TopLevel};
use crate::error::ParseError;
use crate::guest::Ctx;
use crate::layout::Fields;
use crate::surface::surface_size;

/// `sizeof(QXLSurfaceCmd)`.
const SURFACE_CMD_SIZE: usize = 41;
/// `sizeof(QXLUpdateCmd)`.
const UPDATE_CMD_SIZE: usize = 32;

/// A parsed `QXLSurfaceCmd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurfaceCommand {
    /// `QXL_SURFACE_CMD_CREATE`: an off-screen surface in guest memory.
    Create {
        /// Below [`ParseLimits::n_surfaces`](crate::ParseLimits).
        surface_id: u32,
        /// `SPICE_SURFACE_FMT_*`, one of those [`validate_primary`](crate::validate_primary) accepts.
        format: u32,
        /// Width in pixels, non-zero.
        width: u32,
        /// Height in pixels, non-zero.
        height: u32,
        /// Bytes between rows; negative for bottom-up. `|stride|` holds a row.
        stride: i32,
        /// `QXLPHYSICAL` of the lowest byte; `height * |stride|` bytes there translate.
        data: u64,
        /// `QXL_SURF_FLAG_*`.
        flags: u32,
    },
    /// `QXL_SURFACE_CMD_DESTROY`.
    Destroy {
        /// Below [`ParseLimits::n_surfaces`](crate::ParseLimits).
        surface_id: u32,
    },
}

/// A parsed `QXLUpdateCmd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateCommand {
    /// Area to render.
    pub area: Rect,
    /// Passed back to `notify_update`.
    pub update_id: u32,
    /// Below [`ParseLimits::n_surfaces`](crate::ParseLimits).
    pub surface_id: u32,
}

pub(crate) fn parse_update(ctx: &Ctx<'_, '_>, phys: u64) -> TopLevel<UpdateCommand> {
    let (host, raw) = ctx.read_struct::<UPDATE_CMD_SIZE>("update command", phys)?;
    let f = Fields(&raw);
    let parsed = ctx
        .surface_id("update command surface_id", f.u32(28))
        .map(|surface_id| UpdateCommand {
            area: f.rect(8),
            update_id: f.u32(24),
            surface_id,
        });
    Ok((host, parsed))
}

pub(crate) fn parse_surface(ctx: &Ctx<'_, '_>, phys: u64) -> TopLevel<SurfaceCommand> {
    let (host, raw) = ctx.read_struct::<SURFACE_CMD_SIZE>("surface command", phys)?;
    Ok((host, surface(ctx, Fields(&raw))))
}

fn surface(ctx: &Ctx<'_, '_>, f: Fields<'_>) -> Result<SurfaceCommand, ParseError> {
    let surface_id = ctx.surface_id("surface command surface_id", f.u32(8))?;
    match f.u8(12) {
        0 => {
            let (format, width, height, stride, data) =
                (f.u32(17), f.u32(21), f.u32(25), f.i32(29), f.u64(33));
            let size = surface_size(width, height, stride, format)?;
            ctx.translate_at("surface command data", data, 0, size)?;
            Ok(SurfaceCommand::Create {
                surface_id,
                format,
                width,
                height,
                stride,
                data,
                flags: f.u32(13),
            })
        }
        1 => Ok(SurfaceCommand::Destroy { surface_id }),
        other => Err(ParseError::invalid("surface command type", other)),
    }
}
