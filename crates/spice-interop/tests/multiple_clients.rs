//! Several clients at once (`ServerBuilder::allow_multiple_clients`, the C
//! ABI's `SPICE_DEBUG_ALLOW_MC`): two stock spice-gtk clients each get the
//! whole display, cursor and playback and both type into the host; a client
//! that stops reading holds up nobody else.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use spice_interop::devices::{recording, DeviceEvent, Recorder};
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_interop::raw::RawClient;
use spice_proto::consts::display_cap;
use spice_proto::msg::{display, main};
use spice_proto::wire::Writer;
use spice_proto::ChannelType;
use spice_server::audio::PACKET_BYTES;
use spice_server::{
    CursorImage, DisplayHandle, PlaybackHandle, RunningServer, ServerBuilder, FRAMES_PER_PACKET,
};

const T: Duration = Duration::from_secs(20);

struct Host {
    server: RunningServer,
    display: DisplayHandle,
    playback: PlaybackHandle,
    events: Recorder,
}

fn host(canvas: &Canvas, allow_multiple: bool) -> Host {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let playback = PlaybackHandle::new();
    let (devices, events) = recording();
    let server = ServerBuilder::new()
        .port(0)
        .name("several clients")
        .display(display.clone())
        .keyboard(devices.clone())
        .tablet(devices)
        .playback(playback.clone())
        .playback_compression(false)
        .allow_multiple_clients(allow_multiple)
        .spawn()
        .expect("server starts");
    Host {
        server,
        display,
        playback,
        events,
    }
}

fn connect(addr: SocketAddr) -> SpiceGtk {
    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://{}:{}", addr.ip(), addr.port()),
        "audio": true,
    }));
    gtk.expect("mark", T);
    gtk
}

fn assert_surface(gtk: &mut SpiceGtk, canvas: &Canvas, what: &str) {
    let diff = gtk.wait_surface(canvas.width, canvas.height, &canvas.packed(), T);
    assert_eq!(diff, 0, "{what}: {diff} pixels differ from the host's");
}

fn disconnected(gtk: &SpiceGtk) -> bool {
    gtk.seen.iter().any(|v| {
        v["event"] == "session-disconnected"
            || (v["event"] == "channel-event" && v["type"] == "MainChannel" && v["code"] != "opened")
    })
}

fn played(gtk: &mut SpiceGtk, tag: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("spice-mc-{}-{tag}.pcm", std::process::id()));
    gtk.send(json!({"cmd": "playback_dump", "path": path}));
    gtk.expect("playback-dumped", T);
    let pcm = std::fs::read(&path).expect("dumped PCM");
    let _ = std::fs::remove_file(&path);
    pcm
}

fn key_from(gtk: &mut SpiceGtk, events: &Recorder, code: u8) {
    gtk.send(json!({"cmd": "key_press_and_release", "code": code}));
    assert_eq!(
        events.scancodes(2, T),
        [code, code | 0x80],
        "the host got the key of this client"
    );
}

#[test]
fn two_spice_gtk_clients_each_get_display_cursor_sound_and_type_into_the_host() {
    let mut canvas = Canvas::new(320, 240, 21);
    let h = host(&canvas, true);
    let addr = h.server.local_addr();
    let mut a = connect(addr);
    assert_surface(&mut a, &canvas, "first client");
    let mut b = connect(addr);
    assert_surface(&mut b, &canvas, "second client");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!disconnected(&a), "the first client stays: {:#?}", a.seen);
    assert_eq!(h.server.handle().stats().clients.len(), 2, "two sessions");

    // Damage reaches both, each through its own shadow and cache.
    for _ in 0..30 {
        let rect = canvas.scribble();
        h.display.update(&canvas.frame(), &[rect]).unwrap();
    }
    assert_surface(&mut a, &canvas, "first client after damage");
    assert_surface(&mut b, &canvas, "second client after damage");

    // The cursor too.
    let argb: Vec<u8> = (0..12 * 20 * 4).map(|i| (i * 7) as u8).collect();
    h.display
        .set_cursor(CursorImage::new(12, 20, 3, 4, argb).unwrap());
    for gtk in [&mut a, &mut b] {
        let set = gtk.expect("cursor-set", T);
        assert_eq!((&set["width"], &set["height"]), (&json!(12), &json!(20)), "{set}");
    }

    // Both type into the host.
    a.wait_inputs_ready(None, T);
    b.wait_inputs_ready(None, T);
    key_from(&mut a, &h.events, 0x1e);
    key_from(&mut b, &h.events, 0x30);
    b.send(json!({"cmd": "position", "x": 100, "y": 50, "buttons": 0}));
    a.send(json!({"cmd": "position", "x": 10, "y": 5, "buttons": 0}));
    let mut positions = Vec::new();
    while positions.len() < 2 {
        match h.events.wait_for(T, |e| matches!(e, DeviceEvent::Position(..))) {
            Some(e) => positions.push(e),
            None => break,
        }
    }
    positions.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        positions,
        [DeviceEvent::Position(10, 5, 0), DeviceEvent::Position(100, 50, 0)],
        "both clients' pointers reach the tablet"
    );

    // Both hear the same audio, byte for byte.
    for gtk in [&mut a, &mut b] {
        let opened = |v: &serde_json::Value| {
            v["event"] == "channel-event" && v["type"] == "PlaybackChannel" && v["code"] == "opened"
        };
        if !gtk.seen.iter().any(opened) {
            gtk.wait(T, opened).expect("playback opens");
        }
    }
    let deadline = Instant::now() + T;
    while h
        .server
        .handle()
        .stats()
        .clients
        .iter()
        .any(|c| !c.channels.iter().any(|ch| ch.channel == "playback"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    h.playback.start();
    let frames: Vec<[i16; 2]> = (0..6 * FRAMES_PER_PACKET)
        .map(|i| [i as i16, -(i as i16)])
        .collect();
    assert_eq!(h.playback.write(&frames), frames.len());
    h.playback.stop();
    let expected: Vec<u8> = frames
        .iter()
        .flat_map(|[l, r]| l.to_le_bytes().into_iter().chain(r.to_le_bytes()))
        .collect();
    assert_eq!(expected.len(), 6 * PACKET_BYTES);
    for (gtk, tag) in [(&mut a, "a"), (&mut b, "b")] {
        gtk.expect("playback-stop", T);
        assert!(
            played(gtk, tag) == expected,
            "client {tag} played the host's samples exactly"
        );
    }

    // One leaves; the other goes on.
    a.quit();
    for _ in 0..10 {
        let rect = canvas.scribble();
        h.display.update(&canvas.frame(), &[rect]).unwrap();
    }
    assert_surface(&mut b, &canvas, "the remaining client");
    key_from(&mut b, &h.events, 0x2e);
    let deadline = Instant::now() + T;
    while h.server.handle().stats().clients.len() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.server.handle().stats().clients.len(), 1);
    b.quit();
}

/// A raw client's display channel, linked with its main channel and then
/// never read again.
struct StalledClient {
    _main: RawClient,
    display: RawClient,
    session: u32,
}

fn stalled_client(addr: SocketAddr) -> StalledClient {
    let mut main = RawClient::link(addr, ChannelType::Main, 0, 0, "").expect("main links");
    let init = main.recv_type(main::server_type::INIT, T).expect("MAIN_INIT");
    let session = u32::from_le_bytes(init.body[0..4].try_into().unwrap());
    // A small receive window, so the server's side fills soon.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).expect("connect");
    let mut display = RawClient::link_on(
        socket.into(),
        ChannelType::Display,
        0,
        session,
        "",
        true,
        &[display_cap::MONITORS_CONFIG],
    )
    .expect("display links");
    let mut body = Vec::new();
    Writer::new(&mut body).u8(1).u64(0).u8(0).i32(0);
    display.send(display::client_type::INIT, &body);
    StalledClient {
        _main: main,
        display,
        session,
    }
}

#[test]
fn a_client_that_stops_reading_holds_up_nobody_else() {
    let mut canvas = Canvas::new(640, 480, 23);
    let h = host(&canvas, true);
    let addr = h.server.local_addr();
    let stalled = stalled_client(addr);
    let mut gtk = connect(addr);
    assert_surface(&mut gtk, &canvas, "the reading client, at first");

    // Noise frames: far more than the stalled client's socket buffers hold.
    let written = |session: u32| -> Option<u64> {
        let stats = h.server.handle().stats();
        let client = stats.clients.iter().find(|c| c.session == session)?;
        let display = client.channels.iter().find(|c| c.channel == "display")?;
        Some(display.bytes_written)
    };
    // Until the stalled client has taken nothing through three checks in a
    // row (its socket is full), the reading client must keep up exactly.
    let mut last = None;
    let mut still = 0;
    let mut round = 0;
    while still < 3 {
        assert!(round < 400, "the stalled client never filled up: {last:?}");
        for _ in 0..4 {
            let rects = [canvas.scribble(), canvas.scribble()];
            h.display.update(&canvas.frame(), &rects).unwrap();
        }
        round += 1;
        assert_surface(&mut gtk, &canvas, &format!("the reading client, round {round}"));
        let now = written(stalled.session).expect("the stalled client is still served");
        still = if last == Some(now) { still + 1 } else { 0 };
        last = Some(now);
    }
    eprintln!("stalled client stuck at {last:?} bytes after {round} rounds");
    assert_surface(&mut gtk, &canvas, "the reading client, at the end");
    drop(stalled.display);
    gtk.quit();
}

/// The guest agent has one stream: it serves the oldest client; the others
/// are told no agent is connected until it is theirs.
#[test]
fn the_agent_serves_the_first_client_then_passes_to_the_next() {
    use spice_interop::agent::{announce_capabilities, cap, clipboard_grab, FakeAgent};
    use spice_proto::agent::{message_type, PORT_CLIENT, PORT_SERVER};
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    Canvas::new(64, 48, 24).publish(&display);
    let agent = FakeAgent::new();
    let server = ServerBuilder::new()
        .port(0)
        .display(display)
        .agent(agent.clone())
        .allow_multiple_clients(true)
        .spawn()
        .unwrap();
    // Client capability announcements the agent got.
    let announcements = |agent: &FakeAgent| {
        agent
            .received()
            .iter()
            .filter(|r| r.port == PORT_CLIENT && r.message_type == message_type::ANNOUNCE_CAPABILITIES)
            .count()
    };
    let announced = |agent: &FakeAgent, count: usize| {
        let deadline = Instant::now() + T;
        while announcements(agent) < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        announcements(agent) >= count
    };
    let mut a = SpiceGtk::start();
    a.connect(server.local_addr(), None);
    assert!(announced(&agent, 1), "the first client reached the agent");
    agent.send(
        message_type::ANNOUNCE_CAPABILITIES,
        &announce_capabilities(false, &[cap::CLIPBOARD_BY_DEMAND, cap::CLIPBOARD_SELECTION]),
    );
    server.handle().agent_wakeup();
    let mut b = SpiceGtk::start();
    b.connect(server.local_addr(), None);
    b.expect("mark", T);

    agent.send(message_type::CLIPBOARD_GRAB, &clipboard_grab(0, &[1]));
    server.handle().agent_wakeup();
    assert!(
        a.wait(T, |v| v["event"] == "clipboard-grab").is_some(),
        "the agent's message reached the first client"
    );
    std::thread::sleep(Duration::from_millis(500));
    while b.poll().is_some() {}
    assert!(
        !b.seen
            .iter()
            .any(|v| v["event"] == "clipboard-grab"
                || (v["event"] == "agent-update" && v["connected"] == true)),
        "the second client has no agent yet: {:#?}",
        b.seen
    );
    assert_eq!(
        announcements(&agent),
        1,
        "only the first client spoke to the agent"
    );

    a.quit();
    assert!(
        agent
            .wait_for(T, |r| r.port == PORT_SERVER
                && r.message_type == message_type::CLIENT_DISCONNECTED)
            .is_some(),
        "the agent heard the first client leave"
    );
    assert!(
        b.wait(T, |v| v["event"] == "agent-update" && v["connected"] == true)
            .is_some(),
        "the agent passed to the second client"
    );
    assert!(announced(&agent, 2), "the second client reached the agent");
    agent.send(message_type::CLIPBOARD_GRAB, &clipboard_grab(0, &[1]));
    server.handle().agent_wakeup();
    assert!(
        b.wait(T, |v| v["event"] == "clipboard-grab").is_some(),
        "the agent's message reached the second client"
    );
    b.quit();
}
