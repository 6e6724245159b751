//! The monitors ("heads") a display's picture is cut into.
//!
//! A device with several outputs (QEMU's `qxl-vga,max_outputs=2` with the
//! Linux qxl driver, the Windows drivers) draws all of them into one large
//! primary surface and tells which rectangle each monitor shows: the guest's
//! `QXLMonitorsConfig`. Clients learn it from `MONITORS_CONFIG` and open a
//! window per head (spice-gtk, remote-viewer). Without a configuration the
//! whole picture is one head, as the C server sends it.

use spice_proto::msg::display::{Head as WireHead, MonitorsConfig};

/// The most heads a display reports (the C server's and spice-gtk's bound).
pub const MAX_HEADS: usize = 16;

/// One monitor shown from part of a display's picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The monitor's index among the display's heads (`0..MAX_HEADS`).
    pub id: u32,
    /// Left edge within the picture.
    pub x: u32,
    /// Top edge within the picture.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Why a monitor configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadsError {
    /// More heads than [`MAX_HEADS`].
    #[error("{0} heads, at most {MAX_HEADS}")]
    TooMany(usize),
    /// A head's id is not below [`MAX_HEADS`], or appears twice.
    #[error("head id {0} is over the limit or repeated")]
    Id(u32),
    /// A head without pixels.
    #[error("head {0} has no width or height")]
    Empty(u32),
}

/// What a display's clients are told about its monitors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Heads {
    /// The configured heads; empty: the whole picture is one head.
    heads: Vec<Head>,
    /// The most monitors the device supports (at least `heads.len()`).
    max_allowed: u32,
    /// Bumped on every change, so each client sends the change once.
    pub(crate) generation: u64,
}

impl Heads {
    /// Replaces the configuration, after checking it.
    pub(crate) fn set(&mut self, heads: &[Head], max_allowed: u32) -> Result<(), HeadsError> {
        if heads.len() > MAX_HEADS {
            return Err(HeadsError::TooMany(heads.len()));
        }
        let mut seen = [false; MAX_HEADS];
        for head in heads {
            let slot = seen.get_mut(head.id as usize).filter(|s| !**s);
            let Some(slot) = slot else {
                return Err(HeadsError::Id(head.id));
            };
            *slot = true;
            if head.width == 0 || head.height == 0 {
                return Err(HeadsError::Empty(head.id));
            }
        }
        let max_allowed = max_allowed.clamp(heads.len().max(1) as u32, MAX_HEADS as u32);
        if self.heads != heads || self.max_allowed != max_allowed {
            self.heads = heads.to_vec();
            self.max_allowed = max_allowed;
            self.generation += 1;
        }
        Ok(())
    }

    /// The `MONITORS_CONFIG` for a picture of `width` x `height`: each head
    /// cut to the picture (a head wholly outside it is left out); the whole
    /// picture when none is configured or none is left.
    pub(crate) fn message(&self, width: u32, height: u32) -> MonitorsConfig {
        let wire = |id, x, y, w, h| WireHead {
            monitor_id: id,
            surface_id: 0,
            width: w,
            height: h,
            x,
            y,
            flags: 0,
        };
        let mut heads: Vec<WireHead> = self
            .heads
            .iter()
            .filter(|h| h.x < width && h.y < height)
            .map(|h| {
                let w = h.width.min(width - h.x);
                let hh = h.height.min(height - h.y);
                wire(h.id, h.x, h.y, w, hh)
            })
            .collect();
        if heads.is_empty() {
            heads.push(wire(0, 0, 0, width, height));
        }
        MonitorsConfig {
            max_allowed: self.max_allowed.max(heads.len() as u32) as u16,
            heads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: u32, x: u32, w: u32) -> Head {
        Head {
            id,
            x,
            y: 0,
            width: w,
            height: 480,
        }
    }

    #[test]
    fn without_heads_the_picture_is_one_monitor() {
        let m = Heads::default().message(800, 600);
        assert_eq!(m.max_allowed, 1);
        assert_eq!(m.heads.len(), 1);
        assert_eq!((m.heads[0].width, m.heads[0].height), (800, 600));
    }

    #[test]
    fn heads_are_cut_to_the_picture_and_changes_counted() {
        let mut h = Heads::default();
        h.set(&[head(0, 0, 640), head(1, 640, 640)], 4).unwrap();
        assert_eq!(h.generation, 1);
        h.set(&[head(0, 0, 640), head(1, 640, 640)], 4).unwrap();
        assert_eq!(h.generation, 1, "the same configuration is no change");
        let m = h.message(1000, 480);
        assert_eq!(m.max_allowed, 4);
        assert_eq!(
            m.heads
                .iter()
                .map(|h| (h.monitor_id, h.x, h.width))
                .collect::<Vec<_>>(),
            [(0, 0, 640), (1, 640, 360)]
        );
        let m = h.message(600, 480);
        assert_eq!(m.heads.len(), 1, "a head outside the picture is left out");
        assert_eq!(m.heads[0].width, 600);
    }

    #[test]
    fn bad_configurations_are_refused_and_change_nothing() {
        let mut h = Heads::default();
        assert_eq!(
            h.set(&[head(0, 0, 10), head(0, 10, 10)], 2),
            Err(HeadsError::Id(0))
        );
        assert_eq!(h.set(&[head(16, 0, 10)], 2), Err(HeadsError::Id(16)));
        assert_eq!(h.set(&[head(1, 0, 0)], 2), Err(HeadsError::Empty(1)));
        let many: Vec<Head> = (0..17).map(|i| head(i % 16, 0, 1)).collect();
        assert_eq!(h.set(&many, 17), Err(HeadsError::TooMany(17)));
        assert_eq!(h, Heads::default());
    }
}
