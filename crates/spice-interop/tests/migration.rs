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
use spice_server::{DisplayHandle, MigrationHost, MigrationTarget, RunningServer, ServerBuilder};

const T: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(400);

fn server() -> RunningServer {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    Canvas::new(64, 48, 1).publish(&display);
    ServerBuilder::new().port(0).display(display).spawn().unwrap()
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
    // A client of a source offering seamless migration asks for it here:
    // declined, so it goes on semi-seamless (C's answer when it cannot).
    dst_main.send(main::client_type::MIGRATE_DST_DO_SEAMLESS, &1u32.to_le_bytes());
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
