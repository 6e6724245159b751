//! The benchmark's correctness half, for CI: every scenario, short, against
//! our library and against Debian's C library, with a real spice-gtk client;
//! the client's last frame must equal the host's pixel for pixel. No timing
//! is asserted (the figures come from `cargo xtask bench`).
//!
//! `SPICE_CAPI_LIB_DIR=<dir>` skips the build and takes our library from
//! `<dir>/libspice-server.so.1` (empty: `target/release`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use spice_bench::host::{self, Library, SONAME};
use spice_bench::run::{self, RunConfig};

/// Our library, built once per test process.
fn ours() -> Library {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| match std::env::var_os("SPICE_CAPI_LIB_DIR") {
        Some(dir) => {
            let dir = if dir.is_empty() {
                host::workspace_root().join("target/release")
            } else {
                PathBuf::from(dir)
            };
            assert!(
                dir.join(SONAME).exists(),
                "SPICE_CAPI_LIB_DIR: no {SONAME} in {}",
                dir.display()
            );
            dir
        }
        None => host::build_our_library().expect("cargo xtask capi"),
    });
    Library::ours(dir)
}

/// The host, compiled once per test process.
fn host_binary() -> &'static Path {
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    HOST.get_or_init(|| {
        host::compile_host(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_host"))
            .expect("compile benches/host/bench_host.c")
    })
}

/// One scenario at a time: each runs a server and a client, and the machine
/// may have two cores.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn last_frame_exact(name: &str, lib: &Library) {
    let _serial = serial();
    let scenario = run::scenario(&name.replace('_', "-")).expect("a scenario");
    let config = RunConfig::new(scenario, true);
    let (result, _) = run::run_with_client(host_binary(), lib, &config, false)
        .unwrap_or_else(|e| panic!("{name} with {}: {e:#}", lib.name));
    assert!(
        result.exact && result.error.is_none(),
        "{name} with {}: the last frame did not arrive pixel-exact: {result:?}",
        lib.name
    );
    assert!(
        result.cpu_s > 0.0 && (0.0..result.cpu_s).contains(&result.cpu_scenario_s),
        "{name} with {}: the host's CPU time is counted, the scenario's part of it: {result:?}",
        lib.name
    );
    // The library's own share is measured in the run: some of it (it served
    // a client), never all of it (the host drew every frame itself).
    assert!(
        result
            .library_cpu_s
            .is_some_and(|library| library > 0.0 && library < result.cpu_s),
        "{name} with {}: the library's part of the host's CPU is measured: {result:?}",
        lib.name
    );
    assert!(
        result.display_bytes_scenario > 0,
        "{name} with {}: the scenario's updates reached the client: {result:?}",
        lib.name
    );
}

macro_rules! for_both_libraries {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn ours() {
                super::last_frame_exact(stringify!($scenario), &super::ours())
            }

            #[test]
            fn debian() {
                super::last_frame_exact(stringify!($scenario), &super::Library::debian())
            }
        }
    )*};
}

for_both_libraries!(
    terminal,
    terminal_tiles,
    slideshow,
    slideshow_tiles,
    video,
    video_tiles,
    clock,
    clock_tiles
);

/// The counting proxy follows both servers' display streams to the end.
#[test]
fn proxy_follows_both_display_streams() {
    for lib in [ours(), Library::debian()] {
        let _serial = serial();
        let config = RunConfig::new(run::scenario("clock").expect("clock"), true);
        let (result, stats) = run::run_with_client(host_binary(), &lib, &config, true)
            .unwrap_or_else(|e| panic!("clock through the proxy with {}: {e:#}", lib.name));
        assert!(result.exact, "{}: {result:?}", lib.name);
        let stats = stats.expect("proxy statistics");
        assert_eq!(stats.error, None, "{}: {stats:?}", lib.name);
        let images: u64 = stats.images.values().map(|c| c.count).sum();
        assert!(images > 0, "{}: no images seen: {stats:?}", lib.name);
        // The proxy saw what the client read, less the link stage.
        assert!(
            stats.bytes <= result.display_bytes && stats.bytes + 1024 >= result.display_bytes,
            "{}: proxy counted {} bytes, the client read {}",
            lib.name,
            stats.bytes,
            result.display_bytes
        );
    }
}

/// The video's proxy run samples what the client showed: with streaming
/// on, both libraries' lossy frames are measured against the host's (close,
/// not exact), and with streaming off every sample matches a host frame
/// well above any lossy codec's figure.
#[test]
fn video_quality_is_measured_against_the_hosts_frames() {
    for lib in [ours(), Library::debian()] {
        let _serial = serial();
        let mut config = RunConfig::new(run::scenario("video").expect("video"), false);
        config.host_args = vec![
            "--streaming".into(),
            "all".into(),
            "--frames".into(),
            "120".into(),
        ];
        let (result, _) = run::run_with_client(host_binary(), &lib, &config, true)
            .unwrap_or_else(|e| panic!("video through the proxy with {}: {e:#}", lib.name));
        assert!(
            result.exact,
            "{}: the video still ends exact: {result:?}",
            lib.name
        );
        let quality = result.quality.expect("the proxy run measures the video");
        eprintln!("{}: {quality:?}", lib.name);
        assert!(quality.samples.len() >= 8, "{}: {quality:?}", lib.name);
        assert!(
            quality.stream_frames > 0,
            "{}: no stream frames: {quality:?}",
            lib.name
        );
        let (psnr, lowest) = quality.psnr().unwrap();
        assert!(
            lowest < 100.0,
            "{}: some samples are lossy: {quality:?}",
            lib.name
        );
        assert!(
            (25.0..100.0).contains(&psnr) || psnr == 100.0,
            "{}: median {psnr} dB",
            lib.name
        );
        let (ssim, _) = quality.ssim().unwrap();
        assert!(ssim > 0.5 && ssim <= 1.0, "{}: median SSIM {ssim}", lib.name);

        let lossless = RunConfig::new(run::scenario("video").expect("video"), true);
        let (result, _) = run::run_with_client(host_binary(), &lib, &lossless, true)
            .unwrap_or_else(|e| panic!("lossless video with {}: {e:#}", lib.name));
        let quality = result.quality.expect("measured");
        assert_eq!(
            quality.stream_frames, 0,
            "{}: streaming is off by default",
            lib.name
        );
        let (psnr, _) = quality.psnr().expect("samples");
        assert!(
            psnr >= 60.0,
            "{}: lossless median {psnr} dB: {quality:?}",
            lib.name
        );
    }
}
