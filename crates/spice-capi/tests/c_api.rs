//! Public-API behaviour that needs no client, checked the way upstream's
//! own API tests check it, against Debian's C library and ours:
//! `tests/c_host/api_checks.c` (compiled against the real `spice.h` and
//! GLib) sets video-codec lists, initialises the server on a core interface
//! that counts timers and watches, and misuses the interface calls, with a
//! GLib log handler on the `Spice` domain recording what each call logs.
//! Both libraries must return the same values and log at the same levels
//! in the same domain.
//!
//! `SPICE_CAPI_LIB_DIR=<dir>` takes our library from there (see c_host.rs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "c_host/harness.rs"]
mod harness;
use harness::*;

/// Compiles `api_checks.c` once per test process, linked against Debian's
/// library so that it imports the upstream symbol versions.
fn checks_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c_host/api_checks.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_api");
        std::fs::create_dir_all(&dir).unwrap();
        let building = dir.join(format!("api_checks.{}", std::process::id()));
        let binary = dir.join("api_checks");
        let pkg = Command::new("pkg-config")
            .args(["--cflags", "--libs", "spice-server", "glib-2.0"])
            .output()
            .expect("pkg-config");
        assert!(
            pkg.status.success(),
            "pkg-config spice-server glib-2.0 (apt-get install libspice-server-dev libglib2.0-dev):\n{}",
            String::from_utf8_lossy(&pkg.stderr)
        );
        let flags = String::from_utf8_lossy(&pkg.stdout).into_owned();
        let cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
            .arg("-o")
            .arg(&building)
            .arg(&source)
            .arg(format!("-L{DEBIAN_DIR}"))
            .arg(format!("-l:{SONAME}"))
            .args(
                flags
                    .split_whitespace()
                    .filter(|f| !f.starts_with("-lspice-server")),
            )
            .output()
            .expect("a C compiler (cc)");
        assert!(
            cc.status.success(),
            "compiling api_checks.c failed:\n{}",
            String::from_utf8_lossy(&cc.stderr)
        );
        std::fs::rename(&building, &binary).unwrap();
        binary
    })
}

/// One entry point's call: its return value and what it logged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    what: String,
    ret: i32,
    /// `(domain, level, message)`.
    logs: Vec<(String, String, String)>,
}

#[derive(Debug)]
struct Run {
    calls: Vec<Call>,
    /// `name value` lines that are not calls (`core`, `second_vdagent_attached`).
    facts: Vec<(String, String)>,
}

fn run(lib: Lib) -> Run {
    let _serial = serial();
    let out = Command::new(checks_binary())
        .arg(free_port().to_string())
        .env("LD_LIBRARY_PATH", lib.dir())
        .env_remove("G_MESSAGES_DEBUG")
        .env_remove("G_DEBUG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run api_checks");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.lines().last() == Some("done"),
        "{lib:?}: api_checks failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Each call's logs are printed right after it.
    let mut calls: Vec<Call> = Vec::new();
    let mut facts = Vec::new();
    for line in stdout.lines() {
        let mut words = line.splitn(4, ' ');
        match words.next() {
            Some("log") => {
                let domain = words.next().unwrap_or_default().to_owned();
                let level = words.next().unwrap_or_default().to_owned();
                let message = words.next().unwrap_or_default().to_owned();
                let call = calls.last_mut().expect("logs follow a call");
                call.logs.push((domain, level, message));
            }
            Some("call") => {
                let what = words.next().unwrap_or_default().to_owned();
                let ret = words.next().and_then(|r| r.parse().ok()).expect("a return value");
                calls.push(Call {
                    what,
                    ret,
                    logs: Vec::new(),
                });
            }
            Some("done") | None => {}
            Some(name) => facts.push((name.to_owned(), line[name.len()..].trim().to_owned())),
        }
    }
    Run { calls, facts }
}

/// What each library's message must say, whatever else it carries (the C
/// library prefixes its source location).
const PHRASES: [&str; 8] = [
    "invalid encoder:codec value",
    "unknown video encoder",
    "unknown video codec",
    "Failed to set video codecs",
    "assertion 'codecs != nullptr' failed",
    "vdagent already attached",
    "assertion 'char_device->st != nullptr' failed",
    "assertion 'tablet->st != nullptr' failed",
];

fn phrase(message: &str) -> Option<&'static str> {
    PHRASES.iter().copied().find(|p| message.contains(p))
}

#[test]
fn public_api_checks_match_the_c_library() {
    let c = run(Lib::Debian);
    let ours = run(Lib::Ours);

    // Return values, call by call.
    let rets = |r: &Run| {
        r.calls
            .iter()
            .map(|c| (c.what.clone(), c.ret))
            .collect::<Vec<_>>()
    };
    assert_eq!(rets(&ours), rets(&c), "return values differ from the C library's");

    // As spice.h documents: a list with one good entry is taken, one without is refused.
    for run in [&c, &ours] {
        let codecs: Vec<i32> = run
            .calls
            .iter()
            .filter(|c| c.what.starts_with("set_video_codecs[") && !c.what.contains("init"))
            .map(|c| c.ret)
            .collect();
        assert_eq!(&codecs[..9], [0; 9], "valid lists: {codecs:?}");
        assert!(codecs[9..].iter().all(|&r| r != 0), "malformed lists: {codecs:?}");
    }

    // Timers and watches are created during spice_server_init.
    for (lib, run) in [(Lib::Debian, &c), (Lib::Ours, &ours)] {
        let core = &run
            .facts
            .iter()
            .find(|f| f.0 == "core")
            .unwrap_or_else(|| panic!("{lib:?}: no core line"))
            .1;
        let n: Vec<u32> = core.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        assert!(n.len() == 2 && n[0] > 0 && n[1] > 0, "{lib:?}: {core}");
        println!("{lib:?}: spice_server_init created {core}");
    }
    let attached = |r: &Run| r.facts.iter().find(|f| f.0 == "second_vdagent_attached").cloned();
    assert_eq!(attached(&ours), attached(&c), "a second vdagent stays unattached");

    // Logged in the same domain, at the same levels, saying the same thing.
    for (ours, c) in ours.calls.iter().zip(&c.calls) {
        let shape = |call: &Call| {
            call.logs
                .iter()
                .map(|(domain, level, message)| (domain.clone(), level.clone(), phrase(message)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shape(ours),
            shape(c),
            "{}: logged {:#?}, the C library {:#?}",
            c.what,
            ours.logs,
            c.logs
        );
    }
    // The cases above do log, with both.
    let logged = |r: &Run, what: &str, level: &str| {
        r.calls
            .iter()
            .find(|c| c.what == what)
            .is_some_and(|c| c.logs.iter().any(|l| l.0 == "Spice" && l.1 == level))
    };
    for run in [&c, &ours] {
        assert!(logged(run, "set_video_codecs[NULL]", "critical"));
        assert!(logged(run, "set_video_codecs[15]", "warning"));
        assert!(logged(run, "add_second_vdagent", "warning"));
        assert!(logged(run, "remove_unadded_char_device", "critical"));
        assert!(logged(run, "remove_unadded_tablet", "critical"));
    }
}
