//! What the client showed of the video, against the host's own frames.
//!
//! In the video scenario's proxy run the host writes every frame's picture
//! (`--dump-video DIR`) and the client's surface is sampled every
//! [`SAMPLE_EVERY`] while the video plays. Each sample's player area is
//! matched to the host frame it is closest to (the client shows frames a
//! little late, and a stream may skip some), and that frame's PSNR and
//! SSIM are the sample's quality: a lossless picture is exact, a lossy
//! stream frame is as good as its codec and bit rate made it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use spice_codec::quality::{psnr_rgb32, ssim_rgb32};
use spice_interop::gtk::SpiceGtk;

/// How often the client's surface is sampled while the video plays.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// PSNR of a sample equal to its frame (as [`psnr_rgb32`] gives it).
const EXACT_DB: f64 = 100.0;

/// The quality of what the client showed.
#[derive(Debug, Clone, Default)]
pub struct VideoQuality {
    /// Per sample: PSNR (dB) and SSIM against the closest host frame.
    pub samples: Vec<(f64, f64)>,
    /// Stream frames the client was sent (`STREAM_DATA` and `_SIZED`).
    pub stream_frames: u64,
    /// How long the host played the video.
    pub elapsed_ms: u64,
}

impl VideoQuality {
    /// Samples equal to a host frame.
    pub fn exact(&self) -> usize {
        self.samples.iter().filter(|(db, _)| *db >= EXACT_DB).count()
    }

    /// The median and the lowest PSNR, in dB.
    pub fn psnr(&self) -> Option<(f64, f64)> {
        Self::median_min(self.samples.iter().map(|s| s.0))
    }

    /// The median and the lowest SSIM.
    pub fn ssim(&self) -> Option<(f64, f64)> {
        Self::median_min(self.samples.iter().map(|s| s.1))
    }

    /// Stream frames per second of video played.
    pub fn stream_fps(&self) -> Option<f64> {
        (self.elapsed_ms > 0).then(|| self.stream_frames as f64 * 1000.0 / self.elapsed_ms as f64)
    }

    fn median_min(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
        let mut v: Vec<f64> = values.collect();
        v.sort_by(f64::total_cmp);
        Some((crate::report::median(&v)?, *v.first()?))
    }

    /// As JSON, for the results file.
    pub fn to_json(&self) -> Value {
        json!({
            "samples": self.samples.iter().map(|(db, ssim)| json!([db, ssim])).collect::<Vec<_>>(),
            "stream_frames": self.stream_frames,
            "elapsed_ms": self.elapsed_ms,
        })
    }
}

/// Samples a client's view of the player area during a run.
#[derive(Debug)]
pub struct Sampler {
    dir: PathBuf,
    /// The player area: x, y, width, height.
    area: [usize; 4],
    /// Each sample's player area, packed rows of 4-byte pixels.
    shown: Vec<Vec<u8>>,
}

impl Sampler {
    /// A sampler of `area` (from the host's "ready" event), the host's
    /// frames being written to `dir` (which the caller made and removes).
    pub fn new(dir: &Path, area: [usize; 4]) -> Self {
        Self {
            dir: dir.to_path_buf(),
            area,
            shown: Vec::new(),
        }
    }

    /// Takes the client's current picture of the player area.
    pub fn sample(&mut self, gtk: &mut SpiceGtk) {
        let Some((width, height, pixels)) = gtk.surface() else {
            return;
        };
        let [x, y, w, h] = self.area;
        if x + w > width as usize || y + h > height as usize {
            return;
        }
        let stride = width as usize * 4;
        let mut area = Vec::with_capacity(w * h * 4);
        for row in y..y + h {
            area.extend_from_slice(&pixels[row * stride + x * 4..row * stride + (x + w) * 4]);
        }
        self.shown.push(area);
    }

    /// Matches every sample to the host's frames 0 to `frames`.
    pub fn judge(self, frames: u32, stream_frames: u64, elapsed_ms: u64) -> Result<VideoQuality> {
        let mut host_frames = Vec::new();
        for i in 0..=frames {
            let path = self.dir.join(format!("{i:04}.raw"));
            match std::fs::read(&path) {
                Ok(frame) => host_frames.push(frame),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| path.display().to_string()),
            }
        }
        anyhow::ensure!(!host_frames.is_empty(), "the host wrote no video frames");
        let [_, _, w, h] = self.area;
        let samples = self
            .shown
            .iter()
            .map(|shown| {
                let (best, db) = host_frames
                    .iter()
                    .map(|frame| (frame, psnr_rgb32(frame, shown)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .expect("at least one frame");
                (db, ssim_rgb32(best, shown, w, h).unwrap_or(0.0))
            })
            .collect();
        Ok(VideoQuality {
            samples,
            stream_frames,
            elapsed_ms,
        })
    }
}
