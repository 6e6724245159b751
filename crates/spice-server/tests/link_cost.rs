//! What a link attempt costs the main context (QEMU's main thread under the
//! C ABI), measured as the CPU time of the `spice-main` thread
//! (`se.sum_exec_runtime` of `/proc/self/task/<tid>/sched`) and, for the
//! ticket keys made ahead, of the `spice-keys` thread.
//!
//! `cargo test -p spice-server --test link_cost -- --nocapture --test-threads 1`
//! prints the figures quoted in SECURITY.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use spice_proto::consts::{common_cap, TICKET_PUBKEY_BYTES};
use spice_proto::link::{LinkHeader, LinkMess, LinkReply};
use spice_proto::ticket::TicketKey;
use spice_proto::wire::{Reader, Writer};
use spice_proto::{Caps, ChannelType, LinkError};
use spice_server::{RunningServer, ServerBuilder};

const T: Duration = Duration::from_secs(15);

/// How a link attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Linked,
    /// The link reply carried this error (no key was sent).
    Reply(u32),
    /// The final result carried this error (after the key and ticket).
    Result(u32),
    Closed,
}

/// One link as spice-gtk makes it (auth selection, SPICE ticket).
fn link(addr: SocketAddr, channel_type: u8, password: &str) -> Outcome {
    link_keyed(addr, channel_type, password).0
}

/// [`link`], with the public key the link reply carried.
fn link_keyed(addr: SocketAddr, channel_type: u8, password: &str) -> (Outcome, Option<Vec<u8>>) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (Outcome::Closed, None);
    };
    s.set_read_timeout(Some(T)).unwrap();
    let mess = LinkMess {
        connection_id: 0,
        channel_type,
        channel_id: 0,
        common_caps: Caps::with(&[common_cap::PROTOCOL_AUTH_SELECTION, common_cap::AUTH_SPICE]),
        channel_caps: Caps::new(),
    };
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out);
    LinkHeader::server(mess.encoded_len() as u32).encode(&mut w);
    mess.encode(&mut w);
    if s.write_all(&out).is_err() {
        return (Outcome::Closed, None);
    }
    let mut header = [0u8; LinkHeader::SIZE];
    if s.read_exact(&mut header).is_err() {
        return (Outcome::Closed, None);
    }
    let header = LinkHeader::decode(&mut Reader::new(&header)).unwrap();
    let mut body = vec![0u8; header.size.min(4096) as usize];
    if s.read_exact(&mut body).is_err() {
        return (Outcome::Closed, None);
    }
    let (error, key, _, _) = LinkReply::decode(&body).unwrap();
    if error != 0 {
        return (Outcome::Reply(error), None);
    }
    assert_eq!(key.len(), TICKET_PUBKEY_BYTES);
    let ticket = TicketKey::encrypt_for_client(&key, &mut getrandom::SysRng, password).unwrap();
    let mut auth = common_cap::AUTH_SPICE.to_le_bytes().to_vec();
    auth.extend_from_slice(&ticket);
    let key = Some(key.to_vec());
    if s.write_all(&auth).is_err() {
        return (Outcome::Closed, key);
    }
    let mut result = [0u8; 4];
    if s.read_exact(&mut result).is_err() {
        return (Outcome::Closed, key);
    }
    let outcome = match u32::from_le_bytes(result) {
        0 => Outcome::Linked,
        e => Outcome::Result(e),
    };
    (outcome, key)
}

/// CPU time so far of this process's thread named `name`, if there is one.
fn thread_cpu(name: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let sched = std::fs::read_to_string(path.join("sched")).ok()?;
        let ms: f64 = sched
            .lines()
            .find(|l| l.starts_with("se.sum_exec_runtime"))?
            .split(':')
            .nth(1)?
            .trim()
            .parse()
            .ok()?;
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    None
}

fn cpu(name: &str) -> Duration {
    thread_cpu(name).unwrap_or_default()
}

/// The password of [`server`]: with ticketing, every link gets a fresh key.
const PASSWORD: &str = "s3cret";

fn server() -> RunningServer {
    ServerBuilder::new().port(0).password(PASSWORD).spawn().unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Waits (at most 5 s) until the key thread has refilled its pool and rests,
/// so what it did for earlier attempts is not counted for the next ones.
fn keys_at_rest() {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = cpu("spice-keys");
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(150));
        let now = cpu("spice-keys");
        if now == last {
            return;
        }
        last = now;
    }
}

/// `n` attempts one after the other; the main and key threads' CPU per attempt.
fn per_attempt(addr: SocketAddr, n: u32, channel_type: u8, expect: &Outcome) -> (f64, f64) {
    keys_at_rest();
    let (main0, keys0) = (cpu("spice-main"), cpu("spice-keys"));
    for _ in 0..n {
        assert_eq!(&link(addr, channel_type, PASSWORD), expect);
    }
    // The last connection's close and the pool's refill are part of the cost.
    std::thread::sleep(Duration::from_millis(300));
    let main = ms(cpu("spice-main") - main0) / f64::from(n);
    let keys = ms(cpu("spice-keys") - keys0) / f64::from(n);
    (main, keys)
}

/// One test at a time: threads are found by name, and two servers would
/// each have a `spice-main` and a `spice-keys`.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn link_stage_cpu_per_attempt_on_the_main_thread() {
    let _one = one_at_a_time();
    let s = server();
    let addr = s.local_addr();
    // Warm up (first connections, the key pool filling).
    for _ in 0..3 {
        assert_eq!(link(addr, ChannelType::Main as u8, PASSWORD), Outcome::Linked);
    }
    std::thread::sleep(Duration::from_millis(300));

    let (main, keys) = per_attempt(addr, 40, ChannelType::Main as u8, &Outcome::Linked);
    println!("main channel link: main thread {main:.2} ms CPU per link, key thread {keys:.2} ms");
    let not_available = LinkError::ChannelNotAvailable.code();
    let (refused_main, refused_keys) = per_attempt(addr, 40, 42, &Outcome::Reply(not_available));
    println!(
        "unknown channel type: main thread {refused_main:.2} ms CPU per refusal, key thread {refused_keys:.2} ms"
    );
    let (absent_main, _) = per_attempt(
        addr,
        40,
        ChannelType::Playback as u8,
        &Outcome::Reply(not_available),
    );
    println!("channel not offered (playback): main thread {absent_main:.2} ms CPU per refusal");

    // No key is made on the main thread: a link costs it less than the key
    // thread spends on the key the link used, and a refusal less than a link;
    // refusals make no key at all. (Relative figures: the absolute ones
    // depend on the machine's load; the printed ones go to SECURITY.md.)
    assert!(
        main < keys,
        "main thread {main:.2} ms per link, key thread {keys:.2} ms"
    );
    assert!(
        refused_main < main,
        "{refused_main:.2} ms per refusal, {main:.2} ms per link"
    );
    assert!(
        refused_keys < 0.1 * keys,
        "refusals use no key: {refused_keys:.2} ms"
    );
}

#[test]
fn a_link_flood_leaves_the_main_thread_mostly_idle() {
    let _one = one_at_a_time();
    let s = server();
    let addr = s.local_addr();
    assert_eq!(link(addr, ChannelType::Main as u8, PASSWORD), Outcome::Linked);
    std::thread::sleep(Duration::from_millis(300));
    let wall = Duration::from_secs(2);
    let (main0, keys0) = (cpu("spice-main"), cpu("spice-keys"));
    let start = Instant::now();
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut links = 0u32;
                while start.elapsed() < wall {
                    if link(addr, ChannelType::Main as u8, PASSWORD) == Outcome::Linked {
                        links += 1;
                    }
                }
                links
            })
        })
        .collect();
    // Meanwhile, a client's link is served in its turn.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(
        link(addr, ChannelType::Inputs as u8, PASSWORD),
        Outcome::Result(LinkError::BadConnectionId.code())
    );
    let one = t.elapsed();
    let links: u32 = flooders.into_iter().map(|f| f.join().unwrap()).sum();
    let elapsed = start.elapsed();
    let main = cpu("spice-main") - main0;
    let keys = cpu("spice-keys") - keys0;
    println!(
        "4 clients linking in a loop for {:.1} s: {links} links ({:.0}/s), main thread {:.0}% busy \
         ({:.2} ms per link), key thread {:.0}% busy; another client's attempt answered in {:.0} ms",
        elapsed.as_secs_f64(),
        f64::from(links) / elapsed.as_secs_f64(),
        100.0 * main.as_secs_f64() / elapsed.as_secs_f64(),
        ms(main) / f64::from(links.max(1)),
        100.0 * keys.as_secs_f64() / elapsed.as_secs_f64(),
        ms(one),
    );
    assert!(links > 20, "links are served under a flood: {links}");
    assert!(
        main.as_secs_f64() / elapsed.as_secs_f64() < 0.5,
        "the main thread is not kept busy: {main:?} in {elapsed:?}"
    );
}

#[test]
fn without_ticketing_links_share_one_key_made_once() {
    let _one = one_at_a_time();
    let s = ServerBuilder::new().port(0).spawn().unwrap();
    let addr = s.local_addr();
    let (outcome, first) = link_keyed(addr, ChannelType::Main as u8, "");
    assert_eq!(outcome, Outcome::Linked);
    let first = first.expect("a key in the link reply");
    keys_at_rest();
    let one_key = cpu("spice-keys");
    assert!(
        one_key > Duration::ZERO,
        "the shared key was made on the key thread"
    );

    // A session's worth of links and more: the same key, no more made.
    for _ in 0..12 {
        let (outcome, key) = link_keyed(addr, ChannelType::Main as u8, "any password is ignored");
        assert_eq!(outcome, Outcome::Linked);
        assert_eq!(key.as_deref(), Some(&first[..]), "links share the server's key");
    }
    std::thread::sleep(Duration::from_millis(300));
    let more = cpu("spice-keys") - one_key;
    println!(
        "without ticketing: {:.2} ms of key thread for the first link, {:.2} ms for 12 more",
        ms(one_key),
        ms(more)
    );
    assert!(
        more < one_key / 4,
        "no key is made for later links: {more:?} after {one_key:?} for the first"
    );

    // Once a password is set, a password travels under the key: each link
    // gets one of its own again.
    s.handle().set_auth(spice_server::Auth::Password {
        password: PASSWORD.into(),
        lifetime: None,
    });
    let mut seen = std::collections::HashSet::from([first]);
    for _ in 0..6 {
        let (outcome, key) = link_keyed(addr, ChannelType::Main as u8, PASSWORD);
        assert_eq!(outcome, Outcome::Linked);
        assert!(
            seen.insert(key.expect("a key")),
            "a fresh key per link with ticketing"
        );
    }
    assert_eq!(
        link(addr, ChannelType::Main as u8, "wrong"),
        Outcome::Result(LinkError::PermissionDenied.code())
    );
}
