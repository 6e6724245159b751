//! Char devices served on spicevmc channels (usbredir, port, webdav): which
//! channel each gets, the client's link to it, and moving bytes between the
//! device and its channel (the state machine is `channel/spicevmc.rs`).

use spice_proto::msg::spicevmc::port_event;
use spice_proto::{Caps, ChannelType};

use super::conn::{Channel, Phase};
use super::ServerState;
use crate::channel::spicevmc::{VmcChannel, READ_CHUNK};
use crate::channel::ChannelBase;
use crate::vdi::{CharDevice, VmcDeviceId, VmcKind};

/// The port the C server serves on the webdav channel instead of a port channel.
const WEBDAV_PORT: &str = "org.spice-space.webdav.0";

/// Most device reads per transfer, so one busy device does not hold the main
/// context (the queue bound stops it sooner for a client that lags).
const MAX_READS_PER_TRANSFER: usize = 64;

/// One char device and its channel.
pub(super) struct VmcDevice {
    kind: ChannelType,
    channel_id: u8,
    /// A port's name (port and webdav channels).
    port: Option<String>,
    /// What the device last said with `port_event` (told to a client in `PORT_INIT`).
    port_opened: bool,
    device: Box<dyn CharDevice + Send>,
    /// The link id of the client's channel, while one is linked.
    conn: Option<u64>,
}

impl std::fmt::Debug for VmcDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmcDevice")
            .field("kind", &self.kind)
            .field("channel_id", &self.channel_id)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The devices, keyed by the host's id, and a read buffer they share.
#[derive(Debug, Default)]
pub(super) struct VmcDevices {
    devices: std::collections::BTreeMap<VmcDeviceId, VmcDevice>,
    buf: Vec<u8>,
}

impl VmcDevices {
    /// `(channel type, channel id)` of every device, for the channels list.
    pub(super) fn channels(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.devices.values().map(|d| (d.kind as u8, d.channel_id))
    }

    fn find(&self, kind: u8, channel_id: u8) -> Option<VmcDeviceId> {
        self.devices
            .iter()
            .find(|(_, d)| d.kind as u8 == kind && d.channel_id == channel_id)
            .map(|(&id, _)| id)
    }

    /// Moves bytes both ways between `ch` and its device: queued client data
    /// first, then device data while the client keeps up.
    pub(super) fn transfer(&mut self, id: VmcDeviceId, ch: &mut VmcChannel) {
        let Some(dev) = self.devices.get_mut(&id) else {
            return;
        };
        ch.take_for_device(|data| dev.device.write(data));
        self.buf.resize(READ_CHUNK, 0);
        for _ in 0..MAX_READS_PER_TRANSFER {
            if !ch.wants_device_data() {
                break;
            }
            let n = dev.device.read(&mut self.buf).min(READ_CHUNK);
            if n == 0 {
                break;
            }
            ch.send_from_device(&self.buf[..n]);
        }
    }

    /// A client's `PORT_EVENT`, to the device.
    pub(super) fn client_port_event(&mut self, id: VmcDeviceId, event: u8) {
        if let Some(dev) = self.devices.get_mut(&id) {
            dev.device.event(event);
        }
    }
}

impl ServerState {
    /// Serves a char device on a new spicevmc channel, with the lowest
    /// channel id its type has free (as the C server's
    /// `reds_get_free_channel_id`); a connected client is told.
    pub(super) fn add_vmc_device(
        &mut self,
        id: VmcDeviceId,
        kind: VmcKind,
        device: Box<dyn CharDevice + Send>,
    ) {
        let (channel, port) = match kind {
            VmcKind::UsbRedir => (ChannelType::UsbRedir, None),
            VmcKind::Port(name) if name == WEBDAV_PORT => (ChannelType::Webdav, Some(name)),
            VmcKind::Port(name) => (ChannelType::Port, Some(name)),
        };
        let devices = &self.vmc.devices;
        let Some(channel_id) =
            (0..=u8::MAX).find(|&i| !devices.values().any(|d| d.kind == channel && d.channel_id == i))
        else {
            tracing::warn!(
                channel = channel.name(),
                "no free channel id for a char device; not served"
            );
            return;
        };
        tracing::info!(
            channel = channel.name(),
            id = channel_id,
            port = port.as_deref(),
            "char device channel added"
        );
        self.vmc.devices.insert(
            id,
            VmcDevice {
                kind: channel,
                channel_id,
                port,
                port_opened: false,
                device,
                conn: None,
            },
        );
        self.announce(vec![(channel as u8, channel_id)]);
    }

    /// Stops serving a char device; its client's channel is closed first, so
    /// the device hears `state(false)`.
    pub(super) fn remove_vmc_device(&mut self, id: VmcDeviceId) {
        if let Some(conn) = self.vmc.devices.get(&id).and_then(|d| d.conn) {
            self.close_channel(conn);
        }
        if let Some(dev) = self.vmc.devices.remove(&id) {
            tracing::info!(
                channel = dev.kind.name(),
                id = dev.channel_id,
                "char device channel removed"
            );
        }
    }

    /// The device has data to read or room to write.
    pub(super) fn vmc_wakeup(&mut self, id: VmcDeviceId) {
        if let Some(conn) = self.vmc.devices.get(&id).and_then(|d| d.conn) {
            self.with_conn(conn, |s, c| s.pump(c));
        }
    }

    /// The device's port was opened or closed (`spice_server_port_event`):
    /// remembered for the next client's `PORT_INIT`, and sent to a linked one.
    pub(super) fn vmc_port_event(&mut self, id: VmcDeviceId, event: u8) {
        let Some(dev) = self.vmc.devices.get_mut(&id) else {
            return;
        };
        match event {
            port_event::OPENED => dev.port_opened = true,
            port_event::CLOSED => dev.port_opened = false,
            _ => {}
        }
        let Some(conn) = dev.conn else { return };
        self.with_conn(conn, |s, c| {
            if let Phase::Linked {
                channel: Channel::Vmc(ch, _),
                ..
            } = &mut c.phase
            {
                ch.send_port_event(event);
            }
            s.pump(c)
        });
    }

    /// A client linked the channel `(kind, channel_id)` as connection
    /// `link`: the channel, `PORT_INIT` queued for a port, and the device
    /// told a client is there (`state(true)`, after which QEMU's usb-redir
    /// sends its hello).
    pub(super) fn vmc_link(
        &mut self,
        link: u64,
        kind: u8,
        channel_id: u8,
        base: ChannelBase,
        caps: &Caps,
    ) -> Option<Channel> {
        let id = self.vmc.find(kind, channel_id)?;
        // One client per device, as the C server (the session's own relink
        // was replaced before this; anything else linked to it goes).
        if let Some(old) = self.vmc.devices.get(&id).and_then(|d| d.conn) {
            self.close_channel(old);
        }
        let dev = self.vmc.devices.get_mut(&id)?;
        let port = dev.port.as_deref().map(|name| (name, dev.port_opened));
        let channel = VmcChannel::start(base, caps, port);
        dev.conn = Some(link);
        dev.device.state(true);
        Some(Channel::Vmc(channel, id))
    }

    /// The client's channel `link` to device `id` closed.
    pub(super) fn vmc_unlinked(&mut self, id: VmcDeviceId, link: u64) {
        if let Some(dev) = self.vmc.devices.get_mut(&id) {
            if dev.conn == Some(link) {
                dev.conn = None;
                dev.device.state(false);
            }
        }
    }
}
