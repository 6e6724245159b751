//! A GLZ decoder that keeps its window the way spice-gtk's does: for tests
//! of the encoder and for fuzzing. Stricter than the client wherever the
//! client would misbehave (read outside an image, wait forever, leak).

use std::collections::VecDeque;

use super::{GlzHeader, CODEC, HEADER_LEN};
use crate::{CodecError, DecodeLimits};

fn corrupt(what: &'static str) -> CodecError {
    CodecError::Corrupt { codec: CODEC, what }
}

/// A decoded GLZ image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlzImage {
    /// The stream's header.
    pub header: GlzHeader,
    /// The pixels in stream order (the top row first when
    /// `header.top_down`), B, G, R, 0, `width * 4` bytes per row.
    pub data: Vec<u8>,
}

/// A GLZ decoder with its window of earlier images.
///
/// Like spice-gtk it keeps every image it decodes and, after decoding image
/// `id`, frees the images older than `id - win_head_dist`. Unlike spice-gtk
/// it insists that ids follow one another from 0 (0 again after
/// [`reset`](Self::reset)), refuses a reference to an image it does not
/// hold (the client would wait for it forever) or one that runs past the
/// end of its image (the client would read past its buffer), and bytes
/// after the last pixel. It also keeps at most `max_window_pixels` pixels,
/// dropping the oldest images beyond that.
#[derive(Debug)]
pub struct GlzDecoder {
    limits: DecodeLimits,
    max_window_pixels: u64,
    /// Decoded images, oldest first, with their ids.
    window: VecDeque<(u64, Vec<u32>)>,
    window_pixels: u64,
    next_id: u64,
}

impl GlzDecoder {
    /// A decoder with an empty window that refuses images of more than
    /// `limits.max_pixels` pixels and keeps at most `max_window_pixels`.
    pub fn new(limits: DecodeLimits, max_window_pixels: u64) -> Self {
        Self {
            limits,
            max_window_pixels,
            window: VecDeque::new(),
            window_pixels: 0,
            next_id: 0,
        }
    }

    /// Empties the window; the next image must have id 0.
    pub fn reset(&mut self) {
        self.window.clear();
        self.window_pixels = 0;
        self.next_id = 0;
    }

    /// Images in the window.
    pub fn images(&self) -> usize {
        self.window.len()
    }

    /// Decodes one GLZ_RGB stream and adds the image to the window. On
    /// error the window is unchanged.
    pub fn decode(&mut self, stream: &[u8]) -> Result<GlzImage, CodecError> {
        let header = GlzHeader::parse(stream)?;
        let n = header.pixels();
        if n > self.limits.max_pixels {
            return Err(CodecError::TooLarge {
                codec: CODEC,
                width: header.width,
                height: header.height,
            });
        }
        if header.id != self.next_id {
            return Err(corrupt("image id out of sequence"));
        }
        if u64::from(header.win_head_dist) > header.id {
            return Err(corrupt("window head before the first image"));
        }
        let body = &stream[HEADER_LEN..];
        // No token codes more than 255 pixels per byte.
        if n > (body.len() as u64).saturating_mul(255) {
            return Err(corrupt("stream too short for the image"));
        }
        let n = usize::try_from(n).map_err(|_| corrupt("image too large"))?;
        let mut out = vec![0u32; n];
        let used = self.pass(body, header.id, &mut out)?;
        if used != body.len() {
            return Err(corrupt("bytes after the image"));
        }

        // Keep it, then free what the header says the encoder let go.
        self.next_id += 1;
        self.window_pixels += n as u64;
        let data = out.iter().flat_map(|p| p.to_le_bytes()).collect();
        self.window.push_back((header.id, out));
        let oldest = header.id - u64::from(header.win_head_dist);
        while let Some((id, img)) = self.window.front() {
            if *id < oldest || self.window_pixels > self.max_window_pixels {
                self.window_pixels -= img.len() as u64;
                self.window.pop_front();
            } else {
                break;
            }
        }
        Ok(GlzImage { header, data })
    }

    /// The earlier image `id`, if held.
    fn image(&self, id: u64) -> Option<&[u32]> {
        let first = self.window.front()?.0;
        let (held, img) = self.window.get(usize::try_from(id.checked_sub(first)?).ok()?)?;
        debug_assert_eq!(*held, id);
        Some(img)
    }

    /// Decodes the RGB32 pass into `out`; returns the bytes used.
    fn pass(&self, body: &[u8], id: u64, out: &mut [u32]) -> Result<usize, CodecError> {
        let mut ip = 0usize;
        let mut byte = || -> Result<u32, CodecError> {
            let b = *body.get(ip).ok_or(corrupt("truncated stream"))?;
            ip += 1;
            Ok(u32::from(b))
        };
        let n = out.len();
        let mut op = 0usize;
        while op < n {
            let ctrl = byte()?;
            if ctrl < 32 {
                let count = ctrl as usize + 1;
                if count > n - op {
                    return Err(corrupt("literals past the image"));
                }
                for p in &mut out[op..op + count] {
                    let (b, g, r) = (byte()?, byte()?, byte()?);
                    *p = b | (g << 8) | (r << 16);
                }
                op += count;
                continue;
            }
            let mut len = (ctrl >> 5) as usize;
            let wide = ctrl & 0x10 != 0;
            let mut offset = (ctrl & 0x0f) as usize;
            if len == 7 {
                loop {
                    let code = byte()?;
                    len += code as usize;
                    if code != 255 {
                        break;
                    }
                }
            }
            offset += (byte()? as usize) << 4;
            let code = byte()?;
            let extra = code >> 6;
            let mut dist = 0u64;
            if !wide {
                dist = u64::from(code & 0x3f);
                for k in 0..extra {
                    dist += u64::from(byte()?) << (6 + 8 * k);
                }
            } else {
                offset += ((code & 0x1f) as usize) << 12;
                for k in 0..extra {
                    dist += u64::from(byte()?) << (8 * k);
                }
                if code & 0x20 != 0 {
                    offset += (byte()? as usize) << 17;
                }
            }
            if len > n - op {
                return Err(corrupt("reference past the image"));
            }
            if dist == 0 {
                let d = offset + 1;
                if d > op {
                    return Err(corrupt("reference before the image"));
                }
                for k in op..op + len {
                    out[k] = out[k - d];
                }
            } else {
                let src_id = id
                    .checked_sub(dist)
                    .ok_or(corrupt("reference before the first image"))?;
                let src = self
                    .image(src_id)
                    .ok_or(corrupt("reference to an image not in the window"))?;
                let from = src
                    .get(offset..offset.saturating_add(len))
                    .ok_or(corrupt("reference past the end of its image"))?;
                out[op..op + len].copy_from_slice(from);
            }
            op += len;
        }
        Ok(ip)
    }
}
