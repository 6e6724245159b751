//! Audio playback and record: the stock spice-gtk client for the normal
//! paths, the raw client for a client that stops reading and for data modes
//! and sizes spice-gtk never sends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spice_interop::gtk::SpiceGtk;
use spice_interop::pcm;
use spice_interop::raw::{wait_closed, RawClient};
use spice_proto::consts::{audio, playback_cap, record_cap};
use spice_proto::msg::{main, playback, record};
use spice_proto::wire::Writer;
use spice_proto::ChannelType;
use spice_server::audio::{MAX_PLAYBACK_BACKLOG, PACKET_BYTES};
use spice_server::{
    PlaybackHandle, RecordHandle, RunningServer, ServerBuilder, StereoFrame, FRAMES_PER_PACKET,
};

const T: Duration = Duration::from_secs(20);

/// A deterministic stereo signal: every sample differs from its neighbours.
fn pcm_pattern(frames: usize, seed: u32) -> Vec<StereoFrame> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..frames)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            [x as i16, (x >> 16) as i16]
        })
        .collect()
}

fn le_bytes(frames: &[StereoFrame]) -> Vec<u8> {
    frames
        .iter()
        .flat_map(|[l, r]| l.to_le_bytes().into_iter().chain(r.to_le_bytes()))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn connect_with_audio(gtk: &mut SpiceGtk, addr: SocketAddr) {
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://{}:{}", addr.ip(), addr.port()),
        "audio": true,
    }));
}

fn wait_open(gtk: &mut SpiceGtk, kind: &str) {
    gtk.wait(T, |v| {
        v["event"] == "channel-event" && v["type"] == kind && v["code"] == "opened"
    })
    .unwrap_or_else(|| panic!("{kind} opens; seen: {:#?}", gtk.seen));
}

fn spawn(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> RunningServer {
    spice_interop::init_logging();
    configure(ServerBuilder::new().port(0).name("audio test"))
        .spawn()
        .expect("server starts")
}

fn seen<'a>(gtk: &'a SpiceGtk, event: &str) -> Vec<&'a Value> {
    gtk.seen.iter().filter(|v| v["event"] == event).collect()
}

#[test]
fn playback_reaches_spice_gtk_byte_exact_between_start_and_stop() {
    let playback = PlaybackHandle::new();
    playback.set_volume(&[40_000, 50_000]);
    // Playback is already running when the client connects: it gets START at once.
    playback.start();
    // Raw PCM (no Opus), so the bytes can be compared.
    let server = spawn(|b| b.playback(playback.clone()).playback_compression(false));
    let mut gtk = SpiceGtk::start();
    connect_with_audio(&mut gtk, server.local_addr());

    let start = gtk.expect("playback-start", T);
    assert_eq!(
        (&start["format"], &start["channels"], &start["rate"]),
        (&json!(audio::FMT_S16), &json!(2), &json!(48_000)),
        "{start}"
    );
    assert_eq!(
        seen(&gtk, "playback-volume").last().map(|v| &v["volume"]),
        Some(&json!([40_000, 50_000])),
        "volume is sent on connect"
    );
    assert!(playback.has_client());

    // Ten packets and a bit: the bit is padded with silence on stop.
    let frames = pcm_pattern(10 * FRAMES_PER_PACKET + 100, 1);
    assert_eq!(playback.write(&frames), frames.len());
    playback.stop();
    gtk.expect("playback-stop", T);

    let mut expected = le_bytes(&frames);
    expected.resize(11 * PACKET_BYTES, 0);
    let data = seen(&gtk, "playback-data");
    assert_eq!(data.len(), 11, "one DATA per 480 frames");
    assert!(data.iter().all(|v| v["bytes"] == PACKET_BYTES), "{data:?}");
    let path = std::env::temp_dir().join(format!("spice-audio-{}.pcm", std::process::id()));
    gtk.send(json!({"cmd": "playback_dump", "path": path}));
    let dumped = gtk.expect("playback-dumped", T);
    let received = std::fs::read(&path).expect("dumped PCM");
    let _ = std::fs::remove_file(&path);
    assert_eq!(dumped["bytes"], expected.len());
    assert!(
        received == expected,
        "the client received exactly the samples written"
    );

    // A second start reaches the client again, and mute follows the host.
    playback.start();
    gtk.expect("playback-start", T);
    playback.set_mute(true);
    let mute = gtk.expect("playback-mute", T);
    assert_eq!(mute["mute"], true);
    playback.stop();
    gtk.expect("playback-stop", T);
    gtk.quit();
}

#[test]
fn record_start_reaches_spice_gtk_and_its_samples_reach_the_host() {
    let record = RecordHandle::new();
    let server = spawn(|b| b.record(record.clone()));
    // Raw PCM: without this spice-gtk records in Opus, which the server offers.
    let mut gtk = SpiceGtk::start_with_env(&[("SPICE_DISABLE_OPUS", "1")]);
    connect_with_audio(&mut gtk, server.local_addr());
    wait_open(&mut gtk, "RecordChannel");

    // Recording starts while the client is connected.
    record.start();
    let start = gtk.expect("record-start", T);
    assert_eq!(
        (&start["format"], &start["channels"], &start["rate"]),
        (&json!(audio::FMT_S16), &json!(2), &json!(48_000)),
        "{start}"
    );

    // spice-gtk sends whole 480-frame packets, so send four of them.
    let frames = pcm_pattern(4 * FRAMES_PER_PACKET, 2);
    gtk.send(json!({"cmd": "record_send", "hex": hex(&le_bytes(&frames)), "time": 1234}));
    gtk.expect("record-sent", T);
    let mut got = Vec::new();
    let mut buf = [[0i16; 2]; 1000];
    let deadline = Instant::now() + T;
    while got.len() < frames.len() && Instant::now() < deadline {
        let n = record.read(&mut buf);
        got.extend_from_slice(&buf[..n]);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert!(
        got == frames,
        "host read {} frames, not exactly the {} sent",
        got.len(),
        frames.len()
    );

    record.stop();
    gtk.expect("record-stop", T);
    gtk.quit();
}

/// Links main and one audio channel with the raw client.
fn raw_audio(addr: SocketAddr, channel: ChannelType, caps: &[u32]) -> (RawClient, RawClient) {
    let mut main = RawClient::link(addr, ChannelType::Main, 0, 0, "").expect("main links");
    let init = main.recv_type(main::server_type::INIT, T).expect("MAIN_INIT");
    let id = u32::from_le_bytes(init.body[..4].try_into().unwrap());
    let chan = RawClient::link_with(addr, channel, 0, id, "", true, caps).expect("audio channel links");
    (main, chan)
}

#[test]
fn playback_to_a_client_that_stops_reading_keeps_only_the_newest_audio() {
    let playback = PlaybackHandle::new();
    let server = spawn(|b| b.playback(playback.clone()));
    let (_main, mut chan) = raw_audio(server.local_addr(), ChannelType::Playback, &[]);
    let mode = chan.recv_type(playback::server_type::MODE, T).expect("MODE");
    assert_eq!(&mode.body[4..6], &audio::MODE_RAW.to_le_bytes());
    let deadline = Instant::now() + T;
    while !playback.has_client() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }

    // The client reads nothing while the host writes five minutes of audio,
    // far more than the socket buffers hold. Each packet carries its number.
    playback.start();
    let packets = 30_000u16;
    let begin = Instant::now();
    for k in 0..packets {
        assert_eq!(
            playback.write(&[[k as i16, !(k as i16)]; FRAMES_PER_PACKET]),
            FRAMES_PER_PACKET
        );
    }
    let host_time = begin.elapsed();
    assert!(
        host_time < Duration::from_secs(10),
        "host was held up: {host_time:?}"
    );
    assert!(playback.overrun_frames() > 0, "the backlog overflowed");

    // Now the client catches up: START, then packets in order, the newest last.
    chan.recv_type(playback::server_type::START, T).expect("START");
    let mut numbers = Vec::new();
    while let Some(frame) = chan.recv(Duration::from_secs(1)) {
        assert_eq!(frame.msg_type, playback::server_type::DATA);
        assert_eq!(frame.body.len(), 4 + PACKET_BYTES);
        numbers.push(u16::from_le_bytes([frame.body[4], frame.body[5]]));
    }
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(numbers.last(), Some(&(packets - 1)), "the newest packet arrives");
    assert!(numbers.len() < packets as usize, "old packets were dropped");
    let tail = numbers
        .iter()
        .rev()
        .zip((0..packets).rev())
        .take_while(|(a, b)| **a == *b)
        .count();
    assert!(
        tail <= MAX_PLAYBACK_BACKLOG,
        "after the last gap at most the backlog ({MAX_PLAYBACK_BACKLOG}) was kept, got {tail}"
    );
    let dropped = u64::from(packets) - numbers.len() as u64;
    assert_eq!(playback.overrun_frames(), dropped * FRAMES_PER_PACKET as u64);
}

fn record_message(time: u32, mode: Option<u16>, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut w = Writer::new(&mut body);
    w.u32(time);
    if let Some(mode) = mode {
        w.u16(mode);
    }
    w.bytes(data);
    body
}

fn read_all(record: &RecordHandle, wait: Duration) -> Vec<StereoFrame> {
    let mut got = Vec::new();
    let mut buf = [[0i16; 2]; 1024];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let n = record.read(&mut buf);
        got.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(10));
    }
    got
}

#[test]
fn record_takes_raw_data_ignores_celt_and_refuses_oversized_packets() {
    let record = RecordHandle::new();
    record.set_volume(&[1000, 2000]);
    record.start();
    let server = spawn(|b| b.record(record.clone()));
    let (_main, mut chan) = raw_audio(server.local_addr(), ChannelType::Record, &[record_cap::VOLUME]);
    let volume = chan.recv_type(record::server_type::VOLUME, T).expect("VOLUME");
    assert_eq!(volume.body, [2, 0xe8, 3, 0xd0, 7]);
    let start = chan.recv_type(record::server_type::START, T).expect("START");
    assert_eq!(start.body, [2, 0, 0, 0, 1, 0, 0x80, 0xbb, 0, 0]);

    let first = pcm_pattern(480, 3);
    chan.send(
        record::client_type::MODE,
        &record_message(0, Some(audio::MODE_RAW), &[]),
    );
    chan.send(record::client_type::START_MARK, &record_message(0, None, &[]));
    chan.send(
        record::client_type::DATA,
        &record_message(0, None, &le_bytes(&first)),
    );
    // CELT data is not decoded: it is ignored, and raw data counts again after.
    chan.send(
        record::client_type::MODE,
        &record_message(10, Some(audio::MODE_CELT_0_5_1), &[]),
    );
    chan.send(record::client_type::DATA, &record_message(10, None, &[0x55; 120]));
    let second = pcm_pattern(100, 4);
    chan.send(
        record::client_type::MODE,
        &record_message(20, Some(audio::MODE_RAW), &[]),
    );
    chan.send(
        record::client_type::DATA,
        &record_message(20, None, &le_bytes(&second)),
    );
    let got = read_all(&record, Duration::from_millis(500));
    assert!(got == [first, second].concat(), "got {} frames", got.len());

    // A packet above the limit closes the record channel, nothing else.
    chan.send(
        record::client_type::DATA,
        &record_message(30, None, &vec![0; record::MAX_RECORD_DATA + 100]),
    );
    assert!(wait_closed(&mut chan.stream, T), "record channel closed");
    let deadline = Instant::now() + T;
    while record.has_client() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!record.has_client());
    assert!(
        RawClient::link(server.local_addr(), ChannelType::Main, 0, 0, "").is_ok(),
        "the server carries on"
    );
}

/// Waits until `n` frames were read from `record`, or the timeout.
fn read_frames(record: &RecordHandle, n: usize) -> Vec<StereoFrame> {
    let mut got = Vec::new();
    let mut buf = [[0i16; 2]; 1000];
    let deadline = Instant::now() + T;
    while got.len() < n && Instant::now() < deadline {
        let k = record.read(&mut buf);
        got.extend_from_slice(&buf[..k]);
        if k == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    got
}

#[test]
fn playback_in_opus_reaches_spice_gtk_as_the_hosts_sine() {
    let playback = PlaybackHandle::new();
    // Playback compression is on by default, and spice-gtk decodes Opus.
    let server = spawn(|b| b.playback(playback.clone()));
    let mut gtk = SpiceGtk::start();
    connect_with_audio(&mut gtk, server.local_addr());
    wait_open(&mut gtk, "PlaybackChannel");
    let deadline = Instant::now() + T;
    while !playback.has_client() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }

    playback.start();
    let start = gtk.expect("playback-start", T);
    assert_eq!((&start["channels"], &start["rate"]), (&json!(2), &json!(48_000)));
    // Half a second of 440 Hz / 880 Hz, written in packets as a sound card would.
    let packets = 50;
    let sent = pcm::sine(0, packets * FRAMES_PER_PACKET, 440.0);
    for packet in pcm::frames(&sent).chunks(FRAMES_PER_PACKET) {
        playback.write(packet);
        std::thread::sleep(Duration::from_millis(5));
    }
    playback.stop();
    gtk.expect("playback-stop", T);
    assert_eq!(
        seen(&gtk, "playback-data").len(),
        packets,
        "one decoded packet per 480 frames"
    );

    let path = std::env::temp_dir().join(format!("spice-opus-{}.pcm", std::process::id()));
    gtk.send(json!({"cmd": "playback_dump", "path": path}));
    gtk.expect("playback-dumped", T);
    let received = std::fs::read(&path).expect("dumped PCM");
    let _ = std::fs::remove_file(&path);
    assert_eq!(received.len(), sent.len(), "480 frames decoded from each packet");
    assert!(received != sent, "lossy, so the client got Opus, not raw PCM");
    let error = pcm::relative_error(&received, &sent, pcm::OPUS_DELAY_FRAMES);
    assert!(
        error < 0.1,
        "decoded audio is the host's sine: relative error {error}"
    );
    for (which, hz) in [(0, 440.0), (1, 880.0)] {
        let got = pcm::frequency(&pcm::channel(&received[pcm::OPUS_DELAY_FRAMES * 4..], which));
        assert!((got - hz).abs() < 2.0, "channel {which}: {got} Hz");
    }
    gtk.quit();
}

#[test]
fn record_in_opus_from_spice_gtk_reaches_the_host_as_its_sine() {
    let record = RecordHandle::new();
    let server = spawn(|b| b.record(record.clone()));
    // spice-gtk records in Opus since the server offers SPICE_RECORD_CAP_OPUS.
    let mut gtk = SpiceGtk::start();
    connect_with_audio(&mut gtk, server.local_addr());
    wait_open(&mut gtk, "RecordChannel");
    record.start();
    gtk.expect("record-start", T);

    let frames = 20 * FRAMES_PER_PACKET;
    let sent = pcm::sine(0, frames, 500.0);
    gtk.send(json!({"cmd": "record_send", "hex": hex(&sent), "time": 1000}));
    gtk.expect("record-sent", T);
    let got = read_frames(&record, frames);
    assert_eq!(got.len(), frames, "the host read every frame");
    let got = le_bytes(&got);
    assert!(got != sent, "lossy, so the client sent Opus, not raw PCM");
    let error = pcm::relative_error(&got, &sent, pcm::OPUS_DELAY_FRAMES);
    assert!(
        error < 0.1,
        "the host got the client's sine: relative error {error}"
    );
    record.stop();
    gtk.expect("record-stop", T);
    gtk.quit();
}

#[test]
fn playback_mode_follows_the_clients_opus_cap_and_the_setting() {
    for (caps, compression, mode) in [
        (&[playback_cap::OPUS][..], true, audio::MODE_OPUS),
        (&[][..], true, audio::MODE_RAW),
        (&[playback_cap::OPUS][..], false, audio::MODE_RAW),
    ] {
        let playback = PlaybackHandle::new();
        let server = spawn(|b| b.playback(playback.clone()).playback_compression(compression));
        let (_main, mut chan) = raw_audio(server.local_addr(), ChannelType::Playback, caps);
        let what = format!("caps {caps:?}, compression {compression}");
        let m = chan.recv_type(playback::server_type::MODE, T).expect("MODE");
        assert_eq!(&m.body[4..6], &mode.to_le_bytes(), "{what}");
        let deadline = Instant::now() + T;
        while !playback.has_client() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        playback.start();
        playback.write(&pcm_pattern(FRAMES_PER_PACKET, 9));
        let data = chan.recv_type(playback::server_type::DATA, T).expect("DATA");
        let len = data.body.len() - 4;
        if mode == audio::MODE_OPUS {
            assert!(len <= 480, "{what}: an Opus packet of {len} bytes");
        } else {
            assert_eq!(len, PACKET_BYTES, "{what}");
        }
    }
}

#[test]
fn turning_playback_compression_off_while_connected_sends_raw_mode() {
    let playback = PlaybackHandle::new();
    let server = spawn(|b| b.playback(playback.clone()));
    let (_main, mut chan) = raw_audio(server.local_addr(), ChannelType::Playback, &[playback_cap::OPUS]);
    let m = chan.recv_type(playback::server_type::MODE, T).expect("MODE");
    assert_eq!(&m.body[4..6], &audio::MODE_OPUS.to_le_bytes());
    // As QEMU's spice_server_set_playback_compression(s, 0) at run time.
    server.handle().set_playback_compression(false);
    let m = chan
        .recv_type(playback::server_type::MODE, T)
        .expect("a second MODE");
    assert_eq!(&m.body[4..6], &audio::MODE_RAW.to_le_bytes());
    playback.start();
    playback.write(&pcm_pattern(FRAMES_PER_PACKET, 10));
    let data = chan.recv_type(playback::server_type::DATA, T).expect("DATA");
    assert_eq!(data.body.len() - 4, PACKET_BYTES, "raw PCM from then on");
}
