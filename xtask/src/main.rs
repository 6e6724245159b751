//! `cargo xtask <task>`: project automation that cargo alone cannot express.
//!
//! - `capi [--debug]`: builds `target/<profile>/libspice-server.so.1`, the C ABI
//!   drop-in, from the `spice-capi` staticlib. rustc's cdylib output carries its
//!   own version script, so the shared object is linked here with the upstream
//!   symbol versions (`crates/spice-capi/spice-server.map`) and SONAME.
//! - `bench [--quick] [--runs N] [spice-bench options]`: builds the library as
//!   `capi` does, then runs the side-by-side benchmark (`crates/spice-bench`):
//!   `benches/host/bench_host.c` against ours and Debian's C library with a
//!   spice-gtk client, medians and ratios ours/C; goals are judged (✓/✗) only
//!   with at least 3 runs per library, so `--quick` (one run) shows figures
//!   alone; a full run writes the figures into `BENCHMARKS.md`.
//!   `cargo xtask bench --help` lists the options.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("capi") => capi(args.iter().any(|a| a == "--debug")).map(|path| println!("{}", path.display())),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask capi [--debug]\n       cargo xtask bench [--quick] [--runs N] [--help]"
            );
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the release library, then runs `spice-bench` (release) against it.
fn bench(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let help = args.iter().any(|a| a == "--help" || a == "-h");
    let mut run = Command::new(&cargo);
    run.current_dir(&root).args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "spice-bench",
        "--bin",
        "spice-bench",
        "--",
    ]);
    if !help {
        let lib = capi(false)?;
        let dir = lib.parent().context("library path has a directory")?;
        run.arg("--lib-dir").arg(dir);
    }
    let status = run.args(args).status().context("running spice-bench")?;
    if !status.success() {
        bail!("spice-bench failed");
    }
    Ok(())
}

/// Builds the shared library and returns its path.
fn capi(debug: bool) -> Result<PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    build
        .current_dir(&root)
        .args(["build", "-p", "spice-capi", "--lib"]);
    if !debug {
        build.arg("--release");
    }
    let status = build.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p spice-capi failed");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let out_dir = target_dir.join(if debug { "debug" } else { "release" });
    let staticlib = out_dir.join("libspice_capi.a");
    let output = out_dir.join("libspice-server.so.1");
    let map = root.join("crates/spice-capi/spice-server.map");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-shared")
        .arg("-o")
        .arg(&output)
        .arg("-Wl,--whole-archive")
        .arg(&staticlib)
        .arg("-Wl,--no-whole-archive")
        .arg(format!("-Wl,--version-script={}", map.display()))
        .args([
            "-Wl,-soname,libspice-server.so.1",
            "-Wl,-z,now",
            "-Wl,--gc-sections",
        ])
        // pixman: the QXL canvas draws with Debian's libpixman-1, as the C server does;
        // glib: diagnostics go through g_log, as the C server's (spice-capi/src/glog.rs);
        // opus: Opus audio through Debian's libopus, as the C server.
        .args([
            "-lopus",
            "-lpixman-1",
            "-lglib-2.0",
            "-lpthread",
            "-ldl",
            "-lm",
            "-lc",
            "-lgcc_s",
        ])
        // SASL authentication through Cyrus' libsasl2, as the C server (spice-capi/src/sasl.rs).
        .arg("-lsasl2")
        // MJPEG frames through libjpeg-turbo, as the C server (spice-capi/src/jpeg.rs).
        .arg("-ljpeg")
        // VP8/H.264 streams through GStreamer, as the C server (crates/spice-gst).
        .args([
            "-lgstapp-1.0",
            "-lgstbase-1.0",
            "-lgstreamer-1.0",
            "-lgobject-2.0",
        ])
        .status()
        .context("running the C linker (cc)")?;
    if !status.success() {
        bail!("linking {} failed", output.display());
    }
    Ok(output)
}
