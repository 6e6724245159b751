//! Clients' monitor configurations for a QXL instance
//! (`QXLInterface::client_monitors_config`, interface 3.3), called on the
//! host's main thread as the C server does.

use spice_server::{ClientMonitors, ClientMonitorsHandler};

use super::Instance;
use crate::ffi::VDAgentMonitorsConfig;

/// `VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS`.
const FLAG_USE_POS: u32 = 1;
/// `VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE`.
const FLAG_PHYSICAL_SIZE: u32 = 2;

pub(super) struct QxlMonitors {
    pub(super) instance: Instance,
}

impl QxlMonitors {
    fn callback(
        &self,
    ) -> Option<unsafe extern "C" fn(*mut crate::ffi::QXLInstance, *mut VDAgentMonitorsConfig) -> i32> {
        let iface = self.instance.iface();
        // The callback exists from interface 3.3 on.
        if iface.base.major_version != 3 || iface.base.minor_version < 3 {
            return None;
        }
        iface.client_monitors_config
    }
}

impl ClientMonitorsHandler for QxlMonitors {
    fn accepts(&mut self) -> bool {
        // SAFETY: host callback with its own instance; NULL asks whether it is supported.
        self.callback()
            .is_some_and(|f| unsafe { f(self.instance.0, std::ptr::null_mut()) } != 0)
    }

    fn configure(&mut self, monitors: &ClientMonitors) -> bool {
        let Some(f) = self.callback() else { return false };
        let mut words = encode(monitors);
        // SAFETY: `words` holds a VDAgentMonitorsConfig with its monitors (and
        // their physical sizes when flagged) and outlives the call; u32
        // alignment satisfies the packed struct.
        unsafe { f(self.instance.0, words.as_mut_ptr().cast()) != 0 }
    }
}

/// `VDAgentMonitorsConfig` as the device reads it, in 32-bit words.
fn encode(monitors: &ClientMonitors) -> Vec<u32> {
    let with_mm = monitors.monitors.iter().any(|m| m.physical_mm.is_some());
    let mut flags = 0;
    if monitors.use_position {
        flags |= FLAG_USE_POS;
    }
    if with_mm {
        flags |= FLAG_PHYSICAL_SIZE;
    }
    let mut words = vec![monitors.monitors.len() as u32, flags];
    for m in &monitors.monitors {
        words.extend([m.height, m.width, m.depth, m.x as u32, m.y as u32]);
    }
    if with_mm {
        // VDAgentMonitorMM: u16 height, u16 width.
        for m in &monitors.monitors {
            let (width, height) = m.physical_mm.unwrap_or((0, 0));
            words.push(u32::from(height) | u32::from(width) << 16);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_server::ClientMonitor;

    #[test]
    fn layout_follows_vd_agent_h() {
        let config = ClientMonitors {
            use_position: true,
            monitors: vec![ClientMonitor {
                width: 800,
                height: 600,
                depth: 32,
                x: -1,
                y: 2,
                physical_mm: Some((300, 200)),
            }],
        };
        let words = encode(&config);
        assert_eq!(words, [1, 3, 600, 800, 32, u32::MAX, 2, 200 | 300 << 16]);
        // The C struct's header is two words, then the monitors.
        assert_eq!(std::mem::size_of::<VDAgentMonitorsConfig>(), 8);
    }
}
