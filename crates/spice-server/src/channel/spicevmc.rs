//! The spicevmc channels (usbredir, port, webdav): one client's byte pipe to
//! one of the host's char devices, with the C server's semantics
//! (`spicevmc.cpp`). No I/O: the driver moves bytes between this and the
//! device ([`VmcChannel::take_for_device`], [`VmcChannel::send_from_device`]).

use std::collections::VecDeque;
use std::time::Instant;

use spice_proto::caps::Caps;
use spice_proto::consts::spicevmc_cap;
use spice_proto::msg::spicevmc::{
    compression, CompressedData, Data, PortEvent, PortInit, SpicevmcClientMessage,
};
use spice_proto::{DecodeError, Frame};

use super::{BaseOutcome, ChannelBase};

/// Most bytes read from the device into one `DATA` message (the C server's
/// 64 KiB read buffer).
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// The device is read only while less than this waits for the client
/// (`QUEUED_DATA_LIMIT` of the C server): a client that does not read stops
/// the device being read, and the guest's writes wait in the device.
pub(crate) const MAX_QUEUED_TO_CLIENT: usize = 1024 * 1024;

/// The client's socket is read only while less than this waits for the
/// device: a device that does not take its data stops the client being read.
/// One read may overshoot by a socket read and one message.
pub(crate) const MAX_QUEUED_TO_DEVICE: usize = 1024 * 1024;

/// Data from the device is compressed only above this size, as by the C
/// server and spice-gtk (`COMPRESS_THRESHOLD`).
const COMPRESS_THRESHOLD: usize = 1000;

/// What a client message asks of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VmcEvent {
    /// New data waits for the device.
    Data,
    /// The client's `PORT_EVENT`, for the device's `event` callback.
    PortEvent(u8),
    /// The client is leaving.
    Disconnect,
}

/// Why a client message ends the channel.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VmcError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("unknown data compression type {0}")]
    UnknownCompression(u8),
    #[error("lz4 data does not expand to the {0} bytes announced")]
    BadLz4(u32),
}

#[derive(Debug)]
pub(crate) struct VmcChannel {
    pub(crate) base: ChannelBase,
    /// The client decodes LZ4 `COMPRESSED_DATA`.
    client_lz4: bool,
    /// Client data not yet taken by the device, oldest first.
    to_device: VecDeque<Vec<u8>>,
    /// Offset into the front buffer already written.
    front_written: usize,
    queued_to_device: usize,
}

impl VmcChannel {
    /// A linked channel; a port (or webdav) channel starts with `PORT_INIT`
    /// (`port` = its name and whether the guest has it open).
    pub(crate) fn start(base: ChannelBase, client_caps: &Caps, port: Option<(&str, bool)>) -> Self {
        let mut ch = Self {
            base,
            client_lz4: client_caps.has(spicevmc_cap::DATA_COMPRESS_LZ4),
            to_device: VecDeque::new(),
            front_written: 0,
            queued_to_device: 0,
        };
        if let Some((name, opened)) = port {
            ch.base.send(&PortInit {
                name: name.as_bytes(),
                opened,
            });
        }
        ch
    }

    /// Whether the device may be read: little enough waits for the client.
    pub(crate) fn wants_device_data(&self) -> bool {
        self.base.out.len() < MAX_QUEUED_TO_CLIENT
    }

    /// Whether the client's socket may be read: the device keeps up.
    pub(crate) fn accepts_client_data(&self) -> bool {
        self.queued_to_device < MAX_QUEUED_TO_DEVICE
    }

    /// Queues bytes the device gave for the client: LZ4-compressed where the
    /// client decodes it, the bytes are over the threshold and it shrinks them.
    pub(crate) fn send_from_device(&mut self, data: &[u8]) {
        if self.client_lz4 && data.len() > COMPRESS_THRESHOLD {
            let packed = lz4_flex::compress(data);
            if packed.len() < data.len() {
                self.base.send(&CompressedData {
                    kind: compression::LZ4,
                    uncompressed_size: data.len() as u32,
                    data: &packed,
                });
                return;
            }
        }
        self.base.send(&Data(data));
    }

    /// Tells the client the device's port was opened or closed.
    pub(crate) fn send_port_event(&mut self, event: u8) {
        self.base.send(&PortEvent { event });
    }

    /// Offers queued client data to `write` (the device's), front first, until
    /// it takes nothing more. Returns the bytes it took.
    pub(crate) fn take_for_device(&mut self, mut write: impl FnMut(&[u8]) -> usize) -> usize {
        let mut taken = 0;
        while let Some(front) = self.to_device.front() {
            let rest = &front[self.front_written..];
            let n = write(rest).min(rest.len());
            if n == 0 {
                break;
            }
            taken += n;
            self.queued_to_device -= n;
            self.front_written += n;
            if self.front_written == front.len() {
                self.to_device.pop_front();
                self.front_written = 0;
            }
        }
        taken
    }

    fn queue_for_device(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.queued_to_device += data.len();
        self.to_device.push_back(data);
    }

    pub(crate) fn handle(&mut self, frame: &Frame, now: Instant) -> Result<Option<VmcEvent>, VmcError> {
        Ok(
            match SpicevmcClientMessage::decode(frame.msg_type, &frame.body)? {
                SpicevmcClientMessage::Base(base) => (self.base.handle_base(base, now)
                    == BaseOutcome::Disconnect)
                    .then_some(VmcEvent::Disconnect),
                SpicevmcClientMessage::Data(data) => {
                    self.queue_for_device(data.to_vec());
                    Some(VmcEvent::Data)
                }
                SpicevmcClientMessage::Compressed {
                    kind,
                    uncompressed_size,
                    data,
                } => {
                    let bytes = match kind {
                        compression::NONE => data.to_vec(),
                        compression::LZ4 => {
                            // Bounded by the decoder (MAX_CLIENT_DATA).
                            let mut out = vec![0; uncompressed_size as usize];
                            match lz4_flex::decompress_into(data, &mut out) {
                                Ok(n) if n == out.len() => out,
                                _ => return Err(VmcError::BadLz4(uncompressed_size)),
                            }
                        }
                        other => return Err(VmcError::UnknownCompression(other)),
                    };
                    self.queue_for_device(bytes);
                    Some(VmcEvent::Data)
                }
                SpicevmcClientMessage::PortEvent(event) => Some(VmcEvent::PortEvent(event)),
                SpicevmcClientMessage::Unknown(t) => {
                    tracing::debug!(msg_type = t, "ignoring unknown spicevmc message");
                    None
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_proto::msg::spicevmc::{client_type, port_event, server_type};
    use spice_proto::{Deframer, HeaderKind};

    fn channel(lz4: bool, port: Option<(&str, bool)>) -> VmcChannel {
        let caps = if lz4 {
            Caps::with(&[spicevmc_cap::DATA_COMPRESS_LZ4])
        } else {
            Caps::new()
        };
        VmcChannel::start(ChannelBase::new(HeaderKind::Mini, Instant::now()), &caps, port)
    }

    fn sent(ch: &VmcChannel) -> Vec<(u16, Vec<u8>)> {
        let mut d = Deframer::new(HeaderKind::Mini, 1 << 21);
        d.push(ch.base.out.pending());
        std::iter::from_fn(|| d.next_frame().unwrap())
            .map(|f| (f.msg_type, f.body))
            .collect()
    }

    fn frame(msg_type: u16, body: &[u8]) -> Frame {
        Frame {
            msg_type,
            body: body.to_vec(),
        }
    }

    #[test]
    fn port_starts_with_init_and_usbredir_with_nothing() {
        let port = channel(false, Some(("org.spice.test.0", true)));
        let msgs = sent(&port);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, server_type::PORT_INIT);
        assert_eq!(&msgs[0].1[..9], [17, 0, 0, 0, 9, 0, 0, 0, 1]);
        assert_eq!(&msgs[0].1[9..], b"org.spice.test.0\0");
        assert!(sent(&channel(true, None)).is_empty());
    }

    #[test]
    fn device_data_is_compressed_only_when_allowed_large_and_smaller() {
        let text = vec![b'a'; 4000];
        let mut ch = channel(true, None);
        ch.send_from_device(&text);
        ch.send_from_device(&text[..COMPRESS_THRESHOLD]);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        ch.send_from_device(&noise);
        let msgs = sent(&ch);
        assert_eq!(msgs[0].0, server_type::COMPRESSED_DATA);
        assert_eq!(msgs[0].1[0], compression::LZ4);
        assert_eq!(u32::from_le_bytes(msgs[0].1[1..5].try_into().unwrap()), 4000);
        let back = lz4_flex::decompress(&msgs[0].1[5..], 4000).unwrap();
        assert_eq!(back, text);
        assert_eq!(msgs[1], (server_type::DATA, text[..COMPRESS_THRESHOLD].to_vec()));
        assert_eq!(msgs[2], (server_type::DATA, noise));

        let mut plain = channel(false, None);
        plain.send_from_device(&text);
        assert_eq!(sent(&plain), [(server_type::DATA, text)]);
    }

    #[test]
    fn client_data_goes_to_the_device_in_order_across_partial_writes() {
        let mut ch = channel(false, None);
        let now = Instant::now();
        assert_eq!(
            ch.handle(&frame(client_type::DATA, b"hello "), now).unwrap(),
            Some(VmcEvent::Data)
        );
        let packed = lz4_flex::compress(&[b'w'; 3000]);
        let mut body = vec![compression::LZ4];
        body.extend_from_slice(&3000u32.to_le_bytes());
        body.extend_from_slice(&packed);
        ch.handle(&frame(client_type::COMPRESSED_DATA, &body), now)
            .unwrap();
        let mut device = Vec::new();
        // A device with room for 4 bytes, then none.
        let mut room = 4;
        let taken = ch.take_for_device(|d| {
            let n = d.len().min(room);
            room -= n;
            device.extend_from_slice(&d[..n]);
            n
        });
        assert_eq!(taken, 4);
        assert_eq!(ch.take_for_device(|_| 0), 0);
        ch.take_for_device(|d| {
            let n = d.len().min(1000);
            device.extend_from_slice(&d[..n]);
            n
        });
        let mut expected = b"hello ".to_vec();
        expected.extend_from_slice(&[b'w'; 3000]);
        assert_eq!(device, expected);
        assert!(ch.accepts_client_data());
    }

    #[test]
    fn a_slow_device_stops_client_reads_and_a_slow_client_stops_device_reads() {
        let mut ch = channel(false, None);
        let chunk = vec![1u8; 256 * 1024];
        for _ in 0..4 {
            assert!(ch.accepts_client_data());
            ch.handle(&frame(client_type::DATA, &chunk), Instant::now())
                .unwrap();
        }
        assert!(!ch.accepts_client_data());
        ch.take_for_device(|d| d.len().min(1));
        assert!(ch.accepts_client_data());

        let mut ch = channel(false, None);
        let mut reads = 0;
        while ch.wants_device_data() {
            ch.send_from_device(&[0; READ_CHUNK]);
            reads += 1;
        }
        assert_eq!(reads, MAX_QUEUED_TO_CLIENT / (READ_CHUNK + 6) + 1);
        ch.base.out.consume(ch.base.out.len());
        assert!(ch.wants_device_data());
    }

    #[test]
    fn port_events_and_bad_data_from_the_client() {
        let mut ch = channel(true, Some(("p", false)));
        let now = Instant::now();
        assert_eq!(
            ch.handle(&frame(client_type::PORT_EVENT, &[port_event::OPENED]), now)
                .unwrap(),
            Some(VmcEvent::PortEvent(port_event::OPENED))
        );
        let mut lying = vec![compression::LZ4];
        lying.extend_from_slice(&100u32.to_le_bytes());
        lying.extend_from_slice(&lz4_flex::compress(&[7; 50]));
        assert!(matches!(
            ch.handle(&frame(client_type::COMPRESSED_DATA, &lying), now),
            Err(VmcError::BadLz4(100))
        ));
        assert!(matches!(
            ch.handle(&frame(client_type::COMPRESSED_DATA, &[9, 1, 0, 0, 0, 0]), now),
            Err(VmcError::UnknownCompression(9))
        ));
        assert_eq!(ch.handle(&frame(1234, &[]), now).unwrap(), None);
        ch.send_port_event(port_event::CLOSED);
        assert_eq!(
            sent(&ch).last().unwrap(),
            &(server_type::PORT_EVENT, vec![port_event::CLOSED])
        );
    }
}
