//! Client migration between two servers (semi-seamless, as QEMU drives it
//! with `client_migrate_info` then `migrate`), both ends run by our
//! library, with a raw client playing spice-gtk's part: the source tells it
//! MIGRATE_BEGIN with the destination's address; it links its channels to
//! the destination with the source's session id, where they wait (no INIT,
//! nothing on the other channels) until it says MIGRATE_END there; then
//! the destination starts the session: INIT with the same session id, then
//! each channel's opening messages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spice_interop::pattern::Canvas;
use spice_interop::raw::RawClient;
use spice_proto::consts::main_cap;
use spice_proto::msg::{inputs, main};
use spice_proto::ChannelType;
use spice_server::{
    DisplayHandle, ImageCompression, MigrationHost, MigrationTarget, RunningServer, ServerBuilder,
};

const T: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(400);

fn server() -> RunningServer {
    server_with(ImageCompression::AutoGlz)
}

fn server_with(compression: ImageCompression) -> RunningServer {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    Canvas::new(64, 48, 1).publish(&display);
    ServerBuilder::new()
        .port(0)
        .display(display)
        .image_compression(compression)
        .spawn()
        .unwrap()
}

/// Counts the migration host's callbacks.
#[derive(Default, Clone)]
struct Calls {
    connect: Arc<AtomicUsize>,
    end: Arc<AtomicUsize>,
}

impl MigrationHost for Calls {
    fn connect_complete(&self) {
        self.connect.fetch_add(1, Ordering::SeqCst);
    }
    fn end_complete(&self) {
        self.end.fetch_add(1, Ordering::SeqCst);
    }
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + T;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn session_id(init: &spice_proto::Frame) -> u32 {
    u32::from_le_bytes(init.body[..4].try_into().unwrap())
}

#[test]
fn semi_seamless_client_moves_to_the_destination_which_starts_its_session_on_migrate_end() {
    let (source, dest) = (server(), server());
    let calls = Calls::default();
    source.handle().set_migration_host(Some(Box::new(calls.clone())));
    let caps = [main_cap::SEMI_SEAMLESS_MIGRATE];

    let mut src_main = RawClient::link_with(source.local_addr(), ChannelType::Main, 0, 0, "", true, &caps)
        .expect("main links");
    let id = session_id(&src_main.recv_type(main::server_type::INIT, T).expect("INIT"));
    let mut src_inputs =
        RawClient::link(source.local_addr(), ChannelType::Inputs, 0, id, "").expect("inputs");
    src_inputs
        .recv_type(inputs::server_type::INIT, T)
        .expect("INPUTS_INIT");

    let dst_port = dest.local_addr().port();
    source.handle().migrate_connect(MigrationTarget {
        host: "127.0.0.1".into(),
        port: Some(dst_port),
        // The destination's TLS port travels too (a client whose channels
        // need TLS links there); the destination here has none listening,
        // and the raw client uses the plain port.
        tls_port: Some(5901),
        cert_subject: Some("CN=destination".into()),
    });
    let begin = src_main
        .recv_type(main::server_type::MIGRATE_BEGIN, T)
        .expect("MIGRATE_BEGIN");
    assert_eq!(
        u16::from_le_bytes([begin.body[0], begin.body[1]]),
        dst_port,
        "destination port"
    );
    assert_eq!(
        calls.connect.load(Ordering::SeqCst),
        0,
        "connect completes on the client's answer"
    );

    // The client links to the destination under the source's session id:
    // accepted, and nothing is said before its migration ends.
    let mut dst_main = RawClient::link_with(dest.local_addr(), ChannelType::Main, 0, id, "", true, &caps)
        .expect("dest main");
    let mut dst_inputs =
        RawClient::link(dest.local_addr(), ChannelType::Inputs, 0, id, "").expect("dest inputs");
    assert!(dst_main.recv(QUIET).is_none(), "no INIT before MIGRATE_END");
    // Seamless migration from a source of a newer migration protocol is
    // declined (as C does), so the client goes on semi-seamless.
    dst_main.send(main::client_type::MIGRATE_DST_DO_SEAMLESS, &2u32.to_le_bytes());
    dst_main
        .recv_type(main::server_type::MIGRATE_DST_SEAMLESS_NACK, T)
        .expect("DST_SEAMLESS_NACK");
    assert!(dst_inputs.recv(QUIET).is_none(), "the inputs channel waits too");
    // Another session id is still refused.
    assert!(RawClient::link(dest.local_addr(), ChannelType::Inputs, 0, id ^ 1, "").is_err());

    src_main.send(main::client_type::MIGRATE_CONNECTED, &[]);
    wait_for("connect_complete", || calls.connect.load(Ordering::SeqCst) == 1);

    source.handle().migrate_end(true);
    src_main
        .recv_type(main::server_type::MIGRATE_END, T)
        .expect("MIGRATE_END from the source");
    drop(src_main);
    drop(src_inputs);
    wait_for("end_complete", || calls.end.load(Ordering::SeqCst) == 1);

    dst_main.send(main::client_type::MIGRATE_END, &[]);
    let init = dst_main
        .recv_type(main::server_type::INIT, T)
        .expect("INIT from the destination");
    assert_eq!(session_id(&init), id, "the session keeps its id");
    dst_inputs
        .recv_type(inputs::server_type::INIT, T)
        .expect("the waiting inputs channel starts");
    // The session is live there: new channels link at once.
    let mut display = RawClient::link(dest.local_addr(), ChannelType::Display, 0, id, "").expect("display");
    display
        .recv(T)
        .expect("the display channel starts at once after the migration");
}

#[test]
fn a_migrating_client_that_leaves_before_the_end_frees_its_waiting_channels() {
    let dest = server();
    let id = 0x5eed;
    let dst_main = RawClient::link(dest.local_addr(), ChannelType::Main, 0, id, "").expect("dest main");
    let mut waiting = RawClient::link(dest.local_addr(), ChannelType::Inputs, 0, id, "").expect("inputs");
    drop(dst_main);
    assert!(
        spice_interop::raw::wait_closed(&mut waiting.stream, T),
        "a waiting channel closes with its session"
    );
    // A fresh client is served normally afterwards.
    let mut fresh = RawClient::link(dest.local_addr(), ChannelType::Main, 0, 0, "").expect("main");
    fresh.recv_type(main::server_type::INIT, T).expect("INIT");
}

/// Reads frames until one of `msg_type`, returning the types seen before it.
fn until(chan: &mut RawClient, msg_type: u16) -> (Vec<u16>, spice_proto::Frame) {
    let mut before = Vec::new();
    loop {
        let frame = chan
            .recv(T)
            .unwrap_or_else(|| panic!("no message {msg_type} (after {before:?})"));
        if frame.msg_type == msg_type {
            return (before, frame);
        }
        before.push(frame.msg_type);
    }
}

/// Seamless migration between two of our servers, the raw client doing
/// what spice-gtk does: the source (seamless allowed) says
/// MIGRATE_BEGIN_SEAMLESS; the destination ACKs DST_DO_SEAMLESS and its
/// channels run at once, the display waiting for its state; at the end
/// each source channel says MIGRATE (flush and data), answers the flush
/// mark with MIGRATE_DATA, which the client passes on; the destination's
/// display then redraws over the surface the client kept (no
/// SURFACE_CREATE) after emptying its pixmap cache; the source closes the
/// client's main channel once every other channel left, and the host
/// hears end_complete.
#[test]
fn seamless_client_moves_every_channel_with_its_state() {
    use spice_proto::msg::{base, display};
    use spice_proto::wire::Writer;

    // GLZ always, so both sides' dictionaries are in use.
    let (source, dest) = (
        server_with(ImageCompression::Glz),
        server_with(ImageCompression::Glz),
    );
    let calls = Calls::default();
    source.handle().set_migration_host(Some(Box::new(calls.clone())));
    source.handle().set_seamless_migration(true);
    let caps = [main_cap::SEMI_SEAMLESS_MIGRATE, main_cap::SEAMLESS_MIGRATE];
    let link = |addr, kind, id, caps: &[u32]| {
        RawClient::link_with(addr, kind, 0, id, "", true, caps).expect("links")
    };

    let mut src_main = link(source.local_addr(), ChannelType::Main, 0, &caps);
    let id = session_id(&src_main.recv_type(main::server_type::INIT, T).expect("INIT"));
    let mut src_inputs = link(source.local_addr(), ChannelType::Inputs, id, &[]);
    src_inputs
        .recv_type(inputs::server_type::INIT, T)
        .expect("INPUTS_INIT");
    let mut src_display = link(source.local_addr(), ChannelType::Display, id, &[]);
    let mut init = Vec::new();
    Writer::new(&mut init).u8(1).u64(1 << 20).u8(1).i32(1 << 20);
    src_display.send(display::client_type::INIT, &init);
    until(&mut src_display, display::server_type::MARK);

    source.handle().migrate_connect(MigrationTarget {
        host: "127.0.0.1".into(),
        port: Some(dest.local_addr().port()),
        tls_port: None,
        cert_subject: None,
    });
    src_main
        .recv_type(main::server_type::MIGRATE_BEGIN_SEAMLESS, T)
        .expect("MIGRATE_BEGIN_SEAMLESS");
    let mut dst_main = link(dest.local_addr(), ChannelType::Main, id, &caps);
    dst_main.send(main::client_type::MIGRATE_DST_DO_SEAMLESS, &1u32.to_le_bytes());
    dst_main
        .recv_type(main::server_type::MIGRATE_DST_SEAMLESS_ACK, T)
        .expect("DST_SEAMLESS_ACK");
    let mut dst_inputs = link(dest.local_addr(), ChannelType::Inputs, id, &[]);
    let mut dst_display = link(dest.local_addr(), ChannelType::Display, id, &[]);
    src_main.send(main::client_type::MIGRATE_CONNECTED_SEAMLESS, &[]);
    wait_for("connect_complete", || calls.connect.load(Ordering::SeqCst) == 1);

    source.handle().migrate_end(true);
    let mut source_glz_last = None;
    for (src, dst, name) in [
        (&mut src_main, &mut dst_main, "main"),
        (&mut src_inputs, &mut dst_inputs, "inputs"),
        (&mut src_display, &mut dst_display, "display"),
    ] {
        let (_, migrate) = until(src, base::server_type::MIGRATE);
        assert_eq!(
            migrate.body,
            3u32.to_le_bytes(),
            "{name}: MIGRATE needs flush and data"
        );
        src.send(base::client_type::MIGRATE_FLUSH_MARK, &[]);
        let (_, data) = until(src, base::server_type::MIGRATE_DATA);
        match spice_proto::migrate_data::MigrateData::decode(&data.body) {
            Ok(spice_proto::migrate_data::MigrateData::Display(d)) => {
                source_glz_last = Some(d.glz_last_image_id)
            }
            Ok(_) => {}
            Err(e) => panic!("{name}: its state does not decode: {e}"),
        }
        assert!(src.recv(QUIET).is_none(), "{name}: nothing after MIGRATE_DATA");
        dst.send(base::client_type::MIGRATE_DATA, &data.body);
    }
    // No INIT on the destination's main: the session goes on.
    assert!(dst_main
        .recv(QUIET)
        .is_none_or(|f| f.msg_type != main::server_type::INIT));
    let (before, draw) = until(&mut dst_display, display::server_type::DRAW_COPY);
    // The picture goes as GLZ in the client's window, numbered after the
    // source's last image: DRAW_COPY's source image descriptor (after
    // surface id, box and an empty clip), then the GLZ stream's header.
    let at = u32::from_le_bytes(draw.body[21..25].try_into().unwrap()) as usize;
    assert_eq!(
        draw.body[at + 8],
        display::image_type::GLZ_RGB,
        "the redraw is GLZ"
    );
    let stream = &draw.body[at + 18 + 4..];
    let glz_id = spice_codec::glz::GlzHeader::parse(stream)
        .expect("a GLZ header")
        .id;
    assert_eq!(
        Some(glz_id),
        source_glz_last.map(|last| last + 1),
        "the destination's GLZ images follow the source's"
    );
    assert!(
        before.contains(&display::server_type::INVAL_ALL_PIXMAPS),
        "the destination empties the client's pixmap cache first: {before:?}"
    );
    assert!(
        !before.contains(&display::server_type::SURFACE_CREATE),
        "the client kept its surface: {before:?}"
    );

    drop(src_inputs);
    drop(src_display);
    assert!(
        spice_interop::raw::wait_closed(&mut src_main.stream, T),
        "the source closes main once every other channel moved"
    );
    wait_for("end_complete", || calls.end.load(Ordering::SeqCst) == 1);
}

/// A display channel of a client migrating in seamlessly waits for its
/// state; state that does not decode closes it (C closes it too), and
/// nothing is drawn before.
#[test]
fn malformed_migration_state_closes_a_migrated_display_channel() {
    let dest = server();
    let id = 0x00c0_ffee;
    let caps = [main_cap::SEMI_SEAMLESS_MIGRATE, main_cap::SEAMLESS_MIGRATE];
    let mut main =
        RawClient::link_with(dest.local_addr(), ChannelType::Main, 0, id, "", true, &caps).expect("main");
    main.send(main::client_type::MIGRATE_DST_DO_SEAMLESS, &1u32.to_le_bytes());
    main.recv_type(main::server_type::MIGRATE_DST_SEAMLESS_ACK, T)
        .expect("ACK");
    let mut display = RawClient::link(dest.local_addr(), ChannelType::Display, 0, id, "").expect("display");
    while let Some(frame) = display.recv(QUIET) {
        assert_eq!(
            frame.msg_type,
            spice_proto::msg::base::server_type::SET_ACK,
            "nothing but SET_ACK before the state arrives"
        );
    }
    display.send(
        spice_proto::msg::base::client_type::MIGRATE_DATA,
        b"DCMD\x01\0\0\0short",
    );
    assert!(spice_interop::raw::wait_closed(&mut display.stream, T));
}
