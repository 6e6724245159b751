//! Spicevmc channels (usbredir, port, webdav) with real peers: spice-gtk's
//! `SpicePortChannel` against char devices given through the Rust API, a raw
//! client on a usbredir channel (LZ4 both ways), and QEMU 7.2's `spiceport`
//! and `spicevmc` (usb-redir) char devices on our library.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_interop::gtk::SpiceGtk;
use spice_interop::raw::RawClient;
use spice_proto::consts::spicevmc_cap;
use spice_proto::msg::main;
use spice_proto::msg::spicevmc::{client_type, compression, port_event, server_type};
use spice_proto::ChannelType;
use spice_server::{CharDevice, ServerBuilder, VmcKind};

const T: Duration = Duration::from_secs(20);

/// What a scripted device saw and what it has for the client.
#[derive(Debug, Default)]
struct Seen {
    written: Vec<u8>,
    unread: VecDeque<u8>,
    states: Vec<bool>,
    events: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct FakeDevice(Arc<Mutex<Seen>>);

impl FakeDevice {
    fn with<R>(&self, f: impl FnOnce(&mut Seen) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut(&Seen) -> bool) {
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if self.with(|s| done(s)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "device never saw {what}: {:?}",
            self.with(|s| format!("{:?}", (&s.states, &s.events, s.written.len())))
        );
    }
}

impl CharDevice for FakeDevice {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        self.with(|s| {
            let n = buf.len().min(s.unread.len());
            for (b, v) in buf.iter_mut().zip(s.unread.drain(..n)) {
                *b = v;
            }
            n
        })
    }

    fn write(&mut self, data: &[u8]) -> usize {
        self.with(|s| s.written.extend_from_slice(data));
        data.len()
    }

    fn state(&mut self, connected: bool) {
        self.with(|s| s.states.push(connected));
    }

    fn event(&mut self, event: u8) {
        self.with(|s| s.events.push(event));
    }
}

/// Port data the client received on `name`, concatenated, until `len` bytes came.
fn port_bytes(gtk: &mut SpiceGtk, name: &str, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        let Some(v) = gtk.wait(T, |v| v["event"] == "port-data" && v["name"] == name) else {
            panic!("port data stopped at {} of {len} bytes", got.len());
        };
        got.extend(hex(v["hex"].as_str().unwrap()));
    }
    got
}

/// Whether the client is offered port channel `id` (spice-gtk links it).
fn port_channel_new(gtk: &mut SpiceGtk, id: u8) -> bool {
    gtk.wait(T, |v| {
        v["event"] == "channel-new" && v["type"] == "PortChannel" && v["id"] == id
    })
    .is_some()
}

/// Whether the client's port `name` comes to show `opened`.
fn port_opened(gtk: &mut SpiceGtk, name: &str, opened: bool) -> bool {
    gtk.wait(T, |v| {
        v["event"] == "port-opened" && v["name"] == name && v["opened"] == opened
    })
    .is_some()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// A raw client's main channel: the session id and the channels offered.
fn main_link(addr: std::net::SocketAddr) -> (RawClient, u32, Vec<(u8, u8)>) {
    let mut main_ch = RawClient::link(addr, ChannelType::Main, 0, 0, "").expect("main links");
    let init = main_ch.recv_type(main::server_type::INIT, T).expect("MAIN_INIT");
    let session = u32::from_le_bytes(init.body[..4].try_into().unwrap());
    main_ch.send(main::client_type::ATTACH_CHANNELS, &[]);
    let list = main_ch
        .recv_type(main::server_type::CHANNELS_LIST, T)
        .expect("channels list");
    let channels = list.body[4..].chunks(2).map(|c| (c[0], c[1])).collect();
    (main_ch, session, channels)
}

/// Links usbredir channel 0 of `session`, with the LZ4 capability as spice-gtk.
fn link_usbredir(addr: std::net::SocketAddr, session: u32) -> RawClient {
    RawClient::link_with(
        addr,
        ChannelType::UsbRedir,
        0,
        session,
        "",
        true,
        &[spicevmc_cap::DATA_COMPRESS_LZ4],
    )
    .expect("usbredir links")
}

#[test]
fn spice_gtk_port_channels_carry_bytes_and_events_both_ways() {
    spice_interop::init_logging();
    let builder = ServerBuilder::new().port(0);
    let handle = builder.handle();
    let first = FakeDevice::default();
    let second = FakeDevice::default();
    let a = handle.add_vmc_device(VmcKind::Port("org.spice.test.0".into()), Box::new(first.clone()));
    handle.add_vmc_device(VmcKind::Port("org.spice.test.1".into()), Box::new(second.clone()));
    handle.port_event(a, port_event::OPENED);
    let server = builder.spawn().unwrap();
    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);

    // Two port channels, ids 0 and 1 as the C server numbers them; the first
    // says in PORT_INIT that the guest has it open.
    for id in [0, 1] {
        assert!(port_channel_new(&mut gtk, id));
    }
    assert!(port_opened(&mut gtk, "org.spice.test.0", true));
    first.wait_for("state(true)", |s| s.states == [true]);
    second.wait_for("state(true)", |s| s.states == [true]);

    // Client to device.
    gtk.send(
        serde_json::json!({"cmd": "port_write", "name": "org.spice.test.0", "hex": to_hex(b"hello device")}),
    );
    first.wait_for("the client's bytes", |s| s.written == b"hello device");
    assert!(second.with(|s| s.written.is_empty()));

    // Device to client: more than one read's worth, in order.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    first.with(|s| s.unread.extend(&data));
    handle.vmc_wakeup(a);
    assert_eq!(port_bytes(&mut gtk, "org.spice.test.0", data.len()), data);

    // Port events both ways.
    handle.port_event(a, port_event::CLOSED);
    assert!(port_opened(&mut gtk, "org.spice.test.0", false));
    assert!(gtk
        .wait(T, |v| v["event"] == "port-event"
            && v["port_event"] == port_event::CLOSED)
        .is_some());
    // spice-gtk sends only events above CLOSED (its own open and close are the
    // channel's link and its end).
    gtk.send(
        serde_json::json!({"cmd": "port_event", "name": "org.spice.test.0", "event": port_event::BREAK}),
    );
    first.wait_for("the client's port event", |s| s.events == [port_event::BREAK]);

    // Hot-plug while connected: the client is offered the new port and links it.
    let hot = FakeDevice::default();
    let h = handle.add_vmc_device(VmcKind::Port("org.spice.test.hot".into()), Box::new(hot.clone()));
    assert!(port_channel_new(&mut gtk, 2));
    hot.wait_for("state(true)", |s| s.states == [true]);
    hot.with(|s| s.unread.extend(b"hot"));
    handle.vmc_wakeup(h);
    assert_eq!(port_bytes(&mut gtk, "org.spice.test.hot", 3), b"hot");
    // Removal closes its channel; the device hears state(false).
    handle.remove_vmc_device(h);
    hot.wait_for("state(false)", |s| s.states == [true, false]);

    gtk.quit();
    first.wait_for("state(false) when the client left", |s| s.states == [true, false]);
    second.wait_for("state(false) when the client left", |s| s.states == [true, false]);
}

#[test]
fn raw_usbredir_client_gets_lz4_only_when_it_shrinks_and_may_send_lz4() {
    spice_interop::init_logging();
    let builder = ServerBuilder::new().port(0);
    let handle = builder.handle();
    let usb = FakeDevice::default();
    let id = handle.add_vmc_device(VmcKind::UsbRedir, Box::new(usb.clone()));
    let webdav = FakeDevice::default();
    handle.add_vmc_device(
        VmcKind::Port("org.spice-space.webdav.0".into()),
        Box::new(webdav.clone()),
    );
    let server = builder.spawn().unwrap();
    let addr = server.local_addr();
    let (_main, session, channels) = main_link(addr);
    assert!(
        channels.contains(&(ChannelType::UsbRedir as u8, 0)),
        "{channels:?}"
    );
    assert!(channels.contains(&(ChannelType::Webdav as u8, 0)), "{channels:?}");

    let mut ch = link_usbredir(addr, session);
    usb.wait_for("state(true)", |s| s.states == [true]);

    // Compressible and over the threshold: LZ4. Small: plain.
    let text = vec![b'u'; 5000];
    usb.with(|s| s.unread.extend(&text));
    handle.vmc_wakeup(id);
    let frame = ch.recv(T).expect("data");
    assert_eq!(frame.msg_type, server_type::COMPRESSED_DATA);
    assert_eq!(frame.body[0], compression::LZ4);
    assert_eq!(lz4_flex::decompress(&frame.body[5..], 5000).unwrap(), text);
    usb.with(|s| s.unread.extend(b"tiny"));
    handle.vmc_wakeup(id);
    let frame = ch.recv(T).expect("data");
    assert_eq!(
        (frame.msg_type, frame.body.as_slice()),
        (server_type::DATA, &b"tiny"[..])
    );

    // The client's LZ4 reaches the device expanded.
    let mut body = vec![compression::LZ4];
    body.extend_from_slice(&3000u32.to_le_bytes());
    body.extend_from_slice(&lz4_flex::compress(&[b'c'; 3000]));
    ch.send(client_type::COMPRESSED_DATA, &body);
    ch.send(client_type::DATA, b"!");
    usb.wait_for("the client's data", |s| s.written.len() == 3001);
    assert!(usb.with(|s| s.written[..3000].iter().all(|&b| b == b'c') && s.written[3000] == b'!'));

    // Lying about the size closes the channel; the device hears state(false).
    let mut lie = vec![compression::LZ4];
    lie.extend_from_slice(&100u32.to_le_bytes());
    lie.extend_from_slice(&lz4_flex::compress(&[1; 50]));
    ch.send(client_type::COMPRESSED_DATA, &lie);
    usb.wait_for("state(false)", |s| s.states == [true, false]);
    assert!(spice_interop::raw::wait_closed(&mut ch.stream, T));
    assert!(webdav.with(|s| s.states.is_empty()));

    // Linked again, then once more: the newer link replaces the older one,
    // which is closed, so the device has one client at a time.
    let mut again = link_usbredir(addr, session);
    usb.wait_for("state(true) again", |s| s.states == [true, false, true]);
    let _newest = link_usbredir(addr, session);
    usb.wait_for("the older link replaced", |s| {
        s.states == [true, false, true, false, true]
    });
    assert!(spice_interop::raw::wait_closed(&mut again.stream, T));
}

/// QEMU's tests share the machine's two cores: one at a time.
fn qemu_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Port data on `name` until `text` shows in it (as text).
fn port_text_until(gtk: &mut SpiceGtk, name: &str, text: &str) -> Option<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + T;
    while !String::from_utf8_lossy(&got).contains(text) {
        let left = deadline.checked_duration_since(Instant::now())?;
        let v = gtk.wait(left, |v| v["event"] == "port-data" && v["name"] == name)?;
        got.extend(hex(v["hex"].as_str().unwrap()));
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn qemu_hmp_monitor_on_a_spiceport_answers_spice_gtk_and_hot_plugs_a_port() {
    use spice_interop::qemu::{Library, Qemu};
    let _lock = qemu_lock();
    spice_interop::init_logging();
    const PORT: &str = "org.qemu.monitor.hmp.0";
    let args = [
        "-chardev",
        "spiceport,id=p0,name=org.qemu.monitor.hmp.0",
        "-mon",
        "chardev=p0,mode=readline",
        "-trace",
        "spice_vmc_event",
    ];
    let mut transcripts = Vec::new();
    for library in [Library::rust(), Library::Debian] {
        let mut qemu = Qemu::start(&library, &args);
        qemu.assert_library();
        let mut gtk = SpiceGtk::start();
        gtk.connect(qemu.addr, None);
        // The monitor opened its end when QEMU started: PORT_INIT says so.
        assert!(
            port_opened(&mut gtk, PORT, true),
            "{} library: port not opened; seen {:?}",
            library.name(),
            gtk.seen
        );
        // The client's link is the device's state(1): the monitor greets.
        let banner = port_text_until(&mut gtk, PORT, "(qemu) ").unwrap_or_else(|| {
            panic!(
                "{} library: no monitor banner; seen {:?}",
                library.name(),
                gtk.seen
            )
        });
        assert!(banner.contains("QEMU 7.2"), "{banner:?}");
        gtk.send(serde_json::json!({"cmd": "port_write", "name": PORT, "hex": to_hex(b"info version\n")}));
        let answer = port_text_until(&mut gtk, PORT, "(qemu) ")
            .unwrap_or_else(|| panic!("{} library: no answer; seen {:?}", library.name(), gtk.seen));
        assert!(
            answer.contains("info version") && answer.contains("7.2."),
            "{answer:?}"
        );
        transcripts.push(answer);

        // The client's port event reaches QEMU's char device (its `event`
        // callback turns a break into CHR_EVENT_BREAK, traced).
        assert!(!qemu.log().contains("spice_vmc_event"), "{}", qemu.log());
        gtk.send(serde_json::json!({"cmd": "port_event", "name": PORT, "event": port_event::BREAK}));
        let deadline = Instant::now() + T;
        while !qemu.log().contains("spice_vmc_event") {
            assert!(
                Instant::now() < deadline,
                "{} library: no spice_vmc_event in QEMU's trace:\n{}",
                library.name(),
                qemu.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }

        // Hot-plug through the monitor itself: QEMU adds a spiceport char
        // device (spice_server_add_interface) while the client is connected,
        // which is offered the new port channel (id 1), then removes it.
        let add = b"chardev-add spiceport,id=hot,name=org.spice.hot.0\n";
        gtk.send(serde_json::json!({"cmd": "port_write", "name": PORT, "hex": to_hex(add)}));
        assert!(
            port_channel_new(&mut gtk, 1),
            "{} library: hot-plugged port not offered; seen {:?}",
            library.name(),
            gtk.seen
        );
        gtk.send(
            serde_json::json!({"cmd": "port_write", "name": PORT, "hex": to_hex(b"chardev-remove hot\n")}),
        );
        assert!(
            gtk.wait(T, |v| v["event"] == "channel-event" && v["type"] == "PortChannel")
                .is_some(),
            "{} library: removed port's channel not closed; seen {:?}",
            library.name(),
            gtk.seen
        );
        // QEMU no longer lists it (its prompts may have come while waiting
        // above: read up to the prompt after this command's echo).
        gtk.send(serde_json::json!({"cmd": "port_write", "name": PORT, "hex": to_hex(b"info chardev\n")}));
        let mut text = String::new();
        while !text
            .split("info chardev")
            .nth(1)
            .is_some_and(|after| after.contains("(qemu) "))
        {
            text += &port_text_until(&mut gtk, PORT, "(qemu) ").expect("info chardev answered");
        }
        let listing = text.split("info chardev").nth(1).unwrap();
        assert!(
            listing.contains("p0:") && !listing.contains("hot:"),
            "{listing:?}"
        );
        assert!(qemu.is_alive());
        gtk.quit();
    }
    assert_eq!(
        transcripts[0], transcripts[1],
        "the same answer through both libraries"
    );
}

#[test]
fn qemu_usb_redir_hello_reaches_a_raw_client_and_ours_reaches_qemu_on_both_libraries() {
    use spice_interop::qemu::{Library, Qemu};
    let _lock = qemu_lock();
    spice_interop::init_logging();
    // debug=3 (usbredirparser_info): QEMU logs the peer's hello.
    let args = [
        "-chardev",
        "spicevmc,id=u0,name=usbredir",
        "-device",
        "qemu-xhci",
        "-device",
        "usb-redir,chardev=u0,debug=3",
    ];
    for library in [Library::rust(), Library::Debian] {
        let qemu = Qemu::start(&library, &args);
        qemu.assert_library();
        let (main_ch, session, channels) = main_link(qemu.addr);
        assert!(
            channels.contains(&(ChannelType::UsbRedir as u8, 0)),
            "{channels:?}"
        );
        let mut usb = link_usbredir(qemu.addr, session);

        // usbredir's header: u32 type (0 = hello), u32 length, u32 id; the hello
        // is a 64-byte version string and capability words.
        let mut data = Vec::new();
        let deadline = Instant::now() + T;
        while data.len() < 12 + 64 {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no usbredir hello from QEMU: {data:?}\n{}", qemu.stderr()));
            let frame = usb.recv(left).expect("spicevmc data");
            match frame.msg_type {
                server_type::DATA => data.extend_from_slice(&frame.body),
                server_type::COMPRESSED_DATA => {
                    let size = u32::from_le_bytes(frame.body[1..5].try_into().unwrap()) as usize;
                    data.extend(lz4_flex::decompress(&frame.body[5..], size).unwrap());
                }
                _ => {}
            }
        }
        assert_eq!(u32::from_le_bytes(data[..4].try_into().unwrap()), 0, "hello type");
        let length = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
        assert!(length >= 64, "hello length {length}");
        let version = String::from_utf8_lossy(&data[12..12 + 64]);
        assert!(version.starts_with("qemu usb-redir guest"), "{version:?}");

        // Our hello back: version, and no capabilities.
        let mut hello = Vec::new();
        hello.extend_from_slice(&0u32.to_le_bytes());
        hello.extend_from_slice(&(64u32 + 4).to_le_bytes());
        hello.extend_from_slice(&0u32.to_le_bytes());
        let mut name = b"spice-rs interop test".to_vec();
        name.resize(64, 0);
        hello.extend_from_slice(&name);
        hello.extend_from_slice(&0u32.to_le_bytes());
        usb.send(client_type::DATA, &hello);
        let deadline = Instant::now() + T;
        while !qemu.stderr().contains("spice-rs interop test") {
            assert!(
                Instant::now() < deadline,
                "QEMU never logged our hello:\n{}",
                qemu.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(main_ch);
    }
}

/// A device with endless incompressible data, counting what the server read.
#[derive(Debug, Clone, Default)]
struct Endless(Arc<std::sync::atomic::AtomicUsize>, Arc<Mutex<u64>>);

impl CharDevice for Endless {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut x = self.1.lock().unwrap();
        for b in buf.iter_mut() {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *b = (*x >> 24) as u8;
        }
        self.0.fetch_add(buf.len(), std::sync::atomic::Ordering::Relaxed);
        buf.len()
    }

    fn write(&mut self, data: &[u8]) -> usize {
        data.len()
    }
}

#[test]
fn a_client_that_does_not_read_stops_the_device_being_read() {
    use std::io::Read;
    use std::sync::atomic::Ordering::Relaxed;
    spice_interop::init_logging();
    let builder = ServerBuilder::new().port(0);
    let handle = builder.handle();
    let device = Endless::default();
    *device.1.lock().unwrap() = 0x9e37_79b9_7f4a_7c15;
    let id = handle.add_vmc_device(VmcKind::UsbRedir, Box::new(device.clone()));
    let server = builder.spawn().unwrap();
    let (_main, session, _) = main_link(server.local_addr());
    let mut usb = link_usbredir(server.local_addr(), session);
    handle.vmc_wakeup(id);
    // Reading stops once the socket's buffers and the 1 MiB queue are full.
    let mut last = usize::MAX;
    let deadline = Instant::now() + T;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = device.0.load(Relaxed);
        if now == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the device is read on and on: {now} bytes"
        );
        last = now;
    }
    eprintln!("device read stopped at {last} bytes for a client that reads nothing");
    assert!(last > 1 << 20, "{last} bytes read");
    assert!(
        last < 32 << 20,
        "{last} bytes read for a client that reads nothing"
    );
    // The client reads: the device is read again.
    let mut buf = vec![0; 1 << 20];
    let mut taken = 0;
    while taken < 2 * last {
        taken += usb.stream.read(&mut buf).expect("read");
    }
    assert!(device.0.load(Relaxed) > last, "reading resumed");
}

#[test]
fn qemu_offers_the_same_spicevmc_channels_on_both_libraries() {
    use spice_interop::qemu::{Library, Qemu};
    let _lock = qemu_lock();
    spice_interop::init_logging();
    let args = [
        "-chardev",
        "spiceport,id=p0,name=org.spice.a.0",
        "-chardev",
        "spiceport,id=p1,name=org.spice.b.0",
        "-chardev",
        "spiceport,id=w0,name=org.spice-space.webdav.0",
        "-chardev",
        "spicevmc,id=u0,name=usbredir",
        "-chardev",
        "spicevmc,id=u1,name=usbredir",
        "-device",
        "qemu-xhci",
        "-device",
        "usb-redir,chardev=u0",
        "-device",
        "usb-redir,chardev=u1",
    ];
    let mut lists = Vec::new();
    for library in [Library::rust(), Library::Debian] {
        let qemu = Qemu::start(&library, &args);
        qemu.assert_library();
        let (_main, _, mut channels) = main_link(qemu.addr);
        channels.retain(|&(kind, _)| kind >= ChannelType::UsbRedir as u8);
        channels.sort();
        lists.push(channels);
    }
    let (port, usb, webdav) = (
        ChannelType::Port as u8,
        ChannelType::UsbRedir as u8,
        ChannelType::Webdav as u8,
    );
    assert_eq!(lists[0], [(usb, 0), (usb, 1), (port, 0), (port, 1), (webdav, 0)]);
    assert_eq!(lists[0], lists[1], "ours, then Debian's");
}
