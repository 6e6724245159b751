//! `QXL_DRAW_COMPOSITE`: `QXLComposite`, a Render-style composite of a source
//! and an optional mask image onto the target.
//!
//! Layout (packed, `spice/qxl_dev.h`): `QXLComposite { u32 flags; QXLPHYSICAL
//! src, src_transform, mask, mask_transform; QXLPoint16 src_origin,
//! mask_origin }` (44 bytes); `QXLTransform` is six `u32`s.

use super::draw::src_image;
use crate::error::ParseError;
use crate::guest::Ctx;
use crate::image::{parse_image, Image};
use crate::layout::Fields;

/// `sizeof(QXLTransform)`.
const TRANSFORM_SIZE: usize = 24;

/// A `QXLTransform`: `t00 t01 t02 t10 t11 t12`, each a signed 16.16 fixed
/// point value carried in a `u32`, mapping destination to source coordinates
/// (pixman's affine matrix, the last row being `0 0 1`).
pub type Transform = [u32; 6];

/// `SPICE_COMPOSITE_*` bits of [`Composite::flags`] (`spice/enums.h`).
pub mod composite_flags {
    /// The `QXLOperator` (`QXL_OP_*`, pixman's operators) in bits 0–7.
    pub const OP_MASK: u32 = 0xff;
    /// Shift of the source filter (`SPICE_COMPOSITE_SRC_FILTER0`), 3 bits.
    pub const SRC_FILTER_SHIFT: u32 = 8;
    /// Shift of the mask filter (`SPICE_COMPOSITE_MASK_FILTER0`), 3 bits.
    pub const MASK_FILTER_SHIFT: u32 = 11;
    /// Shift of the source repeat (`SPICE_COMPOSITE_SRC_REPEAT0`), 2 bits.
    pub const SRC_REPEAT_SHIFT: u32 = 14;
    /// Shift of the mask repeat (`SPICE_COMPOSITE_MASK_REPEAT0`), 2 bits.
    pub const MASK_REPEAT_SHIFT: u32 = 16;
    /// `SPICE_COMPOSITE_COMPONENT_ALPHA`: the mask is per channel.
    pub const COMPONENT_ALPHA: u32 = 1 << 18;
    /// `SPICE_COMPOSITE_HAS_MASK`: set by the server on the wire, not by the guest.
    pub const HAS_MASK: u32 = 1 << 19;
    /// `SPICE_COMPOSITE_HAS_SRC_TRANSFORM`: set by the server on the wire.
    pub const HAS_SRC_TRANSFORM: u32 = 1 << 20;
    /// `SPICE_COMPOSITE_HAS_MASK_TRANSFORM`: set by the server on the wire.
    pub const HAS_MASK_TRANSFORM: u32 = 1 << 21;
    /// `SPICE_COMPOSITE_SOURCE_OPAQUE`: the source's alpha is all 0xff.
    pub const SOURCE_OPAQUE: u32 = 1 << 22;
    /// `SPICE_COMPOSITE_MASK_OPAQUE`: the mask's alpha is all 0xff.
    pub const MASK_OPAQUE: u32 = 1 << 23;
    /// `SPICE_COMPOSITE_DEST_OPAQUE`: the destination's alpha is all 0xff.
    pub const DEST_OPAQUE: u32 = 1 << 24;
    /// `SPICE_COMPOSITE_FLAGS_MASK`: every defined bit.
    pub const FLAGS_MASK: u32 = 0x1ff_ffff;
    /// `0` (pixman `PIXMAN_FILTER_NEAREST`) as a filter value.
    pub const FILTER_NEAREST: u8 = 0;
    /// `1` (pixman `PIXMAN_FILTER_BILINEAR`) as a filter value.
    pub const FILTER_BILINEAR: u8 = 1;
    /// `0` (pixman `PIXMAN_REPEAT_NONE`) as a repeat value.
    pub const REPEAT_NONE: u8 = 0;
    /// `1` (pixman `PIXMAN_REPEAT_NORMAL`) as a repeat value.
    pub const REPEAT_NORMAL: u8 = 1;
    /// `2` (pixman `PIXMAN_REPEAT_PAD`) as a repeat value.
    pub const REPEAT_PAD: u8 = 2;
    /// `3` (pixman `PIXMAN_REPEAT_REFLECT`) as a repeat value.
    pub const REPEAT_REFLECT: u8 = 3;
}

/// `QXLComposite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composite {
    /// The guest's flags, raw (see [`composite_flags`] and the accessors);
    /// [`Composite::spice_flags`] gives what goes on the wire.
    pub flags: u32,
    /// Source image (required).
    pub src: Image,
    /// Source transform, when the guest gave one.
    pub src_transform: Option<Transform>,
    /// Mask image (an ordinary image, not a `QXLQMask`), when the guest gave one.
    pub mask: Option<Image>,
    /// Mask transform; only read when there is a mask (as in the C server).
    pub mask_transform: Option<Transform>,
    /// `QXLPoint16 src_origin`: `(x, y)`.
    pub src_origin: (i16, i16),
    /// `QXLPoint16 mask_origin`: `(x, y)`.
    pub mask_origin: (i16, i16),
}

impl Composite {
    /// The operator, `QXL_OP_*` (pixman's `PIXMAN_OP_*` values), not validated.
    pub fn op(&self) -> u8 {
        (self.flags & composite_flags::OP_MASK) as u8
    }

    /// The source filter (see [`composite_flags::FILTER_NEAREST`]), 0–7.
    pub fn src_filter(&self) -> u8 {
        (self.flags >> composite_flags::SRC_FILTER_SHIFT & 7) as u8
    }

    /// The mask filter, 0–7.
    pub fn mask_filter(&self) -> u8 {
        (self.flags >> composite_flags::MASK_FILTER_SHIFT & 7) as u8
    }

    /// The source repeat (see [`composite_flags::REPEAT_NONE`]), 0–3.
    pub fn src_repeat(&self) -> u8 {
        (self.flags >> composite_flags::SRC_REPEAT_SHIFT & 3) as u8
    }

    /// The mask repeat, 0–3.
    pub fn mask_repeat(&self) -> u8 {
        (self.flags >> composite_flags::MASK_REPEAT_SHIFT & 3) as u8
    }

    /// Whether the mask applies per colour channel.
    pub fn component_alpha(&self) -> bool {
        self.flags & composite_flags::COMPONENT_ALPHA != 0
    }

    /// Whether the guest says the source is opaque.
    pub fn source_opaque(&self) -> bool {
        self.flags & composite_flags::SOURCE_OPAQUE != 0
    }

    /// Whether the guest says the mask is opaque.
    pub fn mask_opaque(&self) -> bool {
        self.flags & composite_flags::MASK_OPAQUE != 0
    }

    /// Whether the guest says the destination is opaque.
    pub fn dest_opaque(&self) -> bool {
        self.flags & composite_flags::DEST_OPAQUE != 0
    }

    /// The flags of `SpiceComposite` on the wire: the guest's defined bits,
    /// with the `HAS_*` bits set from what was actually parsed (a guest's own
    /// `HAS_*` bits are dropped so they cannot claim a missing mask).
    pub fn spice_flags(&self) -> u32 {
        use self::composite_flags as c;
        let mut flags =
            self.flags & c::FLAGS_MASK & !(c::HAS_MASK | c::HAS_SRC_TRANSFORM | c::HAS_MASK_TRANSFORM);
        if self.mask.is_some() {
            flags |= c::HAS_MASK;
        }
        if self.src_transform.is_some() {
            flags |= c::HAS_SRC_TRANSFORM;
        }
        if self.mask_transform.is_some() {
            flags |= c::HAS_MASK_TRANSFORM;
        }
        flags
    }
}

/// Parses the `QXLComposite` of the draw-type union `u`.
pub(super) fn parse(ctx: &Ctx<'_, '_>, u: Fields<'_>) -> Result<Composite, ParseError> {
    let src = src_image(ctx, "drawable.composite.src", u.u64(4))?;
    let src_transform = transform(ctx, "drawable.composite.src_transform", u.u64(12))?;
    let (mask, mask_transform) = match u.u64(20) {
        0 => (None, None),
        // A composite mask is a full image: palette formats need their palette.
        phys => (
            Some(parse_image(ctx, "drawable.composite.mask", phys, false)?),
            transform(ctx, "drawable.composite.mask_transform", u.u64(28))?,
        ),
    };
    Ok(Composite {
        flags: u.u32(0),
        src,
        src_transform,
        mask,
        mask_transform,
        src_origin: (u.i16(36), u.i16(38)),
        mask_origin: (u.i16(40), u.i16(42)),
    })
}

/// The `QXLTransform` at `phys`, `None` for a null pointer.
///
/// A pointer that does not translate is refused; the C server would silently
/// draw untransformed, which hides a guest bug behind wrong pixels.
fn transform(ctx: &Ctx<'_, '_>, what: &'static str, phys: u64) -> Result<Option<Transform>, ParseError> {
    if phys == 0 {
        return Ok(None);
    }
    let (_, raw) = ctx.read_struct::<TRANSFORM_SIZE>(what, phys)?;
    let f = Fields(&raw);
    Ok(Some(std::array::from_fn(|i| f.u32(4 * i))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn composite(flags: u32) -> Composite {
        Composite {
            flags,
            src: Image::Surface { surface_id: 0 },
            src_transform: None,
            mask: None,
            mask_transform: None,
            src_origin: (0, 0),
            mask_origin: (0, 0),
        }
    }

    #[test]
    fn flag_accessors() {
        use self::composite_flags as c;
        // OVER, bilinear source, pad mask filter 2, reflect source, normal mask.
        let flags = 3 | 1 << 8 | 2 << 11 | 3 << 14 | 1 << 16 | c::COMPONENT_ALPHA | c::DEST_OPAQUE;
        let comp = composite(flags);
        assert_eq!(comp.op(), 3);
        assert_eq!(comp.src_filter(), c::FILTER_BILINEAR);
        assert_eq!(comp.mask_filter(), 2);
        assert_eq!(comp.src_repeat(), c::REPEAT_REFLECT);
        assert_eq!(comp.mask_repeat(), c::REPEAT_NORMAL);
        assert!(comp.component_alpha() && comp.dest_opaque());
        assert!(!comp.source_opaque() && !comp.mask_opaque());
        let all = composite(u32::MAX);
        assert_eq!((all.op(), all.src_filter(), all.mask_filter()), (0xff, 7, 7));
        assert_eq!((all.src_repeat(), all.mask_repeat()), (3, 3));
    }

    #[test]
    fn wire_flags_say_what_was_parsed() {
        use self::composite_flags as c;
        let lying = composite(u32::MAX);
        assert_eq!(
            lying.spice_flags(),
            c::FLAGS_MASK & !(c::HAS_MASK | c::HAS_SRC_TRANSFORM | c::HAS_MASK_TRANSFORM)
        );
        let full = Composite {
            src_transform: Some([1 << 16, 0, 0, 0, 1 << 16, 0]),
            mask: Some(Image::Surface { surface_id: 1 }),
            mask_transform: Some([0; 6]),
            ..composite(12)
        };
        assert_eq!(
            full.spice_flags(),
            12 | c::HAS_MASK | c::HAS_SRC_TRANSFORM | c::HAS_MASK_TRANSFORM
        );
    }
}
