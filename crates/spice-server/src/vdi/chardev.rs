//! Character devices: byte pipes between the guest and the server, such as the
//! guest agent's virtio-serial port, USB redirection and named ports
//! (`SpiceCharDeviceInterface`).

/// A guest-side byte pipe the server reads and writes without blocking.
///
/// The host tells the server that the device has data to read or room to
/// write with [`crate::ServerHandle::agent_wakeup`] (or
/// [`crate::Server::agent_wakeup_now`] on the server's own thread).
pub trait CharDevice {
    /// Copies bytes the guest wrote into `buf`; returns how many (0 = none now).
    fn read(&mut self, buf: &mut [u8]) -> usize;
    /// Offers bytes for the guest; returns how many the device took (0 = full now).
    fn write(&mut self, data: &[u8]) -> usize;
    /// The server's view of the device changed: `false` after a protocol error
    /// that makes it stop using the device.
    fn state(&mut self, _connected: bool) {}
    /// A client's `SPICE_MSGC_PORT_EVENT` on the device's port channel (a
    /// `spice_proto::msg::spicevmc::port_event` value: opened, closed, break).
    fn event(&mut self, _event: u8) {}
}

/// Which spicevmc channel serves a char device added with
/// [`crate::ServerHandle::add_vmc_device`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmcKind {
    /// A USB redirection channel (`SPICE_CHANNEL_USBREDIR`; QEMU's
    /// `-chardev spicevmc,name=usbredir`).
    UsbRedir,
    /// A named port (`SPICE_CHANNEL_PORT`; QEMU's `-chardev spiceport,name=`).
    /// The port named `org.spice-space.webdav.0` is served on the webdav
    /// channel (`SPICE_CHANNEL_WEBDAV`), as by the C server.
    Port(String),
}

/// A char device served on a spicevmc channel, as the host names it to the
/// server (from [`crate::ServerHandle::add_vmc_device`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmcDeviceId(pub(crate) u64);
