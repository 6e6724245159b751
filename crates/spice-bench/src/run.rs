//! One measured run: a host against one library, with a spice-gtk client (or
//! without one, for the host-alone baseline).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use spice_interop::gtk::SpiceGtk;

use crate::host::{Host, Library};
use crate::procfs;
use crate::proxy::{DisplayStats, Proxy};

/// What a scenario shows, for its goals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Scrolling text.
    Text,
    /// Photographs.
    Photo,
    /// Moving pictures.
    Video,
    /// An idle desktop.
    Idle,
}

/// A benchmark scenario of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// What it shows.
    pub content: Content,
    /// Name in the report.
    pub name: &'static str,
    /// The host's `--scenario`.
    pub host: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// Frames of the full run.
    pub frames: u32,
    /// Frames of the quick run.
    pub quick_frames: u32,
    /// Milliseconds per frame (the host's own rate).
    pub period_ms: u32,
    /// Extra host arguments of the full and the quick run.
    pub args: &'static [&'static str],
    /// Extra host arguments of the quick run.
    pub quick_args: &'static [&'static str],
}

/// Every scenario, in report order.
pub const SCENARIOS: [Scenario; 8] = [
    Scenario {
        content: Content::Text,
        name: "terminal",
        host: "terminal",
        description: "a 100x40 terminal scrolling build and log output, one line every 40 ms, over a desktop",
        frames: 250,
        quick_frames: 40,
        period_ms: 40,
        args: &[],
        quick_args: &[],
    },
    Scenario {
        content: Content::Text,
        name: "terminal-tiles",
        host: "terminal",
        description:
            "the terminal, with damage reported as merged 32x32 tiles that changed (VNC-style hosts)",
        frames: 250,
        quick_frames: 40,
        period_ms: 40,
        args: &["--damage", "tiles"],
        quick_args: &["--damage", "tiles"],
    },
    Scenario {
        content: Content::Photo,
        name: "slideshow",
        host: "slideshow",
        description: "an 800x600 procedural photo (sky, clouds, hills, grain) replaced every 1.5 s",
        frames: 105,
        quick_frames: 20,
        period_ms: 100,
        args: &["--switch-every", "15"],
        quick_args: &["--switch-every", "5"],
    },
    Scenario {
        content: Content::Photo,
        name: "slideshow-tiles",
        host: "slideshow",
        description: "the slideshow, with damage reported as merged 32x32 tiles that changed",
        frames: 105,
        quick_frames: 20,
        period_ms: 100,
        args: &["--switch-every", "15", "--damage", "tiles"],
        quick_args: &["--switch-every", "5", "--damage", "tiles"],
    },
    Scenario {
        content: Content::Video,
        name: "video",
        host: "video",
        description: "a 320x240 player region with smooth moving content at 30 fps",
        frames: 300,
        quick_frames: 45,
        period_ms: 33,
        args: &[],
        quick_args: &[],
    },
    Scenario {
        content: Content::Video,
        name: "video-tiles",
        host: "video",
        description: "the video region, with damage reported as merged 32x32 tiles that changed",
        frames: 300,
        quick_frames: 45,
        period_ms: 33,
        args: &["--damage", "tiles"],
        quick_args: &["--damage", "tiles"],
    },
    Scenario {
        content: Content::Idle,
        name: "clock",
        host: "clock",
        description: "an idle desktop where only the taskbar clock changes, once a second",
        frames: 10,
        quick_frames: 2,
        period_ms: 1000,
        args: &[],
        quick_args: &[],
    },
    Scenario {
        content: Content::Idle,
        name: "clock-tiles",
        host: "clock",
        description: "the idle desktop, with damage reported as merged 32x32 tiles that changed",
        frames: 10,
        quick_frames: 2,
        period_ms: 1000,
        args: &["--damage", "tiles"],
        quick_args: &["--damage", "tiles"],
    },
];

/// Looks a scenario up by name.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The scenario.
    pub scenario: &'static Scenario,
    /// Short version (CI).
    pub quick: bool,
    /// More host arguments (say `--compression lz`).
    pub host_args: Vec<String>,
    /// How long the client may take to show the last frame.
    pub frame_timeout: Duration,
}

impl RunConfig {
    /// A full or quick run of `scenario` with the host's defaults.
    pub fn new(scenario: &'static Scenario, quick: bool) -> Self {
        Self {
            scenario,
            quick,
            host_args: Vec::new(),
            frame_timeout: Duration::from_secs(if quick { 30 } else { 60 }),
        }
    }

    /// The host's command line after `--port`.
    pub fn args(&self) -> Vec<String> {
        let s = self.scenario;
        let mut args = vec![
            "--scenario".to_owned(),
            s.host.to_owned(),
            "--frames".to_owned(),
            (if self.quick { s.quick_frames } else { s.frames }).to_string(),
        ];
        let extra = if self.quick { s.quick_args } else { s.args };
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.extend(self.host_args.iter().cloned());
        args
    }

    fn frames(&self) -> u32 {
        if self.quick {
            self.scenario.quick_frames
        } else {
            self.scenario.frames
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Library name (`ours`, `C`).
    pub lib: String,
    /// Scenario name.
    pub scenario: String,
    /// The host's CPU seconds (all threads) from its start until the client
    /// showed the last frame.
    pub cpu_s: f64,
    /// The host's CPU seconds from "start" until the client showed the last frame.
    pub cpu_scenario_s: f64,
    /// The library's part of `cpu_s`, measured in the run: its threads, and
    /// its calls, timers and watches on the host's main thread.
    pub library_cpu_s: Option<f64>,
    /// Bytes the client's display channel read, whole session.
    pub display_bytes: u64,
    /// Bytes the client's display channel read from "start" on.
    pub display_bytes_scenario: u64,
    /// From the host's last change to the client's last invalidate before its
    /// surface equalled the final frame.
    pub latency_ms: Option<f64>,
    /// The same, from the first refresh tick after the last change (when the
    /// host first tried to hand it to the server) instead: without the wait
    /// for the host's own refresh timer, which no library controls.
    pub handover_latency_ms: Option<f64>,
    /// From the client's connect to the first frame complete at the client.
    pub first_frame_ms: Option<f64>,
    /// The client's surface ended equal to the host's final frame.
    pub exact: bool,
    /// The host's peak resident memory.
    pub peak_kib: u64,
    /// Raw bitmap bytes the host handed to the server (DRAW_COPY strips).
    pub raw_bytes: u64,
    /// How long the scenario took on the host (first to last frame).
    pub elapsed_ms: u64,
    /// What the client showed of the video (the video scenario's proxy run).
    pub quality: Option<crate::quality::VideoQuality>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
}

impl RunResult {
    /// As JSON, for the results file.
    pub fn to_json(&self) -> Value {
        json!({
            "lib": self.lib,
            "scenario": self.scenario,
            "cpu_s": self.cpu_s,
            "cpu_scenario_s": self.cpu_scenario_s,
            "library_cpu_s": self.library_cpu_s,
            "display_bytes": self.display_bytes,
            "display_bytes_scenario": self.display_bytes_scenario,
            "latency_ms": self.latency_ms,
            "handover_latency_ms": self.handover_latency_ms,
            "first_frame_ms": self.first_frame_ms,
            "exact": self.exact,
            "peak_kib": self.peak_kib,
            "raw_bytes": self.raw_bytes,
            "elapsed_ms": self.elapsed_ms,
            "quality": self.quality.as_ref().map(crate::quality::VideoQuality::to_json),
            "error": self.error,
        })
    }
}

fn addr(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_default()
}

fn ms_between(from_us: u64, to_us: u64) -> f64 {
    to_us.saturating_sub(from_us) as f64 / 1000.0
}

/// The client's display channel `total-read-bytes`.
fn display_bytes(gtk: &mut SpiceGtk) -> Result<u64> {
    gtk.send(json!({"cmd": "stats"}));
    let stats = gtk
        .wait(Duration::from_secs(10), |v| v["event"] == "stats")
        .ok_or_else(|| anyhow!("no stats from the client"))?;
    let channels = stats["channels"].as_array().cloned().unwrap_or_default();
    let display = channels
        .iter()
        .find(|c| c["type"] == "DisplayChannel")
        .ok_or_else(|| anyhow!("the client has no display channel: {stats}"))?;
    Ok(u64_of(display, "total_read_bytes"))
}

/// Waits until the client's surface has this CRC-32; returns the client's
/// "frame-match" event, or `None` after `timeout`.
fn watch(gtk: &mut SpiceGtk, crc: u64, timeout: Duration) -> Option<Value> {
    gtk.send(json!({"cmd": "watch", "crc": crc, "timeout": timeout.as_secs_f64()}));
    let v = gtk.wait(timeout + Duration::from_secs(10), |v| {
        v["event"] == "frame-match" || v["event"] == "frame-timeout"
    })?;
    (v["event"] == "frame-match").then_some(v)
}

/// One run with a spice-gtk client; with `proxy`, the client goes through an
/// image-statistics proxy (the timings of such a run are not reported), and
/// in the video scenario the client's picture is sampled for its quality
/// ([`crate::quality`]).
pub fn run_with_client(
    host_binary: &Path,
    lib: &Library,
    config: &RunConfig,
    proxy: bool,
) -> Result<(RunResult, Option<DisplayStats>)> {
    let mut result = RunResult {
        lib: lib.name.clone(),
        scenario: config.scenario.name.to_owned(),
        ..RunResult::default()
    };
    let mut args = config.args();
    let frames_dir = host_binary
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("video-frames-{}", std::process::id()));
    let sample = proxy && config.scenario.content == Content::Video;
    if sample {
        args.extend(["--dump-video".to_owned(), frames_dir.display().to_string()]);
        let _ = std::fs::remove_dir_all(&frames_dir);
        std::fs::create_dir_all(&frames_dir)?;
    }
    let mut host = Host::start(host_binary, lib, &args)?;
    let pid = host.pid();
    let ready = host.ready().cloned().unwrap_or_default();
    // Where the player's picture is, from the host's "ready" event.
    let area: Option<[usize; 4]> = ready["video"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_u64().map(|v| v as usize))
                .collect::<Option<Vec<_>>>()
        })
        .and_then(|a| a.try_into().ok())
        .filter(|a: &[usize; 4]| a.iter().all(|&v| v > 0));
    let mut sampler = area
        .filter(|_| sample)
        .map(|area| crate::quality::Sampler::new(&frames_dir, area));
    let initial_crc = u64_of(&ready, "crc");
    let proxy = if proxy {
        Some(Proxy::start(addr(host.port)).context("start the proxy")?)
    } else {
        None
    };
    let target = proxy.as_ref().map_or(addr(host.port), Proxy::addr);

    let mut gtk = SpiceGtk::start();
    gtk.send(
        json!({"cmd": "connect", "uri": format!("spice://{}:{}", target.ip(), target.port()), "quiet": true}),
    );
    let first = watch(&mut gtk, initial_crc, config.frame_timeout);
    let Some(first) = first else {
        result.error = Some(format!(
            "the first frame never arrived whole; host: {}",
            host.log_tail()
        ));
        let _ = host.quit();
        return Ok((result, proxy.map(|p| p.stats())));
    };
    result.first_frame_ms = Some(ms_between(
        u64_of(&first, "t_connect_us"),
        u64_of(&first, "t_done_us"),
    ));

    let bytes_before = display_bytes(&mut gtk)?;
    let cpu_before = host.cpu().total_s;
    host.cmd("start")?;
    let frames = u64::from(config.frames());
    let run_time = Duration::from_millis(frames * u64::from(config.scenario.period_ms));
    let deadline = std::time::Instant::now() + run_time + Duration::from_secs(60);
    let last = loop {
        let step = if sampler.is_some() {
            crate::quality::SAMPLE_EVERY
        } else {
            run_time + Duration::from_secs(60)
        };
        if let Some(last) = host.wait(step, |v| v["event"] == "last-update") {
            break last;
        }
        if std::time::Instant::now() >= deadline {
            bail!("{}: no last-update from the host", lib.name);
        }
        if let Some(sampler) = &mut sampler {
            sampler.sample(&mut gtk);
        }
    };
    result.elapsed_ms = u64_of(&last, "elapsed_ms");
    let last_us = u64_of(&last, "t_us");

    let mut done_us = None;
    match watch(&mut gtk, u64_of(&last, "crc"), config.frame_timeout) {
        Some(done) => {
            result.exact = true;
            result.latency_ms = Some(ms_between(last_us, u64_of(&done, "t_done_us")));
            done_us = Some(u64_of(&done, "t_done_us"));
        }
        None => {
            result.error = Some(format!(
                "the last frame did not arrive within {:?}",
                config.frame_timeout
            ));
        }
    }
    let cpu_after = host.cpu();
    result.cpu_s = cpu_after.total_s;
    result.cpu_scenario_s = cpu_after.total_s - cpu_before;
    result.library_cpu_s = cpu_after.library_s;
    result.peak_kib = procfs::peak_rss_kib(pid).unwrap_or_default();
    let bytes_after = display_bytes(&mut gtk)?;
    result.display_bytes = bytes_after;
    result.display_bytes_scenario = bytes_after.saturating_sub(bytes_before);
    let stats = proxy.map(|p| p.stats());
    if let (Some(sampler), Some(stats)) = (sampler, &stats) {
        let stream_frames = [123u16, 316]
            .iter()
            .filter_map(|t| stats.messages.get(t))
            .map(|(count, _)| count)
            .sum();
        result.quality = Some(sampler.judge(frames as u32, stream_frames, result.elapsed_ms)?);
    }
    gtk.quit();
    if sample {
        let _ = std::fs::remove_dir_all(&frames_dir);
    }
    let problems = host.problems();
    let counts = host.quit()?;
    result.raw_bytes = u64_of(&counts, "raw_bytes");
    let tick_us = u64_of(&counts, "refresh_after_last_change_us");
    if let Some(done_us) = done_us.filter(|done| tick_us >= last_us && tick_us <= *done) {
        result.handover_latency_ms = Some(ms_between(tick_us, done_us));
    }
    if !problems.is_empty() {
        bail!("{}: the host reported {problems:?}", lib.name);
    }
    Ok((result, stats))
}

/// One run with no client: what the host and the library cost on their own.
/// Returns the host's CPU seconds from its start to its last frame.
pub fn run_alone(host_binary: &Path, lib: &Library, config: &RunConfig) -> Result<f64> {
    let mut host = Host::start(host_binary, lib, &config.args())?;
    host.cmd("start")?;
    let frames = u64::from(config.frames());
    let run_time = Duration::from_millis(frames * u64::from(config.scenario.period_ms));
    host.wait(run_time + Duration::from_secs(60), |v| {
        v["event"] == "last-update"
    })
    .ok_or_else(|| anyhow!("{}: no last-update from the host", lib.name))?;
    // One more refresh period, so the last frame is handed to the server too.
    std::thread::sleep(Duration::from_millis(100));
    let cpu = host.cpu().total_s;
    host.quit()?;
    Ok(cpu)
}
