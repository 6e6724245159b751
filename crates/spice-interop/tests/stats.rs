//! `ServerHandle::stats`: what the server says it sent agrees with what the
//! stock spice-gtk client read, per channel; a video shows as a stream with
//! its quality and bit rate; a client that does not read shows as queued
//! output; closed channels are forgotten.

use std::time::{Duration, Instant};

use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_interop::raw::RawClient;
use spice_proto::msg::{base, display};
use spice_proto::wire::Writer;
use spice_proto::ChannelType;
use spice_server::{
    ChannelStats, DisplayHandle, ImageCodec, ServerBuilder, ServerHandle, ServerStats, StreamingVideo,
};

const T: Duration = Duration::from_secs(30);

/// Polls `handle.stats()` until `done` holds for it.
fn wait_stats(handle: &ServerHandle, mut done: impl FnMut(&ServerStats) -> bool) -> ServerStats {
    let deadline = Instant::now() + T;
    loop {
        let stats = handle.stats();
        if done(&stats) || Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn channel<'a>(stats: &'a ServerStats, name: &str) -> Option<&'a ChannelStats> {
    stats.clients.first()?.channels.iter().find(|c| c.channel == name)
}

#[test]
fn stats_agree_with_what_spice_gtk_read_and_show_the_video_stream() {
    spice_interop::init_logging();
    let mut canvas = Canvas::stripes(640, 480, 9);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .streaming_video(StreamingVideo::All)
        .display(display.clone())
        .spawn()
        .expect("server starts");
    let handle = server.handle();
    assert_eq!(handle.stats(), ServerStats::default(), "no client yet");

    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);
    assert_eq!(
        gtk.wait_surface(640, 480, &canvas.packed(), T),
        0,
        "first picture"
    );

    // A video in one area, 25 fps, for two seconds: a stream while it plays.
    let area = spice_server::Rect::new(64, 64, 320, 240);
    let start = Instant::now();
    let mut live = None;
    for t in 0..50 {
        let rect = canvas.video_frame(area, t);
        display.update(&canvas.frame(), &[rect]).unwrap();
        let next = start + Duration::from_millis(40) * (t + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        if let Some(d) = channel(&handle.stats(), "display").and_then(|c| c.display.clone()) {
            live = live.or(d.stream);
        }
    }
    let live = live.expect("the live stream showed while the video played");
    assert!((1..=100).contains(&live.quality), "{live:?}");
    assert!(live.bit_rate > 0, "{live:?}");
    assert_eq!(
        gtk.wait_surface(640, 480, &canvas.packed(), T),
        0,
        "exact after the video"
    );

    // Once nothing is queued, what went out is what the client read, less
    // the link reply (written before the channel counts).
    let stats = wait_stats(&handle, |s| {
        channel(s, "display")
            .is_some_and(|c| c.queued_bytes == 0 && c.display.as_ref().is_some_and(|d| d.stream.is_none()))
    });
    assert_eq!(stats.clients.len(), 1, "{stats}");
    let client = &stats.clients[0];
    assert!(client.peer.is_some_and(|p| p.ip().is_loopback()), "{stats}");
    let names: Vec<&str> = client.channels.iter().map(|c| c.channel).collect();
    for name in ["main", "display", "inputs", "cursor"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let main = channel(&stats, "main").unwrap();
    assert!(main.round_trip.is_some(), "the main channel's net test: {main:?}");
    assert!(main.messages_in > 0 && main.messages_out > 0, "{main:?}");

    let shown = channel(&stats, "display").unwrap();
    let read = gtk.display_bytes(T);
    assert_eq!(shown.queued_bytes, 0);
    assert_eq!(shown.bytes_out, shown.bytes_written, "{shown:?}");
    assert!(
        read >= shown.bytes_written && read - shown.bytes_written < 1024,
        "spice-gtk read {read} bytes, the server wrote {} after the link reply",
        shown.bytes_written
    );
    assert!(shown.messages_in > 0, "DISPLAY_INIT and ACKs: {shown:?}");
    let d = shown.display.as_ref().expect("display figures");
    assert!(d.frames > 0, "{d:?}");
    assert!(d.stream_frames > 10 && d.stream_bytes > 0, "{d:?}");
    assert!(d.encode_time > Duration::ZERO, "{d:?}");
    let image_bytes: u64 = d.images.iter().map(|(_, _, b)| b).sum();
    assert!(
        image_bytes > 0 && image_bytes + d.stream_bytes < shown.bytes_out,
        "{d:?}"
    );
    assert!(
        d.images
            .iter()
            .any(|(c, n, _)| *c != ImageCodec::FromCache && *n > 0),
        "{d:?}"
    );
    let text = stats.to_string();
    assert!(text.contains("display:0") && text.contains("stream"), "{text}");

    // The client leaves: its channels are forgotten.
    gtk.quit();
    let after = wait_stats(&handle, |s| s.clients.is_empty());
    assert!(after.clients.is_empty(), "{after}");
}

#[test]
fn a_client_that_does_not_read_shows_queued_output() {
    spice_interop::init_logging();
    let mut canvas = Canvas::new(800, 600, 4);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .display(display.clone())
        .spawn()
        .expect("server starts");
    let handle = server.handle();
    let addr = server.local_addr();
    let mut main = RawClient::link(addr, ChannelType::Main, 0, 0, "").expect("main links");
    let init = main
        .recv_type(spice_proto::msg::main::server_type::INIT, T)
        .expect("MAIN_INIT");
    let session = u32::from_le_bytes(init.body[..4].try_into().unwrap());
    let mut screen = RawClient::link(addr, ChannelType::Display, 0, session, "").expect("display links");
    let mut body = Vec::new();
    Writer::new(&mut body).u8(1).u64(0).u8(0).i32(0);
    screen.send(display::client_type::INIT, &body);

    // Noise over the whole picture, again and again, acknowledged as a
    // client on a slow link would, but never a byte read: the socket fills
    // and the rest waits in the server.
    screen.send(base::client_type::ACK_SYNC, &1u32.to_le_bytes());
    let full = spice_server::Rect::new(0, 0, 800, 600);
    let stats = wait_stats(&handle, |s| {
        for _ in 0..4 {
            screen.send(base::client_type::ACK, &[]);
        }
        for t in 0..4 {
            canvas.video_frame(full, t + s.clients.len() as u32 * 7);
            display.update(&canvas.frame(), &[full]).unwrap();
        }
        channel(s, "display").is_some_and(|c| c.queued_bytes > 0)
    });
    let stuck = channel(&stats, "display").expect("display listed");
    assert!(stuck.queued_bytes > 0, "{stats}");
    assert_eq!(stuck.queued_bytes, stuck.bytes_out - stuck.bytes_written);
    assert_eq!(
        channel(&stats, "main").map(|c| c.queued_bytes),
        Some(0),
        "{stats}"
    );
    drop(screen);
    drop(main);
    let after = wait_stats(&handle, |s| s.clients.is_empty());
    assert!(after.clients.is_empty(), "{after}");
}
