//! Fuzz oracle for a spicevmc channel (`channel::spicevmc`): client data
//! (plain, NONE and LZ4 `COMPRESSED_DATA`), port events, and a device that
//! takes and gives bytes as the host's actions say.

use std::collections::VecDeque;
use std::time::Instant;

use spice_proto::caps::Caps;
use spice_proto::consts::spicevmc_cap;
use spice_proto::msg::spicevmc::{compression, server_type, MAX_CLIENT_DATA};
use spice_proto::HeaderKind;

use super::{ClientView, Cursor, Grammar, Step};
use crate::channel::spicevmc::{VmcChannel, VmcError, VmcEvent, MAX_QUEUED_TO_CLIENT, MAX_QUEUED_TO_DEVICE};
use crate::channel::ChannelBase;

/// The configuration byte of [`spicevmc_sequence`].
pub mod config {
    /// The client has `SPICE_SPICEVMC_CAP_DATA_COMPRESS_LZ4`.
    pub const LZ4: u8 = 1 << 0;
    /// The channel is a port (it starts with `PORT_INIT`).
    pub const PORT: u8 = 1 << 1;
    /// The mini data header.
    pub const MINI_HEADER: u8 = 1 << 2;
}

/// Host actions of [`spicevmc_sequence`].
pub mod action {
    /// The device has room for `64 * n` bytes (one byte `n` follows).
    pub const DEVICE_TAKES: u8 = 0;
    /// The device gives `n * 97` bytes of a pattern (one byte `n` follows;
    /// odd `n` repeat one byte, so they compress).
    pub const DEVICE_GIVES: u8 = 1;
    /// The client's socket takes everything queued.
    pub const DRAIN: u8 = 2;
    /// The device's port opens (odd byte) or closes.
    pub const PORT_EVENT: u8 = 3;
}

/// Invariants: the device receives exactly the client's bytes, in order
/// (LZ4 expanded), and never more is queued for it than the driver's read
/// gate allows; the client gets `PORT_INIT` first on a port, then the
/// device's bytes in order, as `DATA` or, only with its capability, as LZ4
/// that expands to more than the threshold and is smaller than the bytes;
/// device data is offered only while the client's queue is under its bound;
/// a malformed message ends the run with an error, never a panic.
pub fn spicevmc_sequence(data: &[u8]) {
    let Some((&cfg, steps)) = data.split_first() else {
        return;
    };
    let header = if cfg & config::MINI_HEADER != 0 {
        HeaderKind::Mini
    } else {
        HeaderKind::Full
    };
    let caps = if cfg & config::LZ4 != 0 {
        Caps::with(&[spicevmc_cap::DATA_COMPRESS_LZ4])
    } else {
        Caps::new()
    };
    let now = Instant::now();
    let port = (cfg & config::PORT != 0).then_some(("org.fuzz.0", true));
    let mut ch = VmcChannel::start(ChannelBase::new(header, now), &caps, port);
    let mut expected_device = VecDeque::new();
    let mut device_got = Vec::new();
    let mut sent_by_device = Vec::new();
    let mut counter = 0u8;
    // PORT_INIT is still to be seen by the client.
    let mut init_due = port.is_some();
    let mut view = ClientView::new(header);
    let mut cursor = Cursor::new(steps);
    while let Some(step) = cursor.step(Grammar::Messages) {
        match step {
            Step::Client { msg_type, body } => {
                // The driver reads the client only below the gate.
                if !ch.accepts_client_data() {
                    continue;
                }
                let frame = spice_proto::Frame {
                    msg_type,
                    body: body.to_vec(),
                };
                match ch.handle(&frame, now) {
                    Ok(Some(VmcEvent::Data)) => expected_device.extend(client_bytes(msg_type, body)),
                    Ok(_) => {}
                    Err(VmcError::Decode(_) | VmcError::UnknownCompression(_) | VmcError::BadLz4(_)) => {
                        return
                    }
                }
            }
            Step::Host(action::DEVICE_TAKES) => {
                let mut room = usize::from(cursor.byte().unwrap_or(0)) * 64;
                ch.take_for_device(|d| {
                    let n = d.len().min(room);
                    room -= n;
                    device_got.extend_from_slice(&d[..n]);
                    n
                });
            }
            Step::Host(action::DEVICE_GIVES) => {
                let n = usize::from(cursor.byte().unwrap_or(0)) * 97;
                if ch.wants_device_data() && n > 0 {
                    counter = counter.wrapping_add(1);
                    let bytes: Vec<u8> = if n % 2 == 1 {
                        vec![counter; n]
                    } else {
                        (0..n).map(|i| (i as u8).wrapping_mul(counter)).collect()
                    };
                    ch.send_from_device(&bytes);
                    sent_by_device.extend_from_slice(&bytes);
                }
            }
            Step::Host(action::DRAIN) => {
                check_and_drain(&mut ch, &mut view, &mut init_due, cfg, &mut sent_by_device)
            }
            Step::Host(action::PORT_EVENT) => {
                let event = cursor.byte().unwrap_or(0) & 1;
                ch.send_port_event(event);
            }
            Step::Host(_) | Step::Wait(_) | Step::AgentToken(_) | Step::AgentStart(_) => {}
        }
        let waiting = expected_device.len() - device_got.len().min(expected_device.len());
        assert_eq!(
            ch.accepts_client_data(),
            waiting < MAX_QUEUED_TO_DEVICE,
            "read gate"
        );
        assert!(!ch.wants_device_data() || ch.base.out.len() < MAX_QUEUED_TO_CLIENT);
        let expected: Vec<u8> = expected_device.iter().take(device_got.len()).copied().collect();
        assert_eq!(device_got, expected, "device bytes in order");
    }
    check_and_drain(&mut ch, &mut view, &mut init_due, cfg, &mut sent_by_device);
}

/// What a client message the channel accepted gives the device.
fn client_bytes(msg_type: u16, body: &[u8]) -> Vec<u8> {
    use spice_proto::msg::spicevmc::SpicevmcClientMessage as M;
    match M::decode(msg_type, body) {
        Ok(M::Data(d)) => d.to_vec(),
        Ok(M::Compressed {
            kind: compression::NONE,
            data,
            ..
        }) => data.to_vec(),
        Ok(M::Compressed {
            uncompressed_size,
            data,
            ..
        }) => {
            assert!(uncompressed_size as usize <= MAX_CLIENT_DATA);
            lz4_flex::decompress(data, uncompressed_size as usize).expect("the channel accepted it")
        }
        other => panic!("not data: {other:?}"),
    }
}

/// Decodes what the client was sent and checks it against the device's
/// bytes, then empties the queue.
fn check_and_drain(ch: &mut VmcChannel, view: &mut ClientView, port: &mut bool, cfg: u8, sent: &mut Vec<u8>) {
    let frames = view.frames(&ch.base.out);
    let mut got = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        match f.msg_type {
            server_type::PORT_INIT => {
                assert!(*port && i == 0, "PORT_INIT only first");
                *port = false;
            }
            server_type::PORT_EVENT => assert_eq!(f.body.len(), 1),
            server_type::DATA => got.extend_from_slice(&f.body),
            server_type::COMPRESSED_DATA => {
                assert!(cfg & config::LZ4 != 0, "lz4 without the capability");
                assert_eq!(f.body[0], compression::LZ4);
                let size = u32::from_le_bytes(f.body[1..5].try_into().unwrap()) as usize;
                assert!(size > 1000 && f.body.len() - 5 < size);
                got.extend(lz4_flex::decompress(&f.body[5..], size).unwrap());
            }
            other => panic!("unexpected message {other}"),
        }
    }
    assert_eq!(&got[..], &sent[..got.len()]);
    assert_eq!(got.len(), sent.len(), "every device byte sent");
    sent.clear();
    view.drain(&mut ch.base.out);
}
