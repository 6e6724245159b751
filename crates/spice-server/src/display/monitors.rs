//! Clients' monitor configurations, offered to the displays' devices.
//!
//! A client that wants a different size for its display window (spice-gtk
//! on a resize, or "resize guest to window") sends the guest agent a
//! `VD_AGENT_MONITORS_CONFIG`. Like the C server, the server first offers it
//! to the devices behind the displays (QEMU's qxl device hands it to its
//! guest driver, QEMU's other displays to the guest's graphics card); only
//! when some display's device does not take such requests does it go to the
//! guest agent.

use spice_proto::agent::{MonitorConfig, MonitorsConfig};

/// One monitor as a client wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientMonitor {
    /// Width in pixels (0 with a height of 0: the monitor is disabled).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bits per pixel.
    pub depth: u32,
    /// Position of the left edge among the monitors.
    pub x: i32,
    /// Position of the top edge.
    pub y: i32,
    /// Physical size in millimetres `(width, height)`, if the client knows it.
    pub physical_mm: Option<(u16, u16)>,
}

/// A client's configuration of all its monitors (`VDAgentMonitorsConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMonitors {
    /// Whether the positions are meant (`VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS`).
    pub use_position: bool,
    /// The monitors, in the client's order (display channel order).
    pub monitors: Vec<ClientMonitor>,
}

impl ClientMonitors {
    pub(crate) fn from_wire(config: &MonitorsConfig) -> Self {
        let monitors = config
            .monitors
            .iter()
            .enumerate()
            .map(|(i, m)| ClientMonitor {
                width: m.width,
                height: m.height,
                depth: m.depth,
                x: m.x,
                y: m.y,
                physical_mm: config.physical_mm.as_ref().and_then(|mm| mm.get(i).copied()),
            })
            .collect();
        Self {
            use_position: config.use_position,
            monitors,
        }
    }

    /// The agent's encoding, with physical sizes only if `physical_mm`.
    pub(crate) fn to_wire(&self, physical_mm: bool) -> MonitorsConfig {
        MonitorsConfig {
            use_position: self.use_position,
            monitors: self
                .monitors
                .iter()
                .map(|m| MonitorConfig {
                    height: m.height,
                    width: m.width,
                    depth: m.depth,
                    x: m.x,
                    y: m.y,
                })
                .collect(),
            physical_mm: physical_mm.then(|| {
                self.monitors
                    .iter()
                    .map(|m| m.physical_mm.unwrap_or((0, 0)))
                    .collect()
            }),
        }
    }
}

/// The device behind a display takes clients' monitor configurations
/// (`QXLInterface::client_monitors_config`). Called on the server's main
/// context.
pub trait ClientMonitorsHandler: Send {
    /// Whether the device takes configurations now. When some display's
    /// device does not, configurations go to the guest agent instead.
    fn accepts(&mut self) -> bool;
    /// A client's configuration; returns whether the device took it.
    fn configure(&mut self, monitors: &ClientMonitors) -> bool;
}
