//! `spice-demo`: a test-card machine served over SPICE.
//!
//! It draws a test card with a bouncing square, a clock, the text you type,
//! the pointer position and the keyboard lock LEDs, beeps (440 Hz, 150 ms)
//! for every character typed, and serves it on the server's built-in loop:
//!
//! ```text
//! cargo run --release -p spice-demo
//! remote-viewer spice://127.0.0.1:5900
//! ```

mod canvas;
mod card;
mod cursor;
mod devices;
mod font;
mod keyboard;
mod tone;

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use spice_server::display::{MAX_PIXELS, MAX_SIDE};
use spice_server::{DisplayHandle, PlaybackHandle, ServerBuilder};
use tracing_subscriber::EnvFilter;

use crate::card::{clock_text, Card, Scene};
use crate::devices::{DemoKeyboard, DemoMouse, DemoTablet, Inputs, SharedInputs};
use crate::tone::Beeper;

/// A test-card machine served over SPICE; watch it with `remote-viewer`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    addr: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 5900)]
    port: u16,
    /// Password clients must give (at most 60 bytes); without it anyone may connect.
    #[arg(long)]
    password: Option<String>,
    /// Picture width in pixels.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SIDE)))]
    width: u32,
    /// Picture height in pixels.
    #[arg(long, default_value_t = 768, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SIDE)))]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// Also serve TLS clients, with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The TLS certificate's private key (PEM, unencrypted).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Port of the TLS listener (0 picks a free one).
    #[arg(long, default_value_t = 5901)]
    tls_port: u16,
    /// Channels that must come over TLS, comma-separated (main, display,
    /// inputs, cursor, playback, record), or "default" for all; a plain client
    /// is sent to the TLS port.
    #[arg(long, value_delimiter = ',', requires = "tls_cert")]
    tls_channel: Vec<String>,
    /// Print what the server sent and received for each client and channel
    /// (bytes, messages, queued output, round trip, images by codec, encode
    /// time, video stream) every this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    stats: Option<u64>,
    /// Let several viewers watch and type at once (by default a newcomer
    /// replaces the viewer connected).
    #[arg(long)]
    multiple_clients: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        // Logs go to stderr so stdout carries just the line telling the user what to open;
        // colours only on a terminal, never into a log file or a test's captured output.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let (width, height) = (args.width, args.height);
    anyhow::ensure!(
        u64::from(width) * u64::from(height) <= MAX_PIXELS,
        "{width}x{height} is more than the server's {MAX_PIXELS} pixels"
    );

    // The pointer starts in the middle, where server mouse mode puts the cursor too.
    let (mid_x, mid_y) = ((width / 2) as i32, (height / 2) as i32);
    let inputs = Inputs::new(mid_x, mid_y).shared();
    let mut card = Card::new(
        width,
        height,
        &format!("spice-rs test card  {width}x{height} @ {} fps", args.fps),
    );
    let display = DisplayHandle::new();
    // Publish before the server starts so the first client never sees an empty display.
    card.render(&scene(0, &inputs));
    display
        .publish(&card.frame())
        .context("publishing the first frame")?;
    display.set_cursor(cursor::arrow().context("building the cursor")?);
    display.move_cursor(mid_x, mid_y);

    // Typed characters sound a short tone on the client's speakers.
    let playback = PlaybackHandle::new();
    let beeper = Beeper::spawn(playback.clone()).context("starting the tone player")?;

    let builder = ServerBuilder::new();
    // The keyboard reports LED changes through the server's handle.
    let handle = builder.handle();
    let builder = builder
        .addr(args.addr)
        .port(args.port)
        .name("spice-demo test card")
        .display(display.clone())
        .playback(playback)
        .keyboard(DemoKeyboard::new(inputs.clone(), handle).with_beeper(beeper))
        .mouse(DemoMouse::new(inputs.clone(), display.clone(), width, height))
        .tablet(DemoTablet::new(inputs.clone()))
        .allow_multiple_clients(args.multiple_clients);
    let builder = match &args.password {
        Some(password) => builder.password(password.clone()),
        None => builder.no_auth(),
    };
    let builder = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = spice_server::TlsConfig::from_pem_files(cert, key)
                .context("loading the TLS certificate and key")?;
            let mut policy = spice_server::SecurityPolicy::default();
            for channel in &args.tls_channel {
                if channel == "default" {
                    policy.set_default(spice_server::Security::TLS);
                } else {
                    policy.set_named(channel, spice_server::Security::TLS)?;
                }
            }
            builder.tls(args.tls_port, tls).channel_security(policy)
        }
        _ => builder,
    };
    let server = builder
        .spawn()
        .with_context(|| format!("starting the SPICE server on {}:{}", args.addr, args.port))?;

    let uri = match server.tls_local_addr() {
        Some(tls) => format!(
            "spice://{}?port={}&tls-port={}",
            server.local_addr().ip(),
            server.local_addr().port(),
            tls.port()
        ),
        None => format!("spice://{}", server.local_addr()),
    };
    let auth_note = if args.password.is_some() {
        "  (it will ask for the password you set)"
    } else {
        ""
    };
    println!("Open {uri} with: remote-viewer {uri}{auth_note}");
    tracing::info!(%uri, width, height, fps = args.fps, "serving the test card; Ctrl-C to stop");

    if let Some(every) = args.stats {
        let handle = server.handle();
        std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(every));
                // stdout, like the line to open: a user asked for it. A
                // closed stdout ends the reports, not the demo.
                let mut out = std::io::stdout().lock();
                if write!(out, "{}", handle.stats())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    break;
                }
            })
            .context("starting the stats thread")?;
    }

    // Runs until the process is killed (Ctrl-C); `server` stays alive meanwhile.
    render_loop(&mut card, &display, &inputs, args.fps)
}

/// Redraws the card `fps` times a second and publishes what changed.
fn render_loop(
    card: &mut Card,
    display: &DisplayHandle,
    inputs: &SharedInputs,
    fps: u32,
) -> anyhow::Result<()> {
    let period = Duration::from_secs(1) / fps;
    let mut next = Instant::now();
    let mut tick = 0u64;
    loop {
        tick += 1;
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > period {
            // Far behind (e.g. the machine was suspended): skip ahead rather than
            // rendering a burst of frames nobody will see.
            next = now;
        }
        let damage = card.render(&scene(tick, inputs));
        if !damage.is_empty() {
            display
                .update(&card.frame(), &damage)
                .context("publishing a frame")?;
        }
    }
}

/// The live parts of frame `tick`: the time now and whatever the devices reported.
fn scene(tick: u64, inputs: &SharedInputs) -> Scene {
    let unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let inputs = devices::lock(inputs);
    Scene {
        tick,
        clock: clock_text(unix_secs),
        typed: inputs.typed(),
        pointer: inputs.pointer_line(),
        leds: inputs.leds(),
    }
}
