//! Character devices: byte pipes between the guest and the server, such as the
//! guest agent's virtio-serial port (`SpiceCharDeviceInterface`).

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
}
