//! `QXLMonitorsConfig`, read for `monitors_config_async`.

use crate::error::ParseError;
use crate::guest::Guest;
use crate::layout::Fields;

/// `sizeof(QXLMonitorsConfig)` without heads: `u16 count; u16 max_allowed`.
const HEADER_SIZE: usize = 4;
/// `sizeof(QXLHead)`.
const HEAD_SIZE: usize = 28;

/// One `QXLHead`: a monitor output backed by a surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Monitor index.
    pub id: u32,
    /// The surface shown (raw, not checked).
    pub surface_id: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Left edge on the surface.
    pub x: u32,
    /// Top edge on the surface.
    pub y: u32,
    /// `QXLHead` flags.
    pub flags: u32,
}

/// Reads `QXLMonitorsConfig {u16 count, u16 max_allowed, QXLHead heads[count]}`.
///
/// The header is copied once and only the copy is used (CVE-2015-3247 was
/// reading `count` twice). Rejects `count == 0` and `count > max_allowed`
/// (as the C server does, also when `max_allowed` is 0), and requires all
/// `count` heads to translate. Returns `min(max_allowed, limit)` and the first
/// `min(count, limit)` heads.
pub fn read_monitors_config(
    guest: &Guest<'_>,
    phys: u64,
    group: u32,
    limit: usize,
) -> Result<(u16, Vec<Head>), ParseError> {
    let mut header = [0u8; HEADER_SIZE];
    guest.read_into(phys, group, &mut header)?;
    let f = Fields(&header);
    let (count, max_allowed) = (f.u16(0), f.u16(2));
    if count == 0 {
        return Err(ParseError::invalid("monitors config count", count));
    }
    if count > max_allowed {
        return Err(ParseError::too_large(
            "monitors config count (over max_allowed)",
            count.into(),
            max_allowed.into(),
        ));
    }
    let total = HEADER_SIZE as u64 + u64::from(count) * HEAD_SIZE as u64;
    guest
        .slots
        .translate(phys, group, total)
        .map_err(|source| ParseError::Slot {
            what: "monitors config heads",
            source,
        })?;
    let kept = usize::from(count).min(limit);
    let mut heads = vec![0u8; kept * HEAD_SIZE];
    let host = guest
        .slots
        .translate_at(phys, group, HEADER_SIZE as u64, heads.len() as u64)
        .map_err(|source| ParseError::Slot {
            what: "monitors config heads",
            source,
        })?;
    guest
        .memory
        .read(host, &mut heads)
        .map_err(|source| ParseError::Memory {
            what: "monitors config heads",
            source,
        })?;
    let heads = heads
        .chunks_exact(HEAD_SIZE)
        .map(|h| {
            let h = Fields(h);
            Head {
                id: h.u32(0),
                surface_id: h.u32(4),
                width: h.u32(8),
                height: h.u32(12),
                x: h.u32(16),
                y: h.u32(20),
                flags: h.u32(24),
            }
        })
        .collect();
    let max_allowed = usize::from(max_allowed).min(limit) as u16;
    Ok((max_allowed, heads))
}
