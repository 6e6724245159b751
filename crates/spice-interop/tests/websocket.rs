//! WebSocket clients (spice-html5's transport) on the ordinary SPICE port: a
//! tungstenite client upgrades, then links main and display channels with a
//! password through binary frames; fragmented messages, SPICE messages split
//! across frames, a ping answered mid-link, a left-padded ticket, the close
//! handshake, and frames over the size bound.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use spice_interop::pattern::Canvas;
use spice_interop::raw::link_request;
use spice_proto::consts::{common_cap, TICKET_PUBKEY_BYTES};
use spice_proto::link::{LinkHeader, LinkReply};
use spice_proto::msg::{display, main};
use spice_proto::ticket::TicketKey;
use spice_proto::wire::{Reader, Writer};
use spice_proto::{ChannelType, Deframer, Frame, HeaderKind};
use spice_server::{DisplayHandle, RunningServer, ServerBuilder};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame as WsFrame;
use tungstenite::{Bytes, Message, WebSocket};

const T: Duration = Duration::from_secs(10);

fn server() -> (RunningServer, DisplayHandle) {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    Canvas::new(64, 48, 1).publish(&display);
    let server = ServerBuilder::new()
        .port(0)
        .password("pw")
        .display(display.clone())
        .spawn()
        .expect("server starts");
    (server, display)
}

/// What a [`WsClient`] runs over: TCP, or TLS over TCP.
trait Transport: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> Transport for T {}

/// A WebSocket client carrying SPICE bytes.
struct WsClient {
    ws: WebSocket<Box<dyn Transport>>,
    /// Payload received and not yet taken.
    input: Vec<u8>,
    /// Payloads of the pongs received.
    pongs: Vec<Vec<u8>>,
    closed: bool,
    /// SPICE messages after the link (mini header).
    deframer: Deframer,
}

impl WsClient {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(T)).unwrap();
        Self::upgrade(addr, Box::new(stream))
    }

    /// Over TLS, trusting `ca` (the server's certificate names 127.0.0.1).
    fn connect_tls(addr: SocketAddr, ca: &std::path::Path) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
            roots.add(cert.expect("CA certificate")).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(T)).unwrap();
        Self::upgrade(addr, Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    fn upgrade(addr: SocketAddr, stream: Box<dyn Transport>) -> Self {
        let mut request = format!("ws://{addr}/").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
        let (ws, response) = tungstenite::client(request, stream).expect("websocket upgrade");
        assert_eq!(
            response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.as_bytes()),
            Some(&b"binary"[..]),
            "the binary subprotocol is confirmed"
        );
        Self {
            ws,
            input: Vec::new(),
            pongs: Vec::new(),
            closed: false,
            deframer: Deframer::new(HeaderKind::Mini, 64 << 20),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .expect("send");
    }

    /// Sends `bytes` as one message in `parts` fragments (a binary frame, then continuations).
    fn send_fragmented(&mut self, bytes: &[u8], parts: usize) {
        let chunk = bytes.len().div_ceil(parts);
        let pieces: Vec<&[u8]> = bytes.chunks(chunk).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { Data::Binary } else { Data::Continue };
            let fin = i + 1 == pieces.len();
            let frame = WsFrame::message(Bytes::copy_from_slice(piece), OpCode::Data(opcode), fin);
            self.ws.write(Message::Frame(frame)).expect("send fragment");
        }
        self.ws.flush().expect("flush");
    }

    /// Reads one WebSocket message; `false` once the connection ended.
    fn pull(&mut self) -> bool {
        if self.closed {
            return false;
        }
        match self.ws.read() {
            Ok(Message::Binary(b)) => self.input.extend_from_slice(&b),
            Ok(Message::Pong(p)) => self.pongs.push(p.to_vec()),
            Ok(Message::Close(_)) | Err(_) => self.closed = true,
            Ok(_) => {}
        }
        !self.closed
    }

    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.input.len() < n {
            assert!(self.pull(), "connection ended waiting for {n} bytes");
        }
        self.input.drain(..n).collect()
    }

    /// Links a channel: link message (sent as `link_parts` fragments), the
    /// reply, a ticket made by `encrypt`, the result. Returns the result word.
    fn link(
        &mut self,
        channel: ChannelType,
        connection_id: u32,
        link_parts: usize,
        encrypt: impl Fn(&[u8]) -> Vec<u8>,
    ) -> u32 {
        let common = [
            common_cap::PROTOCOL_AUTH_SELECTION,
            common_cap::AUTH_SPICE,
            common_cap::MINI_HEADER,
        ];
        let request = link_request(channel, 0, connection_id, &common);
        if link_parts > 1 {
            self.send_fragmented(&request, link_parts);
        } else {
            self.send(&request);
        }
        let header = self.read_exact(LinkHeader::SIZE);
        let header = LinkHeader::decode(&mut Reader::new(&header)).expect("link header");
        let body = self.read_exact(header.size as usize);
        let (error, key, _, _) = LinkReply::decode(&body).expect("link reply");
        assert_eq!(error, 0, "link reply error");
        assert_eq!(key.len(), TICKET_PUBKEY_BYTES);
        let mut auth = common_cap::AUTH_SPICE.to_le_bytes().to_vec();
        auth.extend_from_slice(&encrypt(&key));
        // The mechanism word and the ticket in two messages: SPICE is a
        // byte stream whatever the frames.
        self.send(&auth[..4]);
        self.send(&auth[4..]);
        u32::from_le_bytes(self.read_exact(4).try_into().unwrap())
    }

    /// The next SPICE message of `msg_type` (mini header).
    fn recv_type(&mut self, msg_type: u16) -> Frame {
        self.deframer.push(&std::mem::take(&mut self.input));
        let deadline = Instant::now() + T;
        loop {
            while let Ok(Some(frame)) = self.deframer.next_frame() {
                if frame.msg_type == msg_type {
                    return frame;
                }
            }
            assert!(Instant::now() < deadline, "no message {msg_type}");
            assert!(self.pull(), "connection ended waiting for message {msg_type}");
            self.deframer.push(&std::mem::take(&mut self.input));
        }
    }

    /// Whether the server ends the connection within `T`.
    fn ends(&mut self) -> bool {
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if !self.pull() {
                return true;
            }
        }
        false
    }
}

fn ticket(password: &str) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |key| TicketKey::encrypt_for_client(key, &mut getrandom::SysRng, password).expect("encrypt")
}

#[test]
fn spice_links_main_and_display_over_websocket() {
    let (server, _display) = server();
    let addr = server.local_addr();
    let mut main_ws = WsClient::connect(addr);
    // A ping before anything else is answered with its payload.
    main_ws
        .ws
        .send(Message::Ping(Bytes::from_static(b"hello")))
        .unwrap();
    assert_eq!(
        main_ws.link(ChannelType::Main, 0, 3, ticket("pw")),
        0,
        "main links"
    );
    assert_eq!(main_ws.pongs, vec![b"hello".to_vec()], "ping answered");
    let init = main_ws.recv_type(main::server_type::INIT);
    let session = u32::from_le_bytes(init.body[..4].try_into().unwrap());

    // The display channel moves to its display's thread with its framing.
    let mut display_ws = WsClient::connect(addr);
    assert_eq!(display_ws.link(ChannelType::Display, session, 1, ticket("pw")), 0);
    let mut init = Vec::new();
    Writer::new(&mut init).u8(1).u64(0).u8(0).i32(0);
    let mut msg = Vec::new();
    HeaderKind::Mini.encode(1, display::client_type::INIT, init.len() as u32, &mut msg);
    msg.extend_from_slice(&init);
    // One SPICE message split across two WebSocket messages.
    display_ws.send(&msg[..3]);
    display_ws.send(&msg[3..]);
    let created = display_ws.recv_type(display::server_type::SURFACE_CREATE);
    assert!(!created.body.is_empty());
    display_ws
        .ws
        .send(Message::Ping(Bytes::from_static(b"display")))
        .unwrap();
    display_ws.recv_type(display::server_type::MARK);
    let deadline = Instant::now() + T;
    while display_ws.pongs.is_empty() && Instant::now() < deadline {
        display_ws.pull();
    }
    assert_eq!(
        display_ws.pongs,
        vec![b"display".to_vec()],
        "display thread answers pings"
    );

    // A wrong password is refused over WebSocket as over TCP.
    let mut bad = WsClient::connect(addr);
    assert_ne!(bad.link(ChannelType::Main, 0, 1, ticket("wrong")), 0);
}

#[test]
fn short_tickets_are_accepted_padded_either_way() {
    let (server, _display) = server();
    // A ciphertext below 2^1016 is 127 bytes long. spice-html5 writes those
    // bytes first and pads the end with a zero; a careful client pads the
    // start. Both must link.
    let short = |key: &[u8]| {
        for _ in 0..20_000 {
            let t = TicketKey::encrypt_for_client(key, &mut getrandom::SysRng, "pw").unwrap();
            if t[0] == 0 {
                return t;
            }
        }
        panic!("no ticket with a leading zero byte");
    };
    let left_padded = |key: &[u8]| short(key);
    let right_padded = |key: &[u8]| {
        let mut t = short(key);
        t.rotate_left(1);
        t
    };
    for (form, ticket) in [
        ("left-padded", &left_padded as &dyn Fn(&[u8]) -> Vec<u8>),
        ("right-padded, as spice-html5 sends it", &right_padded),
    ] {
        let mut ws = WsClient::connect(server.local_addr());
        assert_eq!(
            ws.link(ChannelType::Main, 0, 1, ticket),
            0,
            "{form} ticket accepted"
        );
        ws.recv_type(main::server_type::INIT);
    }
}

#[test]
fn close_is_answered_and_oversized_frames_are_refused() {
    let (server, _display) = server();
    let addr = server.local_addr();
    let mut ws = WsClient::connect(addr);
    ws.ws.close(None).unwrap();
    // The server answers the close and ends the connection.
    let deadline = Instant::now() + T;
    let mut answered = false;
    while Instant::now() < deadline {
        match ws.ws.read() {
            Ok(Message::Close(_)) => answered = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(answered, "close answered");

    // A frame over the bound (256 KiB) ends the connection.
    let mut big = WsClient::connect(addr);
    big.send(&vec![0u8; 300 * 1024]);
    assert!(big.ends(), "oversized frame refused");

    // The server still serves others.
    let mut ok = WsClient::connect(addr);
    assert_eq!(ok.link(ChannelType::Main, 0, 1, ticket("pw")), 0);
}

#[test]
fn a_plain_http_request_gets_invalid_magic() {
    let (server, _display) = server();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = [0u8; 16 + 4];
    spice_interop::raw::read_exact_timeout(&mut s, &mut reply, T).expect("a link reply");
    assert_eq!(&reply[..4], b"REDQ");
    assert_eq!(
        u32::from_le_bytes(reply[16..20].try_into().unwrap()),
        spice_proto::LinkError::InvalidMagic.code()
    );
}

#[test]
fn spice_links_over_websocket_on_the_tls_port() {
    let pki = spice_interop::pki::TestPki::new("ws");
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    Canvas::new(64, 48, 1).publish(&display);
    let tls = spice_server::TlsConfig::from_pem_files(
        pki.dir.join("server-cert.pem"),
        pki.dir.join("server-key.pem"),
    )
    .expect("certificate and key load");
    let server = ServerBuilder::new()
        .port(0)
        .tls(0, tls)
        .password("pw")
        .display(display.clone())
        .spawn()
        .expect("server starts");
    let addr = server.tls_local_addr().expect("TLS port");
    let mut main_ws = WsClient::connect_tls(addr, &pki.dir.join("ca-cert.pem"));
    assert_eq!(
        main_ws.link(ChannelType::Main, 0, 2, ticket("pw")),
        0,
        "main links over wss"
    );
    let init = main_ws.recv_type(main::server_type::INIT);
    let session = u32::from_le_bytes(init.body[..4].try_into().unwrap());
    let mut display_ws = WsClient::connect_tls(addr, &pki.dir.join("ca-cert.pem"));
    assert_eq!(display_ws.link(ChannelType::Display, session, 1, ticket("pw")), 0);
    let mut init = Vec::new();
    Writer::new(&mut init).u8(1).u64(0).u8(0).i32(0);
    let mut msg = Vec::new();
    HeaderKind::Mini.encode(1, display::client_type::INIT, init.len() as u32, &mut msg);
    msg.extend_from_slice(&init);
    display_ws.send(&msg);
    display_ws.recv_type(display::server_type::SURFACE_CREATE);
    display_ws.recv_type(display::server_type::MARK);
}

#[test]
fn an_unmasked_client_frame_ends_the_connection() {
    use std::io::Read;
    let (server, _display) = server();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "reply ends early");
        reply.push(byte[0]);
    }
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 101 "), "{reply}");
    assert!(
        reply.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{reply}"
    );
    assert!(
        !reply.contains("Sec-WebSocket-Protocol"),
        "no subprotocol asked, none named"
    );
    // A binary frame without the mask clients must set (RFC 6455 5.1).
    let mut frame = vec![0x82, 16];
    frame.extend_from_slice(&link_request(ChannelType::Main, 0, 0, &[])[..16]);
    s.write_all(&frame).unwrap();
    let mut rest = Vec::new();
    // The server closes (a close frame at most, never a link reply).
    let ended = s.read_to_end(&mut rest);
    assert!(
        !matches!(&ended, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the connection ends: {ended:?}"
    );
    assert!(!rest.windows(4).any(|w| w == b"REDQ"), "no link reply: {rest:?}");
}

/// CPU time (clock ticks) of this process's threads named `name`.
fn thread_ticks(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis; utime and stime are 14th and 15th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace()
            .collect();
        let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        total += field(14) + field(15);
    }
    total
}

#[test]
fn a_client_holding_back_half_a_frame_costs_no_cpu() {
    let (server, _display) = server();
    let mut ws = WsClient::connect(server.local_addr());
    // The first half of a masked binary frame of 16 bytes: header, mask, 8 bytes.
    let mut frame = vec![0x82, 0x80 | 16, 1, 2, 3, 4];
    frame.extend_from_slice(&[0u8; 8]);
    ws.ws.get_mut().write_all(&frame).unwrap();
    ws.ws.get_mut().flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = thread_ticks("spice-main");
    std::thread::sleep(Duration::from_secs(1));
    let spent = thread_ticks("spice-main") - before;
    // A busy loop would take the whole second (100 ticks).
    assert!(
        spent < 20,
        "the server's loop spent {spent} ticks waiting for the frame's end"
    );
    drop(server);
}
