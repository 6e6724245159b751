//! The LZ decoder: bounded, and strict where spice-common is fatal.

use super::{DecodedImage, Header, LzImageType, CODEC, HEADER_LEN, MAX_NEAR_DISTANCE};
use crate::{CodecError, DecodeLimits};

fn corrupt(what: &'static str) -> CodecError {
    CodecError::Corrupt { codec: CODEC, what }
}

/// Decodes a complete LZ stream (header included) of any type.
///
/// Checks the header as spice-common does, rejects images of more than
/// `limits.max_pixels` pixels, and rejects a stream too short to code its
/// image (no token codes more than 255 units per byte) before allocating.
/// Any token that reaches before the image's start or past its end, a
/// truncated stream and bytes left after the last pass are errors. Work is
/// linear in the image size.
pub fn decode(stream: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, CodecError> {
    let header = Header::parse(stream)?;
    let pixels = u64::from(header.width) * u64::from(header.height);
    if pixels > limits.max_pixels {
        return Err(CodecError::TooLarge {
            codec: CODEC,
            width: header.width,
            height: header.height,
        });
    }
    let units = header.units();
    let body = &stream[HEADER_LEN..];
    let passes = if header.kind == LzImageType::Rgba { 2 } else { 1 };
    if units.saturating_mul(passes) > (body.len() as u64).saturating_mul(255) {
        return Err(corrupt("stream too short for the image"));
    }
    // Bounded by limits.max_pixels (palette units never exceed the pixels
    // by more than one byte per row).
    let units = usize::try_from(units).map_err(|_| corrupt("image too large"))?;
    let mut input = Input { data: body, pos: 0 };
    let (stride, data) = match header.kind {
        LzImageType::Rgb32 | LzImageType::Rgb24 => {
            let mut out = vec![0u8; units * 4];
            pixel_pass(&mut input, &mut out, Literal::Rgb24)?;
            (header.width as usize * 4, out)
        }
        LzImageType::Rgb16 => {
            let mut out = vec![0u8; units * 4];
            pixel_pass(&mut input, &mut out, Literal::Rgb16)?;
            (header.width as usize * 4, out)
        }
        LzImageType::Rgba => {
            let mut out = vec![0u8; units * 4];
            pixel_pass(&mut input, &mut out, Literal::Rgb24)?;
            byte_pass::<4, 3>(&mut input, &mut out)?;
            (header.width as usize * 4, out)
        }
        LzImageType::Xxxa => {
            let mut out = vec![0u8; units * 4];
            byte_pass::<4, 3>(&mut input, &mut out)?;
            (header.width as usize * 4, out)
        }
        LzImageType::A8 => {
            let mut out = vec![0u8; units];
            byte_pass::<1, 0>(&mut input, &mut out)?;
            (header.width as usize, out)
        }
        _ => {
            let mut out = vec![0u8; units];
            byte_pass::<1, 0>(&mut input, &mut out)?;
            (header.stride as usize, out)
        }
    };
    if input.pos != body.len() {
        return Err(corrupt("bytes after the image"));
    }
    Ok(DecodedImage { header, stride, data })
}

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    #[inline]
    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self.data.get(self.pos).ok_or(corrupt("truncated stream"))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let s = self
            .data
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(corrupt("truncated stream"))?;
        self.pos += n;
        Ok(s)
    }
}

/// A decoded back-reference: `len` units starting `distance` units back.
struct Reference {
    len: usize,
    distance: usize,
}

/// Reads the rest of a reference token whose control byte is `ctrl`
/// (`>= 32`); `len_add` is 0 for RGB24/32, 1 for RGB16, 2 for byte units.
#[inline]
fn reference(input: &mut Input, ctrl: u8, len_add: usize) -> Result<Reference, CodecError> {
    let mut len = usize::from(ctrl >> 5);
    if len == 7 {
        loop {
            let code = input.byte()?;
            len = len.saturating_add(usize::from(code));
            if code != 255 {
                break;
            }
        }
    }
    let high = usize::from(ctrl & 31);
    let code = input.byte()?;
    let mut distance = (high << 8) + usize::from(code);
    if code == 255 && high == 31 {
        let hi = usize::from(input.byte()?);
        let lo = usize::from(input.byte()?);
        distance = ((hi << 8) | lo) + MAX_NEAR_DISTANCE;
    }
    Ok(Reference {
        len: len + len_add,
        distance: distance + 1,
    })
}

#[derive(Clone, Copy)]
enum Literal {
    /// B, G, R.
    Rgb24,
    /// x1r5g5b5, high byte first.
    Rgb16,
}

/// One pass over 32-bit pixels: literals set B, G, R and clear the pad byte,
/// references copy whole pixels.
fn pixel_pass(input: &mut Input, out: &mut [u8], literal: Literal) -> Result<(), CodecError> {
    let n = out.len() / 4;
    let len_add = match literal {
        Literal::Rgb24 => 0,
        Literal::Rgb16 => 1,
    };
    let mut op = 0usize;
    while op < n {
        let ctrl = input.byte()?;
        if ctrl >= 32 {
            let r = reference(input, ctrl, len_add)?;
            if r.distance > op {
                return Err(corrupt("reference before the image"));
            }
            if r.len > n - op {
                return Err(corrupt("reference past the image"));
            }
            let from = op - r.distance;
            if r.distance >= r.len {
                out.copy_within(from * 4..(from + r.len) * 4, op * 4);
            } else {
                for i in 0..r.len {
                    out.copy_within((from + i) * 4..(from + i) * 4 + 4, (op + i) * 4);
                }
            }
            op += r.len;
        } else {
            let count = usize::from(ctrl) + 1;
            if count > n - op {
                return Err(corrupt("literals past the image"));
            }
            let dst = &mut out[op * 4..(op + count) * 4];
            match literal {
                Literal::Rgb24 => {
                    let src = input.take(count * 3)?;
                    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(3)) {
                        d.copy_from_slice(&[s[0], s[1], s[2], 0]);
                    }
                }
                Literal::Rgb16 => {
                    let src = input.take(count * 2)?;
                    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
                        d.copy_from_slice(&rgb16_to_bgrx(s[0], s[1]));
                    }
                }
            }
            op += count;
        }
    }
    Ok(())
}

/// Widens a 15-bit pixel exactly as spice-common's `lz_rgb16_to_rgb32`.
fn rgb16_to_bgrx(hi: u8, lo: u8) -> [u8; 4] {
    let g = ((hi << 6) | (lo >> 2)) & !7;
    let g = g | (g >> 5);
    let r = ((hi << 1) & !7) | ((hi >> 4) & 7);
    let b = (lo << 3) | ((lo >> 2) & 7);
    [b, g, r, 0]
}

/// One pass over byte units stored every `STEP` bytes from offset `OFF`
/// (the alpha bytes of 32-bit pixels, or a plain byte array).
fn byte_pass<const STEP: usize, const OFF: usize>(
    input: &mut Input,
    out: &mut [u8],
) -> Result<(), CodecError> {
    let n = out.len() / STEP;
    let mut op = 0usize;
    while op < n {
        let ctrl = input.byte()?;
        if ctrl >= 32 {
            let r = reference(input, ctrl, 2)?;
            if r.distance > op {
                return Err(corrupt("reference before the image"));
            }
            if r.len > n - op {
                return Err(corrupt("reference past the image"));
            }
            let from = op - r.distance;
            if STEP == 1 && r.distance >= r.len {
                out.copy_within(from..from + r.len, op);
            } else {
                for i in 0..r.len {
                    out[(op + i) * STEP + OFF] = out[(from + i) * STEP + OFF];
                }
            }
            op += r.len;
        } else {
            let count = usize::from(ctrl) + 1;
            if count > n - op {
                return Err(corrupt("literals past the image"));
            }
            let src = input.take(count)?;
            for (i, &b) in src.iter().enumerate() {
                out[(op + i) * STEP + OFF] = b;
            }
            op += count;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rgb16_to_bgrx;

    #[test]
    fn rgb16_widening_matches_spice_common() {
        // 0x7fff is white, 0 black; pure channels widen to full scale.
        assert_eq!(rgb16_to_bgrx(0x7f, 0xff), [255, 255, 255, 0]);
        assert_eq!(rgb16_to_bgrx(0, 0), [0, 0, 0, 0]);
        assert_eq!(rgb16_to_bgrx(0x7c, 0x00), [0, 0, 255, 0]);
        assert_eq!(rgb16_to_bgrx(0x03, 0xe0), [0, 255, 0, 0]);
        assert_eq!(rgb16_to_bgrx(0x00, 0x1f), [255, 0, 0, 0]);
        // 0x10 in every channel: 10000 -> 10000100.
        assert_eq!(rgb16_to_bgrx(0x42, 0x10), [0x84, 0x84, 0x84, 0]);
    }
}
